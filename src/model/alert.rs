//! An Alertmanager alert as the receiver hands it to trigger rules, and the
//! key that says "this rule already acted on this alert". Pure data shared by
//! the Alertmanager source (which builds both), the rule engine (which
//! deduplicates by the key) and the start-up fold over the audit log.
use super::{AlertRef, Labels, TimestampMs};

/// One Alertmanager alert as a trigger rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInput {
    /// `true` for `firing`, `false` for `resolved`.
    pub firing: bool,
    pub labels: Labels,
    /// Fingerprint, `startsAt` (as sent) and generator URL.
    pub reference: AlertRef,
    /// `startsAt` in ms, when it parsed.
    pub starts_at_ms: Option<TimestampMs>,
}

/// Identity of "this alert acted on by this rule": Alertmanager resends an
/// alert with the same fingerprint and `startsAt` until it resolves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    pub rule: String,
    pub fingerprint: String,
    pub starts_at: String,
}

impl AlertKey {
    pub fn new(rule: &str, alert: &AlertRef) -> Self {
        AlertKey {
            rule: rule.to_string(),
            fingerprint: alert.fingerprint.clone(),
            starts_at: alert.starts_at.clone(),
        }
    }
}
