#![cfg(feature = "docker")]
//! The docker provider against the real Docker engine on this machine.
//!
//! Each test builds its own image from this crate's binary (see
//! `docker_support`), names its target and containers uniquely, uses its own
//! host port range, and removes every container, network and image it made
//! when it ends, pass or fail. What exists is checked through the engine
//! itself (inspect, `docker events`), independently of the provider.
mod common;
mod docker_support;

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use docker_support::*;
use homeostat::model::{ActionKind, ActionRequest, ProviderError, ProviderOp, Reconciliation};
use homeostat::providers::docker::{DockerConfig, DockerProvider};
use homeostat::providers::{Provider, ProviderContext};

fn config(host_ports: Option<&str>) -> DockerConfig {
    DockerConfig {
        socket: None,
        port: PORT,
        host_ports: host_ports.map(str::to_string),
        health: None,
        settle_time: Some(Duration::from_millis(500)),
        startup_timeout: Some(Duration::from_secs(20)),
        stop_timeout: Some(Duration::from_secs(3)),
        poll_interval: Some(Duration::from_millis(300)),
        api_timeout: Some(Duration::from_secs(10)),
    }
}

struct Setup {
    fx: DockerFixture,
    target: String,
    data: tempfile::TempDir,
}

impl Setup {
    async fn new(name: &str) -> Option<Self> {
        let fx = DockerFixture::new().await?;
        let target = format!("{name}-{}", fx.run);
        Some(Self {
            fx,
            target,
            data: tempfile::tempdir().unwrap(),
        })
    }

    fn provider(&self, cfg: &DockerConfig) -> DockerProvider {
        let ctx = ProviderContext {
            data_dir: self.data.path().to_path_buf(),
            min: 0,
            max: 10,
        };
        DockerProvider::new(&self.target, cfg, &ctx).unwrap()
    }

    fn seed(&self, name: &str) -> Seed {
        Seed::new(&self.target, &format!("{}-{name}", self.target))
    }

    async fn containers(&self) -> Vec<ContainerInspectResponse> {
        self.fx.containers(&self.target).await
    }

    async fn names(&self) -> Vec<String> {
        self.fx.names(&self.target).await
    }
}

fn req(id: &str, kind: ActionKind, op: ProviderOp) -> ActionRequest {
    ActionRequest {
        action_id: id.into(),
        target: "t".into(),
        kind,
        op,
        rule: "test".into(),
    }
}

fn scale(id: &str, from: u32, to: u32) -> ActionRequest {
    let kind = if to > from {
        ActionKind::ScaleOut
    } else {
        ActionKind::ScaleIn
    };
    req(id, kind, ProviderOp::SetReplicas { from, to })
}

/// Wait until the provider reports `n` replicas, all healthy.
async fn wait_healthy_replicas(p: &DockerProvider, n: usize) -> homeostat::model::TargetState {
    let deadline = Deadline::after(PATIENCE);
    loop {
        let s = p.state().await;
        if let Ok(s) = &s {
            if s.instances.len() == n && s.instances.iter().all(|i| i.healthy) {
                return s.clone();
            }
        }
        assert!(!deadline.passed(), "not {n} healthy replicas: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_the_labelled_containers_and_reports_their_addresses() {
    let Some(s) = Setup::new("adopt").await else {
        return;
    };
    let a = s.seed("a");
    s.fx.seed(&Seed {
        host_port: Some(24101),
        ..a.clone()
    })
    .await;
    s.fx.seed(&s.seed("b")).await; // host port picked by the engine
                                   // A container of another target is not ours.
    s.fx.seed(&Seed::new(
        &format!("other-{}", s.fx.run),
        &format!("other-{}", s.fx.run),
    ))
    .await;

    let p = s.provider(&config(Some("24100-24119")));
    p.start().await.unwrap();
    let st = wait_healthy_replicas(&p, 2).await;
    assert_eq!(st.replicas, 2);
    let names: Vec<&str> = st.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(names, [a.name.as_str(), &format!("{}-b", s.target)]);
    assert_eq!(st.instances[0].address.as_deref(), Some("127.0.0.1:24101"));
    let b = s.fx.inspect(&format!("{}-b", s.target)).await.unwrap();
    let b_port = binding(&b).unwrap().1;
    assert_eq!(st.instances[1].address, Some(addr(b_port)));
    for i in &st.instances {
        assert_eq!(i.version.as_deref(), Some(s.fx.image("v1").as_str()));
        // The reported address really is the service.
        let (code, _) = get(i.address.as_deref().unwrap(), "/healthz")
            .await
            .unwrap();
        assert_eq!(code, 200);
    }
    assert_eq!(st.version, Some(s.fx.image("v1")));
    p.shutdown(false).await;
    // Adoption changed nothing.
    assert_eq!(s.names().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_copies_the_newest_replica() {
    let Some(s) = Setup::new("out").await else {
        return;
    };
    let net = s.fx.network("out");
    // An older replica with other settings, then the newest one whose config is copied.
    s.fx.seed(&Seed {
        env: vec!["COLOR=blue".into()],
        host_port: Some(24121),
        ..s.seed("old")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let newest = Seed {
        cmd: Some(demo_cmd(&["--workers", "7"])),
        env: vec!["COLOR=green".into(), "TEAM=sre".into()],
        host_port: Some(24122),
        network: Some(net.clone()),
        aliases: vec!["web".into()],
        labels: vec![("com.example.tier".into(), "front".into())],
        ..s.seed("new")
    };
    s.fx.seed(&newest).await;
    let p = s.provider(&config(Some("24120-24139")));
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 2).await;

    let out = p.execute(&scale("out-1", 2, 3)).await.unwrap();
    assert_eq!(out.before["replicas"], 2);
    assert_eq!(out.after["replicas"], 3);
    let all = s.containers().await;
    assert_eq!(all.len(), 3);
    let created = all
        .iter()
        .find(|c| label(c, "homeostat.action").as_deref() == Some("out-1"))
        .expect("a container labelled with the action id");
    let reference = s.fx.inspect(&newest.name).await.unwrap();
    let cfg = created.config.as_ref().unwrap();
    let ref_cfg = reference.config.as_ref().unwrap();
    assert_eq!(cfg.image, Some(s.fx.image("v1")));
    assert_eq!(cfg.cmd, ref_cfg.cmd, "command copied from the newest");
    assert_eq!(cfg.entrypoint, ref_cfg.entrypoint);
    let env = env_of(created);
    assert!(env.contains(&"COLOR=green".to_string()), "{env:?}");
    assert!(env.contains(&"TEAM=sre".to_string()), "{env:?}");
    assert!(
        env.contains(&"HOMEOSTAT_DEMO_VERSION=v1".to_string()),
        "{env:?}"
    );
    assert_eq!(label(created, "com.example.tier").as_deref(), Some("front"));
    assert_eq!(label(created, "homeostat.target"), Some(s.target.clone()));
    assert_eq!(cfg.healthcheck, ref_cfg.healthcheck, "health check copied");
    assert_eq!(cfg.user.as_deref(), Some("65534:65534"));
    // Same network, with the alias.
    let nets = created
        .network_settings
        .as_ref()
        .unwrap()
        .networks
        .as_ref()
        .unwrap();
    assert!(nets.contains_key(&net), "{:?}", nets.keys());
    assert!(nets[&net]
        .aliases
        .as_ref()
        .unwrap()
        .contains(&"web".to_string()));
    // Published on 127.0.0.1 only, on a port of the range not used before.
    let (ip, port) = binding(created).unwrap();
    assert_eq!(ip, "127.0.0.1");
    assert_eq!(port, 24120);
    // The reported address is the new container, serving.
    let st = wait_healthy_replicas(&p, 3).await;
    let inst = st.instances.iter().find(|i| i.id == name(created)).unwrap();
    assert_eq!(inst.address, Some(addr(port)));
    assert_eq!(get(&addr(port), "/healthz").await.unwrap().0, 200);
    assert_eq!(demo_version(&addr(port)).await.as_deref(), Some("v1"));
    assert_eq!(
        created
            .state
            .as_ref()
            .unwrap()
            .health
            .as_ref()
            .unwrap()
            .status
            .map(|s| s.to_string())
            .as_deref(),
        Some("healthy")
    );

    // The same action id again: the recorded outcome, nothing new.
    let again = p.execute(&scale("out-1", 2, 3)).await.unwrap();
    assert_eq!(again, out);
    assert_eq!(s.containers().await.len(), 3);
    // The same id for another op is refused.
    let err = p.execute(&scale("out-1", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    // A demo teardown removes what the adapter created, not the user's containers.
    p.shutdown(true).await;
    let mut left = s.names().await;
    left.sort();
    assert_eq!(left, [newest.name.clone(), format!("{}-old", s.target)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_in_removes_the_newest_first_with_a_graceful_stop() {
    let Some(s) = Setup::new("in").await else {
        return;
    };
    let since = s.fx.engine_time();
    for n in ["a", "b", "c"] {
        s.fx.seed(&s.seed(n)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let p = s.provider(&config(None));
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 3).await;
    let out = p.execute(&scale("in-1", 3, 1)).await.unwrap();
    assert_eq!(out.after["replicas"], 1);
    assert_eq!(s.names().await, [format!("{}-a", s.target)]);
    // Stopped gracefully: SIGTERM (kill signal 15) and a clean exit, not a kill.
    let events = s.fx.events(&since);
    for victim in ["b", "c"] {
        let name = format!("{}-{victim}", s.target);
        let of = |action: &str| {
            events
                .iter()
                .filter(|e| {
                    e["Action"] == action && e["Actor"]["Attributes"]["name"] == name.as_str()
                })
                .collect::<Vec<_>>()
        };
        let kills = of("kill");
        assert!(!kills.is_empty(), "{name}: no kill event: {events:#?}");
        assert_eq!(kills[0]["Actor"]["Attributes"]["signal"], "15", "{kills:?}");
        let dies = of("die");
        assert_eq!(dies.len(), 1, "{name}: {dies:?}");
        assert_eq!(dies[0]["Actor"]["Attributes"]["exitCode"], "0", "{dies:?}");
        assert_eq!(of("destroy").len(), 1, "{name} removed");
    }
    wait_healthy_replicas(&p, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_in_kills_a_container_that_ignores_sigterm_after_the_stop_timeout() {
    let Some(s) = Setup::new("stubborn").await else {
        return;
    };
    let since = s.fx.engine_time();
    s.fx.seed(&s.seed("a")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.fx.seed(&Seed {
        cmd: Some(demo_cmd(&["--ignore-sigterm"])),
        ..s.seed("b")
    })
    .await;
    let cfg = DockerConfig {
        stop_timeout: Some(Duration::from_secs(1)),
        ..config(None)
    };
    let p = s.provider(&cfg);
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 2).await;
    p.execute(&scale("in-2", 2, 1)).await.unwrap();
    assert_eq!(s.names().await, [format!("{}-a", s.target)]);
    let name = format!("{}-b", s.target);
    let events = s.fx.events(&since);
    let signals: Vec<String> = events
        .iter()
        .filter(|e| e["Action"] == "kill" && e["Actor"]["Attributes"]["name"] == name.as_str())
        .map(|e| {
            e["Actor"]["Attributes"]["signal"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(signals, ["15", "9"], "SIGTERM, then SIGKILL: {events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_replaces_an_exited_container_on_the_same_address() {
    let Some(s) = Setup::new("exit").await else {
        return;
    };
    let a = s.seed("a");
    s.fx.seed(&Seed {
        host_port: Some(24141),
        ..a.clone()
    })
    .await;
    let b = s.seed("b");
    let b_id =
        s.fx.seed(&Seed {
            host_port: Some(24142),
            ..b.clone()
        })
        .await;
    let p = s.provider(&config(Some("24140-24159")));
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 2).await;
    docker(&["kill", &b.name]);
    // The provider sees it: exited, unhealthy, address kept.
    let deadline = Deadline::after(PATIENCE);
    loop {
        let st = p.state().await.unwrap();
        let i = st.instances.iter().find(|i| i.id == b.name).unwrap();
        if !i.healthy {
            assert_eq!(i.address.as_deref(), Some("127.0.0.1:24142"));
            break;
        }
        assert!(!deadline.passed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The rule templates the scraper's instance label: the address.
    let r = req(
        "fo-1",
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: "127.0.0.1:24142".into(),
        },
    );
    let out = p.execute(&r).await.unwrap();
    assert!(
        s.fx.inspect(&b_id).await.is_none(),
        "the exited container is removed"
    );
    let all = s.containers().await;
    assert_eq!(all.len(), 2);
    let new = all
        .iter()
        .find(|c| label(c, "homeostat.action").as_deref() == Some("fo-1"))
        .unwrap();
    assert_eq!(label(new, "homeostat.replaces"), Some(b.name.clone()));
    assert_eq!(
        binding(new),
        Some(("127.0.0.1".into(), 24142)),
        "same host port"
    );
    assert_eq!(get("127.0.0.1:24142", "/healthz").await.unwrap().0, 200);
    // The healthy one was not touched.
    assert!(s.fx.inspect(&a.name).await.is_some());
    // Idempotent.
    assert_eq!(p.execute(&r).await.unwrap(), out);
    assert_eq!(s.containers().await.len(), 2);
    // An unknown instance is not found.
    let err = p
        .execute(&req(
            "fo-2",
            ActionKind::Failover,
            ProviderOp::Replace {
                instance: "nope".into(),
            },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_replaces_a_container_docker_reports_unhealthy() {
    let Some(s) = Setup::new("sick").await else {
        return;
    };
    s.fx.seed(&s.seed("a")).await;
    let b = s.seed("b");
    let b_id = s.fx.seed(&b).await;
    let p = s.provider(&config(Some("24160-24179")));
    p.start().await.unwrap();
    let st = wait_healthy_replicas(&p, 2).await;
    let b_addr = st
        .instances
        .iter()
        .find(|i| i.id == b.name)
        .unwrap()
        .address
        .clone()
        .unwrap();
    // Make its health endpoint fail: Docker's health check turns it unhealthy
    // (and Docker's restart policy would never act on that).
    assert_eq!(
        post(&b_addr, "/admin/health?healthy=false").await,
        Some(200)
    );
    s.fx.wait_health(&b.name, "unhealthy").await;
    let r = req(
        "fo-3",
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: b.name.clone(),
        },
    );
    p.execute(&r).await.unwrap();
    assert!(s.fx.inspect(&b_id).await.is_none());
    let st = wait_healthy_replicas(&p, 2).await;
    let new = st
        .instances
        .iter()
        .find(|i| i.id != format!("{}-a", s.target))
        .unwrap();
    assert_ne!(new.id, b.name);
    let (code, _) = get(new.address.as_deref().unwrap(), "/healthz")
        .await
        .unwrap();
    assert_eq!(code, 200);
}

async fn two_v1(s: &Setup) -> DockerProvider {
    s.fx.seed(&Seed {
        env: vec!["COLOR=blue".into()],
        ..s.seed("a")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.fx.seed(&Seed {
        env: vec!["COLOR=blue".into()],
        ..s.seed("b")
    })
    .await;
    let p = s.provider(&config(None));
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 2).await;
    p
}

fn redeploy(id: &str, version: Option<&str>, env: &[(&str, &str)]) -> ActionRequest {
    req(
        id,
        ActionKind::Redeploy,
        ProviderOp::Redeploy {
            version: version.map(str::to_string),
            command: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        },
    )
}

/// create/destroy events of the test's containers, in order: ("create"|"destroy", name).
fn lifecycle(events: &[serde_json::Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["Action"] == "create" || e["Action"] == "destroy")
        .map(|e| {
            (
                e["Action"].as_str().unwrap().to_string(),
                e["Actor"]["Attributes"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploy_replaces_one_container_at_a_time() {
    let Some(s) = Setup::new("roll").await else {
        return;
    };
    let p = two_v1(&s).await;
    let since = s.fx.engine_time();
    let out = p
        .execute(&redeploy("rd-1", Some("v2"), &[("COLOR", "red")]))
        .await
        .unwrap();
    assert_eq!(out.rolled_back, None);
    assert_eq!(out.before["version"], s.fx.image("v1"));
    assert_eq!(out.after["version"], s.fx.image("v2"));
    let all = s.containers().await;
    assert_eq!(all.len(), 2);
    for c in &all {
        assert_eq!(image_of(c), s.fx.image("v2"));
        let env = env_of(c);
        assert!(env.contains(&"COLOR=red".to_string()), "{env:?}");
        // The image's own default came from the new image, not copied from the old.
        assert!(
            env.contains(&"HOMEOSTAT_DEMO_VERSION=v2".to_string()),
            "{env:?}"
        );
        assert_eq!(label(c, "homeostat.action").as_deref(), Some("rd-1"));
        assert_eq!(label(c, "homeostat.previous-image"), Some(s.fx.image("v1")));
        let port = binding(c).unwrap().1;
        assert_eq!(demo_version(&addr(port)).await.as_deref(), Some("v2"));
    }
    // One at a time: each new container is created before an old one goes,
    // and the second is created only after the first old one is gone.
    let steps = lifecycle(&s.fx.events(&since));
    let kinds: Vec<&str> = steps.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["create", "destroy", "create", "destroy"],
        "{steps:?}"
    );
    assert_eq!(steps[1].1, format!("{}-a", s.target), "oldest first");
    assert_eq!(steps[3].1, format!("{}-b", s.target));
    let st = wait_healthy_replicas(&p, 2).await;
    assert_eq!(st.version, Some(s.fx.image("v2")));

    // Rollback returns to v1 (and the env before the redeploy).
    let back = p
        .execute(&req("rb-1", ActionKind::Redeploy, ProviderOp::Rollback))
        .await
        .unwrap();
    assert_eq!(back.rolled_back, None);
    for c in s.containers().await {
        assert_eq!(image_of(&c), s.fx.image("v1"));
        assert!(env_of(&c).contains(&"COLOR=blue".to_string()));
        assert!(env_of(&c).contains(&"HOMEOSTAT_DEMO_VERSION=v1".to_string()));
    }
    // A new provider (agent restart) still knows where to roll back to: v2.
    p.shutdown(false).await;
    let p2 = s.provider(&config(None));
    p2.start().await.unwrap();
    p2.execute(&req("rb-2", ActionKind::Redeploy, ProviderOp::Rollback))
        .await
        .unwrap();
    for c in s.containers().await {
        assert_eq!(image_of(&c), s.fx.image("v2"));
    }
    wait_healthy_replicas(&p2, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_without_the_state_file_uses_the_previous_image_label() {
    let Some(s) = Setup::new("lbl").await else {
        return;
    };
    let p = two_v1(&s).await;
    p.execute(&redeploy("rd-2", Some("v2"), &[])).await.unwrap();
    p.shutdown(false).await;
    std::fs::remove_file(p.state_file()).unwrap();
    let p2 = s.provider(&config(None));
    p2.start().await.unwrap();
    p2.execute(&req("rb-3", ActionKind::Redeploy, ProviderOp::Rollback))
        .await
        .unwrap();
    for c in s.containers().await {
        assert_eq!(image_of(&c), s.fx.image("v1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_whose_new_container_stays_unhealthy_is_rolled_back() {
    let Some(s) = Setup::new("bad").await else {
        return;
    };
    let p = two_v1(&s).await;
    let before: Vec<String> = s.names().await;
    let out = p
        .execute(&redeploy("rd-3", Some("v2-bad"), &[]))
        .await
        .unwrap();
    let why = out.rolled_back.clone().expect("rolled back");
    assert!(why.contains("v2-bad"), "{why}");
    assert!(why.contains("unhealthy"), "{why}");
    let all = s.containers().await;
    assert_eq!(
        all.len(),
        2,
        "{:?}",
        all.iter().map(name).collect::<Vec<_>>()
    );
    for c in &all {
        assert_eq!(image_of(c), s.fx.image("v1"));
    }
    // The first one failed: nothing was replaced, the old containers are untouched.
    assert_eq!(s.names().await, before);
    wait_healthy_replicas(&p, 2).await;
    // Idempotent: the same id returns the same (rolled back) outcome.
    assert_eq!(
        p.execute(&redeploy("rd-3", Some("v2-bad"), &[]))
            .await
            .unwrap(),
        out
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_fails_midway_restores_the_replaced_containers() {
    let Some(s) = Setup::new("mid").await else {
        return;
    };
    // b starts slowly: its health check fails for the first seconds (no
    // start period), so Docker calls its copy unhealthy while a's copy is
    // fine. The first replacement (of a, the oldest) succeeds, b's fails.
    let a = s.seed("a");
    s.fx.seed(&a).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = Seed {
        cmd: Some(demo_cmd(&["--startup-delay", "4s"])),
        ..s.seed("b")
    };
    s.fx.seed(&b).await;
    let p = s.provider(&config(None));
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 2).await;
    let since = s.fx.engine_time();
    let out = p.execute(&redeploy("rd-4", Some("v2"), &[])).await.unwrap();
    let why = out.rolled_back.expect("rolled back");
    assert!(why.contains("unhealthy"), "{why}");
    // a was recreated under its name on v1; b was never touched.
    assert_eq!(s.names().await, [b.name.clone(), a.name.clone()]);
    for c in s.containers().await {
        assert_eq!(image_of(&c), s.fx.image("v1"));
        assert!(env_of(&c).contains(&"HOMEOSTAT_DEMO_VERSION=v1".to_string()));
    }
    let steps = lifecycle(&s.fx.events(&since));
    let kinds: Vec<&str> = steps.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["create", "destroy", "create", "destroy", "create", "destroy"],
        "{steps:?}"
    );
    assert_eq!(steps[1].1, a.name, "a replaced first");
    assert_eq!(steps[4].1, a.name, "a restored");
    assert_eq!(steps[5].1, steps[0].1, "then its replacement removed");
    wait_healthy_replicas(&p, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploy_to_an_image_the_engine_does_not_have_is_not_found() {
    let Some(s) = Setup::new("noimg").await else {
        return;
    };
    let p = two_v1(&s).await;
    let err = p
        .execute(&redeploy("rd-5", Some("v9"), &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("does not pull"), "{err}");
    assert_eq!(s.containers().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_to_zero_and_back_uses_the_remembered_template() {
    let Some(s) = Setup::new("zero").await else {
        return;
    };
    s.fx.seed(&Seed {
        env: vec!["COLOR=teal".into()],
        ..s.seed("a")
    })
    .await;
    let p = s.provider(&config(Some("24180-24189")));
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 1).await;
    p.execute(&scale("z-1", 1, 0)).await.unwrap();
    assert!(s.containers().await.is_empty());
    // A restart in between: the template is in the state file.
    p.shutdown(false).await;
    let p2 = s.provider(&config(Some("24180-24189")));
    p2.start().await.unwrap();
    p2.execute(&scale("z-2", 0, 2)).await.unwrap();
    let all = s.containers().await;
    assert_eq!(all.len(), 2);
    for c in &all {
        assert!(env_of(c).contains(&"COLOR=teal".to_string()));
        assert_eq!(binding(c).unwrap().0, "127.0.0.1");
    }
    let ports: Vec<u16> = all.iter().map(|c| binding(c).unwrap().1).collect();
    assert_eq!(ports, [24180, 24181]);
    wait_healthy_replicas(&p2, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_finishes_a_removal_a_crash_interrupted_and_reconciles() {
    let Some(s) = Setup::new("crash").await else {
        return;
    };
    s.fx.seed(&s.seed("a")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // b ignores SIGTERM: its graceful stop takes the whole stop timeout.
    let b = s.seed("b");
    let b_id =
        s.fx.seed(&Seed {
            cmd: Some(demo_cmd(&["--ignore-sigterm"])),
            ..b.clone()
        })
        .await;
    let cfg = DockerConfig {
        stop_timeout: Some(Duration::from_secs(30)),
        ..config(None)
    };
    let p = s.provider(&cfg);
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 2).await;
    let r = scale("crash-1", 2, 1);
    let task = {
        let p = p.clone();
        let r = r.clone();
        tokio::spawn(async move { p.execute(&r).await })
    };
    // The agent "crashes" while b is being stopped.
    let deadline = Deadline::after(PATIENCE);
    loop {
        let state = std::fs::read_to_string(p.state_file()).unwrap_or_default();
        if state.contains(&b_id) {
            break;
        }
        assert!(!deadline.passed(), "b never marked retiring");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    let _ = task.await;
    p.shutdown(false).await;
    drop(p);
    // b still exists (its stop was cut short by the crash, or is still running).
    assert!(s.fx.inspect(&b_id).await.is_some());

    let p2 = s.provider(&DockerConfig {
        stop_timeout: Some(Duration::from_secs(1)),
        ..config(None)
    });
    p2.start().await.unwrap();
    assert!(
        s.fx.inspect(&b_id).await.is_none(),
        "start finished the removal"
    );
    assert_eq!(p2.reconcile(&r).await.unwrap(), Reconciliation::Applied);
    // A scale that never ran is not applied.
    assert_eq!(
        p2.reconcile(&scale("crash-2", 1, 3)).await.unwrap(),
        Reconciliation::NotApplied
    );
    // Retrying the interrupted action id converges without removing more.
    p2.execute(&r).await.unwrap();
    assert_eq!(s.names().await, [format!("{}-a", s.target)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_scale_out_after_a_crash_does_not_create_twice() {
    let Some(s) = Setup::new("retry").await else {
        return;
    };
    s.fx.seed(&s.seed("a")).await;
    let p = s.provider(&config(None));
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 1).await;
    let r = scale("retry-1", 1, 2);
    let task = {
        let p = p.clone();
        let r = r.clone();
        tokio::spawn(async move { p.execute(&r).await })
    };
    // Crash right after the engine created the new container.
    let deadline = Deadline::after(PATIENCE);
    loop {
        if s.containers().await.len() == 2 {
            break;
        }
        assert!(!deadline.passed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    p.shutdown(false).await;
    drop(p);
    let p2 = s.provider(&config(None));
    p2.start().await.unwrap();
    // The crash hit after the engine started the new container (the usual
    // case): it is a replica, the scale is applied. Or between create and
    // start: start() removed the never-started container, not applied.
    let rec = p2.reconcile(&r).await.unwrap();
    let after_restart = s.containers().await.len();
    match rec {
        Reconciliation::Applied => assert_eq!(after_restart, 2),
        Reconciliation::NotApplied => assert_eq!(after_restart, 1),
        Reconciliation::Unknown => panic!("the engine's state is clear: {rec:?}"),
    }
    // Either way the executor's retry with the same id ends with exactly two.
    p2.execute(&r).await.unwrap();
    assert_eq!(s.containers().await.len(), 2);
    wait_healthy_replicas(&p2, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_docker_health_check_the_http_probe_decides() {
    let Some(s) = Setup::new("probe").await else {
        return;
    };
    let a = Seed {
        health_check: false,
        ..s.seed("a")
    };
    s.fx.seed(&a).await;
    let cfg = DockerConfig {
        health: Some("/healthz".into()),
        startup_timeout: Some(Duration::from_secs(6)),
        ..config(Some("24190-24199"))
    };
    let p = s.provider(&cfg);
    p.start().await.unwrap();
    wait_healthy_replicas(&p, 1).await;
    // A new replica counts as started once it kept running and answers the probe.
    p.execute(&scale("pr-1", 1, 2)).await.unwrap();
    let st = wait_healthy_replicas(&p, 2).await;
    let new = st.instances.iter().find(|i| i.id != a.name).unwrap();
    let new_addr = new.address.clone().unwrap();
    assert_eq!(new_addr, "127.0.0.1:24190");
    let c = s.fx.inspect(&new.id).await.unwrap();
    assert_eq!(
        health_status(&c),
        None,
        "no Docker health check was invented"
    );
    // Its health endpoint fails: the provider sees it through the probe.
    assert_eq!(
        post(&new_addr, "/admin/health?healthy=false").await,
        Some(200)
    );
    let deadline = Deadline::after(PATIENCE);
    loop {
        let st = p.state().await.unwrap();
        if st.instances.iter().any(|i| i.id == new.id && !i.healthy) {
            break;
        }
        assert!(!deadline.passed(), "probe failure not seen: {st:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A replacement that fails the probe is not accepted: redeploy to a bad version rolls back.
    let out = p
        .execute(&redeploy("pr-2", Some("v2-bad"), &[]))
        .await
        .unwrap();
    let why = out.rolled_back.expect("rolled back");
    assert!(why.contains("not healthy within"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_interrupted_by_a_crash_is_finished_by_its_retry() {
    let Some(s) = Setup::new("rdcrash").await else {
        return;
    };
    let p = two_v1(&s).await;
    let a = format!("{}-a", s.target);
    let r = redeploy("rd-c", Some("v2"), &[]);
    let task = {
        let p = p.clone();
        let r = r.clone();
        tokio::spawn(async move { p.execute(&r).await })
    };
    // Crash once the first old container is replaced (the rollout is half done).
    let deadline = Deadline::after(PATIENCE);
    loop {
        if !s.names().await.contains(&a) {
            break;
        }
        assert!(!deadline.passed(), "the first step never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    p.shutdown(false).await;
    drop(p);
    let images: Vec<String> = s.containers().await.iter().map(image_of).collect();
    assert!(
        images.contains(&s.fx.image("v1")) && images.contains(&s.fx.image("v2")),
        "{images:?}"
    );

    let p2 = s.provider(&config(None));
    p2.start().await.unwrap();
    // Half v1, half v2: neither applied nor not applied.
    assert_eq!(p2.reconcile(&r).await.unwrap(), Reconciliation::Unknown);
    // The executor's retry with the same id finishes the rollout, creating no extra container.
    let out = p2.execute(&r).await.unwrap();
    assert_eq!(out.rolled_back, None);
    let all = s.containers().await;
    assert_eq!(
        all.len(),
        2,
        "{:?}",
        all.iter().map(name).collect::<Vec<_>>()
    );
    for c in &all {
        assert_eq!(image_of(c), s.fx.image("v2"));
    }
    assert_eq!(p2.reconcile(&r).await.unwrap(), Reconciliation::Applied);
    // The rollout's origin survived the crash: rollback returns to v1.
    p2.execute(&req("rb-c", ActionKind::Redeploy, ProviderOp::Rollback))
        .await
        .unwrap();
    for c in s.containers().await {
        assert_eq!(image_of(&c), s.fx.image("v1"));
    }
}

// ---------------------------------------------------------------------------
// The engine is not there / does not answer / refuses.
// ---------------------------------------------------------------------------

fn bare_setup() -> (tempfile::TempDir, ProviderContext) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = tempfile::tempdir().unwrap();
    let ctx = ProviderContext {
        data_dir: data.path().to_path_buf(),
        min: 0,
        max: 3,
    };
    (data, ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_is_not_there_is_unavailable_and_the_agent_still_starts() {
    let (data, ctx) = bare_setup();
    let cfg = DockerConfig {
        socket: Some(data.path().join("no-such.sock")),
        ..config(None)
    };
    let p = DockerProvider::new("gone", &cfg, &ctx).unwrap();
    // start() does not fail: the target is adopted when the engine shows up.
    p.start().await.unwrap();
    let err = p.state().await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("no-such.sock"), "{err}");
    let err = p.execute(&scale("x-1", 1, 2)).await.unwrap_err();
    assert_eq!(err.cause(), "unavailable");
    assert!(err.is_retryable());
    let err = p.reconcile(&scale("x-1", 1, 2)).await.unwrap_err();
    assert_eq!(err.cause(), "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_nobody_listens_on_is_unavailable() {
    let (data, ctx) = bare_setup();
    let path = data.path().join("dead.sock");
    // A real Unix socket whose listener is gone: connect() is refused.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let cfg = DockerConfig {
        socket: Some(path),
        ..config(None)
    };
    let p = DockerProvider::new("refused", &cfg, &ctx).unwrap();
    p.start().await.unwrap();
    let err = p.execute(&scale("x-2", 1, 2)).await.unwrap_err();
    assert_eq!(err.cause(), "unavailable", "{err}");
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_does_not_answer_times_out() {
    let (data, ctx) = bare_setup();
    let path = data.path().join("hung.sock");
    // Accepts connections and never answers (a hung engine).
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let h2 = held.clone();
    let server = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            h2.lock().await.push(conn);
        }
    });
    let cfg = DockerConfig {
        socket: Some(path),
        api_timeout: Some(Duration::from_millis(500)),
        ..config(None)
    };
    let p = DockerProvider::new("hung", &cfg, &ctx).unwrap();
    p.start().await.unwrap();
    let err = p.execute(&scale("x-3", 1, 2)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Timeout { after_ms: 500, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    server.abort();
}

// ---------------------------------------------------------------------------
// The agent binary end to end: rules → decision → action → the engine.
// ---------------------------------------------------------------------------

use homeostat::audit::{AuditEvent, EventKind};

/// A `targets:` entry for a docker target.
fn docker_target(target: &str, host_ports: &str, socket: Option<&str>) -> String {
    let socket = socket
        .map(|s| format!("      socket: \"{s}\"\n"))
        .unwrap_or_default();
    format!(
        r#"  {target}:
    provider: docker
    min: 1
    max: 3
    cooldown_up: 1s
    cooldown_down: 1s
    docker:
{socket}      port: 8080
      host_ports: "{host_ports}"
      startup_timeout: 30s
      stop_timeout: 3s
      poll_interval: 300ms
      settle_time: 500ms
      api_timeout: 5s
"#
    )
}

fn scale_out_rule(target: &str) -> String {
    format!(
        r#"
      - name: scale-out
        queries: {{ load: control_load }}
        when: load > 10
        for: 1s
        cooldown: 1h
        action: {{ kind: scale_out, target: {target}, step: 1 }}
"#
    )
}

fn of(events: &[AuditEvent], kind: EventKind, rule: &str) -> Vec<AuditEvent> {
    events
        .iter()
        .filter(|e| e.event == Some(kind) && e.rule.as_deref() == Some(rule))
        .cloned()
        .collect()
}

/// Wait until the agent's store has `demo_build_info` from `127.0.0.1:<port>`.
async fn wait_scraped(h: &common::Harness, port: u16) {
    let q = format!("/api/v1/query?query=demo_build_info%7Binstance=%22127.0.0.1:{port}%22%7D");
    let deadline = Deadline::after(PATIENCE);
    loop {
        let v = h.get_json(&q).await;
        if v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            return;
        }
        assert!(
            !deadline.passed(),
            "127.0.0.1:{port} never scraped: {v}\n{}",
            h.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_scales_out_and_fails_over_an_unhealthy_container() {
    let Some(fx) = DockerFixture::new().await else {
        return;
    };
    let target = format!("web-{}", fx.run);
    let seed = Seed {
        host_port: Some(24200),
        ..Seed::new(&target, &format!("{target}-seed"))
    };
    fx.seed(&seed).await;
    fx.wait_health(&seed.name, "healthy").await;

    let control = common::ControlExporter::start(&[("control_load", 0.0)]).await;
    let rules = format!(
        r#"
groups:
  - name: docker
    interval: 1s
    rules:{scale}
      - name: sick-replica
        queries: {{ fail: 'demo_fail_rate{{job="web"}}' }}
        when: fail > 0.5
        for: 1s
        cooldown: 1h
        action:
          kind: failover
          target: {target}
          instance: "{{{{ labels.instance }}}}"
"#,
        scale = scale_out_rule(&target)
    );
    let mut h = common::Harness::new(&common::Setup {
        control: control.addr,
        targets_yaml: docker_target(&target, "24200-24219", None),
        extra_jobs_yaml: format!("    - name: web\n      target: {target}\n"),
        rules_yaml: rules,
    });
    h.start().await;
    // The scraper discovers the seed from the engine.
    wait_scraped(&h, 24200).await;

    // 1. Load → scale out from 1 to 2.
    control.set("control_load", 20.0);
    let ok = h
        .wait_event("scale-out succeeded", |e| {
            e.event == Some(EventKind::ActionSucceeded) && e.rule.as_deref() == Some("scale-out")
        })
        .await;
    control.set("control_load", 0.0);
    let id = ok.action_id.clone().unwrap();
    common::assert_decided_started_succeeded(&h.events(), &id);
    assert_eq!(ok.before.as_ref().unwrap()["replicas"], 1, "{}", h.logs());
    assert_eq!(ok.after.as_ref().unwrap()["replicas"], 2, "{}", h.logs());
    let all = fx.containers(&target).await;
    assert_eq!(all.len(), 2);
    let new = all
        .iter()
        .find(|c| label(c, "homeostat.action").as_deref() == Some(id.as_str()))
        .expect("the new container carries the action id");
    let (ip, new_port) = binding(new).unwrap();
    assert_eq!(ip, "127.0.0.1");
    assert_eq!(new_port, 24201);
    fx.wait_health(&name(new), "healthy").await;
    // The agent scrapes the new container (discovered from the engine).
    wait_scraped(&h, new_port).await;

    // 2. The seed goes bad: failing requests and a failing health check.
    let seed_addr = "127.0.0.1:24200";
    assert_eq!(post(seed_addr, "/admin/fail?rate=1").await, Some(200));
    assert_eq!(
        post(seed_addr, "/admin/health?healthy=false").await,
        Some(200)
    );
    fx.wait_health(&seed.name, "unhealthy").await;
    let fo = h
        .wait_event("failover succeeded", |e| {
            e.event == Some(EventKind::ActionSucceeded) && e.rule.as_deref() == Some("sick-replica")
        })
        .await;
    assert_eq!(fo.instance.as_deref(), Some(seed_addr), "{}", h.logs());
    common::assert_decided_started_succeeded(&h.events(), fo.action_id.as_deref().unwrap());
    assert!(
        fx.inspect(&seed.name).await.is_none(),
        "the unhealthy container is gone"
    );
    let all = fx.containers(&target).await;
    assert_eq!(all.len(), 2, "{}", h.logs());
    let replacement = all
        .iter()
        .find(|c| label(c, "homeostat.replaces").as_deref() == Some(seed.name.as_str()))
        .expect("a replacement of the seed");
    fx.wait_health(&name(replacement), "healthy").await;
    let events = h.settled_events().await;
    assert_eq!(
        of(&events, EventKind::ActionStarted, "sick-replica").len(),
        1,
        "{}",
        h.logs()
    );
    assert!(of(&events, EventKind::ActionFailed, "sick-replica").is_empty());
    h.stop().await;
    let (code, out) = common::audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_engine_down_actions_fail_as_unavailable_and_the_breaker_opens() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let control = common::ControlExporter::start(&[("control_load", 20.0)]).await;
    let target = "web-down";
    let rules = format!(
        r#"
groups:
  - name: docker
    interval: 1s
    rules:{}
"#,
        scale_out_rule(target)
    );
    let mut h = common::Harness::new(&common::Setup {
        control: control.addr,
        targets_yaml: docker_target(target, "24220-24229", Some("{ROOT}/no-engine.sock")),
        extra_jobs_yaml: format!("    - name: web\n      target: {target}\n"),
        rules_yaml: rules,
    });
    // The agent starts although the engine is not there.
    h.start().await;
    let failed = h
        .wait_event("action_failed", |e| {
            e.event == Some(EventKind::ActionFailed) && e.rule.as_deref() == Some("scale-out")
        })
        .await;
    assert_eq!(failed.cause.as_deref(), Some("unavailable"), "{}", h.logs());
    let err = failed.error.clone().unwrap_or_default();
    assert!(err.contains("no-engine.sock"), "{err}");
    assert_eq!(
        failed.detail.as_ref().and_then(|d| d["attempts"].as_u64()),
        Some(3),
        "retried: {:?}",
        failed.detail
    );
    // Repeated failures open the breaker: then the agent fails fast.
    let sup = h
        .wait_event("suppressed by the breaker", |e| {
            e.event == Some(EventKind::Suppressed)
                && e.cause.as_deref() == Some("provider_unavailable")
        })
        .await;
    assert_eq!(sup.target.as_deref(), Some(target));
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|e| e.event == Some(EventKind::ActionFailed)
                && e.cause.as_deref() == Some("provider_unavailable")),
        "the failure that opened the breaker says so:\n{}",
        h.logs()
    );
    // The agent stays responsive.
    let (code, _) = h.post("/api/v1/pause").await;
    assert_eq!(code, 200);
    assert!(h.get_json("/api/v1/targets").await.is_object());
    h.stop().await;
}

/// The agent process started by a test itself (as another user); killed on drop.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chown_tree(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap().flatten() {
            chown_tree(&e.path(), uid);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_may_not_open_the_socket_records_permission_denied() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    if !docker_available() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sock = std::fs::metadata("/var/run/docker.sock").unwrap();
    // Only honest where the real socket really refuses an unprivileged user.
    // The child keeps this process's supplementary groups (setting them is unstable in std).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let groups: Vec<u32> = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse::<u32>().ok());
    if euid != Some(0) {
        eprintln!("\n*** SKIPPED: running an agent as uid {NOBODY} needs root ***\n");
        return;
    }
    if sock.mode() & 0o006 != 0
        || sock.uid() == NOBODY
        || sock.gid() == NOBODY
        || groups.contains(&sock.gid())
    {
        eprintln!("\n*** SKIPPED: /var/run/docker.sock is open to uid {NOBODY} here ***\n");
        return;
    }
    let control = common::ControlExporter::start(&[("control_load", 20.0)]).await;
    let target = "web-denied";
    let h = common::Harness::new(&common::Setup {
        control: control.addr,
        targets_yaml: docker_target(target, "24230-24239", Some("/var/run/docker.sock")),
        extra_jobs_yaml: String::new(),
        rules_yaml: format!(
            "groups:\n  - name: docker\n    interval: 1s\n    rules:{}",
            scale_out_rule(target)
        ),
    });
    chown_tree(&h.root, NOBODY);
    let log = std::fs::File::create(h.root.join("agent-nobody.log")).unwrap();
    chown_tree(&h.root.join("agent-nobody.log"), NOBODY);
    let _agent = Agent(
        std::process::Command::new(common::EXE)
            .arg("run")
            .arg("-c")
            .arg(&h.config)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let agent_log = || std::fs::read_to_string(h.root.join("agent-nobody.log")).unwrap_or_default();
    let failed = h
        .wait_for("action_failed", PATIENCE, |h| {
            h.events_of(EventKind::ActionFailed, Some("scale-out"))
                .into_iter()
                .next()
        })
        .await;
    assert_eq!(
        failed.cause.as_deref(),
        Some("permission_denied"),
        "{}",
        agent_log()
    );
    let err = failed.error.clone().unwrap_or_default();
    assert!(err.contains("/var/run/docker.sock"), "{err}");
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
    // Not retried: asking again does not grant access.
    assert_eq!(
        failed.detail.as_ref().and_then(|d| d["attempts"].as_u64()),
        Some(1)
    );
    // And it did not open the breaker: the engine is there, it refuses us.
    assert!(h
        .events()
        .iter()
        .all(|e| e.cause.as_deref() != Some("provider_unavailable")));
}
