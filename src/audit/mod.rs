//! The audit log: append-only, fsync'd, sha-256 hash-chained JSONL (DESIGN.md §5).
//!
//! Owns the event schema ([`AuditEvent`]), writing (one line per event, fsync,
//! rotation by size, never rewritten), reading with filters, chain verification
//! and replay: the log is the agent's write-ahead log, so cooldowns, circuit
//! states and open actions are rebuilt from it at start-up.
pub mod event;

pub use event::*;

// API CONTRACT (being implemented; signatures fixed):
//   AuditLog::open(dir: &Path, max_file_bytes: u64) -> Result<AuditLog, AuditError>
//   AuditLog::append(&self, ev: AuditEvent, now: TimestampMs) -> Result<AuditEvent, AuditError>
//        (thread-safe via an internal Mutex; fills seq, ts, ts_ms, prev_hash, hash; fsyncs before returning)
//   read_all(dir: &Path) -> Result<Vec<AuditEvent>, AuditError>       (all files, in order)
//   verify(dir: &Path) -> Result<VerifyReport, AuditError>
//   replay(events: &[AuditEvent]) -> RebuiltState
