//! The `kubernetes` provider (Kubernetes). Work in progress: the adapter is being built
//! (issue 4); until it lands a kubernetes target is refused at start-up.
pub mod config;

use std::sync::Arc;

use crate::actions::ActionKind;
use crate::providers::{Provider, ProviderContext, ProviderError};

pub use config::KubernetesConfig;

/// What a kubernetes target can do. All six.
pub const KINDS: &[ActionKind] = &{
    use ActionKind::*;
    [ScaleOut, ScaleIn, Scale, Failover, CircuitBreak, Redeploy]
};

/// The adapter for `target`, as the agent builds it at start-up.
pub fn build(
    _target: &str,
    _cfg: &KubernetesConfig,
    _ctx: &ProviderContext,
) -> Result<Arc<dyn Provider>, ProviderError> {
    Err(ProviderError::Rejected {
        provider: "kubernetes".into(),
        message: if cfg!(feature = "kubernetes") {
            "the kubernetes adapter is not implemented yet".into()
        } else {
            "this homeostat was built without the `kubernetes` feature".into()
        },
    })
}
