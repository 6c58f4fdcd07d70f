//! The agent's config file: raw serde structs → `compile()` → runtime config.
//!
//! Owns parsing and validation of `homeostat.yaml` (DESIGN.md §6); every error
//! carries file:line:column. Must not start anything.
use std::time::Duration;

/// Parse a Prometheus-style duration: `1h30m`, `10s`, `500ms`, `2d`, `1w`, `0s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ms: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("invalid duration {s:?}: expected a number at offset {i}"));
        }
        let n: u128 = s[start..i].parse().map_err(|_| format!("invalid duration {s:?}"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit_ms: u128 = match &s[ustart..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            "" => return Err(format!("invalid duration {s:?}: missing unit (ms, s, m, h, d, w, y)")),
            u => return Err(format!("invalid duration {s:?}: unknown unit {u:?} (ms, s, m, h, d, w, y)")),
        };
        total_ms += n * unit_ms;
    }
    Ok(Duration::from_millis(total_ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }
}
