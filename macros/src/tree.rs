//! `supervisor!`: a supervision tree written as the tree, expanded into the builder calls one
//! would write by hand.
//!
//! ```text
//! supervisor! {
//!     strategy: one_for_all,            // one_for_one | one_for_all | rest_for_one | <expr>
//!     intensity: 3,                     // <expr: u32>
//!     period: 5s,                       // 500ms | 5s | 2m | <expr: Duration>
//!     auto_shutdown: any_significant,   // never | any_significant | all_significant | <expr>
//!     label: "storage",                 // <expr: Into<String>>
//!     name: "storage_sup",              // registry name, <expr: Into<String>>
//!     children: [
//!         <id> => actor(<actor>, <args>) { <option>, .. },
//!         <id> => start(<fn(ChildContext) -> Future>) { .. },
//!         <id> => <expr: IntoChildSpec> { .. },   // supervisor! { .. }, Pool::builder(..), ..
//!     ],
//! }
//! option: restart: permanent | transient | temporary | <expr>
//!         shutdown: brutal_kill | infinity | <duration>
//!         significant | significant: <expr: bool>
//!         backoff: <expr: Backoff>
//!         name: <expr: Into<String>>
//! ```
//!
//! Every key appears once; child ids written as string literals are checked for duplicates,
//! and a `significant` child against its restart type and the tree's `auto_shutdown`, at
//! compile time (the same rules `validate` applies at run time).

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{braced, bracketed, parenthesized, Expr, Ident, Token};

use crate::crate_path::crate_path;
use crate::naming::camel_case;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let krate = crate_path(None);
    match syn::parse2::<Tree>(input).and_then(|tree| tree.check().map(|()| tree)) {
        Ok(tree) => tree.expand(&krate),
        // Every error, then a value of the right type, so that nothing else is reported.
        Err(e) => {
            let errors = e.to_compile_error();
            quote!({ #errors #krate::supervisor::Supervisor::builder() })
        }
    }
}

/// A value that is either one of a few keywords or any expression.
enum Choice {
    Keyword(Ident),
    Expr(Expr),
}

impl Choice {
    /// A lone identifier followed by `,`, `}` or the end is a keyword (checked against
    /// `allowed`); anything else is an expression.
    fn parse(input: ParseStream, what: &str, allowed: &[&str]) -> syn::Result<Choice> {
        let fork = input.fork();
        if let Ok(ident) = fork.parse::<Ident>() {
            if fork.is_empty() || fork.peek(Token![,]) {
                input.parse::<Ident>()?;
                if !allowed.iter().any(|a| ident == a || ident == camel_case(a)) {
                    return Err(syn::Error::new(
                        ident.span(),
                        format!(
                            "unknown {what} `{ident}`: expected {} (or an expression, e.g. a path)",
                            one_of(allowed)
                        ),
                    ));
                }
                return Ok(Choice::Keyword(ident));
            }
        }
        Ok(Choice::Expr(input.parse()?))
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self, Choice::Keyword(k) if k == word)
    }

    /// The keyword as `#krate::supervisor::<ty>::<Variant>`, or the expression as written.
    fn to_value(&self, krate: &TokenStream, ty: &str) -> TokenStream {
        match self {
            Choice::Keyword(k) => {
                let ty = Ident::new(ty, Span::call_site());
                let variant = Ident::new(&camel_case(&k.to_string()), k.span());
                quote_spanned!(k.span()=> #krate::supervisor::#ty::#variant)
            }
            Choice::Expr(e) => e.to_token_stream(),
        }
    }
}

fn one_of(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// A duration: `500ms`, `5s`, `2m`, `1.5s`, or a `Duration` expression.
enum Duration {
    Millis(u64, Span),
    Expr(Expr),
}

impl Parse for Duration {
    fn parse(input: ParseStream) -> syn::Result<Duration> {
        let lit = if input.peek(syn::LitInt) {
            let lit: syn::LitInt = input.parse()?;
            let value: f64 = lit.base10_parse::<u64>()? as f64;
            Some((value, lit.suffix().to_string(), lit.span()))
        } else if input.peek(syn::LitFloat) {
            let lit: syn::LitFloat = input.parse()?;
            let value: f64 = lit.base10_parse()?;
            Some((value, lit.suffix().to_string(), lit.span()))
        } else {
            None
        };
        let Some((value, unit, span)) = lit else {
            return Ok(Duration::Expr(input.parse()?));
        };
        let scale = match unit.as_str() {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "" => {
                return Err(syn::Error::new(
                    span,
                    "a duration needs a unit: `500ms`, `5s`, `2m`, or a `Duration` expression",
                ))
            }
            other => {
                return Err(syn::Error::new(
                    span,
                    format!(
                        "unknown duration unit `{other}`: write `ms`, `s` or `m`, \
                         or a `Duration` expression"
                    ),
                ))
            }
        };
        let millis = value * scale;
        if millis.fract() != 0.0 || millis > u64::MAX as f64 {
            return Err(syn::Error::new(
                span,
                "a duration literal must be a whole number of milliseconds",
            ));
        }
        Ok(Duration::Millis(millis as u64, span))
    }
}

impl Duration {
    fn is_zero(&self) -> Option<Span> {
        match self {
            Duration::Millis(0, span) => Some(*span),
            _ => None,
        }
    }

    fn to_value(&self) -> TokenStream {
        match self {
            Duration::Millis(ms, span) => {
                quote_spanned!(*span=> ::core::time::Duration::from_millis(#ms))
            }
            Duration::Expr(e) => e.to_token_stream(),
        }
    }
}

/// `shutdown:` of a child.
enum ShutdownValue {
    BrutalKill(Span),
    Infinity(Span),
    After(Duration),
}

impl Parse for ShutdownValue {
    fn parse(input: ParseStream) -> syn::Result<ShutdownValue> {
        let fork = input.fork();
        if let Ok(ident) = fork.parse::<Ident>() {
            if fork.is_empty() || fork.peek(Token![,]) {
                input.parse::<Ident>()?;
                return match ident.to_string().as_str() {
                    "brutal_kill" => Ok(ShutdownValue::BrutalKill(ident.span())),
                    "infinity" => Ok(ShutdownValue::Infinity(ident.span())),
                    _ => Err(syn::Error::new(
                        ident.span(),
                        format!(
                            "unknown shutdown `{ident}`: expected `brutal_kill`, `infinity`, \
                             or a duration (`5s`, `500ms`, a `Duration` expression)"
                        ),
                    )),
                };
            }
        }
        Ok(ShutdownValue::After(input.parse()?))
    }
}

/// Keys seen so far, to report a repeated one.
#[derive(Default)]
struct Seen(BTreeMap<String, Span>);

impl Seen {
    fn insert(&mut self, key: &Ident) -> syn::Result<()> {
        if self.0.insert(key.to_string(), key.span()).is_some() {
            return Err(syn::Error::new(
                key.span(),
                format!("`{key}` is given twice"),
            ));
        }
        Ok(())
    }
}

/// The whole tree.
struct Tree {
    strategy: Option<Choice>,
    intensity: Option<Expr>,
    period: Option<Duration>,
    auto_shutdown: Option<Choice>,
    label: Option<Expr>,
    name: Option<Expr>,
    children: Vec<Child>,
}

const TREE_KEYS: &[&str] = &[
    "strategy",
    "intensity",
    "period",
    "auto_shutdown",
    "label",
    "name",
    "children",
];

impl Parse for Tree {
    fn parse(input: ParseStream) -> syn::Result<Tree> {
        let mut tree = Tree {
            strategy: None,
            intensity: None,
            period: None,
            auto_shutdown: None,
            label: None,
            name: None,
            children: Vec::new(),
        };
        let mut seen = Seen::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            seen.insert(&key)?;
            input.parse::<Token![:]>()?;
            match key.to_string().as_str() {
                "strategy" => {
                    tree.strategy = Some(Choice::parse(
                        input,
                        "strategy",
                        &["one_for_one", "one_for_all", "rest_for_one"],
                    )?)
                }
                "intensity" => tree.intensity = Some(input.parse()?),
                "period" => tree.period = Some(input.parse()?),
                "auto_shutdown" => {
                    tree.auto_shutdown = Some(Choice::parse(
                        input,
                        "auto_shutdown",
                        &["never", "any_significant", "all_significant"],
                    )?)
                }
                "label" => tree.label = Some(input.parse()?),
                "name" => tree.name = Some(input.parse()?),
                "children" => {
                    let content;
                    bracketed!(content in input);
                    let children = Punctuated::<Child, Token![,]>::parse_terminated(&content)?;
                    tree.children = children.into_iter().collect();
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown key `{key}`: expected {}", one_of(TREE_KEYS)),
                    ))
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(tree)
    }
}

/// How a child starts.
enum Form {
    /// `actor(actor, args)`: `ChildSpec::from_actor`.
    Actor(Expr, Expr),
    /// `start(f)`: `ChildSpec::new`.
    Start(Expr),
    /// Anything that implements `IntoChildSpec`.
    Spec(Expr),
}

/// One child: its id, how it starts, its options.
struct Child {
    id: Expr,
    form: Form,
    restart: Option<Choice>,
    shutdown: Option<ShutdownValue>,
    significant: Option<(Span, Option<Expr>)>,
    backoff: Option<Expr>,
    name: Option<Expr>,
}

const CHILD_KEYS: &[&str] = &["restart", "shutdown", "significant", "backoff", "name"];

impl Parse for Child {
    fn parse(input: ParseStream) -> syn::Result<Child> {
        let id: Expr = input.parse()?;
        input.parse::<Token![=>]>()?;
        let form = if input.peek(Ident) && input.peek2(syn::token::Paren) {
            let fork = input.fork();
            let head: Ident = fork.parse()?;
            if head == "actor" || head == "start" {
                input.parse::<Ident>()?;
                let content;
                let parens = parenthesized!(content in input);
                let args = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
                let mut args = args.into_iter();
                match (
                    head.to_string().as_str(),
                    args.next(),
                    args.next(),
                    args.next(),
                ) {
                    ("actor", Some(actor), Some(arguments), None) => Form::Actor(actor, arguments),
                    ("start", Some(start), None, None) => Form::Start(start),
                    ("actor", ..) => {
                        return Err(syn::Error::new(
                            parens.span.join(),
                            "`actor(..)` takes the actor and its arguments: `actor(MyActor, args)`",
                        ))
                    }
                    _ => {
                        return Err(syn::Error::new(
                            parens.span.join(),
                            "`start(..)` takes one start function: \
                             `start(|ctx: ChildContext| async move { .. })`",
                        ))
                    }
                }
            } else {
                Form::Spec(Expr::parse_without_eager_brace(input)?)
            }
        } else {
            Form::Spec(Expr::parse_without_eager_brace(input)?)
        };
        let mut child = Child {
            id,
            form,
            restart: None,
            shutdown: None,
            significant: None,
            backoff: None,
            name: None,
        };
        if input.peek(syn::token::Brace) {
            let content;
            braced!(content in input);
            let mut seen = Seen::default();
            while !content.is_empty() {
                let key: Ident = content.parse()?;
                seen.insert(&key)?;
                match key.to_string().as_str() {
                    "significant" => {
                        let value = if content.peek(Token![:]) {
                            content.parse::<Token![:]>()?;
                            Some(content.parse()?)
                        } else {
                            None
                        };
                        child.significant = Some((key.span(), value));
                    }
                    other => {
                        content.parse::<Token![:]>()?;
                        match other {
                            "restart" => {
                                child.restart = Some(Choice::parse(
                                    &content,
                                    "restart",
                                    &["permanent", "transient", "temporary"],
                                )?)
                            }
                            "shutdown" => child.shutdown = Some(content.parse()?),
                            "backoff" => child.backoff = Some(content.parse()?),
                            "name" => child.name = Some(content.parse()?),
                            _ => {
                                return Err(syn::Error::new(
                                    key.span(),
                                    format!(
                                        "unknown child option `{key}`: expected {}",
                                        one_of(CHILD_KEYS)
                                    ),
                                ))
                            }
                        }
                    }
                }
                if content.is_empty() {
                    break;
                }
                content.parse::<Token![,]>()?;
            }
        }
        Ok(child)
    }
}

impl Tree {
    /// What can be known at compile time: ids, `significant` rules, a zero period.
    fn check(&self) -> syn::Result<()> {
        let mut errors: Option<syn::Error> = None;
        let mut push = |span: Span, message: String| {
            let error = syn::Error::new(span, message);
            match &mut errors {
                Some(all) => all.combine(error),
                None => errors = Some(error),
            }
        };
        if let Some(span) = self.period.as_ref().and_then(Duration::is_zero) {
            push(span, "the period must not be zero".to_string());
        }
        let mut ids: BTreeMap<String, Span> = BTreeMap::new();
        for child in &self.children {
            if let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(id),
                ..
            }) = &child.id
            {
                if ids.insert(id.value(), id.span()).is_some() {
                    push(
                        id.span(),
                        format!(
                            "duplicate child id \"{}\": ids are unique within a supervisor",
                            id.value()
                        ),
                    );
                }
            }
            let Some((span, value)) = &child.significant else {
                continue;
            };
            let literally_false = matches!(
                value,
                Some(Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. })) if !b.value
            );
            if literally_false {
                continue;
            }
            let permanent = match &child.restart {
                None => true,
                Some(choice) => choice.is_keyword("permanent"),
            };
            if permanent {
                push(
                    *span,
                    "a significant child must be `restart: transient` or `restart: temporary` \
                     (a permanent child is always restarted, so it never ends the tree)"
                        .to_string(),
                );
            }
            let never = match &self.auto_shutdown {
                None => true,
                Some(choice) => choice.is_keyword("never"),
            };
            if never {
                push(
                    *span,
                    "a significant child needs `auto_shutdown: any_significant` or \
                     `auto_shutdown: all_significant` on its supervisor"
                        .to_string(),
                );
            }
        }
        match errors {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn expand(&self, krate: &TokenStream) -> TokenStream {
        let mut calls = TokenStream::new();
        if let Some(strategy) = &self.strategy {
            let value = strategy.to_value(krate, "Strategy");
            calls.extend(quote!(.strategy(#value)));
        }
        if let Some(intensity) = &self.intensity {
            calls.extend(quote!(.intensity(#intensity)));
        }
        if let Some(period) = &self.period {
            let value = period.to_value();
            calls.extend(quote!(.period(#value)));
        }
        if let Some(auto) = &self.auto_shutdown {
            let value = auto.to_value(krate, "AutoShutdown");
            calls.extend(quote!(.auto_shutdown(#value)));
        }
        if let Some(label) = &self.label {
            calls.extend(quote!(.label(#label)));
        }
        if let Some(name) = &self.name {
            calls.extend(quote!(.registered_name(#name)));
        }
        for child in &self.children {
            let spec = child.expand(krate);
            calls.extend(quote!(.child(#spec)));
        }
        quote!(#krate::supervisor::Supervisor::builder() #calls)
    }
}

impl Child {
    fn expand(&self, krate: &TokenStream) -> TokenStream {
        let id = &self.id;
        let mut spec = match &self.form {
            Form::Actor(actor, args) => {
                quote!(#krate::supervisor::ChildSpec::from_actor(#id, #actor, #args))
            }
            Form::Start(start) => quote!(#krate::supervisor::ChildSpec::new(#id, #start)),
            Form::Spec(expr) => {
                let span = expr.span();
                quote_spanned! {span=>
                    #krate::supervisor::IntoChildSpec::into_child_spec(
                        #expr,
                        #krate::supervisor::ChildId::from(#id),
                    )
                }
            }
        };
        if let Some(restart) = &self.restart {
            let value = restart.to_value(krate, "Restart");
            spec.extend(quote!(.restart(#value)));
        }
        if let Some(shutdown) = &self.shutdown {
            let value = match shutdown {
                ShutdownValue::BrutalKill(span) => {
                    quote_spanned!(*span=> #krate::supervisor::Shutdown::BrutalKill)
                }
                ShutdownValue::Infinity(span) => {
                    quote_spanned!(*span=> #krate::supervisor::Shutdown::Infinity)
                }
                ShutdownValue::After(d) => {
                    let d = d.to_value();
                    quote!(#krate::supervisor::Shutdown::Timeout(#d))
                }
            };
            spec.extend(quote!(.shutdown(#value)));
        }
        if let Some((_, value)) = &self.significant {
            let value = value
                .as_ref()
                .map(ToTokens::to_token_stream)
                .unwrap_or_else(|| quote!(true));
            spec.extend(quote!(.significant(#value)));
        }
        if let Some(backoff) = &self.backoff {
            spec.extend(quote!(.backoff(#backoff)));
        }
        if let Some(name) = &self.name {
            spec.extend(quote!(.registered_name(#name)));
        }
        spec
    }
}
