use ractor_otp::jobs::Job;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Job)]
#[job(nmae = "typo")]
struct UnknownKey;

#[derive(Serialize, Deserialize, Job)]
#[job(name = "a", name = "b")]
struct NameTwice;

#[derive(Serialize, Deserialize, Job)]
#[job(name = "")]
struct EmptyName;

#[derive(Serialize, Deserialize, Job)]
#[job(name = send_email)]
struct NameNotAString;

#[derive(Serialize, Deserialize, Job)]
#[job(name = "v", version = 0)]
struct VersionZero;

fn main() {}
