//! The `docker` provider: a target is the set of containers labelled
//! `homeostat.target=<target name>` on a Docker engine reached over its Unix
//! socket (Engine API through bollard, version negotiated with the engine).
//!
//! Owns: carrying out scale_out / scale_in / scale, failover and redeploy on
//! those containers. Must not decide when to act (the agent decides); its
//! background poller only observes. Files: `config.rs` (what users write,
//! always compiled), `client.rs` (the Engine API: timeouts, error classes),
//! `spec.rs` (what a new replica is created from), `state.rs` (the state
//! file), `adapter.rs` (the [`Provider`] implementation), `tests.rs`.
//!
//! Semantics worth knowing:
//! - Instances are identified by container name; an op's `instance` may also
//!   be the container id (or a unique prefix) or its address
//!   `127.0.0.1:<host port>` (the scraper's `instance` label).
//! - New replicas copy the newest replica's configuration (image, command,
//!   entrypoint, env, labels, health check, networks with aliases, volumes,
//!   restart policy and the rest of the host config), minus what its image
//!   supplies, and publish the configured `port` on 127.0.0.1 (a port of
//!   `host_ports`, or one the engine picks). Each gets the labels
//!   `homeostat.action=<action id>` (the idempotency key) and, when it
//!   replaces one, `homeostat.replaces=<name>`.
//! - scale_in removes unhealthy or stopped containers first, then the newest,
//!   each with `docker stop` semantics (stop signal, SIGKILL after
//!   `stop_timeout`), and their anonymous volumes.
//! - failover creates the replacement first (reusing the old host port when
//!   the old container no longer holds it), waits for it to be healthy, then
//!   removes the old one; if the replacement fails, the old one is left as is.
//! - redeploy goes one container at a time (new one healthy before an old one
//!   goes); if a new one is not healthy within `startup_timeout` the new ones
//!   are removed and the old ones recreated, and the outcome carries
//!   [`ActionOutcome::rolled_back`](crate::model::ActionOutcome). The
//!   template before the redeploy is kept in the state file (and the image in
//!   the `homeostat.previous-image` label) for `Rollback`.
//! - Idempotency: outcomes of the last 100 action ids are kept; a retry of an
//!   unfinished action finds what it already created by label and converges.
//! - An unreachable engine at start does not stop the agent: the target is
//!   adopted at the first contact, and every op fails as `unavailable` until then.
pub mod config;

#[cfg(feature = "docker")]
mod adapter;
#[cfg(feature = "docker")]
pub mod client;
#[cfg(feature = "docker")]
pub mod spec;
#[cfg(feature = "docker")]
pub mod state;

#[cfg(all(test, feature = "docker"))]
mod tests;

use std::sync::Arc;

use crate::model::{ActionKind, ProviderError};
use crate::providers::{Provider, ProviderContext};

#[cfg(feature = "docker")]
pub use adapter::DockerProvider;
pub use config::DockerConfig;

/// The adapter's name in config and errors.
pub const PROVIDER: &str = "docker";

/// What a docker target can do. circuit_break is not among them: Docker itself has no traffic control to take a container out of.
pub const KINDS: &[ActionKind] = &{
    use ActionKind::*;
    [ScaleOut, ScaleIn, Scale, Failover, Redeploy]
};

/// The adapter for `target`, as the agent builds it at start-up.
#[cfg(feature = "docker")]
pub fn build(
    target: &str,
    cfg: &DockerConfig,
    ctx: &ProviderContext,
) -> Result<Arc<dyn Provider>, ProviderError> {
    Ok(Arc::new(DockerProvider::new(target, cfg, ctx)?))
}

/// Without the `docker` feature a docker target is refused at start-up.
#[cfg(not(feature = "docker"))]
pub fn build(
    _target: &str,
    _cfg: &DockerConfig,
    _ctx: &ProviderContext,
) -> Result<Arc<dyn Provider>, ProviderError> {
    Err(ProviderError::Rejected {
        provider: PROVIDER.into(),
        message: "this homeostat was built without the `docker` feature".into(),
    })
}
