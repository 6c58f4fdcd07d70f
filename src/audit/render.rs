//! One audit event as one human line (`homeostat audit`, `--follow`), and
//! the stored JSON line as it is (`--json`). Must not change what is stored:
//! re-serialising a decoded event reproduces the stored bytes.
use std::io::Write;

use serde_json::Value;

use super::change::{describe_change, ChangeFacts};
use super::event::{AuditEvent, EventKind};
use super::words::{fmt_duration, fmt_num, short_value, truncate};
use crate::model::{ActionKind, Mode};

/// The provider op of a `decision`/`action_started`/`suppressed` detail.
pub(super) fn op_of(detail: Option<&Value>) -> Option<&Value> {
    let d = detail?;
    d.get("op")
        .or_else(|| d.get("request").and_then(|r| r.get("op")))
        .or_else(|| d.get("would").and_then(|w| w.get("op")))
        .filter(|op| op.is_object())
}

/// A provider op in a few words: `set_replicas 1→2`, `replace 127.0.0.1:18101`,
/// `circuit_open`, `redeploy v2`, `rollback`. The instance is left out when it
/// is `shown` already.
pub(super) fn describe_op(op: &Value, shown: Option<&str>) -> String {
    let name = op.get("op").and_then(Value::as_str).unwrap_or("?");
    let mut s = match name {
        "set_replicas" => format!(
            "set_replicas {}→{}",
            op.get("from").map_or("?".into(), short_value),
            op.get("to").map_or("?".into(), short_value)
        ),
        "redeploy" => match (op.get("version"), op.get("command")) {
            (Some(Value::String(v)), _) => format!("redeploy {v}"),
            (_, Some(Value::Array(cmd))) => {
                let words: Vec<String> = cmd.iter().map(short_value).collect();
                format!("redeploy `{}`", truncate(&words.join(" "), 32))
            }
            _ => "redeploy".into(),
        },
        other => other.to_string(),
    };
    if let Some(i) = op.get("instance").and_then(Value::as_str) {
        if shown != Some(i) {
            s.push(' ');
            s.push_str(i);
        }
    }
    s
}

/// The circuit transition an event records: an `action_started` detail's
/// `circuit`, or a `circuit_changed` event's `from`/`to`.
pub(super) fn circuit_of(ev: &AuditEvent) -> Option<(&str, &str)> {
    let d = ev.detail.as_ref()?;
    let c = if ev.event == Some(EventKind::CircuitChanged) {
        d
    } else {
        d.get("circuit")?
    };
    Some((c.get("from")?.as_str()?, c.get("to")?.as_str()?))
}

/// Why the provider rolled this action back, if it did.
pub(super) fn rolled_back_of(ev: &AuditEvent) -> Option<&str> {
    let detail = ev
        .detail
        .as_ref()
        .and_then(|d| d.get("rolled_back"))
        .and_then(Value::as_str);
    if ev.cause.as_deref() == Some("rolled_back") {
        return Some(ev.error.as_deref().or(detail).unwrap_or(""));
    }
    detail
}

/// A `detail` object as `key=value` words, without what the line already
/// says or what is the norm (one attempt, rule-driven): the request is
/// reduced to its op, `*_ms` become durations.
fn fmt_detail(ev: &AuditEvent, circuit_shown: bool) -> Option<String> {
    let d = ev.detail.as_ref()?;
    let Value::Object(map) = d else {
        return Some(truncate(&short_or_quoted(d), 80));
    };
    let inst = ev.instance.as_deref();
    let settles = matches!(
        ev.event,
        Some(EventKind::ActionSucceeded | EventKind::ActionFailed)
    );
    let mut parts = Vec::new();
    for (k, v) in map {
        let circuit_changed = ev.event == Some(EventKind::CircuitChanged);
        match k.as_str() {
            // An outcome's op is on its action_started line and its change is
            // shown; a circuit op is the transition shown.
            "op" | "request" if settles || circuit_shown => {}
            "op" | "request" | "would" => {
                let op = if k == "op" { Some(v) } else { v.get("op") };
                if let Some(op) = op.filter(|op| op.is_object()) {
                    let label = if k == "would" { "would" } else { "op" };
                    parts.push(format!("{label}={}", describe_op(op, inst)));
                }
            }
            "circuit" if circuit_shown => {}
            "from" | "to" if circuit_changed => {}
            "rolled_back" if ev.error.is_some() => {}
            // Rule-driven is the norm; say only when the agent itself acted.
            "origin" if v.as_str() == Some("rule") => {}
            // The kind says it, except for target tracking.
            "direction" if ev.kind != Some(ActionKind::Scale) => {}
            "attempts" if v.as_u64() == Some(1) => {}
            _ => {
                if let (Some(name), Some(ms)) = (k.strip_suffix("_ms"), v.as_u64()) {
                    parts.push(format!("{name}={}", fmt_duration(ms).replace(' ', "")));
                } else {
                    parts.push(format!("{k}={}", short_or_quoted(v)));
                }
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A detail value: words as they are, text with spaces quoted, lists joined,
/// objects as `{k=v …}`; long values shortened.
fn short_or_quoted(v: &Value) -> String {
    let s = match v {
        Value::String(s) if s.contains(char::is_whitespace) || s.is_empty() => format!("{s:?}"),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(short_or_quoted)
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}={}", short_or_quoted(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => short_value(other),
    };
    truncate(&s, 80)
}

/// One event as one human-readable line (no newline), e.g.
/// `2026-11-23T04:26:01.650Z  action_succeeded    scale_out  demo  rule=demo-latency-scale-out  replicas 1→2 (+18101)  (136 ms)  id=…`.
/// What changed is described as in the summary table; `detail` is shown as
/// `key=value` words without what the line already says.
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
    let circuit = circuit_of(ev);
    let change = describe_change(&ChangeFacts {
        instance: ev.instance.as_deref(),
        before: ev.before.as_ref(),
        after: ev.after.as_ref(),
        circuit,
        rolled_back: rolled_back_of(ev),
    });
    if let Some(c) = change {
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
    if let Some(d) = fmt_detail(ev, circuit.is_some()) {
        parts.push(d);
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

pub(super) fn print_one(ev: &AuditEvent, json: bool, out: &mut impl Write) -> std::io::Result<()> {
    if json {
        // Re-serialising a decoded event reproduces the stored bytes (same
        // field order, same float formatting), so the output still verifies.
        serde_json::to_writer(&mut *out, ev)?;
        out.write_all(b"\n")
    } else {
        writeln!(out, "{}", format_event(ev))
    }
}
