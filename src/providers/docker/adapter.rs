//! The docker adapter proper: [`DockerProvider`] implements [`Provider`] for
//! one target (the containers labelled `homeostat.target=<target>`).
//!
//! Owns carrying out scale, failover, redeploy and rollback on the target's
//! containers, the background poller that keeps [`Provider::state`] cheap,
//! adoption and crash recovery at start. Must not decide when to act (the
//! agent decides), and the poller never creates or removes anything.
use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use tokio::task::JoinHandle;

use super::client::{
    self, Engine, Health, Observed, Status, LABEL_ACTION, LABEL_PREVIOUS_IMAGE, LABEL_REPLACES,
};
use super::config::DockerConfig;
use super::spec::{self, Change, ReplicaSpec};
use super::state::{PersistedState, Replaced, Rollout};
use super::{KINDS, PROVIDER};
use crate::locks::lock;
use crate::model::{
    ActionKind, ActionOutcome, ActionRequest, InstanceInfo, ProviderError, ProviderOp,
    Reconciliation, TargetState,
};
use crate::providers::{health, Provider, ProviderContext};

const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SETTLE_TIME: Duration = Duration::from_secs(2);
/// Bound of one HTTP health probe (`health`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between inspections while waiting for a new container.
const STARTUP_POLL: Duration = Duration::from_millis(250);
/// Attempts to create and start a replica (name taken, host port taken).
const CREATE_ATTEMPTS: usize = 8;

fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::failed(PROVIDER, message)
}

fn rejected(message: impl Into<String>) -> ProviderError {
    ProviderError::rejected(PROVIDER, message)
}

fn not_found(message: impl Into<String>) -> ProviderError {
    ProviderError::not_found(PROVIDER, message)
}

/// The engine could not be reached at all (as opposed to refusing one request).
fn engine_unreachable(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Unavailable { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::PermissionDenied { .. }
    )
}

#[derive(Default)]
struct Cache {
    containers: Vec<Observed>,
    last_ok: Option<tokio::time::Instant>,
    last_error: Option<ProviderError>,
}

/// One container with its inspect document (the spec of a new replica comes from it).
#[derive(Clone)]
struct Seen {
    obs: Observed,
    raw: ContainerInspectResponse,
}

/// A `provider: docker` target. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct DockerProvider {
    inner: Arc<Inner>,
}

struct Inner {
    target: String,
    port: u16,
    host_ports: Option<RangeInclusive<u16>>,
    health_path: Option<String>,
    prefix: String,
    state_path: PathBuf,
    engine: Engine,
    startup_timeout: Duration,
    stop_timeout: Duration,
    settle_time: Duration,
    poll_interval: Duration,
    api_timeout: Duration,
    /// Serialises operations (start, execute, reconcile, shutdown).
    op_lock: tokio::sync::Mutex<()>,
    /// Loaded by `start()`; short critical sections only.
    st: Mutex<Option<PersistedState>>,
    /// Crash recovery ran against the engine (it needs the engine up).
    recovered: std::sync::atomic::AtomicBool,
    cache: Mutex<Cache>,
    /// Results of the `health` HTTP probe, by container id.
    probes: Mutex<HashMap<String, bool>>,
    poller: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = lock(&self.poller).take() {
            h.abort();
        }
    }
}

/// How a redeploy computes each new container's spec from the old one's.
enum Rolling {
    Change(Change),
    To(Box<ReplicaSpec>),
}

impl DockerProvider {
    /// A provider for `target`, keeping its state file under
    /// `<data_dir>/targets/<target>/`. Nothing is contacted until [`Provider::start`].
    pub fn new(
        target: &str,
        cfg: &DockerConfig,
        ctx: &ProviderContext,
    ) -> Result<Self, ProviderError> {
        if target.is_empty() || target.contains(['/', '\\']) || target.starts_with('.') {
            return Err(rejected(format!("invalid target name {target:?}")));
        }
        if cfg.port == 0 {
            return Err(rejected("docker.port: must be 1..=65535"));
        }
        let host_ports = cfg
            .host_ports
            .as_deref()
            .map(crate::spec::parse_port_range)
            .transpose()
            .map_err(|e| rejected(format!("docker.host_ports: {e}")))?;
        let dir = std::path::absolute(ctx.data_dir.join("targets").join(target))
            .map_err(|e| failed(format!("resolving data_dir: {e}")))?;
        let stop_timeout = cfg.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT);
        let api_timeout = cfg.api_timeout.unwrap_or(DEFAULT_API_TIMEOUT);
        Ok(Self {
            inner: Arc::new(Inner {
                target: target.to_string(),
                port: cfg.port,
                host_ports,
                health_path: cfg.health.clone(),
                prefix: spec::name_prefix(target),
                state_path: dir.join("docker.json"),
                engine: Engine::new(cfg.socket_path(), api_timeout, stop_timeout),
                startup_timeout: cfg.startup_timeout.unwrap_or(DEFAULT_STARTUP_TIMEOUT),
                stop_timeout,
                settle_time: cfg.settle_time.unwrap_or(DEFAULT_SETTLE_TIME),
                poll_interval: cfg.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
                api_timeout,
                op_lock: tokio::sync::Mutex::new(()),
                st: Mutex::new(None),
                recovered: std::sync::atomic::AtomicBool::new(false),
                cache: Mutex::new(Cache::default()),
                probes: Mutex::new(HashMap::new()),
                poller: Mutex::new(None),
            }),
        })
    }

    /// The state file (`<data_dir>/targets/<target>/docker.json`).
    pub fn state_file(&self) -> &std::path::Path {
        &self.inner.state_path
    }

    fn start_poller(&self) {
        let mut slot = lock(&self.inner.poller);
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        // A weak handle: dropping the provider ends the poller.
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let interval = self.inner.poll_interval;
        *slot = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.refresh().await {
                    tracing::debug!(target = %inner.target, error = %e, "docker poll failed");
                }
            }
        }));
    }
}

impl Inner {
    // ----- persisted state ---------------------------------------------------

    fn with_state<R>(&self, f: impl FnOnce(&mut PersistedState) -> R) -> Result<R, ProviderError> {
        let mut guard = lock(&self.st);
        let st = guard
            .as_mut()
            .ok_or_else(|| failed("provider not started"))?;
        Ok(f(st))
    }

    fn snapshot(&self) -> Result<PersistedState, ProviderError> {
        self.with_state(|st| st.clone())
    }

    fn load(&self) -> Result<(), ProviderError> {
        if lock(&self.st).is_some() {
            return Ok(());
        }
        let st = PersistedState::load(&self.state_path).map_err(failed)?;
        *lock(&self.st) = Some(st);
        Ok(())
    }

    async fn save(&self) -> Result<(), ProviderError> {
        let bytes = self
            .with_state(|st| serde_json::to_vec_pretty(st))?
            .map_err(|e| failed(format!("encode state: {e}")))?;
        let path = self.state_path.clone();
        tokio::task::spawn_blocking(move || {
            crate::providers::process::client::write_atomic(&path, &bytes)
                .map_err(|e| failed(format!("write {}: {e}", path.display())))
        })
        .await
        .map_err(|e| failed(format!("state writer: {e}")))?
    }

    // ----- observing -------------------------------------------------------------

    /// Every container of the target, inspected (gone-in-between ones skipped).
    async fn observe_all(&self) -> Result<Vec<Seen>, ProviderError> {
        let ids = self.engine.list_target(&self.target).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(raw) = self.engine.inspect_opt(&id).await? else {
                continue;
            };
            // The label is how the engine found it; check the document agrees.
            let Some(obs) = client::observe(&raw, self.port) else {
                continue;
            };
            if obs.label(client::LABEL_TARGET) != Some(self.target.as_str()) {
                continue;
            }
            out.push(Seen { obs, raw });
        }
        out.sort_by(|a, b| {
            (a.obs.created.as_str(), a.obs.name.as_str())
                .cmp(&(b.obs.created.as_str(), b.obs.name.as_str()))
        });
        Ok(out)
    }

    /// Observe the engine and update the cache `state()` answers from.
    async fn refresh(&self) -> Result<Vec<Seen>, ProviderError> {
        match self.observe_all().await {
            Ok(seen) => {
                if let Some(path) = &self.health_path {
                    let mut results = HashMap::new();
                    for s in &seen {
                        let o = &s.obs;
                        if o.status == Status::Running && o.health == Health::None {
                            if let Some(p) = o.host_port {
                                let ok = health::probe(
                                    spec::HOST_IP,
                                    p,
                                    path,
                                    PROBE_TIMEOUT.min(self.api_timeout),
                                )
                                .await;
                                results.insert(o.id.clone(), ok);
                            }
                        }
                    }
                    *lock(&self.probes) = results;
                }
                let mut cache = lock(&self.cache);
                cache.containers = seen.iter().map(|s| s.obs.clone()).collect();
                cache.last_ok = Some(crate::clock::monotonic_now());
                cache.last_error = None;
                Ok(seen)
            }
            Err(e) => {
                lock(&self.cache).last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn retiring(&self) -> Vec<String> {
        lock(&self.st)
            .as_ref()
            .map(|s| s.retiring.clone())
            .unwrap_or_default()
    }

    /// The target's replicas: not being retired, not on their way out.
    fn live<'a>(&self, seen: &'a [Seen]) -> Vec<&'a Seen> {
        let retiring = self.retiring();
        seen.iter()
            .filter(|s| !retiring.contains(&s.obs.id))
            .filter(|s| !matches!(s.obs.status, Status::Removing | Status::Dead))
            .collect()
    }

    fn is_healthy(&self, o: &Observed) -> bool {
        if o.status != Status::Running {
            return false;
        }
        match o.health {
            Health::Healthy => true,
            Health::Starting | Health::Unhealthy => false,
            Health::None => match &self.health_path {
                Some(_) => lock(&self.probes).get(&o.id).copied().unwrap_or(false),
                None => true,
            },
        }
    }

    fn instance_info(&self, o: &Observed) -> InstanceInfo {
        InstanceInfo {
            id: o.name.clone(),
            address: o.host_port.map(|p| format!("{}:{p}", spec::HOST_IP)),
            healthy: self.is_healthy(o),
            // Docker has no traffic control: nothing takes a container out.
            in_traffic: true,
            version: Some(o.image.clone()).filter(|i| !i.is_empty()),
            labels: BTreeMap::new(),
        }
    }

    fn target_state_of(&self, containers: &[Observed]) -> TargetState {
        let retiring = self.retiring();
        let live: Vec<&Observed> = containers
            .iter()
            .filter(|o| !retiring.contains(&o.id))
            .filter(|o| !matches!(o.status, Status::Removing | Status::Dead))
            .collect();
        TargetState {
            replicas: live.len() as u32,
            instances: live.iter().map(|o| self.instance_info(o)).collect(),
            version: live.last().map(|o| o.image.clone()),
        }
    }

    /// What the audit log's `before`/`after` show (no environment: it may hold secrets).
    fn summary(&self, seen: &[Seen]) -> serde_json::Value {
        let live = self.live(seen);
        serde_json::json!({
            "replicas": live.len(),
            "version": live.last().map(|s| s.obs.image.clone()),
            "instances": live.iter().map(|s| {
                let o = &s.obs;
                serde_json::json!({
                    "id": o.name,
                    "container": client::short(&o.id),
                    "image": o.image,
                    "status": o.status.as_str(),
                    "health": o.health.as_str(),
                    "address": o.host_port.map(|p| format!("{}:{p}", spec::HOST_IP)),
                })
            }).collect::<Vec<_>>(),
        })
    }

    // ----- building blocks of operations -------------------------------------------

    /// The spec of new replicas like `c`. The image reference is kept if it
    /// still names the image `c` runs; otherwise the image id is used.
    async fn spec_of(&self, c: &ContainerInspectResponse) -> Result<ReplicaSpec, ProviderError> {
        let image_id = c.image.clone().unwrap_or_default();
        let reference = c
            .config
            .as_ref()
            .and_then(|x| x.image.clone())
            .unwrap_or_default();
        let image = match self.engine.inspect_image(&image_id).await {
            Ok(i) => Some(i),
            Err(ProviderError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let use_ref = if reference.is_empty() || reference == image_id {
            false
        } else {
            match self.engine.inspect_image(&reference).await {
                Ok(i) => i.id.as_deref() == Some(image_id.as_str()),
                Err(ProviderError::NotFound { .. }) => false,
                Err(e) => return Err(e),
            }
        };
        let image_ref = if use_ref { &reference } else { &image_id };
        Ok(ReplicaSpec::from_container(
            c,
            image.as_ref(),
            image_ref,
            self.port,
        ))
    }

    /// Remember the newest replica's spec as the template (for scaling up from zero).
    async fn remember_template(&self, seen: &[Seen]) -> Result<(), ProviderError> {
        let Some(newest) = self.live(seen).last().map(|s| s.raw.clone()) else {
            return Ok(());
        };
        let spec = self.spec_of(&newest).await?;
        let changed = self.with_state(|st| {
            let changed = st.template.as_ref() != Some(&spec);
            st.template = Some(spec);
            changed
        })?;
        if changed {
            self.save().await?;
        }
        Ok(())
    }

    /// A host port for a new replica: `prefer` if usable, else the lowest free
    /// port of the range not held by another container of the target. `None`:
    /// no range is configured, the engine picks.
    fn pick_port(
        &self,
        seen: &[Seen],
        prefer: Option<u16>,
        tried: &[u16],
    ) -> Result<Option<u16>, ProviderError> {
        let held: Vec<u16> = seen.iter().filter_map(|s| s.obs.host_port).collect();
        let bindable =
            |p: u16| !tried.contains(&p) && crate::providers::process::client::port_is_free(p);
        if let Some(p) = prefer.filter(|p| bindable(*p)) {
            // The replaced container is not running: its port is ours to take.
            if self.host_ports.as_ref().is_none_or(|r| r.contains(&p)) {
                return Ok(Some(p));
            }
        }
        let Some(range) = &self.host_ports else {
            return Ok(None);
        };
        range
            .clone()
            .find(|p| !held.contains(p) && bindable(*p))
            .map(Some)
            .ok_or_else(|| {
                failed(format!(
                    "no free host port in {}-{} for a new container",
                    range.start(),
                    range.end()
                ))
            })
    }

    async fn next_name(&self, seen: &[Seen]) -> Result<String, ProviderError> {
        let highest = seen
            .iter()
            .filter_map(|s| spec::name_index(&self.prefix, &s.obs.name))
            .max()
            .unwrap_or(0);
        let n = self.with_state(|st| {
            let n = st.next_index.max(highest + 1);
            st.next_index = n + 1;
            n
        })?;
        Ok(format!("{}-{n}", self.prefix))
    }

    /// Create and start a replica from `spec`. Name and host port are picked
    /// here (a name taken or a host port taken is retried with the next one);
    /// a container that cannot be started is removed again.
    async fn create_replica(
        &self,
        seen: &[Seen],
        spec: &ReplicaSpec,
        labels: &BTreeMap<String, String>,
        prefer_port: Option<u16>,
        name: Option<&str>,
    ) -> Result<(String, String), ProviderError> {
        let mut tried: Vec<u16> = Vec::new();
        let mut last_err = None;
        for attempt in 0..CREATE_ATTEMPTS {
            let host_port = self.pick_port(seen, prefer_port, &tried)?;
            let name = match name.filter(|_| attempt == 0) {
                Some(n) => n.to_string(),
                None => self.next_name(seen).await?,
            };
            self.save().await?;
            let body = spec.create_body(self.port, host_port, labels);
            let id = match self.engine.create(&name, body).await {
                Ok(id) => id,
                // The name is taken (another container, or a leftover): next one.
                Err(e @ ProviderError::Conflict { .. }) => {
                    tracing::info!(target = %self.target, name = %name, error = %e, "container name taken; trying another");
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for net in &spec.extra_networks {
                if let Err(e) = self
                    .engine
                    .connect_network(&net.name, &id, &net.aliases)
                    .await
                {
                    self.remove_quietly(&id).await;
                    return Err(e);
                }
            }
            match self.engine.start(&id).await {
                Ok(()) => {
                    tracing::info!(target = %self.target, container = %name, image = %spec.image, host_port = ?host_port, "container started");
                    return Ok((id, name));
                }
                Err(e) if client::is_port_conflict(&e) => {
                    tracing::info!(target = %self.target, host_port = ?host_port, "host port taken; trying another");
                    self.remove_quietly(&id).await;
                    match host_port {
                        Some(p) => tried.push(p),
                        None => return Err(e),
                    }
                    last_err = Some(e);
                }
                Err(e) => {
                    self.remove_quietly(&id).await;
                    return Err(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| failed("could not create a container")))
    }

    async fn remove_quietly(&self, id: &str) {
        if let Err(e) = self.engine.remove(id).await {
            tracing::warn!(target = %self.target, container = %client::short(id), error = %e, "could not remove a failed container");
        }
    }

    /// Wait until each of `ids` is healthy: Docker's health check says
    /// healthy, or (without one) it kept running for `settle_time` and passes
    /// `health` if set. Returns the ones that did not, with why; an engine
    /// that stops answering is an error (no verdict on the containers).
    async fn wait_healthy(&self, ids: &[String]) -> Result<Vec<(String, String)>, ProviderError> {
        let deadline = crate::clock::monotonic_now() + self.startup_timeout;
        let mut pending: Vec<String> = ids.to_vec();
        let mut running_since: HashMap<String, tokio::time::Instant> = HashMap::new();
        let mut failures = Vec::new();
        let mut last_condition: HashMap<String, String> = HashMap::new();
        let mut engine_errors = 0;
        loop {
            let now = crate::clock::monotonic_now();
            let mut still = Vec::new();
            for id in pending {
                let obs = match self.engine.inspect_opt(&id).await {
                    Ok(Some(raw)) => {
                        engine_errors = 0;
                        client::observe(&raw, self.port)
                    }
                    Ok(None) => {
                        failures.push((id, "the container disappeared".to_string()));
                        continue;
                    }
                    Err(e) if engine_unreachable(&e) => {
                        engine_errors += 1;
                        if engine_errors >= 3 {
                            return Err(e);
                        }
                        still.push(id);
                        continue;
                    }
                    Err(e) => {
                        last_condition.insert(id.clone(), format!("inspect failed: {e}"));
                        still.push(id);
                        continue;
                    }
                };
                let Some(o) = obs else {
                    failures.push((id, "malformed inspect reply".to_string()));
                    continue;
                };
                last_condition.insert(id.clone(), o.condition());
                match (o.status, o.health) {
                    (Status::Exited | Status::Dead, _) => {
                        failures.push((id, format!("it stopped: {}", o.condition())));
                    }
                    (Status::Running, Health::Healthy) => {}
                    (Status::Running, Health::Unhealthy) => {
                        failures.push((id, format!("Docker reports it {}", o.condition())));
                    }
                    (Status::Running, Health::None) => {
                        let since = *running_since.entry(id.clone()).or_insert(now);
                        let settled = now.saturating_duration_since(since) >= self.settle_time;
                        let probed = match (&self.health_path, o.host_port) {
                            (Some(path), Some(p)) => {
                                health::probe(spec::HOST_IP, p, path, PROBE_TIMEOUT).await
                            }
                            (Some(_), None) => false,
                            (None, _) => true,
                        };
                        if !(settled && probed) {
                            still.push(id);
                        }
                    }
                    _ => {
                        running_since.remove(&id);
                        still.push(id);
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(failures);
            }
            if crate::clock::monotonic_now() >= deadline {
                for id in pending {
                    let cond = last_condition.remove(&id).unwrap_or_default();
                    failures.push((
                        id,
                        format!(
                            "not healthy within {} ({cond})",
                            crate::spec::format_duration(self.startup_timeout)
                        ),
                    ));
                }
                return Ok(failures);
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
    }

    /// Stop (gracefully) and remove containers, recorded as retiring first so
    /// that a crash midway still ends with them gone.
    async fn retire(self: &Arc<Self>, ids: &[String]) -> Result<(), ProviderError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.with_state(|st| {
            for id in ids {
                if !st.retiring.contains(id) {
                    st.retiring.push(id.clone());
                }
            }
        })?;
        self.save().await?;
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            let me = self.clone();
            let id = id.clone();
            set.spawn(async move {
                let r = me.engine.stop_and_remove(&id).await;
                (id, r)
            });
        }
        let mut first_err = None;
        let mut done = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((id, Ok(()))) => {
                    tracing::info!(target = %self.target, container = %client::short(&id), "container stopped and removed");
                    done.push(id);
                }
                Ok((id, Err(e))) => {
                    tracing::warn!(target = %self.target, container = %client::short(&id), error = %e, "removing container");
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(failed(format!("removal task: {e}")));
                }
            }
        }
        self.with_state(|st| st.retiring.retain(|id| !done.contains(id)))?;
        self.save().await?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Finish what a crash (or a cancelled attempt) left: containers being
    /// retired are removed, containers an action created but never started are
    /// removed. Then remember the newest replica as the template.
    async fn recover(self: &Arc<Self>) -> Result<(), ProviderError> {
        let seen = self.observe_all().await?;
        let retiring = self.retiring();
        if !retiring.is_empty() {
            tracing::info!(target = %self.target, count = retiring.len(), "finishing the removal of containers a previous run was retiring");
            let exists: Vec<String> = retiring
                .iter()
                .filter(|id| seen.iter().any(|s| &s.obs.id == *id))
                .cloned()
                .collect();
            self.retire(&exists).await?;
            self.with_state(|st| st.retiring.clear())?;
            self.save().await?;
        }
        for s in &seen {
            if s.obs.status == Status::Created && s.obs.action().is_some() {
                tracing::warn!(target = %self.target, container = %s.obs.name, "removing a container an interrupted action created but never started");
                self.engine.remove(&s.obs.id).await?;
            }
        }
        let seen = self.refresh().await?;
        self.remember_template(&seen).await?;
        self.recovered
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn ensure_recovered(self: &Arc<Self>) -> Result<(), ProviderError> {
        if self.recovered.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.recover().await
    }

    /// The container an op's `instance` names: its name, its id (or a unique
    /// id prefix), or its address `127.0.0.1:<host port>`.
    fn resolve<'a>(&self, live: &[&'a Seen], instance: &str) -> Result<&'a Seen, ProviderError> {
        let wanted = instance.trim().trim_start_matches('/');
        if wanted.is_empty() {
            return Err(rejected("instance: empty"));
        }
        if let Some(s) = live.iter().find(|s| s.obs.name == wanted) {
            return Ok(s);
        }
        if let Some((_, port)) = wanted.rsplit_once(':') {
            if let Ok(p) = port.parse::<u16>() {
                return live
                    .iter()
                    .find(|s| s.obs.host_port == Some(p))
                    .copied()
                    .ok_or_else(|| {
                        not_found(format!(
                            "no container of target {} is published on port {p}",
                            self.target
                        ))
                    });
            }
        }
        if wanted.len() >= 4 && wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<&&Seen> = live
                .iter()
                .filter(|s| s.obs.id.starts_with(wanted))
                .collect();
            match matches.len() {
                1 => return Ok(matches[0]),
                n if n > 1 => {
                    return Err(rejected(format!(
                        "instance {wanted:?} matches {n} containers; give more of the id"
                    )))
                }
                _ => {}
            }
        }
        Err(not_found(format!(
            "no container of target {} named {wanted:?}",
            self.target
        )))
    }

    fn labels_for(&self, action_id: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        l.insert(client::LABEL_TARGET.to_string(), self.target.clone());
        l.insert(LABEL_ACTION.to_string(), action_id.to_string());
        for (k, v) in extra {
            l.insert(k.to_string(), v.to_string());
        }
        l
    }

    // ----- operations ----------------------------------------------------------------

    async fn set_replicas(
        self: &Arc<Self>,
        action_id: &str,
        to: u32,
        seen: &[Seen],
    ) -> Result<(), ProviderError> {
        if let Some(r) = &self.host_ports {
            let capacity = r.clone().count();
            if to as usize > capacity {
                return Err(rejected(format!(
                    "{to} replicas do not fit host_ports {}-{} ({capacity} ports)",
                    r.start(),
                    r.end()
                )));
            }
        }
        let live = self.live(seen);
        let have = live.len();
        let to = to as usize;
        if to > have {
            let template = match live.last() {
                Some(newest) => self.spec_of(&newest.raw).await?,
                None => self.snapshot()?.template.ok_or_else(|| {
                    rejected(format!(
                        "target {} has no container to copy and none was seen before: \
                         start one labelled {}={}",
                        self.target,
                        client::LABEL_TARGET,
                        self.target
                    ))
                })?,
            };
            let labels = self.labels_for(action_id, &[]);
            let mut created = Vec::new();
            // Containers created in this loop hold host ports the engine has
            // not reported yet: pick ports against an updated view.
            let mut view: Vec<Seen> = seen.to_vec();
            for _ in have..to {
                let (id, name) = self
                    .create_replica(&view, &template, &labels, None, None)
                    .await?;
                if let Some(raw) = self.engine.inspect_opt(&id).await? {
                    if let Some(obs) = client::observe(&raw, self.port) {
                        view.push(Seen { obs, raw });
                    }
                }
                created.push((id, name));
            }
            let ids: Vec<String> = created.iter().map(|(id, _)| id.clone()).collect();
            let failures = self.wait_healthy(&ids).await?;
            if !failures.is_empty() {
                let bad: Vec<String> = failures.iter().map(|(id, _)| id.clone()).collect();
                for id in &bad {
                    self.remove_quietly(id).await;
                }
                let why: Vec<String> = failures
                    .iter()
                    .map(|(id, why)| {
                        let name = created
                            .iter()
                            .find(|(i, _)| i == id)
                            .map_or(id.as_str(), |(_, n)| n.as_str());
                        format!("{name}: {why}")
                    })
                    .collect();
                return Err(failed(format!(
                    "{} of {} new containers did not become healthy and were removed: {}",
                    bad.len(),
                    ids.len(),
                    why.join("; ")
                )));
            }
        } else if to < have {
            // Broken ones first (they serve nothing), then the newest.
            let mut victims: Vec<&Seen> = live.clone();
            victims.sort_by(|a, b| {
                let ha = self.is_healthy(&a.obs);
                let hb = self.is_healthy(&b.obs);
                ha.cmp(&hb)
                    .then_with(|| b.obs.created.cmp(&a.obs.created))
                    .then_with(|| b.obs.name.cmp(&a.obs.name))
            });
            victims.truncate(have - to);
            let ids: Vec<String> = victims.iter().map(|s| s.obs.id.clone()).collect();
            self.retire(&ids).await?;
        }
        Ok(())
    }

    async fn replace(
        self: &Arc<Self>,
        action_id: &str,
        instance: &str,
        seen: &[Seen],
    ) -> Result<(), ProviderError> {
        let live = self.live(seen);
        // A retry: this action's replacement already exists.
        if let Some(new) = live.iter().find(|s| s.obs.action() == Some(action_id)) {
            let failures = self.wait_healthy(std::slice::from_ref(&new.obs.id)).await?;
            if let Some((_, why)) = failures.first() {
                self.remove_quietly(&new.obs.id).await;
                return Err(failed(format!(
                    "replacement {} did not become healthy and was removed: {why}",
                    new.obs.name
                )));
            }
            let old = new
                .obs
                .label(LABEL_REPLACES)
                .and_then(|n| live.iter().find(|s| s.obs.name == n));
            if let Some(old) = old {
                self.retire(std::slice::from_ref(&old.obs.id)).await?;
            }
            return Ok(());
        }
        let old = self.resolve(&live, instance)?;
        let spec = self.spec_of(&old.raw).await?;
        let prefer = old
            .obs
            .host_port
            .filter(|_| old.obs.status != Status::Running);
        let labels = self.labels_for(action_id, &[(LABEL_REPLACES, &old.obs.name)]);
        tracing::info!(target = %self.target, container = %old.obs.name, condition = %old.obs.condition(), "replacing container");
        let (id, name) = self
            .create_replica(seen, &spec, &labels, prefer, None)
            .await?;
        let failures = self.wait_healthy(std::slice::from_ref(&id)).await?;
        if let Some((_, why)) = failures.first() {
            self.remove_quietly(&id).await;
            return Err(failed(format!(
                "replacement {name} for {} did not become healthy and was removed ({} is left as it was): {why}",
                old.obs.name, old.obs.name
            )));
        }
        self.retire(std::slice::from_ref(&old.obs.id)).await
    }

    /// Replace the containers one at a time: create the new one, wait until it
    /// is healthy, remove an old one. If a new one does not become healthy,
    /// remove the new ones, recreate the old ones, and return the reason.
    async fn redeploy(
        self: &Arc<Self>,
        action_id: &str,
        rolling: Rolling,
        seen: &[Seen],
    ) -> Result<Option<String>, ProviderError> {
        let live = self.live(seen);
        if live.is_empty() {
            return Err(rejected(format!(
                "target {} has no container to redeploy",
                self.target
            )));
        }
        let olds: Vec<&Seen> = live
            .iter()
            .filter(|s| s.obs.action() != Some(action_id))
            .copied()
            .collect();
        // The rollout of this action if a previous attempt started it.
        let existing = self
            .snapshot()?
            .rollout
            .filter(|r| r.action_id == action_id);
        let rollout = match existing {
            Some(r) => r,
            None => {
                let base = olds.last().copied().unwrap_or(live[live.len() - 1]);
                let r = Rollout {
                    action_id: action_id.to_string(),
                    from: self.spec_of(&base.raw).await?,
                    replaced: Vec::new(),
                };
                self.with_state(|st| st.rollout = Some(r.clone()))?;
                self.save().await?;
                r
            }
        };
        let mut view: Vec<Seen> = seen.to_vec();
        for old in olds {
            let old_spec = self.spec_of(&old.raw).await?;
            let new_spec = match &rolling {
                Rolling::Change(c) => old_spec.with_change(c),
                Rolling::To(s) => (**s).clone(),
            };
            let labels = self.labels_for(
                action_id,
                &[
                    (LABEL_REPLACES, &old.obs.name),
                    (LABEL_PREVIOUS_IMAGE, &rollout.from.image),
                ],
            );
            // An earlier attempt of this action may have created its replacement already.
            let earlier = live
                .iter()
                .find(|s| {
                    s.obs.action() == Some(action_id)
                        && s.obs.label(LABEL_REPLACES) == Some(old.obs.name.as_str())
                })
                .map(|s| Ok((s.obs.id.clone(), s.obs.name.clone())));
            let created = match earlier {
                Some(found) => found,
                None => {
                    self.create_replica(&view, &new_spec, &labels, None, None)
                        .await
                }
            };
            let started = match created {
                Ok((id, name)) => {
                    // An unreachable engine is not a verdict on the new version.
                    let failures = self.wait_healthy(std::slice::from_ref(&id)).await?;
                    match failures.into_iter().next() {
                        None => Ok(id),
                        Some((_, why)) => {
                            self.remove_quietly(&id).await;
                            Err(format!("new container {name} ({}) {why}", new_spec.image))
                        }
                    }
                }
                // The engine is unreachable: not a verdict on the new version.
                Err(e) if engine_unreachable(&e) => return Err(e),
                Err(e) => Err(format!("creating a container of {}: {e}", new_spec.image)),
            };
            match started {
                Ok(id) => {
                    if let Some(raw) = self.engine.inspect_opt(&id).await? {
                        if let Some(obs) = client::observe(&raw, self.port) {
                            view.push(Seen { obs, raw });
                        }
                    }
                    self.with_state(|st| {
                        if let Some(r) = st.rollout.as_mut() {
                            r.replaced.push(Replaced {
                                name: old.obs.name.clone(),
                                spec: old_spec.clone(),
                            });
                        }
                    })?;
                    self.save().await?;
                    self.retire(std::slice::from_ref(&old.obs.id)).await?;
                }
                Err(why) => {
                    let reason = format!("{why}; rolled back to {}", rollout.from.image);
                    tracing::warn!(target = %self.target, %reason, "redeploy rolled back");
                    self.undo_rollout(action_id)
                        .await
                        .map_err(|e| failed(format!("{reason}; rollback failed too: {e}")))?;
                    return Ok(Some(reason));
                }
            }
        }
        let seen = self.refresh().await?;
        self.with_state(|st| {
            if let Some(r) = st.rollout.take() {
                st.previous = Some(r.from);
            }
        })?;
        self.save().await?;
        self.remember_template(&seen).await?;
        Ok(None)
    }

    /// Recreate the containers the rollout of `action_id` removed (same name,
    /// same host port if free), each healthy before the new container that
    /// replaced it is removed.
    async fn undo_rollout(self: &Arc<Self>, action_id: &str) -> Result<(), ProviderError> {
        let replaced = self
            .snapshot()?
            .rollout
            .filter(|r| r.action_id == action_id)
            .map(|r| r.replaced)
            .unwrap_or_default();
        let undo_id = format!("{action_id}.undo");
        for r in replaced.iter().rev() {
            let seen = self.observe_all().await?;
            let news: Vec<String> = self
                .live(&seen)
                .iter()
                .filter(|s| {
                    s.obs.action() == Some(action_id)
                        && s.obs.label(LABEL_REPLACES) == Some(r.name.as_str())
                })
                .map(|s| s.obs.id.clone())
                .collect();
            let exists = seen.iter().any(|s| s.obs.name == r.name);
            if !exists {
                let labels = self.labels_for(&undo_id, &[]);
                let (id, name) = self
                    .create_replica(&seen, &r.spec, &labels, r.spec.host_port, Some(&r.name))
                    .await?;
                let failures = self.wait_healthy(std::slice::from_ref(&id)).await?;
                if let Some((_, why)) = failures.first() {
                    return Err(failed(format!(
                        "restored container {name} ({}) {why}",
                        r.spec.image
                    )));
                }
            }
            self.retire(&news).await?;
        }
        // New containers of this action that replaced nothing recorded (a
        // crash between their start and the record) go too.
        let seen = self.observe_all().await?;
        let leftovers: Vec<String> = self
            .live(&seen)
            .iter()
            .filter(|s| s.obs.action() == Some(action_id))
            .map(|s| s.obs.id.clone())
            .collect();
        if !leftovers.is_empty() && self.live(&seen).len() > leftovers.len() {
            self.retire(&leftovers).await?;
        }
        self.with_state(|st| st.rollout = None)?;
        self.save().await?;
        self.refresh().await?;
        Ok(())
    }

    /// Did `op` (action `action_id`) take effect, judging from the engine?
    fn reconcile_op(&self, action_id: &str, op: &ProviderOp, seen: &[Seen]) -> Reconciliation {
        let live = self.live(seen);
        let ours: Vec<&&Seen> = live
            .iter()
            .filter(|s| s.obs.action() == Some(action_id))
            .collect();
        match op {
            ProviderOp::SetReplicas { from, to } => {
                let n = live.len() as u32;
                if n == *to {
                    Reconciliation::Applied
                } else if n == *from {
                    Reconciliation::NotApplied
                } else {
                    Reconciliation::Unknown
                }
            }
            ProviderOp::Replace { instance } => {
                let old_there = self
                    .resolve(&live, instance)
                    .is_ok_and(|s| s.obs.action() != Some(action_id));
                let new_healthy = ours.iter().any(|s| self.is_healthy(&s.obs));
                match (old_there, ours.is_empty(), new_healthy) {
                    (false, false, true) => Reconciliation::Applied,
                    (true, true, _) => Reconciliation::NotApplied,
                    _ => Reconciliation::Unknown,
                }
            }
            ProviderOp::Redeploy {
                version,
                command,
                env,
            } => {
                let runs_it = |o: &Observed| {
                    let image_ok = match version {
                        None => true,
                        Some(v) if v.contains(':') || v.contains('/') => o.image == *v,
                        Some(v) => spec::tag(&o.image) == Some(v.as_str()),
                    };
                    let cmd_ok = command.as_ref().is_none_or(|c| o.cmd.ends_with(c));
                    let have = spec::env_map(&o.env);
                    let env_ok = env.iter().all(|(k, v)| have.get(k) == Some(v));
                    image_ok && cmd_ok && env_ok
                };
                if !live.is_empty() && live.iter().all(|s| runs_it(&s.obs)) && !ours.is_empty() {
                    Reconciliation::Applied
                } else if ours.is_empty() {
                    Reconciliation::NotApplied
                } else {
                    Reconciliation::Unknown
                }
            }
            ProviderOp::Rollback => {
                if ours.is_empty() {
                    Reconciliation::NotApplied
                } else {
                    Reconciliation::Unknown
                }
            }
            ProviderOp::CircuitOpen { .. }
            | ProviderOp::CircuitHalfOpen { .. }
            | ProviderOp::CircuitClose { .. } => Reconciliation::NotApplied,
        }
    }
}

#[async_trait::async_trait]
impl Provider for DockerProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn supports(&self) -> &'static [ActionKind] {
        KINDS
    }

    /// Each container created or removed in turn may take `startup_timeout`
    /// to become healthy, `stop_timeout` to stop, and a few API calls.
    fn attempt_timeout(&self, op: &ProviderOp) -> Option<Duration> {
        let inner = &self.inner;
        let current = inner
            .target_state_of(&lock(&inner.cache).containers)
            .replicas;
        let each = inner.startup_timeout + inner.stop_timeout + inner.api_timeout * 4;
        Some(each * op.sequential_instances(current) + crate::providers::ATTEMPT_MARGIN)
    }

    async fn start(&self) -> Result<TargetState, ProviderError> {
        let inner = &self.inner;
        let _op = inner.op_lock.lock().await;
        inner.load()?;
        match inner.recover().await {
            Ok(()) => {
                let n = inner.live(&inner.refresh().await.unwrap_or_default()).len();
                tracing::info!(target = %inner.target, containers = n, socket = %inner.engine.socket().display(), "adopted the target's containers");
            }
            // The agent runs without the engine; adoption happens at the first contact.
            Err(e) if engine_unreachable(&e) => {
                lock(&inner.cache).last_error = Some(e.clone());
                tracing::warn!(target = %inner.target, error = %e, "Docker engine not reachable at start; the target is adopted when it is");
            }
            // Recovery is tried again before the next action.
            Err(e) => {
                tracing::warn!(target = %inner.target, error = %e, "finishing what a previous run left failed; retried before the next action");
            }
        }
        self.start_poller();
        let cache = lock(&inner.cache);
        Ok(inner.target_state_of(&cache.containers))
    }

    async fn state(&self) -> Result<TargetState, ProviderError> {
        let inner = &self.inner;
        let cache = lock(&inner.cache);
        let Some(last_ok) = cache.last_ok else {
            return Err(match &cache.last_error {
                Some(e) => e.clone(),
                None => failed("provider not started"),
            });
        };
        if let Some(e) = &cache.last_error {
            // One failed poll is noise; a view older than a few polls is not the truth.
            let stale_after = inner.poll_interval * 3 + inner.api_timeout;
            if crate::clock::monotonic_now().saturating_duration_since(last_ok) > stale_after {
                return Err(e.clone());
            }
        }
        Ok(inner.target_state_of(&cache.containers))
    }

    async fn execute(&self, req: &ActionRequest) -> Result<ActionOutcome, ProviderError> {
        let inner = &self.inner;
        let _op = inner.op_lock.lock().await;
        inner.load()?;
        if let Some(outcome) = inner.with_state(|st| st.actions.recall(req, PROVIDER))?? {
            return Ok(outcome);
        }
        inner.ensure_recovered().await?;
        // A removal an earlier attempt began is finished before anything else.
        let retiring = inner.retiring();
        if !retiring.is_empty() {
            inner.retire(&retiring).await?;
        }
        let seen = inner.refresh().await?;
        inner.remember_template(&seen).await?;
        let before = inner.summary(&seen);
        let rolled_back = match &req.op {
            ProviderOp::SetReplicas { to, .. } => inner
                .set_replicas(&req.action_id, *to, &seen)
                .await
                .map(|_| None),
            ProviderOp::Replace { instance } => inner
                .replace(&req.action_id, instance, &seen)
                .await
                .map(|_| None),
            ProviderOp::Redeploy {
                version,
                command,
                env,
            } => {
                let newest = inner.live(&seen).last().map(|s| s.obs.image.clone());
                let image = match version {
                    Some(v) => {
                        let current = newest.clone().unwrap_or_default();
                        let image = spec::resolve_version(&current, v)
                            .map_err(|e| rejected(format!("redeploy: {e}")))?;
                        // Nothing is pulled: the image must be on the engine.
                        match inner.engine.inspect_image(&image).await {
                            Ok(_) => Some(image),
                            Err(ProviderError::NotFound { .. }) => {
                                return Err(not_found(format!(
                                    "image {image} is not on the engine (this adapter does not pull images)"
                                )))
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    None => None,
                };
                if let Some(c) = command.as_ref().filter(|c| c.is_empty()) {
                    return Err(rejected(format!("redeploy: command {c:?} is empty")));
                }
                let change = Change {
                    image,
                    command: command.clone(),
                    env: env.clone(),
                };
                inner
                    .redeploy(&req.action_id, Rolling::Change(change), &seen)
                    .await
            }
            ProviderOp::Rollback => {
                let previous = inner.snapshot()?.previous;
                let rolling = match previous {
                    Some(p) => Rolling::To(Box::new(p)),
                    None => {
                        // The state file is gone: the label on the containers says where we came from.
                        let label =
                            inner.live(&seen).iter().rev().find_map(|s| {
                                s.obs.label(LABEL_PREVIOUS_IMAGE).map(str::to_string)
                            });
                        match label {
                            Some(image) => Rolling::Change(Change {
                                image: Some(image),
                                ..Change::default()
                            }),
                            None => {
                                return Err(rejected(format!(
                                    "target {} has no previous version to roll back to",
                                    inner.target
                                )))
                            }
                        }
                    }
                };
                inner.redeploy(&req.action_id, rolling, &seen).await
            }
            ProviderOp::CircuitOpen { .. }
            | ProviderOp::CircuitHalfOpen { .. }
            | ProviderOp::CircuitClose { .. } => Err(ProviderError::Unsupported {
                provider: PROVIDER.into(),
                kind: req.kind,
            }),
        }?;
        let after = match inner.refresh().await {
            Ok(seen) => inner.summary(&seen),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        let outcome = ActionOutcome {
            before,
            after,
            rolled_back,
        };
        inner.with_state(|st| st.actions.record(req, outcome.clone()))?;
        inner.save().await?;
        Ok(outcome)
    }

    async fn reconcile(&self, req: &ActionRequest) -> Result<Reconciliation, ProviderError> {
        let inner = &self.inner;
        let _op = inner.op_lock.lock().await;
        inner.load()?;
        if inner.with_state(|st| st.actions.outcome(&req.action_id).is_some())? {
            return Ok(Reconciliation::Applied);
        }
        let seen = inner.refresh().await?;
        Ok(inner.reconcile_op(&req.action_id, &req.op, &seen))
    }

    async fn shutdown(&self, stop_instances: bool) {
        let inner = &self.inner;
        if let Some(h) = lock(&inner.poller).take() {
            h.abort();
        }
        if !stop_instances {
            return;
        }
        let _op = inner.op_lock.lock().await;
        // Only what this adapter created: containers someone else started stay.
        match inner.observe_all().await {
            Ok(seen) => {
                let ours: Vec<String> = seen
                    .iter()
                    .filter(|s| s.obs.action().is_some())
                    .map(|s| s.obs.id.clone())
                    .collect();
                if let Err(e) = inner.retire(&ours).await {
                    tracing::warn!(target = %inner.target, error = %e, "removing containers at shutdown");
                }
            }
            Err(e) => {
                tracing::warn!(target = %inner.target, error = %e, "listing containers at shutdown")
            }
        }
    }
}

/// For tests: the outcome of an action id as recorded, if any.
impl DockerProvider {
    pub fn recorded_outcome(&self, action_id: &str) -> Option<ActionOutcome> {
        lock(&self.inner.st)
            .as_ref()
            .and_then(|st| st.actions.outcome(action_id).cloned())
    }
}
