//! Shared helpers of the agent integration tests (`agent_e2e`, `agent_crash`, `cli`).
//!
//! The agent runs as a real process (`homeostat run -c …`) in a temporary
//! directory; tests observe it only through its real surfaces: the audit log
//! files, the HTTP API, the process provider's discovery and state files, and
//! the processes themselves. [`Harness`] kills the agent and every replica it
//! started (found by their `HOMEOSTAT_REPLICA` environment marker) on drop,
//! whether the test passed or not.
//!
//! Conditions are deterministic: a [`ControlExporter`] in the test process
//! serves gauges the test sets, and rules act on those gauges.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homeostat::audit::{AuditEvent, EventKind};

pub const EXE: &str = env!("CARGO_BIN_EXE_homeostat");

/// Generous upper bound for anything the agent should do "soon".
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A polling deadline: bounds how long a test waits for something. Tests never
/// assert timings; elapsed time only decides when to give up.
pub struct Deadline(Instant);

impl Deadline {
    #[allow(clippy::disallowed_methods)] // bounds polling in a test, never asserted
    pub fn after(d: Duration) -> Self {
        Self(Instant::now() + d)
    }

    #[allow(clippy::disallowed_methods)] // see above
    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }
}

/// Whether a test may use an external component. Missing under `CI=true`: the
/// test fails (CI installs everything). Missing otherwise: a loud `SKIPPED`
/// line saying how to install it, and `false`.
pub fn available(present: bool, what: &str, install: &str) -> bool {
    if present {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing ({install}); required under CI=true");
    }
    eprintln!("\n*** SKIPPED: {what} is missing ({install}) ***\n");
    false
}

/// The absolute path of `program` on `PATH`, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// A free port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// Control exporter: gauges the test sets, in Prometheus text format.
// ---------------------------------------------------------------------------

/// A `/metrics` endpoint in the test process serving gauges the test sets.
#[derive(Clone)]
pub struct ControlExporter {
    pub addr: SocketAddr,
    values: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl ControlExporter {
    /// Start serving on 127.0.0.1:0 with the given initial gauges.
    pub async fn start(initial: &[(&str, f64)]) -> Self {
        use axum::routing::get;
        let values: Arc<Mutex<BTreeMap<String, f64>>> = Arc::new(Mutex::new(
            initial.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ));
        let v2 = values.clone();
        let app = axum::Router::new().route(
            "/metrics",
            get(move || {
                let v = v2.clone();
                async move {
                    let mut out = String::new();
                    for (name, value) in v.lock().unwrap().iter() {
                        out.push_str(&format!("# TYPE {name} gauge\n{name} {value}\n"));
                    }
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        out,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, values }
    }

    pub fn set(&self, name: &str, value: f64) {
        self.values.lock().unwrap().insert(name.to_string(), value);
    }
}

// ---------------------------------------------------------------------------
// The agent under test.
// ---------------------------------------------------------------------------

/// Options of the generated agent config.
pub struct Setup {
    /// Address of the control exporter (scraped by job `control`).
    pub control: SocketAddr,
    /// `targets:` section body (YAML, indented by 2), written as given except
    /// that `{ROOT}` becomes the temporary directory.
    pub targets_yaml: String,
    /// Extra scrape jobs (YAML list items, indented by 4).
    pub extra_jobs_yaml: String,
    /// The rule file (whole YAML document).
    pub rules_yaml: String,
}

/// A process target `web` of demo-service replicas on `ports` (e.g. "19100-19119").
pub fn process_target(
    ports: &str,
    min: u32,
    max: u32,
    initial: u32,
    extra_args: &[&str],
) -> String {
    let mut cmd = format!(
        "[\"{EXE}\", \"demo-service\", \"--port\", \"{{{{port}}}}\", \"--version\", \"{{{{version}}}}\", \"--base-latency\", \"1ms\", \"--jitter\", \"0ms\""
    );
    for a in extra_args {
        cmd.push_str(&format!(", \"{a}\""));
    }
    cmd.push(']');
    format!(
        r#"  web:
    provider: process
    min: {min}
    max: {max}
    cooldown_up: 1s
    cooldown_down: 1s
    process:
      command: {cmd}
      version: v1
      ports: "{ports}"
      health: /healthz
      initial_replicas: {initial}
      startup_timeout: 15s
      stop_timeout: 3s
      health_interval: 300ms
      health_timeout: 500ms
"#
    )
}

/// Scrape job `web` over the process target's replicas.
pub const WEB_JOB: &str = "    - name: web\n      target: web\n";

/// A running (or stopped) agent with its temporary directory. Drop kills the
/// agent and every replica started under its data dir.
pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub rules_file: PathBuf,
    pub listen: SocketAddr,
    child: Option<Child>,
    starts: u32,
}

impl Harness {
    /// Write config and rules into a fresh temporary directory (agent not started).
    pub fn new(setup: &Setup) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("rules")).unwrap();
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = root.join("homeostat.yaml");
        let text = format!(
            r#"listen: "{listen}"
data_dir: data
rule_files: ["rules/*.yaml"]
log:
  level: info
scrape:
  interval: 1s
  timeout: 800ms
  jobs:
    - name: control
      static_targets: ["{control}"]
{jobs}targets:
{targets}guard:
  max_actions_per_target_per_hour: 1000
"#,
            control = setup.control,
            jobs = setup.extra_jobs_yaml,
            targets = setup
                .targets_yaml
                .replace("{ROOT}", &root.display().to_string()),
        );
        std::fs::write(&config, text).unwrap();
        let rules_file = root.join("rules/test.yaml");
        std::fs::write(&rules_file, &setup.rules_yaml).unwrap();
        Self {
            data_dir: root.join("data"),
            tmp,
            root,
            config,
            rules_file,
            listen,
            child: None,
            starts: 0,
        }
    }

    pub fn audit_dir(&self) -> PathBuf {
        self.data_dir.join("audit")
    }

    pub fn log_path(&self, n: u32) -> PathBuf {
        self.root.join(format!("agent-{n}.log"))
    }

    /// Start `homeostat run` (output to `agent-<n>.log`) and wait for `/-/ready`.
    pub async fn start(&mut self) {
        let mut cmd = Command::new(EXE);
        cmd.arg("run").arg("-c").arg(&self.config);
        self.start_command(cmd).await
    }

    /// [`Harness::start`] with `RLIMIT_NOFILE` (soft and hard) set to `n`
    /// (through the shell's `ulimit`, which then `exec`s the agent).
    pub async fn start_with_open_files_limit(&mut self, n: u32) {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {n} && exec \"$0\" run -c \"$1\""))
            .arg(EXE)
            .arg(&self.config);
        self.start_command(cmd).await
    }

    async fn start_command(&mut self, mut cmd: Command) {
        assert!(self.child.is_none(), "agent already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Deadline::after(PATIENCE);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("agent exited during start-up ({status}):\n{}", self.logs());
            }
            if let Ok(r) = http().get(self.url("/-/ready")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(!deadline.passed(), "agent not ready:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The agent's pid (while running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// SIGKILL the agent and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the agent and wait for it to exit (up to [`PATIENCE`]).
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("agent running");
        signal(c.id(), nix::sys::signal::Signal::SIGTERM);
        let deadline = Deadline::after(PATIENCE);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if deadline.passed() {
                let _ = c.kill();
                panic!("agent ignored SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Is the agent process still running?
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listen, path)
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = http().get(self.url(path)).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// POST with an empty body (typed JSON, as loopback callers without a
    /// token must send); returns (status, body text).
    pub async fn post(&self, path: &str) -> (u16, String) {
        let r = http()
            .post(self.url(path))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// Every audit event so far, in order.
    pub fn events(&self) -> Vec<AuditEvent> {
        if !self.audit_dir().exists() {
            return Vec::new();
        }
        homeostat::audit::read_all(&self.audit_dir()).unwrap()
    }

    /// Events of a kind (optionally of a rule).
    pub fn events_of(&self, kind: EventKind, rule: Option<&str>) -> Vec<AuditEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.event == Some(kind))
            .filter(|e| rule.is_none() || e.rule.as_deref() == rule)
            .collect()
    }

    /// The agent's log(s) and a summary of the audit log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.starts {
            let text = std::fs::read_to_string(self.log_path(n)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            out.push_str(&format!("--- agent run {n} (last {} lines)\n", tail.len()));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        out.push_str("--- audit\n");
        for e in self.events() {
            out.push_str(&summarize(&e));
            out.push('\n');
        }
        out
    }

    /// Poll `f` until it returns `Some`, up to `limit`; panic with the logs otherwise.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Deadline::after(limit);
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if deadline.passed() {
                panic!("timed out waiting for {what}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The audit events once every started action has its outcome written:
    /// the provider's effect (a new pid, a changed discovery file) is visible a
    /// moment before the executor records `action_succeeded`.
    pub async fn settled_events(&self) -> Vec<AuditEvent> {
        self.wait_for("every started action to have an outcome", PATIENCE, |h| {
            let events = h.events();
            let open = homeostat::audit::open_actions(&events);
            open.is_empty().then_some(events)
        })
        .await
    }

    /// Wait for the first event matching `pred` (returns it).
    pub async fn wait_event(&self, what: &str, pred: impl Fn(&AuditEvent) -> bool) -> AuditEvent {
        self.wait_for(what, PATIENCE, |h| h.events().into_iter().find(|e| pred(e)))
            .await
    }

    /// Discovery file of target `web`: the `host:port` list in traffic.
    pub fn discovery(&self, target: &str) -> Vec<String> {
        let path = self.data_dir.join("targets").join(format!("{target}.json"));
        let Ok(bytes) = std::fs::read(&path) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let group = &v.as_array().expect("file_sd is a list")[0];
        assert_eq!(group["labels"]["homeostat_target"], target);
        let mut t: Vec<String> = group["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    }

    /// `(port, pid)` of the replicas recorded in `replicas.json`.
    pub fn recorded_replicas(&self, target: &str) -> BTreeMap<u16, u32> {
        let path = self
            .data_dir
            .join("targets")
            .join(target)
            .join("replicas.json");
        let Ok(bytes) = std::fs::read(&path) else {
            return BTreeMap::new();
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["port"].as_u64().unwrap() as u16,
                    r["pid"].as_u64().unwrap() as u32,
                )
            })
            .collect()
    }

    /// Live replica processes of `target` found independently of the agent:
    /// `/proc/*/environ` carrying the marker of this data dir. Map port → pid.
    pub fn live_replicas(&self, target: &str) -> BTreeMap<u16, u32> {
        let dir = self.data_dir.join("targets").join(target);
        marked_processes(&format!("{}#", dir.display()))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.kill9();
        // Every replica of every target under this data dir, by its marker.
        let prefix = format!("{}#", self.data_dir.join("targets").display());
        let mut prefixes = vec![prefix];
        if let Ok(rd) = std::fs::read_dir(self.data_dir.join("targets")) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    prefixes.push(format!("{}#", e.path().display()));
                }
            }
        }
        for p in prefixes {
            for pid in marked_processes(&p).values() {
                let pid = nix::unistd::Pid::from_raw(*pid as i32);
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// Live, non-zombie processes whose `HOMEOSTAT_REPLICA` marker starts with
/// `prefix` (`<target dir>#`); port → pid.
pub fn marked_processes(prefix: &str) -> BTreeMap<u16, u32> {
    let want = format!("HOMEOSTAT_REPLICA={prefix}");
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in rd.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let Some(port) = env.split(|&b| b == 0).find_map(|kv| {
            let kv = std::str::from_utf8(kv).ok()?;
            kv.strip_prefix(&want)?.parse::<u16>().ok()
        }) else {
            continue;
        };
        if !is_alive(pid) {
            continue;
        }
        out.insert(port, pid);
    }
    out
}

/// Running and not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// One line per event for failure messages.
pub fn summarize(e: &AuditEvent) -> String {
    format!(
        "{:>4} {:<18} rule={} id={} inst={} cause={} before={} after={} err={}",
        e.seq,
        e.event.map(|k| k.as_str()).unwrap_or("?"),
        e.rule.as_deref().unwrap_or("-"),
        e.action_id.as_deref().unwrap_or("-"),
        e.instance.as_deref().unwrap_or("-"),
        e.cause.as_deref().unwrap_or("-"),
        e.before.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        e.after.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        e.error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or(""),
    )
}

/// Action ids of `action_started` events of `rule`.
pub fn started_ids(events: &[AuditEvent], rule: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == Some(EventKind::ActionStarted) && e.rule.as_deref() == Some(rule))
        .filter_map(|e| e.action_id.clone())
        .collect()
}

/// Position of the first event of `kind` with action id `id`.
pub fn position(events: &[AuditEvent], kind: EventKind, id: &str) -> Option<usize> {
    events
        .iter()
        .position(|e| e.event == Some(kind) && e.action_id.as_deref() == Some(id))
}

/// Assert that the action `id` has decision → action_started → action_succeeded, in order.
pub fn assert_decided_started_succeeded(events: &[AuditEvent], id: &str) {
    let d = position(events, EventKind::Decision, id);
    let s = position(events, EventKind::ActionStarted, id);
    let ok = position(events, EventKind::ActionSucceeded, id);
    let dump = || events.iter().map(summarize).collect::<Vec<_>>().join("\n");
    match (d, s, ok) {
        (Some(d), Some(s), Some(ok)) => {
            assert!(d < s && s < ok, "order of {id} wrong:\n{}", dump())
        }
        _ => panic!(
            "{id}: decision={d:?} started={s:?} succeeded={ok:?}\n{}",
            dump()
        ),
    }
}

/// Run `homeostat audit verify --dir <dir>`: (exit code, stdout+stderr).
pub fn audit_verify(dir: &Path) -> (i32, String) {
    let out = Command::new(EXE)
        .args(["audit", "verify", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Ports in the discovery list (`127.0.0.1:19100` → 19100).
pub fn ports_of(addrs: &[String]) -> BTreeSet<u16> {
    addrs
        .iter()
        .filter_map(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .collect()
}
