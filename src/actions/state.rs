//! Guard state as a fold over audit events.
//!
//! Owns [`GuardState`]: everything the guard needs to remember (cooldowns, the
//! hourly rate-limit window, circuits, actions in flight, scale recommendations,
//! the pause flag). It changes only through [`GuardState::observe`], which the
//! agent calls for every event it writes (via [`super::Journal`]) and, at
//! start-up, for every event in the log — one function, so a restart rebuilds
//! exactly the state the agent had. Must not read the clock or do I/O.
use std::collections::{BTreeMap, VecDeque};

use super::circuit::CircuitBook;
use super::types::Decision;
use crate::audit::detail::{DecisionDetail, OutcomeDetail, ReconciledDetail, StartedDetail};
use crate::audit::{AuditEvent, EventKind};
use crate::model::CircuitChange;
use crate::model::{
    ActionKind, ActionRequest, Direction, Origin, ProviderOp, Reconciliation, TimestampMs,
};

const HOUR_MS: i64 = 3_600_000;
/// Recommendations kept per (target, rule) whatever the window, so a broken
/// window value cannot grow memory without bound.
const MAX_RECOMMENDATIONS: usize = 4096;

/// An action started and not yet finished (or, after a crash, not yet reconciled).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAction {
    pub action_id: String,
    pub rule: String,
    pub target: String,
    pub instance: Option<String>,
    pub kind: ActionKind,
    pub origin: Origin,
    pub direction: Option<Direction>,
    pub provider: Option<String>,
    pub request: ActionRequest,
    pub started_at: TimestampMs,
}

/// What the guard remembers. Build with [`GuardState::rebuild`] or `default()`,
/// then feed every written event to [`GuardState::observe`].
#[derive(Debug, Clone, Default)]
pub struct GuardState {
    paused: bool,
    /// Last time a rule action took effect, per (rule, target, instance or "").
    last_rule_action: BTreeMap<(String, String, String), TimestampMs>,
    /// Last replica-count change per target and direction.
    last_scale: BTreeMap<(String, Direction), TimestampMs>,
    /// Last failover per (target, instance), from any rule.
    last_failover: BTreeMap<(String, String), TimestampMs>,
    /// Start times of rule actions per target within the last hour (rate limit).
    starts: BTreeMap<String, VecDeque<TimestampMs>>,
    /// `scale` recommendations per (target, rule): (time, desired), oldest first.
    recommendations: BTreeMap<(String, String), VecDeque<(TimestampMs, u32)>>,
    /// Stabilisation window last seen per (target, rule), for pruning.
    windows: BTreeMap<(String, String), i64>,
    open: BTreeMap<String, OpenAction>,
    circuits: CircuitBook,
    /// Timestamp of the latest event folded.
    last_ts: TimestampMs,
}

impl GuardState {
    /// Fold a whole log (in order) into a fresh state.
    pub fn rebuild<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> Self {
        let mut s = Self::default();
        for ev in events {
            s.observe(ev);
        }
        s
    }

    /// Fold one written event. Unknown or malformed events are ignored: the log
    /// is shared with other writers and must never stop the agent from starting.
    pub fn observe(&mut self, ev: &AuditEvent) {
        let Some(kind) = ev.event else { return };
        let ts = ev.ts_ms;
        self.last_ts = self.last_ts.max(ts);
        match kind {
            EventKind::Paused => self.paused = true,
            EventKind::Resumed => self.paused = false,
            EventKind::Decision => self.observe_decision(ev, ts),
            EventKind::ActionStarted => self.observe_started(ev, ts),
            EventKind::ActionSucceeded => {
                let detail: Option<OutcomeDetail> = parse(ev);
                if let Some(open) = self.close(ev) {
                    if open.origin == Origin::Rule {
                        self.acted(&Acted::from(&open), ts);
                    }
                } else if let Some(d) = detail.filter(|d| d.origin == Origin::Rule) {
                    // Its start is not in the log we read (pruned): still honour the cooldown.
                    if let (Some(target), Some(kind)) = (ev.target.as_deref(), ev.kind) {
                        let a = Acted {
                            rule: ev.rule.as_deref().unwrap_or(""),
                            target,
                            kind,
                            instance: ev.instance.as_deref(),
                            direction: d.direction,
                        };
                        self.acted(&a, ts);
                    }
                }
            }
            EventKind::ActionFailed => {
                // A rolled-back change still changed the target: keep its cooldown.
                let rolled_back =
                    parse::<OutcomeDetail>(ev).is_some_and(|d| d.rolled_back.is_some());
                if let Some(open) = self.close(ev) {
                    if rolled_back && open.origin == Origin::Rule {
                        self.acted(&Acted::from(&open), ts);
                    }
                }
            }
            EventKind::ActionReconciled => {
                let detail: Option<ReconciledDetail> = parse(ev);
                let open = self.close(ev);
                // Unknown counts as applied: after a crash, assume the change happened.
                let took_effect = detail
                    .as_ref()
                    .is_some_and(|d| d.result != Reconciliation::NotApplied);
                if let Some(open) = open {
                    if took_effect && open.origin == Origin::Rule {
                        self.acted(&Acted::from(&open), ts);
                    }
                }
            }
            EventKind::CircuitChanged => {
                if let (Some(target), Some(instance), Some(change)) = (
                    ev.target.as_deref(),
                    ev.instance.as_deref(),
                    parse::<CircuitChange>(ev),
                ) {
                    let rule = ev.rule.as_deref().unwrap_or("");
                    self.circuits.apply(target, instance, rule, change, ts);
                }
            }
            _ => {}
        }
    }

    fn observe_decision(&mut self, ev: &AuditEvent, ts: TimestampMs) {
        let (Some(target), Some(rule), Some(d)) = (
            ev.target.as_ref(),
            ev.rule.as_ref(),
            parse::<DecisionDetail>(ev),
        ) else {
            return;
        };
        let Some(desired) = d.recommendation else {
            return;
        };
        let key = (target.clone(), rule.clone());
        let window = d.stabilization_window_ms.unwrap_or(0) as i64;
        self.windows.insert(key.clone(), window);
        let recs = self.recommendations.entry(key).or_default();
        recs.push_back((ts, desired));
        while recs.len() > MAX_RECOMMENDATIONS
            || recs.front().is_some_and(|(t, _)| *t < ts - window)
        {
            recs.pop_front();
        }
    }

    fn observe_started(&mut self, ev: &AuditEvent, ts: TimestampMs) {
        let (Some(id), Some(d)) = (ev.action_id.as_ref(), parse::<StartedDetail>(ev)) else {
            return;
        };
        let open = OpenAction {
            action_id: id.clone(),
            rule: ev.rule.clone().unwrap_or_else(|| d.request.rule.clone()),
            target: ev
                .target
                .clone()
                .unwrap_or_else(|| d.request.target.clone()),
            instance: ev.instance.clone(),
            kind: ev.kind.unwrap_or(d.request.kind),
            origin: d.origin,
            direction: d.direction,
            provider: ev.provider.clone(),
            request: d.request,
            started_at: ts,
        };
        if open.origin == Origin::Rule {
            let starts = self.starts.entry(open.target.clone()).or_default();
            starts.push_back(ts);
            while starts.front().is_some_and(|t| *t <= ts - HOUR_MS) {
                starts.pop_front();
            }
        }
        if let Some(inst) = circuit_instance(&open.request.op) {
            self.circuits.set_in_flight(&open.target, inst, true);
        }
        self.open.insert(id.clone(), open);
    }

    fn close(&mut self, ev: &AuditEvent) -> Option<OpenAction> {
        let open = self.open.remove(ev.action_id.as_ref()?)?;
        if let Some(inst) = circuit_instance(&open.request.op) {
            self.circuits.set_in_flight(&open.target, inst, false);
        }
        Some(open)
    }

    /// A rule action took effect at `ts`: start its cooldowns.
    fn acted(&mut self, a: &Acted<'_>, ts: TimestampMs) {
        let inst_key = instance_key(a.kind, a.instance);
        self.last_rule_action
            .insert((a.rule.to_string(), a.target.to_string(), inst_key), ts);
        if let Some(dir) = a.direction {
            self.last_scale.insert((a.target.to_string(), dir), ts);
        }
        if a.kind == ActionKind::Failover {
            if let Some(i) = a.instance {
                self.last_failover
                    .insert((a.target.to_string(), i.to_string()), ts);
            }
        }
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Last time `rule` acted on `target` (on `instance`, for failover and circuit_break).
    pub fn last_rule_action(
        &self,
        rule: &str,
        target: &str,
        kind: ActionKind,
        instance: Option<&str>,
    ) -> Option<TimestampMs> {
        self.last_rule_action
            .get(&(
                rule.to_string(),
                target.to_string(),
                instance_key(kind, instance),
            ))
            .copied()
    }

    /// Last replica-count change of `target` in `dir`.
    pub fn last_scale(&self, target: &str, dir: Direction) -> Option<TimestampMs> {
        self.last_scale.get(&(target.to_string(), dir)).copied()
    }

    pub fn last_failover(&self, target: &str, instance: &str) -> Option<TimestampMs> {
        self.last_failover
            .get(&(target.to_string(), instance.to_string()))
            .copied()
    }

    /// Rule actions started on `target` in the hour before `now` (exclusive).
    pub fn starts_in_last_hour(&self, target: &str, now: TimestampMs) -> usize {
        self.starts.get(target).map_or(0, |s| {
            s.iter()
                .filter(|t| **t > now - HOUR_MS && **t <= now)
                .count()
        })
    }

    /// Start times counted by [`Self::starts_in_last_hour`], oldest first.
    pub fn recent_starts(&self, target: &str) -> impl Iterator<Item = TimestampMs> + '_ {
        self.starts.get(target).into_iter().flatten().copied()
    }

    /// Highest `scale` recommendation of `rule` for `target` at or after `since`.
    pub fn max_recommendation(&self, target: &str, rule: &str, since: TimestampMs) -> Option<u32> {
        self.recommendations
            .get(&(target.to_string(), rule.to_string()))?
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, r)| *r)
            .max()
    }

    /// Actions started without an outcome yet, oldest id first.
    pub fn open_actions(&self) -> impl Iterator<Item = &OpenAction> {
        self.open.values()
    }

    /// Open actions on `target`.
    pub fn in_progress<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a OpenAction> + 'a {
        self.open.values().filter(move |a| a.target == target)
    }

    pub fn circuits(&self) -> &CircuitBook {
        &self.circuits
    }

    /// Circuit transitions to carry out now; none while the agent is paused
    /// (an open circuit is the safe state to wait in).
    pub fn due_circuits(&self, now: TimestampMs) -> Vec<super::circuit::CircuitTransition> {
        if self.paused {
            return Vec::new();
        }
        self.circuits.due(now)
    }

    /// See [`CircuitBook::note_evaluation`].
    pub fn note_evaluation(&mut self, rule: &str, at: TimestampMs, decisions: &[Decision]) {
        self.circuits.note_evaluation(rule, at, decisions);
    }
}

/// Failover and circuit_break act on one instance: their rule cooldown is per
/// instance, so handling instance A does not block instance B.
fn instance_key(kind: ActionKind, instance: Option<&str>) -> String {
    match kind {
        ActionKind::Failover | ActionKind::CircuitBreak => instance.unwrap_or("").to_string(),
        _ => String::new(),
    }
}

fn circuit_instance(op: &ProviderOp) -> Option<&str> {
    match op {
        ProviderOp::CircuitOpen { instance }
        | ProviderOp::CircuitHalfOpen { instance }
        | ProviderOp::CircuitClose { instance } => Some(instance),
        _ => None,
    }
}

fn parse<T: serde::de::DeserializeOwned>(ev: &AuditEvent) -> Option<T> {
    serde_json::from_value(ev.detail.clone()?).ok()
}

/// What a finished rule action leaves behind for cooldowns.
struct Acted<'a> {
    rule: &'a str,
    target: &'a str,
    kind: ActionKind,
    instance: Option<&'a str>,
    direction: Option<Direction>,
}

impl<'a> From<&'a OpenAction> for Acted<'a> {
    fn from(o: &'a OpenAction) -> Self {
        Acted {
            rule: &o.rule,
            target: &o.target,
            kind: o.kind,
            instance: o.instance.as_deref(),
            direction: o.direction,
        }
    }
}
