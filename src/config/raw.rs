//! What users write in `homeostat.yaml`: serde structs, no validation.
//!
//! Every struct denies unknown fields so a typo is an error, not a silently
//! ignored setting. Durations and sizes stay strings here so that `compile()`
//! can report every bad one with its position, not just the first.
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::providers::docker::config::DockerConfig;
use crate::providers::haproxy::config::HaproxyConfig;
use crate::providers::kubernetes::config::KubernetesConfig;
use crate::providers::process::config::ProcessConfig;
use crate::providers::webhook::config::WebhookConfig;

/// Top-level keys only; each section is extracted on its own so that an error
/// in one section does not hide errors in the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only used to reject unknown top-level keys
pub struct RawTop {
    /// See [`RawConfig::listen`].
    pub listen: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::data_dir`].
    pub data_dir: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::rule_files`].
    pub rule_files: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::scrape`].
    pub scrape: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::targets`].
    pub targets: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::sources`].
    pub sources: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::guard`].
    pub guard: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::log`].
    pub log: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::api`].
    pub api: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::otlp`].
    pub otlp: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::query`].
    pub query: Option<serde::de::IgnoredAny>,
    /// See [`RawConfig::http`].
    pub http: Option<serde::de::IgnoredAny>,
}

/// The whole agent config (DESIGN.md §6), as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address of the HTTP server (`/metrics`, API, on-call page). Default `127.0.0.1:9798`.
    pub listen: Option<String>,
    /// Directory for the audit log and state; relative to the config file. Default `./data`.
    pub data_dir: Option<String>,
    /// Glob patterns of rule files, relative to the config file.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// How and what the agent scrapes.
    #[serde(default)]
    pub scrape: RawScrape,
    /// Things the agent acts on, by name.
    #[serde(default)]
    pub targets: BTreeMap<String, RawTarget>,
    /// Remote query sources (Prometheus servers) rules may name.
    #[serde(default)]
    pub sources: BTreeMap<String, RawSource>,
    /// Global safety limits.
    #[serde(default)]
    pub guard: RawGuard,
    /// Logging.
    #[serde(default)]
    pub log: RawLog,
    /// HTTP API authentication.
    #[serde(default)]
    pub api: RawApi,
    /// OpenTelemetry trace receiver (`POST /v1/traces`).
    #[serde(default)]
    pub otlp: crate::sources::otlp::config::RawOtlp,
    /// What one query may cost (`max_samples`, `timeout`, `max_concurrency`).
    #[serde(default)]
    pub query: crate::query::limits::RawQueryLimits,
    /// HTTP connection limits (`header_read_timeout`, `idle_timeout`, `max_connections`).
    #[serde(default)]
    pub http: crate::server::conn::RawHttpLimits,
}

/// `scrape:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrape {
    /// Time between scrapes of each target. Default `10s`.
    pub interval: Option<String>,
    /// Per-scrape timeout; must not exceed `interval`. Default `5s`.
    pub timeout: Option<String>,
    /// Largest accepted response body, e.g. `16MiB`. Default `16MiB`.
    pub body_size_limit: Option<String>,
    /// Scrape jobs.
    #[serde(default)]
    pub jobs: Vec<RawJob>,
}

/// One scrape job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    /// Job name; becomes the `job` label.
    pub name: String,
    /// Scrape the instances this target's provider reports.
    pub target: Option<String>,
    /// Fixed `host:port` list to scrape.
    pub static_targets: Option<Vec<String>>,
    /// HTTP path of the metrics endpoint. Default `/metrics`.
    pub metrics_path: Option<String>,
    /// `http` or `https`. Default `http`.
    pub scheme: Option<String>,
    /// Extra labels added to every scraped series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One target (`targets.<name>`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Which adapter acts on it: `process`, `webhook`, `docker`, `haproxy` or `kubernetes`.
    pub provider: String,
    /// Fewest replicas the guard allows. Default 1.
    pub min: Option<u32>,
    /// Most replicas the guard allows. Required for `process`, `docker` and `kubernetes`.
    pub max: Option<u32>,
    /// Minimum time between two scale-ups of this target. Default `1m`.
    pub cooldown_up: Option<String>,
    /// Minimum time between two scale-downs of this target. Default `5m`.
    pub cooldown_down: Option<String>,
    /// Settings of the `process` provider.
    pub process: Option<ProcessConfig>,
    /// Settings of the `webhook` provider.
    pub webhook: Option<WebhookConfig>,
    /// Settings of the `docker` provider.
    pub docker: Option<DockerConfig>,
    /// Settings of the `haproxy` provider.
    pub haproxy: Option<HaproxyConfig>,
    /// Settings of the `kubernetes` provider.
    pub kubernetes: Option<KubernetesConfig>,
}

/// A remote query source (`sources.<name>`): defined with the source, in
/// `crate::sources::prometheus::config`.
pub use crate::sources::prometheus::config::RawSource;

/// `guard:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// Rate limit per target. Default 30.
    pub max_actions_per_target_per_hour: Option<u32>,
    /// Largest share of a target's instances with an open circuit, in (0, 1]. Default 0.5.
    pub max_open_share: Option<f64>,
    /// Start paused: decisions are recorded, nothing is executed. Default false.
    pub paused: Option<bool>,
}

/// `log:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `pretty` or `json`. Default `pretty`.
    pub format: Option<String>,
    /// A `tracing` filter such as `info` or `homeostat=debug,info`. Default `info`.
    pub level: Option<String>,
}

/// `api:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// File holding the bearer token for mutating endpoints (relative to the config file).
    pub token_file: Option<String>,
    /// Environment variable holding the bearer token.
    pub token_env: Option<String>,
}
