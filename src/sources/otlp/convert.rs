//! Bytes → `ExportTraceServiceRequest` → per-request aggregates.
//!
//! Owns the wire formats (OTLP protobuf, OTLP JSON with enum names or numbers,
//! gzip) and the mapping of one span to its series keys (service, span name,
//! kind, status) and histogram bucket. Pure functions: no store, no clock, no
//! shared state, and no panics on any input (a proptest feeds arbitrary bytes).
use std::collections::HashMap;
use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use prost::Message;

/// Service label of spans whose resource has no `service.name`.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// Span name label of spans with an empty name (empty label values vanish).
pub const UNNAMED_SPAN: &str = "unknown";

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From a `Content-Type` value (parameters such as `charset` ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if mime.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Encoding::Protobuf)
        } else if mime.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a body could not be turned into a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid gzip body: {0}")]
    Gzip(String),
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(String),
    #[error("invalid OTLP JSON: {0}")]
    Json(String),
}

/// Gunzip with a cap on the decoded size (a small bomb must not eat memory).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut dec = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| DecodeError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

/// Decode an OTLP trace export request.
pub fn decode(body: &[u8], enc: Encoding) -> Result<ExportTraceServiceRequest, DecodeError> {
    match enc {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| DecodeError::Protobuf(e.to_string())),
        Encoding::Json => {
            let mut v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
            normalize_json_enums(&mut v);
            serde_json::from_value(v).map_err(|e| DecodeError::Json(e.to_string()))
        }
    }
}

/// The protobuf JSON mapping allows enum values by name as well as by number;
/// the generated serde types take numbers only, so names are mapped here
/// (`kind` of spans, `code` of span status). Unknown names are left alone and
/// fail decoding with a message.
fn normalize_json_enums(v: &mut serde_json::Value) {
    let Some(rs) = v.get_mut("resourceSpans").and_then(|x| x.as_array_mut()) else {
        return;
    };
    for r in rs {
        let Some(ss) = r.get_mut("scopeSpans").and_then(|x| x.as_array_mut()) else {
            continue;
        };
        for s in ss {
            let Some(spans) = s.get_mut("spans").and_then(|x| x.as_array_mut()) else {
                continue;
            };
            for sp in spans {
                if let Some(k) = sp.get_mut("kind") {
                    if let Some(n) = k.as_str().and_then(SpanKind::from_str_name) {
                        *k = serde_json::Value::from(n as i32);
                    }
                }
                if let Some(c) = sp.get_mut("status").and_then(|st| st.get_mut("code")) {
                    if let Some(n) = c.as_str().and_then(StatusCode::from_str_name) {
                        *c = serde_json::Value::from(n as i32);
                    }
                }
            }
        }
    }
}

/// Series key of the span counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanKey {
    pub service: String,
    pub span_name: String,
    pub kind: &'static str,
    pub status: &'static str,
}

/// An example span kept for on-call staff.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleSpan {
    /// Lower-case hex, as trace UIs show it.
    pub trace_id: String,
    pub duration_s: f64,
    pub error: bool,
}

/// Series key of the duration histogram (all statuses together).
pub type HistKey = (String, String, &'static str);

/// What one request adds to one histogram.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistAgg {
    pub count: u64,
    /// Summed in the order spans arrive, so the result does not depend on
    /// hash order.
    pub sum_s: f64,
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    pub buckets: Vec<u64>,
}

/// What one request adds to one [`SpanKey`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Agg {
    pub count: u64,
    /// The slowest spans of this request (at most `examples`), any status.
    pub slowest: Vec<ExampleSpan>,
    /// The latest failed spans of this request (at most `examples`).
    pub failed: Vec<ExampleSpan>,
}

/// Why a span was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// Past `max_spans_per_request`.
    RequestLimit,
    /// Bad trace id, end before start, unknown kind or status.
    Invalid,
    /// Past `max_span_names_per_service` (decided by the receiver).
    SpanNameLimit,
    /// Past the receiver's service limit (decided by the receiver).
    ServiceLimit,
}

impl Rejection {
    pub fn label(self) -> &'static str {
        match self {
            Rejection::RequestLimit => "request_limit",
            Rejection::Invalid => "invalid",
            Rejection::SpanNameLimit => "span_name_limit",
            Rejection::ServiceLimit => "service_limit",
        }
    }
}

/// A request reduced to per-series increments.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub groups: HashMap<SpanKey, Agg>,
    pub hists: HashMap<HistKey, HistAgg>,
    pub accepted: u64,
    pub rejected: HashMap<Rejection, u64>,
}

fn service_name(r: &opentelemetry_proto::tonic::trace::v1::ResourceSpans) -> String {
    r.resource
        .as_ref()
        .and_then(|res| res.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string())
}

/// Index of the bucket a duration falls in (`buckets.len()` is `+Inf`).
/// Bounds are inclusive upper bounds, as Prometheus's `le`.
pub fn bucket_index(bounds: &[f64], d: f64) -> usize {
    bounds.partition_point(|&b| b < d)
}

/// Reduce a request to per-series increments. At most `max_spans` spans are
/// taken; `examples` bounds the example spans kept per key.
pub fn aggregate(
    req: &ExportTraceServiceRequest,
    bounds: &[f64],
    max_spans: usize,
    examples: usize,
) -> Batch {
    let mut b = Batch::default();
    let mut seen: usize = 0;
    for r in &req.resource_spans {
        let service = service_name(r);
        for ss in &r.scope_spans {
            for sp in &ss.spans {
                seen += 1;
                if seen > max_spans {
                    *b.rejected.entry(Rejection::RequestLimit).or_default() += 1;
                    continue;
                }
                let kind = SpanKind::try_from(sp.kind).ok();
                let code = match &sp.status {
                    None => Some(StatusCode::Unset),
                    Some(s) => StatusCode::try_from(s.code).ok(),
                };
                let valid_id = sp.trace_id.len() == 16 && sp.trace_id.iter().any(|&x| x != 0);
                let (Some(kind), Some(code), true, true) = (
                    kind,
                    code,
                    valid_id,
                    sp.end_time_unix_nano >= sp.start_time_unix_nano,
                ) else {
                    *b.rejected.entry(Rejection::Invalid).or_default() += 1;
                    continue;
                };
                let duration_s = (sp.end_time_unix_nano - sp.start_time_unix_nano) as f64 / 1e9;
                let key = SpanKey {
                    service: service.clone(),
                    span_name: if sp.name.is_empty() {
                        UNNAMED_SPAN.to_string()
                    } else {
                        sp.name.clone()
                    },
                    kind: kind.as_str_name(),
                    status: code.as_str_name(),
                };
                let h = b
                    .hists
                    .entry((key.service.clone(), key.span_name.clone(), key.kind))
                    .or_insert_with(|| HistAgg {
                        buckets: vec![0; bounds.len() + 1],
                        ..HistAgg::default()
                    });
                h.count += 1;
                h.sum_s += duration_s;
                if let Some(slot) = h.buckets.get_mut(bucket_index(bounds, duration_s)) {
                    *slot += 1;
                }
                let agg = b.groups.entry(key).or_default();
                agg.count += 1;
                b.accepted += 1;
                if examples > 0 {
                    keep_example(
                        agg,
                        ExampleSpan {
                            trace_id: hex::encode(&sp.trace_id),
                            duration_s,
                            error: code == StatusCode::Error,
                        },
                        examples,
                    );
                }
            }
        }
    }
    b
}

/// Keep the `n` slowest and the `n` latest failed examples of one key; a later
/// span wins a tie (the newest trace is the most useful to look at).
fn keep_example(a: &mut Agg, e: ExampleSpan, n: usize) {
    if e.error {
        a.failed.push(e.clone());
        if a.failed.len() > n {
            a.failed.remove(0);
        }
    }
    a.slowest.push(e);
    if a.slowest.len() > n {
        // `min_by` returns the first of equal minima: the oldest goes.
        if let Some((i, _)) = a
            .slowest
            .iter()
            .enumerate()
            .min_by(|x, y| x.1.duration_s.total_cmp(&y.1.duration_s))
        {
            a.slowest.remove(i);
        }
    }
}
