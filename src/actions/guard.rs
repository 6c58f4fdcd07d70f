//! The guard: decides whether a decision may act, and with which provider op.
//!
//! Owns [`Guard::check`] in DESIGN.md §4 order: paused · not leader · bounds ·
//! cooldowns · rate limit · blast radius · dry-run · approval. The steps every
//! kind shares are here (the rule's cooldown, the target's replica-count
//! cooldowns, the hourly rate limit, one action at a time per target); what a
//! kind means (its plan, its own cooldown and blast-radius limit) is in
//! [`super::kinds`]. Pure: it reads [`GuardState`] and its arguments, never
//! the clock, never the log.
use super::intent::{new_action_id, Intent};
use super::kinds::{self, fmt_ms, ms, Cooldown, Planning, Subject};
use super::limits::TargetLimits;
use super::state::GuardState;
use super::types::Decision;
use crate::model::{
    ActionKind, Approval, Cause, Direction, Mode, Origin, TargetState, TimestampMs,
};

/// The guard's answer.
// Short-lived and moved once; boxing `Act` would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Act(Intent),
    Suppress {
        cause: Cause,
        /// Human-readable explanation for the audit log.
        detail: String,
        /// What it would have done, when that is known (dry-run, approval,
        /// cooldown …): recorded in the audit log, and what an approval runs.
        would: Option<Box<Intent>>,
        /// `scale`: this evaluation's desired count (recorded for stabilisation
        /// even when nothing acts).
        recommendation: Option<u32>,
    },
}

impl Verdict {
    pub fn recommendation(&self) -> Option<u32> {
        match self {
            Verdict::Act(i) => i.recommendation,
            Verdict::Suppress { recommendation, .. } => *recommendation,
        }
    }

    pub fn cause(&self) -> Option<Cause> {
        match self {
            Verdict::Act(_) => None,
            Verdict::Suppress { cause, .. } => Some(*cause),
        }
    }
}

/// The guard. `leader` is an input: the leader election feeds it (always true
/// for a single agent).
#[derive(Debug, Clone)]
pub struct Guard {
    pub leader: bool,
}

impl Default for Guard {
    fn default() -> Self {
        Self { leader: true }
    }
}

impl Guard {
    /// Turn `decision` into an intent or a suppression. `target_state` is the
    /// provider's current view of the target (replica count, instances).
    pub fn check(
        &self,
        decision: &Decision,
        target: &TargetLimits,
        state: &GuardState,
        target_state: &TargetState,
        now: TimestampMs,
    ) -> Verdict {
        let planning = Planning {
            decision,
            limits: target,
            state,
            target: target_state,
            now,
        };
        let kind = kinds::of(decision.action.kind);
        let plan = (kind.plan)(&planning);
        let intent = plan.op.clone().map(|op| Intent {
            action_id: new_action_id(decision.at),
            rule: decision.rule.clone(),
            group: decision.group.clone(),
            target: decision.action.target.clone(),
            kind: decision.action.kind,
            instance: plan.instance.clone(),
            op,
            direction: plan.direction,
            origin: Origin::Rule,
            circuit: plan.circuit,
            mode: decision.mode,
            reason: Some(decision.reason.clone()),
            recommendation: plan.recommendation,
            trace_id: decision.reason.trace_ids.first().cloned(),
            at: decision.at,
        });
        let suppress = |cause: Cause, detail: String| Verdict::Suppress {
            cause,
            detail,
            would: intent.clone().map(Box::new),
            recommendation: plan.recommendation,
        };

        // 1. paused, 2. leader
        if state.paused() {
            return suppress(Cause::Paused, "agent is paused".into());
        }
        if !self.leader {
            return suppress(Cause::NotLeader, "this agent is not the leader".into());
        }
        // 3. bounds (and everything else planning found)
        if let Some((cause, detail)) = plan.hold {
            return suppress(cause, detail);
        }
        let Some(intent) = intent.clone() else {
            return suppress(Cause::Invalid, "no operation".into());
        };
        let subject = Subject {
            rule: &intent.rule,
            target: &intent.target,
            kind: intent.kind,
            instance: intent.instance.as_deref(),
            direction: intent.direction,
        };
        // 4. cooldowns: report the one that lasts longest, that is when it may act.
        if let Some((_, detail)) = blocking(decision, &subject, target, state, now)
            .into_iter()
            .max_by_key(|(left, _)| *left)
        {
            return suppress(Cause::Cooldown, detail);
        }
        // 5. rate limit
        let started = state.starts_in_last_hour(&intent.target, now);
        if target.max_actions_per_hour > 0 && started >= target.max_actions_per_hour as usize {
            let next = state
                .recent_starts(&intent.target)
                .filter(|t| *t > now - 3_600_000)
                .min()
                .map(|t| fmt_ms(t + 3_600_000 - now))
                .unwrap_or_default();
            return suppress(
                Cause::RateLimit,
                format!(
                    "{started} actions on {} in the last hour (max {}); next slot in {next}",
                    intent.target, target.max_actions_per_hour
                ),
            );
        }
        // 6. blast radius: one action at a time per target, then the kind's own limit
        if let Some(running) = state.in_progress(&intent.target).next() {
            let cause = if kind.exclusive || kinds::of(running.kind).exclusive {
                Cause::BlastRadius
            } else {
                Cause::InProgress
            };
            return suppress(
                cause,
                format!(
                    "{} action {} on {} is still running",
                    running.kind, running.action_id, intent.target
                ),
            );
        }
        if let Some((cause, detail)) = (kind.blast_radius)(decision, &subject, &planning) {
            return suppress(cause, detail);
        }
        // 7. dry-run, 8. approval
        if decision.mode == Mode::DryRun {
            return suppress(Cause::DryRun, "dry_run: recorded, not executed".into());
        }
        if decision.approval == Approval::Required {
            return suppress(Cause::Approval, "waiting for approval".into());
        }
        Verdict::Act(intent)
    }

    /// When `decision`'s cooldowns end (None: none is running), for
    /// `/api/v1/rules` "next time it may act". For a kind whose direction
    /// depends on the metric (`scale`), the earlier of the up and down ends.
    pub fn cooldown_until(
        &self,
        decision: &Decision,
        limits: &TargetLimits,
        state: &GuardState,
        now: TimestampMs,
    ) -> Option<TimestampMs> {
        let instance = decision
            .instance
            .as_deref()
            .or(decision.action.instance.as_deref());
        kinds::of(decision.action.kind)
            .directions
            .iter()
            .map(|dir| {
                let x = Subject {
                    rule: &decision.rule,
                    target: &decision.action.target,
                    kind: decision.action.kind,
                    instance,
                    direction: *dir,
                };
                blocking(decision, &x, limits, state, now)
                    .into_iter()
                    .map(|(left, _)| now + left)
                    .max()
            })
            .min()
            .flatten()
    }
}

/// Every cooldown that applies to `x`: the rule's own, the target's
/// replica-count ones for the direction, and the kind's.
fn cooldowns(
    d: &Decision,
    x: &Subject<'_>,
    limits: &TargetLimits,
    state: &GuardState,
) -> Vec<Cooldown> {
    let mut out = Vec::new();
    let target = x.target;
    if let Some(length) = d.cooldown {
        let on = match x.instance {
            Some(i) if matches!(x.kind, ActionKind::Failover | ActionKind::CircuitBreak) => {
                format!("{target}/{i}")
            }
            _ => target.to_string(),
        };
        out.push(Cooldown {
            last: state.last_rule_action(x.rule, target, x.kind, x.instance),
            length,
            what: format!("rule {} acted on {on}", x.rule),
            name: None,
        });
    }
    match x.direction {
        Some(Direction::Up) => out.push(Cooldown {
            last: state.last_scale(target, Direction::Up),
            length: limits.cooldown_up,
            what: format!("{target} scaled up"),
            name: Some("cooldown_up"),
        }),
        // Never shrink right after any change.
        Some(Direction::Down) => out.push(Cooldown {
            last: [Direction::Up, Direction::Down]
                .into_iter()
                .filter_map(|dir| state.last_scale(target, dir))
                .max(),
            length: limits.cooldown_down,
            what: format!("{target} changed replicas"),
            name: Some("cooldown_down"),
        }),
        None => {}
    }
    out.extend((kinds::of(x.kind).cooldown)(d, x, state));
    out
}

/// The cooldowns that block `x` at `now`: (ms left, explanation).
fn blocking(
    d: &Decision,
    x: &Subject<'_>,
    limits: &TargetLimits,
    state: &GuardState,
    now: TimestampMs,
) -> Vec<(i64, String)> {
    cooldowns(d, x, limits, state)
        .into_iter()
        .filter_map(|c| {
            let t = c.last?;
            let left = t + ms(c.length) - now;
            (left > 0).then(|| {
                let name = c.name.map(|n| format!(" ({n})")).unwrap_or_default();
                let msg = format!(
                    "{} {} ago{name}; cooldown {} ({} left)",
                    c.what,
                    fmt_ms(now - t),
                    fmt_ms(ms(c.length)),
                    fmt_ms(left)
                );
                (left, msg)
            })
        })
        .collect()
}
