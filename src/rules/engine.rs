//! The rule engine: the state of every rule of a rule set, kept across
//! evaluations and reloads, and the alerts trigger rules have claimed.
//!
//! It routes: a tick's query outcomes to the rule's state machine
//! ([`super::state`]), an Alertmanager alert to the trigger rules
//! ([`super::alerts`]). It reads neither the clock nor the store: the agent
//! evaluates the queries and passes their outcomes and `now` in.
use std::collections::{BTreeMap, HashMap};

use super::alerts::{AlertOutcome, Claims};
use super::rule::{Rule, RuleSet};
use super::state::{Evaluation, RuleState, RuleStatus};
use crate::model::{AlertInput, AlertKey, AlertRef, QueryOutcome, TimestampMs};

/// Rule states of a whole rule set, keyed by rule name; survives reloads for
/// rules that keep their name.
#[derive(Debug, Default)]
pub struct Engine {
    states: HashMap<String, RuleState>,
    claims: Claims,
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine that knows which alerts were already acted on.
    pub fn with_acted_alerts(acted: impl IntoIterator<Item = AlertKey>) -> Self {
        Engine {
            claims: Claims::new(acted),
            ..Engine::default()
        }
    }

    /// Evaluate one rule at `now` with the outcome of each of its queries.
    pub fn evaluate(
        &mut self,
        rule: &Rule,
        outcomes: &BTreeMap<String, QueryOutcome>,
        now: TimestampMs,
    ) -> Evaluation {
        let state = self.states.entry(rule.name.clone()).or_default();
        rule.evaluate(state, outcomes, now)
    }

    /// Feed one alert to one trigger rule at `now`. A firing alert seen for the
    /// first time (by fingerprint and startsAt) is claimed and yields a
    /// decision; a resolved one removes the rule instance and never acts.
    pub fn alert(&mut self, rule: &Rule, alert: &AlertInput, now: TimestampMs) -> AlertOutcome {
        if !rule
            .trigger
            .as_ref()
            .is_some_and(|t| t.matches(&alert.labels))
        {
            return AlertOutcome::NoMatch;
        }
        let state = self.states.entry(rule.name.clone()).or_default();
        self.claims.alert(rule, state, alert, now)
    }

    /// Give back a claim made by [`Engine::alert`] whose decision did not act
    /// (the guard suppressed it for a passing reason): a redelivery may retry.
    pub fn release_alert(&mut self, rule: &str, alert: &AlertRef) {
        self.claims.release(rule, alert);
    }

    /// Whether this rule already acted on this alert.
    pub fn alert_acted(&self, rule: &str, alert: &AlertRef) -> bool {
        self.claims.contains(rule, alert)
    }

    /// After a reload: drop the state of rules that no longer exist.
    pub fn retain(&mut self, set: &RuleSet) {
        self.states.retain(|name, _| set.rule(name).is_some());
    }

    /// Status of every rule, in rule-set order.
    pub fn status(&self, set: &RuleSet) -> Vec<RuleStatus> {
        set.rules()
            .map(|r| match self.states.get(&r.name) {
                Some(s) => s.status(r),
                None => RuleState::default().status(r),
            })
            .collect()
    }
}
