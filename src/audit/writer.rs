//! The writer: one fsync'd line per event, rotation by size, recovery on open.
//!
//! Owns the only code that writes log files. Content is never rewritten: files
//! are created with `create_new` and opened for append only. See the `audit`
//! module doc for the chain and torn-tail rules this implements.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;

use super::event::AuditEvent;
use super::files::{file_name, last_complete_line, list_files};
use super::line::{encode, redact_event, GENESIS_HASH};
use super::AuditError;
use crate::clock::rfc3339;
use crate::model::TimestampMs;

/// The append-only audit log writer. Share it as `Arc<AuditLog>`; every method
/// takes `&self` and appends are serialised by an internal mutex, so `seq` and
/// the chain follow the order in which appends complete.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    max_file_bytes: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Open handle of the current file; `None` until the first append into
    /// `file_index` (a new file is created lazily).
    file: Option<File>,
    file_index: u64,
    file_bytes: u64,
    next_seq: u64,
    prev_hash: String,
    /// Set after a failed write: the current file may end in a torn line, so the
    /// next append re-derives its position from disk first.
    needs_recovery: bool,
}

/// Just the chain fields of a line, to recover the writer's position cheaply.
#[derive(Deserialize)]
struct Link {
    seq: u64,
    hash: String,
}

impl AuditLog {
    /// Open (creating if needed) the log in `dir`. Recovers `seq` and `prev_hash`
    /// from the last complete line; if the newest file ends in a torn line, the
    /// next event goes into a new file. `max_file_bytes == 0` disables rotation.
    pub fn open(dir: &Path, max_file_bytes: u64) -> Result<AuditLog, AuditError> {
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
        let inner = recover(dir)?;
        Ok(AuditLog {
            dir: dir.to_path_buf(),
            max_file_bytes,
            inner: Mutex::new(inner),
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `seq` of the last committed event (0 for an empty log).
    pub fn last_seq(&self) -> Result<u64, AuditError> {
        Ok(self.lock()?.next_seq - 1)
    }

    /// `hash` of the last committed event ([`GENESIS_HASH`] for an empty log).
    pub fn last_hash(&self) -> Result<String, AuditError> {
        Ok(self.lock()?.prev_hash.clone())
    }

    /// Test hook: behave as after a failed write.
    #[cfg(test)]
    pub(crate) fn simulate_failed_write(&self) -> Result<(), AuditError> {
        let mut inner = self.lock()?;
        inner.file = None;
        inner.needs_recovery = true;
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, AuditError> {
        self.inner.lock().map_err(|_| AuditError::Poisoned {
            path: self.dir.clone(),
        })
    }

    /// Append one event: fills `seq`, `ts`, `ts_ms`, `prev_hash` and `hash`,
    /// redacts secrets, writes one line and `fsync`s it before returning the
    /// event as stored. On error nothing is committed (the chain does not move).
    pub fn append(&self, ev: AuditEvent, now: TimestampMs) -> Result<AuditEvent, AuditError> {
        let mut inner = self.lock()?;
        if inner.needs_recovery {
            *inner = recover(&self.dir)?;
        }
        let mut ev = ev;
        ev.seq = inner.next_seq;
        ev.ts = rfc3339(now);
        ev.ts_ms = now;
        ev.prev_hash = inner.prev_hash.clone();
        redact_event(&mut ev);
        let (mut line, hash) = encode(&ev).map_err(|source| AuditError::Serialize {
            path: self.dir.join(file_name(inner.file_index)),
            source,
        })?;
        line.push(b'\n');
        let len = line.len() as u64;

        if self.max_file_bytes > 0
            && inner.file_bytes > 0
            && inner.file_bytes + len > self.max_file_bytes
        {
            inner.file = None;
            inner.file_index += 1;
            inner.file_bytes = 0;
        }
        let path = self.dir.join(file_name(inner.file_index));
        let result = write_line(&self.dir, &path, &mut inner, &line);
        if let Err(e) = result {
            inner.file = None;
            inner.needs_recovery = true;
            return Err(e);
        }
        inner.file_bytes += len;
        inner.next_seq += 1;
        inner.prev_hash = hash.clone();
        ev.hash = hash;
        Ok(ev)
    }
}

fn write_line(dir: &Path, path: &Path, inner: &mut Inner, line: &[u8]) -> Result<(), AuditError> {
    if inner.file.is_none() {
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| AuditError::io(path, e))?;
        // Make the new directory entry durable too, not just the file's data.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AuditError::io(dir, e))?;
        inner.file = Some(f);
    }
    let Some(file) = inner.file.as_mut() else {
        return Err(AuditError::io(path, std::io::Error::other("no open file")));
    };
    file.write_all(line).map_err(|e| AuditError::io(path, e))?;
    file.sync_data().map_err(|e| AuditError::io(path, e))
}

/// Derive the writer's position from what is on disk.
fn recover(dir: &Path) -> Result<Inner, AuditError> {
    let files = list_files(dir)?;
    let Some((newest_index, newest_path)) = files.last().cloned() else {
        return Ok(Inner {
            file: None,
            file_index: 1,
            file_bytes: 0,
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            needs_recovery: false,
        });
    };
    // Walk files newest first until one holds a complete line.
    let mut newest_torn = false;
    let mut anchor: Option<Link> = None;
    for (pos, (_, path)) in files.iter().enumerate().rev() {
        let (last_good, last_torn) = scan_file(path)?;
        if pos == files.len() - 1 {
            newest_torn = last_torn;
        }
        if let Some(link) = last_good {
            anchor = Some(link);
            break;
        }
    }
    let (next_seq, prev_hash) = match anchor {
        Some(l) => (l.seq + 1, l.hash),
        None => (1, GENESIS_HASH.to_string()),
    };
    if newest_torn {
        // Never append after a torn line: continue the chain in a new file.
        return Ok(Inner {
            file: None,
            file_index: newest_index + 1,
            file_bytes: 0,
            next_seq,
            prev_hash,
            needs_recovery: false,
        });
    }
    let file = OpenOptions::new()
        .append(true)
        .open(&newest_path)
        .map_err(|e| AuditError::io(&newest_path, e))?;
    let file_bytes = file
        .metadata()
        .map_err(|e| AuditError::io(&newest_path, e))?
        .len();
    Ok(Inner {
        file: Some(file),
        file_index: newest_index,
        file_bytes,
        next_seq,
        prev_hash,
        needs_recovery: false,
    })
}

/// The last complete line's chain fields, and whether the file ends in a torn line.
fn scan_file(path: &Path) -> Result<(Option<Link>, bool), AuditError> {
    let (last, torn) = last_complete_line(path, |l| serde_json::from_slice::<Link>(l).ok())?;
    Ok((last, torn))
}
