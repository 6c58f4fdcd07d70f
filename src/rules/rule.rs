//! The validated rule set: what loading produces and the engine evaluates.
//!
//! Plain data plus the lookups the agent needs (by name, longest query range,
//! the queries a remote source answers). Built only by [`super::load`].
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::OnNoData;
use super::template::Template;
use crate::actions::ActionSpec;
use crate::model::{Approval, Labels, Mode, RemoteQuery};
use crate::query::Query;

/// All loaded rules, grouped as the agent schedules them.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub groups: Vec<RuleGroup>,
}

impl RuleSet {
    /// The longest range any query needs (ms), for store retention.
    pub fn max_range_ms(&self) -> i64 {
        self.rules()
            .flat_map(|r| r.queries.iter())
            .filter_map(|q| q.local.as_ref().map(Query::max_range_ms))
            .max()
            .unwrap_or(0)
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.groups.iter().flat_map(|g| g.rules.iter())
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules().find(|r| r.name == name)
    }
}

/// A group: its rules are evaluated together, in order, every `interval`.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub name: String,
    pub file: PathBuf,
    pub interval: Duration,
    pub rules: Vec<Rule>,
}

/// One named query of a rule.
#[derive(Debug, Clone)]
pub struct RuleQuery {
    pub name: String,
    pub expr: String,
    /// Remote source name; `None` means the local store.
    pub source: Option<String>,
    /// Compiled for the local evaluator (`None` for remote queries).
    pub local: Option<Query>,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub group: String,
    pub description: String,
    /// Sorted by name.
    pub queries: Vec<RuleQuery>,
    /// `when` as written.
    pub when_text: String,
    pub(crate) when: evalexpr::Node,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub cooldown: Option<Duration>,
    pub on_no_data: OnNoData,
    pub mode: Mode,
    pub approval: Approval,
    pub action: ActionSpec,
    pub labels: BTreeMap<String, String>,
    pub(crate) annotations: Vec<(String, Template)>,
    pub(crate) instance_template: Option<Template>,
    /// Set for an Alertmanager trigger rule (no queries; `when` is unused).
    pub trigger: Option<Trigger>,
}

impl Rule {
    /// The queries a remote source evaluates (those that name one).
    pub fn remote_queries(&self) -> Vec<RemoteQuery> {
        self.queries
            .iter()
            .filter(|q| q.local.is_none())
            .filter_map(|q| {
                Some(RemoteQuery {
                    name: q.name.clone(),
                    source: q.source.clone()?,
                    expr: q.expr.clone(),
                })
            })
            .collect()
    }
}

/// A validated `trigger:`: which Alertmanager alerts a rule acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// Required value of the `alertname` label.
    pub alert: String,
    /// Further labels required with exactly these values.
    pub matchers: BTreeMap<String, String>,
}

impl Trigger {
    /// Whether an alert with these labels is one this trigger acts on.
    pub fn matches(&self, labels: &Labels) -> bool {
        labels.get("alertname") == Some(self.alert.as_str())
            && self
                .matchers
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v.as_str()))
    }
}
