//! The evaluator's values: instant-vector elements, range-vector series, and
//! a node's result, with the label-set uniqueness check Prometheus applies.
//! Shared by the evaluator and the functions, aggregations and operators it
//! dispatches to; it knows nothing of how values are computed.
use std::collections::HashSet;
use std::sync::Arc;

use super::{EvalError, RangeSeries, Value};
use crate::model::{Labels, Sample, TimestampMs, METRIC_NAME};

/// One element of an instant vector. `drop_name` hides `__name__` without
/// copying the label set.
#[derive(Debug, Clone)]
pub(crate) struct Elem {
    pub labels: Arc<Labels>,
    pub drop_name: bool,
    pub value: f64,
}

impl Elem {
    pub fn new(labels: Arc<Labels>, value: f64) -> Self {
        Elem {
            labels,
            drop_name: false,
            value,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        if self.drop_name && name == METRIC_NAME {
            return None;
        }
        self.labels.get(name)
    }

    /// Labels as seen by PromQL (without the name once it was dropped).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let drop = self.drop_name;
        self.labels
            .iter()
            .filter(move |(k, _)| !(drop && *k == METRIC_NAME))
    }

    pub fn to_labels(&self) -> Labels {
        if self.drop_name && self.labels.metric_name().is_some() {
            self.labels.without_metric_name()
        } else {
            (*self.labels).clone()
        }
    }

    /// Same element with the metric name dropped and a new value.
    pub fn with_value_no_name(&self, value: f64) -> Elem {
        Elem {
            labels: self.labels.clone(),
            drop_name: true,
            value,
        }
    }
}

/// One series of a range vector (stale markers already removed).
#[derive(Debug, Clone)]
pub(crate) struct MSeries {
    pub labels: Arc<Labels>,
    pub samples: Vec<(TimestampMs, f64)>,
}

/// Internal value of a node.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Vector(Vec<Elem>),
    Matrix(Vec<MSeries>),
    Str(String),
}

impl Val {
    pub fn into_public(self) -> Value {
        match self {
            Val::Scalar(x) => Value::Scalar(x),
            Val::Str(s) => Value::String(s),
            Val::Vector(v) => Value::Vector(
                v.iter()
                    .map(|e| Sample {
                        labels: e.to_labels(),
                        value: e.value,
                    })
                    .collect(),
            ),
            Val::Matrix(m) => Value::Matrix(
                m.into_iter()
                    .map(|s| RangeSeries {
                        labels: (*s.labels).clone(),
                        samples: s.samples,
                    })
                    .collect(),
            ),
        }
    }

    /// Samples this value holds, as the evaluation's budget charges them.
    pub(super) fn sample_count(&self) -> usize {
        match self {
            Val::Scalar(_) | Val::Str(_) => 1,
            Val::Vector(v) => v.len(),
            Val::Matrix(m) => m.iter().map(|s| s.samples.len()).sum(),
        }
    }

    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
            Val::Str(_) => "string",
        }
    }
}

/// Error out if two elements have the same label set (after a name drop), as
/// Prometheus does ("vector cannot contain metrics with the same labelset").
pub(crate) fn check_unique(v: &[Elem]) -> Result<(), EvalError> {
    // Without a dropped name every element is a distinct store series.
    if v.len() < 2 || !v.iter().any(|e| e.drop_name) {
        return Ok(());
    }
    let mut seen: HashSet<Vec<(&str, &str)>> = HashSet::with_capacity(v.len());
    for e in v {
        if !seen.insert(e.iter().collect()) {
            return Err(EvalError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Like [`check_unique`], for results whose labels were rewritten.
pub(crate) fn check_unique_all(v: &[Elem]) -> Result<(), EvalError> {
    let mut seen: HashSet<Vec<(&str, &str)>> = HashSet::with_capacity(v.len());
    for e in v {
        if !seen.insert(e.iter().collect()) {
            return Err(EvalError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}
