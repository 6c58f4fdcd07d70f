//! Library half of `homeostat audit`: printing, following, the summary table,
//! `--since` parsing.
//!
//! Owns the human rendering of events, including the one-phrase description of
//! what an action changed (`replicas 1→2 (+18101)`, `closed→open, in traffic
//! yes→no`, `rolled back to v1`) that both the event lines and the summary
//! table use instead of the providers' raw `before`/`after` JSON. The clap
//! wiring lives in main.rs, which calls these functions; they write to a
//! passed-in `Write` and never read the clock (`now` is an argument). Must not
//! change what is stored: `--json` prints the stored lines as they are.
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::event::{AuditEvent, EventKind};
use super::files::list_files;
use super::line::decode;
use super::read::AuditFilter;
use super::AuditError;
use crate::clock::parse_time;
use crate::model::{ActionKind, Mode, TimestampMs};

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

/// Longest rendering of one value inside a generic diff.
const MAX_VALUE: usize = 16;
/// Longest description of a change (the CHANGE column, the change in a line).
const MAX_CHANGE: usize = 48;
/// At most this many keys in a generic diff; the rest are counted.
const MAX_KEYS: usize = 3;
/// Longest error text in the OUTCOME column.
const MAX_ERROR: usize = 32;

/// Cut `s` to at most `max` characters, marking a cut with `…`.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A JSON value as one short word: `3`, `v2`, `true`, `[4 items]`, `{…}`, `-`.
fn short_value(v: &Value) -> String {
    let s = match v {
        Value::Null => "-".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), fmt_num),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 1 => "[1 item]".into(),
        Value::Array(a) => format!("[{} items]", a.len()),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Object(_) => "{…}".into(),
    };
    truncate(&s, MAX_VALUE)
}

fn is_empty_state(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// `yes`/`no` for a traffic flag.
fn yes_no(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_bool) {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

/// Whether a provider's instance `id` (`18101`) names the event's `instance`
/// (`127.0.0.1:18101`, or the id itself).
fn same_instance(id: &str, instance: &str) -> bool {
    id == instance
        || instance
            .rsplit_once(':')
            .is_some_and(|(_, port)| port == id)
}

/// One instance in a [`ReplicaSet`], keyed by its `id`.
struct Instance<'a> {
    id: String,
    fields: &'a serde_json::Map<String, Value>,
}

impl Instance<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key).filter(|v| !v.is_null())
    }
}

/// The replica-set shape of a provider's `before`/`after` (the `process`
/// provider's: `{"replicas": 2, "version": "v1", "instances": [{"id":
/// "18100", "pid": 4242, "version": "v1", "in_traffic": true}]}`). Any of the
/// three members may be missing.
struct ReplicaSet<'a> {
    replicas: Option<&'a Value>,
    version: Option<&'a Value>,
    instances: Option<Vec<Instance<'a>>>,
}

impl<'a> ReplicaSet<'a> {
    /// `None` when `v` does not have this shape.
    fn parse(v: &'a Value) -> Option<Self> {
        let m = v.as_object()?;
        if !m.contains_key("replicas") && !m.contains_key("instances") {
            return None;
        }
        let instances = match m.get("instances") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|i| {
                        let fields = i.as_object()?;
                        let id = match fields.get("id")? {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => return None,
                        };
                        Some(Instance { id, fields })
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            Some(_) => return None,
        };
        Some(ReplicaSet {
            replicas: m.get("replicas"),
            version: m.get("version"),
            instances,
        })
    }

    fn instance(&self, name: &str) -> Option<&Instance<'a>> {
        self.instances
            .as_ref()?
            .iter()
            .find(|i| same_instance(&i.id, name))
    }

    fn ids(&self) -> Vec<&str> {
        self.instances
            .iter()
            .flatten()
            .map(|i| i.id.as_str())
            .collect()
    }
}

/// `word a→b` when `a` and `b` differ.
fn changed(word: &str, a: Option<&Value>, b: Option<&Value>) -> Option<String> {
    let (a, b) = (a.unwrap_or(&Value::Null), b.unwrap_or(&Value::Null));
    (a != b).then(|| format!("{word} {}→{}", short_value(a), short_value(b)))
}

/// What changed between two replica sets: for one `instance` its traffic,
/// process and version; for the target its replica count (naming up to two
/// added or removed instances), its version, or the instances a rolling
/// restart replaced.
fn replica_diff(b: &ReplicaSet, a: &ReplicaSet, instance: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(name) = instance {
        match (b.instance(name), a.instance(name)) {
            (Some(x), Some(y)) => {
                let (px, py) = (x.get("pid"), y.get("pid"));
                if px != py {
                    out.push(format!(
                        "replaced (pid {}→{})",
                        px.map_or("?".into(), short_value),
                        py.map_or("?".into(), short_value)
                    ));
                }
                if x.get("in_traffic") != y.get("in_traffic") {
                    out.push(format!(
                        "in traffic {}→{}",
                        yes_no(x.get("in_traffic")),
                        yes_no(y.get("in_traffic"))
                    ));
                }
                out.extend(changed("version", x.get("version"), y.get("version")));
            }
            (Some(_), None) => out.push("removed".into()),
            (None, Some(_)) => out.push("added".into()),
            (None, None) => {}
        }
    }
    if let Some(c) = changed("replicas", b.replicas, a.replicas) {
        let (old, new) = (b.ids(), a.ids());
        let mut ids: Vec<String> = new
            .iter()
            .filter(|id| !old.contains(id))
            .map(|id| format!("+{id}"))
            .collect();
        ids.extend(
            old.iter()
                .filter(|id| !new.contains(id))
                .map(|id| format!("-{id}")),
        );
        if instance.is_none() && !ids.is_empty() && ids.len() <= 2 {
            out.push(format!("{c} ({})", ids.join(" ")));
        } else {
            out.push(c);
        }
    }
    let version = changed("version", b.version, a.version);
    let same_count = b.replicas == a.replicas;
    out.extend(version.clone());
    if instance.is_none() && same_count && version.is_none() {
        // A rolling restart: same count and version, new processes.
        let replaced = b
            .instances
            .iter()
            .flatten()
            .filter(|x| {
                a.instances
                    .iter()
                    .flatten()
                    .find(|y| y.id == x.id)
                    .is_none_or(|y| y.get("pid") != x.get("pid"))
            })
            .count();
        if replaced > 0 {
            out.push(format!(
                "{replaced} instance{} replaced",
                if replaced == 1 { "" } else { "s" }
            ));
        }
    }
    out
}

/// Changed members of two objects, nested members as `a.b`: `key old→new`.
fn object_diff(
    prefix: &str,
    b: &serde_json::Map<String, Value>,
    a: &serde_json::Map<String, Value>,
    out: &mut Vec<String>,
) {
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (x, y) = (b.get(k), a.get(k));
        if x == y {
            continue;
        }
        let name = format!("{prefix}{k}");
        match (x, y) {
            (Some(Value::Object(xm)), Some(Value::Object(ym))) => {
                object_diff(&format!("{name}."), xm, ym, out);
            }
            _ => out.extend(changed(&name, x, y)),
        }
    }
}

/// The change between two values of any shape: only the members whose value
/// changed, values shortened; a state known only after (a webhook's answer)
/// as `key=value`.
fn generic_diff(b: Option<&Value>, a: Option<&Value>) -> Option<String> {
    let b = b.filter(|v| !is_empty_state(v));
    let a = a.filter(|v| !is_empty_state(v));
    let parts: Vec<String> = match (b, a) {
        (None, None) => return None,
        (Some(Value::Object(bm)), Some(Value::Object(am))) => {
            let mut out = Vec::new();
            object_diff("", bm, am, &mut out);
            out
        }
        (None, Some(Value::Object(am))) => am
            .iter()
            .filter(|(_, v)| !is_empty_state(v))
            .map(|(k, v)| format!("{k}={}", short_value(v)))
            .collect(),
        (b, a) => {
            let (x, y) = (b.unwrap_or(&Value::Null), a.unwrap_or(&Value::Null));
            if x == y {
                Vec::new()
            } else {
                vec![format!("{}→{}", short_value(x), short_value(y))]
            }
        }
    };
    if parts.is_empty() {
        return Some("no change".into());
    }
    let mut shown: Vec<String> = parts.iter().take(MAX_KEYS).cloned().collect();
    if parts.len() > MAX_KEYS {
        shown.push(format!("+{} more", parts.len() - MAX_KEYS));
    }
    Some(shown.join(", "))
}

/// What is known about one action, or one event, to say what it changed.
#[derive(Debug, Default)]
struct ChangeFacts<'a> {
    /// The instance acted on (`127.0.0.1:18101`), if the action has one.
    instance: Option<&'a str>,
    before: Option<&'a Value>,
    after: Option<&'a Value>,
    /// A circuit transition, `(from, to)`.
    circuit: Option<(&'a str, &'a str)>,
    /// The provider undid the action; the text (error or detail) says why and
    /// usually to which version.
    rolled_back: Option<&'a str>,
}

/// The version a rollback returned to: the `after` state's version, else the
/// `… rolled back to v1` of the message.
fn rolled_back_to(after: Option<&Value>, why: &str) -> Option<String> {
    if let Some(v) = after
        .and_then(ReplicaSet::parse)
        .and_then(|s| s.version.and_then(Value::as_str).map(String::from))
    {
        return Some(v);
    }
    let (_, rest) = why.rsplit_once("rolled back to ")?;
    let word = rest.split_whitespace().next()?;
    let word = word.trim_end_matches(['.', ',', ';', ')']);
    (!word.is_empty()).then(|| word.to_string())
}

/// One short phrase for what an action changed: `replicas 1→2 (+18101)`,
/// `version v1→v2`, `in traffic yes→no`, `replaced (pid 28465→28474)`,
/// `closed→open, in traffic yes→no`, `rolled back to v1`, or a short generic
/// diff for other shapes. `None` when nothing is known.
fn describe_change(f: &ChangeFacts) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if let Some((from, to)) = f.circuit {
        parts.push(format!("{from}→{to}"));
    }
    if let Some(why) = f.rolled_back {
        parts.push(match rolled_back_to(f.after, why) {
            Some(v) => format!("rolled back to {v}"),
            None => "rolled back".into(),
        });
    } else {
        let sets = f
            .before
            .and_then(ReplicaSet::parse)
            .zip(f.after.and_then(ReplicaSet::parse));
        match sets {
            Some((b, a)) => {
                let diff = replica_diff(&b, &a, f.instance);
                if diff.is_empty() && parts.is_empty() {
                    parts.push("no change".into());
                }
                parts.extend(diff);
            }
            None => {
                // A circuit's own `before`/`after` (circuit_changed) repeats it.
                let dup = f.circuit.is_some_and(|(x, y)| {
                    f.before == Some(&json!(x)) && f.after == Some(&json!(y))
                });
                if !dup {
                    parts.extend(generic_diff(f.before, f.after));
                }
            }
        }
    }
    (!parts.is_empty()).then(|| truncate(&parts.join(", "), MAX_CHANGE))
}

/// The provider op of a `decision`/`action_started`/`suppressed` detail.
fn op_of(detail: Option<&Value>) -> Option<&Value> {
    let d = detail?;
    d.get("op")
        .or_else(|| d.get("request").and_then(|r| r.get("op")))
        .or_else(|| d.get("would").and_then(|w| w.get("op")))
        .filter(|op| op.is_object())
}

/// A provider op in a few words: `set_replicas 1→2`, `replace 127.0.0.1:18101`,
/// `circuit_open`, `redeploy v2`, `rollback`. The instance is left out when it
/// is `shown` already.
fn describe_op(op: &Value, shown: Option<&str>) -> String {
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
fn circuit_of(ev: &AuditEvent) -> Option<(&str, &str)> {
    let d = ev.detail.as_ref()?;
    let c = if ev.event == Some(EventKind::CircuitChanged) {
        d
    } else {
        d.get("circuit")?
    };
    Some((c.get("from")?.as_str()?, c.get("to")?.as_str()?))
}

/// Why the provider rolled this action back, if it did.
fn rolled_back_of(ev: &AuditEvent) -> Option<&str> {
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

fn fmt_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{}s", fmt_num(ms as f64 / 1000.0))
    }
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
    /// Provider state before (first known) and after (last known).
    before: Option<&'a Value>,
    after: Option<&'a Value>,
    circuit: Option<(&'a str, &'a str)>,
    /// The op a decision or start recorded, for actions with no outcome yet.
    op: Option<&'a Value>,
    rolled_back: Option<&'a str>,
    /// An `action_succeeded`/`action_failed`/`action_reconciled` was seen.
    settled: bool,
    failed: bool,
    outcome: String,
    approved_by: Option<&'a str>,
    duration_ms: Option<u64>,
}

impl Row<'_> {
    /// The CHANGE cell. An action that has not run (dry run, awaiting
    /// approval, in progress) shows what it would do, marked `(planned)`; a
    /// failed circuit action did not change the circuit.
    fn change(&self) -> String {
        let circuit = self.circuit.filter(|_| !self.failed);
        if !self.settled && self.before.is_none() && self.after.is_none() {
            let planned = circuit.map(|(a, b)| format!("{a}→{b}")).or_else(|| {
                self.op
                    .map(|op| match op.get("op").and_then(Value::as_str) {
                        Some("set_replicas") => format!(
                            "replicas {}→{}",
                            op.get("from").map_or("?".into(), short_value),
                            op.get("to").map_or("?".into(), short_value)
                        ),
                        _ => describe_op(op, self.instance),
                    })
            });
            return planned.map_or_else(
                || "-".into(),
                |p| truncate(&format!("{p} (planned)"), MAX_CHANGE),
            );
        }
        describe_change(&ChangeFacts {
            instance: self.instance,
            before: self.before,
            after: self.after,
            circuit,
            rolled_back: self.rolled_back,
        })
        .unwrap_or_else(|| "-".into())
    }
}

fn outcome_of(ev: &AuditEvent) -> Option<String> {
    let s = match ev.event? {
        EventKind::ActionSucceeded => "succeeded".to_string(),
        // The CHANGE column says what it was rolled back to.
        EventKind::ActionFailed if rolled_back_of(ev).is_some() => "failed".into(),
        EventKind::ActionFailed => match &ev.error {
            Some(e) => format!("failed: {}", truncate(e, MAX_ERROR)),
            None => "failed".into(),
        },
        EventKind::ActionReconciled => {
            match ev
                .detail
                .as_ref()
                .and_then(|d| d.get("result"))
                .and_then(Value::as_str)
            {
                Some(r) => format!("reconciled: {r}"),
                None => "reconciled".into(),
            }
        }
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

/// Widest cell of each column (TIME, KIND and DURATION are short by nature);
/// longer cells end in `…` so a row stays on one terminal line.
const MAX_WIDTHS: [usize; 8] = [19, 24, 13, 16, 21, MAX_CHANGE, 40, 8];

/// A table of actions, one row per `action_id` in order of first appearance:
/// time, rule, kind, target, instance, what changed, outcome, duration; then a
/// count of outcomes. Events without an `action_id` are not actions.
///
/// CHANGE is one short phrase (see `describe_change`): `replicas 1→2
/// (+18101)`, `replaced (pid 28465→28474)`, `closed→open, in traffic yes→no`,
/// `rolled back to v1`, … so the table stays narrow (about 140 columns).
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
        if ev.event == Some(EventKind::CircuitChanged) {
            // Its before/after are the circuit's states, not the provider's.
            row.circuit = circuit_of(ev).or(row.circuit);
        } else {
            row.before = row.before.or(ev.before.as_ref());
            // The outcome's `after` is what really happened; later wins.
            row.after = ev.after.as_ref().or(row.after);
            row.circuit = row.circuit.or(circuit_of(ev));
        }
        row.op = row.op.or(op_of(ev.detail.as_ref()));
        row.rolled_back = rolled_back_of(ev).or(row.rolled_back);
        match ev.event {
            Some(EventKind::ActionSucceeded | EventKind::ActionReconciled) => {
                row.settled = true;
                row.failed = false;
            }
            Some(EventKind::ActionFailed) => {
                row.settled = true;
                row.failed = true;
            }
            _ => {}
        }
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
        let cells = [
            time,
            r.rule.unwrap_or("-").to_string(),
            r.kind.unwrap_or("-").to_string(),
            r.target.unwrap_or("-").to_string(),
            r.instance.unwrap_or("-").to_string(),
            r.change(),
            outcome,
            r.duration_ms.map_or("-".into(), fmt_duration),
        ];
        let mut row = cells.clone();
        for ((cell, full), max) in row.iter_mut().zip(cells).zip(MAX_WIDTHS) {
            *cell = truncate(&full, max);
        }
        table.push(row);
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

#[cfg(test)]
mod tests {
    //! The rendering of real events: those below are what `homeostat demo`
    //! wrote (hashes, reasons and repeated fields left out), plus the shapes
    //! of other providers and of actions that did not run.
    use super::*;

    /// One `homeostat demo` run: scale-out, failover of a killed replica, a
    /// circuit that opens, half-opens, re-opens, half-opens and closes, a
    /// redeploy of a bad version that rolls back, and a scale-in.
    const DEMO_LOG: &str = r#"{"seq":2,"ts":"2026-11-23T04:26:01.512Z","event":"decision","action_id":"1a206a75da8-5684c84446779d4c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"op":{"from":1,"op":"set_replicas","to":2},"verdict":"act"}}
{"seq":3,"ts":"2026-11-23T04:26:01.514Z","event":"action_started","action_id":"1a206a75da8-5684c84446779d4c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"direction":"up","origin":"rule","request":{"action_id":"1a206a75da8-5684c84446779d4c","kind":"scale_out","op":{"from":1,"op":"set_replicas","to":2},"rule":"demo-latency-scale-out","target":"demo"},"timeout_ms":60000}}
{"seq":4,"ts":"2026-11-23T04:26:01.650Z","event":"action_succeeded","action_id":"1a206a75da8-5684c84446779d4c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","before":{"instances":[{"id":"18100","in_traffic":true,"pid":1045,"version":"v1"}],"replicas":1,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":1045,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"}],"replicas":2,"version":"v1"},"duration_ms":136,"detail":{"attempts":1,"direction":"up","op":{"from":1,"op":"set_replicas","to":2},"origin":"rule"}}
{"seq":7,"ts":"2026-11-23T04:26:09.512Z","event":"decision","action_id":"1a206a77ce8-2bef8d561d4a37bb","rule":"demo-replica-down","target":"demo","instance":"127.0.0.1:18100","kind":"failover","detail":{"op":{"instance":"127.0.0.1:18100","op":"replace"},"verdict":"act"}}
{"seq":8,"ts":"2026-11-23T04:26:09.518Z","event":"action_started","action_id":"1a206a77ce8-2bef8d561d4a37bb","rule":"demo-replica-down","target":"demo","instance":"127.0.0.1:18100","kind":"failover","detail":{"origin":"rule","request":{"action_id":"1a206a77ce8-2bef8d561d4a37bb","kind":"failover","op":{"instance":"127.0.0.1:18100","op":"replace"},"rule":"demo-replica-down","target":"demo"},"timeout_ms":60000}}
{"seq":9,"ts":"2026-11-23T04:26:09.647Z","event":"action_succeeded","action_id":"1a206a77ce8-2bef8d561d4a37bb","rule":"demo-replica-down","target":"demo","instance":"127.0.0.1:18100","kind":"failover","before":{"instances":[{"id":"18100","in_traffic":true,"pid":1045,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"}],"replicas":2,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"}],"replicas":2,"version":"v1"},"duration_ms":129,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"replace"},"origin":"rule"}}
{"seq":10,"ts":"2026-11-23T04:26:17.511Z","event":"decision","action_id":"1a206a79c27-f0c756460392428c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"op":{"from":2,"op":"set_replicas","to":3},"verdict":"act"}}
{"seq":11,"ts":"2026-11-23T04:26:17.514Z","event":"action_started","action_id":"1a206a79c27-f0c756460392428c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"direction":"up","origin":"rule","request":{"action_id":"1a206a79c27-f0c756460392428c","kind":"scale_out","op":{"from":2,"op":"set_replicas","to":3},"rule":"demo-latency-scale-out","target":"demo"},"timeout_ms":60000}}
{"seq":12,"ts":"2026-11-23T04:26:17.534Z","event":"action_succeeded","action_id":"1a206a79c27-f0c756460392428c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"}],"replicas":2,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"duration_ms":20,"detail":{"attempts":1,"direction":"up","op":{"from":2,"op":"set_replicas","to":3},"origin":"rule"}}
{"seq":15,"ts":"2026-11-23T04:26:31.511Z","event":"decision","action_id":"1a206a7d2d7-38416b5b34bab4af","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"verdict":"act"}}
{"seq":16,"ts":"2026-11-23T04:26:31.515Z","event":"action_started","action_id":"1a206a7d2d7-38416b5b34bab4af","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"closed","open_for_ms":15000,"to":"open"},"origin":"rule","request":{"action_id":"1a206a7d2d7-38416b5b34bab4af","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":17,"ts":"2026-11-23T04:26:31.527Z","event":"action_succeeded","action_id":"1a206a7d2d7-38416b5b34bab4af","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"duration_ms":12,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"origin":"rule"}}
{"seq":18,"ts":"2026-11-23T04:26:31.527Z","event":"circuit_changed","action_id":"1a206a7d2d7-38416b5b34bab4af","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"closed","after":"open","detail":{"from":"closed","open_for_ms":15000,"to":"open"}}
{"seq":19,"ts":"2026-11-23T04:26:33.513Z","event":"decision","action_id":"1a206a7daa9-de50b02a349d822f","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"op":{"from":3,"op":"set_replicas","to":4},"verdict":"act"}}
{"seq":20,"ts":"2026-11-23T04:26:33.516Z","event":"action_started","action_id":"1a206a7daa9-de50b02a349d822f","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"direction":"up","origin":"rule","request":{"action_id":"1a206a7daa9-de50b02a349d822f","kind":"scale_out","op":{"from":3,"op":"set_replicas","to":4},"rule":"demo-latency-scale-out","target":"demo"},"timeout_ms":60000}}
{"seq":23,"ts":"2026-11-23T04:26:33.643Z","event":"action_succeeded","action_id":"1a206a7daa9-de50b02a349d822f","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","before":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":127,"detail":{"attempts":1,"direction":"up","op":{"from":3,"op":"set_replicas","to":4},"origin":"rule"}}
{"seq":24,"ts":"2026-11-23T04:26:47.514Z","event":"action_started","action_id":"1a206a8115a-d45417537c6de31d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"open","open_for_ms":15000,"to":"half_open"},"origin":"circuit","request":{"action_id":"1a206a8115a-d45417537c6de31d","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_half_open"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":25,"ts":"2026-11-23T04:26:47.542Z","event":"action_succeeded","action_id":"1a206a8115a-d45417537c6de31d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":28,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_half_open"},"origin":"circuit"}}
{"seq":26,"ts":"2026-11-23T04:26:47.542Z","event":"circuit_changed","action_id":"1a206a8115a-d45417537c6de31d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"open","after":"half_open","detail":{"from":"open","open_for_ms":15000,"to":"half_open"}}
{"seq":27,"ts":"2026-11-23T04:26:49.514Z","event":"action_started","action_id":"1a206a8192a-9cd7a322c8f4cafa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"half_open","open_for_ms":30000,"to":"open"},"origin":"circuit","request":{"action_id":"1a206a8192a-9cd7a322c8f4cafa","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":28,"ts":"2026-11-23T04:26:49.541Z","event":"action_succeeded","action_id":"1a206a8192a-9cd7a322c8f4cafa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":27,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"origin":"circuit"}}
{"seq":29,"ts":"2026-11-23T04:26:49.541Z","event":"circuit_changed","action_id":"1a206a8192a-9cd7a322c8f4cafa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"half_open","after":"open","detail":{"from":"half_open","open_for_ms":30000,"to":"open"}}
{"seq":30,"ts":"2026-11-23T04:27:20.513Z","event":"action_started","action_id":"1a206a89241-f04f514d3074969d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"open","open_for_ms":30000,"to":"half_open"},"origin":"circuit","request":{"action_id":"1a206a89241-f04f514d3074969d","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_half_open"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":31,"ts":"2026-11-23T04:27:20.526Z","event":"action_succeeded","action_id":"1a206a89241-f04f514d3074969d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":13,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_half_open"},"origin":"circuit"}}
{"seq":32,"ts":"2026-11-23T04:27:20.526Z","event":"circuit_changed","action_id":"1a206a89241-f04f514d3074969d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"open","after":"half_open","detail":{"from":"open","open_for_ms":30000,"to":"half_open"}}
{"seq":33,"ts":"2026-11-23T04:27:22.511Z","event":"action_started","action_id":"1a206a89a0f-549aa0711deec2aa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"half_open","open_for_ms":0,"to":"closed"},"origin":"circuit","request":{"action_id":"1a206a89a0f-549aa0711deec2aa","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_close"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":34,"ts":"2026-11-23T04:27:22.515Z","event":"action_succeeded","action_id":"1a206a89a0f-549aa0711deec2aa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":4,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_close"},"origin":"circuit"}}
{"seq":35,"ts":"2026-11-23T04:27:22.515Z","event":"circuit_changed","action_id":"1a206a89a0f-549aa0711deec2aa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"half_open","after":"closed","detail":{"from":"half_open","open_for_ms":0,"to":"closed"}}
{"seq":36,"ts":"2026-11-23T04:27:22.885Z","event":"decision","action_id":"1a206a89b85-a04080c45e54ab19","rule":"manual:demo","target":"demo","kind":"redeploy","detail":{"op":{"command":null,"op":"redeploy","version":"v2-bad"},"verdict":"act"}}
{"seq":37,"ts":"2026-11-23T04:27:22.886Z","event":"action_started","action_id":"1a206a89b85-a04080c45e54ab19","rule":"manual:demo","target":"demo","kind":"redeploy","detail":{"origin":"rule","request":{"action_id":"1a206a89b85-a04080c45e54ab19","kind":"redeploy","op":{"command":null,"op":"redeploy","version":"v2-bad"},"rule":"manual:demo","target":"demo"},"timeout_ms":600000}}
{"seq":38,"ts":"2026-11-23T04:27:30.916Z","event":"action_failed","action_id":"1a206a89b85-a04080c45e54ab19","rule":"manual:demo","target":"demo","kind":"redeploy","cause":"rolled_back","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":8030,"error":"rolled back: new replica of version v2-bad failed: process: timed out after 8000 ms; rolled back to v1","detail":{"attempts":1,"op":{"command":null,"op":"redeploy","version":"v2-bad"},"origin":"rule","rolled_back":"new replica of version v2-bad failed: process: timed out after 8000 ms; rolled back to v1"}}
{"seq":39,"ts":"2026-11-23T04:28:11.512Z","event":"decision","action_id":"1a206a95978-8a265695d6aa0f11","rule":"demo-scale-in","target":"demo","kind":"scale_in","detail":{"op":{"from":4,"op":"set_replicas","to":3},"verdict":"act"}}
{"seq":40,"ts":"2026-11-23T04:28:11.514Z","event":"action_started","action_id":"1a206a95978-8a265695d6aa0f11","rule":"demo-scale-in","target":"demo","kind":"scale_in","detail":{"direction":"down","origin":"rule","request":{"action_id":"1a206a95978-8a265695d6aa0f11","kind":"scale_in","op":{"from":4,"op":"set_replicas","to":3},"rule":"demo-scale-in","target":"demo"},"timeout_ms":60000}}
{"seq":41,"ts":"2026-11-23T04:28:11.524Z","event":"action_succeeded","action_id":"1a206a95978-8a265695d6aa0f11","rule":"demo-scale-in","target":"demo","kind":"scale_in","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"duration_ms":10,"detail":{"attempts":1,"direction":"down","op":{"from":4,"op":"set_replicas","to":3},"origin":"rule"}}
"#;

    fn demo_events() -> Vec<AuditEvent> {
        DEMO_LOG
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The table the demo ends with, in full: one phrase per change, aligned.
    #[test]
    fn demo_summary_table() {
        let table = summary_table(&demo_events());
        let want = "\
TIME                 RULE                    KIND           TARGET  INSTANCE         CHANGE                             OUTCOME    DURATION
2026-11-23 04:26:01  demo-latency-scale-out  scale_out      demo    -                replicas 1→2 (+18101)              succeeded  136 ms
2026-11-23 04:26:09  demo-replica-down       failover       demo    127.0.0.1:18100  replaced (pid 1045→2459)           succeeded  129 ms
2026-11-23 04:26:17  demo-latency-scale-out  scale_out      demo    -                replicas 2→3 (+18102)              succeeded  20 ms
2026-11-23 04:26:31  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  closed→open, in traffic yes→no     succeeded  12 ms
2026-11-23 04:26:33  demo-latency-scale-out  scale_out      demo    -                replicas 3→4 (+18103)              succeeded  127 ms
2026-11-23 04:26:47  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  open→half_open, in traffic no→yes  succeeded  28 ms
2026-11-23 04:26:49  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  half_open→open, in traffic yes→no  succeeded  27 ms
2026-11-23 04:27:20  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  open→half_open, in traffic no→yes  succeeded  13 ms
2026-11-23 04:27:22  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  half_open→closed                   succeeded  4 ms
2026-11-23 04:27:22  manual:demo             redeploy       demo    -                rolled back to v1                  failed     8.03s
2026-11-23 04:28:11  demo-scale-in           scale_in       demo    -                replicas 4→3 (-18103)              succeeded  10 ms
11 actions: 10 succeeded, 1 failed
";
        assert_eq!(table, want, "\n{table}");
    }

    #[test]
    fn demo_table_is_narrow_and_aligned() {
        let table = summary_table(&demo_events());
        let lines: Vec<&str> = table.lines().collect();
        let width = |l: &str| l.chars().count();
        assert!(lines.iter().all(|l| width(l) <= 140), "{table}");
        // Every column starts at the header's offset on every row.
        let header = lines[0];
        for name in ["RULE", "KIND", "INSTANCE", "CHANGE", "OUTCOME", "DURATION"] {
            let at = header.find(name).unwrap();
            let col = header[..at].chars().count();
            for l in &lines[1..lines.len() - 1] {
                let before: Vec<char> = l.chars().take(col).collect();
                assert_eq!(before[col - 2..], [' ', ' '], "{name} in {l:?}");
                assert_ne!(l.chars().nth(col), Some(' '), "{name} in {l:?}");
            }
        }
        assert!(
            !table.contains('{') && !table.contains("instances"),
            "{table}"
        );
    }

    #[test]
    fn demo_lines_show_before_after_compactly() {
        let lines: Vec<String> = demo_events().iter().map(format_event).collect();
        let find = |seq: u64| {
            let i = demo_events().iter().position(|e| e.seq == seq).unwrap();
            lines[i].clone()
        };
        // No provider JSON in any line, and no line is a screen wide.
        // (The error text is printed whole: it is what on-call reads first.)
        for l in &lines {
            assert!(!l.contains("\"instances\"") && !l.contains('{'), "{l}");
            let without_error = match l.split_once("error=\"") {
                Some((head, tail)) => {
                    format!("{head}{}", tail.split_once("\"  ").map_or("", |t| t.1))
                }
                None => l.clone(),
            };
            let n = without_error.chars().count();
            assert!(n <= 200, "{n} chars: {l}");
        }
        let want = [
            (3, "2026-11-23T04:26:01.514Z  action_started      scale_out  demo  rule=demo-latency-scale-out  op=set_replicas 1→2 timeout=60s  id=1a206a75da8-5684c84446779d4c"),
            (4, "2026-11-23T04:26:01.650Z  action_succeeded    scale_out  demo  rule=demo-latency-scale-out  replicas 1→2 (+18101)  (136 ms)  id=1a206a75da8-5684c84446779d4c"),
            (9, "2026-11-23T04:26:09.647Z  action_succeeded    failover  demo  instance=127.0.0.1:18100  rule=demo-replica-down  replaced (pid 1045→2459)  (129 ms)  id=1a206a77ce8-2bef8d561d4a37bb"),
            // The start of a circuit action names the transition, its outcome
            // what the provider did to traffic, circuit_changed the transition once.
            (16, "2026-11-23T04:26:31.515Z  action_started      circuit_break  demo  instance=127.0.0.1:18100  rule=demo-replica-errors  closed→open  timeout=60s  id=1a206a7d2d7-38416b5b34bab4af"),
            (17, "2026-11-23T04:26:31.527Z  action_succeeded    circuit_break  demo  instance=127.0.0.1:18100  rule=demo-replica-errors  in traffic yes→no  (12 ms)  id=1a206a7d2d7-38416b5b34bab4af"),
            (18, "2026-11-23T04:26:31.527Z  circuit_changed     circuit_break  demo  instance=127.0.0.1:18100  rule=demo-replica-errors  closed→open  open_for=15s  id=1a206a7d2d7-38416b5b34bab4af"),
            // The agent's own transitions say so.
            (24, "2026-11-23T04:26:47.514Z  action_started      circuit_break  demo  instance=127.0.0.1:18100  rule=demo-replica-errors  open→half_open  origin=circuit timeout=60s  id=1a206a8115a-d45417537c6de31d"),
            (36, "2026-11-23T04:27:22.885Z  decision            redeploy  demo  rule=manual:demo  op=redeploy v2-bad verdict=act  id=1a206a89b85-a04080c45e54ab19"),
            // Where the rollback went, the cause, the whole error (once).
            (38, "2026-11-23T04:27:30.916Z  action_failed       redeploy  demo  rule=manual:demo  rolled back to v1  (8030 ms)  cause=rolled_back  error=\"rolled back: new replica of version v2-bad failed: process: timed out after 8000 ms; rolled back to v1\"  id=1a206a89b85-a04080c45e54ab19"),
        ];
        for (seq, line) in want {
            assert_eq!(find(seq), line, "seq {seq}");
        }
    }

    /// `instances` as the process provider reports them: (port, pid, version, in_traffic).
    fn replica_set(version: &str, instances: &[(u16, u32, &str, bool)]) -> Value {
        let list: Vec<Value> = instances
            .iter()
            .map(|(port, pid, v, t)| {
                json!({"id": port.to_string(), "in_traffic": t, "pid": pid, "version": v})
            })
            .collect();
        json!({"instances": list, "replicas": instances.len(), "version": version})
    }

    fn ev(event: EventKind, id: &str, kind: ActionKind) -> AuditEvent {
        AuditEvent {
            ts: "2026-11-23T05:00:00.000Z".into(),
            action_id: Some(id.into()),
            rule: Some("r".into()),
            target: Some("web".into()),
            kind: Some(kind),
            ..AuditEvent::new(event)
        }
    }

    /// The CHANGE and OUTCOME cells of a one-action table.
    fn cells(events: &[AuditEvent]) -> (String, String) {
        let table = summary_table(events);
        let header = table.lines().next().unwrap();
        let row = table.lines().nth(1).unwrap();
        let col = |name: &str| header[..header.find(name).unwrap()].chars().count();
        let text: Vec<char> = row.chars().collect();
        let cut = |a: usize, b: usize| {
            text[a..b.min(text.len())]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        };
        (
            cut(col("CHANGE"), col("OUTCOME")),
            cut(col("OUTCOME"), col("DURATION")),
        )
    }

    fn change_of(before: Option<Value>, after: Option<Value>, instance: Option<&str>) -> String {
        describe_change(&ChangeFacts {
            instance,
            before: before.as_ref(),
            after: after.as_ref(),
            ..ChangeFacts::default()
        })
        .unwrap_or_else(|| "-".into())
    }

    #[test]
    fn replica_set_changes() {
        let v1 = |ports: &[(u16, u32)]| {
            let list: Vec<(u16, u32, &str, bool)> = ports
                .iter()
                .map(|(p, pid)| (*p, *pid, "v1", true))
                .collect();
            replica_set("v1", &list)
        };
        let three = v1(&[(18100, 10), (18101, 11), (18102, 12)]);
        // Scale out by more than two: the count only.
        let six = v1(&[
            (18100, 10),
            (18101, 11),
            (18102, 12),
            (18103, 13),
            (18104, 14),
            (18105, 15),
        ]);
        assert_eq!(
            change_of(Some(three.clone()), Some(six), None),
            "replicas 3→6"
        );
        // Scale in by two names both.
        let one = v1(&[(18100, 10)]);
        assert_eq!(
            change_of(Some(three.clone()), Some(one), None),
            "replicas 3→1 (-18101 -18102)"
        );
        // A successful redeploy: new version (and new ports).
        let v2 = replica_set("v2", &[(18103, 20, "v2", true), (18104, 21, "v2", true)]);
        let two = v1(&[(18100, 10), (18101, 11)]);
        assert_eq!(
            change_of(Some(two.clone()), Some(v2), None),
            "version v1→v2"
        );
        // A rolling restart of the same version: new processes.
        let restarted = v1(&[(18100, 30), (18101, 31)]);
        assert_eq!(
            change_of(Some(two.clone()), Some(restarted), None),
            "2 instances replaced"
        );
        // Nothing changed.
        assert_eq!(
            change_of(Some(two.clone()), Some(two.clone()), None),
            "no change"
        );
        // One instance: traffic, replacement, removal; the id matches host:port.
        let out = replica_set("v1", &[(18100, 10, "v1", false), (18101, 11, "v1", true)]);
        assert_eq!(
            change_of(
                Some(two.clone()),
                Some(out.clone()),
                Some("127.0.0.1:18100")
            ),
            "in traffic yes→no"
        );
        assert_eq!(
            change_of(Some(two.clone()), Some(out), Some("127.0.0.1:18101")),
            "no change"
        );
        let gone = v1(&[(18101, 11)]);
        assert_eq!(
            change_of(Some(two.clone()), Some(gone), Some("127.0.0.1:18100")),
            "removed, replicas 2→1"
        );
        // A replaced instance whose circuit was open stays out of traffic.
        let b = replica_set("v1", &[(18100, 28465, "v1", false)]);
        let a = replica_set("v1", &[(18100, 28474, "v1", false)]);
        assert_eq!(
            change_of(Some(b), Some(a), Some("18100")),
            "replaced (pid 28465→28474)"
        );
    }

    #[test]
    fn other_shapes_get_a_short_key_diff() {
        // A load balancer backend: only what changed, nested keys dotted.
        let b = json!({"backend": {"addr": "10.0.0.7:8080", "state": "UP"}, "weight": 100,
            "servers": ["a", "b"]});
        let a = json!({"backend": {"addr": "10.0.0.7:8080", "state": "MAINT"}, "weight": 0,
            "servers": ["a", "b"]});
        assert_eq!(
            change_of(Some(b), Some(a), None),
            "backend.state UP→MAINT, weight 100→0"
        );
        // Long values are cut; more than three keys are counted.
        let b = json!({"a": 1, "b": 1, "c": 1, "d": 1, "image": "registry.example.com/team/checkout:2026.11.1"});
        let a = json!({"a": 2, "b": 2, "c": 2, "d": 2, "image": "registry.example.com/team/checkout:2026.11.2"});
        assert_eq!(
            change_of(Some(b), Some(a), None),
            "a 1→2, b 1→2, c 1→2, +2 more"
        );
        let b = json!({"image": "registry.example.com/team/checkout:2026.11.1"});
        let a = json!({"image": "registry.example.com/team/checkout:2026.11.2"});
        assert_eq!(
            change_of(Some(b), Some(a), None),
            "image registry.exampl…→registry.exampl…"
        );
        // Scalars, as older logs and tests wrote them.
        assert_eq!(change_of(Some(json!(2)), Some(json!(3)), None), "2→3");
        // Webhook: nothing before, the receiver's answer after; or nothing at all.
        assert_eq!(
            change_of(
                Some(Value::Null),
                Some(json!({"status": 202, "response": "queued"})),
                None
            ),
            "response=queued, status=202"
        );
        assert_eq!(change_of(Some(Value::Null), Some(json!({})), None), "-");
        assert_eq!(change_of(None, None, None), "-");
        // The whole phrase is bounded.
        let b = json!({"note": "x".repeat(200), "other": "y".repeat(200), "third": 1});
        let a = json!({"note": "z".repeat(200), "other": "w".repeat(200), "third": 2});
        assert!(change_of(Some(b), Some(a), None).chars().count() <= MAX_CHANGE);
    }

    #[test]
    fn webhook_actions_in_the_table() {
        let mut ok = ev(EventKind::ActionSucceeded, "w1", ActionKind::ScaleOut);
        ok.provider = Some("webhook".into());
        ok.before = Some(Value::Null);
        ok.after = Some(json!({"response": "", "status": 200}));
        ok.duration_ms = Some(45);
        assert_eq!(cells(&[ok]), ("status=200".into(), "succeeded".into()));
        let mut started = ev(EventKind::ActionStarted, "w2", ActionKind::ScaleOut);
        started.detail =
            Some(json!({"request": {"op": {"op": "set_replicas", "from": 2, "to": 3}}}));
        let mut failed = ev(EventKind::ActionFailed, "w2", ActionKind::ScaleOut);
        failed.cause = Some("unavailable".into());
        failed.error = Some(
            "webhook: POST http://127.0.0.1:9000/hook returned 503 Service Unavailable".into(),
        );
        assert_eq!(
            cells(&[started, failed]),
            (
                "-".into(),
                "failed: webhook: POST http://127.0.0.1:…".into()
            )
        );
    }

    #[test]
    fn actions_that_did_not_run_show_what_they_would_do() {
        let mut dry = ev(EventKind::Decision, "d1", ActionKind::ScaleOut);
        dry.mode = Some(Mode::DryRun);
        dry.detail = Some(
            json!({"op": {"from": 2, "op": "set_replicas", "to": 4}, "verdict": "suppressed"}),
        );
        assert_eq!(
            cells(&[dry]),
            ("replicas 2→4 (planned)".into(), "dry run".into())
        );
        let mut sup = ev(EventKind::Suppressed, "d2", ActionKind::Redeploy);
        sup.cause = Some("approval".into());
        sup.detail = Some(json!({"message": "needs approval",
            "would": {"op": {"op": "redeploy", "version": "v3", "command": null}}}));
        let mut req = ev(EventKind::ApprovalRequested, "d2", ActionKind::Redeploy);
        req.detail = None;
        assert_eq!(
            cells(&[sup, req]),
            ("redeploy v3 (planned)".into(), "awaiting approval".into())
        );
        // A circuit action under way; then the same one failing: the circuit
        // did not change.
        let mut st = ev(EventKind::ActionStarted, "c1", ActionKind::CircuitBreak);
        st.instance = Some("127.0.0.1:18102".into());
        st.detail = Some(
            json!({"circuit": {"from": "closed", "open_for_ms": 30000, "to": "open"},
            "request": {"op": {"instance": "127.0.0.1:18102", "op": "circuit_open"}}}),
        );
        assert_eq!(
            cells(&[st.clone()]),
            ("closed→open (planned)".into(), "in progress".into())
        );
        let mut failed = ev(EventKind::ActionFailed, "c1", ActionKind::CircuitBreak);
        failed.error = Some("process: no replica on port 18102".into());
        assert_eq!(
            cells(&[st, failed]),
            (
                "-".into(),
                "failed: process: no replica on port 181…".into()
            )
        );
    }

    #[test]
    fn rollback_without_an_after_state_reads_the_message() {
        let mut failed = ev(EventKind::ActionFailed, "r1", ActionKind::Redeploy);
        failed.cause = Some("rolled_back".into());
        failed.error = Some(
            "rolled back: new replica of version v7 failed: process: timed out after 8000 ms; rolled back to v6".into(),
        );
        assert_eq!(
            cells(&[failed.clone()]),
            ("rolled back to v6".into(), "failed".into())
        );
        failed.error = Some("rolled back: health check failed".into());
        assert_eq!(cells(&[failed]), ("rolled back".into(), "failed".into()));
    }

    #[test]
    fn reconciled_actions_say_how() {
        let mut st = ev(EventKind::ActionStarted, "x1", ActionKind::ScaleIn);
        st.detail = Some(json!({"request": {"op": {"op": "set_replicas", "from": 3, "to": 2}}}));
        let mut rec = ev(EventKind::ActionReconciled, "x1", ActionKind::ScaleIn);
        rec.detail = Some(json!({"result": "applied"}));
        let table = summary_table(&[st, rec]);
        assert!(table.contains("reconciled: applied"), "{table}");
        assert!(table.ends_with("1 action: 1 reconciled\n"), "{table}");
    }

    #[test]
    fn long_cells_are_cut_to_keep_rows_on_one_line() {
        let mut e = ev(EventKind::ActionSucceeded, "l1", ActionKind::Failover);
        e.rule = Some("checkout-latency-scale-out-when-p99-is-high-in-eu-west".into());
        e.target = Some("checkout-eu-west-1-production".into());
        e.instance = Some("[2001:db8:1234:5678::42]:18100".into());
        e.before = Some(json!({"x": "a"}));
        e.after = Some(json!({"x": "b"}));
        let table = summary_table(&[e]);
        let row = table.lines().nth(1).unwrap();
        assert!(row.contains("checkout-latency-scale-…"), "{row}");
        assert!(row.contains("checkout-eu-wes…"), "{row}");
        assert!(row.contains("[2001:db8:1234:5678:…"), "{row}");
        assert!(row.chars().count() <= 140, "{row}");
    }
}
