//! The one typed struct every audit line is made from.
use serde::{Deserialize, Serialize};

use crate::model::{ActionKind, Mode, Reason, TimestampMs};

/// Event names of DESIGN.md §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Decision,
    Suppressed,
    ApprovalRequested,
    Approved,
    Rejected,
    ApprovalExpired,
    ActionStarted,
    ActionSucceeded,
    ActionFailed,
    ActionReconciled,
    CircuitChanged,
    RulesReloaded,
    AgentStarted,
    AgentStopped,
    LeaderChanged,
    /// All actions paused (`POST /api/v1/pause`); `actor` says who.
    Paused,
    /// Actions resumed after a pause.
    Resumed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Decision => "decision",
            EventKind::Suppressed => "suppressed",
            EventKind::ApprovalRequested => "approval_requested",
            EventKind::Approved => "approved",
            EventKind::Rejected => "rejected",
            EventKind::ApprovalExpired => "approval_expired",
            EventKind::ActionStarted => "action_started",
            EventKind::ActionSucceeded => "action_succeeded",
            EventKind::ActionFailed => "action_failed",
            EventKind::ActionReconciled => "action_reconciled",
            EventKind::CircuitChanged => "circuit_changed",
            EventKind::RulesReloaded => "rules_reloaded",
            EventKind::AgentStarted => "agent_started",
            EventKind::AgentStopped => "agent_stopped",
            EventKind::LeaderChanged => "leader_changed",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
        }
    }
}

/// One audit line. `seq`, `ts`, `prev_hash` and `hash` are filled in by the writer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    #[serde(default)]
    pub seq: u64,
    /// RFC 3339 time of the event.
    #[serde(default)]
    pub ts: String,
    /// Milliseconds since the epoch (same instant as `ts`; used by replay).
    #[serde(default)]
    pub ts_ms: TimestampMs,
    pub event: Option<EventKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ActionKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Suppression cause (`paused`, `not_leader`, `bounds`, `cooldown`, `rate_limit`,
    /// `blast_radius`, `dry_run`, `approval`, `in_progress`) or other short cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    /// Who caused it: `rule`, `agent`, `api:<user>`, `cli`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Free-form details (e.g. the provider op, circuit from/to, reload summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// `hash` of the previous event; 64 zeros for the first event of a log.
    #[serde(default)]
    pub prev_hash: String,
    /// sha-256 (hex) of this line with `hash` emptied (see the `audit` module
    /// doc). Must stay the LAST field: the chain is defined on the bytes of a
    /// line ending in `,"hash":"…"}`. Add new fields above `prev_hash`.
    #[serde(default)]
    pub hash: String,
}

impl AuditEvent {
    pub fn new(event: EventKind) -> Self {
        Self {
            event: Some(event),
            ..Self::default()
        }
    }
}
