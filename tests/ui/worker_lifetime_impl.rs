struct View<'a> {
    data: &'a [u8],
}

#[ractor_otp::worker(pool_only)]
impl<'a> View<'a> {
    pub async fn len(&self) -> usize {
        self.data.len()
    }
}

fn main() {}
