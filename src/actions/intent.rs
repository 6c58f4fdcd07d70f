//! What the guard hands the executor, and why it sometimes hands nothing.
//!
//! Owns [`Intent`] (a decision that passed the guard, with the concrete provider
//! op), [`Cause`] (every suppression reason, as written in the audit log) and the
//! small enums both carry. Pure data: no I/O, no clock.
use serde::{Deserialize, Serialize};

use crate::model::CircuitChange;
use crate::model::{
    ActionKind, ActionRequest, Direction, Mode, Origin, ProviderOp, Reason, TimestampMs,
};

/// A decision that passed the guard: everything the executor needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// Unique id; also the provider idempotency key.
    pub action_id: String,
    pub rule: String,
    #[serde(default)]
    pub group: String,
    pub target: String,
    pub kind: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub op: ProviderOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(default)]
    pub origin: Origin,
    /// Circuit ops: the state change to record once the op succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit: Option<CircuitChange>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// `scale`: the desired count computed for this evaluation (before stabilisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// When the decision was made.
    pub at: TimestampMs,
}

impl Intent {
    /// The request the provider receives.
    pub fn request(&self) -> ActionRequest {
        ActionRequest {
            action_id: self.action_id.clone(),
            target: self.target.clone(),
            kind: self.kind,
            op: self.op.clone(),
            rule: self.rule.clone(),
        }
    }
}

/// A fresh action id: decision time plus 64 random bits, so ids never repeat
/// across restarts and sort roughly by time.
pub fn new_action_id(at: TimestampMs) -> String {
    format!("{:011x}-{:016x}", at.max(0), rand::random::<u64>())
}
