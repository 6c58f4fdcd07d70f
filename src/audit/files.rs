//! File naming and line-by-line reading of a log directory.
//!
//! Owns the `audit-NNNNNN.jsonl` naming and a streaming line source that reads
//! one line at a time over all files in order (never a whole file's text), and
//! knows whether a line is the last of its file (the torn-tail rule needs that).
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::AuditError;

pub const FILE_PREFIX: &str = "audit-";
pub const FILE_SUFFIX: &str = ".jsonl";

pub(crate) fn file_name(index: u64) -> String {
    format!("{FILE_PREFIX}{index:06}{FILE_SUFFIX}")
}

pub(crate) fn file_index(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The log files in `dir`, ordered by their number. A missing directory is an
/// empty log.
pub fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, AuditError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::io(dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(idx) = name.to_str().and_then(file_index) {
            files.push((idx, entry.path()));
        }
    }
    files.sort_by_key(|(i, _)| *i);
    Ok(files)
}

/// The log files of `dir`, refusing a directory that holds none: for readers
/// a person points at a path (`homeostat audit`, `audit verify`), where an
/// empty answer would hide a wrong path. The agent itself starts on an empty
/// directory and uses [`list_files`].
pub fn existing_log(dir: &Path) -> Result<Vec<(u64, PathBuf)>, AuditError> {
    let no_log = |why| AuditError::NoLog {
        path: dir.to_path_buf(),
        why,
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(no_log("the directory does not exist"))
        }
        Err(e) => return Err(AuditError::io(dir, e)),
        Ok(m) if !m.is_dir() => return Err(no_log("it is not a directory")),
        Ok(_) => {}
    }
    let files = list_files(dir)?;
    if files.is_empty() {
        return Err(no_log("the directory holds no audit files"));
    }
    Ok(files)
}

/// One raw line of a log file.
#[derive(Debug)]
pub(crate) struct RawLine {
    pub path: PathBuf,
    /// 1-based line number within the file.
    pub line_no: u64,
    /// The bytes without the trailing newline.
    pub bytes: Vec<u8>,
    /// Whether the line ended with `\n`.
    pub terminated: bool,
    /// Whether this is the last line of its file.
    pub last_in_file: bool,
}

/// Streams lines over a list of files.
pub(crate) struct LineSource {
    files: std::vec::IntoIter<(u64, PathBuf)>,
    current: Option<(u64, PathBuf, BufReader<File>, u64)>,
}

impl LineSource {
    pub fn new(files: Vec<(u64, PathBuf)>) -> Self {
        Self {
            files: files.into_iter(),
            current: None,
        }
    }

    pub fn next_line(&mut self) -> Result<Option<RawLine>, AuditError> {
        loop {
            if self.current.is_none() {
                let Some((idx, path)) = self.files.next() else {
                    return Ok(None);
                };
                let f = File::open(&path).map_err(|e| AuditError::io(&path, e))?;
                // 64 KiB buffer: large sequential reads for 100 MB logs.
                self.current = Some((idx, path, BufReader::with_capacity(1 << 16, f), 0));
            }
            let Some((_, path, reader, line_no)) = self.current.as_mut() else {
                continue;
            };
            let mut bytes = Vec::new();
            let n = reader
                .read_until(b'\n', &mut bytes)
                .map_err(|e| AuditError::io(path.as_path(), e))?;
            if n == 0 {
                self.current = None;
                continue;
            }
            *line_no += 1;
            let terminated = bytes.last() == Some(&b'\n');
            if terminated {
                bytes.pop();
            }
            let last_in_file = reader
                .fill_buf()
                .map_err(|e| AuditError::io(path.as_path(), e))?
                .is_empty();
            return Ok(Some(RawLine {
                path: path.clone(),
                line_no: *line_no,
                bytes,
                terminated,
                last_in_file,
            }));
        }
    }
}

/// The last line of `path` that `parse` accepts (terminated lines only), and
/// whether the file ends in a torn line. Reads backwards from the end in
/// growing chunks, so it costs a few reads however large the file is.
pub(crate) fn last_complete_line<T>(
    path: &Path,
    parse: impl Fn(&[u8]) -> Option<T>,
) -> Result<(Option<T>, bool), AuditError> {
    let mut file = File::open(path).map_err(|e| AuditError::io(path, e))?;
    let len = file.metadata().map_err(|e| AuditError::io(path, e))?.len();
    let mut chunk: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start))
            .map_err(|e| AuditError::io(path, e))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        (&mut file)
            .take(len - start)
            .read_to_end(&mut buf)
            .map_err(|e| AuditError::io(path, e))?;
        let mut segments: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
        // After the last newline: empty if the file ends cleanly, else torn bytes.
        let unterminated = segments.pop().unwrap_or_default();
        if start > 0 && !segments.is_empty() {
            segments.remove(0); // may begin mid-line
        }
        let torn = !unterminated.is_empty()
            || segments
                .last()
                .is_some_and(|s| serde_json::from_slice::<serde::de::IgnoredAny>(s).is_err());
        let found = segments.iter().rev().find_map(|s| parse(s));
        if found.is_some() || start == 0 {
            return Ok((found, torn));
        }
        chunk = chunk.saturating_mul(4);
    }
}
