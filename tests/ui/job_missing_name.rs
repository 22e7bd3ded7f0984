use ractor_otp::jobs::Job;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Job)]
struct NoAttribute {
    n: u32,
}

#[derive(Serialize, Deserialize, Job)]
#[job(output = u32)]
struct NoName {
    n: u32,
}

fn main() {}
