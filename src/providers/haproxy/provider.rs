//! The [`Provider`] implementation of the haproxy adapter (semantics in the
//! parent module's doc).
//!
//! Owns the order of runtime API commands for each operation, the poller
//! that refreshes the cached state, and the held-out file. Must not parse
//! HAProxy's answers (that is `client`) or interpret server states (`view`).
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::client::{
    failed, not_found, rejected, Client, Endpoint, Server, CHK_ST_CONFIGURED, PROVIDER,
};
use super::config::{self, valid_name, HaproxyConfig, OpenState};
use super::view::{is_added, Role, View};
use crate::locks::lock;
use crate::model::{
    ActionKind, ActionOutcome, ActionRequest, ProviderError, ProviderOp, Reconciliation,
    TargetState,
};
use crate::providers::{CompletedActions, Provider, ProviderContext};

/// `srv_check_state` bit: the health check is administratively enabled.
const CHK_ST_ENABLED: u32 = 0x04;
/// Pause between session counts while scale_in drains servers.
const DRAIN_POLL: Duration = Duration::from_millis(200);
/// Schema of `haproxy.json`.
const HELD_SCHEMA: u32 = 1;

/// The adapter for `target`, as the agent builds it at start-up.
pub fn build(
    target: &str,
    cfg: &HaproxyConfig,
    ctx: &ProviderContext,
) -> Result<Arc<dyn Provider>, ProviderError> {
    Ok(Arc::new(HaproxyProvider::new(
        target,
        cfg.clone(),
        &ctx.data_dir,
    )?))
}

/// A `provider: haproxy` target. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct HaproxyProvider {
    inner: Arc<Inner>,
}

struct Inner {
    target: String,
    cfg: HaproxyConfig,
    client: Client,
    held_path: PathBuf,
    poll_interval: Duration,
    drain_timeout: Duration,
    /// Serialises start and operations.
    op_lock: tokio::sync::Mutex<()>,
    /// The last read of the backend (`None` before `start`).
    cache: Mutex<Option<Result<TargetState, ProviderError>>>,
    /// Slots the agent holds out of traffic (replicas, not spares).
    held: Mutex<BTreeSet<String>>,
    done: Mutex<CompletedActions>,
    /// Replacement server a failover chose, by action id (for its retries).
    chosen: Mutex<HashMap<String, String>>,
    poller: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = lock(&self.poller).take() {
            h.abort();
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HeldFile {
    schema: u32,
    held: BTreeSet<String>,
}

impl HaproxyProvider {
    /// A provider for `target`, keeping its held-out file under
    /// `<data_dir>/targets/<target>/`. Nothing is contacted until [`Provider::start`].
    pub fn new(
        target: impl Into<String>,
        cfg: HaproxyConfig,
        data_dir: impl AsRef<Path>,
    ) -> Result<Self, ProviderError> {
        let target = target.into();
        if target.is_empty() || target.contains(['/', '\\']) || target.starts_with('.') {
            return Err(rejected(format!("invalid target name {target:?}")));
        }
        if !valid_name(&cfg.backend) {
            return Err(rejected(format!(
                "haproxy.backend {:?} is not a HAProxy name",
                cfg.backend
            )));
        }
        if cfg.runtime_api.trim().is_empty() {
            return Err(rejected("haproxy.runtime_api is empty"));
        }
        let data_dir =
            std::path::absolute(data_dir.as_ref()).map_err(|e| failed(format!("data_dir: {e}")))?;
        let client = Client::new(
            Endpoint::parse(cfg.runtime_api.trim()),
            cfg.timeout.unwrap_or(config::DEFAULT_TIMEOUT),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                held_path: data_dir.join("targets").join(&target).join("haproxy.json"),
                poll_interval: cfg.poll_interval.unwrap_or(config::DEFAULT_POLL_INTERVAL),
                drain_timeout: cfg.drain_timeout.unwrap_or(config::DEFAULT_DRAIN_TIMEOUT),
                target,
                cfg,
                client,
                op_lock: tokio::sync::Mutex::new(()),
                cache: Mutex::new(None),
                held: Mutex::new(BTreeSet::new()),
                done: Mutex::new(CompletedActions::default()),
                chosen: Mutex::new(HashMap::new()),
                poller: Mutex::new(None),
            }),
        })
    }

    /// The file naming the slots the agent holds out of traffic.
    pub fn held_file(&self) -> &Path {
        &self.inner.held_path
    }

    fn start_poller(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.poll_interval;
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                inner.poll().await;
            }
        });
        if let Some(old) = lock(&self.inner.poller).replace(handle) {
            old.abort();
        }
    }
}

impl Inner {
    async fn read(&self) -> Result<Vec<Server>, ProviderError> {
        self.client.servers(&self.cfg.backend).await
    }

    fn held(&self) -> BTreeSet<String> {
        lock(&self.held).clone()
    }

    /// Cache the agent's view of `servers`.
    fn remember(&self, servers: &[Server]) -> TargetState {
        let held = self.held();
        let st = View::new(&self.cfg, servers.to_vec(), &held).target_state();
        *lock(&self.cache) = Some(Ok(st.clone()));
        st
    }

    async fn poll(&self) {
        match self.read().await {
            Ok(servers) => {
                self.remember(&servers);
            }
            Err(e) => {
                tracing::debug!(target = %self.target, error = %e, "haproxy poll failed");
                *lock(&self.cache) = Some(Err(e));
            }
        }
    }

    fn load_held(&self) -> Result<BTreeSet<String>, ProviderError> {
        match std::fs::read(&self.held_path) {
            Ok(bytes) => serde_json::from_slice::<HeldFile>(&bytes)
                .map(|f| f.held)
                .map_err(|e| failed(format!("corrupt {}: {e}", self.held_path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(failed(format!("read {}: {e}", self.held_path.display()))),
        }
    }

    /// Change the held-out set and persist it (before the change it protects).
    async fn set_held(&self, name: &str, held: bool) -> Result<(), ProviderError> {
        let changed = {
            let mut h = lock(&self.held);
            if held {
                h.insert(name.to_string())
            } else {
                h.remove(name)
            }
        };
        if changed {
            self.save_held().await?;
        }
        Ok(())
    }

    async fn save_held(&self) -> Result<(), ProviderError> {
        let file = HeldFile {
            schema: HELD_SCHEMA,
            held: self.held(),
        };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| failed(format!("encode held-out slots: {e}")))?;
        let path = self.held_path.clone();
        tokio::task::spawn_blocking(move || {
            crate::providers::process::client::write_atomic(&path, &bytes)
                .map_err(|e| failed(format!("write {}: {e}", path.display())))
        })
        .await
        .map_err(|e| failed(format!("held-out writer: {e}")))?
    }

    /// `<backend>/<server>`, refusing a name that is not a plain HAProxy name.
    fn srv(&self, name: &str) -> Result<String, ProviderError> {
        if !valid_name(name) {
            return Err(rejected(format!(
                "server name {name:?} is not a HAProxy name"
            )));
        }
        Ok(format!("{}/{name}", self.cfg.backend))
    }

    async fn set_state(&self, s: &Server, state: &str) -> Result<(), ProviderError> {
        if s.admin_state() == state {
            return Ok(());
        }
        let srv = self.srv(&s.name)?;
        self.client
            .act(&format!("set server {srv} state {state}"))
            .await?;
        tracing::info!(target = %self.target, server = %s.name, from = s.admin_state(), to = state, "haproxy server state");
        Ok(())
    }

    async fn set_weight(&self, s: &Server, weight: u32) -> Result<(), ProviderError> {
        if s.weight == weight {
            return Ok(());
        }
        let srv = self.srv(&s.name)?;
        self.client
            .act(&format!("set weight {srv} {weight}"))
            .await?;
        tracing::info!(target = %self.target, server = %s.name, from = s.weight, to = weight, "haproxy server weight");
        Ok(())
    }

    /// Put a slot into traffic at its configured weight.
    async fn enable(&self, s: &Server, added: bool) -> Result<(), ProviderError> {
        self.set_weight(s, s.initial_weight.max(1)).await?;
        // An added server's check starts disabled ("enable health").
        if added && s.check_state & CHK_ST_CONFIGURED != 0 && s.check_state & CHK_ST_ENABLED == 0 {
            let srv = self.srv(&s.name)?;
            self.client.act(&format!("enable health {srv}")).await?;
        }
        self.set_state(s, "ready").await?;
        self.set_held(&s.name, false).await
    }

    /// Make `s` a spare: maintenance with weight 0.
    async fn make_spare(&self, s: &Server) -> Result<(), ProviderError> {
        self.set_state(s, "maint").await?;
        self.set_weight(s, 0).await?;
        self.set_held(&s.name, false).await
    }

    /// `add server` for `addr` under the next free `<prefix><n>` name, then
    /// into traffic. Returns its name.
    async fn add_server(&self, servers: &[Server], addr: &str) -> Result<String, ProviderError> {
        let Some(add) = &self.cfg.add_servers else {
            return Err(rejected("add_servers is not configured"));
        };
        let name = (1u32..)
            .map(|n| format!("{}{n}", add.name_prefix))
            .find(|n| !servers.iter().any(|s| &s.name == n))
            .ok_or_else(|| failed("no free server name"))?;
        let srv = self.srv(&name)?;
        self.client
            .act_expect(
                &format!("add server {srv} {addr} {}", self.cfg.add_options()),
                "New server registered.",
            )
            .await?;
        tracing::info!(target = %self.target, server = %name, %addr, "haproxy server added");
        let now = self.read().await?;
        let s = now
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| failed(format!("server {srv} vanished right after `add server`")))?;
        self.enable(s, true).await?;
        Ok(name)
    }

    /// Pool addresses no server of the backend uses yet.
    fn free_addresses(&self, servers: &[Server]) -> Vec<String> {
        let Some(add) = &self.cfg.add_servers else {
            return Vec::new();
        };
        let used: BTreeSet<std::net::SocketAddr> = servers
            .iter()
            .filter_map(|s| s.address().parse().ok())
            .collect();
        add.addresses
            .iter()
            .filter(|a| a.parse().is_ok_and(|a| !used.contains(&a)))
            .cloned()
            .collect()
    }

    async fn set_replicas(&self, servers: Vec<Server>, to: u32) -> Result<(), ProviderError> {
        let held = self.held();
        let view = View::new(&self.cfg, servers.clone(), &held);
        let current = view.replicas().len();
        let to = to as usize;
        if to > current {
            let need = to - current;
            let spares: Vec<Server> = view.spares().into_iter().cloned().collect();
            let pool = self.free_addresses(&servers);
            if spares.len() + pool.len() < need {
                return Err(rejected(format!(
                    "backend {} has {current} replicas, {} spare slots{}: {to} replicas are out of reach",
                    self.cfg.backend,
                    spares.len(),
                    if self.cfg.add_servers.is_some() {
                        format!(" and {} free add_servers addresses", pool.len())
                    } else {
                        String::new()
                    }
                )));
            }
            for s in spares.iter().take(need) {
                let added = view.is_added(s);
                self.enable(s, added).await?;
            }
            for addr in pool.iter().take(need.saturating_sub(spares.len())) {
                let now = self.read().await?;
                self.add_server(&now, addr).await?;
            }
        } else if to < current {
            let victims: Vec<Server> = view.victims(current - to).into_iter().cloned().collect();
            self.retire(&victims).await?;
        }
        Ok(())
    }

    /// scale_in: drain, wait for sessions to end (bounded), then spare (and
    /// delete added servers).
    async fn retire(&self, victims: &[Server]) -> Result<(), ProviderError> {
        for v in victims.iter().filter(|v| !v.maint()) {
            self.set_state(v, "drain").await?;
        }
        let deadline = crate::clock::monotonic_now() + self.drain_timeout;
        let latest = loop {
            let now = self.read().await?;
            let latest: Vec<Server> = victims
                .iter()
                .filter_map(|v| now.iter().find(|s| s.name == v.name).cloned())
                .collect();
            let busy: Vec<&Server> = latest
                .iter()
                .filter(|s| !s.maint() && s.sessions > 0)
                .collect();
            if busy.is_empty() {
                break latest;
            }
            if crate::clock::monotonic_now() >= deadline {
                tracing::warn!(target = %self.target, servers = ?busy.iter().map(|s| &s.name).collect::<Vec<_>>(), "sessions still open after drain_timeout; going to maint anyway");
                break latest;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        };
        for s in &latest {
            self.make_spare(s).await?;
        }
        for s in latest.iter().filter(|s| is_added(&self.cfg, s)) {
            let srv = self.srv(&s.name)?;
            match self
                .client
                .act_expect(&format!("del server {srv}"), "Server deleted.")
                .await
            {
                Ok(()) => {
                    tracing::info!(target = %self.target, server = %s.name, "haproxy server deleted")
                }
                // Still has connections: it stays as a spare (maint, weight 0).
                Err(e @ ProviderError::Conflict { .. }) => {
                    tracing::warn!(target = %self.target, server = %s.name, error = %e, "added server kept as a spare")
                }
                Err(ProviderError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The slot or backup an instance id names.
    fn resolve(&self, servers: &[Server], instance: &str) -> Result<Server, ProviderError> {
        let held = self.held();
        let view = View::new(&self.cfg, servers.to_vec(), &held);
        view.find(instance).cloned().ok_or_else(|| {
            not_found(format!(
                "no server {instance:?} among target {}'s servers of backend {} (name, backend/name or addr:port)",
                self.target, self.cfg.backend
            ))
        })
    }

    fn is_spare(&self, servers: &[Server], s: &Server) -> bool {
        let held = self.held();
        View::new(&self.cfg, servers.to_vec(), &held).is_spare(s)
    }

    async fn circuit_open(
        &self,
        servers: Vec<Server>,
        instance: &str,
    ) -> Result<(), ProviderError> {
        let s = self.resolve(&servers, instance)?;
        if self.is_spare(&servers, &s) {
            tracing::info!(target = %self.target, server = %s.name, "circuit open on a spare slot: already out of traffic");
            return Ok(());
        }
        // Recorded first: a crash after `maint` must not turn it into a spare.
        self.set_held(&s.name, true).await?;
        if s.maint() {
            return Ok(());
        }
        let state: OpenState = self.cfg.circuit_open.unwrap_or_default();
        self.set_state(&s, state.as_str()).await
    }

    async fn circuit_half_open(
        &self,
        servers: Vec<Server>,
        instance: &str,
    ) -> Result<(), ProviderError> {
        let s = self.resolve(&servers, instance)?;
        if self.is_spare(&servers, &s) {
            tracing::info!(target = %self.target, server = %s.name, "circuit half-open on a spare slot: left out of traffic");
            return Ok(());
        }
        // Lower the weight before it takes traffic again.
        let w = self.cfg.half_open().resolve(s.initial_weight);
        self.set_weight(&s, w).await?;
        self.set_state(&s, "ready").await?;
        self.set_held(&s.name, false).await
    }

    async fn circuit_close(
        &self,
        servers: Vec<Server>,
        instance: &str,
    ) -> Result<(), ProviderError> {
        let s = self.resolve(&servers, instance)?;
        if self.is_spare(&servers, &s) {
            tracing::info!(target = %self.target, server = %s.name, "circuit close on a spare slot: left out of traffic");
            return Ok(());
        }
        self.enable(&s, false).await
    }

    async fn failover(
        &self,
        servers: Vec<Server>,
        instance: &str,
        action_id: &str,
    ) -> Result<(), ProviderError> {
        let held = self.held();
        let view = View::new(&self.cfg, servers.clone(), &held);
        let p = self.resolve(&servers, instance)?;
        if view.role(&p) == Role::Backup {
            return Err(rejected(format!(
                "failover replaces a slot; {} is a backup server",
                p.name
            )));
        }
        if view.is_spare(&p) {
            tracing::info!(target = %self.target, server = %p.name, "failover: already out (a spare)");
            return Ok(());
        }
        // A retry of this action reuses the replacement it chose.
        let chosen = lock(&self.chosen).get(action_id).cloned();
        let replacement = match chosen {
            Some(name) => servers.iter().find(|s| s.name == name).cloned(),
            None => view
                .spares()
                .into_iter()
                .find(|s| s.name != p.name)
                .cloned(),
        };
        if let Some(r) = replacement {
            lock(&self.chosen).insert(action_id.to_string(), r.name.clone());
            self.enable(&r, view.is_added(&r)).await?;
            tracing::info!(target = %self.target, from = %p.name, to = %r.name, "failover to a spare slot");
            return self.make_spare(&p).await;
        }
        if let Some(addr) = self.free_addresses(&servers).first() {
            let name = self.add_server(&servers, addr).await?;
            lock(&self.chosen).insert(action_id.to_string(), name.clone());
            tracing::info!(target = %self.target, from = %p.name, to = %name, "failover to an added server");
            return self.make_spare(&p).await;
        }
        let backups: Vec<Server> = view.backups().into_iter().cloned().collect();
        if backups.is_empty() {
            return Err(rejected(format!(
                "failover of {}: no spare slot{} and no backup server in backend {}",
                p.name,
                if self.cfg.add_servers.is_some() {
                    ", no free add_servers address"
                } else {
                    ""
                },
                self.cfg.backend
            )));
        }
        for b in &backups {
            if b.weight == 0 {
                self.set_weight(b, b.initial_weight.max(1)).await?;
            }
            self.set_state(b, "ready").await?;
        }
        self.set_held(&p.name, true).await?;
        self.set_state(&p, "maint").await?;
        tracing::info!(target = %self.target, from = %p.name, backups = ?backups.iter().map(|b| &b.name).collect::<Vec<_>>(), "failover to the backup servers");
        Ok(())
    }

    /// Check the configured names against the backend.
    fn validate(&self, servers: &[Server]) -> Result<(), ProviderError> {
        let b = &self.cfg.backend;
        let find = |n: &str| servers.iter().find(|s| s.name == n);
        for n in self.cfg.servers.iter().flatten() {
            match find(n) {
                None => {
                    return Err(not_found(format!(
                        "haproxy.servers: backend {b} has no server {n}"
                    )))
                }
                Some(s) if s.backup => {
                    return Err(rejected(format!(
                        "haproxy.servers: {n} is a backup server in HAProxy; list it under haproxy.backups"
                    )))
                }
                Some(_) => {}
            }
        }
        for n in self.cfg.backups.iter().flatten() {
            match find(n) {
                None => {
                    return Err(not_found(format!(
                        "haproxy.backups: backend {b} has no server {n}"
                    )))
                }
                Some(s) if !s.backup => {
                    return Err(rejected(format!(
                        "haproxy.backups: {n} has no `backup` keyword in HAProxy's config, so HAProxy would never use it as a backup"
                    )))
                }
                Some(_) => {}
            }
        }
        let held = self.held();
        let view = View::new(&self.cfg, servers.to_vec(), &held);
        if view.slots().is_empty() && self.cfg.add_servers.is_none() {
            return Err(rejected(format!(
                "backend {b} has no server this target could use (no non-backup server)"
            )));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for HaproxyProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn supports(&self) -> &'static [ActionKind] {
        super::KINDS
    }

    /// A scale-in waits up to `drain_timeout` for the drained servers' sessions.
    fn attempt_timeout(&self, op: &ProviderOp) -> Option<Duration> {
        matches!(op, ProviderOp::SetReplicas { .. })
            .then(|| self.inner.drain_timeout + crate::providers::ATTEMPT_MARGIN)
    }

    async fn start(&self) -> Result<TargetState, ProviderError> {
        let inner = &self.inner;
        let _op = inner.op_lock.lock().await;
        *lock(&inner.held) = inner.load_held()?;
        let state = match inner.read().await {
            Ok(servers) => {
                inner.validate(&servers)?;
                // Forget held slots someone has put back meanwhile.
                let stale: Vec<String> = inner
                    .held()
                    .into_iter()
                    .filter(|n| {
                        !servers
                            .iter()
                            .any(|s| &s.name == n && (s.maint() || s.drain()))
                    })
                    .collect();
                for n in &stale {
                    inner.set_held(n, false).await?;
                }
                inner.remember(&servers)
            }
            // HAProxy may be restarting: come up, and let the poller catch up.
            Err(e @ (ProviderError::Unavailable { .. } | ProviderError::Timeout { .. })) => {
                tracing::warn!(target = %inner.target, error = %e, "HAProxy runtime API not answering at start-up; will keep polling");
                *lock(&inner.cache) = Some(Err(e));
                TargetState::default()
            }
            Err(e) => return Err(e),
        };
        self.start_poller();
        Ok(state)
    }

    async fn state(&self) -> Result<TargetState, ProviderError> {
        match &*lock(&self.inner.cache) {
            None => Err(failed("provider not started")),
            Some(Ok(s)) => Ok(s.clone()),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    async fn execute(&self, req: &ActionRequest) -> Result<ActionOutcome, ProviderError> {
        let inner = &self.inner;
        let _op = inner.op_lock.lock().await;
        if let Some(outcome) = lock(&inner.done).recall(req, PROVIDER)? {
            return Ok(outcome);
        }
        let servers = inner.read().await?;
        let before = {
            let held = inner.held();
            View::new(&inner.cfg, servers.clone(), &held).summary()
        };
        match &req.op {
            ProviderOp::SetReplicas { to, .. } => inner.set_replicas(servers, *to).await?,
            ProviderOp::CircuitOpen { instance } => inner.circuit_open(servers, instance).await?,
            ProviderOp::CircuitHalfOpen { instance } => {
                inner.circuit_half_open(servers, instance).await?
            }
            ProviderOp::CircuitClose { instance } => inner.circuit_close(servers, instance).await?,
            ProviderOp::Replace { instance } => {
                inner.failover(servers, instance, &req.action_id).await?
            }
            ProviderOp::Redeploy { .. } | ProviderOp::Rollback => {
                return Err(ProviderError::Unsupported {
                    provider: PROVIDER.into(),
                    kind: ActionKind::Redeploy,
                })
            }
        }
        let now = inner.read().await?;
        inner.remember(&now);
        let after = {
            let held = inner.held();
            View::new(&inner.cfg, now, &held).summary()
        };
        let outcome = ActionOutcome {
            before,
            after,
            rolled_back: None,
        };
        lock(&inner.chosen).remove(&req.action_id);
        lock(&inner.done).record(req, outcome.clone());
        Ok(outcome)
    }

    async fn reconcile(&self, req: &ActionRequest) -> Result<Reconciliation, ProviderError> {
        let inner = &self.inner;
        if lock(&inner.done).outcome(&req.action_id).is_some() {
            return Ok(Reconciliation::Applied);
        }
        let servers = inner.read().await?;
        let held = inner.held();
        Ok(View::new(&inner.cfg, servers, &held).reconcile(&req.op))
    }

    async fn shutdown(&self, _stop_instances: bool) {
        // HAProxy's servers are not ours to stop: only the poller ends.
        if let Some(h) = lock(&self.inner.poller).take() {
            h.abort();
        }
    }
}
