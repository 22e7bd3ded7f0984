use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::prelude::*;

#[derive(Clone)]
struct Idle;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn main() {
    // Permanent (the default) and no auto_shutdown: two mistakes.
    let _ = supervisor! { children: ["job" => actor(Idle, ()) { significant }] };
    // Fine: transient, and the tree stops when it ends.
    let _ = supervisor! {
        auto_shutdown: any_significant,
        children: ["job" => actor(Idle, ()) { restart: transient, significant }],
    };
}
