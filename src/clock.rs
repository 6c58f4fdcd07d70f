//! The one place that reads the clock.
//!
//! Everything else takes time as an argument (DESIGN.md §8). Timestamps are
//! milliseconds since the Unix epoch, as in Prometheus. [`Clock`] anchors tokio's
//! monotonic clock to the wall clock once, so that tests which pause tokio time
//! also control every timestamp the agent produces.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::TimestampMs;

/// Wall-clock time derived from tokio's (pausable) monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_wall_ms: TimestampMs,
    base_instant: tokio::time::Instant,
}

impl Clock {
    /// Anchor at the current wall-clock time.
    #[allow(clippy::disallowed_methods)] // the one sanctioned reading of the wall clock
    pub fn system() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self::starting_at(wall.as_millis() as TimestampMs)
    }

    /// Anchor at a chosen wall-clock time (tests: with `tokio::time::pause`).
    #[allow(clippy::disallowed_methods)]
    pub fn starting_at(wall_ms: TimestampMs) -> Self {
        Self {
            base_wall_ms: wall_ms,
            base_instant: tokio::time::Instant::now(),
        }
    }

    /// Current time in milliseconds since the epoch.
    #[allow(clippy::disallowed_methods)]
    pub fn now_ms(&self) -> TimestampMs {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.base_instant);
        self.base_wall_ms + elapsed.as_millis() as TimestampMs
    }
}

/// Monotonic "now" for deadlines and latency measurement in I/O code (provider
/// timeouts, the demo's load generator). Follows tokio's paused clock. Never
/// for decisions: the rule engine and guard take time as an argument.
#[allow(clippy::disallowed_methods)]
pub fn monotonic_now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// Measures how long something took (monotonic, follows tokio's paused clock).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(tokio::time::Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods)] // the clock module may read the clock
    pub fn start() -> Self {
        Stopwatch(tokio::time::Instant::now())
    }

    #[allow(clippy::disallowed_methods)]
    pub fn elapsed(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.0)
    }
}

/// Format a timestamp as RFC 3339 with millisecond precision (UTC).
pub fn rfc3339(ts: TimestampMs) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ts.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parse RFC 3339 or a Unix timestamp in (fractional) seconds into milliseconds.
pub fn parse_time(s: &str) -> Option<TimestampMs> {
    if let Ok(secs) = s.parse::<f64>() {
        return secs
            .is_finite()
            .then(|| (secs * 1000.0).round() as TimestampMs);
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as TimestampMs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_clock_advances_only_when_told() {
        let c = Clock::starting_at(1_000_000);
        assert_eq!(c.now_ms(), 1_000_000);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(c.now_ms(), 1_090_000);
    }

    #[test]
    fn time_round_trips() {
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(
            parse_time(&rfc3339(1_700_000_000_500)),
            Some(1_700_000_000_500)
        );
        assert_eq!(parse_time("nope"), None);
    }
}
