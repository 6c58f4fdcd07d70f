//! The target as seen in one read of the backend: which servers are its
//! slots, spares and backups, and what the agent's [`TargetState`] is.
//!
//! Owns the meaning of HAProxy's server states for a target (pure functions of
//! the servers HAProxy reported, the config, and the set of slots the agent
//! holds out of traffic): replica count, spare slots, the order scale_out and
//! scale_in use, instance ids, the `before`/`after` summaries and what
//! `reconcile` answers. Must not talk to HAProxy or to the disk.
//!
//! Vocabulary:
//! - slot: a server the target scales over (`servers`, default every
//!   non-backup server; plus servers added with the `add_servers` prefix).
//! - spare: a slot forced into maintenance with weight 0 (how scale_in leaves
//!   it) or still `disabled` from the configuration — unless the agent holds it
//!   out for an open circuit or a failover. Spares are not replicas.
//! - replica: every other slot, in traffic or not (an open circuit keeps its
//!   replica: the server is still there, only out of traffic).
//! - backup: a server with HAProxy's `backup` keyword that failover may switch to.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::client::{Server, ADMF_FMAINT};
use super::config::HaproxyConfig;
use crate::model::{InstanceInfo, ProviderOp, Reconciliation, TargetState};

/// A server added with `add server` (its name has the `add_servers` prefix).
pub fn is_added(cfg: &HaproxyConfig, s: &Server) -> bool {
    cfg.add_servers
        .as_ref()
        .is_some_and(|a| s.name.starts_with(&a.name_prefix))
}

/// What a server is to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Slot,
    Backup,
    /// Another server of the backend that this target does not manage.
    Other,
}

/// One read of the backend, interpreted for a target.
#[derive(Debug, Clone)]
pub struct View<'a> {
    pub cfg: &'a HaproxyConfig,
    pub servers: Vec<Server>,
    pub held: &'a BTreeSet<String>,
}

impl<'a> View<'a> {
    pub fn new(cfg: &'a HaproxyConfig, servers: Vec<Server>, held: &'a BTreeSet<String>) -> Self {
        Self { cfg, servers, held }
    }

    /// A server added by this target with `add server` (by its name prefix).
    pub fn is_added(&self, s: &Server) -> bool {
        is_added(self.cfg, s)
    }

    pub fn role(&self, s: &Server) -> Role {
        let listed_backup = match &self.cfg.backups {
            Some(list) => list.contains(&s.name),
            None => s.backup,
        };
        if listed_backup {
            return Role::Backup;
        }
        if self.is_added(s) {
            return Role::Slot;
        }
        let slot = match &self.cfg.servers {
            Some(list) => list.contains(&s.name),
            None => !s.backup,
        };
        if slot {
            Role::Slot
        } else {
            Role::Other
        }
    }

    /// Not a replica: forced into maintenance with weight 0, `disabled` in
    /// the config, or added by the agent — and not held out by the agent.
    pub fn is_spare(&self, s: &Server) -> bool {
        s.admin & ADMF_FMAINT != 0
            && !self.held.contains(&s.name)
            && (s.weight == 0 || s.config_disabled() || self.is_added(s))
    }

    /// Position in scale order: the `servers` list order (or server id), then
    /// added servers by id.
    fn order_key(&self, s: &Server) -> (u8, usize, u32) {
        if self.is_added(s) {
            return (1, 0, s.id);
        }
        match &self.cfg.servers {
            Some(list) => (
                0,
                list.iter().position(|n| n == &s.name).unwrap_or(usize::MAX),
                s.id,
            ),
            None => (0, 0, s.id),
        }
    }

    /// The slots in scale order.
    pub fn slots(&self) -> Vec<&Server> {
        let mut v: Vec<&Server> = self
            .servers
            .iter()
            .filter(|s| self.role(s) == Role::Slot)
            .collect();
        v.sort_by_key(|s| self.order_key(s));
        v
    }

    pub fn backups(&self) -> Vec<&Server> {
        self.servers
            .iter()
            .filter(|s| self.role(s) == Role::Backup)
            .collect()
    }

    /// Slots that are replicas, in scale order.
    pub fn replicas(&self) -> Vec<&Server> {
        self.slots()
            .into_iter()
            .filter(|s| !self.is_spare(s))
            .collect()
    }

    /// Spare slots in the order scale_out takes them: those whose last check
    /// did not fail first, then scale order.
    pub fn spares(&self) -> Vec<&Server> {
        let mut v: Vec<(usize, &Server)> = self
            .slots()
            .into_iter()
            .enumerate()
            .filter(|(_, s)| self.is_spare(s))
            .collect();
        v.sort_by_key(|(i, s)| (s.known_failed(), *i));
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// The `k` replicas scale_in takes out: those already out of traffic or
    /// unhealthy first, then the last in scale order.
    pub fn victims(&self, k: usize) -> Vec<&Server> {
        let mut v: Vec<(usize, &Server)> = self.replicas().into_iter().enumerate().collect();
        v.sort_by_key(|(i, s)| (s.eligible() && s.healthy(), std::cmp::Reverse(*i)));
        v.into_iter().take(k).map(|(_, s)| s).collect()
    }

    /// Does HAProxy send new load-balanced requests to `s`? A backup server
    /// only gets them while no primary server of the backend can take them.
    pub fn in_traffic(&self, s: &Server) -> bool {
        if !s.eligible() {
            return false;
        }
        if s.backup {
            return !self.servers.iter().any(|p| !p.backup && p.eligible());
        }
        true
    }

    /// The address the scraper scrapes (and rules name instances by).
    pub fn scrape_address(&self, s: &Server) -> String {
        super::client::join_host_port(&s.addr, self.cfg.metrics_port.unwrap_or(s.port))
    }

    /// The slot or backup server an instance id names: the server name,
    /// `backend/server`, `addr:port` or `addr:metrics_port`.
    pub fn find(&self, instance: &str) -> Option<&Server> {
        let id = instance.trim();
        let id = match id.split_once('/') {
            Some((b, s)) if b == self.cfg.backend => s,
            _ => id,
        };
        let ours = |s: &&Server| self.role(s) != Role::Other;
        self.servers
            .iter()
            .filter(ours)
            .find(|s| s.name == id)
            .or_else(|| {
                self.servers
                    .iter()
                    .filter(ours)
                    .find(|s| s.address() == id || self.scrape_address(s) == id)
            })
    }

    /// The agent's view: replicas and instances (replica slots, then backups).
    pub fn target_state(&self) -> TargetState {
        let info = |s: &Server| InstanceInfo {
            id: s.name.clone(),
            address: Some(self.scrape_address(s)),
            healthy: s.healthy(),
            in_traffic: self.in_traffic(s),
            version: None,
            labels: BTreeMap::from([
                ("backend".to_string(), self.cfg.backend.clone()),
                ("server".to_string(), s.name.clone()),
            ]),
        };
        let replicas = self.replicas();
        let mut instances: Vec<InstanceInfo> = replicas.iter().map(|s| info(s)).collect();
        instances.extend(self.backups().into_iter().map(info));
        TargetState {
            replicas: replicas.len() as u32,
            instances,
            version: None,
        }
    }

    /// `before`/`after` of an action: the replica count and every server of the target.
    pub fn summary(&self) -> serde_json::Value {
        let servers: Vec<serde_json::Value> = self
            .slots()
            .into_iter()
            .chain(self.backups())
            .map(|s| {
                let role = match self.role(s) {
                    Role::Backup => "backup",
                    _ if self.is_spare(s) => "spare",
                    _ => "replica",
                };
                json!({
                    "server": s.name,
                    "role": role,
                    "state": s.admin_state(),
                    "weight": s.weight,
                    "in_traffic": self.in_traffic(s),
                })
            })
            .collect();
        json!({
            "backend": self.cfg.backend,
            "replicas": self.replicas().len(),
            "servers": servers,
        })
    }

    /// Did `op` take effect, judging from this read?
    pub fn reconcile(&self, op: &ProviderOp) -> Reconciliation {
        let half = |s: &Server| self.cfg.half_open().resolve(s.initial_weight);
        match op {
            ProviderOp::SetReplicas { from, to } => {
                let n = self.replicas().len() as u32;
                if n == *to {
                    Reconciliation::Applied
                } else if n == *from {
                    Reconciliation::NotApplied
                } else {
                    Reconciliation::Unknown
                }
            }
            ProviderOp::CircuitOpen { instance } | ProviderOp::Replace { instance } => {
                match self.find(instance) {
                    Some(s) if !self.in_traffic(s) && (s.maint() || s.drain()) => {
                        Reconciliation::Applied
                    }
                    Some(s) if s.eligible() => Reconciliation::NotApplied,
                    _ => Reconciliation::Unknown,
                }
            }
            ProviderOp::CircuitHalfOpen { instance } => match self.find(instance) {
                Some(s) if s.eligible() && s.weight == half(s) => Reconciliation::Applied,
                Some(s) if s.maint() || s.drain() => Reconciliation::NotApplied,
                _ => Reconciliation::Unknown,
            },
            ProviderOp::CircuitClose { instance } => match self.find(instance) {
                Some(s) if s.eligible() && s.weight == s.initial_weight.max(1) => {
                    Reconciliation::Applied
                }
                Some(s) if s.maint() || s.drain() || s.weight == half(s) => {
                    Reconciliation::NotApplied
                }
                _ => Reconciliation::Unknown,
            },
            ProviderOp::Redeploy { .. } | ProviderOp::Rollback => Reconciliation::Unknown,
        }
    }
}
