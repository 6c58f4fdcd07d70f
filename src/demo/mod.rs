//! The demo: a service worth scaling and the load that makes it need scaling.
//!
//! Owns the demo HTTP service ([`service`], run as `homeostat demo-service`) and
//! the load generator ([`loadgen`]) that spreads requests over the replicas listed
//! in a discovery file. Must not drive the agent: the demo driver does that.
pub mod loadgen;
pub mod scenario;
pub mod service;
