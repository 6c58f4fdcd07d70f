//! What users write for a `provider: docker` target.
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::YPath;
use crate::providers::ProviderBlock;

/// A target made of the containers labelled `homeostat.target=<target name>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Docker Engine API socket: `unix:///var/run/docker.sock` (default) or a path.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Container port that serves metrics; the scraper reads it through the
    /// host port it is published on (on 127.0.0.1).
    pub port: u16,
    /// Host ports for new replicas, `start-end` inclusive; default: a free
    /// port chosen by Docker.
    #[serde(default)]
    pub host_ports: Option<String>,
    /// How long a new container may take to become healthy (default 30s).
    #[serde(default, with = "crate::actions::opt_duration")]
    pub startup_timeout: Option<Duration>,
    /// Grace period between SIGTERM and SIGKILL when a container is removed (default 10s).
    #[serde(default, with = "crate::actions::opt_duration")]
    pub stop_timeout: Option<Duration>,
    /// How often the engine is asked for the containers' state (default 2s).
    #[serde(default, with = "crate::actions::opt_duration")]
    pub poll_interval: Option<Duration>,
    /// Timeout of one Engine API call (default 10s).
    #[serde(default, with = "crate::actions::opt_duration")]
    pub api_timeout: Option<Duration>,
}

impl ProviderBlock for DockerConfig {
    fn check(&self, at: &YPath) -> Vec<(YPath, String)> {
        let mut errs = Vec::new();
        if self.port == 0 {
            errs.push((at.key("port"), "docker.port: must be 1..=65535".into()));
        }
        if let Some(r) = &self.host_ports {
            if let Err(e) = crate::config::parse_port_range(r) {
                errs.push((at.key("host_ports"), format!("docker.host_ports: {e}")));
            }
        }
        errs
    }

    fn resolve_paths(&mut self, base_dir: &std::path::Path) {
        self.socket = self.socket.take().map(|p| base_dir.join(p));
    }
}
