#[derive(Clone)]
struct Lights;

#[ractor_otp::worker]
impl Lights {
    pub async fn turn_on(&mut self) {}

    pub async fn turn__on(&mut self) {}

    pub async fn cast_turn_on(&mut self) -> bool {
        true
    }

    pub async fn with(&self) -> u8 {
        1
    }
}

fn main() {}
