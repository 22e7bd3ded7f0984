#[derive(Clone)]
struct Db;

#[ractor_otp::worker]
impl Db {
    #[init(retries = 3)]
    async fn connect(&mut self) {}

    #[init]
    #[on_restart]
    async fn reconnect(&mut self) {}

    pub async fn query(&self, sql: String) -> usize {
        sql.len()
    }
}

fn main() {}
