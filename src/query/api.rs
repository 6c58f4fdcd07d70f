//! The `data` object of Prometheus's `/api/v1/query` response for a
//! [`Value`]: `resultType` plus `result`, timestamps as float seconds and
//! sample values as strings formatted the way Prometheus formats them.
use serde_json::{json, Map, Value as Json};

use super::Value;
use crate::model::{Labels, TimestampMs};

/// A sample value as Prometheus writes it: `NaN`, `+Inf`, `-Inf`, otherwise
/// the shortest decimal that round-trips, never in exponent form (Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)`; Rust's `Display` is the same).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

fn ts(t: TimestampMs) -> Json {
    // Whole seconds stay integers in JSON (Prometheus prints `1700000000`).
    if t % 1000 == 0 {
        json!(t / 1000)
    } else {
        json!(t as f64 / 1000.0)
    }
}

fn point(t: TimestampMs, v: f64) -> Json {
    Json::Array(vec![ts(t), Json::String(format_value(v))])
}

fn metric(l: &Labels) -> Json {
    let mut m = Map::new();
    for (k, v) in l.iter() {
        m.insert(k.to_string(), Json::String(v.to_string()));
    }
    Json::Object(m)
}

/// The `data` object of an instant query evaluated at `at`.
pub fn api_json(v: &Value, at: TimestampMs) -> Json {
    match v {
        Value::Scalar(x) => json!({"resultType": "scalar", "result": point(at, *x)}),
        Value::String(s) => json!({"resultType": "string", "result": [ts(at), s]}),
        Value::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples
                .iter()
                .map(|s| json!({"metric": metric(&s.labels), "value": point(at, s.value)}))
                .collect::<Vec<_>>(),
        }),
        Value::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series
                .iter()
                .map(|s| json!({
                    "metric": metric(&s.labels),
                    "values": s.samples.iter().map(|&(t, v)| point(t, v)).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>(),
        }),
    }
}
