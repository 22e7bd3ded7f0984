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
    let _ = supervisor! {
        children: [
            "a" => actor(Idle, ()),
            "a" => actor(Idle, ()),
        ],
    };
    let _ = supervisor! { children: ["b" => actor(Idle)] };
    let _ = supervisor! { children: ["c" => actor(Idle, ()) { restart: sometimes }] };
    let _ = supervisor! { children: ["d" => actor(Idle, ()) { shutdown: never }] };
    let _ = supervisor! { children: ["e" => actor(Idle, ()) { restrat: transient }] };
    let _ = supervisor! { children: ["g" => start(1, 2)] };
    let _ = supervisor! { children: ["f" => actor(Idle, ()) { shutdown: 1s, shutdown: 2s }] };
}
