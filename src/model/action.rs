//! What an action is, before anyone decides or carries it out: its kind,
//! whether it acts or only records, whether a human must approve, which way a
//! replica change goes and who asked for it.
//!
//! Pure data shared by rules, guard, executor, providers, audit and metrics;
//! imports nothing of ours.
use serde::{Deserialize, Serialize};

/// What an action does (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    ScaleOut,
    ScaleIn,
    Scale,
    Failover,
    CircuitBreak,
    Redeploy,
}

impl ActionKind {
    pub const ALL: [ActionKind; 6] = [
        ActionKind::ScaleOut,
        ActionKind::ScaleIn,
        ActionKind::Scale,
        ActionKind::Failover,
        ActionKind::CircuitBreak,
        ActionKind::Redeploy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ScaleOut => "scale_out",
            ActionKind::ScaleIn => "scale_in",
            ActionKind::Scale => "scale",
            ActionKind::Failover => "failover",
            ActionKind::CircuitBreak => "circuit_break",
            ActionKind::Redeploy => "redeploy",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `enforce` acts; `dry_run` records what it would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    DryRun,
}

/// Whether a human must approve before the action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    None,
    Required,
}

/// Which way a replica-count change goes (target `cooldown_up` / `cooldown_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

/// Who asked for an action. Only rule actions count for cooldowns and the
/// hourly rate limit; circuit transitions are follow-ups of an earlier action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    #[default]
    Rule,
    /// A due circuit transition (half-open, close, re-open) asked for by the agent.
    Circuit,
}
