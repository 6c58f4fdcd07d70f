//! PromQL evaluation over the local store (parser: `promql-parser`).
//!
//! Owns: compiling an expression (rejecting, at load time, every construct we do
//! not evaluate, by name), instant evaluation at a given time with Prometheus
//! 2.42's semantics, and the Prometheus HTTP API response format. Must not read
//! the clock: the evaluation time is always an argument.
//!
//! Layout: [`compile`] turns the parser's AST into our own plan (`Node`),
//! `eval` walks the plan against the store, `functions`, `aggregate` and
//! `binary` hold the operators, `api` the JSON format, [`limits`] what one
//! query may cost (length and depth before parsing; samples held, deadline
//! and cancellation while evaluating).
//!
//! ```
//! use homeostat::labels::Labels;
//! use homeostat::query::{api_json, compile};
//! use homeostat::store::Store;
//!
//! let mut store = Store::new();
//! let series = Labels::new([("__name__", "http_requests_total"), ("job", "checkout")]);
//! for i in 0..=6 {
//!     store.append(&series, i * 10_000, (i * 50) as f64); // +5/s, every 10s
//! }
//! let q = compile(r#"sum(rate(http_requests_total{job="checkout"}[1m])) > 1"#).unwrap();
//! assert_eq!(q.max_range_ms(), 60_000);
//! let v = q.eval_vector(&store, 60_000).unwrap();
//! assert_eq!(v[0].value, 5.0);
//! let data = api_json(&q.eval(&store, 60_000).unwrap(), 60_000);
//! assert_eq!(data["result"][0]["value"][1], "5");
//! ```
use crate::model::{Labels, QueryOutcome, Sample, TimestampMs};
use crate::store::Store;

mod aggregate;
mod api;
mod binary;
mod compile;
#[cfg(test)]
mod difftest;
mod eval;
mod functions;
pub mod limits;
#[cfg(test)]
mod tests;
mod value;

pub use api::{api_json, format_value};
use compile::Node;
pub use limits::{CancelFlag, EvalLimits, QueryLimits};

/// Prometheus's default lookback for instant vector selectors (5 minutes).
pub const LOOKBACK_MS: i64 = 300_000;

/// Step of a subquery written without one (`x[5m:]`). Prometheus uses its
/// global evaluation interval, whose default is 1m (as is promtool's).
pub const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// A load-time error: the text is too long or too deep to parse safely, does
/// not parse, or uses a construct we do not evaluate (named in the message).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error("parse error: {0}")]
    Parse(String),
    #[error("{0} is not supported by homeostat's evaluator")]
    Unsupported(String),
    #[error("the expression is {len} bytes long; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error(
        "the expression nests too deeply: past {max} levels of brackets and operators at line {line}, column {column} of the expression"
    )]
    TooDeep {
        max: usize,
        line: usize,
        column: usize,
    },
}

/// An evaluation-time error, with Prometheus's message where it has one
/// (ambiguous vector matching, duplicate label sets after dropping the name),
/// or a limit of [`EvalLimits`] that stopped the evaluation.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum EvalError {
    #[error("{0}")]
    Execution(String),
    #[error(
        "query processing would load too many samples into memory in query execution (limit query.max_samples: {limit})"
    )]
    TooManySamples { limit: usize },
    #[error("query timed out in query execution (limit query.timeout: {})", crate::spec::format_duration(*after))]
    Timeout { after: std::time::Duration },
    #[error("query cancelled: the client went away")]
    Cancelled,
}

/// One series of a range vector, samples oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<(TimestampMs, f64)>,
}

/// The result of an instant query.
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

/// Settings that change what an expression means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// Step of subqueries written without one (`x[5m:]`): Prometheus's
    /// global evaluation interval (promtool: the test file's
    /// `evaluation_interval`).
    pub default_subquery_step_ms: i64,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            default_subquery_step_ms: DEFAULT_SUBQUERY_STEP_MS,
        }
    }
}

/// Parse and check an expression. Every construct the parser accepts but we do
/// not evaluate is rejected here as [`QueryError::Unsupported`], naming it.
pub fn compile(text: &str) -> Result<Query, QueryError> {
    compile_with(text, &CompileOptions::default())
}

/// [`compile`] with explicit options.
pub fn compile_with(text: &str, opts: &CompileOptions) -> Result<Query, QueryError> {
    let ast = parse(text)?;
    let root = compile::lower(&ast, opts)?;
    let max_range_ms = root.max_range_ms();
    Ok(Query {
        text: text.to_string(),
        root,
        max_range_ms,
    })
}

/// Parse PromQL with `promql-parser`, after [`limits::check_text`]: every
/// PromQL text from a user goes through here (the parser recurses).
pub fn parse(text: &str) -> Result<promql_parser::parser::Expr, QueryError> {
    limits::check_text(text)?;
    promql_parser::parser::parse(text).map_err(QueryError::Parse)
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

    /// Evaluate at `at` (ms since the epoch), as a Prometheus instant query,
    /// with the default sample limit and no deadline.
    pub fn eval(&self, store: &Store, at: TimestampMs) -> Result<Value, EvalError> {
        self.eval_with(store, at, &EvalLimits::default())
    }

    /// [`Query::eval`] within `limits`.
    pub fn eval_with(
        &self,
        store: &Store,
        at: TimestampMs,
        limits: &EvalLimits,
    ) -> Result<Value, EvalError> {
        self.run(store, at, limits)
    }

    /// [`Query::eval_with`] on a shared store, read-locked for one selector
    /// at a time: however long the evaluation, writers wait for at most one
    /// selection (the HTTP API evaluates this way).
    pub fn eval_shared(
        &self,
        store: &std::sync::RwLock<Store>,
        at: TimestampMs,
        limits: &EvalLimits,
    ) -> Result<Value, EvalError> {
        self.run(store, at, limits)
    }

    fn run(
        &self,
        store: &dyn eval::StoreView,
        at: TimestampMs,
        limits: &EvalLimits,
    ) -> Result<Value, EvalError> {
        let budget = limits::Budget::new(limits);
        budget.check_now()?;
        let v = eval::Evaluator::new(store, at, &budget).eval(&self.root)?;
        Ok(v.into_public())
    }

    /// Evaluate to an instant vector: a scalar becomes one sample with empty
    /// labels; strings and range vectors are errors.
    pub fn eval_vector(&self, store: &Store, at: TimestampMs) -> Result<Vec<Sample>, EvalError> {
        self.eval_vector_with(store, at, &EvalLimits::default())
    }

    /// [`Query::eval_vector`] within `limits`.
    pub fn eval_vector_with(
        &self,
        store: &Store,
        at: TimestampMs,
        limits: &EvalLimits,
    ) -> Result<Vec<Sample>, EvalError> {
        match self.eval_with(store, at, limits)? {
            Value::Vector(v) => Ok(v),
            Value::Scalar(x) => Ok(vec![Sample {
                labels: Labels::empty(),
                value: x,
            }]),
            Value::Matrix(_) => Err(EvalError::Execution(
                "expression returns a range vector, an instant vector or scalar is needed".into(),
            )),
            Value::String(_) => Err(EvalError::Execution(
                "expression returns a string, an instant vector or scalar is needed".into(),
            )),
        }
    }

    /// What a rule sees of this query at `at`: samples, or missing, stale or
    /// failed. Only an empty answer pays for the staleness probe.
    pub fn outcome(&self, store: &Store, at: TimestampMs) -> QueryOutcome {
        self.outcome_with(store, at, &EvalLimits::default())
    }

    /// [`Query::outcome`] within `limits`.
    pub fn outcome_with(
        &self,
        store: &Store,
        at: TimestampMs,
        limits: &EvalLimits,
    ) -> QueryOutcome {
        let result = self
            .eval_vector_with(store, at, limits)
            .map_err(|e| e.to_string());
        let stale = matches!(&result, Ok(v) if v.is_empty()) && self.selects_stale(store, at);
        QueryOutcome::from_eval(result, stale)
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
