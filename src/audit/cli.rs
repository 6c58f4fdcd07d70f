//! Library half of `homeostat audit`: its arguments (`--since`, `--event`,
//! filters), showing the matching events and following the log. The clap
//! wiring lives in main.rs, which calls these functions; they write to a
//! passed-in `Write` and never read the clock (`now` is an argument).
//! Rendering is in [`super::render`], the table in [`super::summary`],
//! reading and tailing in [`super::read`].
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::event::EventKind;
use super::read::{AuditFilter, Tail};
use super::render::print_one;
pub use super::render::{format_event, print_events};
pub use super::summary::summary_table;
use super::AuditError;
use crate::clock::parse_time;
use crate::model::TimestampMs;

/// How often [`follow`] looks for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Parse a `--since` value: a duration ago relative to `now` (`10m`, `1h30m`),
/// an RFC 3339 time (`2026-11-23T04:00:00Z`) or Unix seconds.
pub fn parse_since(value: &str, now: TimestampMs) -> Result<TimestampMs, AuditError> {
    if let Ok(d) = crate::spec::parse_duration(value) {
        return Ok(now - d.as_millis() as TimestampMs);
    }
    parse_time(value.trim()).ok_or_else(|| AuditError::BadSince {
        value: value.to_string(),
    })
}

impl std::str::FromStr for EventKind {
    type Err = AuditError;

    /// The snake_case name as in the log (`action_started`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Through serde, so a variant added to the enum is parsed too.
        serde_json::from_value(Value::String(s.trim().to_string())).map_err(|_| {
            AuditError::BadEvent {
                value: s.to_string(),
            }
        })
    }
}

/// Parse `--event` values; each may itself be a comma-separated list.
pub fn parse_event_kinds<S: AsRef<str>>(values: &[S]) -> Result<Vec<EventKind>, AuditError> {
    let mut out = Vec::new();
    for v in values {
        for part in v.as_ref().split(',').filter(|p| !p.trim().is_empty()) {
            let kind: EventKind = part.parse()?;
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
    }
    Ok(out)
}

/// Build the filter of `homeostat audit` from its flags. An empty `events`
/// means all events.
pub fn filter_from_args<S: AsRef<str>>(
    since: Option<&str>,
    rule: Option<&str>,
    target: Option<&str>,
    events: &[S],
    limit: Option<usize>,
    now: TimestampMs,
) -> Result<AuditFilter, AuditError> {
    let kinds = parse_event_kinds(events)?;
    Ok(AuditFilter {
        since: since.map(|s| parse_since(s, now)).transpose()?,
        rule: rule.map(String::from),
        target: target.map(String::from),
        event: (!kinds.is_empty()).then_some(kinds),
        limit,
        ..AuditFilter::default()
    })
}

/// `homeostat audit` without `--follow`: print the matching events; returns
/// how many were printed.
pub fn show(
    dir: &Path,
    filter: &AuditFilter,
    json: bool,
    out: &mut impl Write,
) -> Result<usize, AuditError> {
    let events = super::read::query(dir, filter)?;
    print_events(&events, json, out).map_err(|e| AuditError::io(dir, e))?;
    Ok(events.len())
}

/// Print the events matching `filter` (its `limit` applies to this backlog
/// only), then keep printing new matching events as they are appended, across
/// rotation, polling every [`FOLLOW_POLL`], until `stop()` returns true. Events
/// appended before `stop()` first returns true are printed before returning.
pub fn follow(
    dir: &Path,
    filter: &AuditFilter,
    json: bool,
    out: &mut impl Write,
    stop: impl Fn() -> bool,
) -> Result<(), AuditError> {
    let io = |e: std::io::Error| AuditError::io(dir, e);
    let mut tail = Tail::default();
    let mut backlog = std::collections::VecDeque::new();
    tail.poll(dir, |ev| {
        if filter.matches(&ev) && filter.limit != Some(0) {
            backlog.push_back(ev);
            if filter.limit.is_some_and(|l| backlog.len() > l) {
                backlog.pop_front();
            }
        }
    })?;
    for ev in &backlog {
        print_one(ev, json, out).map_err(io)?;
    }
    out.flush().map_err(io)?;
    loop {
        let stopping = stop();
        let mut err = None;
        tail.poll(dir, |ev| {
            if err.is_none() && filter.matches(&ev) {
                err = print_one(&ev, json, out).err();
            }
        })?;
        if let Some(e) = err {
            return Err(io(e));
        }
        out.flush().map_err(io)?;
        if stopping {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}
