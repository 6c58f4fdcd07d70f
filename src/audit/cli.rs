//! Library half of `homeostat audit`: printing, following, the summary table,
//! `--since` parsing.
//!
//! Owns the human rendering of events. The clap wiring lives in main.rs, which
//! calls these functions; they write to a passed-in `Write` and never read the
//! clock (`now` is an argument).
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::event::{AuditEvent, EventKind};
use super::files::list_files;
use super::line::decode;
use super::read::AuditFilter;
use super::AuditError;
use crate::actions::Mode;
use crate::clock::{parse_time, TimestampMs};

/// How often [`follow`] looks for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Parse a `--since` value: a duration ago relative to `now` (`10m`, `1h30m`),
/// an RFC 3339 time (`2026-11-23T04:00:00Z`) or Unix seconds.
pub fn parse_since(value: &str, now: TimestampMs) -> Result<TimestampMs, AuditError> {
    if let Ok(d) = crate::config::parse_duration(value) {
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

/// A number as on-call staff want to read it: no float noise, NaN spelled out.
fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Render a `before`/`after` value compactly: `3`, `v2`, `replicas=3 version=v2`.
fn fmt_state(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), fmt_num),
        Value::String(s) => s.clone(),
        Value::Object(map) if map.len() == 1 => {
            map.values().next().map_or_else(String::new, fmt_state)
        }
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", fmt_state(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn fmt_change(before: Option<&Value>, after: Option<&Value>) -> Option<String> {
    match (before, after) {
        (None, None) => None,
        (b, a) => Some(format!(
            "{}→{}",
            b.map_or("?".into(), fmt_state),
            a.map_or("?".into(), fmt_state)
        )),
    }
}

fn fmt_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{}s", fmt_num(ms as f64 / 1000.0))
    }
}

/// One event as one human-readable line (no newline), e.g.
/// `2026-11-23T04:10:02.123Z  action_succeeded    scale_out  demo  rule=latency-scale-out  2→3  (1532 ms)`.
pub fn format_event(ev: &AuditEvent) -> String {
    let mut parts: Vec<String> = vec![
        ev.ts.clone(),
        format!("{:<18}", ev.event.map_or("?", EventKind::as_str)),
    ];
    if let Some(k) = ev.kind {
        parts.push(k.as_str().to_string());
    }
    if let Some(t) = &ev.target {
        parts.push(t.clone());
    }
    if let Some(i) = &ev.instance {
        parts.push(format!("instance={i}"));
    }
    if let Some(r) = &ev.rule {
        parts.push(format!("rule={r}"));
    }
    if ev.mode == Some(Mode::DryRun) {
        parts.push("[dry_run]".into());
    }
    if let Some(c) = fmt_change(ev.before.as_ref(), ev.after.as_ref()) {
        parts.push(c);
    }
    if let Some(ms) = ev.duration_ms {
        parts.push(format!("({ms} ms)"));
    }
    if ev.event == Some(EventKind::Decision) || ev.event == Some(EventKind::Suppressed) {
        if let Some(reason) = &ev.reason {
            let values: Vec<String> = reason
                .values
                .iter()
                .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
                .collect();
            if !values.is_empty() {
                parts.push(values.join(" "));
            }
            if !reason.when.is_empty() {
                parts.push(format!("when={:?}", reason.when));
            }
            if let Some(nd) = &reason.no_data {
                parts.push(format!("no_data={nd}"));
            }
        }
    }
    if let Some(c) = &ev.cause {
        parts.push(format!("cause={c}"));
    }
    if let Some(a) = &ev.approved_by {
        parts.push(format!("approved_by={a}"));
    }
    if let Some(a) = &ev.actor {
        if !matches!(a.as_str(), "rule" | "agent") {
            parts.push(format!("actor={a}"));
        }
    }
    if let Some(e) = &ev.error {
        parts.push(format!("error={e:?}"));
    }
    if let Some(d) = &ev.detail {
        parts.push(d.to_string());
    }
    if let Some(id) = &ev.action_id {
        parts.push(format!("id={id}"));
    }
    parts.join("  ").trim_end().to_string()
}

/// Print events: one human line each, or (`json`) the JSON lines as stored.
pub fn print_events(
    events: &[AuditEvent],
    json: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    for ev in events {
        print_one(ev, json, out)?;
    }
    out.flush()
}

fn print_one(ev: &AuditEvent, json: bool, out: &mut impl Write) -> std::io::Result<()> {
    if json {
        // Re-serialising a decoded event reproduces the stored bytes (same
        // field order, same float formatting), so the output still verifies.
        serde_json::to_writer(&mut *out, ev)?;
        out.write_all(b"\n")
    } else {
        writeln!(out, "{}", format_event(ev))
    }
}

/// Reads complete lines appended since the last call, across rotation.
struct Tail {
    file_index: Option<u64>,
    offset: u64,
}

impl Tail {
    fn poll(&mut self, dir: &Path, mut each: impl FnMut(AuditEvent)) -> Result<(), AuditError> {
        loop {
            // List before reading: a newer file only appears after the writer
            // has finished with the older one, so reading the older one after
            // the listing sees all of it.
            let files = list_files(dir)?;
            let current = match self.file_index {
                Some(i) => files.iter().find(|(idx, _)| *idx >= i).cloned(),
                None => files.first().cloned(),
            };
            let Some((idx, path)) = current else {
                return Ok(());
            };
            if self.file_index != Some(idx) {
                self.file_index = Some(idx);
                self.offset = 0;
            }
            let mut f = File::open(&path).map_err(|e| AuditError::io(&path, e))?;
            f.seek(SeekFrom::Start(self.offset))
                .map_err(|e| AuditError::io(&path, e))?;
            let mut reader = BufReader::with_capacity(1 << 16, f);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| AuditError::io(&path, e))?;
                if n == 0 || buf.last() != Some(&b'\n') {
                    break; // an incomplete line: wait for the rest
                }
                self.offset += n as u64;
                // Invalid complete lines are corruption: `verify` reports them.
                if let Ok(ev) = decode(&buf[..n - 1]) {
                    each(ev);
                }
            }
            match files.iter().find(|(i, _)| *i > idx) {
                // Anything left unterminated here is a torn tail: move on.
                Some((next, _)) => {
                    self.file_index = Some(*next);
                    self.offset = 0;
                }
                None => return Ok(()),
            }
        }
    }
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
    let mut tail = Tail {
        file_index: None,
        offset: 0,
    };
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

/// One row of the summary table: everything known about one action id.
#[derive(Debug, Default)]
struct Row<'a> {
    ts: &'a str,
    rule: Option<&'a str>,
    kind: Option<&'a str>,
    target: Option<&'a str>,
    instance: Option<&'a str>,
    before: Option<&'a Value>,
    after: Option<&'a Value>,
    outcome: String,
    approved_by: Option<&'a str>,
    duration_ms: Option<u64>,
}

fn outcome_of(ev: &AuditEvent) -> Option<String> {
    let s = match ev.event? {
        EventKind::ActionSucceeded => "succeeded".to_string(),
        EventKind::ActionFailed => match &ev.error {
            Some(e) => {
                let short: String = e.chars().take(40).collect();
                format!("failed: {short}")
            }
            None => "failed".into(),
        },
        EventKind::ActionReconciled => "reconciled".into(),
        EventKind::ActionStarted => "in progress".into(),
        EventKind::Suppressed => format!("suppressed: {}", ev.cause.as_deref().unwrap_or("?")),
        EventKind::ApprovalRequested => "awaiting approval".into(),
        EventKind::Approved => "approved".into(),
        EventKind::Rejected => "rejected".into(),
        EventKind::ApprovalExpired => "approval expired".into(),
        EventKind::Decision if ev.mode == Some(Mode::DryRun) => "dry run".into(),
        EventKind::Decision => "decided".into(),
        _ => return None,
    };
    Some(s)
}

/// A table of actions, one row per `action_id` in order of first appearance:
/// time, rule, kind, target, instance, before→after, outcome, duration; then a
/// count of outcomes. Events without an `action_id` are not actions.
pub fn summary_table(events: &[AuditEvent]) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut rows: HashMap<&str, Row> = HashMap::new();
    for ev in events {
        let Some(id) = ev.action_id.as_deref() else {
            continue;
        };
        let row = rows.entry(id).or_insert_with(|| {
            order.push(id);
            Row {
                ts: &ev.ts,
                ..Row::default()
            }
        });
        row.rule = row.rule.or(ev.rule.as_deref());
        row.kind = row.kind.or(ev.kind.map(|k| k.as_str()));
        row.target = row.target.or(ev.target.as_deref());
        row.instance = row.instance.or(ev.instance.as_deref());
        row.before = row.before.or(ev.before.as_ref());
        // The outcome's `after` is what really happened; later wins.
        row.after = ev.after.as_ref().or(row.after);
        row.approved_by = ev.approved_by.as_deref().or(row.approved_by);
        row.duration_ms = ev.duration_ms.or(row.duration_ms);
        if let Some(o) = outcome_of(ev) {
            row.outcome = o;
        }
    }

    let header = [
        "TIME", "RULE", "KIND", "TARGET", "INSTANCE", "CHANGE", "OUTCOME", "DURATION",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(String::from)];
    let mut counts: Vec<(String, usize)> = Vec::new();
    for id in &order {
        let Some(r) = rows.get(id) else { continue };
        let mut outcome = r.outcome.clone();
        if let Some(by) = r.approved_by {
            outcome.push_str(&format!(" (approved by {by})"));
        }
        let bucket = r.outcome.split(':').next().unwrap_or("").to_string();
        match counts.iter_mut().find(|(k, _)| *k == bucket) {
            Some((_, n)) => *n += 1,
            None => counts.push((bucket, 1)),
        }
        // `2026-11-23T04:10:02.123Z` → `2026-11-23 04:10:02`
        let time = r.ts.get(..19).unwrap_or(r.ts).replacen('T', " ", 1);
        table.push([
            time,
            r.rule.unwrap_or("-").to_string(),
            r.kind.unwrap_or("-").to_string(),
            r.target.unwrap_or("-").to_string(),
            r.instance.unwrap_or("-").to_string(),
            fmt_change(r.before, r.after).unwrap_or_else(|| "-".into()),
            outcome,
            r.duration_ms.map_or("-".into(), fmt_duration),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &table {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let total = order.len();
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out.push_str(&format!(
        "{total} action{}{}{}\n",
        if total == 1 { "" } else { "s" },
        if summary.is_empty() { "" } else { ": " },
        summary.join(", ")
    ));
    out
}
