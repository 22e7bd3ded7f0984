//! The live web observer (feature `observer`): an axum [`Router`] you mount in your own app,
//! behind your own authentication, showing the supervision tree, pools, runners and jobs as
//! they run.
//!
//! * **Views** (one page, its assets embedded, no CDN, works offline): the tree (state,
//!   incarnation, restarts, intensity budget; a restart flashes), pools (load per worker),
//!   job runners, jobs (counts by state, a filtered list, a job's attempts and errors, retry
//!   and cancel), schedules (last slot, fired, missed).
//! * **Live**: the page listens to `GET /api/events`, server-sent events from one sampler
//!   (every [`Observer::sample_every`], 1 s by default) that runs only while someone listens;
//!   the page stops listening while its tab is hidden. Every sample (the page's own, the
//!   stream's, `/api/snapshot`'s) carries `seq`, the order in which the router began taking
//!   it: the page never replaces what it shows with a sample begun before it (a new listener
//!   first hears the sampler's latest sample, which may be older than the page).
//! * **Access**: a resolver you give ([`Observer::access`]) decides per request:
//!   [`Access::ReadOnly`] (the default), [`Access::Full`] (actions allowed) or
//!   [`Access::Forbidden`] (403). Actions are `POST` only and refused unless the request
//!   comes from the observer's own origin (`Origin` matching `Host`): a page elsewhere cannot
//!   make a browser act. Queries are bounded (at most 200 jobs a page). Job arguments can be
//!   redacted ([`Observer::redact`]).
//!
//! ```no_run
//! use ractor_otp::jobs::{Jobs, SqliteStore};
//! use ractor_otp::observe::web::{Access, Observer};
//! use ractor_otp::prelude::*;
//!
//! # async fn run(app: SupervisorRef, jobs: Jobs) -> std::io::Result<()> {
//! let observer = Observer::new()
//!     .supervisor(app)
//!     .jobs(jobs)
//!     // e.g. what your auth layer put in the request's extensions
//!     .access(|parts| match parts.headers.get("x-role").and_then(|v| v.to_str().ok()) {
//!         Some("admin") => Access::Full,
//!         Some(_) => Access::ReadOnly,
//!         None => Access::Forbidden,
//!     });
//! // Mount it: `your_router.nest("/observer", observer.router())`, or for a quick look:
//! observer.serve_local(9800).await // http://127.0.0.1:9800/
//! # }
//! ```

mod json;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use tokio::sync::watch;

use crate::jobs::{JobId, JobState, Jobs, ListFilter};
use crate::supervisor::SupervisorRef;

/// What a request may do, as the resolver ([`Observer::access`]) decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Look, no actions (the default).
    ReadOnly,
    /// Look, and retry or cancel jobs.
    Full,
    /// Nothing: every request is answered 403.
    Forbidden,
}

type Resolver = dyn Fn(&Parts) -> Access + Send + Sync;
/// Rewrites a job's arguments for display: `(job type, payload JSON) -> shown text`.
pub(crate) type Redactor = dyn Fn(&str, &str) -> String + Send + Sync;

/// The most jobs one list request returns.
pub const MAX_PAGE: u32 = 200;

/// Builds the observer: what it shows, who may do what.
#[derive(Clone)]
pub struct Observer {
    root: Option<SupervisorRef>,
    jobs: Option<Jobs>,
    access: Arc<Resolver>,
    redact: Option<Arc<Redactor>>,
    every: Duration,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("supervisor", &self.root.is_some())
            .field("jobs", &self.jobs.is_some())
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Default for Observer {
    fn default() -> Self {
        Self::new()
    }
}

impl Observer {
    /// An observer showing nothing yet, read-only for everyone, sampling every second.
    pub fn new() -> Self {
        Observer {
            root: None,
            jobs: None,
            access: Arc::new(|_| Access::ReadOnly),
            redact: None,
            every: Duration::from_secs(1),
        }
    }

    /// Shows the tree under `root` (its pools and runners included).
    pub fn supervisor(mut self, root: SupervisorRef) -> Self {
        self.root = Some(root);
        self
    }

    /// Shows the jobs and schedules of `jobs`' store, and (with [`Access::Full`]) lets
    /// them be retried and cancelled.
    pub fn jobs(mut self, jobs: Jobs) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Decides each request's [`Access`] from its head (headers, and the extensions your own
    /// authentication layer set).
    pub fn access(mut self, resolve: impl Fn(&Parts) -> Access + Send + Sync + 'static) -> Self {
        self.access = Arc::new(resolve);
        self
    }

    /// Rewrites what a job's arguments show as: `redact(job type, payload JSON)`.
    pub fn redact(mut self, redact: impl Fn(&str, &str) -> String + Send + Sync + 'static) -> Self {
        self.redact = Some(Arc::new(redact));
        self
    }

    /// How often the live view is sampled (default 1 s; at least 100 ms).
    pub fn sample_every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(100));
        self
    }

    /// The router: mount it where you like (`app.nest("/observer", observer.router())`).
    pub fn router(self) -> Router {
        let state = Arc::new(App {
            observer: self,
            live: watch::Sender::new(Arc::from("")),
            sampling: AtomicBool::new(false),
            begun: AtomicU64::new(0),
        });
        Router::new()
            .route("/", get(page))
            .route("/api/snapshot", get(snapshot))
            .route("/api/events", get(events))
            .route("/api/jobs", get(list_jobs))
            .route("/api/jobs/{id}", get(one_job))
            .route("/api/jobs/{id}/retry", post(retry_job))
            .route("/api/jobs/{id}/cancel", post(cancel_job))
            .route("/api/schedules", get(schedules))
            .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state)
    }

    /// Serves the observer on `addr` until the process ends (for examples and tools; in an
    /// application, mount [`router`](Observer::router) behind your own auth instead).
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, self.router()).await
    }

    /// Serves the observer on `127.0.0.1:port`: loopback only.
    pub async fn serve_local(self, port: u16) -> std::io::Result<()> {
        self.serve(SocketAddr::from(([127, 0, 0, 1], port))).await
    }
}

struct App {
    observer: Observer,
    /// The latest sample (JSON), for the live streams.
    live: watch::Sender<Arc<str>>,
    /// The sampler runs (only while someone listens).
    sampling: AtomicBool,
    /// How many samples have been begun: the next sample's `seq`.
    begun: AtomicU64,
}

type Shared = State<Arc<App>>;

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, Json(serde_json::json!({ "error": why }))).into_response()
}

/// Decides the request's access, refuses forbidden ones, and refuses actions that are not
/// `POST`s from the observer's own origin by someone with full access.
async fn guard(State(app): Shared, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let access = (app.observer.access)(&parts);
    if access == Access::Forbidden {
        return refuse(StatusCode::FORBIDDEN, "forbidden");
    }
    if parts.method == Method::POST {
        if access != Access::Full {
            return refuse(
                StatusCode::FORBIDDEN,
                "read-only access: actions need full access",
            );
        }
        if !same_origin(&parts.headers) {
            return refuse(
                StatusCode::FORBIDDEN,
                "an action must come from the observer's own page (Origin must match Host)",
            );
        }
    }
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(access);
    next.run(request).await
}

/// Whether the request's `Origin` names the host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(host)) = (text(header::ORIGIN), text(header::HOST)) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    authority.eq_ignore_ascii_case(host)
}

/// The page, with the current sample in it (so it shows the tree at once, before its event
/// stream's first sample arrives).
async fn page(State(app): Shared, Extension(access): Extension<Access>) -> Response {
    // `</` cannot end the script element it sits in.
    let initial = sample(&app).await.to_string().replace("</", "<\\/");
    let page = include_str!("index.html")
        .replace(
            "__ACCESS__",
            if access == Access::Full {
                "full"
            } else {
                "read-only"
            },
        )
        .replace("__INITIAL__", &initial);
    ([(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

/// One sample: the tree and the job counts and schedules, as JSON, numbered (`seq`) in the
/// order this router began them.
async fn sample(app: &App) -> serde_json::Value {
    let seq = app.begun.fetch_add(1, Ordering::Relaxed);
    let observer = &app.observer;
    let tree = match &observer.root {
        Some(root) => match root.tree().await {
            Ok(tree) => json::tree(&tree),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        },
        None => serde_json::Value::Null,
    };
    let jobs = match &observer.jobs {
        Some(jobs) => {
            let counts = match jobs.counts().await {
                Ok(counts) => json::counts(&counts),
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            };
            let schedules = match jobs.schedules().await {
                Ok(list) => serde_json::Value::Array(list.iter().map(json::schedule).collect()),
                Err(_) => serde_json::Value::Array(Vec::new()),
            };
            serde_json::json!({ "counts": counts, "schedules": schedules })
        }
        None => serde_json::Value::Null,
    };
    serde_json::json!({
        "seq": seq,
        "at": crate::jobs::Timestamp::from(std::time::SystemTime::now()).as_millis(),
        "tree": tree,
        "jobs": jobs,
    })
}

async fn snapshot(State(app): Shared) -> Response {
    Json(sample(&app).await).into_response()
}

/// Server-sent events: a `sample` event every sampling period (the same JSON as
/// `/api/snapshot`), from the one sampler all listeners share.
async fn events(State(app): Shared) -> Response {
    let mut rx = app.live.subscribe();
    rx.mark_changed();
    if !app.sampling.swap(true, Ordering::AcqRel) {
        tokio::spawn(keep_sampling(app.clone()));
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            let data = rx.borrow_and_update().clone();
            // Empty: no sample taken yet.
            if !data.is_empty() {
                let event = Event::default().event("sample").data(&*data);
                return Some((Ok::<_, std::convert::Infallible>(event), rx));
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Samples every period while anyone listens, then stops.
async fn keep_sampling(app: Arc<App>) {
    loop {
        let value = sample(&app).await;
        app.live.send_replace(Arc::from(value.to_string()));
        tokio::time::sleep(app.observer.every).await;
        if app.live.receiver_count() == 0 {
            app.sampling.store(false, Ordering::Release);
            // One may have come in since the count was read.
            if app.live.receiver_count() == 0 || app.sampling.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

fn no_jobs() -> Response {
    refuse(StatusCode::NOT_FOUND, "this observer shows no jobs")
}

#[derive(Debug, Deserialize)]
struct JobQuery {
    state: Option<String>,
    name: Option<String>,
    queue: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

async fn list_jobs(State(app): Shared, Query(q): Query<JobQuery>) -> Response {
    let Some(jobs) = &app.observer.jobs else {
        return no_jobs();
    };
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match JobState::parse(s) {
            Some(state) => Some(state),
            None => return refuse(StatusCode::BAD_REQUEST, &format!("no job state `{s}`")),
        },
    };
    let filter = ListFilter {
        state,
        name: q.name.filter(|s| !s.is_empty()),
        queue: q.queue.filter(|s| !s.is_empty()),
        after: q.after.map(JobId),
        limit: Some(q.limit.unwrap_or(50).clamp(1, MAX_PAGE)),
    };
    match jobs.list(filter).await {
        Ok(list) => {
            let redact = app.observer.redact.as_deref();
            let list: Vec<_> = list.iter().map(|j| json::job(j, redact, false)).collect();
            Json(serde_json::json!({ "jobs": list })).into_response()
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn one_job(State(app): Shared, Path(id): Path<i64>) -> Response {
    let Some(jobs) = &app.observer.jobs else {
        return no_jobs();
    };
    match jobs.get(JobId(id)).await {
        Ok(Some(job)) => {
            Json(json::job(&job, app.observer.redact.as_deref(), true)).into_response()
        }
        Ok(None) => refuse(StatusCode::NOT_FOUND, &format!("no job {id}")),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn act(app: &App, id: i64, retry: bool) -> Response {
    let Some(jobs) = &app.observer.jobs else {
        return no_jobs();
    };
    let done = if retry {
        jobs.retry(JobId(id)).await
    } else {
        jobs.cancel(JobId(id)).await
    };
    match done {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(crate::jobs::JobsError::Store(crate::jobs::StoreError::NotFound(_))) => {
            refuse(StatusCode::NOT_FOUND, &format!("no job {id}"))
        }
        Err(crate::jobs::JobsError::Store(e @ crate::jobs::StoreError::InvalidState { .. })) => {
            refuse(StatusCode::CONFLICT, &e.to_string())
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn retry_job(State(app): Shared, Path(id): Path<i64>) -> Response {
    act(&app, id, true).await
}

async fn cancel_job(State(app): Shared, Path(id): Path<i64>) -> Response {
    act(&app, id, false).await
}

async fn schedules(State(app): Shared) -> Response {
    let Some(jobs) = &app.observer.jobs else {
        return no_jobs();
    };
    match jobs.schedules().await {
        Ok(list) => Json(serde_json::json!({
            "schedules": list.iter().map(json::schedule).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_needs_an_origin_naming_the_host() {
        let ok = headers(&[
            ("origin", "http://127.0.0.1:9800"),
            ("host", "127.0.0.1:9800"),
        ]);
        assert!(same_origin(&ok));
        let tls = headers(&[
            ("origin", "https://ops.example.com"),
            ("host", "ops.example.com"),
        ]);
        assert!(same_origin(&tls));
        let elsewhere = headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:9800"),
        ]);
        assert!(!same_origin(&elsewhere));
        let port = headers(&[
            ("origin", "http://127.0.0.1:1234"),
            ("host", "127.0.0.1:9800"),
        ]);
        assert!(!same_origin(&port));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:9800")])));
        let null = headers(&[("origin", "null"), ("host", "127.0.0.1:9800")]);
        assert!(!same_origin(&null));
    }
}
