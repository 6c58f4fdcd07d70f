//! What SREs write in a rule file (DESIGN.md §3): serde structs, no validation.
//!
//! Durations stay strings so `load` can report every bad one with its position.
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::model::{ActionKind, Approval, Mode};

/// A rule file: only `groups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleFile {
    /// Rule groups; each group is evaluated on its own interval.
    pub groups: Vec<serde::de::IgnoredAny>,
}

/// One group; its rules are extracted one by one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// Group name, unique across all rule files.
    pub name: String,
    /// Evaluation interval. Default: the scrape interval.
    pub interval: Option<String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<serde::de::IgnoredAny>,
}

/// What happens when a query returns nothing, is stale, or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNoData {
    /// Keep the current state; no transition, no decision.
    #[default]
    Hold,
    /// Treat the condition as true (never for scale-in).
    Fire,
    /// Treat the condition as false.
    Resolve,
}

/// One rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Rule name, unique across all rule files.
    pub name: String,
    /// What the rule is for, for on-call staff.
    #[serde(default)]
    pub description: String,
    /// Named PromQL queries; names are identifiers usable in `when` and templates.
    #[serde(default)]
    pub queries: BTreeMap<String, RawQuery>,
    /// Condition over the query values (evalexpr syntax).
    pub when: Option<String>,
    /// How long `when` must hold before the rule fires. Default `0s`.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// How long the rule keeps firing after `when` stops holding. Default `0s`.
    pub keep_firing_for: Option<String>,
    /// Minimum time between two actions of this rule on its target.
    pub cooldown: Option<String>,
    /// `hold` (default), `fire` or `resolve`.
    pub on_no_data: Option<OnNoData>,
    /// `enforce` (default) or `dry_run`.
    pub mode: Option<Mode>,
    /// `none` (default) or `required`.
    pub approval: Option<Approval>,
    /// What to do when the rule fires.
    pub action: Option<RawAction>,
    /// Labels added to every instance of the rule.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Templated texts (`{{ query }}`, `{{ labels.name }}`) for people.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Alertmanager trigger, in place of `queries`/`when`: the rule acts once
    /// per firing alert that matches.
    pub trigger: Option<RawTrigger>,
}

/// `trigger: {alert: NAME, matchers: {label: value}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrigger {
    /// The alert's `alertname` label.
    pub alert: String,
    /// Further labels the alert must carry with exactly these values.
    #[serde(default)]
    pub matchers: BTreeMap<String, String>,
}

/// A query: a PromQL string for the local store, or `{source, expr}` for a remote source.
#[derive(Debug, Clone, PartialEq)]
pub enum RawQuery {
    Local(String),
    Remote(RawRemoteQuery),
}

/// `{source, expr}` form of a query.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteQuery {
    /// A source declared under `sources:` in the agent config.
    pub source: String,
    /// PromQL evaluated by that source.
    pub expr: String,
}

impl<'de> Deserialize<'de> for RawQuery {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawQuery;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a PromQL string or {source, expr}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawQuery, E> {
                Ok(RawQuery::Local(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawQuery, A::Error> {
                RawRemoteQuery::deserialize(MapAccessDeserializer::new(map)).map(RawQuery::Remote)
            }
        }
        d.deserialize_any(V)
    }
}

/// The `action:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// scale_out | scale_in | scale | failover | circuit_break | redeploy
    pub kind: ActionKind,
    /// A target declared in the agent config.
    pub target: String,
    /// scale_out / scale_in: replicas added or removed (≥ 1, default 1).
    pub step: Option<u32>,
    /// scale_out / scale_in: multiply or divide the replica count (> 1) instead of `step`.
    pub factor: Option<f64>,
    /// scale: the query whose value is tracked.
    pub metric: Option<String>,
    /// scale: desired per-replica value of `metric` (> 0).
    pub target_value: Option<f64>,
    /// scale: relative band around `target_value` with no change, in [0, 1). Default 0.1.
    pub tolerance: Option<f64>,
    /// scale: scale-in stabilisation window. Default `5m`.
    pub stabilization_window: Option<String>,
    /// failover / circuit_break: which instance, e.g. `{{ labels.instance }}`.
    pub instance: Option<String>,
    /// circuit_break: how long the circuit stays open before half-open. Default `30s`.
    pub open_for: Option<String>,
    /// circuit_break: max share of instances open at once, in (0, 1].
    pub max_open_share: Option<f64>,
    /// redeploy: version to roll to.
    pub version: Option<String>,
    /// redeploy: full new command (process provider).
    pub command: Option<Vec<String>>,
    /// redeploy: environment variables to add or replace on the new instances.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// redeploy: roll back to the previous version.
    #[serde(default)]
    pub rollback: bool,
}
