//! PromQL evaluation over the local store (parser: `promql-parser`).
//!
//! Owns: compiling an expression (rejecting, at load time, every construct we do
//! not evaluate, by name), instant evaluation at a given time, and the
//! Prometheus HTTP API response format. Must not read the clock.
// API CONTRACT:
//   compile(text: &str) -> Result<Query, QueryError>
//   Query::text(&self) -> &str
//   Query::max_range_ms(&self) -> i64     (longest range + offsets it reads; retention input)
//   Query::eval(&self, store: &Store, at: TimestampMs) -> Result<Value, EvalError>
//   Value::{Scalar(f64), Vector(Vec<Sample>), Matrix(Vec<RangeSeries>), String(String)}
//   Sample { labels: Labels, value: f64 }
//   api_json(&Value, at) -> serde_json::Value     ({"resultType":..., "result":...})
