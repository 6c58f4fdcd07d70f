//! PromQL evaluation over the local store (parser: `promql-parser`).
//!
//! Owns: compiling an expression (rejecting, at load time, every construct we do
//! not evaluate, by name), instant evaluation at a given time with Prometheus
//! 2.42's semantics, and the Prometheus HTTP API response format. Must not read
//! the clock: the evaluation time is always an argument.
//!
//! Layout: [`compile`] turns the parser's AST into our own plan (`Node`),
//! `eval` walks the plan against the store, `functions`, `aggregate` and
//! `binary` hold the operators, `api` the JSON format.
use crate::clock::TimestampMs;
use crate::labels::Labels;
use crate::store::Store;

mod aggregate;
mod api;
mod binary;
mod compile;
mod eval;
mod functions;
#[cfg(test)]
mod tests;

pub use api::{api_json, format_value};
use compile::Node;

/// Prometheus's default lookback for instant vector selectors (5 minutes).
pub const LOOKBACK_MS: i64 = 300_000;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error("parse error: {0}")]
    Parse(String),
    #[error("{0} is not supported by homeostat's evaluator")]
    Unsupported(String),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct EvalError(pub String);

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<(TimestampMs, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
    Matrix(Vec<RangeSeries>),
    String(String),
}

/// A compiled expression, ready to evaluate any number of times.
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    root: Node,
    max_range_ms: i64,
}

/// Parse and check an expression. Every construct the parser accepts but we do
/// not evaluate is rejected here as [`QueryError::Unsupported`], naming it.
pub fn compile(text: &str) -> Result<Query, QueryError> {
    let ast = promql_parser::parser::parse(text).map_err(QueryError::Parse)?;
    let root = compile::lower(&ast)?;
    let max_range_ms = root.max_range_ms();
    Ok(Query {
        text: text.to_string(),
        root,
        max_range_ms,
    })
}

impl Query {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The furthest back (ms before the evaluation time) this query reads:
    /// the longest range (or the lookback, for instant selectors) plus offset.
    pub fn max_range_ms(&self) -> i64 {
        self.max_range_ms
    }

    /// Evaluate at `at` (ms since the epoch), as a Prometheus instant query.
    pub fn eval(&self, store: &Store, at: TimestampMs) -> Result<Value, EvalError> {
        let v = eval::Evaluator::new(store, at).eval(&self.root)?;
        Ok(v.into_public())
    }

    /// Evaluate to an instant vector: a scalar becomes one sample with empty
    /// labels; strings and range vectors are errors.
    pub fn eval_vector(&self, store: &Store, at: TimestampMs) -> Result<Vec<Sample>, EvalError> {
        match self.eval(store, at)? {
            Value::Vector(v) => Ok(v),
            Value::Scalar(x) => Ok(vec![Sample {
                labels: Labels::empty(),
                value: x,
            }]),
            Value::Matrix(_) => Err(EvalError(
                "expression returns a range vector, an instant vector or scalar is needed".into(),
            )),
            Value::String(_) => Err(EvalError(
                "expression returns a string, an instant vector or scalar is needed".into(),
            )),
        }
    }

    /// True when one of the query's selectors matches a series that is stale
    /// at `at`: its newest sample is a stale marker, or it is older than the
    /// lookback window. Lets the rule engine tell "stale" from "missing".
    pub fn selects_stale(&self, store: &Store, at: TimestampMs) -> bool {
        let mut stale = false;
        self.root.visit_selectors(&mut |sel| {
            if !stale {
                stale = eval::selector_is_stale(store, sel, at);
            }
        });
        stale
    }
}
