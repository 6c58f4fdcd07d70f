//! Chain verification: every hash, every link, seq continuity, across files.
//!
//! Owns the judgement of whether a log is intact. Applies the torn-tail rule of
//! the `audit` module doc; reports the first break with file, line and what was
//! expected. Reads one line at a time.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::files::{list_files, LineSource};
use super::line::{recompute_hash, GENESIS_HASH};
use super::read::{torn_warning, ReadWarning};
use super::AuditError;

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub path: PathBuf,
    pub line: u64,
    /// `seq` found on the line, if it could be read.
    pub seq: Option<u64>,
    /// What is wrong, in words.
    pub problem: String,
    pub expected: String,
    pub found: String,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} (expected {}, found {})",
            self.path.display(),
            self.line,
            self.problem,
            self.expected,
            self.found
        )
    }
}

/// Result of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub files: usize,
    /// Events checked and found intact (up to the break, if any).
    pub events: u64,
    /// `seq` of the last intact event.
    pub last_seq: Option<u64>,
    /// `hash` of the last intact event: record it elsewhere to detect truncation.
    pub last_hash: Option<String>,
    /// Torn tails (not breaks), with file and line.
    pub warnings: Vec<ReadWarning>,
    /// The first break, if any; checking stops there.
    pub first_break: Option<ChainBreak>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.first_break.is_none()
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        match &self.first_break {
            Some(b) => write!(
                f,
                "BROKEN after {} intact events in {} files: {b}",
                self.events, self.files
            ),
            None => write!(
                f,
                "OK: {} events in {} files, last seq {}, last hash {}",
                self.events,
                self.files,
                self.last_seq.map_or("-".to_string(), |s| s.to_string()),
                self.last_hash.as_deref().unwrap_or("-")
            ),
        }
    }
}

#[derive(Deserialize)]
struct ChainFields {
    seq: u64,
    prev_hash: String,
    hash: String,
}

/// Check the whole chain in `dir`. I/O problems are errors; integrity problems
/// are reported in [`VerifyReport::first_break`].
pub fn verify(dir: &Path) -> Result<VerifyReport, AuditError> {
    let files = list_files(dir)?;
    let mut report = VerifyReport {
        files: files.len(),
        ..VerifyReport::default()
    };
    let mut src = LineSource::new(files);
    let mut expected_seq = 1u64;
    let mut expected_prev = GENESIS_HASH.to_string();
    // Where the previous intact event is, for messages.
    let mut prev_at = String::from("the start of the log");

    while let Some(line) = src.next_line()? {
        let mk_break = |problem: String, expected: String, found: String, seq| ChainBreak {
            path: line.path.clone(),
            line: line.line_no,
            seq,
            problem,
            expected,
            found,
        };
        if let Some(w) = torn_warning(&line) {
            report.warnings.push(w);
            continue;
        }
        let fields: ChainFields = match serde_json::from_slice(&line.bytes) {
            Ok(f) => f,
            Err(e) => {
                report.first_break = Some(mk_break(
                    "line is not a valid event (corruption or edit in the middle of a file)".into(),
                    "a JSON object with seq, prev_hash, hash".into(),
                    e.to_string(),
                    None,
                ));
                return Ok(report);
            }
        };
        let seq = Some(fields.seq);
        let Some(actual) = recompute_hash(&line.bytes, &fields.hash) else {
            report.first_break = Some(mk_break(
                "line does not end with its \"hash\" member".into(),
                "a line ending in ,\"hash\":\"<sha-256 hex>\"}".into(),
                "another layout (edited by hand?)".into(),
                seq,
            ));
            return Ok(report);
        };
        if actual != fields.hash {
            report.first_break = Some(mk_break(
                format!("hash mismatch: content of seq {} was modified", fields.seq),
                format!("hash {actual} (sha-256 of the line)"),
                format!("hash {}", fields.hash),
                seq,
            ));
            return Ok(report);
        }
        if fields.seq != expected_seq {
            let problem = if fields.seq > expected_seq {
                format!(
                    "seq gap after {prev_at}: events {}..{} are missing (deleted line or file) or out of order",
                    expected_seq,
                    fields.seq - 1
                )
            } else {
                format!("seq goes backwards after {prev_at}: lines reordered or duplicated")
            };
            report.first_break = Some(mk_break(
                problem,
                format!("seq {expected_seq}"),
                format!("seq {}", fields.seq),
                seq,
            ));
            return Ok(report);
        }
        if fields.prev_hash != expected_prev {
            report.first_break = Some(mk_break(
                format!("prev_hash does not link to {prev_at}: the previous event was replaced"),
                format!("prev_hash {expected_prev}"),
                format!("prev_hash {}", fields.prev_hash),
                seq,
            ));
            return Ok(report);
        }
        report.events += 1;
        report.last_seq = Some(fields.seq);
        prev_at = format!(
            "seq {} ({}:{})",
            fields.seq,
            line.path.display(),
            line.line_no
        );
        expected_seq = fields.seq + 1;
        expected_prev = fields.hash.clone();
        report.last_hash = Some(fields.hash);
    }
    Ok(report)
}
