//! The `haproxy` provider (HAProxy). Work in progress: the adapter is being built
//! (issue 4); until it lands a haproxy target is refused at start-up.
pub mod config;

use std::sync::Arc;

use crate::actions::ActionKind;
use crate::providers::{Provider, ProviderContext, ProviderError};

pub use config::HaproxyConfig;

/// What a haproxy target can do. redeploy is not among them: HAProxy routes traffic, it does not run the servers.
pub const KINDS: &[ActionKind] = &{
    use ActionKind::*;
    [ScaleOut, ScaleIn, Scale, Failover, CircuitBreak]
};

/// The adapter for `target`, as the agent builds it at start-up.
pub fn build(
    _target: &str,
    _cfg: &HaproxyConfig,
    _ctx: &ProviderContext,
) -> Result<Arc<dyn Provider>, ProviderError> {
    Err(ProviderError::Rejected {
        provider: "haproxy".into(),
        message: if cfg!(feature = "haproxy") {
            "the haproxy adapter is not implemented yet".into()
        } else {
            "this homeostat was built without the `haproxy` feature".into()
        },
    })
}
