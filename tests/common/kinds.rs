//! A supervisor of either kind behind one interface, so a behaviour test runs against static
//! and dynamic supervisors alike (DESIGN §2a).

use std::time::Duration;

use ractor::ActorCell;
use ractor_otp::prelude::*;
use ractor_otp::supervisor::{ChildInfo, EventStream, SupervisorEvent};

use super::{bounded, next_matching, ProbeMsg, Probes};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Static,
    Dynamic,
}

pub const KINDS: [Kind; 2] = [Kind::Static, Kind::Dynamic];

/// The settings of the children under test and of their supervisor; the same settings go into
/// a static child spec or a dynamic template.
#[derive(Clone)]
pub struct Setup {
    pub restart: Restart,
    pub shutdown: Option<Shutdown>,
    pub backoff: Option<Backoff>,
    pub significant: bool,
    pub intensity: u32,
    pub period: Duration,
    pub auto_shutdown: AutoShutdown,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            restart: Restart::Permanent,
            shutdown: None,
            backoff: None,
            significant: false,
            intensity: 10,
            period: Duration::from_secs(5),
            auto_shutdown: AutoShutdown::Never,
        }
    }
}

/// A supervisor of either kind, holding probes named by `names` (a dynamic child's probe is
/// named by its argument; its id is `#1`, `#2`, ... in start order).
pub enum Sup {
    Static(SupervisorRef),
    Dynamic(DynamicSupervisorRef<String>),
}

pub struct Under {
    pub sup: Sup,
    pub names: Vec<String>,
    pub events: EventStream,
}

impl Under {
    pub async fn spawn(
        kind: Kind,
        probes: &Probes,
        setup: &Setup,
        names: &[&str],
        parent: Option<ActorCell>,
    ) -> Under {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        match kind {
            Kind::Static => {
                let mut builder = Supervisor::builder()
                    .intensity(setup.intensity)
                    .period(setup.period)
                    .auto_shutdown(setup.auto_shutdown);
                for name in &names {
                    let mut spec = probes
                        .spec(name)
                        .restart(setup.restart)
                        .significant(setup.significant);
                    if let Some(s) = setup.shutdown {
                        spec = spec.shutdown(s);
                    }
                    if let Some(b) = &setup.backoff {
                        spec = spec.backoff(b.clone());
                    }
                    builder = builder.child(spec);
                }
                let events = builder.subscribe();
                let sup = match parent {
                    Some(p) => bounded(builder.spawn_linked(p)).await,
                    None => bounded(builder.spawn()).await,
                }
                .expect("supervisor starts");
                Under {
                    sup: Sup::Static(sup),
                    names,
                    events,
                }
            }
            Kind::Dynamic => {
                let mut template = probes
                    .template()
                    .restart(setup.restart)
                    .significant(setup.significant);
                if let Some(s) = setup.shutdown {
                    template = template.shutdown(s);
                }
                if let Some(b) = &setup.backoff {
                    template = template.backoff(b.clone());
                }
                let mut builder = DynamicSupervisor::builder(template)
                    .intensity(setup.intensity)
                    .period(setup.period)
                    .auto_shutdown(setup.auto_shutdown);
                let events = builder.subscribe();
                let sup = match parent {
                    Some(p) => bounded(builder.spawn_linked(p)).await,
                    None => bounded(builder.spawn()).await,
                }
                .expect("supervisor starts");
                for name in &names {
                    bounded(sup.start_child(name.clone()))
                        .await
                        .expect("child starts");
                }
                Under {
                    sup: Sup::Dynamic(sup),
                    names,
                    events,
                }
            }
        }
    }

    /// The child id of the probe `name`.
    pub fn id(&self, name: &str) -> ChildId {
        match self.sup {
            Sup::Static(_) => ChildId::from(name),
            Sup::Dynamic(_) => {
                let i = self.names.iter().position(|n| n == name).expect("a name");
                ChildId::from(format!("#{}", i + 1))
            }
        }
    }

    pub async fn which(&self) -> Vec<ChildInfo> {
        match &self.sup {
            Sup::Static(s) => bounded(s.which_children()).await,
            Sup::Dynamic(d) => bounded(d.which_children()).await,
        }
        .expect("supervisor alive")
    }

    pub async fn info(&self, name: &str) -> Option<ChildInfo> {
        let id = self.id(name);
        self.which().await.into_iter().find(|c| c.id == id)
    }

    pub async fn probe(&self, name: &str) -> ractor::ActorRef<ProbeMsg> {
        let info = self.info(name).await.expect("child exists");
        info.cell().cloned().expect("child running").into()
    }

    pub async fn tell(&self, name: &str, msg: ProbeMsg) {
        self.probe(name).await.cast(msg).expect("probe alive");
    }

    pub async fn ping(&self, name: &str) -> u64 {
        let probe = self.probe(name).await;
        bounded(async { ractor::call!(probe, ProbeMsg::Ping) })
            .await
            .expect("ping")
    }

    pub async fn next(&mut self, pred: impl Fn(&SupervisorEvent) -> bool) -> SupervisorEvent {
        next_matching(&mut self.events, pred).await.1
    }

    pub fn cell(&self) -> ActorCell {
        match &self.sup {
            Sup::Static(s) => s.get_cell(),
            Sup::Dynamic(d) => d.get_cell(),
        }
    }

    pub async fn stop(&self) {
        match &self.sup {
            Sup::Static(s) => bounded(s.stop()).await,
            Sup::Dynamic(d) => bounded(d.stop()).await,
        }
    }

    pub async fn wait(&self) {
        match &self.sup {
            Sup::Static(s) => bounded(s.wait()).await,
            Sup::Dynamic(d) => bounded(d.wait()).await,
        }
    }
}
