// `#[worker]` writes the `Worker` impl itself: it goes on an inherent impl block.
use ractor_otp::worker::Worker;

struct Doubler;

#[ractor_otp::worker]
impl Worker for Doubler {
    type Task = u64;
    type Output = u64;
    type Error = String;
    async fn handle(&mut self, n: u64) -> Result<u64, String> {
        Ok(n * 2)
    }
}

fn main() {}
