//! The guard: decides whether a decision may act, and with which provider op.
//!
//! Owns [`Guard::check`] (DESIGN.md §4 order: paused · not leader · bounds ·
//! cooldowns · rate limit · blast radius · dry-run · approval), the per-kind
//! planning that turns an [`ActionSpec`](super::ActionSpec) into a concrete
//! [`ProviderOp`] (step/factor, target tracking with tolerance and scale-in
//! stabilisation, failover, circuit, redeploy) and [`TargetLimits`]. Pure: it
//! reads [`GuardState`] and its arguments, never the clock, never the log.
use std::time::Duration;

use super::circuit::{CircuitChange, CircuitState, DEFAULT_OPEN_FOR};
use super::intent::{new_action_id, Intent};
use super::state::GuardState;
use super::types::Decision;
use crate::model::{
    ActionKind, Approval, Cause, Direction, Mode, Origin, ProviderOp, TargetState, TimestampMs,
};

/// `scale`: relative band around `target_value` inside which nothing changes.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// `scale`: scale-in uses the highest recommendation over this window.
pub const DEFAULT_STABILIZATION_WINDOW: Duration = Duration::from_secs(300);
/// circuit_break: share of a target's instances that may be open at once.
pub const DEFAULT_MAX_OPEN_SHARE: f64 = 0.5;
/// failover: an instance is not replaced twice within this time (when the rule
/// sets no cooldown), so a replacement gets the chance to come up.
pub const DEFAULT_INSTANCE_COOLDOWN: Duration = Duration::from_secs(60);

/// Per-target limits from the agent config (the config module maps to this).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLimits {
    pub min: u32,
    pub max: u32,
    /// After a scale-up, no further scale-up for this long.
    pub cooldown_up: Duration,
    /// After any replica-count change (up or down), no scale-down for this long:
    /// never shrink right after growing.
    pub cooldown_down: Duration,
    /// Rule actions started per target in any hour; 0 disables the limit.
    pub max_actions_per_hour: u32,
    /// Largest share of instances with an open circuit (a rule's
    /// `max_open_share` overrides it).
    pub max_open_share: f64,
}

impl Default for TargetLimits {
    fn default() -> Self {
        Self {
            min: 1,
            max: u32::MAX,
            cooldown_up: Duration::ZERO,
            cooldown_down: Duration::ZERO,
            max_actions_per_hour: 30,
            max_open_share: DEFAULT_MAX_OPEN_SHARE,
        }
    }
}

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

/// What planning produced: an op, or why there is none.
struct Plan {
    op: Option<ProviderOp>,
    direction: Option<Direction>,
    instance: Option<String>,
    circuit: Option<CircuitChange>,
    recommendation: Option<u32>,
    /// A reason not to act found while planning (reported at the bounds step).
    hold: Option<(Cause, String)>,
}

impl Plan {
    fn op(op: ProviderOp) -> Self {
        Plan {
            op: Some(op),
            direction: None,
            instance: None,
            circuit: None,
            recommendation: None,
            hold: None,
        }
    }

    fn hold(cause: Cause, detail: impl Into<String>) -> Self {
        Plan {
            op: None,
            direction: None,
            instance: None,
            circuit: None,
            recommendation: None,
            hold: Some((cause, detail.into())),
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

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn fmt_ms(v: i64) -> String {
    crate::spec::format_duration(Duration::from_millis(v.max(0) as u64))
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
        let plan = plan(decision, target, state, target_state, now);
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
        // 4. cooldowns
        if let Some(detail) = cooldown(decision, &intent, target, state, now) {
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
        // 6. blast radius (and one action at a time per target)
        if let Some((cause, detail)) = blast_radius(decision, &intent, target, state, target_state)
        {
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
}

/// What a cooldown check is about.
struct Subject<'a> {
    rule: &'a str,
    target: &'a str,
    kind: ActionKind,
    instance: Option<&'a str>,
    direction: Option<Direction>,
}

/// Every cooldown that blocks `x` at `now`: (ms left, explanation).
fn cooldowns(
    d: &Decision,
    x: &Subject<'_>,
    limits: &TargetLimits,
    state: &GuardState,
    now: TimestampMs,
) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut check = |last: Option<TimestampMs>, cd: Duration, what: &dyn Fn(String) -> String| {
        if let Some(t) = last {
            let left = t + ms(cd) - now;
            if left > 0 {
                let msg = format!(
                    "{}; cooldown {} ({} left)",
                    what(fmt_ms(now - t)),
                    fmt_ms(ms(cd)),
                    fmt_ms(left)
                );
                out.push((left, msg));
            }
        }
    };
    let (rule, target) = (x.rule, x.target);
    if let Some(cd) = d.cooldown {
        let last = state.last_rule_action(rule, target, x.kind, x.instance);
        let on = match x.instance {
            Some(i) if matches!(x.kind, ActionKind::Failover | ActionKind::CircuitBreak) => {
                format!("{target}/{i}")
            }
            _ => target.to_string(),
        };
        check(last, cd, &|ago| {
            format!("rule {rule} acted on {on} {ago} ago")
        });
    }
    match x.direction {
        Some(Direction::Up) => {
            let last = state.last_scale(target, Direction::Up);
            check(last, limits.cooldown_up, &|ago| {
                format!("{target} scaled up {ago} ago (cooldown_up)")
            });
        }
        Some(Direction::Down) => {
            let last = [Direction::Up, Direction::Down]
                .into_iter()
                .filter_map(|dir| state.last_scale(target, dir))
                .max();
            check(last, limits.cooldown_down, &|ago| {
                format!("{target} changed replicas {ago} ago (cooldown_down)")
            });
        }
        None => {}
    }
    if let (ActionKind::Failover, Some(instance)) = (x.kind, x.instance) {
        let cd = d.cooldown.unwrap_or(DEFAULT_INSTANCE_COOLDOWN);
        let last = state.last_failover(target, instance);
        check(last, cd, &|ago| {
            format!("{target}/{instance} was failed over {ago} ago (instance cooldown)")
        });
    }
    out
}

fn cooldown(
    d: &Decision,
    i: &Intent,
    limits: &TargetLimits,
    state: &GuardState,
    now: TimestampMs,
) -> Option<String> {
    let x = Subject {
        rule: &i.rule,
        target: &i.target,
        kind: i.kind,
        instance: i.instance.as_deref(),
        direction: i.direction,
    };
    // Report the cooldown that lasts longest: that is when it may act.
    cooldowns(d, &x, limits, state, now)
        .into_iter()
        .max_by_key(|(left, _)| *left)
        .map(|(_, msg)| msg)
}

impl Guard {
    /// When `decision`'s cooldowns end (None: none is running), for
    /// `/api/v1/rules` "next time it may act". For `scale`, whose direction
    /// depends on the metric, the earlier of the up and down cooldown ends.
    pub fn cooldown_until(
        &self,
        decision: &Decision,
        limits: &TargetLimits,
        state: &GuardState,
        now: TimestampMs,
    ) -> Option<TimestampMs> {
        let directions: &[Option<Direction>] = match decision.action.kind {
            ActionKind::ScaleOut => &[Some(Direction::Up)],
            ActionKind::ScaleIn => &[Some(Direction::Down)],
            ActionKind::Scale => &[Some(Direction::Up), Some(Direction::Down)],
            _ => &[None],
        };
        let instance = decision
            .instance
            .as_deref()
            .or(decision.action.instance.as_deref());
        directions
            .iter()
            .map(|dir| {
                let x = Subject {
                    rule: &decision.rule,
                    target: &decision.action.target,
                    kind: decision.action.kind,
                    instance,
                    direction: *dir,
                };
                cooldowns(decision, &x, limits, state, now)
                    .into_iter()
                    .map(|(left, _)| now + left)
                    .max()
            })
            .min()
            .flatten()
    }
}

fn blast_radius(
    d: &Decision,
    i: &Intent,
    limits: &TargetLimits,
    state: &GuardState,
    ts: &TargetState,
) -> Option<(Cause, String)> {
    if let Some(running) = state.in_progress(&i.target).next() {
        let cause = if i.kind == ActionKind::Redeploy || running.kind == ActionKind::Redeploy {
            Cause::BlastRadius
        } else {
            Cause::InProgress
        };
        return Some((
            cause,
            format!(
                "{} action {} on {} is still running",
                running.kind, running.action_id, i.target
            ),
        ));
    }
    if i.kind == ActionKind::CircuitBreak {
        let share = d
            .action
            .max_open_share
            .unwrap_or(limits.max_open_share)
            .clamp(0.0, 1.0);
        let total = (ts.instances.len() as u32).max(ts.replicas) as usize;
        // Circuits of instances that are gone (replaced) no longer take traffic away.
        // Rules may name an instance by id or by address (`{{ labels.instance }}`).
        let known: Vec<&str> = ts
            .instances
            .iter()
            .flat_map(|x| std::iter::once(x.id.as_str()).chain(x.address.as_deref()))
            .collect();
        let open_now = state
            .circuits()
            .iter()
            .filter(|((t, inst), _)| {
                *t == i.target && (known.is_empty() || known.contains(&inst.as_str()))
            })
            .count();
        let open_after = open_now + 1;
        // With no instance count (e.g. webhook targets), allow one open circuit.
        let allowed = if total == 0 {
            1
        } else {
            (share * total as f64 + 1e-9).floor() as usize
        };
        if open_after > allowed {
            return Some((
                Cause::BlastRadius,
                format!(
                    "opening would leave {open_after} of {total} instances of {} out of traffic (max share {share})",
                    i.target
                ),
            ));
        }
    }
    None
}

fn plan(
    d: &Decision,
    limits: &TargetLimits,
    state: &GuardState,
    ts: &TargetState,
    now: TimestampMs,
) -> Plan {
    let spec = &d.action;
    let current = ts.replicas;
    let instance = d.instance.clone().or_else(|| spec.instance.clone());
    match spec.kind {
        ActionKind::ScaleOut => {
            if current >= limits.max {
                return Plan::hold(
                    Cause::Bounds,
                    format!("{} is at max ({current} ≥ {})", spec.target, limits.max),
                );
            }
            let wanted = match spec.factor {
                Some(f) if f > 1.0 => {
                    let grown = (current.max(1) as f64 * f).ceil().min(u32::MAX as f64) as u32;
                    grown.max(current.saturating_add(1))
                }
                _ => current.saturating_add(spec.step.unwrap_or(1).max(1)),
            };
            set_replicas(current, wanted.min(limits.max), Direction::Up)
        }
        ActionKind::ScaleIn => {
            if no_data(d) {
                return Plan::hold(Cause::NoData, "missing data never scales in");
            }
            if current <= limits.min {
                return Plan::hold(
                    Cause::Bounds,
                    format!("{} is at min ({current} ≤ {})", spec.target, limits.min),
                );
            }
            let wanted = match spec.factor {
                Some(f) if f > 1.0 => ((current as f64 / f).floor() as u32).min(current - 1),
                _ => current.saturating_sub(spec.step.unwrap_or(1).max(1)),
            };
            set_replicas(current, wanted.max(limits.min), Direction::Down)
        }
        ActionKind::Scale => plan_tracking(d, limits, state, current, now),
        ActionKind::Failover => match instance {
            Some(instance) => Plan {
                instance: Some(instance.clone()),
                ..Plan::op(ProviderOp::Replace { instance })
            },
            None => Plan::hold(Cause::Invalid, "failover needs an instance"),
        },
        ActionKind::CircuitBreak => {
            let Some(instance) = instance else {
                return Plan::hold(Cause::Invalid, "circuit_break needs an instance");
            };
            match state.circuits().state(&spec.target, &instance) {
                CircuitState::Closed => Plan {
                    instance: Some(instance.clone()),
                    circuit: Some(CircuitChange {
                        from: CircuitState::Closed,
                        to: CircuitState::Open,
                        open_for_ms: ms(spec.open_for.unwrap_or(DEFAULT_OPEN_FOR)) as u64,
                    }),
                    ..Plan::op(ProviderOp::CircuitOpen { instance })
                },
                s => Plan {
                    instance: Some(instance.clone()),
                    ..Plan::hold(
                        Cause::InProgress,
                        format!(
                            "circuit of {}/{instance} is already {}",
                            spec.target,
                            s.as_str()
                        ),
                    )
                },
            }
        }
        ActionKind::Redeploy => Plan::op(if spec.rollback {
            ProviderOp::Rollback
        } else {
            ProviderOp::Redeploy {
                version: spec.version.clone(),
                command: spec.command.clone(),
                env: spec.env.clone(),
            }
        }),
    }
}

fn no_data(d: &Decision) -> bool {
    d.reason.no_data.is_some()
}

fn set_replicas(from: u32, to: u32, dir: Direction) -> Plan {
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

/// `scale`: HPA-style target tracking.
fn plan_tracking(
    d: &Decision,
    limits: &TargetLimits,
    state: &GuardState,
    current: u32,
    now: TimestampMs,
) -> Plan {
    let spec = &d.action;
    let Some(metric) = spec.metric.as_deref() else {
        return Plan::hold(Cause::Invalid, "scale needs `metric`");
    };
    let target_value = match spec.target_value {
        Some(v) if v.is_finite() && v > 0.0 => v,
        _ => return Plan::hold(Cause::Invalid, "scale needs a positive `target_value`"),
    };
    let value = match d.reason.values.get(metric) {
        Some(v) if v.is_finite() && *v >= 0.0 => *v,
        _ => return Plan::hold(Cause::NoData, format!("no value for `{metric}`")),
    };
    let tolerance = spec.tolerance.unwrap_or(DEFAULT_TOLERANCE).max(0.0);
    let window = ms(spec
        .stabilization_window
        .unwrap_or(DEFAULT_STABILIZATION_WINDOW));
    let ratio = value / target_value;
    // Within the band the recommendation is "stay": it still counts for the window.
    if (ratio - 1.0).abs() <= tolerance {
        return Plan {
            recommendation: Some(current),
            ..Plan::hold(
                Cause::Tolerance,
                format!(
                    "{metric} = {value} is within {}% of target {target_value}",
                    tolerance * 100.0
                ),
            )
        };
    }
    // From zero replicas, compute as if one ran, so load can bring it up.
    let desired = (current.max(1) as f64 * ratio)
        .ceil()
        .clamp(0.0, u32::MAX as f64) as u32;
    let with_rec = |p: Plan| Plan {
        recommendation: Some(desired),
        ..p
    };
    let mut wanted = desired;
    if desired < current {
        if no_data(d) {
            return with_rec(Plan::hold(Cause::NoData, "missing data never scales in"));
        }
        let window_max = state
            .max_recommendation(&spec.target, &d.rule, now - window)
            .unwrap_or(desired);
        wanted = desired.max(window_max).min(current);
        if wanted == current {
            return with_rec(Plan::hold(
                Cause::Stabilization,
                format!(
                    "desired {desired}, but the highest recommendation in the last {} is {window_max}",
                    fmt_ms(window)
                ),
            ));
        }
    }
    let clamped = wanted.clamp(limits.min, limits.max.max(limits.min));
    let dir = if clamped > current {
        Direction::Up
    } else {
        Direction::Down
    };
    if clamped == current {
        return with_rec(Plan::hold(
            Cause::Bounds,
            format!(
                "desired {wanted} clamped to [{}, {}] leaves {current}",
                limits.min, limits.max
            ),
        ));
    }
    with_rec(set_replicas(current, clamped, dir))
}
