//! How generated names are spelled: a snake_case method or keyword becomes a CamelCase
//! variant (`resize_image` → `ResizeImage`, `one_for_all` → `OneForAll`).

/// `resize_image` → `ResizeImage`; repeated underscores count as one (`a__b` → `AB`).
pub(crate) fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn snake_case_becomes_camel_case() {
        assert_eq!(camel_case("resize_image"), "ResizeImage");
        assert_eq!(camel_case("one_for_all"), "OneForAll");
        assert_eq!(camel_case("stats"), "Stats");
        assert_eq!(camel_case("turn__on"), "TurnOn");
        assert_eq!(camel_case("_private"), "Private");
        assert_eq!(camel_case("OneForAll"), "OneForAll");
    }
}
