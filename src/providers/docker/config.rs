//! What users write for a `provider: docker` target.
//!
//! Owns the `docker:` block of a target (serde, every field documented) and its
//! self-check. Must not talk to the engine: `client.rs` does. Always compiled,
//! with or without the `docker` feature, so `homeostat check` reads any config.
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::providers::ProviderBlock;
use crate::spec::YPath;

/// The engine socket used when neither `socket` nor `DOCKER_HOST` names one.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// A target made of the containers labelled `homeostat.target=<target name>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Docker Engine API socket: a path or `unix:///path` (default:
    /// `DOCKER_HOST` if it is a `unix://` address, else `/var/run/docker.sock`).
    /// A relative path is relative to the config file.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Container port that serves metrics; the scraper reads it through the
    /// host port it is published on (on 127.0.0.1).
    pub port: u16,
    /// Host ports for new replicas, `start-end` inclusive; default: a free
    /// port chosen by Docker. With a range, a replacement reuses the port of
    /// the container it replaces when that port is free, so its address stays.
    #[serde(default)]
    pub host_ports: Option<String>,
    /// HTTP path probed on the published port for containers whose image has
    /// no Docker `HEALTHCHECK` (e.g. `/healthz`; 2xx = healthy). Without it
    /// such a container counts as healthy while it runs.
    #[serde(default)]
    pub health: Option<String>,
    /// How long a new container without a Docker health check must keep
    /// running (and pass `health`, if set) to count as started (default 2s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub settle_time: Option<Duration>,
    /// How long a new container may take to become healthy (default 30s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub startup_timeout: Option<Duration>,
    /// Grace period between SIGTERM (the image's stop signal) and SIGKILL when
    /// a container is removed (default 10s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub stop_timeout: Option<Duration>,
    /// How often the engine is asked for the containers' state (default 2s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub poll_interval: Option<Duration>,
    /// Timeout of one Engine API call (default 10s; a stop call gets
    /// `stop_timeout` on top).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub api_timeout: Option<Duration>,
}

impl DockerConfig {
    /// The socket path to dial: `socket`, else `DOCKER_HOST` (`unix://` only),
    /// else [`DEFAULT_SOCKET`].
    pub fn socket_path(&self) -> PathBuf {
        if let Some(s) = &self.socket {
            return strip_unix_scheme(s);
        }
        match std::env::var("DOCKER_HOST") {
            Ok(h) if h.starts_with("unix://") => strip_unix_scheme(Path::new(&h)),
            _ => PathBuf::from(DEFAULT_SOCKET),
        }
    }
}

/// `unix:///run/docker.sock` → `/run/docker.sock`; a plain path stays.
pub fn strip_unix_scheme(p: &Path) -> PathBuf {
    match p.to_str().and_then(|s| s.strip_prefix("unix://")) {
        Some(rest) => PathBuf::from(rest),
        None => p.to_path_buf(),
    }
}

impl ProviderBlock for DockerConfig {
    fn check(&self, at: &YPath) -> Vec<(YPath, String)> {
        let mut errs = Vec::new();
        if self.port == 0 {
            errs.push((at.key("port"), "docker.port: must be 1..=65535".into()));
        }
        if let Some(r) = &self.host_ports {
            if let Err(e) = crate::spec::parse_port_range(r) {
                errs.push((at.key("host_ports"), format!("docker.host_ports: {e}")));
            }
        }
        if let Some(s) = &self.socket {
            let s = s.to_string_lossy();
            if s.is_empty() || s == "unix://" {
                errs.push((at.key("socket"), "docker.socket: empty path".into()));
            } else if s.contains("://") && !s.starts_with("unix://") {
                errs.push((
                    at.key("socket"),
                    format!("docker.socket: {s:?}: only a Unix socket (a path or unix:///path) is supported"),
                ));
            }
        }
        if let Some(h) = &self.health {
            if !h.starts_with('/') {
                errs.push((
                    at.key("health"),
                    format!("docker.health: {h:?} must be a path starting with /"),
                ));
            }
        }
        for (name, d) in [
            ("startup_timeout", self.startup_timeout),
            ("stop_timeout", self.stop_timeout),
            ("poll_interval", self.poll_interval),
            ("api_timeout", self.api_timeout),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                errs.push((at.key(name), format!("docker.{name}: must be more than 0s")));
            }
        }
        if self.stop_timeout.is_some_and(|d| d.subsec_nanos() != 0) {
            errs.push((
                at.key("stop_timeout"),
                "docker.stop_timeout: the engine takes whole seconds".into(),
            ));
        }
        errs
    }

    fn resolve_paths(&mut self, base_dir: &Path) {
        self.socket = self
            .socket
            .take()
            .map(|p| base_dir.join(strip_unix_scheme(&p)));
    }
}
