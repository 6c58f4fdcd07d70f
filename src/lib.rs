//! homeostat: an autoscaling monitoring-and-remediation agent.
//!
//! Data flows one way (DESIGN.md §1): sources write the [`store`]; the [`rules`]
//! engine reads it through [`query`] and emits decisions; the [`actions`] guard
//! turns decisions into intents or suppressions; the executor runs intents through
//! [`providers`]; every step writes the [`audit`] log.
#![forbid(unsafe_code)]

pub mod actions;
pub mod agent;
pub mod audit;
pub mod clock;
pub mod config;
pub mod demo;
pub mod exposition;
pub mod locks;
pub mod model;
pub mod providers;
pub mod query;
pub mod redact;
pub mod rules;
pub mod ruletest;
pub mod scrape;
pub mod server;
pub mod sources;
pub mod spec;
pub mod store;
pub mod telemetry;
