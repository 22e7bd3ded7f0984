#[derive(Clone)]
struct Store;

#[ractor_otp::worker]
impl Store {
    pub async fn save<T: Send + 'static>(&mut self, value: T) -> usize {
        std::mem::size_of_val(&value)
    }
}

fn main() {}
