//! The audit log: append-only, fsync'd, sha-256 hash-chained JSONL (DESIGN.md §5).
//!
//! Owns the event schema ([`AuditEvent`]), writing ([`AuditLog`]: one line per
//! event, fsync, rotation by size, never rewritten), reading with filters
//! ([`read_all`], [`query`], [`open_actions`]), chain verification ([`verify`])
//! and the library half of `homeostat audit` ([`cli`]). It does not fold events
//! into agent state: that replay lives in the actions module, which reads the
//! log through this module. It never reads the clock: `now` is passed in.
//!
//! # Files
//!
//! A log is a directory of `audit-NNNNNN.jsonl` files (`NNNNNN` = 1, 2, 3 …,
//! zero-padded to six digits, ordered by the parsed number, so more than a
//! million files still sort correctly). Other files in the directory are
//! ignored. The writer appends to the highest-numbered file and starts the next
//! number when a line would push the file past `max_file_bytes` (a single line
//! bigger than the limit still goes into a fresh file of its own). Files are
//! only ever created and appended to, never truncated or rewritten.
//!
//! # The hash chain (what a third party checks)
//!
//! Each line is one JSON object, UTF-8, terminated by `\n`, and its **last member
//! is `"hash"`**. The writer serialises the event with `hash` set to `""`, so the
//! line ends in `,"hash":""}`; `hash` is the lower-case hex sha-256 of exactly
//! those bytes (without the newline); the stored line is the same bytes with the
//! hex digest put between those quotes. So the hashed bytes are *the line as
//! stored, with the value of `hash` emptied* — no re-serialisation, key sorting
//! or float formatting is involved. `prev_hash` is the `hash` of the previous
//! event (across files); the very first event has `prev_hash` = 64 zeros
//! ([`GENESIS_HASH`]). `seq` starts at 1 and increases by exactly 1 per event,
//! across files.
//!
//! ```python
//! import hashlib, json, glob, re
//! prev, seq = "0" * 64, 0
//! files = sorted(glob.glob("data/audit/audit-*.jsonl"), key=lambda p: int(re.findall(r"\d+", p)[-1]))
//! for path in files:
//!     lines = open(path, "rb").read().split(b"\n")
//!     for n, line in enumerate(lines[:-1], 1):          # lines[-1]: b"" or a torn tail
//!         ev, h = json.loads(line), json.loads(line)["hash"]
//!         assert line.endswith(b',"hash":"' + h.encode() + b'"}'), (path, n)
//!         body = line[: len(line) - len(h) - 2] + b'"}'
//!         assert hashlib.sha256(body).hexdigest() == h, (path, n, "modified")
//!         assert ev["prev_hash"] == prev and ev["seq"] == seq + 1, (path, n, "chain")
//!         prev, seq = h, ev["seq"]
//! ```
//!
//! (The script skips an unterminated last line, but fails on a torn tail that
//! happens to end in a newline, where [`verify`] applies the torn-tail rule
//! below.)
//!
//! One process writes a directory at a time (the agent holds one `AuditLog`);
//! this is not enforced by a lock.
//!
//! # Torn tails (crash mid-write)
//!
//! An event is committed when its whole line, newline included, has been written
//! and `sync_data` has returned. A crash can leave the last line of a file
//! without its newline or as invalid JSON: a **torn tail**. The rule:
//!
//! - a line is torn only if it is the *last line of its file* and either lacks
//!   the trailing `\n` or is not valid JSON; it was never committed, so readers
//!   skip it (and [`read_all_with_warnings`] / [`verify`] report it as a warning
//!   with file and line), and the chain continues from the last complete line
//!   before it;
//! - because the log is never rewritten, the writer does not repair or append
//!   after a torn line: on open (and after any failed write) it starts a new file
//!   whose first event links to the last complete event;
//! - an invalid line anywhere else is corruption, reported as a chain break;
//!   and a torn tail in an older file cannot hide a deleted event, because the
//!   next file must still link to the last complete line.
//!
//! What a hash chain cannot show is a truncation of the newest events: compare
//! [`VerifyReport::last_seq`] / [`VerifyReport::last_hash`] with a value
//! recorded elsewhere for that.
//!
//! # Secrets
//!
//! The writer cannot know secrets, so it redacts before hashing: in `detail`,
//! `before` and `after`, the value of any object key that looks secret
//! ([`crate::redact::is_secret_name`]: containing `authorization`, `secret`,
//! `token`, `password`, `passwd`, `api_key`/`apikey`/`api-key`, or with a word
//! such as `pass`, `pwd`, `private`, `key`, `pem`, `auth`, `cookie`, `dsn`)
//! becomes `"***"`, at any depth; and in their strings and in `error`,
//! credentials in text are masked: `Bearer <token>`, `X-Api-Key: <value>`,
//! `token=<value>` (query parameters, assignments) and the password of
//! `scheme://user:pass@host`.
//!
//! # Caveat: non-finite numbers
//!
//! JSON has no NaN: a NaN in `reason.values` (a query without data) is stored as
//! `null`, and readers turn it back into NaN.
mod change;
pub mod cli;
pub mod detail;
pub mod event;
mod files;
mod line;
mod read;
mod render;
mod summary;
mod verify;
mod words;
mod writer;

pub use event::*;
pub use files::{existing_log, list_files, FILE_PREFIX, FILE_SUFFIX};
pub use line::{redact_event, GENESIS_HASH};
pub use read::{
    events, open_actions, query, read_all, read_all_with_warnings, AuditFilter, EventIter,
    ReadWarning,
};
pub use verify::{verify, ChainBreak, VerifyReport};
pub use writer::AuditLog;

use std::path::PathBuf;

/// Errors of the audit log; each names the file (and line where there is one).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit log {path}:{line}: invalid event: {source}")]
    Parse {
        path: PathBuf,
        line: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("audit log {path}: cannot serialise event: {source}")]
    Serialize {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("audit log {path}: writer lock poisoned by a panic during an earlier append")]
    Poisoned { path: PathBuf },
    #[error(
        "invalid --since value {value:?}: expected a duration ago (10m, 2h) or an RFC 3339 time"
    )]
    BadSince { value: String },
    #[error("unknown audit event {value:?}: expected a name of DESIGN.md §5 such as decision, suppressed, action_started, action_succeeded, action_failed")]
    BadEvent { value: String },
    #[error("no audit log in {}: {why} (the agent writes audit-NNNNNN.jsonl files into <data_dir>/audit; pass the agent's config with -c, or the right --dir)", path.display())]
    NoLog { path: PathBuf, why: &'static str },
}

impl AuditError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuditError::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
