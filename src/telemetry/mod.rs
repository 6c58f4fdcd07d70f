//! The agent's own telemetry: the `homeostat_*` metric families (DESIGN.md §6) and
//! log setup.
//!
//! Owns: every self-metric family, its HELP text and its label names; typed
//! recording methods so callers cannot misspell a label or a value; OpenMetrics
//! text rendering for `/metrics`; `tracing` subscriber setup (pretty or JSON).
//! Must not: decide anything, read the clock (callers pass durations and times),
//! or hold agent state beyond the metric values.
mod metrics;

pub use metrics::*;

use std::str::FromStr;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, one line per event (ANSI colours on a terminal).
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = TelemetryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(TelemetryError::LogFormat(other.to_string())),
        }
    }
}

/// Telemetry setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("unknown log format {0:?} (pretty, json)")]
    LogFormat(String),
    #[error("invalid log level/filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// Install the global `tracing` subscriber, writing to stderr. `level` is an
/// env-filter directive (`info`, `homeostat=debug,hyper=warn`); a non-empty
/// `RUST_LOG` overrides it, as operators expect.
pub fn init_logging(format: LogFormat, level: &str) -> Result<(), TelemetryError> {
    let directive = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => level.to_string(),
    };
    let filter = log_filter(&directive)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)
}

/// Logs that may carry secrets, silenced below `error` whatever the level:
/// kube's client logs a whole reply it cannot decode at `warn`, and a reply
/// (a Deployment, a Pod) can hold environment values.
const QUIET: &[&str] = &["kube_client::client=error"];

/// The operator's filter `directive` plus [`QUIET`].
pub fn log_filter(directive: &str) -> Result<tracing_subscriber::EnvFilter, TelemetryError> {
    let bad = |e: &dyn std::fmt::Display| TelemetryError::Filter {
        filter: directive.to_string(),
        message: e.to_string(),
    };
    let mut filter = tracing_subscriber::EnvFilter::try_new(directive).map_err(|e| bad(&e))?;
    for q in QUIET {
        filter = filter.add_directive(q.parse().map_err(|e| bad(&e))?);
    }
    Ok(filter)
}

#[cfg(test)]
mod tests;
