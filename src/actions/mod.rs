//! Decisions, the guard, the executor and the semantics of each action kind.
//!
//! Owns: what a decision is ([`Decision`]), the guard that turns decisions into
//! intents or suppressions (DESIGN.md §4 order), what each action kind means
//! to it (one file per kind in [`kinds`]), the executor contract (intent
//! logged before the provider call), and the circuit-breaker state machine. Must not read the clock: `now` is passed in
//! (the executor reads time only through [`crate::clock::Clock`]).
//!
//! The agent loop, per decision:
//! `verdict = guard.check(&d, &limits, &journal.state(), &target_state, now)`;
//! `journal.record_decision(&d, &verdict, now)`; on `Verdict::Act(intent)`,
//! `executor.start(&intent, provider)` (writes `action_started` before the next
//! decision is checked) and then `executor.finish(started, provider).await`
//! (may be spawned), or simply `executor.run(&intent, provider).await`. After each rule evaluation,
//! `journal.state().note_evaluation(rule, at, &decisions)`, then run the intents
//! of `journal.state().due_circuits(now)` (`transition.intent(now)`) the same way.
pub mod circuit;
pub mod executor;
pub mod guard;
pub mod intent;
pub mod journal;
pub mod kinds;
pub mod limits;
pub mod state;
pub mod types;

#[cfg(test)]
mod tests;

pub use circuit::{Circuit, CircuitBook, CircuitTransition};
pub use executor::{ExecError, Executor, ExecutorConfig, RunResult, Started, StartedAction};
pub use guard::{Guard, Verdict};
pub use intent::Intent;
pub use journal::{AuditSink, Journal, SinkError};
pub use limits::TargetLimits;
pub use state::{GuardState, OpenAction};
pub use types::*;
