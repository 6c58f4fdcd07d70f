//! What each action kind means to the guard: how a decision of that kind is
//! planned into a provider op, which cooldown of its own holds it back, which
//! blast-radius limit applies, and whether it may shrink a target.
//!
//! One file per kind; adding a kind is a file here, its row in [`of`], and
//! its provider methods (DESIGN.md §2). The guard ([`super::guard`]) runs the
//! steps every kind shares (pause, leader, bounds, rule and replica-count
//! cooldowns, rate limit, one action at a time, dry-run, approval) and asks
//! the kind for the rest. Pure: reads its arguments, never the clock or the log.
mod circuit_break;
mod failover;
mod redeploy;
mod scale;
mod scale_in;
mod scale_out;

use std::time::Duration;

use super::limits::TargetLimits;
use super::state::GuardState;
use super::types::Decision;
use crate::model::CircuitChange;
use crate::model::{ActionKind, Cause, Direction, ProviderOp, TargetState, TimestampMs};

pub use failover::DEFAULT_INSTANCE_COOLDOWN;
pub use scale::{DEFAULT_STABILIZATION_WINDOW, DEFAULT_TOLERANCE};

/// One action kind's part of the guard.
pub struct Kind {
    /// Turn a decision into a provider op, or say why there is none.
    pub(super) plan: fn(&Planning<'_>) -> Plan,
    /// The replica-count directions its actions may take (for the
    /// `cooldown_up`/`cooldown_down` checks and "next time it may act").
    pub directions: &'static [Option<Direction>],
    /// It may make a target smaller: missing data never lets it act.
    pub may_shrink: bool,
    /// It may not run beside any other action on its target (a conflict is
    /// then `blast_radius`, not `in_progress`).
    pub exclusive: bool,
    /// A cooldown of the kind's own, beyond the rule's and the target's.
    pub(super) cooldown: fn(&Decision, &Subject<'_>, &GuardState) -> Option<Cooldown>,
    /// A blast-radius limit of the kind's own.
    pub(super) blast_radius: fn(&Decision, &Subject<'_>, &Planning<'_>) -> Option<(Cause, String)>,
}

/// The kind's part of the guard.
pub fn of(kind: ActionKind) -> &'static Kind {
    match kind {
        ActionKind::ScaleOut => &scale_out::KIND,
        ActionKind::ScaleIn => &scale_in::KIND,
        ActionKind::Scale => &scale::KIND,
        ActionKind::Failover => &failover::KIND,
        ActionKind::CircuitBreak => &circuit_break::KIND,
        ActionKind::Redeploy => &redeploy::KIND,
    }
}

/// What planning and the blast-radius check read.
pub(super) struct Planning<'a> {
    pub decision: &'a Decision,
    pub limits: &'a TargetLimits,
    pub state: &'a GuardState,
    /// The provider's current view of the target.
    pub target: &'a TargetState,
    pub now: TimestampMs,
}

impl Planning<'_> {
    /// The instance the decision names, templated or as written.
    fn instance(&self) -> Option<String> {
        self.decision
            .instance
            .clone()
            .or_else(|| self.decision.action.instance.clone())
    }

    /// The decision came from missing, stale or failed data.
    fn no_data(&self) -> bool {
        self.decision.reason.no_data.is_some()
    }
}

/// What planning produced: an op, or why there is none.
#[derive(Debug, Clone, Default)]
pub(super) struct Plan {
    pub op: Option<ProviderOp>,
    pub direction: Option<Direction>,
    pub instance: Option<String>,
    pub circuit: Option<CircuitChange>,
    pub recommendation: Option<u32>,
    /// A reason not to act found while planning (reported at the bounds step).
    pub hold: Option<(Cause, String)>,
}

impl Plan {
    fn op(op: ProviderOp) -> Self {
        Plan {
            op: Some(op),
            ..Plan::default()
        }
    }

    fn hold(cause: Cause, detail: impl Into<String>) -> Self {
        Plan {
            hold: Some((cause, detail.into())),
            ..Plan::default()
        }
    }

    /// Change the replica count from `from` to `to`.
    fn set_replicas(from: u32, to: u32, dir: Direction) -> Self {
        if to == from {
            return Plan::hold(
                Cause::Bounds,
                format!("clamped to the current count {from}"),
            );
        }
        Plan {
            direction: Some(dir),
            ..Plan::op(ProviderOp::SetReplicas { from, to })
        }
    }
}

/// What a cooldown check is about.
pub(super) struct Subject<'a> {
    pub rule: &'a str,
    pub target: &'a str,
    pub kind: ActionKind,
    pub instance: Option<&'a str>,
    pub direction: Option<Direction>,
}

/// One cooldown that may hold an action back: `what` happened at `last`
/// (`None`: never), and nothing of the kind may follow for `length`.
pub(super) struct Cooldown {
    pub last: Option<TimestampMs>,
    pub length: Duration,
    /// What happened, e.g. `web scaled up`.
    pub what: String,
    /// Which cooldown this is, e.g. `cooldown_up` (none for the rule's own).
    pub name: Option<&'static str>,
}

/// No cooldown beyond the rule's and the target's.
fn no_cooldown(_: &Decision, _: &Subject<'_>, _: &GuardState) -> Option<Cooldown> {
    None
}

/// No blast-radius limit beyond one action at a time per target.
fn no_blast_radius(_: &Decision, _: &Subject<'_>, _: &Planning<'_>) -> Option<(Cause, String)> {
    None
}

pub(super) fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

pub(super) fn fmt_ms(v: i64) -> String {
    crate::spec::format_duration(Duration::from_millis(v.max(0) as u64))
}
