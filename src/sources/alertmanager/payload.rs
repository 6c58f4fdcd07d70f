//! Alertmanager's webhook payload (version "4"): serde structs and validation.
//!
//! Owns only the wire format: parsing, checking, and turning each alert into an
//! [`AlertInput`]. Must not know about rules or the agent.
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{AlertInput, AlertRef, Labels, TimestampMs};

/// The only payload version Alertmanager has ever sent (0.x up to today).
pub const VERSION: &str = "4";
/// Most alerts one request may carry (Alertmanager's `max_alerts` caps what it
/// sends; the default, 0, sends all of a group's alerts).
pub const MAX_ALERTS_PER_REQUEST: usize = 1000;

/// Why a payload is refused (the text of the 400 response).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("unsupported payload version {0:?} (expected \"4\")")]
    Version(String),
    #[error("too many alerts in one request: {got} (at most {max})")]
    TooMany { got: usize, max: usize },
    #[error("alerts[{index}]: {message}")]
    Alert { index: usize, message: String },
}

/// The webhook body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    /// `firing` if any alert of the group fires, else `resolved`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL", default)]
    pub external_url: String,
    pub alerts: Vec<WireAlert>,
}

/// One alert of the payload.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAlert {
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    pub fingerprint: String,
}

/// Parse and validate a body. Every alert must have a known status, an
/// `alertname`, a fingerprint and a parseable `startsAt`: these are what the
/// dedup and the rule match depend on.
pub fn parse(body: &[u8]) -> Result<(Payload, Vec<AlertInput>), PayloadError> {
    let p: Payload = serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))?;
    if p.version != VERSION {
        return Err(PayloadError::Version(p.version));
    }
    if p.alerts.len() > MAX_ALERTS_PER_REQUEST {
        return Err(PayloadError::TooMany {
            got: p.alerts.len(),
            max: MAX_ALERTS_PER_REQUEST,
        });
    }
    let mut out = Vec::with_capacity(p.alerts.len());
    for (index, a) in p.alerts.iter().enumerate() {
        let bad = |message: String| PayloadError::Alert { index, message };
        let firing = match a.status.as_str() {
            "firing" => true,
            "resolved" => false,
            s => {
                return Err(bad(format!(
                    "status {s:?} is neither \"firing\" nor \"resolved\""
                )))
            }
        };
        let name = a
            .labels
            .get("alertname")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no alertname label".into()))?;
        if a.fingerprint.trim().is_empty() {
            return Err(bad("empty fingerprint".into()));
        }
        let starts_at_ms = parse_rfc3339(&a.starts_at).ok_or_else(|| {
            bad(format!(
                "startsAt {:?} is not an RFC 3339 time",
                a.starts_at
            ))
        })?;
        out.push(AlertInput {
            firing,
            labels: Labels::new(a.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            reference: AlertRef {
                name: name.clone(),
                fingerprint: a.fingerprint.clone(),
                starts_at: a.starts_at.clone(),
                generator_url: a.generator_url.clone(),
            },
            starts_at_ms: Some(starts_at_ms),
        });
    }
    Ok((p, out))
}

/// RFC 3339 with any fraction and a `Z` or `±hh:mm` offset (Go's
/// `time.RFC3339Nano`, which Alertmanager writes) → ms since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<TimestampMs> {
    let s = s.trim();
    if s.len() < 20 || !s.is_ascii() {
        return None;
    }
    let (local, offset_ms) = if let Some(l) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        (l, 0)
    } else {
        let (l, off) = s.split_at(s.len() - 6);
        let b = off.as_bytes();
        if !(b[0] == b'+' || b[0] == b'-') || b[3] != b':' {
            return None;
        }
        let h: i64 = off.get(1..3)?.parse().ok()?;
        let m: i64 = off.get(4..6)?.parse().ok()?;
        if h > 23 || m > 59 {
            return None;
        }
        let sign = if b[0] == b'-' { -1 } else { 1 };
        (l, sign * (h * 3600 + m * 60) * 1000)
    };
    // humantime wants at most nanosecond precision and a Z.
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as TimestampMs;
    Some(ms - offset_ms)
}
