//! Trigger rules on Alertmanager alerts: match, claim each firing alert once
//! per rule (by fingerprint and `startsAt`), build its decision.
//!
//! Alertmanager redelivers an alert on every `repeat_interval`, on retries and
//! from each peer; the claim set makes those duplicates. It is rebuilt from
//! the audit log at start-up, so a redelivery after a restart does not act
//! again either. Never reads the clock.
use std::collections::{BTreeMap, HashSet};

use super::decision::Firing;
use super::rule::Rule;
use super::state::{AlertState, Instance, RuleState};
use crate::actions::Decision;
use crate::model::{AlertInput, AlertKey, AlertRef, TimestampMs};

/// What a trigger rule does with one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertOutcome {
    /// The alert is not for this rule.
    NoMatch,
    /// A new firing alert: guard this decision. The alert is claimed; call
    /// [`super::Engine::release_alert`] if the guard does not let it through.
    Decide(Box<Decision>),
    /// Already acted on (same fingerprint and startsAt): nothing to do.
    Duplicate,
    /// Resolved: the rule instance is gone; never acts.
    Resolved,
    /// Matches, but no decision can be built (e.g. the instance template
    /// rendered empty); shown in the rule status.
    Invalid(String),
}

/// The alerts trigger rules have claimed.
#[derive(Debug, Default)]
pub(super) struct Claims {
    acted: HashSet<AlertKey>,
}

impl Claims {
    pub(super) fn new(acted: impl IntoIterator<Item = AlertKey>) -> Self {
        Claims {
            acted: acted.into_iter().collect(),
        }
    }

    /// Feed one alert that `rule`'s trigger matches to the rule (whose state
    /// is `state`) at `now`.
    pub(super) fn alert(
        &mut self,
        rule: &Rule,
        state: &mut RuleState,
        alert: &AlertInput,
        now: TimestampMs,
    ) -> AlertOutcome {
        state.last_eval = Some(now);
        if !alert.firing {
            state.instances.remove(&alert.labels);
            return AlertOutcome::Resolved;
        }
        let inst = state
            .instances
            .entry(alert.labels.clone())
            .or_insert_with(Instance::new);
        if inst.state != AlertState::Firing {
            inst.state = AlertState::Firing;
            inst.active_since = alert.starts_at_ms.unwrap_or(now);
            inst.fired_at = Some(now);
        }
        let key = AlertKey::new(&rule.name, &alert.reference);
        if self.acted.contains(&key) {
            return AlertOutcome::Duplicate;
        }
        let no_values = BTreeMap::new();
        match rule.decision(Firing::alert(alert, &no_values), now) {
            Ok(d) => {
                inst.last_error = None;
                self.acted.insert(key);
                AlertOutcome::Decide(Box::new(d))
            }
            Err(e) => {
                let e = format!("{e} for this alert's labels");
                inst.last_error = Some(e.clone());
                AlertOutcome::Invalid(e)
            }
        }
    }

    pub(super) fn release(&mut self, rule: &str, alert: &AlertRef) {
        self.acted.remove(&AlertKey::new(rule, alert));
    }

    pub(super) fn contains(&self, rule: &str, alert: &AlertRef) -> bool {
        self.acted.contains(&AlertKey::new(rule, alert))
    }
}
