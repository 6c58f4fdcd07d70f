//! The `process` provider: a target is N replicas of a local command, each on
//! its own port.
//!
//! Owns: the replicas of one target (started detached, so they survive the
//! agent), their state file `<data_dir>/targets/<target>/replicas.json`, the
//! target's discovery file (Prometheus `file_sd`, listing replicas in traffic),
//! and carrying out the six action kinds. Must not decide when to act: the
//! agent decides, this module executes. A background poller only refreshes
//! health for [`Provider::state`]; it never starts or stops anything.
//!
//! Semantics worth knowing:
//! - Instances are identified by port (`"18100"`); `"127.0.0.1:18100"` (the
//!   scraper's `instance` label) is accepted too.
//! - Circuit half-open puts the replica back into the discovery file like close:
//!   a file has no weights, so "a trickle of traffic" is not expressible here.
//! - A redeploy whose new replica does not become healthy within
//!   `startup_timeout` is undone (new replicas stopped, old ones kept or
//!   restarted) and reported as success with [`ActionOutcome::rolled_back`]
//!   set: the target is safe, but not on the requested version. New replicas
//!   of a redeploy go into traffic even if the replica they replace was out.
//! - Idempotency: the outcome of each successful action id is kept (last 100) in
//!   the state file; repeating the id returns it without acting. Failed attempts
//!   are not recorded, so the executor's retry with the same id tries again —
//!   every op converges on its goal, so a retry after a partial attempt is safe.
//! - Operations are serialised per target; `state()` never waits for one.
//! - Start-up (after a crash or a stop) adopts recorded replicas that run and
//!   are healthy, stops the others, finishes what a crash interrupted (a
//!   replica being retired is stopped; one started to serve is put into
//!   traffic), then tops up to the count the last scale asked for
//!   (`initial_replicas` until the first scale) - never undoing a scale-in.
pub mod client;
pub mod config;
pub mod state;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Child;
use tokio::task::JoinHandle;

use crate::locks::lock;
use crate::model::{
    ActionKind, ActionOutcome, ActionRequest, InstanceInfo, ProviderError, ProviderOp,
    Reconciliation, TargetState,
};
use crate::providers::{health, Provider};

pub use config::ProcessConfig;
use state::{Deployment, PersistedState, Replica};

const PROVIDER: &str = "process";
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// After SIGKILL a process is gone within milliseconds; this only bounds a stuck kernel.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Pause between health probes while waiting for a replica to come up.
const STARTUP_POLL: Duration = Duration::from_millis(100);

/// A `provider: process` target. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct ProcessProvider {
    inner: Arc<Inner>,
}

struct Inner {
    target: String,
    cfg: ProcessConfig,
    ports: RangeInclusive<u16>,
    /// `<data_dir>/targets/<target>` (absolute: it is part of each replica's marker).
    dir: PathBuf,
    discovery: PathBuf,
    initial_replicas: u32,
    startup_timeout: Duration,
    stop_timeout: Duration,
    health_interval: Duration,
    health_timeout: Duration,
    /// Serialises operations (start, execute, shutdown).
    op_lock: tokio::sync::Mutex<()>,
    /// The persisted state, loaded by `start()`; short critical sections only.
    st: Mutex<Option<PersistedState>>,
    /// Last health result per pid.
    health: Mutex<HashMap<u32, bool>>,
    /// Handles of replicas this agent process spawned, kept to reap them.
    children: Mutex<HashMap<u32, Child>>,
    poller: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = lock(&self.poller).take() {
            h.abort();
        }
    }
}

fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::failed(PROVIDER, message)
}

fn not_found(message: impl Into<String>) -> ProviderError {
    ProviderError::not_found(PROVIDER, message)
}

fn rejected(message: impl Into<String>) -> ProviderError {
    ProviderError::rejected(PROVIDER, message)
}

/// The port named by an instance id: `"18100"` or `"127.0.0.1:18100"`.
pub fn parse_instance(instance: &str) -> Option<u16> {
    let port = instance.rsplit_once(':').map_or(instance, |(_, p)| p);
    port.trim().parse().ok()
}

impl ProcessProvider {
    /// A provider for `target`, keeping its files under `<data_dir>/targets/<target>/`.
    /// Nothing is started until [`Provider::start`].
    pub fn new(
        target: impl Into<String>,
        cfg: ProcessConfig,
        data_dir: impl AsRef<Path>,
        initial_replicas: u32,
    ) -> Result<Self, ProviderError> {
        let target = target.into();
        if target.is_empty() || target.contains(['/', '\\']) || target.starts_with('.') {
            return Err(rejected(format!("invalid target name {target:?}")));
        }
        if cfg.command.is_empty() {
            return Err(rejected("command is empty"));
        }
        let ports = crate::spec::parse_port_range(&cfg.ports).map_err(rejected)?;
        let data_dir = data_dir.as_ref();
        let data_dir = if data_dir.is_absolute() {
            data_dir.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| failed(format!("current directory: {e}")))?
                .join(data_dir)
        };
        let dir = data_dir.join("targets").join(&target);
        let discovery = cfg
            .discovery_file
            .clone()
            .unwrap_or_else(|| data_dir.join("targets").join(format!("{target}.json")));
        Ok(Self {
            inner: Arc::new(Inner {
                startup_timeout: cfg.startup_timeout.unwrap_or(DEFAULT_STARTUP_TIMEOUT),
                stop_timeout: cfg.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT),
                health_interval: cfg.health_interval.unwrap_or(DEFAULT_HEALTH_INTERVAL),
                health_timeout: cfg.health_timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT),
                target,
                cfg,
                ports,
                dir,
                discovery,
                initial_replicas,
                op_lock: tokio::sync::Mutex::new(()),
                st: Mutex::new(None),
                health: Mutex::new(HashMap::new()),
                children: Mutex::new(HashMap::new()),
                poller: Mutex::new(None),
            }),
        })
    }

    /// The discovery file this target writes (for the scraper and load balancers).
    pub fn discovery_file(&self) -> &Path {
        &self.inner.discovery
    }

    /// `<data_dir>/targets/<target>`: state file and replica logs.
    pub fn target_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Pids of the replicas as recorded (for the demo's "kill a replica" step).
    pub fn replica_pids(&self) -> Vec<(u16, u32)> {
        lock(&self.inner.st)
            .as_ref()
            .map(|st| st.replicas.iter().map(|r| (r.port, r.pid)).collect())
            .unwrap_or_default()
    }
}

impl Inner {
    fn state_path(&self) -> PathBuf {
        self.dir.join("replicas.json")
    }

    fn marker(&self, port: u16) -> String {
        client::marker_value(&self.dir, port)
    }

    fn configured(&self) -> Deployment {
        Deployment {
            command: self.cfg.command.clone(),
            version: self.cfg.version.clone(),
            env: Default::default(),
        }
    }

    /// Run `f` on the loaded state. Errors if `start()` has not loaded it.
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

    /// Persist the state file and rewrite the discovery file from it.
    async fn save(&self) -> Result<(), ProviderError> {
        let (state_json, discovery) = self.with_state(|st| {
            (
                serde_json::to_vec_pretty(st),
                state::render_discovery(&self.target, &st.traffic_ports()),
            )
        })?;
        let state_json = state_json.map_err(|e| failed(format!("encode state: {e}")))?;
        let state_path = self.state_path();
        let discovery_path = self.discovery.clone();
        // fsync can take a while on a busy disk: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            client::write_atomic(&state_path, &state_json)
                .map_err(|e| failed(format!("write {}: {e}", state_path.display())))?;
            // Only rewrite the discovery file when it changes, so readers see few events.
            if std::fs::read_to_string(&discovery_path).ok().as_deref() != Some(&discovery) {
                client::write_atomic(&discovery_path, discovery.as_bytes())
                    .map_err(|e| failed(format!("write {}: {e}", discovery_path.display())))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| failed(format!("state writer: {e}")))?
    }

    fn load(&self) -> Result<Option<PersistedState>, ProviderError> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| failed(format!("corrupt state file {}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed(format!("read {}: {e}", path.display()))),
        }
    }

    /// Lowest free port of the range not used by a replica, `prefer` first.
    fn pick_port(&self, prefer: Option<u16>) -> Result<u16, ProviderError> {
        let used: Vec<u16> = self.with_state(|st| st.replicas.iter().map(|r| r.port).collect())?;
        let usable = |p: u16| !used.contains(&p) && client::port_is_free(p);
        if let Some(p) = prefer.filter(|p| self.ports.contains(p) && usable(*p)) {
            return Ok(p);
        }
        self.ports.clone().find(|p| usable(*p)).ok_or_else(|| {
            failed(format!(
                "no free port in {}-{}",
                self.ports.start(),
                self.ports.end()
            ))
        })
    }

    fn is_ours(&self, r: &Replica) -> bool {
        (lock(&self.children).contains_key(&r.pid) && client::is_alive(r.pid))
            || client::is_our_process(r.pid, &r.command, &self.marker(r.port))
    }

    /// Start one replica of `dep`, wait until it is healthy, then (if asked) put
    /// it into traffic. On failure it is stopped and forgotten again.
    async fn launch(
        &self,
        dep: &Deployment,
        prefer_port: Option<u16>,
        into_traffic: bool,
    ) -> Result<Replica, ProviderError> {
        let port = self.pick_port(prefer_port)?;
        let argv = client::resolve_argv(&dep.command, port, dep.version.as_deref());
        let log = self.dir.join(format!("replica-{port}.log"));
        let marker = self.marker(port);
        let mut env = self.cfg.env.clone();
        env.extend(dep.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let child = client::spawn(&client::SpawnSpec {
            argv: &argv,
            env: &env,
            workdir: self.cfg.workdir.as_deref(),
            log: &log,
            marker: &marker,
        })
        .map_err(|e| failed(format!("spawn {:?}: {e}", argv.first())))?;
        let Some(pid) = child.id() else {
            return Err(failed("spawned replica exited immediately"));
        };
        lock(&self.children).insert(pid, child);
        let replica = self.with_state(|st| {
            let r = Replica {
                pid,
                port,
                version: dep.version.clone(),
                command: argv.clone(),
                started_at_ms: crate::clock::Clock::system().now_ms(),
                seq: st.next_seq,
                in_traffic: false,
                pending_traffic: into_traffic,
                retiring: false,
            };
            st.next_seq += 1;
            st.replicas.push(r.clone());
            r
        })?;
        // Recorded before waiting: an agent crash from here on leaves no unknown process.
        self.save().await?;
        tracing::info!(target = %self.target, port, pid, version = ?dep.version, "replica started");

        if let Err(e) = self.wait_healthy(&replica, &log).await {
            tracing::warn!(target = %self.target, port, pid, error = %e, "replica did not become healthy; stopping it");
            self.stop(&replica).await;
            self.with_state(|st| st.replicas.retain(|r| r.pid != pid))?;
            self.save().await?;
            return Err(e);
        }
        lock(&self.health).insert(pid, true);
        if into_traffic {
            self.with_state(|st| {
                if let Some(r) = st.replicas.iter_mut().find(|r| r.pid == pid) {
                    r.in_traffic = true;
                    r.pending_traffic = false;
                }
            })?;
            self.save().await?;
        }
        Ok(Replica {
            in_traffic: into_traffic,
            pending_traffic: false,
            ..replica
        })
    }

    async fn wait_healthy(&self, r: &Replica, log: &Path) -> Result<(), ProviderError> {
        let deadline = crate::clock::monotonic_now() + self.startup_timeout;
        loop {
            let exited = lock(&self.children)
                .get_mut(&r.pid)
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                lock(&self.children).remove(&r.pid);
                return Err(failed(format!(
                    "replica on port {} exited during start-up ({status}); see {}",
                    r.port,
                    log.display()
                )));
            }
            let remaining = deadline.saturating_duration_since(crate::clock::monotonic_now());
            if health::probe(
                "127.0.0.1",
                r.port,
                &self.cfg.health,
                self.health_timeout.min(remaining.max(STARTUP_POLL)),
            )
            .await
            {
                return Ok(());
            }
            if crate::clock::monotonic_now() >= deadline {
                return Err(ProviderError::Timeout {
                    provider: PROVIDER.into(),
                    after_ms: self.startup_timeout.as_millis() as u64,
                });
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
    }

    /// SIGTERM to the replica's process group, `stop_timeout`, then SIGKILL; reap
    /// it if it is our child. A pid that is no longer our replica is left alone.
    async fn stop(&self, r: &Replica) {
        let child = lock(&self.children).remove(&r.pid);
        lock(&self.health).remove(&r.pid);
        let ours = match &child {
            // Our unreaped child: the pid cannot have been reused.
            Some(_) => true,
            None => client::is_our_process(r.pid, &r.command, &self.marker(r.port)),
        };
        let mut child = child;
        if ours {
            client::signal_group(r.pid, Signal::SIGTERM);
            if !self
                .wait_exit(r.pid, child.as_mut(), self.stop_timeout)
                .await
            {
                tracing::warn!(target = %self.target, port = r.port, pid = r.pid, "replica ignored SIGTERM; sending SIGKILL");
                client::signal_group(r.pid, Signal::SIGKILL);
                self.wait_exit(r.pid, child.as_mut(), KILL_WAIT).await;
            }
            tracing::info!(target = %self.target, port = r.port, pid = r.pid, "replica stopped");
        } else if let Some(c) = child.as_mut() {
            let _ = c.try_wait();
        }
    }

    async fn wait_exit(&self, pid: u32, child: Option<&mut Child>, limit: Duration) -> bool {
        match child {
            Some(c) => tokio::time::timeout(limit, c.wait()).await.is_ok(),
            None => {
                let deadline = crate::clock::monotonic_now() + limit;
                while client::is_alive(pid) {
                    if crate::clock::monotonic_now() >= deadline {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                true
            }
        }
    }

    /// Take a replica out of traffic, stop it and forget it.
    async fn retire(&self, r: &Replica) -> Result<(), ProviderError> {
        let changed = self.with_state(|st| {
            st.replica_mut(r.port)
                .map(|x| {
                    let changed = x.in_traffic || !x.retiring;
                    x.in_traffic = false;
                    x.retiring = true;
                    changed
                })
                .unwrap_or(false)
        })?;
        if changed {
            // Out of discovery before the signal, so clients stop picking it
            // first; and marked, so a crash from here on still ends with it gone.
            self.save().await?;
        }
        self.stop(r).await;
        self.with_state(|st| st.replicas.retain(|x| x.pid != r.pid))?;
        self.save().await
    }

    fn target_state(&self) -> TargetState {
        let guard = lock(&self.st);
        let Some(st) = guard.as_ref() else {
            return TargetState::default();
        };
        let health = lock(&self.health);
        let mut replicas = st.replicas.clone();
        replicas.sort_by_key(|r| r.port);
        TargetState {
            replicas: replicas.len() as u32,
            instances: replicas
                .iter()
                .map(|r| InstanceInfo {
                    id: r.port.to_string(),
                    address: Some(format!("127.0.0.1:{}", r.port)),
                    healthy: health.get(&r.pid).copied().unwrap_or(false)
                        && client::is_alive(r.pid),
                    in_traffic: r.in_traffic,
                    version: r.version.clone(),
                    labels: Default::default(),
                })
                .collect(),
            version: st.current.version.clone(),
        }
    }

    /// Probe every replica once; reap children that exited.
    async fn poll_health(&self) {
        {
            let mut children = lock(&self.children);
            children.retain(|_, c| !matches!(c.try_wait(), Ok(Some(_))));
        }
        let replicas = match self.snapshot() {
            Ok(st) => st.replicas,
            Err(_) => return,
        };
        let mut results = Vec::with_capacity(replicas.len());
        for r in &replicas {
            let healthy = client::is_alive(r.pid)
                && health::probe("127.0.0.1", r.port, &self.cfg.health, self.health_timeout).await;
            results.push((r.pid, healthy));
        }
        let mut health = lock(&self.health);
        health.retain(|pid, _| replicas.iter().any(|r| r.pid == *pid));
        health.extend(results);
    }

    fn summary(&self) -> serde_json::Value {
        let guard = lock(&self.st);
        let Some(st) = guard.as_ref() else {
            return serde_json::Value::Null;
        };
        let mut replicas = st.replicas.clone();
        replicas.sort_by_key(|r| r.port);
        serde_json::json!({
            "replicas": replicas.len(),
            "version": st.current.version,
            "instances": replicas.iter().map(|r| serde_json::json!({
                "id": r.port.to_string(),
                "pid": r.pid,
                "version": r.version,
                "in_traffic": r.in_traffic,
            })).collect::<Vec<_>>(),
        })
    }
}

impl ProcessProvider {
    fn start_poller(&self) {
        let mut slot = lock(&self.inner.poller);
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        // A weak handle: dropping the provider ends the poller.
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let interval = self.inner.health_interval;
        *slot = Some(tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                inner.poll_health().await;
                drop(inner);
                tokio::time::sleep(interval).await;
            }
        }));
    }

    async fn set_replicas(&self, to: u32) -> Result<(), ProviderError> {
        let inner = &self.inner;
        let capacity = inner.ports.clone().count();
        if to as usize > capacity {
            return Err(rejected(format!(
                "{to} replicas do not fit the port range ({capacity} ports)"
            )));
        }
        // Recorded first: a crash midway must not make the next start grow back.
        inner.with_state(|st| st.desired = Some(to))?;
        inner.save().await?;
        let st = inner.snapshot()?;
        let have = st.replicas.len();
        if (to as usize) > have {
            for _ in have..to as usize {
                inner.launch(&st.current, None, true).await?;
            }
        } else if (to as usize) < have {
            let mut victims = st.replicas.clone();
            // Newest first: the longest-running replicas have warm caches and proven health.
            victims.sort_by_key(|r| std::cmp::Reverse(r.seq));
            victims.truncate(have - to as usize);
            inner.with_state(|st| {
                for v in &victims {
                    if let Some(r) = st.replica_mut(v.port) {
                        r.in_traffic = false;
                        r.retiring = true;
                    }
                }
            })?;
            inner.save().await?;
            for v in &victims {
                inner.retire(v).await?;
            }
        }
        Ok(())
    }

    async fn replace(&self, instance: &str) -> Result<(), ProviderError> {
        let inner = &self.inner;
        let port = parse_instance(instance)
            .ok_or_else(|| rejected(format!("instance {instance:?} is not a port")))?;
        let st = inner.snapshot()?;
        let old = st
            .replica(port)
            .cloned()
            .ok_or_else(|| not_found(format!("no replica on port {port}")))?;
        // Keep its traffic status: a replica with an open circuit stays out until closed.
        let in_traffic = old.in_traffic;
        inner.retire(&old).await?;
        inner.launch(&st.current, Some(port), in_traffic).await?;
        Ok(())
    }

    async fn set_traffic(&self, instance: &str, in_traffic: bool) -> Result<(), ProviderError> {
        let port = parse_instance(instance)
            .ok_or_else(|| rejected(format!("instance {instance:?} is not a port")))?;
        let found = self.inner.with_state(|st| {
            st.replica_mut(port)
                .map(|r| r.in_traffic = in_traffic)
                .is_some()
        })?;
        if !found {
            return Err(not_found(format!("no replica on port {port}")));
        }
        self.inner.save().await
    }

    /// Roll to `target` one replica at a time; undo on the first failure.
    /// Returns the rollback reason if it was undone.
    async fn redeploy(&self, target: Deployment) -> Result<Option<String>, ProviderError> {
        let inner = &self.inner;
        let st = inner.snapshot()?;
        let old_dep = st.current.clone();
        let mut olds = st.replicas.clone();
        olds.sort_by_key(|r| r.seq);
        let mut started: Vec<Replica> = Vec::new();
        for old in &olds {
            match inner.launch(&target, None, true).await {
                Ok(new) => {
                    started.push(new);
                    inner.retire(old).await?;
                }
                Err(e) => {
                    let reason = format!(
                        "new replica of version {} failed: {e}; rolled back to {}",
                        target.version.as_deref().unwrap_or("(none)"),
                        old_dep.version.as_deref().unwrap_or("(none)"),
                    );
                    tracing::warn!(target = %inner.target, %reason, "redeploy rolled back");
                    for new in &started {
                        inner
                            .launch(&old_dep, None, true)
                            .await
                            .map_err(|e2| failed(format!("{reason}; rollback failed too: {e2}")))?;
                        inner.retire(new).await?;
                    }
                    return Ok(Some(reason));
                }
            }
        }
        inner.with_state(|st| {
            if st.current != target {
                st.previous = Some(std::mem::replace(&mut st.current, target));
            }
        })?;
        inner.save().await?;
        Ok(None)
    }
}

/// `base` with `changes` added or replaced.
fn with_env(
    base: &std::collections::BTreeMap<String, String>,
    changes: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let mut env = base.clone();
    env.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Did `op` take effect, judging from the recorded and observed state?
pub fn reconcile_op(op: &ProviderOp, st: &PersistedState, live: &TargetState) -> Reconciliation {
    let instance = |id: &str| {
        parse_instance(id).and_then(|p| live.instances.iter().find(|i| i.id == p.to_string()))
    };
    match op {
        ProviderOp::SetReplicas { from, to } => {
            if live.replicas == *to {
                Reconciliation::Applied
            } else if live.replicas == *from {
                Reconciliation::NotApplied
            } else {
                Reconciliation::Unknown
            }
        }
        ProviderOp::CircuitOpen { instance: id } => match instance(id) {
            Some(i) if !i.in_traffic => Reconciliation::Applied,
            Some(_) => Reconciliation::NotApplied,
            None => Reconciliation::Unknown,
        },
        ProviderOp::CircuitHalfOpen { instance: id }
        | ProviderOp::CircuitClose { instance: id } => match instance(id) {
            Some(i) if i.in_traffic => Reconciliation::Applied,
            Some(_) => Reconciliation::NotApplied,
            None => Reconciliation::Unknown,
        },
        // A replaced instance runs again and is healthy; a dead one was not replaced.
        ProviderOp::Replace { instance: id } => match instance(id) {
            Some(i) if i.healthy => Reconciliation::Applied,
            _ => Reconciliation::NotApplied,
        },
        ProviderOp::Redeploy {
            version,
            command,
            env,
        } => {
            let runs = |r: &Replica, dep: &Deployment| {
                r.version == dep.version
                    && r.command
                        == client::resolve_argv(&dep.command, r.port, dep.version.as_deref())
            };
            let wanted = Deployment {
                command: command
                    .clone()
                    .unwrap_or_else(|| st.current.command.clone()),
                version: version.clone().or_else(|| st.current.version.clone()),
                env: with_env(&st.current.env, env),
            };
            if st.current == wanted && st.replicas.iter().all(|r| runs(r, &wanted)) {
                Reconciliation::Applied
            } else if st.replicas.iter().all(|r| runs(r, &st.current)) {
                Reconciliation::NotApplied
            } else {
                Reconciliation::Unknown
            }
        }
        // Without the action record the state before it is unknown, so is the effect.
        ProviderOp::Rollback => Reconciliation::Unknown,
    }
}

#[async_trait::async_trait]
impl Provider for ProcessProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn supports(&self) -> &'static [ActionKind] {
        &ActionKind::ALL
    }

    /// Each replica started or stopped in turn may take `startup_timeout` to
    /// become healthy and `stop_timeout` (+ the SIGKILL wait) to stop.
    fn attempt_timeout(&self, op: &ProviderOp) -> Option<Duration> {
        let inner = &self.inner;
        let current = lock(&inner.st)
            .as_ref()
            .map_or(0, |st| st.replicas.len() as u32);
        let each = inner.startup_timeout + inner.stop_timeout + KILL_WAIT;
        Some(each * op.sequential_instances(current) + crate::providers::ATTEMPT_MARGIN)
    }

    async fn start(&self) -> Result<TargetState, ProviderError> {
        let inner = &self.inner;
        let _op = inner.op_lock.lock().await;
        std::fs::create_dir_all(&inner.dir)
            .map_err(|e| failed(format!("create {}: {e}", inner.dir.display())))?;
        let configured = inner.configured();
        let mut st = match inner.load()? {
            Some(st) => st,
            None => PersistedState::new(configured.clone()),
        };
        // An edited config wins over what earlier redeploys left; rollback returns to the old.
        if st.configured.as_ref() != Some(&configured) {
            if st.configured.is_some() && st.current != configured {
                st.previous = Some(std::mem::replace(&mut st.current, configured.clone()));
            }
            st.configured = Some(configured);
        }
        let recorded = std::mem::take(&mut st.replicas);
        *lock(&inner.st) = Some(st);

        // Adopt what still runs and is healthy; stop what runs but is not; forget the dead.
        let mut unhealthy = Vec::new();
        for r in recorded {
            if !inner.is_ours(&r) {
                tracing::info!(target = %inner.target, port = r.port, pid = r.pid, "recorded replica is gone");
                continue;
            }
            if r.retiring {
                // A crash interrupted its retirement: finish it (stopped below).
                tracing::info!(target = %inner.target, port = r.port, pid = r.pid, "replica was being retired; stopping it");
                unhealthy.push(r);
                continue;
            }
            let mut healthy = false;
            for _ in 0..5 {
                if health::probe("127.0.0.1", r.port, &inner.cfg.health, inner.health_timeout).await
                {
                    healthy = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if healthy {
                tracing::info!(target = %inner.target, port = r.port, pid = r.pid, "adopted running replica");
                lock(&inner.health).insert(r.pid, true);
                let mut r = r;
                // Its start was interrupted after it was recorded: finish it.
                if r.pending_traffic {
                    r.in_traffic = true;
                    r.pending_traffic = false;
                }
                inner.with_state(|st| st.replicas.push(r))?;
            } else {
                unhealthy.push(r);
            }
        }
        inner.save().await?;
        for r in &unhealthy {
            tracing::warn!(target = %inner.target, port = r.port, pid = r.pid, "running replica is unhealthy; stopping it");
            inner.stop(r).await;
        }
        // Orphans: replicas started just before a crash, before the state file named them.
        let kept = inner.snapshot()?.replicas;
        for (pid, pgrp, port) in client::scan_marked(&inner.dir) {
            let known = kept
                .iter()
                .any(|r| r.pid == pid || i64::from(pgrp) == i64::from(r.pid));
            if !known {
                tracing::warn!(target = %inner.target, port, pid, "stopping unrecorded replica");
                let orphan = Replica {
                    pid,
                    port,
                    version: None,
                    command: client::cmdline(pid).unwrap_or_default(),
                    started_at_ms: 0,
                    seq: 0,
                    in_traffic: false,
                    pending_traffic: false,
                    retiring: false,
                };
                inner.stop(&orphan).await;
            }
        }
        let current = inner.snapshot()?.current;
        let wanted = inner.snapshot()?.desired.unwrap_or(inner.initial_replicas);
        while inner.snapshot()?.replicas.len() < wanted as usize {
            inner.launch(&current, None, true).await?;
        }
        inner.save().await?;
        self.start_poller();
        Ok(inner.target_state())
    }

    async fn state(&self) -> Result<TargetState, ProviderError> {
        if lock(&self.inner.st).is_none() {
            return Err(failed("provider not started"));
        }
        Ok(self.inner.target_state())
    }

    async fn execute(&self, req: &ActionRequest) -> Result<ActionOutcome, ProviderError> {
        let inner = &self.inner;
        let _op = inner.op_lock.lock().await;
        if let Some(outcome) = inner.with_state(|st| st.actions.recall(req, PROVIDER))?? {
            return Ok(outcome);
        }
        let before = inner.summary();
        let rolled_back = match &req.op {
            ProviderOp::SetReplicas { to, .. } => self.set_replicas(*to).await.map(|_| None),
            ProviderOp::Replace { instance } => self.replace(instance).await.map(|_| None),
            ProviderOp::CircuitOpen { instance } => {
                self.set_traffic(instance, false).await.map(|_| None)
            }
            ProviderOp::CircuitHalfOpen { instance } | ProviderOp::CircuitClose { instance } => {
                self.set_traffic(instance, true).await.map(|_| None)
            }
            ProviderOp::Redeploy {
                version,
                command,
                env,
            } => {
                let current = inner.snapshot()?.current;
                let target = Deployment {
                    command: command.clone().unwrap_or(current.command),
                    version: version.clone().or(current.version),
                    env: with_env(&current.env, env),
                };
                self.redeploy(target).await
            }
            ProviderOp::Rollback => {
                let previous = inner
                    .snapshot()?
                    .previous
                    .ok_or_else(|| rejected("no previous version to roll back to"))?;
                self.redeploy(previous).await
            }
        }?;
        let outcome = ActionOutcome {
            before,
            after: inner.summary(),
            rolled_back,
        };
        inner.with_state(|st| st.actions.record(req, outcome.clone()))?;
        inner.save().await?;
        Ok(outcome)
    }

    async fn reconcile(&self, req: &ActionRequest) -> Result<Reconciliation, ProviderError> {
        let st = self.inner.snapshot()?;
        if st.actions.outcome(&req.action_id).is_some() {
            return Ok(Reconciliation::Applied);
        }
        Ok(reconcile_op(&req.op, &st, &self.inner.target_state()))
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
        let Ok(st) = inner.snapshot() else { return };
        let _ = inner.with_state(|st| st.replicas.iter_mut().for_each(|r| r.in_traffic = false));
        if let Err(e) = inner.save().await {
            tracing::warn!(target = %inner.target, error = %e, "could not empty the discovery file");
        }
        for r in &st.replicas {
            if let Err(e) = inner.retire(r).await {
                tracing::warn!(target = %inner.target, port = r.port, error = %e, "stopping replica");
            }
        }
    }
}
