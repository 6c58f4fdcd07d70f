//! The agent's config file: raw serde structs → `compile()` → runtime config.
//!
//! Owns parsing and validation of `homeostat.yaml` (DESIGN.md §6); every error
//! carries file:line:column. Must not start anything, open sockets or read
//! the clock; the only I/O is reading the config file and the API token file.
use std::ops::RangeInclusive;
use std::time::Duration;

mod compile;
pub mod raw;
mod secret;
pub mod yamlpos;

pub use compile::*;
pub use secret::ApiToken;
pub use yamlpos::{Diagnostic, SourceFile, YPath};

/// Parse `start-end` (inclusive) or a single port.
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let parse = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("invalid port {p:?} in port range {s:?}"))
    };
    let (start, end) = match s.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(s)?;
            (p, p)
        }
    };
    if start == 0 || start > end {
        return Err(format!(
            "port range {s:?}: expected start-end with 0 < start <= end"
        ));
    }
    Ok(start..=end)
}

/// Parse a byte size: `16MiB`, `512KiB`, `1GB`, `1000` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a number such as 16MiB"
        ));
    }
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {u:?} (B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

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
            return Err(format!(
                "invalid duration {s:?}: expected a number at offset {i}"
            ));
        }
        let n: u128 = s[start..i]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
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
            "" => {
                return Err(format!(
                    "invalid duration {s:?}: missing unit (ms, s, m, h, d, w, y)"
                ))
            }
            u => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {u:?} (ms, s, m, h, d, w, y)"
                ))
            }
        };
        total_ms += n * unit_ms;
    }
    Ok(Duration::from_millis(total_ms as u64))
}

#[cfg(test)]
mod tests_config;

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

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2KB"), Ok(2000));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
