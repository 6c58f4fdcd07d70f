//! The process provider's contact with the operating system.
//!
//! Owns: spawning a replica detached from the agent (own process group, output to
//! a log file, an environment marker that names the target directory and port),
//! telling whether a pid is still the replica we started (`/proc`), signalling a
//! replica's process group, finding free ports, and atomic file writes. Must not decide which replica to start or stop: `mod.rs` does.
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// Environment variable set on every replica: `<target dir>#<port>`. It lets a
/// restarted agent recognise its replicas (pid reuse guard, orphan sweep).
pub const MARKER_ENV: &str = "HOMEOSTAT_REPLICA";

/// The marker value of the replica on `port` of the target kept in `dir`.
pub fn marker_value(dir: &Path, port: u16) -> String {
    format!("{}#{port}", dir.display())
}

/// Substitute `{{port}}` and `{{version}}` (spaces inside the braces allowed).
pub fn resolve_argv(template: &[String], port: u16, version: Option<&str>) -> Vec<String> {
    let port = port.to_string();
    let version = version.unwrap_or("");
    template
        .iter()
        .map(|arg| {
            arg.replace("{{port}}", &port)
                .replace("{{ port }}", &port)
                .replace("{{version}}", version)
                .replace("{{ version }}", version)
        })
        .collect()
}

/// What a replica is started with.
pub struct SpawnSpec<'a> {
    pub argv: &'a [String],
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub workdir: Option<&'a Path>,
    pub log: &'a Path,
    pub marker: &'a str,
}

/// Start a replica in its own process group so that signals to the agent (Ctrl-C,
/// kill -9) do not reach it and it outlives the agent.
pub fn spawn(spec: &SpawnSpec<'_>) -> std::io::Result<tokio::process::Child> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.log)?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(spec.env)
        .env(MARKER_ENV, spec.marker)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(false);
    if let Some(dir) = spec.workdir {
        cmd.current_dir(dir);
    }
    cmd.spawn()
}

/// Fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat {
    pub state: char,
    pub pgrp: i32,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `pid (comm) S ppid pgrp ...`; comm may contain spaces and parentheses, so
/// split after the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcStat { state, pgrp })
}

/// Running (a zombie or a dead task counts as gone).
pub fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X' | 'x'))
}

/// The argument vector a process was started with.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(split_nul(&raw))
}

fn split_nul(raw: &[u8]) -> Vec<String> {
    raw.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The value of our marker in a process's initial environment (same user only).
pub fn marker_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{MARKER_ENV}=");
    split_nul(&raw)
        .into_iter()
        .find_map(|kv| kv.strip_prefix(&prefix).map(str::to_string))
}

/// Alive and still the process we started: guards against pid reuse. The
/// command line must match, or (for programs that rewrite their title) the marker.
pub fn is_our_process(pid: u32, argv: &[String], marker: &str) -> bool {
    is_alive(pid)
        && (cmdline(pid).is_some_and(|c| c == argv) || marker_of(pid).as_deref() == Some(marker))
}

/// Live processes whose marker names `dir`: `(pid, pgrp, port)`.
pub fn scan_marked(dir: &Path) -> Vec<(u32, i32, u16)> {
    let prefix = format!("{}#", dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(port) = marker_of(pid)
            .and_then(|m| m.strip_prefix(&prefix).and_then(|p| p.parse::<u16>().ok()))
        else {
            continue;
        };
        if let Some(stat) = proc_stat(pid).filter(|s| !matches!(s.state, 'Z' | 'X' | 'x')) {
            found.push((pid, stat.pgrp, port));
        }
    }
    found
}

/// Signal the replica's process group (it leads its own), falling back to the
/// process itself if the group is gone.
pub fn signal_group(pid: u32, sig: Signal) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    let pid = Pid::from_raw(raw);
    killpg(pid, sig).is_ok() || kill(pid, sig).is_ok()
}

/// Whether nothing listens on `127.0.0.1:port` (binding succeeds).
pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Replace `path` atomically and durably: write a temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename is durable only once the directory entry is.
    std::fs::File::open(dir)?.sync_all()
}
