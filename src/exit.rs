//! How a child's end is classified.
//!
//! ractor reports a child's end as a [`SupervisionEvent`]: `ActorFailed` for a panic or an `Err`
//! from a handler, `ActorTerminated` for everything else, with an optional reason string. OTP
//! decides restarts on three classes of exit; this module maps ractor's events onto them:
//!
//! | how the child ended | class |
//! |---|---|
//! | stopped with no reason, or with reason `"normal"` | [`ExitClass::Normal`] |
//! | reason `"shutdown"` or `"shutdown:..."`, drained (`"Drained"`), runtime shutting down | [`ExitClass::Shutdown`] |
//! | panicked, handler returned `Err`, **killed** (`"killed"`), any other reason | [`ExitClass::Abnormal`] |
//!
//! ractor reports a kill as a *termination* with reason `"killed"`; we class it as abnormal,
//! as OTP does, so a killed transient child is restarted.
//!
//! ractor reports a handler that panicked and one that returned `Err` the same way
//! (`ActorFailed` with the text of the panic or the error), so an [`ExitReason`] cannot tell
//! the two apart: both are abnormal, with that text as the detail, which says "failed" rather
//! than guessing "panicked".

use ractor::{ActorId, SupervisionEvent};
use serde::{Deserialize, Serialize};

/// The reason string ractor-otp sends when it stops a child on purpose
/// (shutdown, API stop, bystander of a sibling's restart).
pub const SHUTDOWN_REASON: &str = "shutdown";

/// The three exit classes OTP's restart decision works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExitClass {
    /// The child finished its work: stopped without a reason or with reason `"normal"`.
    Normal,
    /// The child was asked to shut down: reason `"shutdown"`, `"shutdown:..."`, drained, or the
    /// runtime is going away.
    Shutdown,
    /// The child failed: it panicked, a handler returned `Err`, it was killed, or it stopped
    /// with any other reason.
    Abnormal,
}

/// A classified exit: the class plus the detail ractor gave (the stop reason or the error text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitReason {
    /// What the supervisor's restart decision looks at.
    pub class: ExitClass,
    /// The stop reason or error text, for logs and events.
    pub detail: Option<String>,
}

impl ExitReason {
    /// Classifies the reason string of an `ActorTerminated` event.
    ///
    /// ```
    /// use ractor_otp::exit::{ExitClass, ExitReason};
    /// assert_eq!(ExitReason::from_stop_reason(None).class, ExitClass::Normal);
    /// assert_eq!(ExitReason::from_stop_reason(Some("shutdown:drain")).class, ExitClass::Shutdown);
    /// assert_eq!(ExitReason::from_stop_reason(Some("killed")).class, ExitClass::Abnormal);
    /// ```
    pub fn from_stop_reason(reason: Option<&str>) -> Self {
        let class = match reason {
            None | Some("normal") => ExitClass::Normal,
            Some(r)
                if r == SHUTDOWN_REASON
                    || r.starts_with("shutdown:")
                    || r == "Drained"
                    || r == "actor_task_cancelled" =>
            {
                ExitClass::Shutdown
            }
            Some(_) => ExitClass::Abnormal,
        };
        ExitReason {
            class,
            detail: reason.map(str::to_owned),
        }
    }

    /// An abnormal exit with the given detail (a panic, an `Err`, a failed start).
    pub fn abnormal(detail: impl Into<String>) -> Self {
        ExitReason {
            class: ExitClass::Abnormal,
            detail: Some(detail.into()),
        }
    }

    /// Classifies a supervision event; `None` for events that are not an actor's end
    /// (`ActorStarted`, process-group changes, cluster events).
    pub fn from_event(event: &SupervisionEvent) -> Option<(ActorId, ExitReason)> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => Some((
                cell.get_id(),
                ExitReason::from_stop_reason(reason.as_deref()),
            )),
            SupervisionEvent::ActorFailed(cell, err) => {
                Some((cell.get_id(), ExitReason::abnormal(err.to_string())))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = match self.class {
            ExitClass::Normal => "normal",
            ExitClass::Shutdown => "shutdown",
            ExitClass::Abnormal => "abnormal",
        };
        match &self.detail {
            Some(d) => write!(f, "{class} ({d})"),
            None => f.write_str(class),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_are_classified_as_otp_does() {
        let c = |r: Option<&str>| ExitReason::from_stop_reason(r).class;
        assert_eq!(c(None), ExitClass::Normal);
        assert_eq!(c(Some("normal")), ExitClass::Normal);
        assert_eq!(c(Some("shutdown")), ExitClass::Shutdown);
        assert_eq!(c(Some("shutdown:maintenance")), ExitClass::Shutdown);
        assert_eq!(c(Some("Drained")), ExitClass::Shutdown);
        assert_eq!(c(Some("actor_task_cancelled")), ExitClass::Shutdown);
        assert_eq!(c(Some("killed")), ExitClass::Abnormal);
        assert_eq!(c(Some("shutdownx")), ExitClass::Abnormal);
        assert_eq!(c(Some("bored")), ExitClass::Abnormal);
    }
}
