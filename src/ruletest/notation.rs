//! promtool's input notation: the expanding series values (`1+2x3`, `_`,
//! `stale`, `_x3`), series/label descriptions (`up{job="a"}`) and durations.
//!
//! Owns only text → values. Must not touch the store or the evaluator.
use std::collections::BTreeMap;

use crate::model::Labels;
use crate::store::stale_nan;

/// A value string or label description promtool would reject.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotationError {
    #[error("invalid value {token:?} in {values:?}: {why}")]
    Value {
        values: String,
        token: String,
        why: String,
    },
    #[error("invalid series description {0:?}: {1}")]
    Labels(String, String),
    #[error("invalid duration {0:?}: {1}")]
    Duration(String, String),
}

/// A duration in promtool's syntax (`1m30s`, `500ms`, `0`) → milliseconds.
pub fn duration_ms(s: &str) -> Result<i64, NotationError> {
    let d =
        crate::spec::parse_duration(s).map_err(|e| NotationError::Duration(s.to_string(), e))?;
    i64::try_from(d.as_millis())
        .map_err(|_| NotationError::Duration(s.to_string(), "too large".into()))
}

fn number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Inf" | "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s
            .parse()
            .ok()
            .filter(|_| !s.starts_with(['+']) || s.len() > 1),
    }
}

/// Expand promtool's notation into one optional value per interval step
/// (`None`: no sample at that step). `a+bxN` and `a-bxN` give N+1 values
/// (`a`, `a±b`, … `a±N·b`), `axN` is `a+0xN`, `_xN` gives N missing steps,
/// `stale` a staleness marker.
pub fn expand(values: &str) -> Result<Vec<Option<f64>>, NotationError> {
    let mut out = Vec::new();
    for tok in values.split_whitespace() {
        let bad = |why: &str| NotationError::Value {
            values: values.to_string(),
            token: tok.to_string(),
            why: why.to_string(),
        };
        if tok == "_" {
            out.push(None);
        } else if tok == "stale" {
            out.push(Some(stale_nan()));
        } else if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| bad("repeat count"))?;
            out.extend(std::iter::repeat_n(None, n));
        } else if let Some(x) = tok.rfind('x') {
            let n: usize = tok[x + 1..]
                .parse()
                .map_err(|_| bad("repeat count after x"))?;
            let head = &tok[..x];
            // The sign of the step is the first + or - after the first character
            // that is not part of an exponent (`1e+3+1x2`).
            let bytes = head.as_bytes();
            let split = (1..bytes.len())
                .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
            let (a, b) = match split {
                Some(i) => (
                    number(&head[..i]).ok_or_else(|| bad("start value"))?,
                    number(&head[i..]).ok_or_else(|| bad("step"))?,
                ),
                None => (number(head).ok_or_else(|| bad("value"))?, 0.0),
            };
            // Prometheus accumulates the step (a, a+b, (a+b)+b, …).
            let mut v = a;
            for _ in 0..=n {
                out.push(Some(v));
                v += b;
            }
        } else {
            out.push(Some(number(tok).ok_or_else(|| bad("not a number"))?));
        }
    }
    Ok(out)
}

/// `name{a="b"}`, `{__name__="name", a="b"}`, `name`, `{}` or `` → labels.
pub fn parse_labels(desc: &str) -> Result<Labels, NotationError> {
    let d = desc.trim();
    if d.is_empty() || d == "{}" {
        return Ok(Labels::empty());
    }
    let err = |why: String| NotationError::Labels(desc.to_string(), why);
    let expr = crate::query::parse(d).map_err(|e| err(e.to_string()))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(err("not a series description".into()));
    };
    let mut pairs = BTreeMap::new();
    for m in &vs.matchers.matchers {
        if m.op.to_string() != "=" {
            return Err(err(format!("label {} must use =", m.name)));
        }
        pairs.insert(m.name.clone(), m.value.clone());
    }
    if let Some(n) = vs.name {
        pairs.insert("__name__".to_string(), n);
    }
    Ok(Labels::new(pairs))
}
