//! OTLP/HTTP trace receiver: `POST /v1/traces` → span metrics in the store.
//!
//! Owns the endpoint (content types, gzip, limits, OTLP responses), the
//! cumulative span counters and duration histograms (kept here, written to the
//! store as running totals), the span-name cardinality cap, and the
//! [`ExemplarIndex`] of example trace ids the rule engine attaches to decisions.
//! Must not evaluate rules or decide anything, and must not read the wall clock
//! (time comes from the agent's [`Clock`]).
//!
//! Series written (all counters, cumulative since the agent started):
//! - `traces_spans_total{service, span_name, span_kind, status_code}`
//! - `traces_span_duration_seconds_bucket{service, span_name, span_kind, le}`,
//!   `_sum`, `_count` (all statuses together, as a latency SLO wants)
//! - `traces_spans_dropped_total{reason}`: `invalid`, `request_limit`,
//!   `span_name_limit`, `service_limit` (more than [`MAX_SERVICES`]).
//!
//! **Timestamps are receive time**, not the span's end time: the store drops
//! out-of-order samples per series and exporters batch spans for seconds, so
//! end-time stamps would lose data and make fresh data look stale to the 5m
//! lookback. A counter written at receive time is monotonic in time and value,
//! so `rate()` and staleness behave as for a scraped counter: a service that
//! stops sending spans keeps its last total until it falls out of the lookback
//! (rules then see missing data, which never scales in). Two requests in the
//! same millisecond are written 1 ms apart so neither total is lost.
pub mod config;
pub mod convert;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use crate::clock::Clock;
use crate::locks::lock;
use crate::model::{Labels, TimestampMs, METRIC_NAME};
use crate::store::SharedStore;
pub use config::OtlpConfig;
use convert::{Agg, Batch, DecodeError, Encoding, Rejection, SpanKey};

pub const SPANS_TOTAL: &str = "traces_spans_total";
pub const DURATION: &str = "traces_span_duration_seconds";
pub const DROPPED_TOTAL: &str = "traces_spans_dropped_total";
/// How long an example trace id stays eligible.
pub const EXEMPLAR_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Most distinct services the receiver keeps series for; spans of further
/// services are dropped (`traces_spans_dropped_total{reason="service_limit"}`).
/// With `max_span_names_per_service` this bounds the receiver's memory.
pub const MAX_SERVICES: usize = 1_000;
/// Most trace ids one decision carries.
pub const MAX_TRACE_IDS_PER_DECISION: usize = 10;

/// Why a request was refused as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExportError {
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: use gzip or none")]
    UnsupportedEncoding(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl ExportError {
    pub fn status(&self) -> StatusCode {
        match self {
            ExportError::UnsupportedContentType(_) | ExportError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ExportError::Decode(DecodeError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ExportError::Decode(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// `google.rpc.Status`, the error body OTLP/HTTP specifies (details omitted).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Example trace ids per series (service, span name, kind): the slowest N and
/// the N most recent failed spans seen in the last [`EXEMPLAR_WINDOW_MS`].
///
/// The rule engine asks [`ExemplarIndex::for_decision`] when a rule's queries
/// read `traces_*` series, so a decision's audit reason names real traces.
#[derive(Debug, Default)]
pub struct ExemplarIndex {
    per_series: usize,
    series: Mutex<HashMap<(String, String, &'static str), Kept>>,
}

#[derive(Debug, Default)]
struct Kept {
    /// Slowest first.
    slowest: Vec<(f64, TimestampMs, String)>,
    /// Most recent last.
    failed: VecDeque<(TimestampMs, String)>,
}

impl ExemplarIndex {
    pub fn new(per_series: usize) -> Self {
        ExemplarIndex {
            per_series,
            series: Mutex::new(HashMap::new()),
        }
    }

    fn record(&self, key: &SpanKey, agg: &Agg, at: TimestampMs) {
        if self.per_series == 0 || agg.slowest.is_empty() {
            return;
        }
        let mut m = lock(&self.series);
        let k = m
            .entry((key.service.clone(), key.span_name.clone(), key.kind))
            .or_default();
        let cutoff = at - EXEMPLAR_WINDOW_MS;
        k.slowest.retain(|(_, t, _)| *t >= cutoff);
        k.failed.retain(|(t, _)| *t >= cutoff);
        for e in &agg.failed {
            k.failed.push_back((at, e.trace_id.clone()));
            while k.failed.len() > self.per_series {
                k.failed.pop_front();
            }
        }
        for e in &agg.slowest {
            k.slowest.push((e.duration_s, at, e.trace_id.clone()));
        }
        // Slowest first; on a tie the newer one.
        k.slowest
            .sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        k.slowest.truncate(self.per_series);
    }

    /// Trace ids for series whose `service`, `span_name` and `span_kind` agree
    /// with `labels` (a label absent from `labels` matches anything), failed
    /// spans first (most recent first), then the slowest; at most
    /// [`MAX_TRACE_IDS_PER_DECISION`]. Entries older than the window are skipped.
    pub fn trace_ids(&self, labels: &Labels, now: TimestampMs) -> Vec<String> {
        let services: Vec<&str> = labels.get("service").into_iter().collect();
        self.lookup(&services, labels, now)
    }

    /// The hook for the rule engine: `None` unless one of `exprs` reads a
    /// `traces_` series. The service comes from the decision's `service` label,
    /// else from `service="..."` matchers written in the queries (a rule over
    /// `sum(rate(traces_spans_total{service="checkout"}[1m]))` has no labels);
    /// with neither, no ids (rather than unrelated ones).
    pub fn for_decision(
        &self,
        exprs: &[&str],
        labels: &Labels,
        now: TimestampMs,
    ) -> Option<Vec<String>> {
        if !exprs.iter().any(|e| e.contains("traces_span")) {
            return None;
        }
        let mut services: Vec<String> = labels
            .get("service")
            .map(String::from)
            .into_iter()
            .collect();
        if services.is_empty() {
            for e in exprs {
                let mut rest = *e;
                while let Some(i) = rest.find("service=\"") {
                    rest = &rest[i + "service=\"".len()..];
                    if let Some(j) = rest.find('"') {
                        services.push(rest[..j].to_string());
                        rest = &rest[j..];
                    }
                }
            }
        }
        if services.is_empty() {
            return Some(Vec::new());
        }
        let s: Vec<&str> = services.iter().map(String::as_str).collect();
        Some(self.lookup(&s, labels, now))
    }

    fn lookup(&self, services: &[&str], labels: &Labels, now: TimestampMs) -> Vec<String> {
        let m = lock(&self.series);
        let cutoff = now - EXEMPLAR_WINDOW_MS;
        let mut keys: Vec<_> = m
            .iter()
            .filter(|((svc, name, kind), _)| {
                (services.is_empty() || services.contains(&svc.as_str()))
                    && labels.get("span_name").is_none_or(|v| v == name)
                    && labels.get("span_kind").is_none_or(|v| v == *kind)
            })
            .collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let mut failed: Vec<(TimestampMs, &str)> = keys
            .iter()
            .flat_map(|(_, k)| k.failed.iter().filter(|(t, _)| *t >= cutoff))
            .map(|(t, id)| (*t, id.as_str()))
            .collect();
        failed.sort_by_key(|x| std::cmp::Reverse(x.0));
        let mut slow: Vec<(f64, &str)> = keys
            .iter()
            .flat_map(|(_, k)| k.slowest.iter().filter(|(_, t, _)| *t >= cutoff))
            .map(|(d, _, id)| (*d, id.as_str()))
            .collect();
        slow.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut out: Vec<String> = Vec::new();
        for id in failed.iter().map(|x| x.1).chain(slow.iter().map(|x| x.1)) {
            if out.len() >= MAX_TRACE_IDS_PER_DECISION {
                break;
            }
            if !out.iter().any(|x| x == id) {
                out.push(id.to_string());
            }
        }
        out
    }
}

struct CounterState {
    labels: Labels,
    total: u64,
}

struct HistState {
    bucket_labels: Vec<Labels>,
    sum_labels: Labels,
    count_labels: Labels,
    /// Cumulative per `le`, last is `+Inf`.
    cumulative: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Totals {
    counters: HashMap<SpanKey, CounterState>,
    hists: HashMap<(String, String, &'static str), HistState>,
    names: HashMap<String, HashSet<String>>,
    dropped: HashMap<Rejection, u64>,
    last_ts: TimestampMs,
}

/// What one accepted request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub accepted: u64,
    pub rejected: u64,
    /// Rejected spans by reason (`traces_spans_dropped_total`'s `reason`).
    pub by_reason: Vec<(&'static str, u64)>,
}

/// The receiver: limits, cumulative span metrics, example trace ids.
pub struct OtlpReceiver {
    cfg: OtlpConfig,
    store: SharedStore,
    clock: Clock,
    exemplars: Arc<ExemplarIndex>,
    state: Mutex<Totals>,
    le: Vec<String>,
}

impl OtlpReceiver {
    pub fn new(cfg: OtlpConfig, store: SharedStore, clock: Clock) -> Self {
        let mut le: Vec<String> = cfg.buckets.iter().map(|b| format_le(*b)).collect();
        le.push("+Inf".into());
        OtlpReceiver {
            exemplars: Arc::new(ExemplarIndex::new(cfg.exemplars_per_series)),
            cfg,
            store,
            clock,
            state: Mutex::new(Totals::default()),
            le,
        }
    }

    /// The example trace ids, shared with the rule engine.
    pub fn exemplars(&self) -> Arc<ExemplarIndex> {
        self.exemplars.clone()
    }

    pub fn config(&self) -> &OtlpConfig {
        &self.cfg
    }

    /// `POST /v1/traces` on a router sharing the server's limits.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/traces", post(export))
            .with_state(self.clone())
    }

    /// The whole request, without HTTP: headers' values, body → response.
    pub fn handle(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: &[u8],
        now: TimestampMs,
    ) -> Result<(Encoding, ExportTraceServiceResponse), (Option<Encoding>, ExportError)> {
        let ct = content_type.unwrap_or("");
        let enc = Encoding::from_content_type(ct)
            .ok_or_else(|| (None, ExportError::UnsupportedContentType(ct.to_string())))?;
        let limit = self.cfg.max_body_bytes;
        let err = |e: DecodeError| (Some(enc), ExportError::Decode(e));
        if body.len() > limit {
            return Err(err(DecodeError::TooLarge { limit }));
        }
        let gunzipped;
        let raw = match content_encoding.map(str::trim) {
            None | Some("") | Some("identity") => body,
            Some(e) if e.eq_ignore_ascii_case("gzip") => {
                gunzipped = convert::gunzip(body, limit).map_err(err)?;
                &gunzipped[..]
            }
            Some(other) => {
                return Err((
                    Some(enc),
                    ExportError::UnsupportedEncoding(other.to_string()),
                ))
            }
        };
        let req = convert::decode(raw, enc).map_err(err)?;
        let batch = convert::aggregate(
            &req,
            &self.cfg.buckets,
            self.cfg.max_spans_per_request,
            self.cfg.exemplars_per_series,
        );
        let r = self.ingest(batch, now);
        let partial_success = (r.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(r.rejected).unwrap_or(i64::MAX),
            error_message: format!(
                "{} of {} spans rejected ({}); see traces_spans_dropped_total",
                r.rejected,
                r.rejected + r.accepted,
                r.by_reason
                    .iter()
                    .map(|(why, n)| format!("{why}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        Ok((enc, ExportTraceServiceResponse { partial_success }))
    }

    /// Apply a request's increments and write the running totals at `now`.
    pub fn ingest(&self, mut batch: Batch, now: TimestampMs) -> Ingested {
        let mut st = lock(&self.state);
        let st = &mut *st;
        let ts = now.max(st.last_ts + 1);
        st.last_ts = ts;
        // Cardinality cap: a new span name for a service past the limit is dropped.
        let mut keys: Vec<SpanKey> = batch.groups.keys().cloned().collect();
        keys.sort();
        let mut accepted = batch.accepted;
        for k in &keys {
            let known_service = st.names.contains_key(&k.service);
            let verdict = if !known_service && st.names.len() >= MAX_SERVICES {
                Some(Rejection::ServiceLimit)
            } else {
                let names = st.names.entry(k.service.clone()).or_default();
                if names.contains(&k.span_name) {
                    None
                } else if names.len() < self.cfg.max_span_names_per_service {
                    names.insert(k.span_name.clone());
                    None
                } else {
                    Some(Rejection::SpanNameLimit)
                }
            };
            if let Some(why) = verdict {
                if let Some(a) = batch.groups.remove(k) {
                    accepted -= a.count;
                    *batch.rejected.entry(why).or_default() += a.count;
                }
            }
        }
        let names = &st.names;
        batch
            .hists
            .retain(|(svc, name, _), _| names.get(svc).is_some_and(|n| n.contains(name)));
        let mut store = self.store.write().unwrap_or_else(|p| p.into_inner());
        for (k, a) in batch.groups {
            let c = st
                .counters
                .entry(k.clone())
                .or_insert_with(|| CounterState {
                    labels: Labels::new([
                        (METRIC_NAME, SPANS_TOTAL),
                        ("service", k.service.as_str()),
                        ("span_name", k.span_name.as_str()),
                        ("span_kind", k.kind),
                        ("status_code", k.status),
                    ]),
                    total: 0,
                });
            c.total += a.count;
            store.append(&c.labels, ts, c.total as f64);
            self.exemplars.record(&k, &a, ts);
        }
        for (hk, a) in batch.hists {
            let h = st.hists.entry(hk).or_insert_with_key(|(svc, name, kind)| {
                let base = |metric: &str| {
                    Labels::new([
                        (METRIC_NAME, metric),
                        ("service", svc.as_str()),
                        ("span_name", name.as_str()),
                        ("span_kind", kind),
                    ])
                };
                let bucket = base(&format!("{DURATION}_bucket"));
                HistState {
                    bucket_labels: self
                        .le
                        .iter()
                        .map(|le| {
                            let mut l = bucket.clone();
                            l.set("le", le);
                            l
                        })
                        .collect(),
                    sum_labels: base(&format!("{DURATION}_sum")),
                    count_labels: base(&format!("{DURATION}_count")),
                    cumulative: vec![0; self.le.len()],
                    sum: 0.0,
                    count: 0,
                }
            });
            let mut running = 0u64;
            for (i, add) in a.buckets.iter().enumerate() {
                running += add;
                if let Some(c) = h.cumulative.get_mut(i) {
                    *c += running;
                }
            }
            h.sum += a.sum_s;
            h.count += a.count;
            for (l, v) in h.bucket_labels.iter().zip(&h.cumulative) {
                store.append(l, ts, *v as f64);
            }
            store.append(&h.sum_labels, ts, h.sum);
            store.append(&h.count_labels, ts, h.count as f64);
        }
        let rejected: u64 = batch.rejected.values().sum();
        let mut by_reason: Vec<(&'static str, u64)> = batch
            .rejected
            .iter()
            .map(|(r, n)| (r.label(), *n))
            .collect();
        by_reason.sort();
        for (r, n) in batch.rejected {
            let total = st.dropped.entry(r).or_default();
            *total += n;
            let l = Labels::new([(METRIC_NAME, DROPPED_TOTAL), ("reason", r.label())]);
            store.append(&l, ts, *total as f64);
        }
        Ingested {
            accepted,
            rejected,
            by_reason,
        }
    }
}

/// `le` as Prometheus clients print it (`0.005`, `1`, `2.5`).
fn format_le(b: f64) -> String {
    format!("{b}")
}

async fn export(State(rx): State<Arc<OtlpReceiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |n: header::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
    let now = rx.clock.now_ms();
    match rx.handle(
        h(header::CONTENT_TYPE),
        h(header::CONTENT_ENCODING),
        &body,
        now,
    ) {
        Ok((enc, resp)) => {
            let body = match enc {
                Encoding::Protobuf => resp.encode_to_vec(),
                // Omit an absent partial success rather than writing `null`.
                Encoding::Json => match &resp.partial_success {
                    None => b"{}".to_vec(),
                    Some(_) => serde_json::to_vec(&resp).unwrap_or_else(|_| b"{}".to_vec()),
                },
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, enc.content_type())],
                body,
            )
                .into_response()
        }
        Err((enc, e)) => {
            tracing::debug!(error = %e, "OTLP export refused");
            let status = e.status();
            let rpc = RpcStatus {
                // google.rpc.Code: INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for size.
                code: if status == StatusCode::PAYLOAD_TOO_LARGE {
                    8
                } else {
                    3
                },
                message: e.to_string(),
            };
            match enc {
                Some(Encoding::Protobuf) => (
                    status,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    rpc.encode_to_vec(),
                )
                    .into_response(),
                Some(Encoding::Json) => (
                    status,
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::to_vec(&rpc).unwrap_or_default(),
                )
                    .into_response(),
                None => (status, format!("{e}\n")).into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests;
