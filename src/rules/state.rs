//! The per-(rule, label set) state machine: inactive → pending → firing →
//! (keep_firing_for) → inactive, as Prometheus alerting rules behave.
//!
//! Input is the outcome of each named query; output is the decisions of every
//! firing instance plus a status snapshot. Time is an argument: nothing here
//! reads the clock, the store or the network.
//!
//! Semantics, for the rule author:
//! - Instances come from [`join`]: queries with several results decide the
//!   label sets; single results apply wherever their labels do not contradict.
//! - An instance whose series disappear while the rule still has data is
//!   treated as "condition false" (it resolves, after `keep_firing_for`).
//! - If any query is missing, stale or failed, `on_no_data` decides for every
//!   known instance: `hold` (no transition, no decision), `resolve` (false) or
//!   `fire` (true; an instance with empty labels is created if none exists).
//!   Whatever it says, no-data never yields a decision of a kind that may
//!   shrink the target (`scale_in`, `scale`).
//! - A `when` that fails to evaluate changes nothing and is shown as last_error.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::decision::Firing;
use super::join::join;
use super::raw::OnNoData;
use super::rule::Rule;
use crate::actions::{kinds, Decision};
use crate::model::{Labels, QueryOutcome, Sample, SourceFailure, TimestampMs};

/// Why a rule had no data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "error")]
pub enum NoData {
    Missing,
    Stale,
    Failed(String),
    /// A remote source returned no series.
    Empty {
        source: String,
    },
    /// A remote source failed; `kind` says how.
    Source {
        source: String,
        kind: SourceFailure,
        error: String,
    },
}

impl NoData {
    /// The text for `Reason::no_data` and logs.
    pub fn describe(&self, query: &str) -> String {
        match self {
            NoData::Missing => format!("missing: query {query} returned no series"),
            NoData::Stale => format!("stale: query {query} selects only stale series"),
            NoData::Failed(e) => format!("failed: query {query}: {e}"),
            NoData::Empty { source } => {
                format!("empty: query {query} (source {source}) returned no series")
            }
            NoData::Source {
                source,
                kind,
                error,
            } => format!(
                "{}: query {query} (source {source}): {error}",
                kind.as_str()
            ),
        }
    }

    /// The kind as a word (`missing`, `stale`, `failed`, `empty`, `http_error`,
    /// `promql_error`, `timeout`), for the rule status.
    pub fn kind(&self) -> &'static str {
        match self {
            NoData::Missing => "missing",
            NoData::Stale => "stale",
            NoData::Failed(_) => "failed",
            NoData::Empty { .. } => "empty",
            NoData::Source { kind, .. } => kind.as_str(),
        }
    }

    /// What a query outcome without samples says (`None`: not evaluated).
    fn of(outcome: Option<&QueryOutcome>) -> NoData {
        match outcome {
            Some(QueryOutcome::Ok(_)) | Some(QueryOutcome::Missing) => NoData::Missing,
            Some(QueryOutcome::Stale) => NoData::Stale,
            Some(QueryOutcome::Failed(e)) => NoData::Failed(e.clone()),
            Some(QueryOutcome::Empty { source }) => NoData::Empty {
                source: source.clone(),
            },
            Some(QueryOutcome::SourceFailed {
                source,
                kind,
                error,
            }) => NoData::Source {
                source: source.clone(),
                kind: *kind,
                error: error.clone(),
            },
            None => NoData::Failed("not evaluated".into()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            NoData::Missing | NoData::Empty { .. } => 0,
            NoData::Stale => 1,
            NoData::Failed(_) | NoData::Source { .. } => 2,
        }
    }
}

/// Prometheus alert states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

/// One label set of one rule.
#[derive(Debug, Clone)]
pub(super) struct Instance {
    pub(super) state: AlertState,
    pub(super) active_since: TimestampMs,
    pub(super) fired_at: Option<TimestampMs>,
    keep_firing_since: Option<TimestampMs>,
    values: BTreeMap<String, f64>,
    no_data: Option<String>,
    pub(super) last_error: Option<String>,
}

impl Instance {
    pub(super) fn new() -> Self {
        Instance {
            state: AlertState::Inactive,
            active_since: 0,
            fired_at: None,
            keep_firing_since: None,
            values: BTreeMap::new(),
            no_data: None,
            last_error: None,
        }
    }

    /// One Prometheus evaluation step with the condition's truth value.
    fn step(&mut self, cond: bool, now: TimestampMs, for_ms: i64, keep_ms: i64) {
        if cond {
            self.keep_firing_since = None;
            if self.state == AlertState::Inactive {
                self.state = AlertState::Pending;
                self.active_since = now;
            }
            if self.state == AlertState::Pending && now - self.active_since >= for_ms {
                self.state = AlertState::Firing;
                self.fired_at = Some(now);
            }
        } else if self.state == AlertState::Firing && keep_ms > 0 {
            let since = *self.keep_firing_since.get_or_insert(now);
            if now - since >= keep_ms {
                self.state = AlertState::Inactive;
            }
        } else {
            self.state = AlertState::Inactive;
        }
    }
}

/// The state of one rule across evaluations.
#[derive(Debug, Clone, Default)]
pub struct RuleState {
    /// What the state was computed for: a changed rule starts afresh.
    fingerprint: String,
    pub(super) instances: BTreeMap<Labels, Instance>,
    pub(super) last_eval: Option<TimestampMs>,
    last_no_data: Option<String>,
    last_no_data_kind: Option<&'static str>,
    last_error: Option<String>,
}

/// Status of one rule instance, for `/api/v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceStatus {
    pub labels: Labels,
    pub state: AlertState,
    /// When the condition started holding (ms).
    pub active_since: TimestampMs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<TimestampMs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_firing_since: Option<TimestampMs>,
    /// Last values of the queries for this instance.
    pub values: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Status of one rule, for `/api/v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStatus {
    pub rule: String,
    pub group: String,
    /// The highest state of any instance.
    pub state: AlertState,
    pub last_eval: Option<TimestampMs>,
    /// Set while a query is missing, stale or failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_data: Option<String>,
    /// The kind of `no_data` as one word (see [`NoData::kind`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_data_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub instances: Vec<InstanceStatus>,
}

/// The result of evaluating one rule once.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// One per firing instance (the guard handles cooldowns).
    pub decisions: Vec<Decision>,
    pub status: RuleStatus,
}

impl RuleState {
    /// Snapshot for the API.
    pub fn status(&self, rule: &Rule) -> RuleStatus {
        let instances: Vec<InstanceStatus> = self
            .instances
            .iter()
            .map(|(l, i)| InstanceStatus {
                labels: l.clone(),
                state: i.state,
                active_since: i.active_since,
                fired_at: i.fired_at,
                keep_firing_since: i.keep_firing_since,
                values: i.values.clone(),
                no_data: i.no_data.clone(),
                last_error: i.last_error.clone(),
            })
            .collect();
        let state = if instances.iter().any(|i| i.state == AlertState::Firing) {
            AlertState::Firing
        } else if instances.iter().any(|i| i.state == AlertState::Pending) {
            AlertState::Pending
        } else {
            AlertState::Inactive
        };
        RuleStatus {
            rule: rule.name.clone(),
            group: rule.group.clone(),
            state,
            last_eval: self.last_eval,
            no_data: self.last_no_data.clone(),
            no_data_kind: self.last_no_data_kind,
            last_error: self.last_error.clone(),
            instances,
        }
    }
}

impl Rule {
    /// Evaluate once at `now` with the outcome of each query (by name). A query
    /// absent from `outcomes` counts as failed.
    pub fn evaluate(
        &self,
        state: &mut RuleState,
        outcomes: &BTreeMap<String, QueryOutcome>,
        now: TimestampMs,
    ) -> Evaluation {
        if self.trigger.is_some() {
            // Trigger rules act when alerts arrive (`Engine::alert`), not on ticks.
            return Evaluation {
                decisions: Vec::new(),
                status: state.status(self),
            };
        }
        let fp = self.fingerprint();
        if state.fingerprint != fp {
            // New rule, or reloaded with other queries/condition/timing:
            // pending timers of the old definition do not carry over.
            *state = RuleState {
                fingerprint: fp,
                ..RuleState::default()
            };
        }
        state.last_eval = Some(now);
        state.last_error = None;

        // The worst no-data kind among the inputs decides.
        let mut no_data: Option<(NoData, &str)> = None;
        let mut results: Vec<(&str, &[Sample])> = Vec::new();
        for q in &self.queries {
            let nd = match outcomes.get(&q.name) {
                Some(QueryOutcome::Ok(v)) if !v.is_empty() => {
                    results.push((q.name.as_str(), v.as_slice()));
                    continue;
                }
                other => NoData::of(other),
            };
            if no_data
                .as_ref()
                .is_none_or(|(cur, _)| nd.rank() > cur.rank())
            {
                no_data = Some((nd, q.name.as_str()));
            }
        }
        let decisions = match no_data {
            Some((nd, qname)) => self.step_without_data(state, &nd, qname, now),
            None => self.step_with_data(state, &results, now),
        };
        state
            .instances
            .retain(|_, i| i.state != AlertState::Inactive);
        Evaluation {
            decisions,
            status: state.status(self),
        }
    }

    /// A query is missing, stale or failed: `on_no_data` decides.
    fn step_without_data(
        &self,
        state: &mut RuleState,
        nd: &NoData,
        qname: &str,
        now: TimestampMs,
    ) -> Vec<Decision> {
        let (for_ms, keep_ms) = self.timing_ms();
        let text = nd.describe(qname);
        state.last_no_data = Some(text.clone());
        state.last_no_data_kind = Some(nd.kind());
        // Never act on absent data by shrinking: a kind that may shrink the
        // target holds instead of firing.
        let shrinks = kinds::of(self.action.kind).may_shrink;
        let cond = match self.on_no_data {
            OnNoData::Hold => None,
            OnNoData::Resolve => Some(false),
            OnNoData::Fire if shrinks => None,
            OnNoData::Fire => Some(true),
        };
        if cond == Some(true) && state.instances.is_empty() {
            state.instances.insert(Labels::empty(), Instance::new());
        }
        for inst in state.instances.values_mut() {
            inst.no_data = Some(text.clone());
            if let Some(c) = cond {
                inst.step(c, now, for_ms, keep_ms);
            }
        }
        if cond != Some(true) {
            return Vec::new();
        }
        let nan: BTreeMap<String, f64> = self
            .queries
            .iter()
            .map(|q| (q.name.clone(), f64::NAN))
            .collect();
        let mut decisions = Vec::new();
        for (labels, inst) in state.instances.iter_mut() {
            if inst.state == AlertState::Firing {
                let firing =
                    Firing::tick(self, labels, &nan, inst.active_since, Some(text.clone()));
                if let Some(d) = decide(self, firing, inst, now) {
                    decisions.push(d);
                }
            }
        }
        decisions
    }

    /// Every query has samples: join them and step each instance.
    fn step_with_data(
        &self,
        state: &mut RuleState,
        results: &[(&str, &[Sample])],
        now: TimestampMs,
    ) -> Vec<Decision> {
        let (for_ms, keep_ms) = self.timing_ms();
        state.last_no_data = None;
        state.last_no_data_kind = None;
        let mut seen: BTreeSet<Labels> = BTreeSet::new();
        for (labels, values) in join(results) {
            let cond = self.condition(&values);
            let inst = state
                .instances
                .entry(labels.clone())
                .or_insert_with(Instance::new);
            inst.values = values;
            inst.no_data = None;
            match cond {
                Ok(c) => {
                    inst.last_error = None;
                    inst.step(c, now, for_ms, keep_ms);
                }
                // An expression error changes nothing: no transition, no decision.
                Err(e) => {
                    inst.last_error = Some(e.clone());
                    state.last_error = Some(e);
                }
            }
            seen.insert(labels);
        }
        // Instances whose series are gone while the query still returns
        // others: the condition no longer holds for them (Prometheus resolves).
        let mut decisions = Vec::new();
        for (labels, inst) in state.instances.iter_mut() {
            if !seen.contains(labels) {
                inst.step(false, now, for_ms, keep_ms);
            }
            if inst.state == AlertState::Firing {
                let values = inst.values.clone();
                let firing = Firing::tick(self, labels, &values, inst.active_since, None);
                if let Some(d) = decide(self, firing, inst, now) {
                    decisions.push(d);
                }
            }
        }
        decisions
    }

    fn timing_ms(&self) -> (i64, i64) {
        (
            self.for_.as_millis() as i64,
            self.keep_firing_for.as_millis() as i64,
        )
    }

    /// Identity of what the state machine depends on (Prometheus keeps alert
    /// state across reloads only for unchanged rules).
    fn fingerprint(&self) -> String {
        let mut f = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            self.when_text,
            self.for_.as_millis(),
            self.keep_firing_for.as_millis(),
            self.action.kind
        );
        for q in &self.queries {
            f.push('\u{0}');
            f.push_str(&q.name);
            f.push('=');
            f.push_str(q.source.as_deref().unwrap_or(""));
            f.push(':');
            f.push_str(&q.expr);
        }
        f
    }

    fn condition(&self, values: &BTreeMap<String, f64>) -> Result<bool, String> {
        super::when::eval(&self.when, values).map_err(|e| format!("when: {e}"))
    }
}

/// The decision of a firing instance; an instance template that renders empty
/// is shown in the status instead (there is no instance to act on).
fn decide(
    rule: &Rule,
    firing: Firing<'_>,
    inst: &mut Instance,
    now: TimestampMs,
) -> Option<Decision> {
    match rule.decision(firing, now) {
        Ok(d) => Some(d),
        Err(e) => {
            inst.last_error = Some(format!("{e} for this label set"));
            None
        }
    }
}
