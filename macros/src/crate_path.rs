//! Where generated code finds `ractor_otp`: `::ractor_otp` unless the user's `Cargo.toml`
//! renames the dependency, or the macro is given `crate = path` (serde's `#[serde(crate)]`).

use proc_macro2::{Span, TokenStream};
use proc_macro_crate::{crate_name, FoundCrate};
use quote::{quote, ToTokens};

/// The path generated code starts from, e.g. `::ractor_otp` or `::otp`.
pub(crate) fn crate_path(explicit: Option<&syn::Path>) -> TokenStream {
    if let Some(path) = explicit {
        return path.to_token_stream();
    }
    match crate_name("ractor-otp") {
        // Inside ractor-otp itself (its doctests, tests and examples see it as an external crate,
        // and the library declares `extern crate self as ractor_otp`).
        Ok(FoundCrate::Itself) => quote!(::ractor_otp),
        Ok(FoundCrate::Name(name)) => {
            let ident = syn::Ident::new(&name, Span::call_site());
            quote!(::#ident)
        }
        // No Cargo.toml to read (e.g. rustc run by hand): the conventional name.
        Err(_) => quote!(::ractor_otp),
    }
}

/// Reads the value of a `crate = "path"` (or `crate = path`) option.
pub(crate) fn parse_crate_option(meta: &syn::meta::ParseNestedMeta) -> syn::Result<syn::Path> {
    let value = meta.value()?;
    if value.peek(syn::LitStr) {
        value.parse::<syn::LitStr>()?.parse()
    } else {
        value.parse()
    }
}
