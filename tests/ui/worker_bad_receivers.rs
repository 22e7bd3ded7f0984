// Every mistake in the block is reported in one build.
#[derive(Clone)]
struct Counter {
    n: u64,
}

#[ractor_otp::worker]
impl Counter {
    pub async fn consume(self) -> u64 {
        self.n
    }

    pub async fn new(n: u64) -> Counter {
        Counter { n }
    }

    pub async fn boxed(self: Box<Self>) -> u64 {
        self.n
    }
}

fn main() {}
