//! The circuit-breaker state machine per (target, instance).
//!
//! Owns the states closed → open → half-open → closed (or open again with a
//! doubled `open_for`), and tells the agent which transitions are due. It is fed
//! by `circuit_changed` audit events (through [`super::GuardState::observe`]) and by
//! rule evaluation outcomes ([`CircuitBook::note_evaluation`]); it never talks to
//! a provider and never reads the clock.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::types::Decision;
use crate::model::{ActionKind, CircuitChange, CircuitState, TimestampMs};

/// How long a circuit stays open before half-open when the rule does not say.
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);
/// Upper bound for the doubled `open_for` of a circuit that keeps failing.
pub const MAX_OPEN_FOR: Duration = Duration::from_secs(600);

/// One circuit that is not closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Circuit {
    pub state: CircuitState,
    /// The rule that opened it: its next evaluation decides half-open → closed/open.
    pub rule: String,
    /// When it entered `state`.
    pub since: TimestampMs,
    pub open_for_ms: u64,
    /// Half-open only: did the opening rule fire for this instance at its first
    /// evaluation after `since`? `None` until that evaluation happened.
    pub trial: Option<bool>,
}

/// A transition the agent should carry out (as a provider op through the executor).
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitTransition {
    pub target: String,
    pub instance: String,
    pub rule: String,
    pub change: CircuitChange,
}

/// All circuits of all targets. Closed circuits are not stored.
#[derive(Debug, Clone, Default)]
pub struct CircuitBook {
    circuits: BTreeMap<(String, String), Circuit>,
    /// (target, instance) with a circuit op in flight: no transition is due for them.
    in_flight: BTreeSet<(String, String)>,
}

fn key(target: &str, instance: &str) -> (String, String) {
    (target.to_string(), instance.to_string())
}

impl CircuitBook {
    /// State of one instance's circuit (closed when never opened).
    pub fn state(&self, target: &str, instance: &str) -> CircuitState {
        self.get(target, instance)
            .map_or(CircuitState::Closed, |c| c.state)
    }

    pub fn get(&self, target: &str, instance: &str) -> Option<&Circuit> {
        self.circuits.get(&key(target, instance))
    }

    /// Every circuit that is open or half-open: ((target, instance), circuit).
    pub fn iter(&self) -> impl Iterator<Item = (&(String, String), &Circuit)> {
        self.circuits.iter()
    }

    /// Apply a recorded change (from a `circuit_changed` event at `ts`).
    pub(crate) fn apply(
        &mut self,
        target: &str,
        instance: &str,
        rule: &str,
        change: CircuitChange,
        ts: TimestampMs,
    ) {
        let k = key(target, instance);
        match change.to {
            CircuitState::Closed => {
                self.circuits.remove(&k);
            }
            to => {
                // A half-open → open change keeps the rule that opened it first.
                let rule = self
                    .circuits
                    .get(&k)
                    .map(|c| c.rule.clone())
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| rule.to_string());
                self.circuits.insert(
                    k,
                    Circuit {
                        state: to,
                        rule,
                        since: ts,
                        open_for_ms: change.open_for_ms,
                        trial: None,
                    },
                );
            }
        }
    }

    pub(crate) fn set_in_flight(&mut self, target: &str, instance: &str, busy: bool) {
        let k = key(target, instance);
        if busy {
            self.in_flight.insert(k);
        } else {
            self.in_flight.remove(&k);
        }
    }

    /// Record that `rule` was evaluated at `at`, producing `decisions` (all of
    /// that rule's decisions of this evaluation; an empty slice means it did not
    /// fire). Half-open circuits opened by `rule` learn whether the instance is
    /// still failing. Not an audit event: a rule that does not fire writes
    /// nothing, so after a restart a half-open circuit waits for the next evaluation.
    pub fn note_evaluation(&mut self, rule: &str, at: TimestampMs, decisions: &[Decision]) {
        for ((target, instance), c) in self.circuits.iter_mut() {
            if c.state != CircuitState::HalfOpen
                || c.rule != rule
                || c.trial.is_some()
                || at <= c.since
            {
                continue;
            }
            let fired = decisions.iter().any(|d| {
                d.rule == rule
                    && d.action.kind == ActionKind::CircuitBreak
                    && d.action.target == *target
                    && d.instance.as_deref().or(d.action.instance.as_deref())
                        == Some(instance.as_str())
            });
            c.trial = Some(fired);
        }
    }

    /// Transitions due at `now`: open circuits whose `open_for` has elapsed go
    /// half-open; half-open circuits whose trial evaluation is known close (rule
    /// no longer fires) or open again with `open_for` doubled (capped at
    /// [`MAX_OPEN_FOR`]). Circuits with an op in flight are skipped.
    pub fn due(&self, now: TimestampMs) -> Vec<CircuitTransition> {
        let mut out = Vec::new();
        for ((target, instance), c) in &self.circuits {
            if self.in_flight.contains(&(target.clone(), instance.clone())) {
                continue;
            }
            let change = match (c.state, c.trial) {
                (CircuitState::Open, _) if now >= c.since + c.open_for_ms as i64 => CircuitChange {
                    from: CircuitState::Open,
                    to: CircuitState::HalfOpen,
                    open_for_ms: c.open_for_ms,
                },
                (CircuitState::HalfOpen, Some(false)) => CircuitChange {
                    from: CircuitState::HalfOpen,
                    to: CircuitState::Closed,
                    open_for_ms: 0,
                },
                (CircuitState::HalfOpen, Some(true)) => CircuitChange {
                    from: CircuitState::HalfOpen,
                    to: CircuitState::Open,
                    open_for_ms: c
                        .open_for_ms
                        .saturating_mul(2)
                        .min(MAX_OPEN_FOR.as_millis() as u64),
                },
                _ => continue,
            };
            out.push(CircuitTransition {
                target: target.clone(),
                instance: instance.clone(),
                rule: c.rule.clone(),
                change,
            });
        }
        out
    }
}
