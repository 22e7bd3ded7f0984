//! `#[worker]`: an inherent impl block of async methods becomes a worker.
//!
//! Reading: [`expand`] parses the options and the impl block, [`Method::parse`] checks each
//! method against the rules below and collects every mistake (so one build reports them all),
//! then [`Generated`] writes the task / output / error enums, the `Worker` impl, the `Actor`
//! impl and the typed client.
//!
//! Rules a method must follow, each with its own error:
//! - `async fn`, taking `&self` or `&mut self` (not `self`, not a typed receiver, not none);
//! - no generic parameters (the worker struct may be generic instead);
//! - owned arguments and return type: no borrow other than `&'static`, no lifetime, no
//!   `impl Trait` (a task crosses a mailbox and its answer a channel);
//! - one method per name and per task variant; `cast_x` is taken by `x`, and `with` by the
//!   client's per-call options.
//!
//! Hooks: `init` and `on_restart`, by name or by `#[init]` / `#[on_restart]`, taking nothing or
//! the `WorkerContext`, returning `()` or a `Result<(), E>`; `E` gets its own variant in the
//! error enum, named after the hook's method, as a task method's error does.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, GenericParam, Generics, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, Path,
    ReturnType, Type,
};

use crate::crate_path::{crate_path, parse_crate_option};
use crate::naming::camel_case;

/// Options of `#[worker(...)]`.
#[derive(Default)]
struct Options {
    /// `crate = "path"` or `crate = path`: where `ractor_otp` is.
    krate: Option<Path>,
    /// `pool_only`: no `Actor` impl (the struct need not be `Clone + Sync`).
    pool_only: bool,
}

impl Options {
    fn parse(args: TokenStream) -> syn::Result<Options> {
        let mut options = Options::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                options.krate = Some(parse_crate_option(&meta)?);
                Ok(())
            } else if meta.path.is_ident("pool_only") {
                options.pool_only = true;
                Ok(())
            } else {
                Err(meta
                    .error("unknown `worker` option: expected `pool_only` or `crate = \"path\"`"))
            }
        });
        syn::parse::Parser::parse2(parser, args)?;
        Ok(options)
    }
}

/// Collects errors so that one build reports every mistake.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let error = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// An error over the whole of `tokens` (first to last token), not just its first token.
    fn push_spanned(&mut self, tokens: &dyn ToTokens, message: impl std::fmt::Display) {
        self.push_error(syn::Error::new_spanned(tokens, message));
    }

    fn push_error(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
}

/// The entry point: the impl block back (helper attributes removed) plus the generated items,
/// or the impl block plus the errors (so the rest of the user's code still type-checks).
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = Options::parse(args).unwrap_or_else(|e| {
        errors.push_error(e);
        Options::default()
    });
    let mut item: ItemImpl = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Impl(item)) => item,
        Ok(other) => {
            let error = syn::Error::new(
                item_span(&other),
                "#[worker] goes on an inherent impl block of async methods: \
                 `#[worker] impl MyWorker { async fn task(&mut self, ..) -> .. { .. } }`",
            );
            let error = error.to_compile_error();
            return quote!(#error #input);
        }
        Err(e) => return e.to_compile_error(),
    };
    let generated = generate(&mut item, &options, &mut errors);
    match errors.0 {
        Some(error) => {
            let error = error.to_compile_error();
            quote!(#item #error)
        }
        None => quote!(#item #generated),
    }
}

fn item_span(item: &syn::Item) -> Span {
    match item {
        syn::Item::Fn(f) => f.sig.fn_token.span,
        syn::Item::Struct(s) => s.struct_token.span,
        syn::Item::Enum(e) => e.enum_token.span,
        syn::Item::Trait(t) => t.trait_token.span,
        other => other.span(),
    }
}

/// What a method returns.
enum Returns {
    /// Nothing (`()`).
    Unit,
    /// A value that is always a success.
    Plain(Type),
    /// A `Result`-like type: `ok` / `err` are its halves (written out when the type says
    /// `Result<T, E>`, else projected through `Fallible`).
    Fallible { ok: TokenStream, err: TokenStream },
}

impl Returns {
    fn parse(output: &ReturnType, private: &TokenStream) -> Returns {
        let ty = match output {
            ReturnType::Default => return Returns::Unit,
            ReturnType::Type(_, ty) => ty.as_ref(),
        };
        if is_unit(ty) {
            return Returns::Unit;
        }
        let Type::Path(path) = ty else {
            return Returns::Plain(ty.clone());
        };
        let Some(last) = path.path.segments.last() else {
            return Returns::Plain(ty.clone());
        };
        if last.ident != "Result" || path.qself.is_some() {
            return Returns::Plain(ty.clone());
        }
        if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
            let types: Vec<&Type> = args
                .args
                .iter()
                .filter_map(|a| match a {
                    syn::GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect();
            if let [ok, err] = types.as_slice() {
                return Returns::Fallible {
                    ok: ok.to_token_stream(),
                    err: err.to_token_stream(),
                };
            }
        }
        // An alias such as `io::Result<T>`: its halves through the `Fallible` trait.
        let span = ty.span();
        Returns::Fallible {
            ok: quote_spanned!(span=> <#ty as #private::Fallible>::Ok),
            err: quote_spanned!(span=> <#ty as #private::Fallible>::Err),
        }
    }

    fn ok_type(&self) -> TokenStream {
        match self {
            Returns::Unit => quote!(()),
            Returns::Plain(ty) => ty.to_token_stream(),
            Returns::Fallible { ok, .. } => ok.clone(),
        }
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// Which lifecycle hook a method is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hook {
    Init,
    OnRestart,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::Init => "init",
            Hook::OnRestart => "on_restart",
        }
    }
}

/// One task method, checked.
struct Method {
    ident: Ident,
    variant: Ident,
    /// The argument names used in the task variant and the client (patterns other than a
    /// plain name become `arg{i}`).
    arg_names: Vec<Ident>,
    arg_types: Vec<Type>,
    returns: Returns,
    /// The method's `#[doc]` attributes, repeated on its variant and client method.
    docs: Vec<Attribute>,
    /// Its `#[cfg]` attributes, repeated on everything generated for it.
    cfgs: Vec<Attribute>,
    vis: syn::Visibility,
}

/// A hook method, checked.
struct HookMethod {
    ident: Ident,
    hook: Hook,
    takes_context: bool,
    /// The error type of a hook returning `Result<(), E>`: the worker's error enum gets a
    /// variant for it, named after the method, as a task method's would.
    err: Option<TokenStream>,
}

/// Finds and removes `#[init]` / `#[on_restart]` on a method; a method named `init` or
/// `on_restart` is that hook too.
fn take_hook(f: &mut ImplItemFn, errors: &mut Errors) -> Option<(Hook, Span)> {
    let mut found = None;
    let mut kept = Vec::with_capacity(f.attrs.len());
    for attr in f.attrs.drain(..) {
        let hook = if attr.path().is_ident("init") {
            Some(Hook::Init)
        } else if attr.path().is_ident("on_restart") {
            Some(Hook::OnRestart)
        } else {
            None
        };
        match hook {
            Some(hook) => {
                if !matches!(attr.meta, syn::Meta::Path(_)) {
                    errors.push_spanned(&attr, format!("`#[{}]` takes no arguments", hook.name()));
                }
                if found.is_some() {
                    errors.push_spanned(&attr, "a method can be one hook at most: keep one of `#[init]` and `#[on_restart]`");
                }
                found = Some((hook, f.sig.ident.span()));
            }
            None => kept.push(attr),
        }
    }
    f.attrs = kept;
    found.or_else(|| {
        let name = f.sig.ident.to_string();
        match name.as_str() {
            "init" => Some((Hook::Init, f.sig.ident.span())),
            "on_restart" => Some((Hook::OnRestart, f.sig.ident.span())),
            _ => None,
        }
    })
}

/// Checks what every worker method shares: `async`, a `&self` / `&mut self` receiver, no
/// generics, nothing `unsafe`.
fn check_signature(f: &ImplItemFn, what: &str, errors: &mut Errors) {
    let sig = &f.sig;
    let name = &sig.ident;
    if sig.asyncness.is_none() {
        errors.push(
            sig.fn_token.span,
            format!(
                "{what} `{name}` is not `async`: write `async fn {name}`, \
                 or move plain helper functions to a separate `impl` block"
            ),
        );
    }
    if let Some(unsafety) = sig.unsafety {
        errors.push(
            unsafety.span,
            format!("{what} `{name}` can't be `unsafe`: a task calls it with no `unsafe` block"),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.push(
            abi.span(),
            format!("{what} `{name}` can't have an `extern` ABI"),
        );
    }
    if let Some(c) = sig.constness {
        errors.push(c.span, format!("{what} `{name}` can't be `const`"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push_spanned(
            &sig.generics,
            format!(
                "{what} `{name}` is generic: a task needs concrete types; make the worker \
                 struct generic instead (`impl<T> MyWorker<T>`)"
            ),
        );
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.colon_token.is_some() => errors.push_spanned(
            r,
            format!("{what} `{name}` takes a typed `self`: take `&self` or `&mut self`"),
        ),
        Some(FnArg::Receiver(r)) if r.reference.is_none() => errors.push(
            r.span(),
            format!(
                "{what} `{name}` takes `self` by value, but a worker lives on between tasks: \
                 take `&self` or `&mut self`"
            ),
        ),
        Some(FnArg::Receiver(_)) => {}
        _ => errors.push(
            name.span(),
            format!(
                "{what} `{name}` has no `self`: worker methods take `&self` or `&mut self`; \
                 put constructors and other associated functions in a separate `impl` block"
            ),
        ),
    }
    if let Some(v) = &sig.variadic {
        errors.push(v.span(), format!("{what} `{name}` can't be variadic"));
    }
}

/// Finds borrows, lifetimes and `impl Trait` in a type that must be owned.
struct Borrows<'a> {
    errors: &'a mut Errors,
    /// "argument `img`" or "the return type".
    place: String,
    method: &'a Ident,
}

impl<'ast> Visit<'ast> for Borrows<'_> {
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        let is_static = r.lifetime.as_ref().is_some_and(|l| l.ident == "static");
        if !is_static {
            let method = self.method;
            self.errors.push_spanned(
                r,
                format!(
                    "{} of `{method}` is borrowed: a task crosses a mailbox and its answer a \
                     channel, so they own their data; use an owned type (`String` for `&str`, \
                     `Vec<T>` for `&[T]`, `Arc<T>` to share)",
                    self.place
                ),
            );
            return; // one error per borrow, not one more for its lifetime
        }
        syn::visit::visit_type_reference(self, r);
    }

    fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
        if l.ident != "static" {
            let method = self.method;
            self.errors.push(
                l.span(),
                format!(
                    "{} of `{method}` has the lifetime `{l}`: tasks and answers are owned \
                     (`'static`) values",
                    self.place
                ),
            );
        }
    }

    fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
        let method = self.method;
        self.errors.push_spanned(
            t,
            format!(
                "{} of `{method}` is `impl Trait`: a task variant needs a concrete type \
                 (name the type, or box it: `Box<dyn Trait + Send>`)",
                self.place
            ),
        );
    }
}

impl Method {
    fn parse(f: &ImplItemFn, private: &TokenStream, errors: &mut Errors) -> Method {
        check_signature(f, "worker method", errors);
        let ident = f.sig.ident.clone();
        let mut arg_names = Vec::new();
        let mut arg_types = Vec::new();
        for (i, arg) in f.sig.inputs.iter().enumerate() {
            let FnArg::Typed(arg) = arg else { continue };
            let name = match arg.pat.as_ref() {
                Pat::Ident(p) if p.subpat.is_none() => p.ident.clone(),
                _ => format_ident!("arg{}", i),
            };
            Borrows {
                errors,
                place: format!("argument `{name}`"),
                method: &ident,
            }
            .visit_type(&arg.ty);
            arg_names.push(name);
            arg_types.push((*arg.ty).clone());
        }
        if let ReturnType::Type(_, ty) = &f.sig.output {
            Borrows {
                errors,
                place: "the return type".to_string(),
                method: &ident,
            }
            .visit_type(ty);
        }
        Method {
            variant: syn::Ident::new(&camel_case(&ident.unraw_string()), ident.span()),
            returns: Returns::parse(&f.sig.output, private),
            docs: f
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .cloned()
                .collect(),
            cfgs: f
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("cfg"))
                .cloned()
                .collect(),
            vis: f.vis.clone(),
            arg_names,
            arg_types,
            ident,
        }
    }

    fn cast_ident(&self) -> Ident {
        format_ident!(
            "cast_{}",
            self.ident.unraw_string(),
            span = self.ident.span()
        )
    }
}

impl HookMethod {
    fn parse(f: &ImplItemFn, hook: Hook, private: &TokenStream, errors: &mut Errors) -> HookMethod {
        check_signature(f, &format!("`{}` hook", hook.name()), errors);
        let typed: Vec<_> = f
            .sig
            .inputs
            .iter()
            .filter(|a| matches!(a, FnArg::Typed(_)))
            .collect();
        if typed.len() > 1 {
            errors.push_spanned(
                typed[1],
                format!(
                    "the `{}` hook takes nothing or the `WorkerContext`: \
                     `async fn {}(&mut self, ctx: WorkerContext)`",
                    hook.name(),
                    f.sig.ident
                ),
            );
        }
        let wrong_return = |errors: &mut Errors, ty: &Type| {
            errors.push_spanned(
                ty,
                format!(
                    "the `{}` hook returns `()` or `Result<(), E>` (an `Err` fails the start, \
                     and the supervisor retries it)",
                    hook.name()
                ),
            );
        };
        let err = match Returns::parse(&f.sig.output, private) {
            Returns::Unit => None,
            Returns::Plain(ty) => {
                wrong_return(errors, &ty);
                None
            }
            Returns::Fallible { ok, err } => {
                if let Ok(ok) = syn::parse2::<Type>(ok) {
                    if !is_unit(&ok) && !matches!(ok, Type::Path(ref p) if p.qself.is_some()) {
                        wrong_return(errors, &ok);
                    }
                }
                Some(err)
            }
        };
        HookMethod {
            ident: f.sig.ident.clone(),
            hook,
            takes_context: !typed.is_empty(),
            err,
        }
    }

    /// The hook's variant in the error enum (when it returns a `Result`).
    fn variant(&self) -> Ident {
        Ident::new(&camel_case(&self.ident.unraw_string()), self.ident.span())
    }
}

trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for Ident {
    fn unraw_string(&self) -> String {
        let s = self.to_string();
        s.strip_prefix("r#").map(str::to_string).unwrap_or(s)
    }
}

/// Everything `#[worker]` writes next to the impl block (helper attributes are removed from
/// `item`; mistakes go to `errors`).
fn generate(item: &mut ItemImpl, options: &Options, errors: &mut Errors) -> TokenStream {
    let krate = crate_path(options.krate.as_ref());
    let private = quote!(#krate::__private);
    if let Some((_, path, _)) = &item.trait_ {
        errors.push(
            path.span(),
            format!(
                "#[worker] goes on an inherent impl block (`impl MyWorker {{ .. }}`), not on \
                     an impl of `{}`: it writes the `Worker` impl itself",
                path.to_token_stream()
            ),
        );
        return TokenStream::new();
    }
    let name = match self_name(&item.self_ty) {
        Some(name) => name,
        None => {
            errors.push(
                item.self_ty.span(),
                "#[worker] needs a named type (`impl MyWorker { .. }`)",
            );
            return TokenStream::new();
        }
    };
    for param in &item.generics.params {
        if let GenericParam::Lifetime(l) = param {
            errors.push(
                l.span(),
                "a worker moves into an actor, so it is `'static`: its impl can't have \
                     lifetime parameters",
            );
        }
    }

    let mut methods: Vec<Method> = Vec::new();
    let mut init = None;
    let mut on_restart = None;
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        match take_hook(f, errors) {
            Some((hook, span)) => {
                let slot = match hook {
                    Hook::Init => &mut init,
                    Hook::OnRestart => &mut on_restart,
                };
                if let Some(first) = slot.as_ref() {
                    let first: &HookMethod = first;
                    errors.push(
                        span,
                        format!(
                            "`{}` is a second `{}` hook (the first is `{}`): keep one",
                            f.sig.ident,
                            hook.name(),
                            first.ident
                        ),
                    );
                }
                *slot = Some(HookMethod::parse(f, hook, &private, errors));
            }
            None => methods.push(Method::parse(f, &private, errors)),
        }
    }
    let hooks: Vec<HookMethod> = init.into_iter().chain(on_restart).collect();
    check_names(&methods, &hooks, errors);
    if methods.is_empty() && errors.0.is_none() {
        errors.push(
            item.impl_token.span,
            "#[worker] found no task method: add `async fn name(&mut self, ..) -> ..`",
        );
    }

    let parts = Parts {
        krate: &krate,
        private: &private,
        task: format_ident!("{}Task", name),
        output: format_ident!("{}Output", name),
        error: format_ident!("{}Error", name),
        name: &name,
        self_ty: &item.self_ty,
        generics: &item.generics,
        methods: &methods,
        hooks: &hooks,
    };
    let mut tokens = parts.enums();
    tokens.extend(parts.worker_impl());
    if !options.pool_only {
        tokens.extend(parts.actor_impl());
    }
    tokens.extend(parts.client());
    tokens
}

fn self_name(ty: &Type) -> Option<Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    }
}

/// Duplicate names, task or error variants that collide, and `cast_x` forms that collide with a
/// method.
fn check_names(methods: &[Method], hooks: &[HookMethod], errors: &mut Errors) {
    for hook in hooks.iter().filter(|h| h.err.is_some()) {
        let variant = hook.variant();
        if let Some(m) = methods.iter().find(|m| m.variant == variant) {
            errors.push(
                hook.ident.span(),
                format!(
                    "the `{}` hook and `{}` both become the error variant `{variant}`: rename one",
                    hook.ident, m.ident
                ),
            );
        }
    }
    for (i, m) in methods.iter().enumerate() {
        for earlier in &methods[..i] {
            if earlier.ident == m.ident {
                errors.push(
                    m.ident.span(),
                    format!(
                        "duplicate method `{}`: each method is one kind of task",
                        m.ident
                    ),
                );
            } else if earlier.variant == m.variant {
                errors.push(
                    m.ident.span(),
                    format!(
                        "`{}` and `{}` both become the task variant `{}`: rename one",
                        earlier.ident, m.ident, m.variant
                    ),
                );
            }
        }
        let cast = m.cast_ident();
        if let Some(clash) = methods.iter().find(|o| o.ident == cast) {
            errors.push(
                clash.ident.span(),
                format!(
                    "`{cast}` is the fire-and-forget form the client gets for `{}`: rename this \
                     method",
                    m.ident
                ),
            );
        }
        if m.ident == "with" {
            errors.push(
                m.ident.span(),
                "`with` is the client's method that sets per-call options \
                 (`client.with(TaskOptions..)`): rename this method",
            );
        }
    }
}

/// What the generators need.
struct Parts<'a> {
    krate: &'a TokenStream,
    private: &'a TokenStream,
    /// The generated enums: `NameTask`, `NameOutput`, `NameError`.
    task: Ident,
    output: Ident,
    error: Ident,
    name: &'a Ident,
    self_ty: &'a Type,
    generics: &'a Generics,
    methods: &'a [Method],
    hooks: &'a [HookMethod],
}

impl Parts<'_> {
    /// `NameTask<T, N>` for a generated enum: the impl's parameters, without bounds.
    fn enum_ty(&self, ident: &Ident) -> TokenStream {
        let (_, ty_generics, _) = self.generics.split_for_impl();
        quote!(#ident #ty_generics)
    }

    /// A hidden variant that uses every type and const parameter (an enum must use them all),
    /// and never exists (it holds `Infallible`).
    fn phantom_variant(&self) -> Option<TokenStream> {
        let used: Vec<TokenStream> = self
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Type(t) => {
                    let ident = &t.ident;
                    Some(quote!(#ident))
                }
                GenericParam::Const(c) => {
                    let ident = &c.ident;
                    Some(quote!([(); #ident]))
                }
                GenericParam::Lifetime(_) => None,
            })
            .collect();
        if used.is_empty() {
            return None;
        }
        Some(quote! {
            #[doc(hidden)]
            __Phantom(::core::marker::PhantomData<fn() -> (#(#used,)*)>, ::core::convert::Infallible),
        })
    }

    fn phantom_arm(&self, enum_ident: &Ident) -> Option<TokenStream> {
        self.phantom_variant()
            .map(|_| quote!(#enum_ident::__Phantom(_, never) => match never {},))
    }

    fn enums(&self) -> TokenStream {
        let name = self.name;
        let (impl_generics, ty_generics, where_clause) = self.generics.split_for_impl();
        let params = &self.generics.params;
        let generics = if params.is_empty() {
            quote!()
        } else {
            quote!(<#params>)
        };
        let phantom = self.phantom_variant();
        let (task, output, error) = (&self.task, &self.output, &self.error);

        let task_variants = self.methods.iter().map(|m| {
            let Method {
                variant,
                arg_names,
                arg_types,
                docs,
                ..
            } = m;
            let fields = arg_names.iter().zip(arg_types).map(|(n, t)| {
                let doc = format!("The `{n}` argument.");
                quote!(#[doc = #doc] #n: #t)
            });
            let cfgs = &m.cfgs;
            quote!(#(#cfgs)* #(#docs)* #variant { #(#fields,)* },)
        });
        let output_variants = self.methods.iter().map(|m| {
            let variant = &m.variant;
            let ok = m.returns.ok_type();
            let doc = format!("What `{}` answered.", m.ident);
            let cfgs = &m.cfgs;
            quote!(#(#cfgs)* #[doc = #doc] #variant(#ok),)
        });
        // One error variant per method returning a `Result`: task methods, then hooks.
        struct Fallible<'a> {
            variant: Ident,
            err: &'a TokenStream,
            doc: String,
            cfgs: &'a [Attribute],
        }
        let tasks = self.methods.iter().filter_map(|m| match &m.returns {
            Returns::Fallible { err, .. } => Some(Fallible {
                variant: m.variant.clone(),
                err,
                doc: format!("`{}` returned this error.", m.ident),
                cfgs: &m.cfgs,
            }),
            _ => None,
        });
        let hooks = self.hooks.iter().filter_map(|h| {
            let err = h.err.as_ref()?;
            Some(Fallible {
                variant: h.variant(),
                err,
                doc: format!(
                    "The `{}` hook (`{}`) returned this error: that start failed.",
                    h.hook.name(),
                    h.ident
                ),
                cfgs: &[],
            })
        });
        let fallible: Vec<Fallible> = tasks.chain(hooks).collect();
        let error_variants = fallible.iter().map(|m| {
            let Fallible {
                variant,
                err,
                doc,
                cfgs,
            } = m;
            quote!(#(#cfgs)* #[doc = #doc] #variant(#err),)
        });
        let private = self.private;
        let display_arms = fallible.iter().map(|m| {
            let variant = &m.variant;
            let span = m.err.span();
            let show = quote_spanned!(span=> #private::display_method_error(e, f));
            let cfgs = m.cfgs;
            quote!(#(#cfgs)* #error::#variant(ref e) => #show,)
        });
        let debug_arms = fallible.iter().map(|m| {
            let variant = &m.variant;
            let label = variant.to_string();
            let cfgs = m.cfgs;
            quote! {
                #(#cfgs)*
                #error::#variant(_) => f.debug_tuple(#label)
                    .field(&::core::format_args!("{}", self)).finish(),
            }
        });
        let phantom_error_arm = self.phantom_arm(error);
        let task_doc = format!(
            "The tasks of [`{name}`]: one variant per method, holding its arguments \
             (generated by `#[worker]`)."
        );
        let output_doc = format!("What [`{name}`] answers: one variant per method.");
        let error_doc = format!(
            "The errors of [`{name}`]'s methods that return a `Result`: one variant per such \
             method (hooks included)."
        );
        quote! {
            #[doc = #task_doc]
            #[allow(private_interfaces, dead_code)]
            pub enum #task #generics #where_clause {
                #(#task_variants)*
                #phantom
            }

            #[doc = #output_doc]
            #[allow(private_interfaces, dead_code)]
            pub enum #output #generics #where_clause {
                #(#output_variants)*
                #phantom
            }

            #[doc = #error_doc]
            #[allow(private_interfaces, dead_code)]
            pub enum #error #generics #where_clause {
                #(#error_variants)*
                #phantom
            }

            impl #impl_generics ::core::fmt::Display for #error #ty_generics #where_clause {
                #[allow(unused_variables)]
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    match *self {
                        #(#display_arms)*
                        #phantom_error_arm
                    }
                }
            }

            impl #impl_generics ::core::fmt::Debug for #error #ty_generics #where_clause {
                #[allow(unused_variables)]
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    match *self {
                        #(#debug_arms)*
                        #phantom_error_arm
                    }
                }
            }

            impl #impl_generics ::core::error::Error for #error #ty_generics #where_clause {}
        }
    }

    fn hook_body(&self, hook: Option<&HookMethod>) -> TokenStream {
        let Some(hook) = hook else {
            return quote!(::core::result::Result::Ok(()));
        };
        let ident = &hook.ident;
        let private = self.private;
        let error = &self.error;
        let call = if hook.takes_context {
            quote!(Self::#ident(self, ctx).await)
        } else {
            quote!(Self::#ident(self).await)
        };
        if hook.err.is_some() {
            let variant = hook.variant();
            quote! {
                ::core::result::Result::map_err(
                    #private::Fallible::into_result(#call),
                    #error::#variant,
                )
            }
        } else {
            quote!({ #call; ::core::result::Result::Ok(()) })
        }
    }

    fn worker_impl(&self) -> TokenStream {
        let Parts {
            krate,
            private,
            self_ty,
            ..
        } = self;
        let (impl_generics, _, where_clause) = self.generics.split_for_impl();
        let (task, output, error) = (&self.task, &self.output, &self.error);
        let task_ty = self.enum_ty(task);
        let output_ty = self.enum_ty(output);
        let error_ty = self.enum_ty(error);
        let arms = self.methods.iter().map(|m| {
            let Method {
                ident,
                variant,
                arg_names,
                ..
            } = m;
            let call = quote!(Self::#ident(self, #(#arg_names),*).await);
            let answer = match &m.returns {
                Returns::Fallible { .. } => quote! {
                    match #private::Fallible::into_result(#call) {
                        ::core::result::Result::Ok(v) => ::core::result::Result::Ok(#output::#variant(v)),
                        ::core::result::Result::Err(e) => ::core::result::Result::Err(#error::#variant(e)),
                    }
                },
                _ => quote!(::core::result::Result::Ok(#output::#variant(#call))),
            };
            let cfgs = &m.cfgs;
            quote!(#(#cfgs)* #task::#variant { #(#arg_names),* } => #answer,)
        });
        let phantom_arm = self.phantom_arm(task);
        let hook = |which| self.hooks.iter().find(|h| h.hook == which);
        let init_body = self.hook_body(hook(Hook::Init));
        let restart_body = self.hook_body(hook(Hook::OnRestart));
        quote! {
            impl #impl_generics #krate::worker::Worker for #self_ty #where_clause {
                type Task = #task_ty;
                type Output = #output_ty;
                type Error = #error_ty;

                #[allow(unused_variables)]
                async fn init(
                    &mut self,
                    ctx: #krate::worker::WorkerContext,
                ) -> ::core::result::Result<(), Self::Error> {
                    #init_body
                }

                async fn handle(
                    &mut self,
                    task: Self::Task,
                ) -> ::core::result::Result<Self::Output, Self::Error> {
                    match task {
                        #(#arms)*
                        #phantom_arm
                    }
                }

                #[allow(unused_variables)]
                async fn on_restart(
                    &mut self,
                    ctx: #krate::worker::WorkerContext,
                ) -> ::core::result::Result<(), Self::Error> {
                    #restart_body
                }
            }
        }
    }

    fn actor_impl(&self) -> TokenStream {
        let Parts {
            krate,
            private,
            self_ty,
            ..
        } = self;
        let (impl_generics, _, where_clause) = self.generics.split_for_impl();
        let span = self_ty.span();
        // Spanned at the type, so that a missing `Clone` is reported there, with its fix.
        let fresh = quote_spanned!(span=> <Self as #private::ActorPrototype>::fresh(self));
        let start_alone = quote!(#private::start_alone(#fresh).await);
        // ractor's `Actor` is an `#[async_trait]` trait when its `async-trait` feature is on; the
        // crate's feature of the same name turns this one on with it.
        let async_trait = if cfg!(feature = "async-trait") {
            quote!(#[#private::ractor::async_trait])
        } else {
            quote!()
        };
        quote! {
            #async_trait
            impl #impl_generics #private::ractor::Actor for #self_ty #where_clause {
                type Msg = #krate::worker::Call<Self>;
                type State = Self;
                type Arguments = ();

                async fn pre_start(
                    &self,
                    _myself: #private::ractor::ActorRef<Self::Msg>,
                    _args: (),
                ) -> ::core::result::Result<Self, #private::ractor::ActorProcessingErr> {
                    #start_alone
                }

                async fn handle(
                    &self,
                    _myself: #private::ractor::ActorRef<Self::Msg>,
                    message: Self::Msg,
                    state: &mut Self,
                ) -> ::core::result::Result<(), #private::ractor::ActorProcessingErr> {
                    message.run(state).await
                }
            }
        }
    }

    fn client(&self) -> TokenStream {
        let Parts {
            krate,
            private,
            name,
            self_ty,
            ..
        } = self;
        let client = format_ident!("{}Client", name);
        let (task, output, error) = (&self.task, &self.output, &self.error);
        let params = &self.generics.params;
        let mut where_clause =
            self.generics
                .where_clause
                .clone()
                .unwrap_or_else(|| syn::WhereClause {
                    where_token: Default::default(),
                    predicates: Default::default(),
                });
        where_clause.predicates.push(syn::parse_quote!(
            __C: #krate::worker::WorkerHandle<Worker = #self_ty>
        ));
        let name_str = name.to_string();
        let methods = self.methods.iter().map(|m| {
            let Method {
                ident,
                variant,
                arg_names,
                arg_types,
                docs,
                vis,
                ..
            } = m;
            let method_str = ident.unraw_string();
            let ok = m.returns.ok_type();
            let (err, map_failed) = match &m.returns {
                Returns::Fallible { err, .. } => (
                    err.clone(),
                    quote! {
                        |e| match e {
                            #error::#variant(e) => e,
                            #[allow(unreachable_patterns)]
                            _ => #private::mismatched_reply(#name_str, #method_str),
                        }
                    },
                ),
                _ => (
                    quote!(::core::convert::Infallible),
                    quote! {
                        |_| -> ::core::convert::Infallible {
                            #private::mismatched_reply(#name_str, #method_str)
                        }
                    },
                ),
            };
            let build = quote!(#task::#variant { #(#arg_names),* });
            let call = quote! {
                #(#docs)*
                #vis async fn #ident(&self, #(#arg_names: #arg_types),*)
                    -> ::core::result::Result<#ok, #krate::worker::TaskError<#err>>
                {
                    match #krate::worker::WorkerHandle::submit_task(&self.0, #build).await {
                        ::core::result::Result::Ok(#output::#variant(v)) => ::core::result::Result::Ok(v),
                        #[allow(unreachable_patterns)]
                        ::core::result::Result::Ok(_) => #private::mismatched_reply(#name_str, #method_str),
                        ::core::result::Result::Err(e) => ::core::result::Result::Err(e.map_failed(#map_failed)),
                    }
                }
            };
            let cast = {
                let cast_ident = m.cast_ident();
                let doc = format!(
                    "Fire and forget: hands `{method_str}` over without waiting for it to run; \
                     its output is dropped (an error it returns is counted by a pool, logged by \
                     a single actor)."
                );
                quote! {
                    #[doc = #doc]
                    #vis async fn #cast_ident(&self, #(#arg_names: #arg_types),*)
                        -> ::core::result::Result<(), #krate::worker::TaskError<#err>>
                    {
                        match #krate::worker::WorkerHandle::cast_task(&self.0, #build).await {
                            ::core::result::Result::Ok(()) => ::core::result::Result::Ok(()),
                            ::core::result::Result::Err(e) => ::core::result::Result::Err(e.map_failed(#map_failed)),
                        }
                    }
                }
            };
            let cfgs = &m.cfgs;
            let cast = quote!(#(#cfgs)* #cast);
            quote!(#(#cfgs)* #call #cast)
        });
        let client_doc = format!(
            "A typed client of [`{name}`]: its methods, called through a pool \
             (`{client}(pool_ref)`) or a single actor (`{client}(actor_ref)`), answer \
             `Result<_, TaskError<_>>`. Derefs to the handle inside, so the pool's own methods \
             stay reachable (`client.0.stats()` where a method shadows one)."
        );
        quote! {
            #[doc = #client_doc]
            #[derive(Clone, Debug)]
            pub struct #client<__C>(pub __C);

            impl<__C> ::core::ops::Deref for #client<__C> {
                type Target = __C;
                fn deref(&self) -> &__C {
                    &self.0
                }
            }

            impl<__C> ::core::convert::From<__C> for #client<__C> {
                fn from(handle: __C) -> Self {
                    #client(handle)
                }
            }

            #[allow(dead_code, unreachable_code, clippy::needless_lifetimes)]
            impl<__C, #params> #client<__C> #where_clause {
                /// The same client with these options (priority, timeout, routing key) on every
                /// call made through it: `client.with(TaskOptions::new().timeout(d)).method(..)`.
                pub fn with(
                    &self,
                    options: #krate::pool::TaskOptions,
                ) -> #client<#krate::worker::WithOptions<__C>> {
                    #client(#krate::worker::WithOptions::new(
                        ::core::clone::Clone::clone(&self.0),
                        options,
                    ))
                }

                #(#methods)*
            }
        }
    }
}
