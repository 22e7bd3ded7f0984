use ractor_otp::prelude::*;

fn main() {
    let _ = supervisor! { strategy: one_for_some };
    let _ = supervisor! { period: 5 };
    let _ = supervisor! { period: 5h };
    let _ = supervisor! { period: 0s };
    let _ = supervisor! { auto_shutdown: sometimes };
}

fn more() {
    let _ = supervisor! { period: 0.0001s };
    let _ = supervisor! { intensity: 1, intensity: 2 };
}
