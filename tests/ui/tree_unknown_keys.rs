use ractor_otp::prelude::*;

fn main() {
    let _ = supervisor! {
        stratgy: one_for_all,
    };
}
