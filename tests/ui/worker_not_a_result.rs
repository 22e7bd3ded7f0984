// A return type named `Result` is read as success or failure: it must be a real `Result`.
pub struct Result {
    pub rows: usize,
}

#[derive(Clone)]
struct Query;

#[ractor_otp::worker(pool_only)] // (an actor impl would add follow-up errors that differ with `cluster`)
impl Query {
    pub async fn run(&self) -> Result {
        Result { rows: 0 }
    }
}

fn main() {}
