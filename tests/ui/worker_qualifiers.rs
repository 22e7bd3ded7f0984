#[derive(Clone)]
struct Odd;

#[ractor_otp::worker]
impl Odd {
    pub async extern "C" fn foreign(&self) {}

    pub const async fn constant(&self) {}
}

fn main() {}
