use ractor_otp::prelude::*;

fn main() {
    let _ = supervisor! { children: ["n" => 42] };
}
