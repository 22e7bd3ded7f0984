// `#[worker]` goes on the impl block, not on the struct.
#[ractor_otp::worker]
struct Doubler;

fn main() {}
