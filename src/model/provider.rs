//! What the executor and a provider adapter say to each other: the target's
//! observable state, the operation asked for, its outcome, reconciliation after
//! a crash, and typed failures. Pure data (no I/O), shared by providers, the
//! executor, the scraper (instances to scrape) and the audit log.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ActionKind;

/// One instance (replica, container, pod, backend server) of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Stable id within the target (process: the port; docker: container id; k8s: pod name).
    pub id: String,
    /// `host:port` the scraper and load balancers use, if it serves traffic.
    pub address: Option<String>,
    /// Last health check passed.
    pub healthy: bool,
    /// Currently in the discovery set / receiving traffic (false while its circuit is open).
    pub in_traffic: bool,
    /// Version or image it runs.
    pub version: Option<String>,
    /// Extra labels the scraper attaches to series from this instance.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A target's observable state, as the provider sees it right now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// Desired/declared replica count (process: running replicas; k8s: spec.replicas).
    pub replicas: u32,
    pub instances: Vec<InstanceInfo>,
    /// Version the target is currently rolled to.
    pub version: Option<String>,
}

/// A concrete operation the executor asks a provider to perform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ProviderOp {
    /// scale_out / scale_in / scale: set the replica count.
    SetReplicas { from: u32, to: u32 },
    /// failover: replace (or restart) one instance, or switch primary → backup.
    Replace { instance: String },
    /// circuit_break: take the instance out of traffic.
    CircuitOpen { instance: String },
    /// circuit_break: let a trickle of traffic through (low weight where supported).
    CircuitHalfOpen { instance: String },
    /// circuit_break: put the instance fully back.
    CircuitClose { instance: String },
    /// redeploy: rolling restart to a new version, command or environment;
    /// rolls back on failure.
    Redeploy {
        version: Option<String>,
        command: Option<Vec<String>>,
        /// Environment variables set (added or replaced) on the new instances.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
    },
    /// redeploy with `rollback: true`: return to the previous version.
    Rollback,
}

impl ProviderOp {
    /// Instances an op starts or stops one after another: the replica-count
    /// change of a scale, one for a replacement, every instance (`current`)
    /// twice for a redeploy or rollback (it may have to roll back), none for
    /// a circuit op. Adapters multiply their per-instance wait by it.
    pub fn sequential_instances(&self, current: u32) -> u32 {
        match self {
            ProviderOp::SetReplicas { from, to } => from.abs_diff(*to),
            ProviderOp::Replace { .. } => 1,
            ProviderOp::Redeploy { .. } | ProviderOp::Rollback => current.max(1).saturating_mul(2),
            ProviderOp::CircuitOpen { .. }
            | ProviderOp::CircuitHalfOpen { .. }
            | ProviderOp::CircuitClose { .. } => 0,
        }
    }
}

/// What the executor hands a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// Unique action id; also the idempotency key.
    pub action_id: String,
    pub target: String,
    pub kind: ActionKind,
    pub op: ProviderOp,
    pub rule: String,
}

/// What a provider reports back: state before and after, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionOutcome {
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// The op did not do what was asked but left the target safe (e.g. redeploy rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

/// Whether an action that was started before a crash took effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reconciliation {
    /// The target is in the state the action aimed for.
    Applied,
    /// The target is in the state from before the action.
    NotApplied,
    /// Neither: the current state, for the audit log.
    Unknown,
}

/// Provider failures, typed so the executor can tell what to retry. `Clone`
/// so an adapter's cache can hand its last poll's error to every caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider}: {message}")]
    Unavailable { provider: String, message: String },
    #[error("{provider}: timed out after {after_ms} ms")]
    Timeout { provider: String, after_ms: u64 },
    #[error("{provider}: permission denied: {message}")]
    PermissionDenied { provider: String, message: String },
    #[error("{provider}: conflict: {message}")]
    Conflict { provider: String, message: String },
    #[error("{provider}: not found: {message}")]
    NotFound { provider: String, message: String },
    #[error("{provider}: rejected: {message}")]
    Rejected { provider: String, message: String },
    #[error("{provider}: {kind} is not supported")]
    Unsupported { provider: String, kind: ActionKind },
    #[error("{provider}: {message}")]
    Failed { provider: String, message: String },
}

impl ProviderError {
    /// `Failed` from `provider` (an adapter's name).
    pub fn failed(provider: &str, message: impl Into<String>) -> Self {
        ProviderError::Failed {
            provider: provider.into(),
            message: message.into(),
        }
    }

    /// `Rejected` from `provider`: the system refused the request as sent.
    pub fn rejected(provider: &str, message: impl Into<String>) -> Self {
        ProviderError::Rejected {
            provider: provider.into(),
            message: message.into(),
        }
    }

    /// `NotFound` from `provider`.
    pub fn not_found(provider: &str, message: impl Into<String>) -> Self {
        ProviderError::NotFound {
            provider: provider.into(),
            message: message.into(),
        }
    }

    /// The error's class as the audit log's `cause` of an `action_failed`.
    pub fn cause(&self) -> &'static str {
        match self {
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::PermissionDenied { .. } => "permission_denied",
            ProviderError::Conflict { .. } => "conflict",
            ProviderError::NotFound { .. } => "not_found",
            ProviderError::Rejected { .. } => "rejected",
            ProviderError::Unsupported { .. } => "unsupported",
            ProviderError::Failed { .. } => "failed",
        }
    }

    /// Transient failures worth retrying with backoff.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable { .. }
                | ProviderError::Timeout { .. }
                | ProviderError::Conflict { .. }
        )
    }
}
