//! Why a rule instance fired: the audit log's `reason` field, shared by the
//! rule engine (which fills it), the guard, the audit log and the page.
//! Pure data.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::TimestampMs;

/// Why a rule instance fired: the audit log's `reason` field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The `when` expression as written.
    pub when: String,
    /// Value of every named query for this label set (NaN when absent).
    pub values: BTreeMap<String, f64>,
    /// When the condition first held (ms since epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<TimestampMs>,
    /// The rule's `for`, in milliseconds.
    #[serde(rename = "for", default)]
    pub for_ms: i64,
    /// Set when the decision comes from missing/stale/failed data with `on_no_data: fire`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<String>,
    /// Example trace ids behind the values (OTLP source), for on-call staff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace_ids: Vec<String>,
    /// The Alertmanager alert behind a `trigger` rule's decision. The start-up
    /// fold rebuilds the set of alerts already acted on from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertRef>,
}

/// One Alertmanager alert, as a trigger rule's decision records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRef {
    /// The alert's `alertname`.
    pub name: String,
    /// Alertmanager's fingerprint of the alert's label set.
    pub fingerprint: String,
    /// `startsAt` exactly as Alertmanager sent it.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// Link to the expression that fired (Prometheus graph URL).
    #[serde(
        rename = "generatorURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub generator_url: String,
}
