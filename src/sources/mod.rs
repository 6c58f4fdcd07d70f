//! Inputs the agent reads from other systems, one folder per kind of source.
//!
//! Owns talking to those systems and mapping their answers onto what the rule
//! engine understands: remote PromQL (`prometheus`), pushed traces written to
//! the store (`otlp`), Alertmanager alerts (`alertmanager`). Must not decide
//! anything (the rule engine does) and must not act (providers do).
pub mod alertmanager;
pub mod otlp;
pub mod prometheus;
