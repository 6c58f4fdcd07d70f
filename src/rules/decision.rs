//! Building a [`Decision`] from a firing rule instance: the action with its
//! instance template rendered, the rule's labels added, the reason and the
//! rendered annotations. The one builder for tick-evaluated and
//! Alertmanager-triggered rules alike.
use std::collections::BTreeMap;

use super::rule::Rule;
use crate::actions::Decision;
use crate::model::{AlertInput, Labels, Reason, TimestampMs};

/// What fired: the instance's labels and values and why.
pub(super) struct Firing<'a> {
    labels: &'a Labels,
    values: &'a BTreeMap<String, f64>,
    pending_since: Option<TimestampMs>,
    for_ms: i64,
    no_data: Option<String>,
    alert: Option<&'a AlertInput>,
}

impl<'a> Firing<'a> {
    /// An instance of a tick-evaluated rule that reached `firing`.
    pub(super) fn tick(
        rule: &Rule,
        labels: &'a Labels,
        values: &'a BTreeMap<String, f64>,
        active_since: TimestampMs,
        no_data: Option<String>,
    ) -> Self {
        Firing {
            labels,
            values,
            pending_since: Some(active_since),
            for_ms: rule.for_.as_millis() as i64,
            no_data,
            alert: None,
        }
    }

    /// A firing Alertmanager alert (no query values; Prometheus had the `for`).
    pub(super) fn alert(alert: &'a AlertInput, no_values: &'a BTreeMap<String, f64>) -> Self {
        Firing {
            labels: &alert.labels,
            values: no_values,
            pending_since: alert.starts_at_ms,
            for_ms: 0,
            no_data: None,
            alert: Some(alert),
        }
    }
}

/// The instance template rendered empty: there is no instance to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("action.instance rendered empty")]
pub(super) struct EmptyInstance;

impl Rule {
    /// The decision for `f` at `now`.
    pub(super) fn decision(
        &self,
        f: Firing<'_>,
        now: TimestampMs,
    ) -> Result<Decision, EmptyInstance> {
        let mut action = self.action.clone();
        let instance = match &self.instance_template {
            Some(t) => {
                let rendered = t.render(f.values, f.labels);
                if rendered.is_empty() {
                    return Err(EmptyInstance);
                }
                action.instance = Some(rendered.clone());
                Some(rendered)
            }
            None => None,
        };
        let mut labels = f.labels.clone();
        for (k, v) in &self.labels {
            labels.set(k, v);
        }
        Ok(Decision {
            rule: self.name.clone(),
            group: self.group.clone(),
            action,
            labels,
            instance,
            mode: self.mode,
            approval: self.approval,
            cooldown: self.cooldown,
            reason: Reason {
                when: self.when_text.clone(),
                values: f.values.clone(),
                pending_since: f.pending_since,
                for_ms: f.for_ms,
                no_data: f.no_data,
                trace_ids: Vec::new(),
                alert: f.alert.map(|a| a.reference.clone()),
            },
            annotations: self
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.render(f.values, f.labels)))
                .collect(),
            at: now,
        })
    }
}
