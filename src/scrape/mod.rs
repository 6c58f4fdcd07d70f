//! The scraper: pulls Prometheus exposition text from targets on an interval and
//! writes the samples into the store.
//!
//! Owns: scrape jobs and their targets (static, or discovered through a
//! [`Discovery`] such as a provider's `state()`), the scrape loop (all targets of a
//! job concurrently each interval, with a timeout and a streamed body size limit),
//! target labels (`job`, `instance`, extra labels; honor_labels semantics), the
//! per-target report series (`up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`,
//! `scrape_series_added`), Prometheus staleness markers, and the per-target status
//! behind `/api/v1/targets`.
//!
//! Wiring (the agent):
//! ```text
//! let jobs = vec![
//!     JobConfig::new("checkout", TargetSource::Discovered(Arc::new(ProviderDiscovery(provider)))),
//!     JobConfig::new("edge", TargetSource::Static(vec![ScrapeTarget::new("127.0.0.1:9100")])),
//! ];                                    // then set interval/timeout/body_size_limit/labels
//! let scraper = ScrapeManager::new(store, clock, jobs)?.with_observer(metrics.clone());
//! scraper.scrape_all_once().await;      // first round before /-/ready
//! let handle = scraper.start();         // one loop per job
//! ... scraper.targets() → targets_api_json() for /api/v1/targets ...
//! handle.shutdown().await; scraper.mark_all_stale().await;
//! ```
//! Instead of `ProviderDiscovery` (which calls `state()` itself), the agent may
//! push what it already polled: `PushedTargets::set(targets_from_state(&state))`.
//!
//! Must not: parse exposition text itself (that is [`crate::exposition`]), read the
//! wall clock (time comes from [`Clock`]), or decide anything about the targets it
//! scrapes.
mod fetch;
mod file_sd;
mod target;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::clock::Clock;
use crate::locks::lock;
use crate::model::{Labels, TargetState, TimestampMs};
use crate::providers::Provider;
use crate::store::SharedStore;

pub use fetch::{ACCEPT_HEADER, USER_AGENT};
pub use file_sd::{parse_file_sd, FileSd};
pub use target::{Health, TargetStatus};

use target::TargetLoop;

/// Default body size limit: large enough for any sane exporter, small enough that a
/// runaway one cannot exhaust the agent's memory.
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// One endpoint to scrape, as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ScrapeTarget {
    /// `host:port`; becomes the `instance` label unless `labels` sets one.
    pub address: String,
    /// Extra target labels attached to every series scraped from it.
    pub labels: BTreeMap<String, String>,
}

impl ScrapeTarget {
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            labels: BTreeMap::new(),
        }
    }

    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }
}

/// Every instance of a provider target that has an address, including those taken
/// out of traffic (an open circuit must still be observed to close it again).
pub fn targets_from_state(state: &TargetState) -> Vec<ScrapeTarget> {
    state
        .instances
        .iter()
        .filter_map(|i| {
            let address = i.address.clone()?;
            Some(ScrapeTarget {
                address,
                labels: i.labels.clone(),
            })
        })
        .collect()
}

/// Why discovery could not produce a target list.
#[derive(Debug, Clone, thiserror::Error)]
#[error("discovery failed: {0}")]
pub struct DiscoveryError(pub String);

/// Source of a job's targets, asked once per scrape interval.
#[async_trait::async_trait]
pub trait Discovery: Send + Sync {
    async fn discover(&self) -> Result<Vec<ScrapeTarget>, DiscoveryError>;
}

/// Discovery from a provider: every instance its `state()` reports.
pub struct ProviderDiscovery(pub Arc<dyn Provider>);

#[async_trait::async_trait]
impl Discovery for ProviderDiscovery {
    async fn discover(&self) -> Result<Vec<ScrapeTarget>, DiscoveryError> {
        let state = self
            .0
            .state()
            .await
            .map_err(|e| DiscoveryError(e.to_string()))?;
        Ok(targets_from_state(&state))
    }
}

/// Targets pushed by someone else (the agent, after each provider poll). Cloning
/// shares the list.
#[derive(Clone, Default)]
pub struct PushedTargets(Arc<RwLock<Vec<ScrapeTarget>>>);

impl PushedTargets {
    pub fn new(initial: Vec<ScrapeTarget>) -> Self {
        Self(Arc::new(RwLock::new(initial)))
    }

    /// Replace the whole list; takes effect at the next scrape.
    pub fn set(&self, targets: Vec<ScrapeTarget>) {
        match self.0.write() {
            Ok(mut g) => *g = targets,
            Err(poisoned) => *poisoned.into_inner() = targets,
        }
    }

    pub fn get(&self) -> Vec<ScrapeTarget> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[async_trait::async_trait]
impl Discovery for PushedTargets {
    async fn discover(&self) -> Result<Vec<ScrapeTarget>, DiscoveryError> {
        Ok(self.get())
    }
}

/// Where a job's targets come from.
#[derive(Clone)]
pub enum TargetSource {
    Static(Vec<ScrapeTarget>),
    Discovered(Arc<dyn Discovery>),
}

impl std::fmt::Debug for TargetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetSource::Static(t) => f.debug_tuple("Static").field(t).finish(),
            TargetSource::Discovered(_) => f.write_str("Discovered(..)"),
        }
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One scrape job.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Becomes the `job` label.
    pub name: String,
    /// Path of the metrics endpoint (default `/metrics`).
    pub metrics_path: String,
    pub scheme: Scheme,
    pub targets: TargetSource,
    pub interval: Duration,
    /// Must not exceed `interval`.
    pub timeout: Duration,
    /// Maximum uncompressed body size in bytes; 0 means unlimited.
    pub body_size_limit: u64,
    /// Labels added to every target of the job; a target's own labels win.
    pub labels: BTreeMap<String, String>,
}

impl JobConfig {
    /// A job with Prometheus's usual defaults (10s interval, 5s timeout, `/metrics`).
    pub fn new(name: impl Into<String>, targets: TargetSource) -> Self {
        Self {
            name: name.into(),
            metrics_path: "/metrics".into(),
            scheme: Scheme::Http,
            targets,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            body_size_limit: DEFAULT_BODY_SIZE_LIMIT,
            labels: BTreeMap::new(),
        }
    }
}

/// Scraper errors: invalid configuration and per-scrape failures.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("scrape job {job:?}: {message}")]
    Config { job: String, message: String },
    #[error("building HTTP client: {0}")]
    Client(String),
    #[error("{0}")]
    Http(String),
    #[error("server returned HTTP status {0}")]
    Status(String),
    #[error("body size limit exceeded ({limit} bytes)")]
    BodyTooLarge { limit: u64 },
    #[error("context deadline exceeded (timeout {0:?})")]
    Timeout(Duration),
    #[error("parse error: {0}")]
    Parse(#[from] crate::exposition::ParseError),
}

/// Receives one call per scrape, for the agent's self-metrics.
pub trait ScrapeObserver: Send + Sync {
    /// A scrape finished (`up` false when it failed).
    fn scrape_finished(
        &self,
        job: &str,
        instance: &str,
        duration_seconds: f64,
        samples: u64,
        up: bool,
    );
    /// A target left discovery; forget anything kept per instance.
    fn target_removed(&self, job: &str, instance: &str);
}

struct Job {
    cfg: JobConfig,
    /// Serialises ticks of one job (the loop and a manual `scrape_once` never overlap).
    tick: tokio::sync::Mutex<()>,
    /// Targets by their full label set (job, instance, extra labels).
    targets: Mutex<BTreeMap<Labels, TargetLoop>>,
}

struct Inner {
    store: SharedStore,
    clock: Clock,
    client: reqwest::Client,
    jobs: Vec<Job>,
    observer: Option<Arc<dyn ScrapeObserver>>,
}

/// Runs all scrape jobs. Cheap to clone (shared).
#[derive(Clone)]
pub struct ScrapeManager {
    inner: Arc<Inner>,
}

/// Stops the job loops started by [`ScrapeManager::start`].
pub struct ScrapeHandle {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ScrapeHandle {
    /// Stop every loop and wait for in-flight scrapes to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

impl ScrapeManager {
    /// Validate the jobs and build the HTTP client. The process must have installed
    /// a rustls crypto provider first.
    pub fn new(
        store: SharedStore,
        clock: Clock,
        jobs: Vec<JobConfig>,
    ) -> Result<Self, ScrapeError> {
        let mut seen = std::collections::HashSet::new();
        for j in &jobs {
            let err = |message: &str| ScrapeError::Config {
                job: j.name.clone(),
                message: message.to_string(),
            };
            if j.name.is_empty() {
                return Err(err("job name must not be empty"));
            }
            if !seen.insert(j.name.clone()) {
                return Err(err("duplicate job name"));
            }
            if !j.metrics_path.starts_with('/') {
                return Err(err("metrics_path must start with '/'"));
            }
            if j.interval.is_zero() {
                return Err(err("interval must be greater than zero"));
            }
            if j.timeout.is_zero() || j.timeout > j.interval {
                return Err(err(
                    "timeout must be greater than zero and not exceed the interval",
                ));
            }
        }
        let client = reqwest::Client::builder()
            .gzip(true)
            // Scrapes go straight to the target, as Prometheus does without proxy_url.
            .no_proxy()
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ScrapeError::Client(e.to_string()))?;
        let jobs = jobs
            .into_iter()
            .map(|cfg| Job {
                cfg,
                tick: tokio::sync::Mutex::new(()),
                targets: Mutex::new(BTreeMap::new()),
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                client,
                jobs,
                observer: None,
            }),
        })
    }

    /// Attach a self-metrics observer. Call before [`start`](Self::start) or any scrape.
    pub fn with_observer(mut self, observer: Arc<dyn ScrapeObserver>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.observer = Some(observer),
            None => {
                tracing::warn!("scrape observer attached after the manager was shared; ignored")
            }
        }
        self
    }

    /// Spawn one loop per job: a scrape of all its targets right away, then every
    /// interval (tokio timers, so paused-time tests drive it).
    pub fn start(&self) -> ScrapeHandle {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let tasks = (0..self.inner.jobs.len())
            .map(|idx| {
                let inner = self.inner.clone();
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let interval = inner.jobs[idx].cfg.interval;
                    let mut ticker = tokio::time::interval(interval);
                    // A slow tick must not be followed by a burst of catch-up scrapes.
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = ticker.tick() => inner.run_job(idx).await,
                            _ = rx.changed() => break,
                        }
                    }
                })
            })
            .collect();
        ScrapeHandle { stop, tasks }
    }

    /// Run one tick of one job now (discovery, scrapes, store writes). For tests and
    /// for a first scrape before the rule engine starts.
    pub async fn scrape_once(&self, job: &str) -> Result<(), ScrapeError> {
        let idx = self
            .inner
            .jobs
            .iter()
            .position(|j| j.cfg.name == job)
            .ok_or_else(|| ScrapeError::Config {
                job: job.to_string(),
                message: "no such job".into(),
            })?;
        self.inner.run_job(idx).await;
        Ok(())
    }

    /// One tick of every job, concurrently.
    pub async fn scrape_all_once(&self) {
        let mut set = tokio::task::JoinSet::new();
        for idx in 0..self.inner.jobs.len() {
            let inner = self.inner.clone();
            set.spawn(async move { inner.run_job(idx).await });
        }
        while set.join_next().await.is_some() {}
    }

    /// Status of every known target, jobs in configuration order.
    pub fn targets(&self) -> Vec<TargetStatus> {
        self.inner
            .jobs
            .iter()
            .flat_map(|j| {
                lock(&j.targets)
                    .values()
                    .map(|t| t.status.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Stale markers for every series of every target, and forget the targets
    /// (agent shutdown: queries stop seeing the values at once instead of after the
    /// 5m lookback). Waits for a running tick; call after [`ScrapeHandle::shutdown`],
    /// or the next tick rediscovers the targets.
    pub async fn mark_all_stale(&self) {
        for job in &self.inner.jobs {
            let _tick = job.tick.lock().await;
            let now = self.inner.clock.now_ms();
            let mut targets = lock(&job.targets);
            let mut store = self.inner.store.write().unwrap_or_else(|p| p.into_inner());
            for t in targets.values_mut() {
                t.remove(&mut store, now);
            }
            targets.clear();
        }
    }
}

/// `data` of Prometheus's `/api/v1/targets` response for these statuses.
pub fn targets_api_json(targets: &[TargetStatus]) -> serde_json::Value {
    let active: Vec<serde_json::Value> = targets.iter().map(TargetStatus::api_json).collect();
    serde_json::json!({ "activeTargets": active, "droppedTargets": [] })
}

impl Inner {
    async fn run_job(&self, idx: usize) {
        let job = &self.jobs[idx];
        let _tick = job.tick.lock().await;
        let cfg = &job.cfg;

        let discovered = match &cfg.targets {
            TargetSource::Static(t) => Some(t.clone()),
            TargetSource::Discovered(d) => {
                match tokio::time::timeout(cfg.timeout, d.discover()).await {
                    Ok(Ok(t)) => Some(t),
                    Ok(Err(e)) => {
                        tracing::warn!(job = %cfg.name, error = %e, "target discovery failed; keeping the previous targets");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(job = %cfg.name, "target discovery timed out; keeping the previous targets");
                        None
                    }
                }
            }
        };

        let now = self.clock.now_ms();
        let to_scrape: Vec<(Labels, String)> = {
            let mut targets = lock(&job.targets);
            if let Some(list) = discovered {
                self.reconcile(cfg, &mut targets, list, now);
            }
            targets
                .iter()
                .map(|(k, t)| (k.clone(), t.url.clone()))
                .collect()
        };

        let mut set = tokio::task::JoinSet::new();
        for (key, url) in to_scrape {
            let client = self.client.clone();
            let clock = self.clock;
            let (timeout, limit) = (cfg.timeout, cfg.body_size_limit);
            set.spawn(async move {
                let start = clock.now_ms();
                let result = match tokio::time::timeout(
                    timeout,
                    fetch::fetch(&client, &url, timeout, limit),
                )
                .await
                {
                    Ok(Ok((body, content_type))) => {
                        let format =
                            crate::exposition::Format::from_content_type(content_type.as_deref());
                        crate::exposition::parse(&body, format).map_err(ScrapeError::from)
                    }
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(ScrapeError::Timeout(timeout)),
                };
                let end = clock.now_ms();
                (key, start, end, result)
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((key, start, end, result)) = joined else {
                continue; // a panicking scrape task only loses its own scrape
            };
            let duration_s = (end - start).max(0) as f64 / 1000.0;
            let mut targets = lock(&job.targets);
            // The target may have been removed by a concurrent reconcile; drop the result.
            let Some(t) = targets.get_mut(&key) else {
                continue;
            };
            let (up, samples) = {
                let mut store = self.store.write().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(samples) => {
                        let n = samples.len() as u64;
                        t.apply_success(&mut store, samples, start, duration_s);
                        (true, n)
                    }
                    Err(e) => {
                        tracing::debug!(job = %cfg.name, instance = %t.status.instance, error = %e, "scrape failed");
                        t.apply_failure(&mut store, &e.to_string(), start, duration_s);
                        (false, 0)
                    }
                }
            };
            if let Some(obs) = &self.observer {
                obs.scrape_finished(&cfg.name, &t.status.instance, duration_s, samples, up);
            }
        }
    }

    /// Bring the job's target set in line with discovery: new targets start with
    /// unknown health; vanished ones get stale markers on all their series.
    fn reconcile(
        &self,
        cfg: &JobConfig,
        targets: &mut BTreeMap<Labels, TargetLoop>,
        list: Vec<ScrapeTarget>,
        now: TimestampMs,
    ) {
        let mut wanted: HashMap<Labels, ScrapeTarget> = HashMap::new();
        for t in list {
            let labels = target::target_labels(cfg, &t);
            wanted.entry(labels).or_insert(t);
        }
        let gone: Vec<Labels> = targets
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let mut store = self.store.write().unwrap_or_else(|p| p.into_inner());
            for k in gone {
                if let Some(mut t) = targets.remove(&k) {
                    t.remove(&mut store, now);
                    if let Some(obs) = &self.observer {
                        obs.target_removed(&cfg.name, &t.status.instance);
                    }
                }
            }
        }
        for (labels, t) in wanted {
            targets
                .entry(labels.clone())
                .or_insert_with(|| TargetLoop::new(cfg, &t, labels));
        }
    }
}

#[cfg(test)]
mod tests;
