//! Inputs the agent reads from other systems, one folder per kind of source.
//!
//! Owns talking to those systems and mapping their answers onto what the rule
//! engine understands. Must not decide anything (the rule engine does) and must
//! not act (providers do).
pub mod alertmanager;
pub mod prometheus;
