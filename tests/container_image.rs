//! The shipped container setup, built and run on the real Docker engine:
//! `scripts/build-local-image.sh` packs this test's agent binary (and Debian's
//! Prometheus) into FROM-scratch images, the image runs as a non-root user with
//! a read-only root filesystem and reports healthy through its own HEALTHCHECK,
//! and `deploy/docker-compose/` comes up (without Grafana, whose image cannot
//! be pulled here) with Prometheus scraping the agent and the agent scraping
//! the demo service in its own container.
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tools_available() -> bool {
    available(
        which("docker").is_some()
            && which("docker-compose").is_some()
            && which("prometheus").is_some()
            && which("ldd").is_some()
            && which("strip").is_some()
            && Path::new("/var/run/docker.sock").exists(),
        "the Docker engine, docker-compose, prometheus, ldd and strip",
        "apt-get install docker.io docker-compose prometheus binutils",
    )
}

/// Removes the test's images and compose project whatever happens.
struct Cleanup {
    images: Vec<String>,
    project: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = &self.project {
            let _ = run(Command::new("docker-compose")
                .args(["-p", p, "down", "-v", "--timeout", "5"])
                .current_dir(root().join("deploy/docker-compose")));
        }
        for i in &self.images {
            let _ = run(Command::new("docker").args(["rmi", "-f", i]));
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

async fn get_json(url: &str) -> Option<serde_json::Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    client.get(url).send().await.ok()?.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_image_and_the_compose_setup_run_and_prometheus_scrapes_the_agent() {
    if !tools_available() {
        return;
    }
    let run_id = std::process::id();
    let agent_image = format!("homeostat-test-{run_id}:local");
    let prom_image = format!("prometheus-test-{run_id}:local");
    let project = format!("hstest{run_id}");
    let mut cleanup = Cleanup {
        images: vec![agent_image.clone(), prom_image.clone()],
        project: None,
    };
    let script = root().join("scripts/build-local-image.sh");
    let built = ok(Command::new("bash")
        .arg(&script)
        .args(["homeostat", EXE, &agent_image]));
    assert!(built.contains(&format!("built {agent_image}")), "{built}");
    ok(Command::new("bash")
        .arg(&script)
        .args(["prometheus", &prom_image]));

    // The image: non-root, a HEALTHCHECK through the binary, stripped.
    let inspect = ok(Command::new("docker").args([
        "image",
        "inspect",
        &agent_image,
        "--format",
        "{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{.Size}}",
    ]));
    let parts: Vec<&str> = inspect.trim().split('|').collect();
    assert_eq!(parts[0], "65534:65534", "{inspect}");
    assert!(
        parts[1].contains("homeostat") && parts[1].contains("healthcheck"),
        "{inspect}"
    );
    let size: u64 = parts[2].parse().unwrap();
    let binary = std::fs::metadata(EXE).unwrap().len();
    assert!(
        size < binary,
        "image {size} B is not smaller than the unstripped binary {binary} B"
    );

    // Compose: agent + demo service + Prometheus, on free host ports.
    let agent_port = free_port();
    let prom_port = free_port();
    let dir = root().join("deploy/docker-compose");
    let env = [
        ("HOMEOSTAT_IMAGE", agent_image.clone()),
        ("PROMETHEUS_IMAGE", prom_image.clone()),
        ("HOMEOSTAT_PORT", agent_port.to_string()),
        ("PROMETHEUS_PORT", prom_port.to_string()),
    ];
    cleanup.project = Some(project.clone());
    ok(Command::new("docker-compose")
        .args(["-p", &project, "up", "-d"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(&dir));
    let running = ok(Command::new("docker").args([
        "ps",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Label \"com.docker.compose.service\"}}",
    ]));
    let mut running: Vec<&str> = running.lines().collect();
    running.sort();
    assert_eq!(
        running,
        ["demo", "homeostat", "prometheus"],
        "grafana is behind its profile"
    );

    let agent_container = format!("{project}_homeostat_1");
    let deadline = Deadline::after(PATIENCE * 2);
    let (mut scraped, mut healthy, mut demo_up) = (false, false, false);
    while (!scraped || !healthy || !demo_up) && !deadline.passed() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let q = format!(
            "http://127.0.0.1:{prom_port}/api/v1/query?query=up%7Bjob%3D%22homeostat%22%7D"
        );
        if let Some(v) = get_json(&q).await {
            scraped = v["data"]["result"][0]["value"][1] == "1";
        }
        healthy = ok(Command::new("docker").args([
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            &agent_container,
        ]))
        .trim()
            == "healthy";
        if let Some(v) = get_json(&format!("http://127.0.0.1:{agent_port}/api/v1/targets")).await {
            demo_up = v["data"]["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["labels"]["job"] == "demo-static" && t["health"] == "up");
        }
    }
    let logs = String::from_utf8_lossy(
        &run(Command::new("docker-compose")
            .args(["-p", &project, "logs", "--no-color"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(&dir))
        .stdout,
    )
    .into_owned();
    assert!(
        scraped,
        "Prometheus never saw up{{job=\"homeostat\"}} == 1\n{logs}"
    );
    assert!(
        healthy,
        "the agent container never reported healthy\n{logs}"
    );
    assert!(
        demo_up,
        "the agent never scraped the demo service container\n{logs}"
    );

    // Hardened as the compose file says: read-only root, non-root, no capabilities.
    let state = ok(Command::new("docker").args([
        "inspect",
        "--format",
        "{{.HostConfig.ReadonlyRootfs}}|{{.Config.User}}|{{json .HostConfig.CapDrop}}",
        &agent_container,
    ]));
    assert_eq!(state.trim(), "true|65534:65534|[\"ALL\"]", "{state}");
    drop(cleanup);
}
