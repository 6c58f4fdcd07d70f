//! Plain data shared by rules, guard, executor, providers and the audit log.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{ActionKind, Approval, Labels, Mode, Reason, TimestampMs};
use crate::spec::opt_duration;

/// What the rule asks for, as written in the rule file (already validated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    pub kind: ActionKind,
    /// Name of a target declared in the agent config.
    pub target: String,
    /// scale_out / scale_in: replicas added or removed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// scale_out / scale_in: multiply (out) or divide (in) the replica count instead of `step`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// scale: the name of the rule query whose value is tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// scale: desired per-replica value of `metric`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_value: Option<f64>,
    /// scale: relative band around `target_value` inside which nothing changes (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// scale: scale-in stabilisation window (default 5m, HPA semantics).
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub stabilization_window: Option<Duration>,
    /// failover / circuit_break: which instance, a template such as `{{ labels.instance }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// circuit_break: how long the circuit stays open before half-open (default 30s).
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub open_for: Option<Duration>,
    /// circuit_break: max share of the target's instances open at once (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_share: Option<f64>,
    /// redeploy: the new version label (becomes `{{version}}` in the command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// redeploy: a full new command (process provider) instead of a version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// redeploy: environment variables added or replaced on the new instances.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// redeploy: roll back to the previous version instead of rolling forward.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

impl ActionSpec {
    pub fn new(kind: ActionKind, target: impl Into<String>) -> Self {
        Self {
            kind,
            target: target.into(),
            step: None,
            factor: None,
            metric: None,
            target_value: None,
            tolerance: None,
            stabilization_window: None,
            instance: None,
            open_for: None,
            max_open_share: None,
            version: None,
            command: None,
            env: BTreeMap::new(),
            rollback: false,
        }
    }
}

/// The rule engine's output: one firing rule instance asking for one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub rule: String,
    pub group: String,
    pub action: ActionSpec,
    /// Label set of the rule instance (joined query labels + rule labels).
    pub labels: Labels,
    /// Instance the action applies to, after templating (`failover`, `circuit_break`).
    pub instance: Option<String>,
    pub mode: Mode,
    pub approval: Approval,
    /// Rule-level cooldown; the target's `cooldown_up`/`cooldown_down` also apply.
    #[serde(default, with = "opt_duration")]
    pub cooldown: Option<Duration>,
    pub reason: Reason,
    /// Rendered annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Evaluation time that produced the decision.
    pub at: TimestampMs,
}
