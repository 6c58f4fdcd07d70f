//! The vocabulary every part of the agent shares: label sets and timestamps,
//! action kinds and modes, why a rule fired and why the guard refused, what the
//! executor and a provider say to each other, what a query gave, and who did
//! something.
//!
//! A leaf at the bottom of the crate: it imports nothing of ours, does no I/O
//! and reads no clock. Types here carry no behaviour beyond naming and
//! converting themselves; the modules that own a decision keep its logic.
pub mod action;
pub mod alert;
pub mod cause;
pub mod circuit;
pub mod identity;
pub mod labels;
pub mod provider;
pub mod query;
pub mod reason;

pub use action::{ActionKind, Approval, Direction, Mode, Origin};
pub use alert::{AlertInput, AlertKey};
pub use cause::Cause;
pub use circuit::{CircuitChange, CircuitState};
pub use identity::{Identity, Role};
pub use labels::{is_label_name, Labels, METRIC_NAME};
pub use provider::{
    ActionOutcome, ActionRequest, InstanceInfo, ProviderError, ProviderOp, Reconciliation,
    TargetState,
};
pub use query::{QueryOutcome, RemoteQuery, Sample, SourceFailure};
pub use reason::{AlertRef, Reason};

/// Milliseconds since the Unix epoch, as in Prometheus.
pub type TimestampMs = i64;
