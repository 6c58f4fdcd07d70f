//! What users write for a `provider: kubernetes` target.
//!
//! Owns the fields, their defaults and their validation (names as the API
//! server would accept them). Must not talk to the cluster: what can only be
//! checked against the live objects (the quarantine label is on the pod
//! template and not in the workload's selector, the Service selects on it) is
//! checked by the adapter's `start()`.
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::providers::ProviderBlock;
use crate::spec::YPath;

/// The workload a target scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    /// The API resource (plural) of the kind.
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        }
    }
}

/// How `failover` takes a pod down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverMethod {
    /// The Eviction API (`pods/eviction`): a PodDisruptionBudget is honoured.
    #[default]
    Evict,
    /// A plain DELETE of the pod: no PodDisruptionBudget is consulted.
    Delete,
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
    /// Pod port the scraper reads metrics from (pod IP + this port). Default:
    /// the container port named `metrics`, else the container's first port.
    #[serde(default)]
    pub metrics_port: Option<u16>,
    /// Timeout of one API call (default 10s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub api_timeout: Option<Duration>,
    /// Pod label the Service selects on and the workload's selector does not;
    /// `circuit_break` removes it from a pod (out of the Service's endpoints)
    /// and restores it. Its value is kept in the pod annotation
    /// `homeostat.io/quarantined` while the label is removed. Without it
    /// `circuit_break` is refused.
    #[serde(default)]
    pub quarantine_label: Option<String>,
    /// Service in front of the workload. When set, start-up checks that its
    /// selector includes `quarantine_label` (needs `get` on `services`).
    #[serde(default)]
    pub service: Option<String>,
    /// Container whose image (`version`), command and environment a redeploy
    /// changes and whose image tag is reported as the version. Default: the
    /// pod template's first container.
    #[serde(default)]
    pub container: Option<String>,
    /// How long a rollout (redeploy, rollback) may take before it counts as
    /// stalled and is rolled back (default 5m).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub rollout_timeout: Option<Duration>,
    /// How often the workload and its pods are read for `state()`, and how
    /// often a rollout's progress is checked (default 2s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub poll_interval: Option<Duration>,
    /// `evict` (default: the Eviction API, PodDisruptionBudgets honoured) or
    /// `delete` (plain delete; no budget is consulted).
    #[serde(default)]
    pub failover: FailoverMethod,
}

impl KubernetesConfig {
    /// A config with only the workload's name set (tests, examples).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            kind: WorkloadKind::Deployment,
            name: name.into(),
            namespace: None,
            kubeconfig: None,
            context: None,
            metrics_port: None,
            api_timeout: None,
            quarantine_label: None,
            service: None,
            container: None,
            rollout_timeout: None,
            poll_interval: None,
            failover: FailoverMethod::Evict,
        }
    }
}

/// RFC 1123 subdomain: what the API server accepts as most object names.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// RFC 1123 label: namespaces and container names.
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

/// A label key: `[prefix/]name`, name ≤ 63 of `[A-Za-z0-9_.-]` starting and
/// ending alphanumeric, prefix an RFC 1123 subdomain.
pub fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        return false;
    }
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

impl ProviderBlock for KubernetesConfig {
    fn check(&self, at: &YPath) -> Vec<(YPath, String)> {
        let mut errs = Vec::new();
        if self.name.trim().is_empty() {
            errs.push((at.key("name"), "kubernetes.name: is empty".into()));
        } else if !is_dns_subdomain(&self.name) {
            errs.push((
                at.key("name"),
                format!(
                    "kubernetes.name: {:?} is not a valid object name (lower case letters, digits, '-' and '.')",
                    self.name
                ),
            ));
        }
        if let Some(ns) = &self.namespace {
            if !is_dns_label(ns) {
                errs.push((
                    at.key("namespace"),
                    format!("kubernetes.namespace: {ns:?} is not a valid namespace name"),
                ));
            }
        }
        if let Some(c) = &self.context {
            if c.trim().is_empty() {
                errs.push((at.key("context"), "kubernetes.context: is empty".into()));
            }
        }
        if self.metrics_port == Some(0) {
            errs.push((
                at.key("metrics_port"),
                "kubernetes.metrics_port: must be 1..=65535".into(),
            ));
        }
        if let Some(l) = &self.quarantine_label {
            if !is_label_key(l) {
                errs.push((
                    at.key("quarantine_label"),
                    format!("kubernetes.quarantine_label: {l:?} is not a valid label key"),
                ));
            }
        }
        if let Some(s) = &self.service {
            if !is_dns_label(s) {
                errs.push((
                    at.key("service"),
                    format!("kubernetes.service: {s:?} is not a valid Service name"),
                ));
            }
            if self.quarantine_label.is_none() {
                errs.push((
                    at.key("service"),
                    "kubernetes.service: is only used to check quarantine_label, which is not set"
                        .into(),
                ));
            }
        }
        if let Some(c) = &self.container {
            if !is_dns_label(c) {
                errs.push((
                    at.key("container"),
                    format!("kubernetes.container: {c:?} is not a valid container name"),
                ));
            }
        }
        for (field, d) in [
            ("api_timeout", self.api_timeout),
            ("rollout_timeout", self.rollout_timeout),
            ("poll_interval", self.poll_interval),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                errs.push((at.key(field), format!("kubernetes.{field}: must be > 0")));
            }
        }
        errs
    }

    fn resolve_paths(&mut self, base_dir: &std::path::Path) {
        self.kubeconfig = self.kubeconfig.take().map(|p| base_dir.join(p));
    }
}
