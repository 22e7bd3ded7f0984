use ractor_otp::jobs::Job;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Job)]
#[job(name = "wrapper")]
struct Wrapper<T> {
    inner: T,
}

#[derive(Job)]
#[job(name = "bits")]
union Bits {
    n: u32,
}

fn main() {}
