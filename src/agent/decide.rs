//! One rule-group tick: queries → rule engine → guard → audit → executor; and
//! the same guarded path for due circuit transitions and manual actions.
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{lock, read, tick, Agent};
use crate::actions::{ActionSpec, Decision, Intent, RunResult, Started, Verdict};
use crate::clock::Stopwatch;
use crate::model::{
    ActionKind, AlertInput, Approval, Cause, Labels, Mode, QueryOutcome, Reason, TimestampMs,
};
use crate::providers::Provider;
use crate::rules::{AlertOutcome, AlertState, Rule};
use crate::sources::alertmanager::Receipt;
use crate::sources::prometheus::QueryResult;

/// A persisting suppression is written again at most this often, so the log
/// shows it still holds without a line per tick.
const RE_RECORD_EVERY_MS: TimestampMs = 5 * 60 * 1000;

/// What was last written for a rule instance.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Recorded {
    verdict: &'static str,
    at: TimestampMs,
}

/// An action asked for by a person or a tool rather than a rule. It passes the
/// same guard and executor and is audited with `actor`.
#[derive(Debug, Clone)]
pub struct ManualAction {
    pub spec: ActionSpec,
    pub instance: Option<String>,
    /// Who asks (`cli`, `api:<user>`, `demo`).
    pub actor: String,
    /// Why, in words; recorded as the reason.
    pub reason: String,
}

impl Agent {
    pub(super) async fn evaluate_group(self: &Arc<Self>, group: &str) {
        let watch = Stopwatch::start();
        let now = self.clock.now_ms();
        let rules = self.rules_snapshot();
        let Some(g) = rules.groups.iter().find(|g| g.name == group) else {
            return;
        };
        let mut ok = true;
        for rule in &g.rules {
            let outcomes = self.run_queries(rule, now).await;
            if outcomes.values().any(|o| {
                matches!(
                    o,
                    QueryOutcome::Failed(_) | QueryOutcome::SourceFailed { .. }
                )
            }) {
                ok = false;
                self.metrics.query_failed(&rule.name);
            }
            let exemplars = self.otlp.as_ref().map(|rx| rx.exemplars());
            let eval = tick::evaluate(
                &mut lock(&self.engine),
                rule,
                &outcomes,
                exemplars.as_deref(),
                now,
            );
            let count = |s: AlertState| {
                eval.status
                    .instances
                    .iter()
                    .filter(|i| i.state == s)
                    .count() as u64
            };
            self.metrics.set_rule_instances(
                &rule.name,
                count(AlertState::Inactive),
                count(AlertState::Pending),
                count(AlertState::Firing),
            );
            self.journal
                .state()
                .note_evaluation(&rule.name, now, &eval.decisions);
            for d in eval.decisions {
                self.handle_decision(d, now);
            }
        }
        self.metrics
            .rule_group_evaluated(group, watch.elapsed(), ok);
    }

    /// Alertmanager alerts in: each trigger rule acts on each new firing alert
    /// it matches, through the same guard, audit log and executor as a tick.
    /// An alert stays claimed when the decision acted or went to dry-run or
    /// approval; after a passing suppression (cooldown, pause …) a redelivery
    /// may try again.
    pub(super) fn receive_alerts(
        self: &Arc<Self>,
        alerts: &[AlertInput],
        now: TimestampMs,
    ) -> Receipt {
        let rules = self.rules_snapshot();
        let mut receipt = Receipt {
            alerts: alerts.len(),
            ..Receipt::default()
        };
        for alert in alerts {
            let mut matched = false;
            for rule in rules.rules().filter(|r| r.trigger.is_some()) {
                let outcome = lock(&self.engine).alert(rule, alert, now);
                match outcome {
                    AlertOutcome::NoMatch => continue,
                    AlertOutcome::Duplicate => {
                        tracing::debug!(
                            rule = %rule.name, fingerprint = %alert.reference.fingerprint,
                            starts_at = %alert.reference.starts_at, "alert already acted on"
                        );
                        receipt.duplicates += 1;
                    }
                    AlertOutcome::Resolved => receipt.resolved += 1,
                    AlertOutcome::Invalid(e) => {
                        tracing::warn!(rule = %rule.name, alert = %alert.reference.name, error = %e, "alert not acted on");
                    }
                    AlertOutcome::Decide(d) => {
                        receipt.decisions += 1;
                        let kept = match self.guard_and_record(&d, now, false) {
                            Ok(Verdict::Act(intent)) => {
                                tracing::info!(
                                    rule = %d.rule, target = %intent.target, kind = %d.action.kind,
                                    action_id = %intent.action_id,
                                    fingerprint = %alert.reference.fingerprint, "acting on alert"
                                );
                                if let Some(p) = self.providers.get(&intent.target) {
                                    self.launch(intent, p.clone());
                                }
                                true
                            }
                            Ok(Verdict::Suppress { cause, .. }) => {
                                matches!(cause, Cause::DryRun | Cause::Approval)
                            }
                            Err(_) => false,
                        };
                        if !kept {
                            lock(&self.engine).release_alert(&d.rule, &alert.reference);
                        }
                    }
                }
                matched = true;
            }
            if !matched {
                receipt.unmatched += 1;
            }
        }
        receipt
    }

    /// Evaluate each named query at `now`: local ones on the store (telling
    /// missing from stale from failed), remote ones on their source,
    /// concurrently, each within its source's timeout.
    async fn run_queries(&self, rule: &Rule, now: TimestampMs) -> BTreeMap<String, QueryOutcome> {
        // query.timeout and query.max_samples bound each rule query too.
        let mut outcomes =
            tick::local_outcomes_within(rule, &read(&self.store), now, &self.cfg.query);
        for a in self.sources.run(rule.remote_queries(), now).await {
            self.metrics.source_query(&a.source, a.result.outcome());
            if let QueryResult::Failed { kind, error } = &a.result {
                tracing::warn!(
                    rule = %rule.name, query = %a.name, source = %a.source,
                    outcome = kind.as_str(), %error, "remote query failed"
                );
            }
            outcomes.insert(a.name.clone(), a.outcome());
        }
        outcomes
    }

    /// Guard one decision, record it, and launch its action if allowed.
    fn handle_decision(self: &Arc<Self>, d: Decision, now: TimestampMs) {
        let Ok(Verdict::Act(intent)) = self.guard_and_record(&d, now, false) else {
            return;
        };
        tracing::info!(
            rule = %d.rule, target = %intent.target, kind = %d.action.kind,
            action_id = %intent.action_id, "acting"
        );
        if let Some(p) = self.providers.get(&intent.target) {
            self.launch(intent, p.clone());
        }
    }

    /// The guard's verdict on `d`, written to the audit log first (unless it only
    /// repeats what was already written and `always` is false). No action
    /// without its decision on disk: a write failure is an error.
    fn guard_and_record(
        &self,
        d: &Decision,
        now: TimestampMs,
        always: bool,
    ) -> Result<Verdict, String> {
        let target = &d.action.target;
        let limits = self.limits.get(target).ok_or_else(|| {
            tracing::error!(rule = %d.rule, target = %target, "decision for an unknown target");
            format!("unknown target {target:?}")
        })?;
        let target_state = self.target_state(target).unwrap_or_default();
        let verdict = {
            let state = self.journal.state();
            self.guard.check(d, limits, &state, &target_state, now)
        };
        if always || self.should_record(d, &verdict, now) {
            self.journal.record_decision(d, &verdict, now).map_err(|e| {
                tracing::error!(rule = %d.rule, error = %e, "cannot write the decision; not acting");
                e.to_string()
            })?;
        } else {
            // Not written again, but still counted.
            self.metrics.decision(&d.rule, d.action.kind);
            if let Some(cause) = verdict.cause() {
                self.metrics.suppressed(cause);
            }
        }
        Ok(verdict)
    }

    /// Write a decision when it acts, when its verdict changes, for every
    /// target-tracking evaluation (their recommendations feed the
    /// stabilisation window), and otherwise at most every [`RE_RECORD_EVERY_MS`].
    fn should_record(&self, d: &Decision, v: &Verdict, now: TimestampMs) -> bool {
        let verdict = v.cause().map(|c| c.as_str()).unwrap_or("act");
        let mut last = lock(&self.last_verdicts);
        let key = (d.rule.clone(), d.labels.clone());
        let always = matches!(v, Verdict::Act(_)) || d.action.kind == ActionKind::Scale;
        let fresh = match last.get(&key) {
            Some(r) => r.verdict != verdict || now - r.at >= RE_RECORD_EVERY_MS,
            None => true,
        };
        if always || fresh {
            last.insert(key, Recorded { verdict, at: now });
            true
        } else {
            false
        }
    }

    /// Write `action_started` now (so the next decision sees the action in
    /// flight), then run the provider call in its own task.
    fn launch(self: &Arc<Self>, intent: Intent, provider: Arc<dyn Provider>) {
        match self.executor.start(&intent, provider.as_ref()) {
            Ok(Started::Running(started)) => {
                let this = self.clone();
                let task = tokio::spawn(async move {
                    let target = started.intent().target.clone();
                    let id = started.intent().action_id.clone();
                    match this.executor.finish(started, provider.as_ref()).await {
                        Ok(r) => log_result(&id, &target, &r),
                        Err(e) => tracing::error!(action_id = %id, error = %e, "executor"),
                    }
                    this.refresh_target_state(&target, provider.as_ref()).await;
                });
                let mut tasks = lock(&self.action_tasks);
                tasks.retain(|t| !t.is_finished());
                tasks.push(task);
            }
            Ok(Started::NotStarted(r)) => log_result(&intent.action_id, &intent.target, &r),
            Err(e) => tracing::error!(action_id = %intent.action_id, error = %e, "not started"),
        }
    }

    pub(super) async fn refresh_target_state(&self, target: &str, provider: &dyn Provider) {
        if let Ok(s) = provider.state().await {
            super::write(&self.target_states).insert(target.to_string(), s);
        }
    }

    /// Circuits whose `open_for` elapsed go half-open; half-open ones close or
    /// reopen after their trial evaluation.
    pub(super) fn run_due_circuits(self: &Arc<Self>) {
        let now = self.clock.now_ms();
        let due = self.journal.state().due_circuits(now);
        for t in due {
            let intent = t.intent(now);
            match self.providers.get(&intent.target) {
                Some(p) => self.launch(intent, p.clone()),
                None => tracing::error!(target = %intent.target, "circuit on an unknown target"),
            }
        }
    }

    /// Run an action asked for by a person or tool, through the same guard,
    /// audit log and executor as rule decisions, and wait for its outcome.
    pub async fn act(self: &Arc<Self>, m: ManualAction) -> Result<RunResult, String> {
        let now = self.clock.now_ms();
        let d = Decision {
            rule: format!("manual:{}", m.actor),
            group: "manual".into(),
            labels: Labels::empty(),
            instance: m.instance,
            mode: Mode::Enforce,
            approval: Approval::None,
            cooldown: None,
            reason: Reason {
                when: m.reason,
                ..Reason::default()
            },
            annotations: BTreeMap::new(),
            at: now,
            action: m.spec,
        };
        let target = d.action.target.clone();
        let provider = self
            .providers
            .get(&target)
            .cloned()
            .ok_or_else(|| format!("unknown target {target:?}"))?;
        match self.guard_and_record(&d, now, true)? {
            Verdict::Act(intent) => match self.executor.start(&intent, provider.as_ref()) {
                Ok(Started::Running(s)) => {
                    let r = self
                        .executor
                        .finish(s, provider.as_ref())
                        .await
                        .map_err(|e| e.to_string())?;
                    self.refresh_target_state(&target, provider.as_ref()).await;
                    Ok(r)
                }
                Ok(Started::NotStarted(r)) => Ok(r),
                Err(e) => Err(e.to_string()),
            },
            Verdict::Suppress { cause, detail, .. } => {
                Err(format!("suppressed ({cause}): {detail}"))
            }
        }
    }
}

fn log_result(action_id: &str, target: &str, r: &RunResult) {
    match r {
        RunResult::Succeeded {
            duration_ms,
            attempts,
            ..
        } => {
            tracing::info!(action_id, target, duration_ms, attempts, "action succeeded")
        }
        RunResult::Failed {
            error,
            cause,
            attempts,
            ..
        } => {
            tracing::warn!(action_id, target, %error, cause, attempts, "action failed")
        }
        RunResult::ProviderUnavailable { retry_after_ms } => {
            tracing::warn!(
                action_id,
                target,
                retry_after_ms,
                "provider unavailable; not started"
            )
        }
        RunResult::Unsupported => {
            tracing::warn!(
                action_id,
                target,
                "provider cannot do this kind; not started"
            )
        }
    }
}
