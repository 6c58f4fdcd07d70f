//! The `otlp:` section of the agent config: what users write ([`RawOtlp`]) and
//! the validated settings the receiver runs on ([`OtlpConfig`]).
//!
//! Owns defaults and validation of the OTLP receiver's limits. Must not read
//! files or the clock; errors are returned as (field, message) pairs so that
//! `config::compile` reports them with their position like every other error.
use serde::Deserialize;

/// Default duration buckets in seconds (Prometheus client defaults).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Default largest accepted request body (after gzip decompression too).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
/// Default most spans accepted from one request; the rest are rejected.
pub const DEFAULT_MAX_SPANS_PER_REQUEST: usize = 10_000;
/// Default example trace ids kept per series and per kind (slowest, failed).
pub const DEFAULT_EXEMPLARS_PER_SERIES: usize = 3;
/// Default most distinct span names per service; spans past it are dropped.
pub const DEFAULT_MAX_SPAN_NAMES_PER_SERVICE: usize = 200;

/// `otlp:` section, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    /// Serve `POST /v1/traces` (OTLP/HTTP, protobuf or JSON). Default false.
    pub enabled: Option<bool>,
    /// Upper bounds (seconds) of the span duration histogram buckets, strictly
    /// increasing; `+Inf` is added. Default `[0.005, 0.01, 0.025, 0.05, 0.1,
    /// 0.25, 0.5, 1, 2.5, 5, 10]`.
    pub histogram_buckets: Option<Vec<f64>>,
    /// Largest accepted request body, e.g. `4MiB`; applies to the gzip-decoded
    /// body as well. The server's own body limit (1 MiB) applies first to the
    /// bytes on the wire. Default `4MiB`.
    pub max_body_bytes: Option<String>,
    /// Most spans taken from one request; the rest are rejected (reported as
    /// partial success). Default 10000.
    pub max_spans_per_request: Option<usize>,
    /// Example trace ids kept per series: the N slowest and the N most recent
    /// failed spans of the last 10 minutes. Default 3.
    pub exemplars_per_series: Option<usize>,
    /// Most distinct span names per service; spans with further names are
    /// dropped and counted in `traces_spans_dropped_total`. Default 200.
    pub max_span_names_per_service: Option<usize>,
}

/// Validated receiver settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub enabled: bool,
    /// Finite, strictly increasing upper bounds in seconds (no `+Inf`).
    pub buckets: Vec<f64>,
    pub max_body_bytes: usize,
    pub max_spans_per_request: usize,
    pub exemplars_per_series: usize,
    pub max_span_names_per_service: usize,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            enabled: false,
            buckets: DEFAULT_BUCKETS.to_vec(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_spans_per_request: DEFAULT_MAX_SPANS_PER_REQUEST,
            exemplars_per_series: DEFAULT_EXEMPLARS_PER_SERIES,
            max_span_names_per_service: DEFAULT_MAX_SPAN_NAMES_PER_SERVICE,
        }
    }
}

/// Validate; every error is `(field, message)`.
pub fn compile(raw: RawOtlp) -> Result<OtlpConfig, Vec<(&'static str, String)>> {
    let mut errs = Vec::new();
    let d = OtlpConfig::default();
    let buckets = match raw.histogram_buckets {
        None => d.buckets,
        Some(b) => {
            let b: Vec<f64> = b.into_iter().filter(|x| *x != f64::INFINITY).collect();
            if b.is_empty() {
                errs.push((
                    "histogram_buckets",
                    "otlp.histogram_buckets: give at least one finite bound".to_string(),
                ));
            } else if b.iter().any(|x| !x.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
                errs.push((
                    "histogram_buckets",
                    format!("otlp.histogram_buckets: {b:?} must be finite and strictly increasing"),
                ));
            }
            b
        }
    };
    let max_body_bytes = match raw.max_body_bytes {
        None => d.max_body_bytes,
        Some(s) => match crate::spec::parse_size(&s) {
            Ok(0) => {
                errs.push(("max_body_bytes", "otlp.max_body_bytes: must be > 0".into()));
                d.max_body_bytes
            }
            Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Err(e) => {
                errs.push(("max_body_bytes", format!("otlp.max_body_bytes: {e}")));
                d.max_body_bytes
            }
        },
    };
    let positive = |errs: &mut Vec<(&'static str, String)>,
                    name: &'static str,
                    v: Option<usize>,
                    default: usize| match v {
        Some(0) => {
            errs.push((name, format!("otlp.{name}: must be > 0")));
            default
        }
        Some(n) => n,
        None => default,
    };
    let max_spans_per_request = positive(
        &mut errs,
        "max_spans_per_request",
        raw.max_spans_per_request,
        d.max_spans_per_request,
    );
    let max_span_names_per_service = positive(
        &mut errs,
        "max_span_names_per_service",
        raw.max_span_names_per_service,
        d.max_span_names_per_service,
    );
    let exemplars_per_series = raw.exemplars_per_series.unwrap_or(d.exemplars_per_series);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(OtlpConfig {
        enabled: raw.enabled.unwrap_or(false),
        buckets,
        max_body_bytes,
        max_spans_per_request,
        exemplars_per_series,
        max_span_names_per_service,
    })
}
