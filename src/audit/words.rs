//! Small words of the human rendering of audit events: numbers without float
//! noise, durations, cut-off text and one-word JSON values. Pure functions,
//! shared by the event lines, the change phrases and the summary table; must
//! not know event shapes.
use serde_json::Value;

/// A number as on-call staff want to read it: no float noise, NaN spelled out.
pub(super) fn fmt_num(v: f64) -> String {
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
pub(super) const MAX_VALUE: usize = 16;
/// Longest description of a change (the CHANGE column, the change in a line).
pub(super) const MAX_CHANGE: usize = 48;
/// At most this many keys in a generic diff; the rest are counted.
pub(super) const MAX_KEYS: usize = 3;
/// Longest error text in the OUTCOME column.
pub(super) const MAX_ERROR: usize = 32;

/// Cut `s` to at most `max` characters, marking a cut with `…`.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A JSON value as one short word: `3`, `v2`, `true`, `[4 items]`, `{…}`, `-`.
pub(super) fn short_value(v: &Value) -> String {
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

pub(super) fn fmt_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{}s", fmt_num(ms as f64 / 1000.0))
    }
}
