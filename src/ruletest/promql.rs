//! `promql_expr_test` cases, run the way `promtool test rules` 2.42 runs them.
//!
//! promtool loads input samples lazily while it steps rule evaluation every
//! `evaluation_interval` up to the largest `eval_time` of the test group, so a
//! sample later than the last whole evaluation step at or before that time is
//! never loaded. We copy that: files that pass under promtool pass here.
//! Results compare as sets of (labels, value) (promtool sorts both sides by
//! labels), values with a relative tolerance of 1e-6, NaN equal to NaN.
use std::fmt::Write as _;

use super::format::{RawExprTest, RawGroup};
use super::notation::{duration_ms, expand, parse_labels, NotationError};
use crate::model::{Labels, TimestampMs};
use crate::query::{compile_with, CompileOptions, Value};
use crate::store::Store;

/// Relative tolerance of value comparisons.
pub const TOLERANCE: f64 = 1e-6;

/// A test group's input, expanded.
pub struct Group {
    pub interval_ms: i64,
    pub series: Vec<(Labels, Vec<Option<f64>>)>,
    /// The store promtool would have at the group's expression tests.
    store: Store,
}

/// The last sample time promtool loads for a group whose largest
/// `eval_time` is `max_eval_ms`.
pub fn loaded_until(max_eval_ms: i64, eval_interval_ms: i64) -> i64 {
    max_eval_ms.div_euclid(eval_interval_ms) * eval_interval_ms
}

impl Group {
    pub fn new(g: &RawGroup, eval_interval_ms: i64) -> Result<Self, NotationError> {
        // promtool 2.42 does not default `interval` to the evaluation
        // interval: without one every sample lands at time 0 and only the
        // first is kept (the others are duplicates of its timestamp).
        let interval_ms = match &g.interval {
            Some(s) => duration_ms(s)?,
            None => 0,
        };
        let mut series = Vec::new();
        for s in &g.input_series {
            series.push((parse_labels(&s.series)?, expand(&s.values)?));
        }
        let mut max_eval = 0;
        for c in &g.promql_expr_test {
            max_eval = max_eval.max(duration_ms(&c.eval_time)?);
        }
        let mut group = Group {
            interval_ms,
            series,
            store: Store::new(),
        };
        group.store = group.store_until(loaded_until(max_eval, eval_interval_ms));
        Ok(group)
    }

    /// A store with every input sample at or before `until` (with a zero
    /// interval: the first sample only, at time 0).
    pub fn store_until(&self, until: TimestampMs) -> Store {
        let mut store = Store::new();
        store.set_retention_ms(i64::MAX / 4);
        for (labels, values) in &self.series {
            for (i, v) in values.iter().enumerate() {
                let t = i as i64 * self.interval_ms;
                if t > until {
                    break;
                }
                if let Some(v) = v {
                    store.append(labels, t, *v);
                    if self.interval_ms == 0 {
                        break;
                    }
                }
            }
        }
        store
    }

    /// The last time any input series has a step.
    pub fn end_ms(&self) -> i64 {
        let steps = self.series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        (steps.saturating_sub(1) as i64) * self.interval_ms
    }

    /// Run one case; `Err` is the failure message.
    pub fn run_case(&self, case: &RawExprTest, eval_interval_ms: i64) -> Result<(), String> {
        let head = format!("expr: {:?}, eval_time: {}", case.expr, case.eval_time);
        let at = duration_ms(&case.eval_time).map_err(|e| format!("{head}: {e}"))?;
        let mut expected = Vec::new();
        for s in &case.exp_samples {
            let labels = parse_labels(&s.labels).map_err(|e| format!("{head}: {e}"))?;
            expected.push((labels, s.value));
        }
        let opts = CompileOptions {
            default_subquery_step_ms: eval_interval_ms,
        };
        let got = compile_with(&case.expr, &opts)
            .map_err(|e| e.to_string())
            .and_then(|q| q.eval(&self.store, at).map_err(|e| e.to_string()))
            .and_then(|v| match v {
                Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.value)).collect()),
                Value::Scalar(x) => Ok(vec![(Labels::empty(), x)]),
                _ => Err("expression must return an instant vector or a scalar".to_string()),
            });
        let got: Vec<(Labels, f64)> = match got {
            Ok(g) => g,
            Err(e) => return Err(format!("{head}, err: {e}")),
        };
        if same_samples(&expected, &got) {
            Ok(())
        } else {
            Err(format!(
                "{head}\n    exp: {}\n    got: {}",
                render(&expected),
                render(&got)
            ))
        }
    }
}

/// `a` and `b` equal within the tolerance; NaN equals NaN.
pub fn values_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    (a - b).abs() <= TOLERANCE * a.abs().max(b.abs())
}

/// Same label sets (order-insensitive) with equal values.
pub fn same_samples(exp: &[(Labels, f64)], got: &[(Labels, f64)]) -> bool {
    if exp.len() != got.len() {
        return false;
    }
    let mut e: Vec<&(Labels, f64)> = exp.iter().collect();
    let mut g: Vec<&(Labels, f64)> = got.iter().collect();
    e.sort_by(|a, b| a.0.cmp(&b.0));
    g.sort_by(|a, b| a.0.cmp(&b.0));
    e.iter()
        .zip(&g)
        .all(|(x, y)| x.0 == y.0 && values_equal(x.1, y.1))
}

/// promtool-like: `{__name__="a", x="1"} 2, {} 3`, sorted by labels.
pub fn render(samples: &[(Labels, f64)]) -> String {
    let mut s: Vec<&(Labels, f64)> = samples.iter().collect();
    s.sort_by(|a, b| a.0.cmp(&b.0));
    if s.is_empty() {
        return "(none)".into();
    }
    let mut out = String::new();
    for (i, (labels, v)) in s.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let _ = write!(out, "{{{}}} {v}", inner.join(", "));
    }
    out
}
