//! `action_tests`: the rule engine and the guard run over the input series at
//! every evaluation of every rule group (group `interval`, from 0), as the
//! agent would, with simulated targets whose replica count follows the
//! successful actions.
//!
//! The guard state is fed exactly the audit events a real run writes
//! (`decision`, `suppressed`, `action_started`, `action_succeeded`,
//! `circuit_changed`, built with the `actions::journal` helpers), so
//! cooldowns, rate limits, stabilisation and circuits behave as in the agent.
//! Every action succeeds at once. Queries naming a remote source are
//! evaluated on the input series too (they stand in for that Prometheus).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::format::{RawActionTests, RawFile};
use super::notation::duration_ms;
use super::promql::Group;
use crate::actions::journal::{
    circuit_event, decision_event, intent_event, outcome_detail, started_event, suppressed_event,
};
use crate::actions::{GuardState, Intent, TargetLimits, Verdict};
use crate::audit::{AuditEvent, EventKind};
use crate::model::{ActionKind, InstanceInfo, ProviderOp, QueryOutcome, TargetState, TimestampMs};
use crate::rules::{load_files, Catalog, Engine, LoadContext, Rule, RuleSet};
use crate::store::Store;

/// Provider name written on simulated events.
const PROVIDER: &str = "simulated";

pub enum SetupError {
    Rules(Vec<String>),
    Invalid(String),
}

/// Rules and targets of a file, loaded once.
pub struct Setup {
    rules: RuleSet,
    targets: BTreeMap<String, (TargetLimits, TargetState)>,
}

/// One action the simulation ran.
#[derive(Debug, Clone)]
pub struct Acted {
    pub at: TimestampMs,
    pub rule: String,
    pub kind: ActionKind,
    pub target: String,
    pub instance: Option<String>,
    pub op: ProviderOp,
}

fn op_name(op: &ProviderOp) -> &'static str {
    match op {
        ProviderOp::SetReplicas { .. } => "set_replicas",
        ProviderOp::Replace { .. } => "replace",
        ProviderOp::CircuitOpen { .. } => "circuit_open",
        ProviderOp::CircuitHalfOpen { .. } => "circuit_half_open",
        ProviderOp::CircuitClose { .. } => "circuit_close",
        ProviderOp::Redeploy { .. } => "redeploy",
        ProviderOp::Rollback => "rollback",
    }
}

/// Offsets into a test as people read them (`2m 15s`), not a config value.
fn fmt_at(ms: TimestampMs) -> String {
    humantime::format_duration(Duration::from_millis(ms.max(0) as u64)).to_string()
}

impl std::fmt::Display for Acted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at {} rule {} {} on {}",
            fmt_at(self.at),
            self.rule,
            self.kind,
            self.target
        )?;
        if let Some(i) = &self.instance {
            write!(f, " instance {i}")?;
        }
        match &self.op {
            ProviderOp::SetReplicas { from, to } => write!(f, " (set_replicas {from} → {to})"),
            op => write!(f, " ({})", op_name(op)),
        }
    }
}

/// One suppression the simulation recorded.
#[derive(Debug, Clone)]
pub struct Suppressed {
    pub at: TimestampMs,
    pub rule: String,
    pub cause: String,
    pub detail: String,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Setup {
    pub fn new(path: &Path, raw: &RawFile) -> Result<Self, SetupError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let files: Vec<PathBuf> = raw.rule_files.iter().map(|f| base.join(f)).collect();
        if files.is_empty() {
            return Err(SetupError::Invalid(
                "action tests need rule_files (homeostat remediation rules)".into(),
            ));
        }
        let catalog: Catalog = raw
            .targets
            .keys()
            .map(|t| (t.clone(), &ActionKind::ALL[..]))
            .collect();
        let ctx = LoadContext {
            catalog: &catalog,
            sources: raw.sources.iter().cloned().collect::<BTreeSet<_>>(),
            default_interval: Duration::from_secs(10),
        };
        let rules = load_files(&files, &ctx)
            .map_err(|d| SetupError::Rules(d.iter().map(|d| d.to_string()).collect()))?;
        let dur = |s: &Option<String>, default: Duration| -> Result<Duration, SetupError> {
            match s {
                Some(s) => crate::spec::parse_duration(s).map_err(SetupError::Invalid),
                None => Ok(default),
            }
        };
        let mut targets = BTreeMap::new();
        for (name, t) in &raw.targets {
            let limits = TargetLimits {
                min: t.min.unwrap_or(1),
                max: t.max.unwrap_or(u32::MAX),
                cooldown_up: dur(&t.cooldown_up, Duration::from_secs(60))?,
                cooldown_down: dur(&t.cooldown_down, Duration::from_secs(300))?,
                max_actions_per_hour: t.max_actions_per_hour.unwrap_or(30),
                ..TargetLimits::default()
            };
            let state = TargetState {
                replicas: t.replicas,
                instances: t
                    .instances
                    .iter()
                    .map(|id| InstanceInfo {
                        id: id.clone(),
                        address: Some(id.clone()),
                        healthy: true,
                        in_traffic: true,
                        version: None,
                        labels: Default::default(),
                    })
                    .collect(),
                version: None,
            };
            targets.insert(name.clone(), (limits, state));
        }
        Ok(Setup { rules, targets })
    }

    /// Simulate and compare; returns (cases, failure messages). `Err` for a
    /// malformed expectation.
    pub fn run(&self, group: &Group, t: &RawActionTests) -> Result<(usize, Vec<String>), String> {
        let mut exp_acts = Vec::new();
        for a in &t.exp_actions {
            exp_acts.push((duration_ms(&a.at).map_err(|e| e.to_string())?, a));
        }
        let mut exp_sups = Vec::new();
        for s in &t.exp_suppressions {
            exp_sups.push((duration_ms(&s.at).map_err(|e| e.to_string())?, s));
        }
        let until = match &t.until {
            Some(u) => duration_ms(u).map_err(|e| e.to_string())?,
            None => exp_acts
                .iter()
                .map(|a| a.0)
                .chain(exp_sups.iter().map(|s| s.0))
                .max()
                .unwrap_or_else(|| group.end_ms()),
        };
        let store = group.store_until(until);
        let (acted, suppressed) = self.simulate(&store, until);

        let mut failures = Vec::new();
        let mut used = vec![false; acted.len()];
        for (at, e) in &exp_acts {
            let hit = acted.iter().enumerate().position(|(i, a)| {
                !used[i]
                    && a.at == *at
                    && a.rule == e.rule
                    && a.kind.as_str() == e.kind
                    && a.target == e.target
                    && e.instance
                        .as_ref()
                        .is_none_or(|x| a.instance.as_ref() == Some(x))
                    && e.op.as_deref().is_none_or(|o| op_name(&a.op) == o)
                    && e.to.is_none_or(
                        |to| matches!(a.op, ProviderOp::SetReplicas { to: t, .. } if t == to),
                    )
            });
            match hit {
                Some(i) => used[i] = true,
                None => {
                    let near: Vec<String> = acted
                        .iter()
                        .filter(|a| a.rule == e.rule)
                        .map(|a| format!("\n        {a}"))
                        .collect();
                    failures.push(format!(
                        "action_tests: expected action at {}: rule {} {} on {}{}{}{} — not run; actions of this rule:{}",
                        fmt_at(*at),
                        e.rule,
                        e.kind,
                        e.target,
                        e.instance.as_ref().map(|i| format!(" instance {i}")).unwrap_or_default(),
                        e.op.as_ref().map(|o| format!(" op {o}")).unwrap_or_default(),
                        e.to.map(|t| format!(" to {t}")).unwrap_or_default(),
                        if near.is_empty() { " none".to_string() } else { near.concat() }
                    ));
                }
            }
        }
        let extra: Vec<String> = acted
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(a, _)| format!("\n        {a}"))
            .collect();
        if !extra.is_empty() {
            failures.push(format!(
                "action_tests: unexpected actions up to {}:{}",
                fmt_at(until),
                extra.concat()
            ));
        }
        for (at, e) in &exp_sups {
            let ok = suppressed
                .iter()
                .any(|s| s.at == *at && s.rule == e.rule && s.cause == e.cause);
            if !ok {
                let got: Vec<String> = suppressed
                    .iter()
                    .filter(|s| s.at == *at && s.rule == e.rule)
                    .map(|s| format!("{} ({})", s.cause, s.detail))
                    .collect();
                let acted_then: Vec<String> = acted
                    .iter()
                    .filter(|a| a.at == *at && a.rule == e.rule)
                    .map(|a| a.to_string())
                    .collect();
                failures.push(format!(
                    "action_tests: expected suppression at {}: rule {} cause {}\n    got: {}",
                    fmt_at(*at),
                    e.rule,
                    e.cause,
                    if !got.is_empty() {
                        format!("suppressed {}", got.join(", "))
                    } else if !acted_then.is_empty() {
                        format!("acted {}", acted_then.join(", "))
                    } else {
                        "no decision of this rule at that time".into()
                    }
                ));
            }
        }
        Ok((exp_acts.len() + exp_sups.len() + 1, failures))
    }

    /// Evaluate every group at its interval from 0 to `until`.
    pub fn simulate(&self, store: &Store, until: TimestampMs) -> (Vec<Acted>, Vec<Suppressed>) {
        let mut ticks: Vec<(TimestampMs, usize)> = Vec::new();
        for (gi, g) in self.rules.groups.iter().enumerate() {
            let step = ms(g.interval).max(1);
            let mut t = 0;
            while t <= until {
                ticks.push((t, gi));
                t += step;
            }
        }
        ticks.sort();
        let mut engine = Engine::new();
        let mut state = GuardState::default();
        let mut targets = self.targets.clone();
        let mut acted = Vec::new();
        let mut suppressed = Vec::new();
        let guard = crate::actions::Guard::default();
        let mut last_circuit_tick = None;
        for (now, gi) in ticks {
            // Due circuit transitions, once per instant (the agent's loop).
            if last_circuit_tick != Some(now) {
                last_circuit_tick = Some(now);
                for tr in state.due_circuits(now) {
                    let intent = tr.intent(now);
                    acted.push(Acted {
                        at: now,
                        rule: tr.rule.clone(),
                        kind: intent.kind,
                        target: intent.target.clone(),
                        instance: intent.instance.clone(),
                        op: intent.op.clone(),
                    });
                    apply(&mut state, &mut targets, &intent, now);
                }
            }
            let g = &self.rules.groups[gi];
            for rule in &g.rules {
                let outcomes = outcomes(rule, store, now);
                let eval = engine.evaluate(rule, &outcomes, now);
                state.note_evaluation(&rule.name, now, &eval.decisions);
                for d in eval.decisions {
                    let Some((limits, ts)) = targets.get(&d.action.target) else {
                        continue;
                    };
                    let verdict = guard.check(&d, limits, &state, ts, now);
                    observe(&mut state, decision_event(&d, &verdict), now);
                    if let Some(ev) = suppressed_event(&d, &verdict) {
                        observe(&mut state, ev, now);
                    }
                    match verdict {
                        Verdict::Act(intent) => {
                            acted.push(Acted {
                                at: now,
                                rule: d.rule.clone(),
                                kind: d.action.kind,
                                target: intent.target.clone(),
                                instance: intent.instance.clone(),
                                op: intent.op.clone(),
                            });
                            apply(&mut state, &mut targets, &intent, now);
                        }
                        Verdict::Suppress { cause, detail, .. } => suppressed.push(Suppressed {
                            at: now,
                            rule: d.rule.clone(),
                            cause: cause.as_str().to_string(),
                            detail,
                        }),
                    }
                }
            }
        }
        (acted, suppressed)
    }
}

/// Query outcomes of a rule at `now`; remote queries run on the local store.
fn outcomes(rule: &Rule, store: &Store, now: TimestampMs) -> BTreeMap<String, QueryOutcome> {
    rule.queries
        .iter()
        .map(|q| {
            let outcome = match &q.local {
                Some(query) => query.outcome(store, now),
                None => match crate::query::compile(&q.expr) {
                    Ok(query) => query.outcome(store, now),
                    Err(e) => QueryOutcome::Failed(e.to_string()),
                },
            };
            (q.name.clone(), outcome)
        })
        .collect()
}

fn observe(state: &mut GuardState, mut ev: AuditEvent, now: TimestampMs) {
    ev.ts_ms = now;
    state.observe(&ev);
}

/// Run an intent successfully: the events the executor writes, and the
/// target change.
fn apply(
    state: &mut GuardState,
    targets: &mut BTreeMap<String, (TargetLimits, TargetState)>,
    intent: &Intent,
    now: TimestampMs,
) {
    observe(state, started_event(intent, PROVIDER, 0), now);
    let mut ev = intent_event(EventKind::ActionSucceeded, intent, PROVIDER);
    ev.detail = outcome_detail(intent, 1, None);
    observe(state, ev, now);
    if let Some(change) = intent.circuit {
        observe(state, circuit_event(intent, PROVIDER, change), now);
    }
    if let (ProviderOp::SetReplicas { to, .. }, Some((_, ts))) =
        (&intent.op, targets.get_mut(&intent.target))
    {
        ts.replicas = *to;
    }
}
