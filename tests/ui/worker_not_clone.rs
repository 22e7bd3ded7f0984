// Running alone as an actor clones the value at every start: without `Clone`, say `pool_only`.
struct Connection {
    open: bool,
}

#[ractor_otp::worker]
impl Connection {
    pub async fn is_open(&self) -> bool {
        self.open
    }
}

fn main() {}
