//! The test file format: promtool's rule unit-test format (`rule_files`,
//! `evaluation_interval`, `tests` with `input_series` and `promql_expr_test`)
//! plus homeostat's extension (`targets`, `sources`, and `action_tests` in a
//! test group). promtool 2.42 rejects unknown fields, so a file that uses the
//! extension runs only under `homeostat test` (name such files
//! `*.actions.yaml`). Raw serde structs only; the runner interprets them.
use std::collections::BTreeMap;

use serde::Deserialize;

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// promtool: Prometheus rule files (must be empty for a promtool-compatible
    /// file, homeostat has no recording or alerting rules). With `targets`:
    /// homeostat remediation rule files, relative to the test file.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Step of rule evaluation (default 1m); also the default subquery step
    /// and the granularity of promtool's sample loading.
    #[serde(default)]
    pub evaluation_interval: Option<String>,
    /// promtool: order of rule groups; accepted and ignored.
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    /// The test groups.
    #[serde(default)]
    pub tests: Vec<RawGroup>,
    /// homeostat: the targets the rules act on (enables `action_tests`).
    #[serde(default)]
    pub targets: BTreeMap<String, RawTarget>,
    /// homeostat: names of remote sources the rules use; their queries are
    /// evaluated on the input series as if the remote Prometheus held them.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// One simulated target of an action test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Replica count at time 0.
    pub replicas: u32,
    /// Lower bound (default 1).
    #[serde(default)]
    pub min: Option<u32>,
    /// Upper bound (default unbounded).
    #[serde(default)]
    pub max: Option<u32>,
    /// After a scale-up, no scale-up for this long (default 1m, as the agent config).
    #[serde(default)]
    pub cooldown_up: Option<String>,
    /// After any replica change, no scale-down for this long (default 5m).
    #[serde(default)]
    pub cooldown_down: Option<String>,
    /// Rule actions per hour (default 30; 0 disables).
    #[serde(default)]
    pub max_actions_per_hour: Option<u32>,
    /// Instance ids (e.g. `host:port`) the target reports; used for
    /// failover and the circuit-breaker share.
    #[serde(default)]
    pub instances: Vec<String>,
}

/// One test group (promtool: one `tests` entry).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// promtool: optional group name.
    #[serde(default)]
    pub name: Option<String>,
    /// Step between input samples. As in promtool 2.42 there is no default:
    /// without it every series holds only its first value, at time 0.
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub input_series: Vec<RawSeries>,
    #[serde(default)]
    pub promql_expr_test: Vec<RawExprTest>,
    /// promtool's alert tests: rejected (homeostat has no Prometheus alert rules).
    #[serde(default)]
    pub alert_rule_test: Option<serde_yaml::Value>,
    /// promtool: external labels; rejected when set (nothing here uses them).
    #[serde(default)]
    pub external_labels: Option<serde_yaml::Value>,
    /// promtool: external URL; rejected when set.
    #[serde(default)]
    pub external_url: Option<serde_yaml::Value>,
    /// homeostat: what the remediation rules must do on these series.
    #[serde(default)]
    pub action_tests: Option<RawActionTests>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSeries {
    /// `name{label="value", ...}`.
    pub series: String,
    /// Expanding notation: `1+2x3 _ stale _x2`.
    #[serde(default)]
    pub values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExprTest {
    pub expr: String,
    pub eval_time: String,
    #[serde(default)]
    pub exp_samples: Vec<RawSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSample {
    /// `name{label="value"}`; empty or absent for a scalar result.
    #[serde(default)]
    pub labels: String,
    /// `.nan`, `.inf`, `-.inf` in YAML for the special values.
    pub value: f64,
}

/// homeostat: the simulation of rule engine + guard on the input series.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActionTests {
    /// Simulate up to this time (default: the latest `at` below).
    #[serde(default)]
    pub until: Option<String>,
    /// Every action run in the simulated window, exactly (none missing, none extra).
    #[serde(default)]
    pub exp_actions: Vec<RawExpAction>,
    /// Suppressions that must happen (others may happen too: a cooldown
    /// suppresses on every evaluation).
    #[serde(default)]
    pub exp_suppressions: Vec<RawExpSuppression>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpAction {
    pub at: String,
    pub rule: String,
    /// `scale_out`, `scale_in`, `scale`, `failover`, `circuit_break`, `redeploy`.
    pub kind: String,
    pub target: String,
    #[serde(default)]
    pub instance: Option<String>,
    /// Provider op: `set_replicas`, `replace`, `circuit_open`,
    /// `circuit_half_open`, `circuit_close`, `redeploy`, `rollback`.
    #[serde(default)]
    pub op: Option<String>,
    /// `set_replicas`: the new replica count.
    #[serde(default)]
    pub to: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpSuppression {
    pub at: String,
    pub rule: String,
    /// The audit log's cause: `cooldown`, `bounds`, `dry_run`, `approval` …
    pub cause: String,
}
