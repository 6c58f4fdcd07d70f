//! Fixtures of the Docker tests: a test image made from this crate's binary,
//! seed containers and networks on the real engine, all removed on drop.
//!
//! No image can be pulled here, so each test process builds its own: the
//! agent binary (stripped of debug info), the shared libraries `ldd` lists
//! and the dynamic loader, packed into a root filesystem and `docker import`ed
//! as `homeostat-test-<run>:v1`, `:v2` and `:v2-bad` (the version comes from
//! `HOMEOSTAT_DEMO_VERSION` in the image; the demo service fails `/healthz`
//! when it contains "bad"). The image runs as user 65534. An imported image
//! cannot carry a HEALTHCHECK, so seed containers get theirs in their own
//! config (exec form: the image has no shell) — which the adapter must copy.
//!
//! Everything a test creates carries the label `homeostat.test=<run>`
//! (images, seed containers, and through copying, every replica the adapter
//! creates); [`DockerFixture`]'s drop removes every container with that label,
//! the networks it made and the images, whether the test passed or not.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HealthConfig, HostConfig};

pub use crate::common::{which, Deadline, EXE, PATIENCE};

/// Container port the demo service listens on inside.
pub const PORT: u16 = 8080;

/// Whether the Docker engine and CLI are here. Missing under `CI=true`: the
/// test fails; otherwise a loud SKIPPED line.
pub fn docker_available() -> bool {
    let present = which("docker").is_some()
        && Path::new("/var/run/docker.sock").exists()
        && which("strip").is_some()
        && which("ldd").is_some()
        && which("tar").is_some();
    crate::common::available(
        present,
        "the Docker engine (/var/run/docker.sock), the docker CLI, strip, ldd and tar",
        "apt-get install docker.io binutils",
    )
}

/// Run the docker CLI; panics with its output if it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run the docker CLI, ignoring failure (cleanup).
fn docker_quiet(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A client of the real engine (API version negotiated: the engine may be older than bollard).
pub async fn engine() -> bollard::Docker {
    bollard::Docker::connect_with_unix("/var/run/docker.sock", 60, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

/// The image, the seed containers and networks of one test; all removed on drop.
pub struct DockerFixture {
    /// Unique per test process; the value of the `homeostat.test` label.
    pub run: String,
    /// `homeostat-test-<run>`.
    pub repo: String,
    pub engine: bollard::Docker,
    networks: Mutex<Vec<String>>,
    _tmp: tempfile::TempDir,
}

/// A seed container, created the way a user would (`docker run`).
#[derive(Clone)]
pub struct Seed {
    pub target: String,
    pub name: String,
    pub tag: String,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    /// Host port on 127.0.0.1 (`None`: the engine picks one).
    pub host_port: Option<u16>,
    pub network: Option<String>,
    pub aliases: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub health_check: bool,
}

impl Seed {
    pub fn new(target: &str, name: &str) -> Self {
        Self {
            target: target.into(),
            name: name.into(),
            tag: "v1".into(),
            cmd: None,
            env: Vec::new(),
            host_port: None,
            network: None,
            aliases: Vec::new(),
            labels: Vec::new(),
            health_check: true,
        }
    }
}

/// The demo service's command in the image (after the `/homeostat` entrypoint).
pub fn demo_cmd(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "demo-service",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--base-latency",
        "1ms",
        "--jitter",
        "0ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The exec-form health check seed containers get (the image has no shell).
pub fn health_check() -> HealthConfig {
    HealthConfig {
        test: Some(
            ["CMD", "/homeostat", "healthcheck", "--port", "8080"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        interval: Some(500_000_000),
        timeout: Some(2_000_000_000),
        retries: Some(2),
        start_period: Some(0),
        start_interval: None,
    }
}

fn unique_run() -> String {
    let pid = std::process::id();
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{pid:x}{nanos:08x}")
}

/// The stripped agent binary plus its shared libraries and loader, in `root`.
fn make_rootfs(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let bin = root.join("homeostat");
    let st = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&bin)
        .arg(EXE)
        .status()
        .unwrap();
    assert!(st.success(), "strip failed");
    let ldd = Command::new("ldd").arg(&bin).output().unwrap();
    assert!(ldd.status.success(), "ldd failed");
    let text = String::from_utf8_lossy(&ldd.stdout);
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let dest = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        // Follow symlinks: the file content under the name the loader asks for.
        std::fs::copy(path, &dest).unwrap_or_else(|e| panic!("copy {path}: {e}"));
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
}

impl DockerFixture {
    /// Build the test image (`v1`, `v2`, `v2-bad`). `None`: Docker is not here (skipped).
    pub async fn new() -> Option<Self> {
        if !docker_available() {
            return None;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let run = unique_run();
        let repo = format!("homeostat-test-{run}");
        let tmp = tempfile::tempdir().unwrap();
        let fixture = Self {
            run: run.clone(),
            repo: repo.clone(),
            engine: engine().await,
            networks: Mutex::new(Vec::new()),
            _tmp: tmp,
        };
        let root = fixture._tmp.path().join("rootfs");
        make_rootfs(&root);
        let tar = fixture._tmp.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar failed");
        for version in ["v1", "v2", "v2-bad"] {
            let env = format!("ENV HOMEOSTAT_DEMO_VERSION={version}");
            let label = format!("LABEL homeostat.test={run}");
            let cmd = format!("CMD {}", serde_json::to_string(&demo_cmd(&[])).unwrap());
            docker(&[
                "import",
                "--change",
                "USER 65534:65534",
                "--change",
                &env,
                "--change",
                &label,
                "--change",
                "ENTRYPOINT [\"/homeostat\"]",
                "--change",
                &cmd,
                tar.to_str().unwrap(),
                &format!("{repo}:{version}"),
            ]);
        }
        Some(fixture)
    }

    pub fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.repo)
    }

    /// A user-defined network (removed on drop).
    pub fn network(&self, suffix: &str) -> String {
        let name = format!("hst-{}-{suffix}", self.run);
        docker(&[
            "network",
            "create",
            "--label",
            &format!("homeostat.test={}", self.run),
            &name,
        ]);
        self.networks.lock().unwrap().push(name.clone());
        name
    }

    /// Create and start a seed container; returns its id.
    pub async fn seed(&self, s: &Seed) -> String {
        let mut labels: HashMap<String, String> = HashMap::from([
            ("homeostat.target".to_string(), s.target.clone()),
            ("homeostat.test".to_string(), self.run.clone()),
        ]);
        labels.extend(s.labels.iter().cloned());
        let bindings = HashMap::from([(
            format!("{PORT}/tcp"),
            Some(vec![bollard::models::PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(s.host_port.map(|p| p.to_string()).unwrap_or_default()),
            }]),
        )]);
        let body = ContainerCreateBody {
            image: Some(self.image(&s.tag)),
            cmd: s.cmd.clone(),
            env: Some(s.env.clone()),
            labels: Some(labels),
            exposed_ports: Some(vec![format!("{PORT}/tcp")]),
            healthcheck: s.health_check.then(health_check),
            host_config: Some(HostConfig {
                port_bindings: Some(bindings),
                network_mode: s.network.clone(),
                ..Default::default()
            }),
            networking_config: s
                .network
                .as_ref()
                .map(|n| bollard::models::NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        n.clone(),
                        bollard::models::EndpointSettings {
                            aliases: Some(s.aliases.clone()),
                            ..Default::default()
                        },
                    )])),
                }),
            ..Default::default()
        };
        let opts = bollard::query_parameters::CreateContainerOptionsBuilder::default()
            .name(&s.name)
            .build();
        let id = self
            .engine
            .create_container(Some(opts), body)
            .await
            .unwrap_or_else(|e| panic!("create seed {}: {e}", s.name))
            .id;
        self.engine
            .start_container(&id, None)
            .await
            .unwrap_or_else(|e| panic!("start seed {}: {e}", s.name));
        id
    }

    pub async fn inspect(&self, name_or_id: &str) -> Option<ContainerInspectResponse> {
        self.engine.inspect_container(name_or_id, None).await.ok()
    }

    /// Every container of `target` (running or not), oldest first.
    pub async fn containers(&self, target: &str) -> Vec<ContainerInspectResponse> {
        let filters = HashMap::from([("label", vec![format!("homeostat.target={target}")])]);
        let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self.engine.list_containers(Some(opts)).await.unwrap();
        let mut out = Vec::new();
        for c in list {
            if let Some(i) = self.inspect(c.id.as_deref().unwrap()).await {
                out.push(i);
            }
        }
        out.sort_by_key(|c| created_key(c.created.as_deref().unwrap_or("")));
        out
    }

    /// Names of the target's containers, oldest first.
    pub async fn names(&self, target: &str) -> Vec<String> {
        self.containers(target).await.iter().map(name).collect()
    }

    /// Wait until Docker reports the container `healthy` (or panic).
    pub async fn wait_health(&self, name_or_id: &str, want: &str) {
        let deadline = Deadline::after(PATIENCE);
        loop {
            let c = self.inspect(name_or_id).await;
            let status = c.as_ref().and_then(health_status);
            if status.as_deref() == Some(want) {
                return;
            }
            assert!(
                !deadline.passed(),
                "{name_or_id} not {want}: {status:?} {:?}",
                c.and_then(|c| c.state)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `docker events` of this test's containers between `since` and now, as JSON.
    pub fn events(&self, since: &str) -> Vec<serde_json::Value> {
        let until = docker(&["system", "info", "--format", "{{json .SystemTime}}"]);
        let until: String = serde_json::from_str(until.trim()).unwrap();
        let out = docker(&[
            "events",
            "--since",
            since,
            "--until",
            &until,
            "--filter",
            &format!("label=homeostat.test={}", self.run),
            "--filter",
            "type=container",
            "--format",
            "{{json .}}",
        ]);
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The engine's current time (for `events --since`).
    pub fn engine_time(&self) -> String {
        let t = docker(&["system", "info", "--format", "{{json .SystemTime}}"]);
        serde_json::from_str(t.trim()).unwrap()
    }
}

impl Drop for DockerFixture {
    fn drop(&mut self) {
        let label = format!("label=homeostat.test={}", self.run);
        let ids = docker_quiet(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            docker_quiet(&args);
        }
        for n in self.networks.lock().unwrap().drain(..) {
            docker_quiet(&["network", "rm", &n]);
        }
        for tag in ["v1", "v2", "v2-bad"] {
            docker_quiet(&["rmi", "-f", &format!("{}:{tag}", self.repo)]);
        }
    }
}

pub fn name(c: &ContainerInspectResponse) -> String {
    c.name
        .as_deref()
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string()
}

pub fn health_status(c: &ContainerInspectResponse) -> Option<String> {
    c.state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .map(|s| s.to_string())
}

pub fn label(c: &ContainerInspectResponse, key: &str) -> Option<String> {
    c.config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(key).cloned())
}

pub fn env_of(c: &ContainerInspectResponse) -> Vec<String> {
    c.config
        .as_ref()
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
}

pub fn image_of(c: &ContainerInspectResponse) -> String {
    c.config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// The live host binding of `8080/tcp`: (host ip, host port).
pub fn binding(c: &ContainerInspectResponse) -> Option<(String, u16)> {
    let b = c
        .network_settings
        .as_ref()?
        .ports
        .as_ref()?
        .get(&format!("{PORT}/tcp"))?
        .as_ref()?
        .first()?
        .clone();
    Some((b.host_ip?, b.host_port?.parse().ok()?))
}

/// The configured host binding of `8080/tcp` (kept while the container is stopped).
pub fn configured_port(c: &ContainerInspectResponse) -> Option<u16> {
    c.host_config
        .as_ref()?
        .port_bindings
        .as_ref()?
        .get(&format!("{PORT}/tcp"))?
        .as_ref()?
        .first()?
        .host_port
        .as_ref()?
        .parse()
        .ok()
}

/// RFC 3339 with the fraction padded, so it sorts.
pub fn created_key(s: &str) -> String {
    match s
        .strip_suffix('Z')
        .map(|b| b.split_once('.').unwrap_or((b, "")))
    {
        Some((secs, frac)) => format!("{secs}.{frac:0<9}"),
        None => s.to_string(),
    }
}

/// GET `http://<addr><path>`: (status, body).
pub async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let r = c.get(format!("http://{addr}{path}")).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap_or_default()))
}

pub async fn post(addr: &str, path: &str) -> Option<u16> {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    Some(
        c.post(format!("http://{addr}{path}"))
            .send()
            .await
            .ok()?
            .status()
            .as_u16(),
    )
}

/// The `version` label of `demo_build_info` on `/metrics` at `addr`.
pub async fn demo_version(addr: &str) -> Option<String> {
    let (_, body) = get(addr, "/metrics").await?;
    let line = body.lines().find(|l| l.starts_with("demo_build_info{"))?;
    let start = line.find("version=\"")? + 9;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}
