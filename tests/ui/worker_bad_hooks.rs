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

#[derive(Clone)]
struct Cache;

#[ractor_otp::worker]
impl Cache {
    #[init]
    async fn warm_up(&mut self) -> Result<u32, String> {
        Ok(0)
    }

    #[on_restart]
    async fn _reload(&mut self) -> Result<(), String> {
        Ok(())
    }

    pub async fn reload(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
