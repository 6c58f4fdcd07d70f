//! Rule files, their validation, and the per-label-set rule state machine.
//!
//! Owns: the rule file format (DESIGN.md §3) and its loading with positioned
//! errors ([`load`]), templates ([`template`]), the Prometheus-like state machine
//! that turns query outcomes into [`crate::actions::Decision`]s ([`engine`]), and
//! `check` ([`check()`]). Must not read the clock, the store or the network: the
//! agent evaluates queries and passes their outcomes and `now` in.
pub mod engine;
pub mod load;
pub mod raw;
pub mod template;

mod check;
#[cfg(test)]
mod tests;

pub use check::{check, check_with, CheckSummary};
pub use engine::{
    join, AlertState, Engine, Evaluation, InstanceStatus, NoData, RuleState, RuleStatus,
};
pub use load::{
    catalog_for, load_files, load_rules, load_str, Catalog, LoadContext, Rule, RuleGroup,
    RuleQuery, RuleSet,
};
pub use raw::OnNoData;
pub use template::Template;
