//! The `haproxy` provider: a target is the server slots of one HAProxy
//! backend, driven through HAProxy's runtime API (no extra crate, no config
//! reload).
//!
//! Owns carrying out scale_out / scale_in / scale, failover and circuit_break
//! on those servers, the agent's view of them (a cache a background poller of
//! `show servers state` refreshes, so [`Provider::state`] never waits on
//! HAProxy), and one small file, `<data_dir>/targets/<target>/haproxy.json`,
//! naming the slots the agent holds out of traffic (see below). Must not
//! decide when to act (the agent does) and must not run the servers
//! (HAProxy routes traffic; something else runs what it routes to).
//!
//! Semantics (see [`view`] for the vocabulary):
//! - Replicas are the target's slots that are not spares; `replicas` counts
//!   them whether in traffic or not (an open circuit keeps its replica).
//! - scale_out enables spare slots in scale order (weight back to the
//!   configured weight, then state `ready`), then, with `add_servers`, adds
//!   servers from the address pool (`add server`, `enable health`, `ready`).
//!   scale_in takes out replicas already out of traffic or unhealthy first,
//!   then the last in scale order: `drain`, wait until their sessions end (at
//!   most `drain_timeout`), then `maint` and weight 0 (the spare mark); added
//!   servers are then deleted (`del server`).
//! - circuit_break: open = `maint` (or `drain`), weight kept; half-open =
//!   `ready` at the half-open weight; closed = `ready` at the configured weight.
//!   On a spare slot (scaled in meanwhile) they do nothing.
//! - failover of slot P: make-before-break. A spare (or an added server) is
//!   enabled first, then P goes to `maint` with weight 0 and becomes a spare.
//!   Without a spare, the backups are made `ready` and P goes to `maint` held
//!   out (still a replica): HAProxy sends traffic to a backup only while no
//!   primary server can take it, so with other primaries in traffic those
//!   carry P's share and the backups stand by. No spare and no backup: refused.
//! - Held-out slots: a slot in `maint` with its weight is a replica out of
//!   traffic, a `disabled` one from the config is a spare — but HAProxy keeps
//!   the `disabled` mark after the slot is enabled, so slots the agent put in
//!   `maint` for a circuit or a failover are named in `haproxy.json`. It lives
//!   in `data_dir` next to the audit log that remembers the open circuits.
//! - Idempotency: every op converges on its goal from the state HAProxy
//!   reports (setting a state that holds is skipped), outcomes of the last
//!   100 action ids are kept in memory, and the replacement a failover chose
//!   is kept per action id so a retry does not enable a second one.
//! - Operations are serialised per target; `state()` answers from the cache
//!   and reports the poll's error while HAProxy does not answer.
pub mod config;

pub use config::HaproxyConfig;

use crate::model::ActionKind;

/// What a haproxy target can do. redeploy is not among them: HAProxy routes traffic, it does not run the servers.
pub const KINDS: &[ActionKind] = &{
    use ActionKind::*;
    [ScaleOut, ScaleIn, Scale, Failover, CircuitBreak]
};

#[cfg(feature = "haproxy")]
pub mod client;
#[cfg(feature = "haproxy")]
mod provider;
#[cfg(all(test, feature = "haproxy"))]
mod tests;
#[cfg(feature = "haproxy")]
pub mod view;

#[cfg(feature = "haproxy")]
pub use provider::{build, HaproxyProvider};

/// The adapter for `target`: this binary was built without it.
#[cfg(not(feature = "haproxy"))]
pub fn build(
    _target: &str,
    _cfg: &HaproxyConfig,
    _ctx: &crate::providers::ProviderContext,
) -> Result<std::sync::Arc<dyn crate::providers::Provider>, crate::model::ProviderError> {
    Err(crate::model::ProviderError::Rejected {
        provider: "haproxy".into(),
        message: "this homeostat was built without the `haproxy` feature".into(),
    })
}
