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

/// A point on the real monotonic clock after which CPU-bound work gives up
/// (a query evaluation checks it every so many samples). Real time, not
/// tokio's pausable clock: it bounds how long a thread stays busy.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<std::time::Instant>);

impl Deadline {
    #[allow(clippy::disallowed_methods)] // the clock module may read the clock
    pub fn after(d: Duration) -> Self {
        // A timeout too large to represent never passes.
        Deadline(std::time::Instant::now().checked_add(d))
    }

    #[allow(clippy::disallowed_methods)]
    pub fn passed(&self) -> bool {
        self.0.is_some_and(|at| std::time::Instant::now() >= at)
    }
}

/// Earliest and latest timestamps accepted from users (`time=`, `since=`):
/// 0001-01-01 and 9999-12-31T23:59:59.999Z, the range RFC 3339 can write.
/// Keeps every `time - range - offset` of an evaluation far from overflow.
pub const MIN_TIME_MS: TimestampMs = -62_135_596_800_000;
pub const MAX_TIME_MS: TimestampMs = 253_402_300_799_999;

/// Format a timestamp as RFC 3339 with millisecond precision (UTC).
pub fn rfc3339(ts: TimestampMs) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ts.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parse RFC 3339 or a Unix timestamp in (fractional) seconds into milliseconds.
/// `None` for anything else, including NaN, infinities and times outside
/// [`MIN_TIME_MS`]..=[`MAX_TIME_MS`].
pub fn parse_time(s: &str) -> Option<TimestampMs> {
    if let Ok(secs) = s.parse::<f64>() {
        let ms = (secs * 1000.0).round();
        return (ms >= MIN_TIME_MS as f64 && ms <= MAX_TIME_MS as f64).then_some(ms as TimestampMs);
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let ms = i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    (ms <= MAX_TIME_MS).then_some(ms)
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

    #[test]
    fn out_of_range_and_non_finite_times_are_refused() {
        for bad in [
            "-1e18",
            "1e18",
            "NaN",
            "nan",
            "inf",
            "-Inf",
            "1e400",
            "253402300800",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(parse_time("-62135596800"), Some(MIN_TIME_MS));
        assert_eq!(parse_time("253402300799.999"), Some(MAX_TIME_MS));
        assert_eq!(parse_time("-1.5"), Some(-1500));
    }
}
