//! What a job is: a serializable command with a stable name ([`Job`]), the options it is
//! enqueued with ([`JobOptions`]), and the type-erased row a store writes ([`NewJob`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::jobs::JobsError;
use crate::supervisor::Backoff;

/// A job: a self-contained command, stored as JSON under a stable name.
///
/// `NAME` is what the store records and what a runner looks its handler up by: keep it stable
/// across releases. When the payload's shape changes, raise `VERSION` and teach
/// [`decode`](Job::decode) to read the older versions: jobs written by release N are run by
/// release N+1 after a restart.
///
/// ```
/// use ractor_otp::jobs::Job;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendInvoice {
///     customer: u64,
/// }
///
/// impl Job for SendInvoice {
///     const NAME: &'static str = "send_invoice";
///     type Output = String; // e.g. the provider's message id
/// }
/// ```
///
/// Or derive it: `#[derive(Job)]` with `#[job(name = "send_invoice", output = String)]` writes
/// the same impl (and takes `version = N` and `decode = path`; see [`derive@crate::jobs::Job`]).
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// The stable type name stored with every job of this type.
    const NAME: &'static str;
    /// The payload's schema version, stored with every job (default 1).
    const VERSION: u32 = 1;
    /// What a successful run produces; stored with the job and handed to a fan-in collector.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Reads a payload written with schema `version`. The default reads the current shape
    /// whatever the version; override it to upgrade payloads of older versions.
    fn decode(version: u32, payload: serde_json::Value) -> Result<Self, serde_json::Error> {
        let _ = version;
        serde_json::from_value(payload)
    }
}

/// A job's id in its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job#{}", self.0)
    }
}

/// A UTC instant with millisecond precision, as stores keep it (milliseconds since the Unix
/// epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `d` (saturating).
    pub fn after(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// How long after `earlier` this instant is (zero if it is not later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => {
                Timestamp(-i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX))
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        if t.0 >= 0 {
            UNIX_EPOCH + Duration::from_millis(t.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_millis(t.0.unsigned_abs())
        }
    }
}

/// Retry delays of a failed job: `base`, `base·factor`, `base·factor²`, … capped at `max`
/// (the supervisor's [`Backoff`] arithmetic, without jitter so a store computes the same
/// instant every time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBackoff {
    /// The delay after the first failed attempt.
    pub base: Duration,
    /// The growth factor (≥ 1).
    pub factor: f64,
    /// The largest delay.
    pub max: Duration,
}

impl RetryBackoff {
    /// `base`, doubling, capped at `max`.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        RetryBackoff {
            base,
            factor: 2.0,
            max,
        }
    }

    /// The same delay after every failure.
    pub fn fixed(delay: Duration) -> Self {
        RetryBackoff {
            base: delay,
            factor: 1.0,
            max: delay,
        }
    }

    /// The delay before the attempt after failed attempt number `failed_attempt` (1-based).
    pub fn delay_after(&self, failed_attempt: u32) -> Duration {
        Backoff::exponential(self.base, self.max)
            .factor(self.factor)
            .delay_for(failed_attempt.saturating_sub(1))
    }

    fn validate(&self) -> Result<(), String> {
        Backoff::exponential(self.base, self.max)
            .factor(self.factor)
            .validate()
    }
}

impl Default for RetryBackoff {
    /// 1 s, doubling, at most 1 h.
    fn default() -> Self {
        RetryBackoff::exponential(Duration::from_secs(1), Duration::from_secs(3600))
    }
}

/// An exclusive resource a job holds while it runs: at most `capacity` jobs naming `key`
/// execute at once, across every process sharing the store. A holder that dies frees its
/// place when its lease expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource's name.
    pub key: String,
    /// How many jobs may hold it at once (≥ 1).
    pub capacity: u32,
}

/// How a job is enqueued: queue, priority, schedule, retries, timeout, resource, idempotency.
///
/// ```
/// use std::time::Duration;
/// use ractor_otp::jobs::JobOptions;
///
/// let options = JobOptions::new()
///     .queue("reports")
///     .priority(10)
///     .max_attempts(5)
///     .timeout(Duration::from_secs(30))
///     .resource("printer", 1)
///     .idempotency_key("report-2026-11");
/// assert_eq!(options.queue_name(), "reports");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JobOptions {
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) not_before: Option<Timestamp>,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: RetryBackoff,
    pub(crate) timeout: Option<Duration>,
    pub(crate) resource: Option<Resource>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) unique_for: Option<Duration>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            queue: "default".to_owned(),
            priority: 0,
            not_before: None,
            max_attempts: 10,
            backoff: RetryBackoff::default(),
            timeout: None,
            resource: None,
            idempotency_key: None,
            unique_for: None,
        }
    }
}

impl JobOptions {
    /// Queue `"default"`, priority 0, runnable now, 10 attempts, [`RetryBackoff::default`], the
    /// runner's timeout, no resource, no idempotency key.
    pub fn new() -> Self {
        Self::default()
    }

    /// The queue the job goes to; runners claim from the queues they are given.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// The queue name.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// Higher runs first among jobs that are due (default 0; negative allowed).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Never start before this UTC instant.
    pub fn not_before(mut self, at: impl Into<Timestamp>) -> Self {
        self.not_before = Some(at.into());
        self
    }

    /// How many attempts in all (≥ 1) before the job is discarded to the dead letter state.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The delays between attempts.
    pub fn backoff(mut self, backoff: RetryBackoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long one attempt may run; past it the attempt fails with a timeout (the runner's
    /// default applies when unset).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Holds `key` while running; at most `capacity` jobs naming it run at once.
    pub fn resource(mut self, key: impl Into<String>, capacity: u32) -> Self {
        self.resource = Some(Resource {
            key: key.into(),
            capacity,
        });
        self
    }

    /// Enqueueing again with the same key returns the first job instead of adding one. A key
    /// is kept in a table of its own, apart from the job: forever, or for
    /// [`unique_for`](JobOptions::unique_for); pruning or deleting the job does not forget it
    /// (a duplicate then returns the id of a job no longer stored).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The idempotency key holds for this long after the enqueue, then a job with the same
    /// key is a new job ("unique for a period", as Oban's `unique: [period: …]`). Needs an
    /// idempotency key.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ractor_otp::jobs::JobOptions;
    ///
    /// // At most one digest per user per hour, however often it is asked for.
    /// let options = JobOptions::new()
    ///     .idempotency_key("digest:user-42")
    ///     .unique_for(Duration::from_secs(3600));
    /// # let _ = options;
    /// ```
    pub fn unique_for(mut self, period: Duration) -> Self {
        self.unique_for = Some(period);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), JobsError> {
        let invalid = |reason: String| Err(JobsError::InvalidOptions(reason));
        if self.queue.is_empty() {
            return invalid("the queue name must not be empty".into());
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts must be at least 1".into());
        }
        if let Some(r) = &self.resource {
            if r.key.is_empty() {
                return invalid("a resource key must not be empty".into());
            }
            if r.capacity == 0 {
                return invalid(format!(
                    "resource `{}` has capacity 0; give it at least 1",
                    r.key
                ));
            }
        }
        if self.timeout == Some(Duration::ZERO) {
            return invalid("a timeout must be greater than zero".into());
        }
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() {
                return invalid("an idempotency key must not be empty".into());
            }
        }
        match (self.unique_for, &self.idempotency_key) {
            (Some(_), None) => {
                return invalid(
                    "unique_for needs an idempotency key: add `.idempotency_key(..)`".into(),
                )
            }
            (Some(period), Some(_)) if period.is_zero() => {
                return invalid("unique_for must be greater than zero".into())
            }
            _ => {}
        }
        self.backoff
            .validate()
            .or_else(|reason| invalid(format!("invalid retry backoff: {reason}")))
    }
}

/// A job as a store writes it: type name, schema version, JSON payload, options.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The job type's [`Job::NAME`].
    pub name: String,
    /// The payload's [`Job::VERSION`].
    pub version: u32,
    /// The payload, as JSON text.
    pub payload: String,
    /// How it is enqueued.
    pub options: JobOptions,
}

impl NewJob {
    /// Serializes `job` with `options`, checking the options.
    pub fn new<J: Job>(job: &J, options: JobOptions) -> Result<Self, JobsError> {
        options.validate()?;
        let payload = serde_json::to_string(job).map_err(|e| JobsError::Encode {
            name: J::NAME,
            reason: e.to_string(),
        })?;
        Ok(NewJob {
            name: J::NAME.to_owned(),
            version: J::VERSION,
            payload,
            options,
        })
    }
}
