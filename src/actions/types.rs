//! Plain data shared by rules, guard, executor, providers and the audit log.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::TimestampMs;
use crate::labels::Labels;

/// What an action does (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    ScaleOut,
    ScaleIn,
    Scale,
    Failover,
    CircuitBreak,
    Redeploy,
}

impl ActionKind {
    pub const ALL: [ActionKind; 6] = [
        ActionKind::ScaleOut,
        ActionKind::ScaleIn,
        ActionKind::Scale,
        ActionKind::Failover,
        ActionKind::CircuitBreak,
        ActionKind::Redeploy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ScaleOut => "scale_out",
            ActionKind::ScaleIn => "scale_in",
            ActionKind::Scale => "scale",
            ActionKind::Failover => "failover",
            ActionKind::CircuitBreak => "circuit_break",
            ActionKind::Redeploy => "redeploy",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `enforce` acts; `dry_run` records what it would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    DryRun,
}

/// Whether a human must approve before the action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    None,
    Required,
}

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

/// Serde helper for `Option<Duration>` as humantime strings ("30s", "5m").
pub mod opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| crate::config::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
