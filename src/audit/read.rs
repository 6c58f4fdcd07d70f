//! Reading the log: streaming iteration, filters, open actions, and tailing
//! it across rotation ([`Tail`]).
//!
//! Owns how events come back out of the files: one line at a time over all
//! files in order (fine for a 100 MB log), torn tails skipped and reported,
//! any other invalid line an error naming file and line. Checks no hashes:
//! that is [`super::verify`].
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::event::{AuditEvent, EventKind};
use super::files::{last_complete_line, list_files, LineSource, RawLine};
use super::line::decode;
use super::AuditError;
use crate::model::TimestampMs;

/// A problem that did not stop reading: today only a torn tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadWarning {
    pub path: PathBuf,
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for ReadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// Whether a raw line is a torn tail; if so, the warning describing it.
pub(crate) fn torn_warning(line: &RawLine) -> Option<ReadWarning> {
    if !line.last_in_file {
        return None;
    }
    let message = if !line.terminated {
        format!(
            "torn tail: {} bytes without a trailing newline (interrupted write, never committed); skipped",
            line.bytes.len()
        )
    } else if serde_json::from_slice::<serde::de::IgnoredAny>(&line.bytes).is_err() {
        format!(
            "torn tail: last line is not valid JSON ({} bytes; interrupted write, never committed); skipped",
            line.bytes.len()
        )
    } else {
        return None;
    };
    Some(ReadWarning {
        path: line.path.clone(),
        line: line.line_no,
        message,
    })
}

/// Streaming iterator over all events of a log directory, oldest first.
pub struct EventIter {
    src: LineSource,
    warnings: Vec<ReadWarning>,
    done: bool,
}

impl EventIter {
    /// Torn tails skipped so far.
    pub fn warnings(&self) -> &[ReadWarning] {
        &self.warnings
    }

    pub fn into_warnings(self) -> Vec<ReadWarning> {
        self.warnings
    }
}

impl Iterator for EventIter {
    type Item = Result<AuditEvent, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let line = match self.src.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if let Some(w) = torn_warning(&line) {
                self.warnings.push(w);
                continue;
            }
            if line.bytes.is_empty() && line.last_in_file {
                continue;
            }
            return Some(decode(&line.bytes).map_err(|source| {
                self.done = true;
                AuditError::Parse {
                    path: line.path,
                    line: line.line_no,
                    source,
                }
            }));
        }
    }
}

/// Iterate over all events in `dir` without loading the files.
pub fn events(dir: &Path) -> Result<EventIter, AuditError> {
    Ok(EventIter {
        src: LineSource::new(list_files(dir)?),
        warnings: Vec::new(),
        done: false,
    })
}

/// Iterate over the events of the files that may hold events at or after
/// `since`: a file whose last complete event is older is skipped unread (files
/// are in time order: the agent's clock does not go backwards).
fn events_since(dir: &Path, since: Option<TimestampMs>) -> Result<EventIter, AuditError> {
    let mut files = list_files(dir)?;
    if let Some(since) = since {
        #[derive(serde::Deserialize)]
        struct Ts {
            ts_ms: TimestampMs,
        }
        let mut keep_from = 0;
        // The newest file is always read (it may still be growing).
        for (i, (_, path)) in files.iter().enumerate().take(files.len().saturating_sub(1)) {
            let (last, _) = last_complete_line(path, |l| serde_json::from_slice::<Ts>(l).ok())?;
            match last {
                Some(ts) if ts.ts_ms < since => keep_from = i + 1,
                _ => break,
            }
        }
        files.drain(..keep_from);
    }
    Ok(EventIter {
        src: LineSource::new(files),
        warnings: Vec::new(),
        done: false,
    })
}

/// All events, in order. Torn tails are skipped silently (see
/// [`read_all_with_warnings`]); any other invalid line is an error.
pub fn read_all(dir: &Path) -> Result<Vec<AuditEvent>, AuditError> {
    Ok(read_all_with_warnings(dir)?.0)
}

/// All events, in order, and the torn tails that were skipped.
pub fn read_all_with_warnings(
    dir: &Path,
) -> Result<(Vec<AuditEvent>, Vec<ReadWarning>), AuditError> {
    let mut it = events(dir)?;
    let mut out = Vec::new();
    for ev in it.by_ref() {
        out.push(ev?);
    }
    Ok((out, it.into_warnings()))
}

/// Which events to return. Every set field must match; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Events at or after this time.
    pub since: Option<TimestampMs>,
    /// Events strictly before this time.
    pub until: Option<TimestampMs>,
    pub rule: Option<String>,
    pub target: Option<String>,
    /// Any of these event kinds.
    pub event: Option<Vec<EventKind>>,
    pub action_id: Option<String>,
    /// Keep only the newest `limit` matches (like `tail -n`).
    pub limit: Option<usize>,
}

impl AuditFilter {
    /// Whether `ev` passes every condition (`limit` aside).
    pub fn matches(&self, ev: &AuditEvent) -> bool {
        fn eq(want: &Option<String>, have: &Option<String>) -> bool {
            want.as_ref().is_none_or(|w| have.as_deref() == Some(w))
        }
        self.since.is_none_or(|s| ev.ts_ms >= s)
            && self.until.is_none_or(|u| ev.ts_ms < u)
            && eq(&self.rule, &ev.rule)
            && eq(&self.target, &ev.target)
            && eq(&self.action_id, &ev.action_id)
            && self
                .event
                .as_ref()
                .is_none_or(|kinds| ev.event.is_some_and(|k| kinds.contains(&k)))
    }
}

/// The events matching `filter`, oldest first, streaming over the files; with a
/// `limit`, only the newest `limit` matches are kept in memory, and with
/// `since`, files that end before it are not read at all.
pub fn query(dir: &Path, filter: &AuditFilter) -> Result<Vec<AuditEvent>, AuditError> {
    let mut out = VecDeque::new();
    for ev in events_since(dir, filter.since)? {
        let ev = ev?;
        if !filter.matches(&ev) {
            continue;
        }
        if filter.limit == Some(0) {
            continue;
        }
        out.push_back(ev);
        if filter.limit.is_some_and(|l| out.len() > l) {
            out.pop_front();
        }
    }
    Ok(out.into())
}

/// `action_started` events with no later `action_succeeded`, `action_failed` or
/// `action_reconciled` for the same `action_id`, oldest first. The executor
/// reconciles these at start-up. Events must be in log order.
pub fn open_actions(events: &[AuditEvent]) -> Vec<AuditEvent> {
    let mut closed_after: HashSet<&str> = HashSet::new();
    let mut open = Vec::new();
    // Walk backwards: an outcome closes every earlier start of the same id.
    for ev in events.iter().rev() {
        let (Some(kind), Some(id)) = (ev.event, ev.action_id.as_deref()) else {
            continue;
        };
        match kind {
            EventKind::ActionSucceeded | EventKind::ActionFailed | EventKind::ActionReconciled => {
                closed_after.insert(id);
            }
            EventKind::ActionStarted if !closed_after.contains(id) => open.push(ev.clone()),
            _ => {}
        }
    }
    open.reverse();
    open
}

/// Reads complete lines appended since the last call, across rotation
/// (`homeostat audit --follow`).
#[derive(Debug, Default)]
pub struct Tail {
    file_index: Option<u64>,
    offset: u64,
}

impl Tail {
    pub fn poll(&mut self, dir: &Path, mut each: impl FnMut(AuditEvent)) -> Result<(), AuditError> {
        loop {
            // List before reading: a newer file only appears after the writer
            // has finished with the older one, so reading the older one after
            // the listing sees all of it.
            let files = list_files(dir)?;
            let current = match self.file_index {
                Some(i) => files.iter().find(|(idx, _)| *idx >= i).cloned(),
                None => files.first().cloned(),
            };
            let Some((idx, path)) = current else {
                return Ok(());
            };
            if self.file_index != Some(idx) {
                self.file_index = Some(idx);
                self.offset = 0;
            }
            let mut f = File::open(&path).map_err(|e| AuditError::io(&path, e))?;
            f.seek(SeekFrom::Start(self.offset))
                .map_err(|e| AuditError::io(&path, e))?;
            let mut reader = BufReader::with_capacity(1 << 16, f);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| AuditError::io(&path, e))?;
                if n == 0 || buf.last() != Some(&b'\n') {
                    break; // an incomplete line: wait for the rest
                }
                self.offset += n as u64;
                // Invalid complete lines are corruption: `verify` reports them.
                if let Ok(ev) = decode(&buf[..n - 1]) {
                    each(ev);
                }
            }
            match files.iter().find(|(i, _)| *i > idx) {
                // Anything left unterminated here is a torn tail: move on.
                Some((next, _)) => {
                    self.file_index = Some(*next);
                    self.offset = 0;
                }
                None => return Ok(()),
            }
        }
    }
}
