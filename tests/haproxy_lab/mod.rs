//! A real HAProxy in front of real demo-service replicas, for the haproxy
//! provider's tests.
//!
//! [`Lab::start`] writes a HAProxy config into a temporary directory (admin
//! Unix socket, a `level user` socket, an admin TCP socket, a frontend on a
//! free port, one backend whose servers are `homeostat demo-service`
//! processes on free ports, HTTP health checks, and an `X-Server` response
//! header naming the server that answered), starts `haproxy -db` and waits
//! until every enabled server is UP. Drop kills HAProxy and every service,
//! whether the test passed or not.
#![allow(dead_code)] // each test uses a different subset

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homeostat::providers::haproxy::client::{Client, Endpoint, Server};

use crate::common::{free_port, http, which, Deadline, EXE, PATIENCE};

/// One `server` line of the backend.
#[derive(Debug, Clone)]
pub struct Srv {
    pub name: &'static str,
    /// Extra keywords: `disabled`, `backup`, ...
    pub extra: &'static str,
    /// Start a demo-service for it (false: its address has nothing listening).
    pub run: bool,
}

pub fn srv(name: &'static str) -> Srv {
    Srv {
        name,
        extra: "",
        run: true,
    }
}

pub fn disabled(name: &'static str) -> Srv {
    Srv {
        name,
        extra: "disabled",
        run: true,
    }
}

pub fn backup(name: &'static str) -> Srv {
    Srv {
        name,
        extra: "backup",
        run: true,
    }
}

/// Lab options.
pub struct Spec {
    pub servers: Vec<Srv>,
    /// `balance` algorithm (default roundrobin).
    pub balance: &'static str,
    /// Demo services started but not declared (for `add server`).
    pub extra_services: usize,
    /// Time each demo-service request takes (`--base-latency`).
    pub latency: &'static str,
}

impl Spec {
    pub fn new(servers: Vec<Srv>) -> Self {
        Self {
            servers,
            balance: "roundrobin",
            extra_services: 0,
            latency: "1ms",
        }
    }
}

/// A demo-service process.
pub struct Service {
    pub port: u16,
    child: Child,
}

impl Service {
    pub fn start(port: u16, log: &std::path::Path, latency: &str) -> Self {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(EXE)
            .args(["demo-service", "--port", &port.to_string()])
            .args([
                "--base-latency",
                latency,
                "--jitter",
                "0ms",
                "--workers",
                "64",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { port, child }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Lab {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub admin_sock: PathBuf,
    pub user_sock: PathBuf,
    pub tcp_port: u16,
    pub front_port: u16,
    pub backend: &'static str,
    /// Server name → its demo-service (for servers with `run`).
    pub services: BTreeMap<String, Service>,
    /// Server name → port (all declared servers).
    pub ports: BTreeMap<String, u16>,
    /// Started, undeclared services (for `add server`).
    pub extra: Vec<Service>,
    haproxy: Option<Child>,
}

/// Is HAProxy installed? (CI=true: panics when it is not.)
pub fn haproxy_available() -> bool {
    crate::common::available(
        which("haproxy").is_some(),
        "haproxy",
        "apt-get install haproxy",
    )
}

impl Lab {
    pub async fn start(spec: Spec) -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let admin_sock = dir.join("admin.sock");
        let user_sock = dir.join("user.sock");
        let tcp_port = free_port();
        let front_port = free_port();
        let mut services = BTreeMap::new();
        let mut ports = BTreeMap::new();
        let mut lines = String::new();
        for s in &spec.servers {
            let port = free_port();
            ports.insert(s.name.to_string(), port);
            if s.run {
                services.insert(
                    s.name.to_string(),
                    Service::start(port, &dir.join(format!("{}.log", s.name)), spec.latency),
                );
            }
            lines.push_str(&format!(
                "    server {} 127.0.0.1:{port} check weight 100 {}\n",
                s.name, s.extra
            ));
        }
        let extra = (0..spec.extra_services)
            .map(|i| {
                Service::start(
                    free_port(),
                    &dir.join(format!("extra-{i}.log")),
                    spec.latency,
                )
            })
            .collect();
        let cfg = format!(
            r#"global
    stats socket {admin} mode 600 level admin
    stats socket {user} mode 600 level user
    stats socket ipv4@127.0.0.1:{tcp_port} level admin
    stats timeout 10s
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{front_port}
    default_backend web
backend web
    balance {balance}
    option httpchk GET /healthz
    default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 1
    http-response set-header X-Server %s
{lines}"#,
            admin = admin_sock.display(),
            user = user_sock.display(),
            balance = spec.balance,
        );
        std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
        let mut lab = Lab {
            tmp,
            dir,
            admin_sock,
            user_sock,
            tcp_port,
            front_port,
            backend: "web",
            services,
            ports,
            extra,
            haproxy: None,
        };
        lab.start_haproxy();
        // Every server that is enabled and runs must be UP before the test acts.
        let want: Vec<String> = spec
            .servers
            .iter()
            .filter(|s| s.run && !s.extra.contains("disabled"))
            .map(|s| s.name.to_string())
            .collect();
        lab.wait_servers("enabled servers UP", |servers| {
            want.iter().all(|n| {
                servers
                    .iter()
                    .any(|s| &s.name == n && s.status.starts_with("UP"))
            })
        })
        .await;
        lab
    }

    fn start_haproxy(&mut self) {
        let log = std::fs::File::create(self.dir.join("haproxy.log")).unwrap();
        let child = Command::new(which("haproxy").expect("haproxy installed"))
            .arg("-db")
            .arg("-f")
            .arg(self.dir.join("haproxy.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.haproxy = Some(child);
    }

    /// Stop HAProxy (SIGKILL) — the runtime API goes away.
    pub fn kill_haproxy(&mut self) {
        if let Some(mut c) = self.haproxy.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn admin(&self) -> Client {
        Client::new(
            Endpoint::Unix(self.admin_sock.clone()),
            Duration::from_secs(5),
        )
    }

    pub fn haproxy_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }

    /// The backend's servers as HAProxy reports them now.
    pub async fn servers(&self) -> Vec<Server> {
        self.admin().servers(self.backend).await.unwrap()
    }

    pub async fn server(&self, name: &str) -> Server {
        self.servers()
            .await
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no server {name}"))
    }

    /// Poll the runtime API until `ok` holds (HAProxy's log in the panic).
    pub async fn wait_servers(&self, what: &str, ok: impl Fn(&[Server]) -> bool) -> Vec<Server> {
        let deadline = Deadline::after(PATIENCE);
        loop {
            if let Ok(s) = self.admin().servers(self.backend).await {
                if ok(&s) {
                    return s;
                }
                if deadline.passed() {
                    panic!(
                        "timed out waiting for {what}: {s:#?}\n{}",
                        self.haproxy_log()
                    );
                }
            } else if deadline.passed() {
                panic!("timed out waiting for {what}\n{}", self.haproxy_log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn address(&self, name: &str) -> String {
        format!("127.0.0.1:{}", self.ports[name])
    }

    /// `n` requests through the frontend: answers per server (`X-Server`).
    pub async fn spread(&self, n: usize) -> BTreeMap<String, usize> {
        let c = http();
        let url = format!("http://127.0.0.1:{}/", self.front_port);
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let r = c.get(&url).send().await.expect("request through HAProxy");
            assert!(
                r.status().is_success(),
                "HAProxy answered {}\n{}",
                r.status(),
                self.haproxy_log()
            );
            let server = r
                .headers()
                .get("x-server")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_string();
            let _ = r.bytes().await;
            *out.entry(server).or_default() += 1;
        }
        out
    }

    /// Work requests the service at `addr` has served (its own counter).
    pub async fn served(&self, addr: &str) -> u64 {
        let text = http()
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("http_requests_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_haproxy();
    }
}
