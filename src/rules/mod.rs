//! Rule files, their validation, and the per-label-set rule state machine.
//!
//! Owns: the rule file format (DESIGN.md §3) and loading given files in a
//! given context, with positioned errors (`load`, `action`, `when`);
//! templates (`template`); the Prometheus-like state machine that turns
//! query outcomes into [`crate::actions::Decision`]s (`state`, `join`,
//! `decision`); Alertmanager trigger rules (`alerts`); and the engine that
//! keeps every rule's state (`engine`). Must not read the clock, the store,
//! the network or the agent config: the agent evaluates the queries and
//! passes their outcomes and `now` in, and says which targets and sources
//! exist.
mod action;
mod alerts;
mod decision;
mod engine;
mod join;
mod load;
mod raw;
mod rule;
mod state;
mod template;
mod when;

#[cfg(test)]
mod tests;

pub use action::Catalog;
pub use alerts::AlertOutcome;
pub use engine::Engine;
pub use join::join;
pub use load::{load_files, load_str, LoadContext};
pub use raw::OnNoData;
pub use rule::{Rule, RuleGroup, RuleQuery, RuleSet, Trigger};
pub use state::{AlertState, Evaluation, InstanceStatus, NoData, RuleState, RuleStatus};
pub use template::Template;
