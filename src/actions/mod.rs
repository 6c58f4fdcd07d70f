//! Decisions, the guard, the executor and the semantics of each action kind.
//!
//! Owns: what a decision is ([`Decision`]), the guard that turns decisions into
//! intents or suppressions (DESIGN.md §4 order), the executor contract (intent
//! logged before the provider call), and per-kind state machines (circuit
//! breaker, target tracking, redeploy). Must not read the clock: `now` is passed in.
pub mod types;

pub use types::*;
