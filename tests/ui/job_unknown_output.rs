use ractor_otp::jobs::Job;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Job)]
#[job(name = "report", output = Reprot)]
struct Report {
    day: u32,
}



fn main() {}
