//! Shared helpers for the examples in this folder: where to listen and where the upstreams
//! are, read from the environment so every example runs offline against local origins.
#![warn(missing_docs)]

/// The address to listen on: `$LISTEN`, or `default` when unset.
pub fn listen_addr(default: &str) -> String {
    std::env::var("LISTEN").unwrap_or_else(|_| default.to_string())
}

/// The upstream addresses: `$UPSTREAMS` split on commas (blanks dropped), or `default`.
pub fn upstreams(default: &str) -> Vec<String> {
    let raw = std::env::var("UPSTREAMS").unwrap_or_else(|_| default.to_string());
    split_list(&raw)
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_trims() {
        assert_eq!(
            split_list(" 127.0.0.1:1, ,127.0.0.1:2,"),
            vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()]
        );
        assert!(split_list("").is_empty());
    }
}
