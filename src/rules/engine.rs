//! The per-(rule, label set) state machine: inactive → pending → firing →
//! (keep_firing_for) → inactive, as Prometheus alerting rules behave.
//!
//! Input is the outcome of each named query; output is the decisions of every
//! firing instance plus a status snapshot. Time is an argument: nothing here
//! reads the clock. (The `eval_local*` helpers read the store for the agent.)
//!
//! Semantics, for the rule author:
//! - Instances come from [`join`]: queries with several results decide the
//!   label sets; single results apply wherever their labels do not contradict.
//! - An instance whose series disappear while the rule still has data is
//!   treated as "condition false" (it resolves, after `keep_firing_for`).
//! - If any query is missing, stale or failed, `on_no_data` decides for every
//!   known instance: `hold` (no transition, no decision), `resolve` (false) or
//!   `fire` (true; an instance with empty labels is created if none exists).
//!   Whatever it says, no-data never yields a `scale_in` or `scale` decision.
//! - A `when` that fails to evaluate changes nothing and is shown as last_error.
use std::collections::{BTreeMap, HashMap};

use evalexpr::{ContextWithMutableVariables, HashMapContext, Value};
use serde::Serialize;

use super::load::{Rule, RuleSet};
use super::raw::OnNoData;
use crate::actions::Decision;
use crate::model::{
    ActionKind, AlertRef, Labels, QueryOutcome, Reason, Sample, SourceFailure, TimestampMs,
};

impl super::load::RuleQuery {
    /// Evaluate a local query against the store; `None` for a remote-source
    /// query (the agent asks that source and maps its answer itself).
    pub fn eval_local(&self, store: &crate::store::Store, at: TimestampMs) -> Option<QueryOutcome> {
        Some(self.local.as_ref()?.outcome(store, at))
    }
}

impl Rule {
    /// Outcomes of all local queries of this rule at `at`.
    pub fn eval_local_queries(
        &self,
        store: &crate::store::Store,
        at: TimestampMs,
    ) -> BTreeMap<String, QueryOutcome> {
        self.queries
            .iter()
            .filter_map(|q| q.eval_local(store, at).map(|o| (q.name.clone(), o)))
            .collect()
    }
}

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

#[derive(Debug, Clone)]
struct Instance {
    state: AlertState,
    active_since: TimestampMs,
    fired_at: Option<TimestampMs>,
    keep_firing_since: Option<TimestampMs>,
    values: BTreeMap<String, f64>,
    no_data: Option<String>,
    last_error: Option<String>,
}

impl Instance {
    fn new() -> Self {
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
    instances: BTreeMap<Labels, Instance>,
    last_eval: Option<TimestampMs>,
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
        let for_ms = self.for_.as_millis() as i64;
        let keep_ms = self.keep_firing_for.as_millis() as i64;
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
            };
            if no_data
                .as_ref()
                .is_none_or(|(cur, _)| nd.rank() > cur.rank())
            {
                no_data = Some((nd, q.name.as_str()));
            }
        }

        let mut decisions = Vec::new();
        if let Some((nd, qname)) = no_data {
            let text = nd.describe(qname);
            state.last_no_data = Some(text.clone());
            state.last_no_data_kind = Some(nd.kind());
            // Never act on absent data by shrinking: scale_in and scale (whose
            // direction we cannot know without data) hold instead of firing.
            let shrinks = matches!(self.action.kind, ActionKind::ScaleIn | ActionKind::Scale);
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
            if self.on_no_data == OnNoData::Fire && !shrinks {
                let nan: BTreeMap<String, f64> = self
                    .queries
                    .iter()
                    .map(|q| (q.name.clone(), f64::NAN))
                    .collect();
                for (labels, inst) in state.instances.iter_mut() {
                    if inst.state == AlertState::Firing {
                        if let Some(d) = self.decision(labels, inst, &nan, Some(text.clone()), now)
                        {
                            decisions.push(d);
                        }
                    }
                }
            }
        } else {
            state.last_no_data = None;
            state.last_no_data_kind = None;
            let joined = join(&results);
            let mut seen: std::collections::BTreeSet<Labels> = std::collections::BTreeSet::new();
            for (labels, values) in joined {
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
            for (labels, inst) in state.instances.iter_mut() {
                if !seen.contains(labels) {
                    inst.step(false, now, for_ms, keep_ms);
                }
            }
            for (labels, inst) in state.instances.iter_mut() {
                if inst.state == AlertState::Firing {
                    let values = inst.values.clone();
                    if let Some(d) = self.decision(labels, inst, &values, None, now) {
                        decisions.push(d);
                    }
                }
            }
        }
        state
            .instances
            .retain(|_, i| i.state != AlertState::Inactive);
        Evaluation {
            decisions,
            status: state.status(self),
        }
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
        let mut ctx = HashMapContext::new();
        for (k, v) in values {
            ctx.set_value(k.clone(), Value::Float(*v))
                .map_err(|e| format!("when: {e}"))?;
        }
        self.when
            .eval_boolean_with_context(&ctx)
            .map_err(|e| format!("when: {e}"))
    }

    fn decision(
        &self,
        labels: &Labels,
        inst: &mut Instance,
        values: &BTreeMap<String, f64>,
        no_data: Option<String>,
        now: TimestampMs,
    ) -> Option<Decision> {
        let mut action = self.action.clone();
        let instance = match &self.instance_template {
            Some(t) => {
                let rendered = t.render(values, labels);
                if rendered.is_empty() {
                    // Cannot act on "no instance": say so in the status instead.
                    inst.last_error =
                        Some("action.instance rendered empty for this label set".into());
                    return None;
                }
                action.instance = Some(rendered.clone());
                Some(rendered)
            }
            None => None,
        };
        let mut all_labels = labels.clone();
        for (k, v) in &self.labels {
            all_labels.set(k, v);
        }
        Some(Decision {
            rule: self.name.clone(),
            group: self.group.clone(),
            action,
            labels: all_labels,
            instance,
            mode: self.mode,
            approval: self.approval,
            cooldown: self.cooldown,
            reason: Reason {
                when: self.when_text.clone(),
                values: values.clone(),
                pending_since: Some(inst.active_since),
                for_ms: self.for_.as_millis() as i64,
                no_data,
                trace_ids: Vec::new(),
                alert: None,
            },
            annotations: self
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.render(values, labels)))
                .collect(),
            at: now,
        })
    }
}

/// The dedup key of an alert for a rule.
pub fn alert_key(rule: &str, alert: &AlertRef) -> AlertKey {
    (
        rule.to_string(),
        alert.fingerprint.clone(),
        alert.starts_at.clone(),
    )
}

/// Join query results into rule instances.
///
/// - Queries with several results decide the instance set: a label set (without
///   `__name__`) is an instance if every such query has a series with exactly it.
/// - A query with a single result applies to every instance whose labels do not
///   contradict it (same label name, other value); its labels are added. With
///   `{}` labels (e.g. `sum(...)`) that is every instance.
/// - If no query has several results there is one instance: the union of labels.
///
/// An instance lacking a value for some query is dropped (nothing to decide on).
pub fn join(results: &[(&str, &[Sample])]) -> Vec<(Labels, BTreeMap<String, f64>)> {
    let multi: Vec<&(&str, &[Sample])> = results.iter().filter(|(_, s)| s.len() > 1).collect();
    let single: Vec<(&str, Labels, f64)> = results
        .iter()
        .filter(|(_, s)| s.len() == 1)
        .map(|(n, s)| (*n, s[0].labels.without_metric_name(), s[0].value))
        .collect();

    let mut candidates: Vec<(Labels, BTreeMap<String, f64>)> = Vec::new();
    if let Some(((first_name, first), rest)) = multi.split_first().map(|(f, r)| (**f, r)) {
        let others: Vec<(&str, HashMap<Labels, f64>)> = rest
            .iter()
            .map(|(n, s)| {
                (
                    *n,
                    s.iter()
                        .map(|x| (x.labels.without_metric_name(), x.value))
                        .collect(),
                )
            })
            .collect();
        'outer: for s in first {
            let l = s.labels.without_metric_name();
            let mut values = BTreeMap::from([(first_name.to_string(), s.value)]);
            for (n, m) in &others {
                match m.get(&l) {
                    Some(v) => {
                        values.insert(n.to_string(), *v);
                    }
                    None => continue 'outer,
                }
            }
            candidates.push((l, values));
        }
        // Duplicate label sets within one query (bad `by`): keep the first.
        candidates.dedup_by(|a, b| a.0 == b.0);
    } else {
        candidates.push((Labels::empty(), BTreeMap::new()));
    }

    let mut out = Vec::new();
    'cand: for (mut labels, mut values) in candidates {
        for (n, sl, v) in &single {
            let contradicts = sl
                .iter()
                .any(|(k, val)| labels.get(k).is_some_and(|x| x != val));
            if contradicts {
                continue 'cand;
            }
            for (k, val) in sl.iter() {
                if labels.get(k).is_none() {
                    labels.set(k, val);
                }
            }
            values.insert(n.to_string(), *v);
        }
        out.push((labels, values));
    }
    out
}

/// One Alertmanager alert as a trigger rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInput {
    /// `true` for `firing`, `false` for `resolved`.
    pub firing: bool,
    pub labels: Labels,
    /// Fingerprint, `startsAt` (as sent) and generator URL.
    pub reference: AlertRef,
    /// `startsAt` in ms, when it parsed.
    pub starts_at_ms: Option<TimestampMs>,
}

/// Identity of "this alert acted on by this rule": rule, fingerprint, startsAt.
pub type AlertKey = (String, String, String);

/// What a trigger rule does with one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertOutcome {
    /// The alert is not for this rule.
    NoMatch,
    /// A new firing alert: guard this decision. The alert is claimed; call
    /// [`Engine::release_alert`] if the guard does not let it through.
    Decide(Box<Decision>),
    /// Already acted on (same fingerprint and startsAt): nothing to do.
    Duplicate,
    /// Resolved: the rule instance is gone; never acts.
    Resolved,
    /// Matches, but no decision can be built (e.g. the instance template
    /// rendered empty); shown in the rule status.
    Invalid(String),
}

impl Rule {
    /// The decision a firing alert asks for (no dedup: see [`Engine::alert`]).
    fn alert_decision(&self, alert: &AlertInput, now: TimestampMs) -> Result<Decision, String> {
        let values = BTreeMap::new();
        let mut action = self.action.clone();
        let instance = match &self.instance_template {
            Some(t) => {
                let rendered = t.render(&values, &alert.labels);
                if rendered.is_empty() {
                    return Err("action.instance rendered empty for this alert's labels".into());
                }
                action.instance = Some(rendered.clone());
                Some(rendered)
            }
            None => None,
        };
        let mut labels = alert.labels.clone();
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
                values: BTreeMap::new(),
                pending_since: alert.starts_at_ms,
                for_ms: 0,
                no_data: None,
                trace_ids: Vec::new(),
                alert: Some(alert.reference.clone()),
            },
            annotations: self
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.render(&values, &alert.labels)))
                .collect(),
            at: now,
        })
    }
}

/// Rule states of a whole rule set, keyed by rule name; survives reloads for
/// rules that keep their name.
#[derive(Debug, Default)]
pub struct Engine {
    states: HashMap<String, RuleState>,
    /// Alerts trigger rules already acted on (rebuilt from the audit log at
    /// start-up, so a redelivery after a restart does not act again).
    acted_alerts: std::collections::HashSet<AlertKey>,
    /// Example trace ids from the OTLP receiver, for decisions on trace series.
    exemplars: Option<std::sync::Arc<crate::sources::otlp::ExemplarIndex>>,
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine that knows which alerts were already acted on.
    pub fn with_acted_alerts(acted: impl IntoIterator<Item = AlertKey>) -> Self {
        Engine {
            acted_alerts: acted.into_iter().collect(),
            ..Engine::default()
        }
    }

    /// Feed one alert to one trigger rule at `now`. A firing alert seen for the
    /// first time (by fingerprint and startsAt) is claimed and yields a
    /// decision; a resolved one removes the rule instance and never acts.
    pub fn alert(&mut self, rule: &Rule, alert: &AlertInput, now: TimestampMs) -> AlertOutcome {
        let Some(trigger) = &rule.trigger else {
            return AlertOutcome::NoMatch;
        };
        if !trigger.matches(&alert.labels) {
            return AlertOutcome::NoMatch;
        }
        let state = self.states.entry(rule.name.clone()).or_default();
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
        let key = alert_key(&rule.name, &alert.reference);
        if self.acted_alerts.contains(&key) {
            return AlertOutcome::Duplicate;
        }
        match rule.alert_decision(alert, now) {
            Ok(d) => {
                inst.last_error = None;
                self.acted_alerts.insert(key);
                AlertOutcome::Decide(Box::new(d))
            }
            Err(e) => {
                inst.last_error = Some(e.clone());
                AlertOutcome::Invalid(e)
            }
        }
    }

    /// Give back a claim made by [`Engine::alert`] whose decision did not act
    /// (the guard suppressed it for a passing reason): a redelivery may retry.
    pub fn release_alert(&mut self, rule: &str, alert: &AlertRef) {
        self.acted_alerts.remove(&alert_key(rule, alert));
    }

    /// Whether this rule already acted on this alert.
    pub fn alert_acted(&self, rule: &str, alert: &AlertRef) -> bool {
        self.acted_alerts.contains(&alert_key(rule, alert))
    }

    /// Attach the OTLP receiver's example trace ids: a decision of a rule whose
    /// queries read `traces_*` series carries them in `reason.trace_ids`.
    pub fn with_exemplars(
        mut self,
        index: std::sync::Arc<crate::sources::otlp::ExemplarIndex>,
    ) -> Self {
        self.exemplars = Some(index);
        self
    }

    /// Evaluate one rule.
    pub fn evaluate(
        &mut self,
        rule: &Rule,
        outcomes: &BTreeMap<String, QueryOutcome>,
        now: TimestampMs,
    ) -> Evaluation {
        let state = self.states.entry(rule.name.clone()).or_default();
        let mut eval = rule.evaluate(state, outcomes, now);
        if let Some(index) = &self.exemplars {
            let exprs: Vec<&str> = rule.queries.iter().map(|q| q.expr.as_str()).collect();
            for d in &mut eval.decisions {
                if let Some(ids) = index.for_decision(&exprs, &d.labels, now) {
                    d.reason.trace_ids = ids;
                }
            }
        }
        eval
    }

    /// Evaluate every rule of a group, in order, with the outcomes `outcomes`
    /// gives for each rule (the agent evaluates local and remote queries).
    pub fn evaluate_group(
        &mut self,
        group: &super::load::RuleGroup,
        now: TimestampMs,
        mut outcomes: impl FnMut(&Rule) -> BTreeMap<String, QueryOutcome>,
    ) -> Vec<Evaluation> {
        group
            .rules
            .iter()
            .map(|r| {
                let o = outcomes(r);
                self.evaluate(r, &o, now)
            })
            .collect()
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
