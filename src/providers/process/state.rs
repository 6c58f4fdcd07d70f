//! What the process provider remembers on disk, and the discovery file it writes.
//!
//! Owns the shape of `<data_dir>/targets/<target>/replicas.json` (replicas with
//! pid, port, version and exact command line; current and previous deployment;
//! the outcomes of recent action ids) and the rendering of the Prometheus
//! `file_sd` discovery file. Must not touch processes.

use serde::{Deserialize, Serialize};

use crate::providers::CompletedActions;

/// Schema version of `replicas.json`.
pub const STATE_SCHEMA: u32 = 1;

/// A command template and the version substituted into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub command: Vec<String>,
    #[serde(default)]
    pub version: Option<String>,
    /// Environment a redeploy added on top of the configured `env`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
}

/// One running replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replica {
    pub pid: u32,
    pub port: u16,
    #[serde(default)]
    pub version: Option<String>,
    /// The exact argument vector it was started with (compared with `/proc/<pid>/cmdline`).
    pub command: Vec<String>,
    /// Wall-clock start time, milliseconds since the epoch (informational).
    pub started_at_ms: i64,
    /// Start order within this target; scale-in stops the highest first.
    pub seq: u64,
    /// Listed in the discovery file (false while its circuit is open or while starting).
    pub in_traffic: bool,
    /// Started to go into traffic once healthy, and not yet there. An agent
    /// that crashed while the replica started finds this on adoption and puts
    /// the (healthy) replica into traffic, as the interrupted action would have.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_traffic: bool,
    /// Taken out of traffic to be stopped (scale-in, replacement, redeploy). An
    /// agent that crashed before it was gone finishes stopping it on adoption,
    /// instead of keeping a replica that runs but never gets traffic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retiring: bool,
}

/// Contents of `replicas.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub schema: u32,
    /// What the config said when this state last started (detects config edits).
    #[serde(default)]
    pub configured: Option<Deployment>,
    /// What new replicas run.
    pub current: Deployment,
    /// What `Rollback` returns to.
    #[serde(default)]
    pub previous: Option<Deployment>,
    #[serde(default)]
    pub replicas: Vec<Replica>,
    #[serde(default)]
    pub next_seq: u64,
    #[serde(default)]
    pub actions: CompletedActions,
    /// Replica count the last scale asked for (recorded before acting). A
    /// restart tops up to this rather than to `initial_replicas`, so it never
    /// undoes a scale-in; `None` until the first scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<u32>,
}

impl PersistedState {
    pub fn new(current: Deployment) -> Self {
        Self {
            schema: STATE_SCHEMA,
            configured: None,
            current,
            previous: None,
            replicas: Vec::new(),
            next_seq: 0,
            actions: CompletedActions::default(),
            desired: None,
        }
    }

    pub fn replica(&self, port: u16) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.port == port)
    }

    pub fn replica_mut(&mut self, port: u16) -> Option<&mut Replica> {
        self.replicas.iter_mut().find(|r| r.port == port)
    }

    /// Ports of replicas in traffic, sorted.
    pub fn traffic_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .replicas
            .iter()
            .filter(|r| r.in_traffic)
            .map(|r| r.port)
            .collect();
        ports.sort_unstable();
        ports
    }
}

/// Prometheus `file_sd` JSON: one group with the replicas in traffic.
pub fn render_discovery(target: &str, ports: &[u16]) -> String {
    let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let doc = serde_json::json!([{
        "targets": targets,
        "labels": { "homeostat_target": target },
    }]);
    // Serialising a json! value cannot fail.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}
