#[derive(Clone)]
struct Raw;

#[ractor_otp::worker]
impl Raw {
    pub async unsafe fn poke(&mut self, address: usize) -> usize {
        address
    }
}

fn main() {}
