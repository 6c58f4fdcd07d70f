//! The typed `detail` payloads of the audit events about decisions and
//! actions: what the journal writes, what the guard-state fold reads back and
//! what readers render, so they cannot disagree. Pure data; the audit module
//! owns the event schema, so readers need nothing above it.
use serde::{Deserialize, Serialize};

use crate::model::{ActionRequest, CircuitChange, Direction, Origin, ProviderOp, Reconciliation};

/// `detail` of a `decision` event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionDetail {
    /// `act` or `suppressed`.
    pub verdict: String,
    /// The op it would run (absent when none could be computed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<ProviderOp>,
    /// `scale`: this evaluation's desired count; the fold keeps these for the
    /// stabilisation window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<u32>,
    /// `scale`: the stabilisation window in force, so the fold knows how long to keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window_ms: Option<u64>,
}

/// `detail` of an `action_started` event (and repeated on its outcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedDetail {
    /// Exactly what the provider receives.
    pub request: ActionRequest,
    #[serde(default)]
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit: Option<CircuitChange>,
    /// Per-attempt provider timeout.
    pub timeout_ms: u64,
}

/// `detail` of `action_succeeded` / `action_failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeDetail {
    pub attempts: u32,
    #[serde(default)]
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<ProviderOp>,
    /// The provider left the target safe but did not do what was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

/// `detail` of `action_reconciled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconciledDetail {
    /// `applied`, `not_applied` or `unknown`.
    pub result: Reconciliation,
    pub request: ActionRequest,
    #[serde(default)]
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}
