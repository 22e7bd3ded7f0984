#[derive(Clone)]
struct Empty;

#[ractor_otp::worker]
impl Empty {}

fn main() {}
