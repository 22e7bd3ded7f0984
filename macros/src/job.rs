//! `#[derive(Job)]`: registers a serializable command as a durable job under a stable name.
//!
//! The derive reads one `#[job(...)]` attribute and writes the `Job` impl a user would write
//! by hand: `NAME`, `VERSION` (when given), `Output`, and `decode` (when given). It checks
//! what it can see: the name is given, non-empty and a string; the version a positive
//! integer; no key twice; the type is not generic (one name must decode one way).

use proc_macro2::TokenStream;
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{DeriveInput, LitInt, LitStr, Path, Type};

use crate::crate_path::{crate_path, parse_crate_option};

/// What `#[job(...)]` says.
#[derive(Default)]
struct Options {
    name: Option<LitStr>,
    version: Option<LitInt>,
    output: Option<Type>,
    decode: Option<Path>,
    krate: Option<Path>,
}

const KEYS: &str =
    "expected `name = \"...\"`, `output = Type`, `version = N`, `decode = path` or `crate = \"path\"`";

impl Options {
    fn parse(input: &DeriveInput) -> syn::Result<Options> {
        let mut options = Options::default();
        let mut seen = false;
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("job")) {
            seen = true;
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    once(&mut options.name, &meta, parse_name)
                } else if meta.path.is_ident("version") {
                    once(&mut options.version, &meta, parse_version)
                } else if meta.path.is_ident("output") {
                    once(&mut options.output, &meta, |meta| meta.value()?.parse())
                } else if meta.path.is_ident("decode") {
                    once(&mut options.decode, &meta, |meta| meta.value()?.parse())
                } else if meta.path.is_ident("crate") {
                    once(&mut options.krate, &meta, parse_crate_option)
                } else {
                    Err(meta.error(format!("unknown `job` option: {KEYS}")))
                }
            })?;
        }
        if options.name.is_none() {
            let hint = if seen {
                "add `name = \"...\"` to `#[job(...)]`"
            } else {
                "add `#[job(name = \"...\")]` below the derive"
            };
            return Err(syn::Error::new(
                input.ident.span(),
                format!(
                    "a job needs a stable name, stored with every job and used to find its \
                     handler after a restart (renaming the type must not change it): {hint}"
                ),
            ));
        }
        Ok(options)
    }
}

/// Sets an option from its value, or says it was given twice.
fn once<T>(
    slot: &mut Option<T>,
    meta: &ParseNestedMeta,
    parse: impl FnOnce(&ParseNestedMeta) -> syn::Result<T>,
) -> syn::Result<()> {
    if slot.is_some() {
        let key = meta.path.get_ident().map(ToString::to_string);
        return Err(meta.error(format!(
            "`{}` is given twice in `#[job(...)]`",
            key.unwrap_or_default()
        )));
    }
    *slot = Some(parse(meta)?);
    Ok(())
}

fn parse_name(meta: &ParseNestedMeta) -> syn::Result<LitStr> {
    let name: LitStr = meta.value()?.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "`name` takes a string literal: `name = \"send_invoice\"`",
        )
    })?;
    if name.value().trim().is_empty() {
        return Err(syn::Error::new(
            name.span(),
            "a job's name must not be empty: it is what the store records",
        ));
    }
    Ok(name)
}

fn parse_version(meta: &ParseNestedMeta) -> syn::Result<LitInt> {
    let version: LitInt = meta
        .value()?
        .parse()
        .map_err(|e| syn::Error::new(e.span(), "`version` takes an integer: `version = 2`"))?;
    match version.base10_parse::<u32>() {
        Ok(v) if v >= 1 => Ok(version),
        _ => Err(syn::Error::new(
            version.span(),
            "`version` is a payload schema version: an integer from 1 up",
        )),
    }
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<DeriveInput>(input).and_then(|input| generate(&input)) {
        Ok(tokens) => tokens,
        Err(e) => e.to_compile_error(),
    }
}

fn generate(input: &DeriveInput) -> syn::Result<TokenStream> {
    if let syn::Data::Union(u) = &input.data {
        return Err(syn::Error::new(
            u.union_token.span(),
            "a job is a struct or an enum (serde cannot store a union)",
        ));
    }
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "a job type cannot be generic: every job stored under one name must decode the \
             same way; use a concrete type",
        ));
    }
    let options = Options::parse(input)?;
    let krate = crate_path(options.krate.as_ref());
    let ident = &input.ident;
    let name = options.name.as_ref();
    let output = options
        .output
        .as_ref()
        .map_or_else(|| quote!(()), |t| quote!(#t));
    let version = options
        .version
        .as_ref()
        .map(|v| quote!(const VERSION: u32 = #v;));
    let decode = options.decode.as_ref().map(|path| {
        quote! {
            fn decode(
                version: u32,
                payload: #krate::jobs::__private::serde_json::Value,
            ) -> ::core::result::Result<Self, #krate::jobs::__private::serde_json::Error> {
                #path(version, payload)
            }
        }
    });
    Ok(quote! {
        impl #krate::jobs::Job for #ident {
            const NAME: &'static str = #name;
            #version
            type Output = #output;
            #decode
        }
    })
}
