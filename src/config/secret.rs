//! Secrets that must never reach a log line: their `Debug` prints `***`.
use std::fmt;

/// The API bearer token. Compare with [`ApiToken::matches`]; never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    pub fn new(value: impl Into<String>) -> Self {
        ApiToken(value.into())
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The raw value, for the one place that needs it (an HTTP client in tests).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_value_and_matches_compares() {
        let t = ApiToken::new("s3cret");
        assert_eq!(format!("{t:?}"), "***");
        assert!(!format!("{:?}", Some(t.clone())).contains("s3cret"));
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3creT"));
    }
}
