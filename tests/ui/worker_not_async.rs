#[derive(Clone)]
struct Counter {
    n: u64,
}

#[ractor_otp::worker]
impl Counter {
    pub fn add(&mut self, by: u64) -> u64 {
        self.n += by;
        self.n
    }
}

fn main() {}
