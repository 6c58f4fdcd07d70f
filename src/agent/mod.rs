//! The running agent: wires config, store, scraper, rule engine, guard,
//! executor, providers, audit log and HTTP server together.
//!
//! Owns the schedule (rule-group ticks, circuit transitions, provider state
//! refresh, store housekeeping), start-up (rebuild state from the audit log,
//! adopt running instances, reconcile open actions), reload, which rule files
//! a config names ([`load_rules`]) and `homeostat check` ([`check`]). It
//! decides nothing itself: rules decide, the guard permits, the executor acts.
mod build;
mod check;
mod control;
mod decide;
mod rule_files;
pub mod tick;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actions::{Executor, Guard, Journal, TargetLimits};
use crate::audit::{AuditEvent, AuditLog, EventKind};
use crate::clock::Clock;
use crate::config::AgentConfig;
use crate::locks::lock;
use crate::model::{Labels, TargetState};
use crate::providers::process::ProcessProvider;
use crate::providers::Provider;
use crate::rules::{Engine, RuleSet};
use crate::scrape::ScrapeManager;
use crate::spec::Diagnostic;
use crate::store::SharedStore;
use crate::telemetry::Metrics;

pub use check::{check, check_files, check_with, CheckSummary};
pub use decide::ManualAction;
pub use rule_files::{catalog_for, load_context, load_rule_files, load_rules};

/// Size at which the audit log starts a new file.
pub const AUDIT_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// How often provider state is refreshed and due circuit transitions run.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);
/// How often the store drops expired series.
const GC_EVERY: Duration = Duration::from_secs(30);
/// Longest wait for one provider's `state()` in the housekeeping loop.
const STATE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the agent could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid configuration:\n{}", join_diagnostics(.0))]
    Config(Vec<Diagnostic>),
    #[error("invalid rules:\n{}", join_diagnostics(.0))]
    Rules(Vec<Diagnostic>),
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("audit log: {0}")]
    Journal(#[from] crate::actions::SinkError),
    #[error("target {target}: {source}")]
    Provider {
        target: String,
        #[source]
        source: crate::model::ProviderError,
    },
    #[error("target {target}: {message}")]
    ProviderSetup { target: String, message: String },
    #[error("scrape: {0}")]
    Scrape(#[from] crate::scrape::ScrapeError),
    #[error("server: {0}")]
    Server(#[from] crate::server::ServerError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("executor: {0}")]
    Exec(#[from] crate::actions::ExecError),
    #[error("{0}")]
    Sources(#[from] crate::sources::prometheus::SourcesError),
}

fn join_diagnostics(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How the agent runs (beyond its config file).
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// Stop the instances providers run when the agent stops (the demo does;
    /// a production agent leaves them running and adopts them on restart).
    pub stop_instances_on_exit: bool,
}

/// The agent. Shared as `Arc<Agent>` between its loops and the HTTP server.
pub struct Agent {
    clock: Clock,
    cfg: AgentConfig,
    opts: AgentOptions,
    store: SharedStore,
    metrics: Arc<Metrics>,
    audit: Arc<AuditLog>,
    journal: Arc<Journal>,
    executor: Arc<Executor>,
    guard: Guard,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    process_providers: BTreeMap<String, Arc<ProcessProvider>>,
    limits: BTreeMap<String, TargetLimits>,
    rules: RwLock<Arc<RuleSet>>,
    engine: Mutex<Engine>,
    target_states: RwLock<BTreeMap<String, TargetState>>,
    scrape: Arc<ScrapeManager>,
    /// Clients of the remote sources rule queries may name.
    sources: crate::sources::prometheus::Sources,
    /// `POST /v1/traces` receiver, when `otlp.enabled`.
    otlp: Option<Arc<crate::sources::otlp::OtlpReceiver>>,
    /// Last verdict written per rule instance, so a suppression that persists
    /// is not written on every tick (see `decide::should_record`).
    last_verdicts: Mutex<HashMap<(String, Labels), decide::Recorded>>,
    ready: AtomicBool,
    stop: watch::Sender<bool>,
    group_tasks: Mutex<Vec<JoinHandle<()>>>,
    action_tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Agent {
    /// Load everything, rebuild state from the audit log, adopt running
    /// instances and reconcile open actions. Nothing is scheduled yet: call
    /// [`Agent::run`].
    pub async fn start(
        cfg: AgentConfig,
        clock: Clock,
        opts: AgentOptions,
    ) -> Result<Arc<Agent>, AgentError> {
        build::start(cfg, clock, opts).await
    }

    /// Load the config file and start.
    pub async fn start_from_file(
        path: &std::path::Path,
        clock: Clock,
        opts: AgentOptions,
    ) -> Result<Arc<Agent>, AgentError> {
        let cfg = crate::config::load(path).map_err(AgentError::Config)?;
        Self::start(cfg, clock, opts).await
    }

    /// Schedule every loop, serve HTTP, and run until `shutdown` resolves; then
    /// stop the loops, wait for running actions and write `agent_stopped`.
    pub async fn run<F>(self: &Arc<Self>, shutdown: F) -> Result<(), AgentError>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind(self.cfg.listen)
            .await
            .map_err(|source| AgentError::Io {
                context: format!("listening on {}", self.cfg.listen),
                source,
            })?;
        self.run_on(listener, shutdown).await
    }

    /// As [`Agent::run`], on an already bound listener (tests bind port 0).
    pub async fn run_on<F>(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: F,
    ) -> Result<(), AgentError>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let scrape = self.scrape.start();
        self.spawn_group_loops();
        let housekeeping = tokio::spawn(self.clone().housekeeping_loop());
        let app = self.router()?;
        let mut stop_rx = self.stop.subscribe();
        let this = self.clone();
        let server = tokio::spawn(crate::server::serve_with(
            listener,
            app,
            self.cfg.http.clone(),
            async move {
                tokio::select! {
                    _ = shutdown => {}
                    _ = stop_rx.wait_for(|s| *s) => {}
                }
                this.request_stop();
            },
        ));
        // First scrape round, then ready: rules never see an empty store at start.
        self.scrape.scrape_all_once().await;
        self.ready.store(true, Ordering::SeqCst);
        tracing::info!(listen = %self.cfg.listen, "agent ready");

        let served = server.await;
        self.request_stop();
        let groups = std::mem::take(&mut *lock(&self.group_tasks));
        for t in groups {
            let _ = t.await;
        }
        let _ = housekeeping.await;
        let actions = std::mem::take(&mut *lock(&self.action_tasks));
        for t in actions {
            let _ = t.await;
        }
        scrape.shutdown().await;
        for p in self.providers.values() {
            p.shutdown(self.opts.stop_instances_on_exit).await;
        }
        let mut ev = AuditEvent::new(EventKind::AgentStopped);
        ev.actor = Some("agent".into());
        self.journal.record(ev, self.clock.now_ms())?;
        tracing::info!("agent stopped");
        match served {
            Ok(r) => r.map_err(AgentError::Server),
            Err(e) => Err(AgentError::Io {
                context: "HTTP server task".into(),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// Ask every loop to stop (idempotent).
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn audit_dir(&self) -> PathBuf {
        self.audit.dir().to_path_buf()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The process provider of a target, for the demo's fault injection.
    pub fn process_provider(&self, target: &str) -> Option<Arc<ProcessProvider>> {
        self.process_providers.get(target).cloned()
    }

    /// Last known state of a target (refreshed every second).
    pub fn target_state(&self, target: &str) -> Option<TargetState> {
        read(&self.target_states).get(target).cloned()
    }

    fn spawn_group_loops(self: &Arc<Self>) {
        let rules = read(&self.rules).clone();
        let mut tasks = lock(&self.group_tasks);
        for t in tasks.drain(..) {
            t.abort();
        }
        for g in &rules.groups {
            tasks.push(tokio::spawn(
                self.clone().group_loop(g.name.clone(), g.interval),
            ));
        }
    }

    async fn group_loop(self: Arc<Self>, group: String, interval: Duration) {
        let mut stop = self.stop.subscribe();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; wait for readiness (first scrape) instead.
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if self.is_ready() {
                self.evaluate_group(&group).await;
            }
        }
    }

    async fn housekeeping_loop(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut ticker = tokio::time::interval(HOUSEKEEPING_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let gc_every = (GC_EVERY.as_millis() / HOUSEKEEPING_EVERY.as_millis()).max(1) as u64;
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            n += 1;
            self.refresh_target_states().await;
            self.run_due_circuits();
            if n % gc_every == 0 {
                let now = self.clock.now_ms();
                let mut store = write(&self.store);
                store.gc(now);
                self.metrics
                    .set_store_size(store.series_count(), store.sample_count());
            }
        }
    }

    async fn refresh_target_states(&self) {
        for (name, p) in &self.providers {
            // `state()` should answer from the adapter's cache; the bound keeps
            // one stuck adapter from holding back every other target's view.
            match tokio::time::timeout(STATE_TIMEOUT, p.state()).await {
                Ok(Ok(s)) => {
                    write(&self.target_states).insert(name.clone(), s);
                }
                Ok(Err(e)) => tracing::warn!(target_name = %name, error = %e, "provider state"),
                Err(_) => {
                    tracing::warn!(target_name = %name, "provider state: no answer within {STATE_TIMEOUT:?}")
                }
            }
        }
    }

    /// Reload rule files. An invalid set is refused and the old one keeps running.
    pub async fn reload(self: &Arc<Self>, actor: &str) -> Result<String, String> {
        let now = self.clock.now_ms();
        let result = load_rules(&self.cfg, &catalog_for(&self.cfg));
        let mut ev = AuditEvent::new(EventKind::RulesReloaded);
        ev.actor = Some(actor.to_string());
        let outcome = match result {
            Ok(set) => {
                let summary = format!(
                    "{} groups, {} rules loaded",
                    set.groups.len(),
                    set.rules().count()
                );
                write(&self.store).set_retention_ms(retention_for(&set));
                lock(&self.engine).retain(&set);
                for r in self.rules_snapshot().rules() {
                    if set.rule(&r.name).is_none() {
                        self.metrics.forget_rule(&r.name);
                    }
                }
                *write(&self.rules) = Arc::new(set);
                self.spawn_group_loops();
                ev.detail = Some(serde_json::json!({ "result": "ok", "summary": summary }));
                Ok(summary)
            }
            Err(diags) => {
                let msg = join_diagnostics(&diags);
                ev.cause = Some("invalid".into());
                ev.error = Some(msg.clone());
                Err(format!(
                    "rules rejected, the previous set keeps running:\n{msg}"
                ))
            }
        };
        self.metrics.reload_finished(outcome.is_ok(), now);
        if let Err(e) = self.journal.record(ev, now) {
            tracing::error!(error = %e, "writing rules_reloaded");
        }
        match &outcome {
            Ok(s) => tracing::info!(summary = %s, "rules reloaded"),
            Err(e) => tracing::error!(error = %e, "reload refused"),
        }
        outcome
    }

    fn rules_snapshot(&self) -> Arc<RuleSet> {
        read(&self.rules).clone()
    }
}

/// Store retention for a rule set: the longest range any query reads, plus a
/// margin for the lookback and a scrape interval.
fn retention_for(set: &RuleSet) -> i64 {
    set.max_range_ms() + crate::query::LOOKBACK_MS + 60_000
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}
