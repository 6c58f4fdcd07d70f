//! PromQL evaluation over the local store (parser: `promql-parser`).
//!
//! Owns: compiling an expression (rejecting, at load time, every construct we do
//! not evaluate, by name), instant evaluation at a given time, and the
//! Prometheus HTTP API response format. Must not read the clock.
// API CONTRACT (being implemented; signatures fixed):
use crate::clock::TimestampMs;
use crate::labels::Labels;
use crate::store::Store;

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

#[derive(Debug, Clone)]
pub struct Query {
    text: String,
}

pub fn compile(text: &str) -> Result<Query, QueryError> {
    promql_parser::parser::parse(text).map_err(QueryError::Parse)?;
    Ok(Query {
        text: text.to_string(),
    })
}

impl Query {
    pub fn text(&self) -> &str {
        &self.text
    }
    pub fn max_range_ms(&self) -> i64 {
        0
    }
    pub fn eval(&self, _store: &Store, _at: TimestampMs) -> Result<Value, EvalError> {
        Err(EvalError("evaluator not implemented yet".into()))
    }
}

pub fn api_json(_v: &Value, _at: TimestampMs) -> serde_json::Value {
    serde_json::Value::Null
}
