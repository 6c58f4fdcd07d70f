//! The audit log: append-only, fsync'd, sha-256 hash-chained JSONL (DESIGN.md §5).
//!
//! Owns the event schema ([`AuditEvent`]), writing (one line per event, fsync,
//! rotation by size, never rewritten), reading with filters, chain verification
//! and replay: the log is the agent's write-ahead log, so cooldowns, circuit
//! states and open actions are rebuilt from it at start-up.
pub mod event;

pub use event::*;
