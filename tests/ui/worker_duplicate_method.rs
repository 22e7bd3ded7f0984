#[derive(Clone)]
struct Twice;

#[ractor_otp::worker]
impl Twice {
    pub async fn run(&self) -> u8 {
        1
    }

    pub async fn run(&self) -> u8 {
        2
    }
}

fn main() {}
