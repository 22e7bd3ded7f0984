// An error a method returns reaches callers as `TaskError::Failed(e)`: it must be `Display`.
#[derive(Debug)]
struct Refused;

#[derive(Clone)]
struct Gate;

#[ractor_otp::worker]
impl Gate {
    pub async fn open(&mut self) -> Result<(), Refused> {
        Err(Refused)
    }
}

fn main() {}
