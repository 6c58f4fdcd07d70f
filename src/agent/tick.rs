//! One evaluation of one rule, as every rule-group tick runs it: the local
//! queries on the store, the rule engine on their outcomes (with the remote
//! sources' answers the caller adds), and the OTLP receiver's example trace
//! ids attached to the decisions.
//!
//! Plain functions over the store and the engine, so that benches and tests
//! run exactly what the agent runs without starting one. Reads no clock.
use std::collections::BTreeMap;

use crate::model::{QueryOutcome, TimestampMs};
use crate::rules::{Engine, Evaluation, Rule};
use crate::sources::otlp::ExemplarIndex;
use crate::store::Store;

/// The outcome of every local query of `rule` at `now` (missing, stale and
/// failed told apart). Queries that name a source are left to that source.
pub fn local_outcomes(
    rule: &Rule,
    store: &Store,
    now: TimestampMs,
) -> BTreeMap<String, QueryOutcome> {
    local_outcomes_within(rule, store, now, &crate::query::QueryLimits::default())
}

/// [`local_outcomes`], each query within `limits` (`query.max_samples`, and a
/// `query.timeout` deadline of its own).
pub fn local_outcomes_within(
    rule: &Rule,
    store: &Store,
    now: TimestampMs,
    limits: &crate::query::QueryLimits,
) -> BTreeMap<String, QueryOutcome> {
    let mut outcomes = BTreeMap::new();
    for q in &rule.queries {
        match (&q.local, &q.source) {
            (Some(query), _) => {
                outcomes.insert(
                    q.name.clone(),
                    query.outcome_with(store, now, &limits.start()),
                );
            }
            (None, Some(_)) => {}
            (None, None) => {
                outcomes.insert(
                    q.name.clone(),
                    QueryOutcome::Failed("query has neither a local form nor a source".into()),
                );
            }
        }
    }
    outcomes
}

/// Run the engine on `rule` with `outcomes` (local and remote) at `now`. A
/// decision of a rule whose queries read trace series carries the example
/// trace ids `exemplars` has for it in `reason.trace_ids`.
pub fn evaluate(
    engine: &mut Engine,
    rule: &Rule,
    outcomes: &BTreeMap<String, QueryOutcome>,
    exemplars: Option<&ExemplarIndex>,
    now: TimestampMs,
) -> Evaluation {
    let mut eval = engine.evaluate(rule, outcomes, now);
    if let Some(index) = exemplars {
        let exprs: Vec<&str> = rule.queries.iter().map(|q| q.expr.as_str()).collect();
        for d in &mut eval.decisions {
            if let Some(ids) = index.for_decision(&exprs, &d.labels, now) {
                d.reason.trace_ids = ids;
            }
        }
    }
    eval
}
