//! What the guard hands the executor, and why it sometimes hands nothing.
//!
//! Owns [`Intent`] (a decision that passed the guard, with the concrete provider
//! op), [`Cause`] (every suppression reason, as written in the audit log) and the
//! small enums both carry. Pure data: no I/O, no clock.
use serde::{Deserialize, Serialize};

use super::circuit::CircuitChange;
use super::types::{ActionKind, Mode, Reason};
use crate::clock::TimestampMs;
use crate::providers::{ActionRequest, ProviderOp};

/// Which way a replica-count change goes (target `cooldown_up` / `cooldown_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

/// Who asked for an action. Only rule actions count for cooldowns and the
/// hourly rate limit; circuit transitions are follow-ups of an earlier action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    #[default]
    Rule,
    /// A due circuit transition (half-open, close, re-open) asked for by the agent.
    Circuit,
}

/// Why a decision did not become an action (the `cause` of a `suppressed` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The agent is paused (`POST /api/v1/pause`).
    Paused,
    /// Another agent instance is the leader.
    NotLeader,
    /// The target is at `min`/`max`, or clamping leaves nothing to do.
    Bounds,
    /// `scale`: the metric is inside the tolerance band around `target_value`.
    Tolerance,
    /// `scale`: scale-in held by the stabilisation window.
    Stabilization,
    /// The value a `scale` decision needs is missing, or the decision came from
    /// missing data and would scale in.
    NoData,
    /// The decision cannot be turned into an op (e.g. failover without instance).
    Invalid,
    Cooldown,
    RateLimit,
    /// Too many circuits open at once, or a second redeploy on a target.
    BlastRadius,
    /// Another action on the target is still running, or the circuit is already open.
    InProgress,
    DryRun,
    Approval,
    /// The executor's per-provider circuit breaker is open.
    ProviderUnavailable,
    /// The target's provider cannot do this kind (`homeostat check` should
    /// have refused the rule; this is the executor's last line).
    Unsupported,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Paused => "paused",
            Cause::NotLeader => "not_leader",
            Cause::Bounds => "bounds",
            Cause::Tolerance => "tolerance",
            Cause::Stabilization => "stabilization",
            Cause::NoData => "no_data",
            Cause::Invalid => "invalid",
            Cause::Cooldown => "cooldown",
            Cause::RateLimit => "rate_limit",
            Cause::BlastRadius => "blast_radius",
            Cause::InProgress => "in_progress",
            Cause::DryRun => "dry_run",
            Cause::Approval => "approval",
            Cause::ProviderUnavailable => "provider_unavailable",
            Cause::Unsupported => "unsupported",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
