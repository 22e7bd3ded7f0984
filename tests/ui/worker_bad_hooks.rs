use ractor_otp::worker::WorkerContext;

#[derive(Clone)]
struct Db;

#[ractor_otp::worker]
impl Db {
    async fn init(&mut self, ctx: WorkerContext, retries: u32) {
        let _ = (ctx, retries);
    }

    #[on_restart]
    async fn reconnect(&mut self) -> u32 {
        0
    }

    #[on_restart]
    async fn again(&mut self) {}

    pub async fn query(&self, sql: String) -> usize {
        sql.len()
    }
}

fn main() {}
