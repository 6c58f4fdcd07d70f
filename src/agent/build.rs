//! Start-up: from a compiled config to a ready-to-run [`Agent`].
//!
//! Order matters: the audit log is opened and folded into the guard state
//! first, so that cooldowns, circuits and open actions survive restarts; then
//! providers adopt what already runs; then open actions are reconciled.
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use super::{retention_for, Agent, AgentError, AgentOptions, AUDIT_FILE_BYTES};
use crate::actions::{
    AuditSink, Executor, ExecutorConfig, Guard, GuardState, Journal, SinkError, TargetLimits,
};
use crate::audit::{AuditEvent, AuditLog, EventKind};
use crate::clock::Clock;
use crate::config::{AgentConfig, JobTargets, ProviderConfig};
use crate::model::TimestampMs;
use crate::providers::process::ProcessProvider;
use crate::providers::webhook::WebhookProvider;
use crate::providers::{docker, haproxy, kubernetes, Provider, ProviderContext};
use crate::rules::Engine;
use crate::scrape::{JobConfig, ProviderDiscovery, ScrapeManager, ScrapeTarget, TargetSource};
use crate::store::Store;
use crate::telemetry::Metrics;

/// The audit log as the journal's sink, counting every written event in the
/// self-metrics: the log and the metrics come from the same event.
struct MeteredAudit {
    log: Arc<AuditLog>,
    metrics: Arc<Metrics>,
}

impl AuditSink for MeteredAudit {
    fn append(&self, ev: AuditEvent, now: TimestampMs) -> Result<AuditEvent, SinkError> {
        match self.log.append(ev, now) {
            Ok(written) => {
                self.metrics.observe_audit_event(&written);
                Ok(written)
            }
            Err(e) => {
                self.metrics.audit_write_failed();
                Err(SinkError(Box::new(e)))
            }
        }
    }
}

/// `dir` made absolute against the working directory (adapters keep it).
fn absolute(dir: &std::path::Path) -> Result<std::path::PathBuf, AgentError> {
    std::path::absolute(dir).map_err(|source| AgentError::Io {
        context: format!("resolving data_dir {}", dir.display()),
        source,
    })
}

pub(super) async fn start(
    cfg: AgentConfig,
    clock: Clock,
    opts: AgentOptions,
) -> Result<Arc<Agent>, AgentError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| AgentError::Io {
        context: format!("creating data_dir {}", cfg.data_dir.display()),
        source,
    })?;
    let rules = super::load_rules(&cfg, &super::catalog_for(&cfg)).map_err(AgentError::Rules)?;

    let metrics = Arc::new(Metrics::new());
    let audit_dir = cfg.data_dir.join("audit");
    let audit = Arc::new(AuditLog::open(&audit_dir, AUDIT_FILE_BYTES)?);
    let history = crate::audit::read_all(&audit_dir)?;
    let state = GuardState::rebuild(history.iter());
    let paused_in_log = state.paused();
    let acted_alerts = crate::sources::alertmanager::acted_alerts(history.iter());
    drop(history);
    let sink = Arc::new(MeteredAudit {
        log: audit.clone(),
        metrics: metrics.clone(),
    });
    let journal = Arc::new(Journal::new(sink, state));
    let executor = Arc::new(Executor::new(
        journal.clone(),
        clock,
        ExecutorConfig::default(),
    ));

    let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
    let mut process_providers = BTreeMap::new();
    let mut limits = BTreeMap::new();
    let data_dir = absolute(&cfg.data_dir)?;
    for (name, t) in &cfg.targets {
        let ctx = ProviderContext {
            data_dir: data_dir.clone(),
            min: t.min,
            max: t.max,
        };
        let adapter_error = |source| AgentError::Provider {
            target: name.clone(),
            source,
        };
        let provider: Arc<dyn Provider> = match &t.provider {
            ProviderConfig::Process(p) => {
                let initial = p.initial_replicas.unwrap_or(t.min).clamp(t.min, t.max);
                let pp = Arc::new(
                    ProcessProvider::new(name.clone(), p.clone(), &cfg.data_dir, initial)
                        .map_err(adapter_error)?,
                );
                process_providers.insert(name.clone(), pp.clone());
                pp
            }
            ProviderConfig::Webhook(w) => {
                Arc::new(
                    WebhookProvider::new(name, w).map_err(|e| AgentError::ProviderSetup {
                        target: name.clone(),
                        message: e.to_string(),
                    })?,
                )
            }
            ProviderConfig::Docker(c) => docker::build(name, c, &ctx).map_err(adapter_error)?,
            ProviderConfig::Haproxy(c) => haproxy::build(name, c, &ctx).map_err(adapter_error)?,
            ProviderConfig::Kubernetes(c) => {
                kubernetes::build(name, c, &ctx).map_err(adapter_error)?
            }
        };
        providers.insert(name.clone(), provider);
        limits.insert(
            name.clone(),
            TargetLimits {
                min: t.min,
                max: t.max,
                cooldown_up: t.cooldown_up,
                cooldown_down: t.cooldown_down,
                max_actions_per_hour: cfg.guard.max_actions_per_target_per_hour,
                max_open_share: cfg.guard.max_open_share,
            },
        );
    }

    let mut started = AuditEvent::new(EventKind::AgentStarted);
    started.actor = Some("agent".into());
    started.detail = Some(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": cfg.path.display().to_string(),
        "rules": rules.rules().count(),
        "targets": cfg.targets.keys().collect::<Vec<_>>(),
        "open_actions": journal.state().open_actions().count(),
    }));
    journal.record(started, clock.now_ms())?;
    if cfg.guard.paused && !paused_in_log {
        journal.pause("config", clock.now_ms())?;
    }
    metrics.set_paused(journal.state().paused());
    metrics.set_leader(true);

    // Adopt what runs, then settle what a crash left open.
    let mut target_states = BTreeMap::new();
    for (name, p) in &providers {
        let s = p.start().await.map_err(|source| AgentError::Provider {
            target: name.clone(),
            source,
        })?;
        target_states.insert(name.clone(), s);
    }
    for (id, r) in executor.reconcile_open_actions(&providers).await? {
        tracing::warn!(action_id = %id, result = ?r, "reconciled an action left open by a previous run");
    }

    let store = Store::shared();
    {
        let mut s = super::write(&store);
        s.set_retention_ms(retention_for(&rules));
    }
    let jobs = cfg
        .scrape
        .jobs
        .iter()
        .map(|j| {
            let source = match &j.targets {
                JobTargets::Static(addrs) => {
                    TargetSource::Static(addrs.iter().map(ScrapeTarget::new).collect())
                }
                JobTargets::Target(t) => match providers.get(t) {
                    Some(p) => TargetSource::Discovered(Arc::new(ProviderDiscovery(p.clone()))),
                    None => TargetSource::Static(Vec::new()),
                },
            };
            let mut job = JobConfig::new(j.name.clone(), source);
            job.metrics_path = j.metrics_path.clone();
            job.scheme = match j.scheme {
                crate::config::Scheme::Http => crate::scrape::Scheme::Http,
                crate::config::Scheme::Https => crate::scrape::Scheme::Https,
            };
            job.interval = cfg.scrape.interval;
            job.timeout = cfg.scrape.timeout;
            job.body_size_limit = cfg.scrape.body_size_limit;
            job.labels = j.labels.clone();
            job
        })
        .collect();
    let scrape =
        Arc::new(ScrapeManager::new(store.clone(), clock, jobs)?.with_observer(metrics.clone()));

    let otlp = cfg.otlp.enabled.then(|| {
        Arc::new(crate::sources::otlp::OtlpReceiver::new(
            cfg.otlp.clone(),
            store.clone(),
            clock,
        ))
    });
    let engine = Engine::with_acted_alerts(acted_alerts);

    let (stop, _) = watch::channel(false);
    let sources = crate::sources::prometheus::Sources::new(&cfg.sources)?;
    Ok(Arc::new(Agent {
        clock,
        cfg,
        opts,
        store,
        metrics,
        audit,
        journal,
        executor,
        guard: Guard::default(),
        providers,
        process_providers,
        limits,
        rules: RwLock::new(Arc::new(rules)),
        engine: Mutex::new(engine),
        target_states: RwLock::new(target_states),
        scrape,
        sources,
        otlp,
        last_verdicts: Mutex::new(Default::default()),
        ready: AtomicBool::new(false),
        stop,
        group_tasks: Mutex::new(Vec::new()),
        action_tasks: Mutex::new(Vec::new()),
    }))
}
