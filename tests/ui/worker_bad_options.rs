#[derive(Clone)]
struct A;

#[ractor_otp::worker(pool_onyl)]
impl A {
    pub async fn ping(&self) {}
}

fn main() {}
