//! An instance's circuit (closed → open → half-open → closed) and one change
//! of it, as the `circuit_changed` audit event records it. Pure data: the
//! breaker's logic is in actions/kinds/circuit_break.rs.
use serde::{Deserialize, Serialize};

/// State of one instance's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// A state change, as recorded in a `circuit_changed` event's `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitChange {
    pub from: CircuitState,
    pub to: CircuitState,
    /// How long the circuit stays open (meaningful for `open` and `half_open`).
    pub open_for_ms: u64,
}
