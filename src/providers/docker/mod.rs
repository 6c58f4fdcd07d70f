//! The `docker` provider (Docker). Work in progress: the adapter is being built
//! (issue 4); until it lands a docker target is refused at start-up.
pub mod config;

use std::sync::Arc;

use crate::actions::ActionKind;
use crate::providers::{Provider, ProviderContext, ProviderError};

pub use config::DockerConfig;

/// What a docker target can do. circuit_break is not among them: Docker itself has no traffic control to take a container out of.
pub const KINDS: &[ActionKind] = &{
    use ActionKind::*;
    [ScaleOut, ScaleIn, Scale, Failover, Redeploy]
};

/// The adapter for `target`, as the agent builds it at start-up.
pub fn build(
    _target: &str,
    _cfg: &DockerConfig,
    _ctx: &ProviderContext,
) -> Result<Arc<dyn Provider>, ProviderError> {
    Err(ProviderError::Rejected {
        provider: "docker".into(),
        message: if cfg!(feature = "docker") {
            "the docker adapter is not implemented yet".into()
        } else {
            "this homeostat was built without the `docker` feature".into()
        },
    })
}
