//! The HAProxy runtime API client: one command per connection, and the
//! parsers of what HAProxy answers.
//!
//! Owns the wire (connect to a Unix socket or `tcp://host:port`, write one
//! line, read until HAProxy closes, bounded in size and time), the mapping of
//! every failure to a typed [`ProviderError`], and parsing `show servers
//! state` / `show stat` into [`Server`] records. Must not decide anything:
//! which server to change and how is the adapter's business (`mod.rs`).
//!
//! Non-interactive mode: HAProxy answers the line and closes the connection,
//! so the end of the answer is EOF. Commands with a `;` run one after the
//! other on the same connection (used only to read state consistently).
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::model::ProviderError;

pub const PROVIDER: &str = "haproxy";

/// Longest answer accepted (a `show stat` of a backend with thousands of
/// servers stays far below it); a longer one is refused, never buffered.
pub const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;

/// Admin-state bits of `srv_admin_state` (management guide, `show servers state`).
pub const ADMF_FMAINT: u32 = 0x01;
pub const ADMF_IMAINT: u32 = 0x02;
pub const ADMF_CMAINT: u32 = 0x04;
pub const ADMF_FDRAIN: u32 = 0x08;
pub const ADMF_IDRAIN: u32 = 0x10;
pub const ADMF_RMAINT: u32 = 0x20;
/// What HAProxy itself counts as "in maintenance" (CMAINT alone is only the
/// memory that the config said `disabled`; it stays set after `ready`).
pub const ADMF_MAINT: u32 = ADMF_FMAINT | ADMF_IMAINT | ADMF_RMAINT;
pub const ADMF_DRAIN: u32 = ADMF_FDRAIN | ADMF_IDRAIN;

/// `srv_op_state` values.
pub const SRV_ST_STOPPED: u8 = 0;
pub const SRV_ST_STARTING: u8 = 1;
pub const SRV_ST_RUNNING: u8 = 2;

/// `srv_check_result` values.
pub const CHK_RES_FAILED: u8 = 2;
pub const CHK_RES_PASSED: u8 = 3;
pub const CHK_RES_CONDPASS: u8 = 4;
/// `srv_check_state` bit: a health check is configured.
pub const CHK_ST_CONFIGURED: u32 = 0x02;

/// Where the runtime API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl Endpoint {
    /// `tcp://host:port` or a socket path.
    pub fn parse(s: &str) -> Endpoint {
        match s.strip_prefix("tcp://") {
            Some(hp) => Endpoint::Tcp(hp.to_string()),
            None => Endpoint::Unix(PathBuf::from(s)),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

pub fn unavailable(message: impl Into<String>) -> ProviderError {
    ProviderError::Unavailable {
        provider: PROVIDER.into(),
        message: message.into(),
    }
}

pub fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::failed(PROVIDER, message)
}

pub fn rejected(message: impl Into<String>) -> ProviderError {
    ProviderError::rejected(PROVIDER, message)
}

pub fn not_found(message: impl Into<String>) -> ProviderError {
    ProviderError::not_found(PROVIDER, message)
}

pub fn conflict(message: impl Into<String>) -> ProviderError {
    ProviderError::Conflict {
        provider: PROVIDER.into(),
        message: message.into(),
    }
}

pub fn permission_denied(message: impl Into<String>) -> ProviderError {
    ProviderError::PermissionDenied {
        provider: PROVIDER.into(),
        message: message.into(),
    }
}

fn timeout(d: Duration) -> ProviderError {
    ProviderError::Timeout {
        provider: PROVIDER.into(),
        after_ms: d.as_millis().min(u128::from(u64::MAX)) as u64,
    }
}

/// A connection failure as a typed error naming the endpoint.
pub fn connect_error(ep: &Endpoint, e: &std::io::Error) -> ProviderError {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::PermissionDenied => permission_denied(format!(
            "cannot open the runtime API {ep}: {e} (the agent's user needs access to the socket: `stats socket ... mode/user/group`)"
        )),
        K::NotFound => unavailable(format!(
            "runtime API socket {ep} does not exist (is HAProxy running?)"
        )),
        K::ConnectionRefused => unavailable(format!(
            "runtime API {ep} refused the connection (is HAProxy running?)"
        )),
        _ => unavailable(format!("runtime API {ep}: {e}")),
    }
}

/// The runtime API of one HAProxy.
#[derive(Debug, Clone)]
pub struct Client {
    pub endpoint: Endpoint,
    pub timeout: Duration,
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

impl Client {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Self {
        Self { endpoint, timeout }
    }

    /// Send `line` (one command, or several joined by `;`), return the raw answer.
    pub async fn raw(&self, line: &str) -> Result<String, ProviderError> {
        if line.contains(['\n', '\r']) {
            return Err(rejected("a runtime API command must be one line"));
        }
        match tokio::time::timeout(self.timeout, self.exchange(line)).await {
            Ok(r) => r,
            Err(_) => Err(timeout(self.timeout)),
        }
    }

    async fn exchange(&self, line: &str) -> Result<String, ProviderError> {
        let mut stream: Box<dyn Stream> = match &self.endpoint {
            Endpoint::Unix(p) => Box::new(
                tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| connect_error(&self.endpoint, &e))?,
            ),
            Endpoint::Tcp(a) => Box::new(
                tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(|e| connect_error(&self.endpoint, &e))?,
            ),
        };
        let io = |e: std::io::Error| unavailable(format!("runtime API {}: {e}", self.endpoint));
        stream
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(io)?;
        stream.flush().await.map_err(io)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            if out.len() + n > MAX_REPLY_BYTES {
                return Err(failed(format!(
                    "runtime API {}: answer larger than {MAX_REPLY_BYTES} bytes; refused",
                    self.endpoint
                )));
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(out).map_err(|_| {
            failed(format!(
                "runtime API {}: answer is not UTF-8",
                self.endpoint
            ))
        })
    }

    /// Run a command that answers nothing on success (`set server`, `set
    /// weight`, `enable health`...); any text is HAProxy's error.
    pub async fn act(&self, cmd: &str) -> Result<(), ProviderError> {
        let answer = self.raw(cmd).await?;
        match classify(cmd, &answer) {
            Some(e) => Err(e),
            None if answer.trim().is_empty() => Ok(()),
            None => Err(failed(format!("`{cmd}`: {}", first_line(&answer)))),
        }
    }

    /// Run a command whose success answer is `ok` (`add server`, `del server`).
    pub async fn act_expect(&self, cmd: &str, ok: &str) -> Result<(), ProviderError> {
        let answer = self.raw(cmd).await?;
        if answer.trim() == ok {
            return Ok(());
        }
        Err(classify(cmd, &answer)
            .unwrap_or_else(|| failed(format!("`{cmd}`: {}", first_line(&answer)))))
    }

    /// The servers of `backend`: `show servers state` joined with `show stat`
    /// (for the `backup` flag and current sessions), read on one connection.
    pub async fn servers(&self, backend: &str) -> Result<Vec<Server>, ProviderError> {
        let cmd = format!("show servers state {backend};show stat {backend} 4 -1");
        let answer = self.raw(&cmd).await?;
        parse_servers(backend, &answer)
    }
}

fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// How an error answer is classified.
#[derive(Clone, Copy)]
enum Class {
    Permission,
    NotFound,
    Rejected,
    StaticLb,
    Conflict,
}

/// Known error answers of HAProxy 2.6 (lower case prefixes or fragments).
const ANSWERS: &[(&str, Class)] = &[
    ("permission denied", Class::Permission),
    ("no such backend", Class::NotFound),
    ("can't find backend", Class::NotFound),
    ("no such proxy", Class::NotFound),
    ("no such server", Class::NotFound),
    ("unknown command", Class::Rejected),
    (
        "this command is restricted to experimental mode",
        Class::Rejected,
    ),
    ("backend must use a dynamic load balancing", Class::Rejected),
    ("static lb algorithm", Class::StaticLb),
    ("only servers in maintenance mode", Class::Conflict),
    ("already exists a server", Class::Conflict),
    ("still has", Class::Conflict),
    ("queue is not empty", Class::Conflict),
];

/// HAProxy's error answers as typed errors; `None` if `answer` is not one we know.
pub fn classify(cmd: &str, answer: &str) -> Option<ProviderError> {
    let line = first_line(answer);
    let l = line.to_ascii_lowercase();
    let (_, class) = ANSWERS.iter().find(|(frag, _)| l.contains(frag))?;
    Some(match class {
        Class::Permission => permission_denied(format!(
            "`{cmd}`: HAProxy answered \"Permission denied\": the runtime API socket must be at `level admin`"
        )),
        Class::NotFound => not_found(format!("`{cmd}`: {line}")),
        Class::Rejected => rejected(format!("`{cmd}`: {line}")),
        Class::StaticLb => rejected(format!(
            "`{cmd}`: {line} (half-open needs a dynamic `balance` algorithm such as roundrobin or leastconn)"
        )),
        Class::Conflict => conflict(format!("`{cmd}`: {line}")),
    })
}

/// One server of the backend, as `show servers state` and `show stat` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Server id in the backend (config order unless forced).
    pub id: u32,
    pub name: String,
    /// IP address as HAProxy has it.
    pub addr: String,
    pub port: u16,
    /// `srv_op_state`: 0 stopped (down), 1 starting, 2 running, 3 stopping.
    pub op_state: u8,
    /// `srv_admin_state` bit mask.
    pub admin: u32,
    /// Current (user) weight.
    pub weight: u32,
    /// Configured (initial) weight.
    pub initial_weight: u32,
    /// `srv_check_result`: 0 unknown, 1 neutral, 2 failed, 3 passed, 4 conditional pass.
    pub check_result: u8,
    /// `srv_check_state` bit mask.
    pub check_state: u32,
    /// Declared with the `backup` keyword.
    pub backup: bool,
    /// Current sessions on the server.
    pub sessions: u64,
    /// The status column of `show stat` (`UP`, `DOWN`, `MAINT`, `DRAIN`, `UP 1/3`…).
    pub status: String,
}

impl Server {
    /// In maintenance (forced, inherited or for a failed resolution).
    pub fn maint(&self) -> bool {
        self.admin & ADMF_MAINT != 0
    }

    /// Draining (and not in maintenance).
    pub fn drain(&self) -> bool {
        !self.maint() && self.admin & ADMF_DRAIN != 0
    }

    /// `disabled` in the configuration (stays set after the server is enabled).
    pub fn config_disabled(&self) -> bool {
        self.admin & ADMF_CMAINT != 0
    }

    /// The administrative state as the runtime API names it.
    pub fn admin_state(&self) -> &'static str {
        if self.maint() {
            "maint"
        } else if self.drain() {
            "drain"
        } else {
            "ready"
        }
    }

    /// Up as far as HAProxy knows: running while not in maintenance; in
    /// maintenance (checks paused) the last check's result, and up when the
    /// server has no health check.
    pub fn healthy(&self) -> bool {
        if self.maint() {
            if self.check_state & CHK_ST_CONFIGURED == 0 {
                return true;
            }
            matches!(self.check_result, CHK_RES_PASSED | CHK_RES_CONDPASS)
        } else {
            matches!(self.op_state, SRV_ST_STARTING | SRV_ST_RUNNING)
        }
    }

    /// The last health check failed (a spare in this state is used last).
    pub fn known_failed(&self) -> bool {
        self.check_state & CHK_ST_CONFIGURED != 0 && self.check_result == CHK_RES_FAILED
    }

    /// HAProxy may send it new load-balanced requests: ready, weight above
    /// zero and up. (A backup server only gets them when no primary can.)
    pub fn eligible(&self) -> bool {
        !self.maint()
            && !self.drain()
            && self.weight > 0
            && matches!(self.op_state, SRV_ST_STARTING | SRV_ST_RUNNING)
    }

    /// `addr:port` (IPv6 in brackets).
    pub fn address(&self) -> String {
        join_host_port(&self.addr, self.port)
    }
}

pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Split a `show stat` CSV line, honouring double quotes.
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Parse the answer of `show servers state <b>;show stat <b> 4 -1`.
pub fn parse_servers(backend: &str, answer: &str) -> Result<Vec<Server>, ProviderError> {
    let cmd = format!("show servers state {backend}");
    // The first command's output ends at the first empty line.
    let (state_part, stat_part) = match answer.find("\n\n") {
        Some(i) => (&answer[..i], &answer[i + 2..]),
        None => (answer, ""),
    };
    let mut lines = state_part.lines();
    let version = lines.next().unwrap_or("").trim();
    if version != "1" {
        return Err(classify(&cmd, state_part).unwrap_or_else(|| {
            failed(format!(
                "`{cmd}`: unexpected answer {:?} (format version 1 expected)",
                truncate(first_line(state_part), 200)
            ))
        }));
    }
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix('#'))
        .ok_or_else(|| failed(format!("`{cmd}`: no column header")))?;
    let cols: HashMap<&str, usize> = header
        .split_whitespace()
        .enumerate()
        .map(|(i, c)| (c, i))
        .collect();
    let col = |name: &str| {
        cols.get(name)
            .copied()
            .ok_or_else(|| failed(format!("`{cmd}`: no column {name}")))
    };
    let (c_be, c_id, c_name, c_addr, c_op, c_admin, c_uw, c_iw, c_res, c_chk, c_port) = (
        col("be_name")?,
        col("srv_id")?,
        col("srv_name")?,
        col("srv_addr")?,
        col("srv_op_state")?,
        col("srv_admin_state")?,
        col("srv_uweight")?,
        col("srv_iweight")?,
        col("srv_check_result")?,
        col("srv_check_state")?,
        col("srv_port")?,
    );
    let bad = |line: &str, what: &str| {
        failed(format!(
            "`{cmd}`: malformed line ({what}): {:?}",
            truncate(line, 200)
        ))
    };
    let mut servers = Vec::new();
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let get = |i: usize, what: &str| f.get(i).copied().ok_or_else(|| bad(line, what));
        let num = |i: usize, what: &str| -> Result<u64, ProviderError> {
            get(i, what)?.parse::<u64>().map_err(|_| bad(line, what))
        };
        if get(c_be, "be_name")? != backend {
            continue;
        }
        servers.push(Server {
            id: num(c_id, "srv_id")? as u32,
            name: get(c_name, "srv_name")?.to_string(),
            addr: get(c_addr, "srv_addr")?.to_string(),
            port: u16::try_from(num(c_port, "srv_port")?).map_err(|_| bad(line, "srv_port"))?,
            op_state: num(c_op, "srv_op_state")?.min(255) as u8,
            admin: num(c_admin, "srv_admin_state")? as u32,
            weight: num(c_uw, "srv_uweight")? as u32,
            initial_weight: num(c_iw, "srv_iweight")? as u32,
            check_result: num(c_res, "srv_check_result")?.min(255) as u8,
            check_state: num(c_chk, "srv_check_state")? as u32,
            backup: false,
            sessions: 0,
            status: String::new(),
        });
    }

    // `show stat`: backup flag, sessions and status by server name.
    let stat_cmd = format!("show stat {backend} 4 -1");
    let mut stat_lines = stat_part.lines().skip_while(|l| l.trim().is_empty());
    let header = stat_lines.next().unwrap_or("");
    let Some(header) = header.strip_prefix("# ") else {
        return Err(classify(&stat_cmd, stat_part).unwrap_or_else(|| {
            failed(format!(
                "`{stat_cmd}`: unexpected answer {:?}",
                truncate(first_line(stat_part), 200)
            ))
        }));
    };
    let cols: HashMap<String, usize> = split_csv(header)
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, i))
        .collect();
    let scol = |name: &str| {
        cols.get(name)
            .copied()
            .ok_or_else(|| failed(format!("`{stat_cmd}`: no column {name}")))
    };
    let (s_px, s_sv, s_scur, s_status, s_bck) = (
        scol("pxname")?,
        scol("svname")?,
        scol("scur")?,
        scol("status")?,
        scol("bck")?,
    );
    let mut stats: HashMap<String, (bool, u64, String)> = HashMap::new();
    for line in stat_lines {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f = split_csv(line);
        let get = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
        if get(s_px) != backend {
            continue;
        }
        stats.insert(
            get(s_sv).to_string(),
            (
                get(s_bck) == "1",
                get(s_scur).parse().unwrap_or(0),
                get(s_status).to_string(),
            ),
        );
    }
    for s in &mut servers {
        if let Some((bck, scur, status)) = stats.remove(&s.name) {
            s.backup = bck;
            s.sessions = scur;
            s.status = status;
        }
    }
    servers.sort_by_key(|s| s.id);
    Ok(servers)
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
