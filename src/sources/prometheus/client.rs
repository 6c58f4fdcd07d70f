//! Talks to a Prometheus HTTP API: one instant query per call, at a given
//! evaluation time, within the source's timeout.
//!
//! Owns the request (form-encoded `POST /api/v1/query`, auth header, TLS) and
//! the classification of every answer into [`QueryResult`]. Must not log or
//! return a secret: errors carry the URL, the status and the server's message,
//! never a header.
use std::time::Duration;

use serde::Deserialize;

use super::config::{SourceAuth, SourceConfig};
use crate::model::{Labels, Sample, SourceFailure, TimestampMs};

/// Longest server message kept in an error (Prometheus repeats the query).
const MAX_MESSAGE: usize = 512;
/// Largest response body read (a rule query returning more is a mistake).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid CA certificates: {0}")]
    Ca(#[source] reqwest::Error),
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// The answer to one query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// At least one sample (a scalar is one sample with no labels).
    Samples(Vec<Sample>),
    /// A vector with no series.
    Empty,
    /// No usable answer.
    Failed { kind: SourceFailure, error: String },
}

impl QueryResult {
    /// The `outcome` label of `homeostat_source_queries_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            QueryResult::Samples(_) => "ok",
            QueryResult::Empty => "empty",
            QueryResult::Failed { kind, .. } => kind.as_str(),
        }
    }

    fn failed(kind: SourceFailure, error: impl Into<String>) -> Self {
        QueryResult::Failed {
            kind,
            error: error.into(),
        }
    }
}

/// A client for one source.
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    http: reqwest::Client,
    endpoint: String,
    timeout: Duration,
    auth: SourceAuth,
}

impl PrometheusClient {
    pub fn new(cfg: &SourceConfig) -> Result<Self, ClientError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("homeostat/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the credentials elsewhere: do not follow.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout);
        if let Some(pem) = &cfg.tls.ca_pem {
            for c in reqwest::Certificate::from_pem_bundle(pem).map_err(ClientError::Ca)? {
                b = b.add_root_certificate(c);
            }
        }
        if cfg.tls.insecure_skip_verify {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        Ok(Self {
            http: b.build().map_err(ClientError::Build)?,
            endpoint: format!("{}/api/v1/query", cfg.url),
            timeout: cfg.timeout,
            auth: cfg.auth.clone(),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run `expr` as an instant query at `at` (ms since the epoch).
    pub async fn query(&self, expr: &str, at: TimestampMs) -> QueryResult {
        let body = format!(
            "query={}&time={}&timeout={}ms",
            form_encode(expr),
            format_time(at),
            self.timeout.as_millis()
        );
        let mut req = self
            .http
            .post(&self.endpoint)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        req = match &self.auth {
            SourceAuth::None => req,
            SourceAuth::Bearer(t) => req.bearer_auth(t.expose()),
            SourceAuth::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose()))
            }
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return self.transport_error(&e),
        };
        let status = resp.status();
        let bytes = match read_limited(resp).await {
            Ok(b) => b,
            Err(BodyError::Http(e)) => return self.transport_error(&e),
            Err(BodyError::TooLarge) => {
                return QueryResult::failed(
                    SourceFailure::HttpError,
                    format!("{}: response larger than {MAX_BODY} bytes", self.endpoint),
                )
            }
        };
        classify(status.as_u16(), &bytes, &self.endpoint, self.timeout)
    }

    fn transport_error(&self, e: &reqwest::Error) -> QueryResult {
        if e.is_timeout() {
            QueryResult::failed(
                SourceFailure::Timeout,
                format!("{}: no answer within {:?}", self.endpoint, self.timeout),
            )
        } else {
            QueryResult::failed(
                SourceFailure::HttpError,
                format!("{}: {}", self.endpoint, error_chain(e)),
            )
        }
    }
}

enum BodyError {
    Http(reqwest::Error),
    TooLarge,
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Http)? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `reqwest` errors say little at the top level ("error sending request");
/// the cause (connection refused, certificate) is further down.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Prometheus's API envelope.
#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

/// Map an HTTP answer to a [`QueryResult`]. Public for tests.
pub fn classify(status: u16, body: &[u8], endpoint: &str, timeout: Duration) -> QueryResult {
    let env: Option<Envelope> = serde_json::from_slice(body).ok();
    match env {
        Some(Envelope {
            status: s,
            error_type,
            error,
            ..
        }) if s == "error" => {
            let et = error_type.unwrap_or_default();
            let msg = truncate(error.as_deref().unwrap_or(""));
            match et.as_str() {
                "bad_data" | "execution" => {
                    QueryResult::failed(SourceFailure::PromqlError, format!("{et}: {msg}"))
                }
                "timeout" => QueryResult::failed(
                    SourceFailure::Timeout,
                    format!("{endpoint}: the source's query timeout ({timeout:?}) expired: {msg}"),
                ),
                _ => QueryResult::failed(
                    SourceFailure::HttpError,
                    format!("{endpoint}: HTTP {status}: {et}: {msg}"),
                ),
            }
        }
        Some(Envelope {
            status: s,
            data: Some(d),
            ..
        }) if s == "success" && (200..300).contains(&status) => parse_data(d),
        _ => {
            let text = truncate(&String::from_utf8_lossy(body));
            QueryResult::failed(
                SourceFailure::HttpError,
                if (200..300).contains(&status) {
                    format!("{endpoint}: HTTP {status}: not a Prometheus query response: {text}")
                } else {
                    format!("{endpoint}: HTTP {status}: {text}")
                },
            )
        }
    }
}

fn parse_data(d: Data) -> QueryResult {
    match d.result_type.as_str() {
        "vector" => match serde_json::from_value::<Vec<VectorSample>>(d.result) {
            Ok(v) if v.is_empty() => QueryResult::Empty,
            Ok(v) => {
                let mut out = Vec::with_capacity(v.len());
                for s in v {
                    match parse_value(&s.value.1) {
                        Some(value) => out.push(Sample {
                            labels: Labels::new(s.metric),
                            value,
                        }),
                        None => return bad_value(&s.value.1),
                    }
                }
                QueryResult::Samples(out)
            }
            Err(e) => QueryResult::failed(
                SourceFailure::HttpError,
                format!("malformed vector result: {e}"),
            ),
        },
        "scalar" => match serde_json::from_value::<(f64, String)>(d.result) {
            Ok((_, v)) => match parse_value(&v) {
                Some(value) => QueryResult::Samples(vec![Sample {
                    labels: Labels::empty(),
                    value,
                }]),
                None => bad_value(&v),
            },
            Err(e) => QueryResult::failed(
                SourceFailure::HttpError,
                format!("malformed scalar result: {e}"),
            ),
        },
        "matrix" => QueryResult::failed(
            SourceFailure::PromqlError,
            "range vector not allowed: the query must return an instant vector or a scalar",
        ),
        other => QueryResult::failed(
            SourceFailure::PromqlError,
            format!(
                "{other} result not allowed: the query must return an instant vector or a scalar"
            ),
        ),
    }
}

fn bad_value(v: &str) -> QueryResult {
    QueryResult::failed(
        SourceFailure::HttpError,
        format!("malformed sample value {:?}", truncate(v)),
    )
}

/// Prometheus's sample values: decimal, `NaN`, `+Inf`, `-Inf`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn truncate(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MAX_MESSAGE {
        return s.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Unix seconds with millisecond precision, as Prometheus accepts.
pub fn format_time(ms: TimestampMs) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let a = ms.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
