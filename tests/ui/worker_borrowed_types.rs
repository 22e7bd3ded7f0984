use std::borrow::Cow;

#[derive(Clone)]
struct Names {
    names: Vec<String>,
}

#[ractor_otp::worker]
impl Names {
    pub async fn add(&mut self, name: &str) {
        self.names.push(name.to_string());
    }

    pub async fn add_cow(&mut self, name: Cow<'_, str>) {
        self.names.push(name.into_owned());
    }

    pub async fn add_all(&mut self, names: impl IntoIterator<Item = String>) {
        self.names.extend(names);
    }

    pub async fn first(&self) -> &str {
        &self.names[0]
    }

    // A `'static` borrow is an owned value: fine.
    pub async fn kind(&self, _tag: &'static str) -> &'static str {
        "names"
    }
}

fn main() {}
