//! What users write for a `provider: kubernetes` target.
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::YPath;
use crate::providers::ProviderBlock;

/// The workload a target scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
}

/// A target that is one Deployment or StatefulSet.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// `Deployment` (default) or `StatefulSet`.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// The workload's name.
    pub name: String,
    /// Its namespace (default: the service account's namespace in a cluster,
    /// else the kubeconfig context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Kubeconfig file (relative to the config file); default: in-cluster
    /// service account, else `$KUBECONFIG` or `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Pod port the scraper reads metrics from (pod IP + this port).
    #[serde(default)]
    pub metrics_port: Option<u16>,
    /// Timeout of one API call (default 10s).
    #[serde(default, with = "crate::actions::opt_duration")]
    pub api_timeout: Option<Duration>,
}

impl ProviderBlock for KubernetesConfig {
    fn check(&self, at: &YPath) -> Vec<(YPath, String)> {
        let mut errs = Vec::new();
        if self.name.trim().is_empty() {
            errs.push((at.key("name"), "kubernetes.name: is empty".into()));
        }
        errs
    }

    fn resolve_paths(&mut self, base_dir: &std::path::Path) {
        self.kubeconfig = self.kubeconfig.take().map(|p| base_dir.join(p));
    }
}
