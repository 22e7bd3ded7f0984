//! A service with two subsystems: a starting point to copy (`cargo run --example service`).
//!
//! `storage` restarts its database and the cache refresher built on it together (one-for-all);
//! `sessions` starts a task per user. The root starts storage first and, rest-for-one, restarts
//! sessions whenever storage had to restart. A bad query crashes the database; the tree heals.

use std::time::Duration;

use ractor_otp::prelude::*;
use ractor_otp::ractor::{Actor, ActorProcessingErr, ActorRef};

/// Any ractor actor can be a child: here, the database connection.
#[derive(Clone)]
struct Database;

// Only for builds with ractor's `async-trait` feature (see the README's Features); drop it
// otherwise.
#[cfg_attr(feature = "async-trait", ractor_otp::ractor::async_trait)]
impl Actor for Database {
    type Msg = String; // a query
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<String>, _: ()) -> Result<(), ActorProcessingErr> {
        println!("database: connected");
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<String>,
        query: String,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if query.is_empty() {
            return Err("empty query".into()); // a failure: its supervisor restarts it
        }
        println!("database: {query}");
        Ok(())
    }
}

/// A plain async function can be a child: an error ends it, and its supervisor restarts it
/// (here with the database: one-for-all).
async fn refresh_cache_every_100_ms() -> Result<(), String> {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    loop {
        every.tick().await;
        refresh_cache()?;
    }
}

fn refresh_cache() -> Result<(), String> {
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut storage = Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .intensity(3)
        .child(ChildSpec::from_actor("database", Database, ()))
        .child(ChildSpec::task("cache_refresh", refresh_cache_every_100_ms));
    let mut storage_events = storage.subscribe(); // every incarnation's events
    let sessions = DynamicSupervisor::builder(
        ChildTemplate::task(|user: String| async move {
            println!("session of {user}: open");
            std::future::pending::<Result<(), String>>().await // serve until stopped
        })
        .restart(Restart::Transient),
    );
    let root = Supervisor::builder()
        .strategy(Strategy::RestForOne)
        .child(storage.into_child_spec("storage"))
        .child(sessions.into_child_spec("sessions"))
        .spawn()
        .await?;

    let sessions = root.child_dynamic::<String>("sessions").await?;
    sessions.start_child("ada".to_string()).await?;
    let database = root
        .child_supervisor("storage")
        .await?
        .child_ref::<String>("database")
        .await?;
    database.cast("SELECT 1".to_string())?;
    database.cast(String::new())?; // crashes the database

    while let Some(event) = storage_events.recv().await {
        println!("storage: {event:?}");
        if matches!(event, SupervisorEvent::ChildStarted { ref id, generation: 2, .. } if id == "cache_refresh")
        {
            break; // both restarted, in start order
        }
    }
    println!(
        "sessions running after the restart: {}",
        sessions.count_children().await?.active
    );
    root.stop().await; // sessions, then storage (cache_refresh, database): reverse start order
    Ok(())
}
