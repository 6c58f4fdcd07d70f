//! What the docker provider remembers on disk, in
//! `<data_dir>/targets/<target>/docker.json`.
//!
//! The engine is the source of truth for which containers exist; this file
//! only keeps what the engine cannot tell: the template of the last replica
//! seen (so a target scaled to zero can grow again), the deployment before
//! the last redeploy (what a rollback returns to), containers being retired
//! (so a crash mid-removal finishes the removal at the next start), the
//! containers a redeploy in flight replaced (so it can still be undone), and
//! the outcomes of recent action ids. Must not talk to the engine.
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::spec::ReplicaSpec;
use crate::providers::CompletedActions;

/// Schema version of `docker.json`.
pub const STATE_SCHEMA: u32 = 1;

/// A container a redeploy removed, kept until the redeploy is done so that a
/// failure can recreate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replaced {
    pub name: String,
    pub spec: ReplicaSpec,
}

/// A redeploy (or rollback) in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub action_id: String,
    /// The template before it started: what `previous` becomes on success.
    pub from: ReplicaSpec,
    /// Old containers already removed, in order.
    #[serde(default)]
    pub replaced: Vec<Replaced>,
}

/// Contents of `docker.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub schema: u32,
    /// Template of the newest replica last seen: new replicas of a target
    /// with no container left are created from it.
    #[serde(default)]
    pub template: Option<ReplicaSpec>,
    /// Template before the last successful redeploy: what `Rollback` returns to.
    #[serde(default)]
    pub previous: Option<ReplicaSpec>,
    /// Ids of containers taken out to be stopped and removed.
    #[serde(default)]
    pub retiring: Vec<String>,
    #[serde(default)]
    pub rollout: Option<Rollout>,
    /// Next `<target>-<n>` suffix for container names.
    #[serde(default)]
    pub next_index: u64,
    #[serde(default)]
    pub actions: CompletedActions,
}

impl Default for PersistedState {
    fn default() -> Self {
        Self {
            schema: STATE_SCHEMA,
            template: None,
            previous: None,
            retiring: Vec::new(),
            rollout: None,
            next_index: 1,
            actions: CompletedActions::default(),
        }
    }
}

impl PersistedState {
    /// Read the file; a missing file is a fresh state.
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let st: Self = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("corrupt state file {}: {e}", path.display()))?;
                if st.schema != STATE_SCHEMA {
                    return Err(format!(
                        "state file {} has schema {}, this agent reads {STATE_SCHEMA}",
                        path.display(),
                        st.schema
                    ));
                }
                Ok(st)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("read {}: {e}", path.display())),
        }
    }
}
