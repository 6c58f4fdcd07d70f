//! What users write for a `provider: haproxy` target, and its checks.
//!
//! Owns the `haproxy:` block of a target: field meanings, defaults and the
//! validation `config::compile` reports with positions. Must not talk to
//! HAProxy (the adapter checks the names against the running backend at
//! start-up).
use std::time::Duration;

use serde::Deserialize;

use crate::providers::ProviderBlock;
use crate::spec::YPath;

/// Default timeout of one runtime API command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default interval of the background `show servers state` poll.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default longest wait for a draining server's sessions to end (scale_in).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default weight of a half-open server: 10 % of its configured weight.
pub const DEFAULT_HALF_OPEN_PERCENT: u32 = 10;

/// A target made of server slots of one HAProxy backend, driven through the
/// runtime API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyConfig {
    /// Runtime API address: a Unix socket path (`/run/haproxy/admin.sock`,
    /// relative to the config file) or `tcp://host:port`. The socket must be
    /// at `level admin` to act (`level user` can only read state).
    pub runtime_api: String,
    /// The backend whose servers this target manages.
    pub backend: String,
    /// The target's server slots, in scale order (scale_out enables the first
    /// spare, scale_in takes the last replica out). Default: every non-backup
    /// server of the backend, in the order of their ids (config order).
    #[serde(default)]
    pub servers: Option<Vec<String>>,
    /// Servers failover may switch to when no spare slot is left; they must
    /// carry HAProxy's `backup` keyword. Default: every backup server of the
    /// backend.
    #[serde(default)]
    pub backups: Option<Vec<String>>,
    /// What an open circuit does to the server: `maint` (default: no traffic
    /// at all, health checks paused) or `drain` (no new load-balanced
    /// traffic; health checks and persistent sessions continue).
    #[serde(default)]
    pub circuit_open: Option<OpenState>,
    /// Weight of a half-open server: a percentage of its configured weight
    /// (`"10%"`, the default) or an absolute weight (`5`). Never below 1.
    #[serde(default)]
    pub half_open_weight: Option<WeightSetting>,
    /// Port the servers serve `/metrics` on, if not their traffic port: the
    /// scraper then scrapes `<server address>:<metrics_port>`.
    #[serde(default)]
    pub metrics_port: Option<u16>,
    /// scale_in: how long a drained server may keep its sessions before it is
    /// put into maintenance anyway (default 10s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub drain_timeout: Option<Duration>,
    /// How often `show servers state` is polled for the agent's view (default 1s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub poll_interval: Option<Duration>,
    /// Timeout of one runtime API command (default 5s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub timeout: Option<Duration>,
    /// Grow past the declared slots with `add server` (and shrink with
    /// `del server`); needs a backend with a dynamic balance algorithm.
    #[serde(default)]
    pub add_servers: Option<AddServers>,
}

/// `add_servers`: how scale_out creates servers at runtime once every slot is used.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddServers {
    /// Name prefix of the servers the agent adds (`<prefix><n>`); servers of
    /// the backend with this prefix are treated as added ones (and removed
    /// first on scale_in).
    pub name_prefix: String,
    /// Addresses (`ip:port`) a new server may take, in order; one server per address.
    pub addresses: Vec<String>,
    /// Server keywords for `add server` (e.g. `check weight 100`), as on a
    /// `server` line. Default: `check`.
    #[serde(default)]
    pub options: Option<String>,
}

/// The administrative state an open circuit puts a server into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OpenState {
    #[default]
    Maint,
    Drain,
}

impl OpenState {
    pub fn as_str(self) -> &'static str {
        match self {
            OpenState::Maint => "maint",
            OpenState::Drain => "drain",
        }
    }
}

/// A weight as written: a number or a string (`"10%"`, `"5"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum WeightSetting {
    Absolute(u64),
    Text(String),
}

/// A parsed weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Percent of the server's configured (initial) weight.
    Percent(u32),
    /// An absolute HAProxy weight (1..=256).
    Absolute(u32),
}

impl Weight {
    /// The absolute weight for a server whose configured weight is `initial`;
    /// at least 1 (a half-open server must get some traffic), at most 256.
    pub fn resolve(self, initial: u32) -> u32 {
        let w = match self {
            Weight::Percent(p) => (u64::from(initial) * u64::from(p) + 50) / 100,
            Weight::Absolute(w) => u64::from(w),
        };
        w.clamp(1, 256) as u32
    }
}

impl WeightSetting {
    pub fn parse(&self) -> Result<Weight, String> {
        let check_abs = |w: u64| {
            if (1..=256).contains(&w) {
                Ok(Weight::Absolute(w as u32))
            } else {
                Err(format!("absolute weight {w} is outside 1..=256"))
            }
        };
        match self {
            WeightSetting::Absolute(w) => check_abs(*w),
            WeightSetting::Text(t) => {
                let t = t.trim();
                if let Some(p) = t.strip_suffix('%') {
                    let p: u32 = p
                        .trim()
                        .parse()
                        .map_err(|_| format!("{t:?} is not a weight (N or N%)"))?;
                    if (1..=100).contains(&p) {
                        Ok(Weight::Percent(p))
                    } else {
                        Err(format!("{t:?}: a percentage must be 1%..=100%"))
                    }
                } else {
                    let w: u64 = t
                        .parse()
                        .map_err(|_| format!("{t:?} is not a weight (N or N%)"))?;
                    check_abs(w)
                }
            }
        }
    }
}

/// HAProxy proxy and server names: letters, digits, `-`, `_`, `.` and `:`.
/// Checked so that no name can smuggle a second command (`;`) or argument.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// `ip:port` (IPv6 in brackets) as `add server` takes it.
fn valid_address(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>().is_ok()
}

impl HaproxyConfig {
    /// The half-open weight (default 10 %).
    pub fn half_open(&self) -> Weight {
        self.half_open_weight
            .as_ref()
            .and_then(|w| w.parse().ok())
            .unwrap_or(Weight::Percent(DEFAULT_HALF_OPEN_PERCENT))
    }

    /// Keywords for `add server` (default `check`).
    pub fn add_options(&self) -> &str {
        self.add_servers
            .as_ref()
            .and_then(|a| a.options.as_deref())
            .unwrap_or("check")
    }
}

impl ProviderBlock for HaproxyConfig {
    fn check(&self, at: &YPath) -> Vec<(YPath, String)> {
        let mut errs = Vec::new();
        let api = self.runtime_api.trim();
        if api.is_empty() {
            errs.push((
                at.key("runtime_api"),
                "haproxy.runtime_api: is empty".into(),
            ));
        } else if let Some(rest) = api.strip_prefix("tcp://") {
            let ok = rest
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                errs.push((
                    at.key("runtime_api"),
                    format!("haproxy.runtime_api: {api:?} is not tcp://host:port"),
                ));
            }
        } else if api.contains("://") {
            errs.push((
                at.key("runtime_api"),
                format!("haproxy.runtime_api: {api:?}: only a socket path or tcp://host:port"),
            ));
        }
        if self.backend.trim().is_empty() {
            errs.push((at.key("backend"), "haproxy.backend: is empty".into()));
        } else if !valid_name(&self.backend) {
            errs.push((
                at.key("backend"),
                format!(
                    "haproxy.backend: {:?} is not a HAProxy name (letters, digits, - _ . :)",
                    self.backend
                ),
            ));
        }
        for (field, list) in [("servers", &self.servers), ("backups", &self.backups)] {
            let Some(list) = list else { continue };
            if list.is_empty() && field == "servers" && self.add_servers.is_none() {
                errs.push((
                    at.key(field),
                    "haproxy.servers: is empty (leave it out to use every non-backup server)"
                        .into(),
                ));
            }
            for (i, name) in list.iter().enumerate() {
                if !valid_name(name) {
                    errs.push((
                        at.key(field).idx(i),
                        format!("haproxy.{field}[{i}]: {name:?} is not a HAProxy server name"),
                    ));
                } else if list[..i].contains(name) {
                    errs.push((
                        at.key(field).idx(i),
                        format!("haproxy.{field}[{i}]: {name:?} is listed twice"),
                    ));
                }
            }
        }
        if let (Some(s), Some(b)) = (&self.servers, &self.backups) {
            for (i, name) in b.iter().enumerate() {
                if s.contains(name) {
                    errs.push((
                        at.key("backups").idx(i),
                        format!("haproxy.backups[{i}]: {name:?} is also a slot in haproxy.servers"),
                    ));
                }
            }
        }
        if let Some(w) = &self.half_open_weight {
            if let Err(e) = w.parse() {
                errs.push((
                    at.key("half_open_weight"),
                    format!("haproxy.half_open_weight: {e}"),
                ));
            }
        }
        if self.metrics_port == Some(0) {
            errs.push((
                at.key("metrics_port"),
                "haproxy.metrics_port: must be 1..=65535".into(),
            ));
        }
        for (field, d) in [
            ("poll_interval", self.poll_interval),
            ("timeout", self.timeout),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                errs.push((at.key(field), format!("haproxy.{field}: must be above 0")));
            }
        }
        if let Some(a) = &self.add_servers {
            let at = at.key("add_servers");
            if !valid_name(&a.name_prefix) {
                errs.push((
                    at.key("name_prefix"),
                    format!(
                        "haproxy.add_servers.name_prefix: {:?} is not a HAProxy name",
                        a.name_prefix
                    ),
                ));
            } else if let Some(s) = &self.servers {
                if let Some(n) = s.iter().find(|n| n.starts_with(&a.name_prefix)) {
                    errs.push((
                        at.key("name_prefix"),
                        format!(
                            "haproxy.add_servers.name_prefix: slot {n:?} already starts with {:?}",
                            a.name_prefix
                        ),
                    ));
                }
            }
            if a.addresses.is_empty() {
                errs.push((
                    at.key("addresses"),
                    "haproxy.add_servers.addresses: is empty".into(),
                ));
            }
            for (i, addr) in a.addresses.iter().enumerate() {
                if !valid_address(addr) {
                    errs.push((
                        at.key("addresses").idx(i),
                        format!("haproxy.add_servers.addresses[{i}]: {addr:?} is not ip:port"),
                    ));
                } else if a.addresses[..i].contains(addr) {
                    errs.push((
                        at.key("addresses").idx(i),
                        format!("haproxy.add_servers.addresses[{i}]: {addr:?} is listed twice"),
                    ));
                }
            }
            if let Some(o) = &a.options {
                let ok = o.split_whitespace().all(|w| {
                    w.bytes().all(|b| {
                        b.is_ascii_alphanumeric()
                            || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'%' | b'@')
                    })
                });
                if !ok {
                    errs.push((
                        at.key("options"),
                        format!(
                            "haproxy.add_servers.options: {o:?}: only server keywords and plain values (no ; \\ # or quotes)"
                        ),
                    ));
                }
            }
        }
        errs
    }

    fn resolve_paths(&mut self, base_dir: &std::path::Path) {
        if !self.runtime_api.contains("://") {
            self.runtime_api = base_dir.join(&self.runtime_api).display().to_string();
        }
    }

    /// With an explicit slot list the slots bound the replica count.
    fn implied_max(&self) -> Option<u32> {
        let slots = self.servers.as_ref()?.len();
        let added = self.add_servers.as_ref().map_or(0, |a| a.addresses.len());
        Some((slots + added) as u32)
    }
}
