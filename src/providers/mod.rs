//! Provider adapters: the only code that changes the world.
//!
//! Each adapter is a folder (`config.rs`, `client.rs`, `mod.rs`, `tests.rs`) and
//! implements [`Provider`]. The trait speaks in target-level operations (set the
//! replica count, replace an instance, take an instance out of traffic, roll a
//! new version) so that process, webhook, Docker, HAProxy and Kubernetes adapters
//! fit without changing it. Providers keep no decision logic: the guard and the
//! per-kind state machines in `actions` decide, providers execute.
//!
//! Every adapter's `config.rs` is always compiled (so `homeostat check` can
//! read any config and say which feature a binary lacks); the adapter itself
//! sits behind its Cargo feature (`docker`, `haproxy`, `kubernetes`).
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{
    ActionKind, ActionOutcome, ActionRequest, ProviderError, ProviderOp, Reconciliation,
    TargetState,
};

pub mod docker;
pub mod haproxy;
pub mod health;
pub mod kubernetes;
pub mod process;
pub mod webhook;

use crate::spec::YPath;

/// What a provider's config block offers `config::compile`, so that each
/// adapter validates its own settings and the errors still carry positions.
pub trait ProviderBlock {
    /// Problems with the block at `at`: each is the path of the offending
    /// field (built from `at`) and a message that names it.
    fn check(&self, at: &YPath) -> Vec<(YPath, String)>;

    /// Resolve relative paths against the config file's directory.
    fn resolve_paths(&mut self, _base_dir: &Path) {}

    /// The target's `max` when the config gives none; `None`: `max` is required.
    fn implied_max(&self) -> Option<u32> {
        None
    }
}

/// What the agent hands every adapter besides its own config block.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderContext {
    /// The agent's `data_dir` (absolute), for adapters that keep files.
    pub data_dir: PathBuf,
    /// The target's bounds, as the guard enforces them.
    pub min: u32,
    pub max: u32,
}

/// Spare time an adapter adds to its [`Provider::attempt_timeout`] for the
/// API calls around the waits it counts.
pub const ATTEMPT_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Outcomes of the last [`CompletedActions::KEPT`] actions an adapter carried
/// out, by action id: a repeated id (the executor's retry, a replay) gets its
/// outcome back without acting again, and an id reused for another operation
/// is refused. Serialises as a plain list, so adapters can persist it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CompletedActions(std::collections::VecDeque<CompletedAction>);

/// One entry of [`CompletedActions`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedAction {
    pub action_id: String,
    pub op: ProviderOp,
    pub outcome: ActionOutcome,
}

impl CompletedActions {
    /// Entries kept; older ones are forgotten.
    pub const KEPT: usize = 100;

    /// The outcome of `req`'s action id if it was carried out already;
    /// `Rejected` if that id was used for a different operation.
    pub fn recall(
        &self,
        req: &ActionRequest,
        provider: &str,
    ) -> Result<Option<ActionOutcome>, ProviderError> {
        match self.0.iter().find(|a| a.action_id == req.action_id) {
            Some(a) if a.op != req.op => Err(ProviderError::rejected(
                provider,
                format!(
                    "action id {} was already used for a different operation",
                    req.action_id
                ),
            )),
            Some(a) => Ok(Some(a.outcome.clone())),
            None => Ok(None),
        }
    }

    /// The recorded outcome of `action_id`, if any.
    pub fn outcome(&self, action_id: &str) -> Option<&ActionOutcome> {
        self.0
            .iter()
            .find(|a| a.action_id == action_id)
            .map(|a| &a.outcome)
    }

    /// Remember `req`'s outcome (replacing an older entry of the same id),
    /// forgetting the oldest beyond [`CompletedActions::KEPT`].
    pub fn record(&mut self, req: &ActionRequest, outcome: ActionOutcome) {
        self.0.retain(|a| a.action_id != req.action_id);
        self.0.push_back(CompletedAction {
            action_id: req.action_id.clone(),
            op: req.op.clone(),
            outcome,
        });
        while self.0.len() > Self::KEPT {
            self.0.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A provider adapter. Object-safe: the agent holds `Arc<dyn Provider>` per target.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Adapter name as written in config (`process`, `webhook`, `docker`, ...).
    fn name(&self) -> &'static str;

    /// Action kinds this adapter can carry out.
    fn supports(&self) -> &'static [ActionKind];

    /// Bring the target to its declared initial state and adopt what already runs
    /// (after an agent restart: find existing instances, start none twice).
    async fn start(&self) -> Result<TargetState, ProviderError>;

    /// Current state (instances, addresses, health). Cheap; called every tick.
    async fn state(&self) -> Result<TargetState, ProviderError>;

    /// How long one attempt at `op` may take when this adapter knows it can
    /// need longer than the executor's default (it waits for health checks,
    /// drains or rollouts); the executor allows the longer of the two.
    fn attempt_timeout(&self, _op: &ProviderOp) -> Option<std::time::Duration> {
        None
    }

    /// Perform one operation. Must be idempotent per `action_id`.
    async fn execute(&self, req: &ActionRequest) -> Result<ActionOutcome, ProviderError>;

    /// After a crash: did the started action `req` take effect?
    async fn reconcile(&self, req: &ActionRequest) -> Result<Reconciliation, ProviderError>;

    /// Stop background work. `stop_instances`: also stop what it runs (demo teardown).
    async fn shutdown(&self, stop_instances: bool);
}

#[cfg(test)]
mod tests {
    use super::ProviderOp;

    #[test]
    fn completed_actions_are_bounded_unique_and_refuse_a_reused_id() {
        use super::{ActionOutcome, ActionRequest, CompletedActions};
        let req = |id: &str, op: ProviderOp| ActionRequest {
            action_id: id.into(),
            target: "t".into(),
            kind: crate::model::ActionKind::Redeploy,
            op,
            rule: "r".into(),
        };
        let mut done = CompletedActions::default();
        for i in 0..(CompletedActions::KEPT + 10) {
            done.record(
                &req(&format!("a{i}"), ProviderOp::Rollback),
                ActionOutcome::default(),
            );
        }
        assert_eq!(done.len(), CompletedActions::KEPT);
        assert!(done.outcome("a0").is_none());
        assert!(done
            .outcome(&format!("a{}", CompletedActions::KEPT + 9))
            .is_some());
        let why = ActionOutcome {
            rolled_back: Some("why".into()),
            ..Default::default()
        };
        done.record(&req("a50", ProviderOp::Rollback), why.clone());
        assert_eq!(done.len(), CompletedActions::KEPT);
        assert_eq!(
            done.recall(&req("a50", ProviderOp::Rollback), "p").unwrap(),
            Some(why)
        );
        let reused = done.recall(&req("a50", ProviderOp::SetReplicas { from: 1, to: 2 }), "p");
        assert!(
            matches!(reused, Err(super::ProviderError::Rejected { .. })),
            "{reused:?}"
        );
        assert_eq!(
            done.recall(&req("new", ProviderOp::Rollback), "p").unwrap(),
            None
        );
        // Persisted as a list of {action_id, op, outcome}, as the state files always were.
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json.as_array().unwrap().last().unwrap()["action_id"], "a50");
        assert_eq!(
            serde_json::from_value::<CompletedActions>(json).unwrap(),
            done
        );
    }

    #[test]
    fn ops_count_the_instances_they_wait_for_in_turn() {
        let i = || "a".to_string();
        assert_eq!(
            ProviderOp::SetReplicas { from: 2, to: 5 }.sequential_instances(2),
            3
        );
        assert_eq!(
            ProviderOp::SetReplicas { from: 5, to: 1 }.sequential_instances(5),
            4
        );
        assert_eq!(
            ProviderOp::Replace { instance: i() }.sequential_instances(4),
            1
        );
        assert_eq!(ProviderOp::Rollback.sequential_instances(3), 6);
        assert_eq!(ProviderOp::Rollback.sequential_instances(0), 2);
        assert_eq!(
            ProviderOp::CircuitOpen { instance: i() }.sequential_instances(4),
            0
        );
    }
}
