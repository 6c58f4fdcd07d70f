//! What users write for a `provider: process` target.
use std::path::PathBuf;

use serde::Deserialize;

/// A target made of N replicas of a local command, each on its own port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Command and arguments; `{{port}}` is replaced by the replica's port and
    /// `{{version}}` by the current version.
    pub command: Vec<String>,
    /// Port range for replicas, `start-end` inclusive (e.g. `18100-18199`).
    pub ports: String,
    /// HTTP path that answers 2xx when a replica is healthy (e.g. `/healthz`).
    #[serde(default = "default_health")]
    pub health: String,
    /// Replicas the target starts with (default: the target's `min`). Start-up
    /// replaces replicas that died while no agent ran, up to this count - or,
    /// once the target was scaled, up to the count the last scale asked for.
    #[serde(default)]
    pub initial_replicas: Option<u32>,
    /// Version label of the initial command (becomes `{{version}}`).
    #[serde(default)]
    pub version: Option<String>,
    /// Extra environment for each replica.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Working directory for replicas.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// How long a new replica may take to become healthy (default 15s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub startup_timeout: Option<std::time::Duration>,
    /// Grace period between SIGTERM and SIGKILL (default 10s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub stop_timeout: Option<std::time::Duration>,
    /// How often replicas' health endpoints are polled for `state()` (default 2s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub health_interval: Option<std::time::Duration>,
    /// Timeout of one health check (default 1s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub health_timeout: Option<std::time::Duration>,
    /// Discovery file (Prometheus `file_sd` JSON) listing replicas in traffic.
    /// Default: `<data_dir>/targets/<target>.json`.
    #[serde(default)]
    pub discovery_file: Option<PathBuf>,
}

fn default_health() -> String {
    "/healthz".into()
}
