//! `#[worker]` and `supervisor!` under a renamed dependency (`otp = { package = "ractor-otp" }`)
//! and without a direct `ractor` dependency: the generated paths are `::otp::...`.

use otp::prelude::*;

/// A worker whose generated code must name `::otp`, never `::ractor_otp` or `::ractor`.
#[derive(Clone)]
pub struct Greeter {
    greeting: String,
}

#[otp::worker]
impl Greeter {
    pub async fn greet(&self, name: String) -> Result<String, String> {
        if name.is_empty() {
            return Err("nobody to greet".to_string());
        }
        Ok(format!("{}, {name}!", self.greeting))
    }
}

/// The path given explicitly (as when `ractor-otp` is reached through a re-export).
pub struct Counter {
    n: u64,
}

#[otp::worker(crate = "::otp", pool_only)]
impl Counter {
    pub async fn bump(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

/// A tree holding the worker as a pool and as a single actor.
pub fn tree() -> otp::supervisor::SupervisorBuilder {
    let greeter = Greeter {
        greeting: "Hello".to_string(),
    };
    let prototype = greeter.clone();
    otp::supervisor! {
        strategy: one_for_all,
        children: [
            "pool" => Pool::builder(move |_| prototype.clone()).size(2),
            "single" => actor(greeter, ()) { shutdown: 1s },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn generated_code_finds_the_renamed_crate() {
        let app = tokio::time::timeout(WAIT, tree().spawn())
            .await
            .expect("bounded")
            .expect("tree starts");
        let cell = app.child("pool").await.expect("pool child");
        let pool = GreeterClient(
            PoolRef::<Greeter>::from_cell(cell)
                .await
                .expect("a pool of greeters"),
        );
        let greeting = tokio::time::timeout(WAIT, pool.greet("pool".into())).await;
        assert_eq!(greeting.expect("bounded"), Ok("Hello, pool!".to_string()));
        let single = GreeterClient(
            app.child_ref::<Call<Greeter>>("single")
                .await
                .expect("single child"),
        );
        let refused = tokio::time::timeout(WAIT, single.greet(String::new())).await;
        assert_eq!(
            refused.expect("bounded"),
            Err(TaskError::Failed("nobody to greet".to_string()))
        );
        tokio::time::timeout(WAIT, app.stop())
            .await
            .expect("bounded");
    }

    #[tokio::test]
    async fn an_explicit_crate_path_is_used() {
        let pool = tokio::time::timeout(WAIT, Pool::builder(|_| Counter { n: 0 }).size(1).spawn())
            .await
            .expect("bounded")
            .expect("pool starts");
        let counter = CounterClient(pool);
        for expected in 1..=2 {
            let bumped = tokio::time::timeout(WAIT, counter.bump()).await;
            assert_eq!(bumped.expect("bounded"), Ok(expected));
        }
        counter.stop().await;
    }
}
