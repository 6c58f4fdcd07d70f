//! The `homeostat_*` families and their typed recording methods.
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::audit::{AuditEvent, EventKind};
use crate::model::{ActionKind, Cause, TimestampMs};

/// State of one rule instance (per label set), as in Prometheus alerting rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleState {
    Inactive,
    Pending,
    Firing,
}

impl RuleState {
    pub const ALL: [RuleState; 3] = [RuleState::Inactive, RuleState::Pending, RuleState::Firing];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleState::Inactive => "inactive",
            RuleState::Pending => "pending",
            RuleState::Firing => "firing",
        }
    }
}

/// The `cause` label of `homeostat_suppressions_total`: the guard's own
/// [`Cause`], or `other` for a cause string this build does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuppressionCause {
    Known(Cause),
    /// A cause string this build does not know (counted, not lost).
    Other,
}

impl SuppressionCause {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionCause::Known(c) => c.as_str(),
            SuppressionCause::Other => "other",
        }
    }

    /// The audit log's `cause` string → a cause; unknown strings become `Other`.
    pub fn parse(s: &str) -> Self {
        Cause::parse(s).map_or(SuppressionCause::Other, SuppressionCause::Known)
    }
}

impl From<Cause> for SuppressionCause {
    fn from(c: Cause) -> Self {
        SuppressionCause::Known(c)
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionResult {
    Succeeded,
    Failed,
    /// Started before a crash; settled at start-up against the provider's state.
    Reconciled,
}

impl ActionResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionResult::Succeeded => "succeeded",
            ActionResult::Failed => "failed",
            ActionResult::Reconciled => "reconciled",
        }
    }
}

macro_rules! label_value_via_as_str {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    )*};
}
label_value_via_as_str!(
    RuleState,
    SuppressionCause,
    ActionResult,
    ActionKind,
    EventKind
);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleStateLabels {
    rule: String,
    state: RuleState,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    rule: String,
    kind: ActionKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    kind: ActionKind,
    provider: String,
    outcome: ActionResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionDurationLabels {
    kind: ActionKind,
    provider: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: SuppressionCause,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    job: String,
    instance: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: EventKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceQueryLabels {
    source: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

// Bucket choices: rule ticks are sub-millisecond to seconds; scrapes are bounded by
// the scrape timeout; provider actions (redeploys) can take minutes.
fn rule_eval_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

fn scrape_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

fn action_buckets() -> Histogram {
    Histogram::new([
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ])
}

/// Every self-metric of the agent. Share it as `Arc<Metrics>`; all methods take
/// `&self`.
pub struct Metrics {
    registry: Registry,
    rule_evaluations: Family<GroupLabels, Counter>,
    rule_evaluation_failures: Family<GroupLabels, Counter>,
    rule_evaluation_duration: HistogramFamily<GroupLabels>,
    rule_instances: Family<RuleStateLabels, Gauge>,
    query_errors: Family<RuleLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    action_duration: HistogramFamily<ActionDurationLabels>,
    suppressions: Family<CauseLabels, Counter>,
    approvals_pending: Gauge,
    scrape_duration: HistogramFamily<JobLabels>,
    scrape_samples: Family<JobLabels, Counter>,
    scrape_failures: Family<JobLabels, Counter>,
    target_up: Family<TargetLabels, Gauge>,
    store_series: Gauge,
    store_samples: Gauge,
    paused: Gauge,
    leader: Gauge,
    audit_events: Family<EventLabels, Counter>,
    audit_write_errors: Counter,
    reload_success: Gauge,
    reload_success_time: FloatGauge,
    build_info: Family<BuildLabels, Gauge>,
    source_queries: Family<SourceQueryLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every family under the `homeostat_` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("homeostat");
        let m = Metrics {
            rule_evaluations: Family::default(),
            rule_evaluation_failures: Family::default(),
            rule_evaluation_duration: Family::new_with_constructor(rule_eval_buckets),
            rule_instances: Family::default(),
            query_errors: Family::default(),
            decisions: Family::default(),
            actions: Family::default(),
            action_duration: Family::new_with_constructor(action_buckets),
            suppressions: Family::default(),
            approvals_pending: Gauge::default(),
            scrape_duration: Family::new_with_constructor(scrape_buckets),
            scrape_samples: Family::default(),
            scrape_failures: Family::default(),
            target_up: Family::default(),
            store_series: Gauge::default(),
            store_samples: Gauge::default(),
            paused: Gauge::default(),
            leader: Gauge::default(),
            audit_events: Family::default(),
            audit_write_errors: Counter::default(),
            reload_success: Gauge::default(),
            reload_success_time: FloatGauge::default(),
            build_info: Family::default(),
            source_queries: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "rule_evaluations",
            "Rule group evaluations, by group",
            m.rule_evaluations.clone(),
        );
        r.register(
            "rule_evaluation_failures",
            "Rule group evaluations in which at least one rule failed (query or expression error), by group",
            m.rule_evaluation_failures.clone(),
        );
        r.register_with_unit(
            "rule_evaluation_duration",
            "Time to evaluate all rules of a group once, by group",
            Unit::Seconds,
            m.rule_evaluation_duration.clone(),
        );
        r.register(
            "rule_instances",
            "Rule instances (one per label set) in each state: inactive, pending, firing",
            m.rule_instances.clone(),
        );
        r.register(
            "query_errors",
            "Rule queries that failed to evaluate (local store or remote source), by rule",
            m.query_errors.clone(),
        );
        r.register(
            "decisions",
            "Decisions emitted by firing rules, before the guard, by rule and action kind",
            m.decisions.clone(),
        );
        r.register(
            "actions",
            "Actions run through a provider, by kind, provider and outcome (succeeded, failed, reconciled)",
            m.actions.clone(),
        );
        r.register_with_unit(
            "action_duration",
            "Time from action_started to its outcome, retries included, by kind and provider",
            Unit::Seconds,
            m.action_duration.clone(),
        );
        r.register(
            "suppressions",
            "Decisions the guard did not act on, by cause (paused, not_leader, bounds, cooldown, rate_limit, blast_radius, dry_run, approval, in_progress)",
            m.suppressions.clone(),
        );
        r.register(
            "approvals_pending",
            "Actions waiting for a human approval",
            m.approvals_pending.clone(),
        );
        r.register_with_unit(
            "scrape_duration",
            "Duration of the agent's own scrapes, by job (failed scrapes included)",
            Unit::Seconds,
            m.scrape_duration.clone(),
        );
        r.register(
            "scrape_samples",
            "Samples ingested from successful scrapes, by job",
            m.scrape_samples.clone(),
        );
        r.register(
            "scrape_failures",
            "Scrapes that failed (connection, HTTP status, timeout, body size limit, parse error), by job",
            m.scrape_failures.clone(),
        );
        r.register(
            "scrape_target_up",
            "1 if the last scrape of the target succeeded, 0 if it failed, by job and instance",
            m.target_up.clone(),
        );
        r.register(
            "store_series",
            "Series held in the in-memory store",
            m.store_series.clone(),
        );
        r.register(
            "store_samples",
            "Samples held in the in-memory store",
            m.store_samples.clone(),
        );
        r.register(
            "paused",
            "1 while the agent is paused (decisions are recorded, no action runs)",
            m.paused.clone(),
        );
        r.register(
            "leader",
            "1 while this agent is the leader allowed to act",
            m.leader.clone(),
        );
        r.register(
            "audit_events",
            "Events appended to the audit log, by event",
            m.audit_events.clone(),
        );
        r.register(
            "audit_write_errors",
            "Audit log appends that failed (the action they guard was not run)",
            m.audit_write_errors.clone(),
        );
        r.register(
            "config_last_reload_successful",
            "1 if the last rule/config reload succeeded, 0 if it was rejected and the old rules kept running",
            m.reload_success.clone(),
        );
        r.register_with_unit(
            "config_last_reload_success_timestamp",
            "Unix time of the last successful rule/config load",
            Unit::Seconds,
            m.reload_success_time.clone(),
        );
        r.register(
            "build_info",
            "Always 1; the labels carry the agent's version",
            m.build_info.clone(),
        );
        r.register(
            "source_queries",
            "Queries sent to remote sources, by source and outcome (ok, empty, http_error, promql_error, timeout)",
            m.source_queries.clone(),
        );
        m.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        m.reload_success.set(1);
        // Known label values start at 0 so rate() and absent() work from the start.
        for cause in Cause::ALL {
            let _ = m.suppressions.get_or_create(&CauseLabels {
                cause: cause.into(),
            });
        }
        Metrics { registry: r, ..m }
    }

    /// Everything, in OpenMetrics text (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an Err here would be a bug in an
        // encoder, and an empty page is better than a crashed endpoint.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding self-metrics failed");
        }
        out
    }

    /// Everything, in Prometheus text format 0.0.4, for scrapers that do not ask
    /// for OpenMetrics (curl, `promtool check metrics`, older Prometheus). Same
    /// families and samples: OpenMetrics names a counter family without `_total`
    /// and has `# UNIT` and `# EOF` lines; 0.0.4 names it with `_total` and has
    /// neither. Derived from [`encode`](Self::encode) so the two cannot diverge.
    pub fn encode_text004(&self) -> String {
        openmetrics_to_text004(&self.encode())
    }

    // --- rules -----------------------------------------------------------------

    /// One evaluation of a rule group took `took`; `ok` false if any rule failed.
    pub fn rule_group_evaluated(&self, group: &str, took: Duration, ok: bool) {
        let l = GroupLabels {
            group: group.to_string(),
        };
        self.rule_evaluations.get_or_create(&l).inc();
        if !ok {
            self.rule_evaluation_failures.get_or_create(&l).inc();
        }
        self.rule_evaluation_duration
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    /// How many instances of `rule` are in each state right now.
    pub fn set_rule_instances(&self, rule: &str, inactive: u64, pending: u64, firing: u64) {
        for (state, n) in RuleState::ALL.into_iter().zip([inactive, pending, firing]) {
            let l = RuleStateLabels {
                rule: rule.to_string(),
                state,
            };
            self.rule_instances.get_or_create(&l).set(n as i64);
        }
    }

    /// A rule was removed by a reload: drop its per-rule series.
    pub fn forget_rule(&self, rule: &str) {
        for state in RuleState::ALL {
            self.rule_instances.remove(&RuleStateLabels {
                rule: rule.to_string(),
                state,
            });
        }
        self.query_errors.remove(&RuleLabels {
            rule: rule.to_string(),
        });
    }

    pub fn query_failed(&self, rule: &str) {
        self.query_errors
            .get_or_create(&RuleLabels {
                rule: rule.to_string(),
            })
            .inc();
    }

    /// A query to remote source `source` ended with `outcome` (`ok`, `empty`,
    /// `http_error`, `promql_error`, `timeout`).
    pub fn source_query(&self, source: &str, outcome: &str) {
        self.source_queries
            .get_or_create(&SourceQueryLabels {
                source: source.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    // --- decisions, guard, executor ----------------------------------------------

    pub fn decision(&self, rule: &str, kind: ActionKind) {
        self.decisions
            .get_or_create(&DecisionLabels {
                rule: rule.to_string(),
                kind,
            })
            .inc();
    }

    pub fn suppressed(&self, cause: impl Into<SuppressionCause>) {
        self.suppressions
            .get_or_create(&CauseLabels {
                cause: cause.into(),
            })
            .inc();
    }

    /// An action ended; `took` from action_started to the outcome, if known.
    pub fn action_finished(
        &self,
        kind: ActionKind,
        provider: &str,
        outcome: ActionResult,
        took: Option<Duration>,
    ) {
        self.actions
            .get_or_create(&ActionLabels {
                kind,
                provider: provider.to_string(),
                outcome,
            })
            .inc();
        if let Some(d) = took {
            self.action_duration
                .get_or_create(&ActionDurationLabels {
                    kind,
                    provider: provider.to_string(),
                })
                .observe(d.as_secs_f64());
        }
    }

    pub fn set_approvals_pending(&self, n: usize) {
        self.approvals_pending.set(n as i64);
    }

    /// The one place audit-backed families are recorded from: call it with each
    /// event the audit log accepted, so the metrics and the log cannot disagree.
    /// Counts the event, and for `decision`, `suppressed` and action outcomes
    /// also the decision, suppression and action families. Callers must not also
    /// call [`decision`](Self::decision), [`suppressed`](Self::suppressed) or
    /// [`action_finished`](Self::action_finished) for the same event.
    pub fn observe_audit_event(&self, ev: &AuditEvent) {
        let Some(event) = ev.event else { return };
        self.audit_events
            .get_or_create(&EventLabels { event })
            .inc();
        let provider = ev.provider.as_deref().unwrap_or("unknown");
        let took = ev.duration_ms.map(Duration::from_millis);
        match event {
            EventKind::Decision => {
                if let (Some(rule), Some(kind)) = (ev.rule.as_deref(), ev.kind) {
                    self.decision(rule, kind);
                }
            }
            EventKind::Suppressed => {
                self.suppressed(SuppressionCause::parse(ev.cause.as_deref().unwrap_or("")));
            }
            EventKind::ActionSucceeded | EventKind::ActionFailed | EventKind::ActionReconciled => {
                let outcome = match event {
                    EventKind::ActionSucceeded => ActionResult::Succeeded,
                    EventKind::ActionFailed => ActionResult::Failed,
                    _ => ActionResult::Reconciled,
                };
                if let Some(kind) = ev.kind {
                    // A reconciled action's duration spans a crash: not an action time.
                    let took = if outcome == ActionResult::Reconciled {
                        None
                    } else {
                        took
                    };
                    self.action_finished(kind, provider, outcome, took);
                }
            }
            _ => {}
        }
    }

    pub fn audit_write_failed(&self) {
        self.audit_write_errors.inc();
    }

    // --- agent state -------------------------------------------------------------

    pub fn set_paused(&self, paused: bool) {
        self.paused.set(paused as i64);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(leader as i64);
    }

    pub fn set_store_size(&self, series: usize, samples: usize) {
        self.store_series.set(series as i64);
        self.store_samples.set(samples as i64);
    }

    /// A reload (or the initial load) finished at `at`.
    pub fn reload_finished(&self, ok: bool, at: TimestampMs) {
        self.reload_success.set(ok as i64);
        if ok {
            self.reload_success_time.set(at as f64 / 1000.0);
        }
    }
}

impl crate::scrape::ScrapeObserver for Metrics {
    fn scrape_finished(
        &self,
        job: &str,
        instance: &str,
        duration_seconds: f64,
        samples: u64,
        up: bool,
    ) {
        let j = JobLabels {
            job: job.to_string(),
        };
        self.scrape_duration
            .get_or_create(&j)
            .observe(duration_seconds);
        if up {
            self.scrape_samples.get_or_create(&j).inc_by(samples);
        } else {
            self.scrape_failures.get_or_create(&j).inc();
        }
        self.target_up
            .get_or_create(&TargetLabels {
                job: job.to_string(),
                instance: instance.to_string(),
            })
            .set(up as i64);
    }

    fn target_removed(&self, job: &str, instance: &str) {
        self.target_up.remove(&TargetLabels {
            job: job.to_string(),
            instance: instance.to_string(),
        });
    }
}

/// Rewrite prometheus-client's OpenMetrics output as text format 0.0.4. Handles
/// what that encoder emits for counters, gauges and histograms (no exemplars or
/// `_created` are recorded here).
fn openmetrics_to_text004(om: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_string());
            }
        }
    }
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match header {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let tail = if tail == "unknown" { "untyped" } else { tail };
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{kind}{name}{suffix} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
