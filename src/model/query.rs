//! What a query gave the rule engine: samples, or one of the distinct kinds
//! of "no data" (missing, stale, failed, a remote source's empty answer or
//! failure). Pure data shared by the evaluator, the remote sources, the rule
//! engine, the audit reason and the metrics.
use serde::Serialize;

use super::Labels;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// What one named query produced at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryOutcome {
    /// At least one sample.
    Ok(Vec<Sample>),
    /// No series matched (an empty `Ok` is `Missing` too).
    Missing,
    /// The matched series ended with staleness markers (target gone).
    Stale,
    /// Evaluation failed.
    Failed(String),
    /// A remote source answered, with no series (its "missing").
    Empty { source: String },
    /// A remote source did not answer with a result.
    SourceFailed {
        source: String,
        kind: SourceFailure,
        error: String,
    },
}

/// A rule query a remote source evaluates: the rule's name for it, the
/// source and the PromQL, as the rule loader validated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteQuery {
    pub name: String,
    pub source: String,
    pub expr: String,
}

/// Why a remote source gave no result. Each is a distinct no-data kind in the
/// rule status, the audit reason and `homeostat_source_queries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFailure {
    /// No HTTP answer, or a non-2xx status that is not a query error.
    HttpError,
    /// The source rejected or could not execute the query (`bad_data`,
    /// `execution`), or the result type cannot be used (range vector, string).
    PromqlError,
    /// No answer within the source's timeout (or the source's own query timeout).
    Timeout,
}

impl SourceFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFailure::HttpError => "http_error",
            SourceFailure::PromqlError => "promql_error",
            SourceFailure::Timeout => "timeout",
        }
    }
}

impl QueryOutcome {
    /// From a local evaluation's result (its error as text) and whether the
    /// expression selects series that ended with staleness markers.
    pub fn from_eval(result: Result<Vec<Sample>, String>, selects_stale: bool) -> Self {
        match result {
            Err(e) => QueryOutcome::Failed(e),
            Ok(v) if !v.is_empty() => QueryOutcome::Ok(v),
            Ok(_) if selects_stale => QueryOutcome::Stale,
            Ok(_) => QueryOutcome::Missing,
        }
    }
}
