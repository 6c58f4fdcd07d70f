//! What users write for a `provider: haproxy` target.
use std::time::Duration;

use serde::Deserialize;

use crate::config::YPath;
use crate::providers::ProviderBlock;

/// A target made of server slots of one HAProxy backend, driven through the
/// runtime API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyConfig {
    /// Runtime API address: a Unix socket path (`/run/haproxy/admin.sock`,
    /// relative to the config file) or `tcp://host:port`.
    pub runtime_api: String,
    /// The backend whose servers this target manages.
    pub backend: String,
    /// Timeout of one runtime API command (default 5s).
    #[serde(default, with = "crate::actions::opt_duration")]
    pub timeout: Option<Duration>,
}

impl ProviderBlock for HaproxyConfig {
    fn check(&self, at: &YPath) -> Vec<(YPath, String)> {
        let mut errs = Vec::new();
        if self.runtime_api.trim().is_empty() {
            errs.push((
                at.key("runtime_api"),
                "haproxy.runtime_api: is empty".into(),
            ));
        }
        if self.backend.trim().is_empty() {
            errs.push((at.key("backend"), "haproxy.backend: is empty".into()));
        }
        errs
    }

    fn resolve_paths(&mut self, base_dir: &std::path::Path) {
        if !self.runtime_api.contains("://") {
            self.runtime_api = base_dir.join(&self.runtime_api).display().to_string();
        }
    }
}
