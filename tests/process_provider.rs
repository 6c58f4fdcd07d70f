//! The process provider against real demo-service replicas (this crate's binary).
//!
//! Each test uses its own port range and data directory so tests run in
//! parallel; a guard SIGKILLs every replica of the test's target when the test
//! ends, even on failure. Which processes exist is checked independently of the
//! provider, by scanning `/proc` for the replica marker in the environment.
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use homeostat::model::{ActionKind, ActionRequest, ProviderOp, Reconciliation};
use homeostat::providers::process::{ProcessConfig, ProcessProvider};
use homeostat::providers::Provider;

const TARGET: &str = "web";

fn config(ports: &str) -> ProcessConfig {
    ProcessConfig {
        command: vec![
            env!("CARGO_BIN_EXE_homeostat").into(),
            "demo-service".into(),
            "--port".into(),
            "{{port}}".into(),
            "--version".into(),
            "{{version}}".into(),
        ],
        ports: ports.into(),
        health: "/healthz".into(),
        initial_replicas: None,
        version: Some("v1".into()),
        env: BTreeMap::new(),
        workdir: None,
        startup_timeout: Some(Duration::from_secs(20)),
        stop_timeout: Some(Duration::from_secs(5)),
        health_interval: Some(Duration::from_millis(200)),
        health_timeout: Some(Duration::from_millis(500)),
        discovery_file: None,
    }
}

/// Kills every replica of the target on drop, whatever the test did.
struct Cleanup {
    target_dir: PathBuf,
    _data: tempfile::TempDir,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in replica_pids(&self.target_dir) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A fresh data dir, a provider over it and the cleanup guard.
fn setup(ports: &str, initial: u32) -> (ProcessProvider, Cleanup, PathBuf) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_path_buf();
    let p = ProcessProvider::new(TARGET, config(ports), &data_dir, initial).unwrap();
    let guard = Cleanup {
        target_dir: data_dir.join("targets").join(TARGET),
        _data: data,
    };
    (p, guard, data_dir)
}

/// Live (non-zombie) processes whose environment marks them as replicas in `dir`.
fn replica_pids(target_dir: &Path) -> BTreeSet<u32> {
    let want = format!("HOMEOSTAT_REPLICA={}#", target_dir.display());
    let mut pids = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let marked = env
            .split(|&b| b == 0)
            .any(|kv| kv.starts_with(want.as_bytes()));
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if marked && !zombie {
            pids.insert(pid);
        }
    }
    pids
}

fn discovery(p: &ProcessProvider) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.discovery_file()).unwrap()).unwrap();
    assert_eq!(v[0]["labels"]["homeostat_target"], TARGET);
    v[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn req(id: &str, kind: ActionKind, op: ProviderOp) -> ActionRequest {
    ActionRequest {
        action_id: id.into(),
        target: TARGET.into(),
        kind,
        op,
        rule: "test".into(),
    }
}

fn pids(p: &ProcessProvider) -> BTreeSet<u32> {
    p.replica_pids().into_iter().map(|(_, pid)| pid).collect()
}

async fn http_status(addr: &str, path: &str) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn build_info(addr: &str) -> String {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("demo_build_info{version=\""))
        .and_then(|l| l.split('"').next())
        .unwrap()
        .to_string()
}

/// Wait (bounded) until the provider's view satisfies `cond`.
async fn eventually<F: Fn(&homeostat::model::TargetState) -> bool>(p: &ProcessProvider, cond: F) {
    for _ in 0..100 {
        if cond(&p.state().await.unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("state never matched: {:?}", p.state().await.unwrap());
}

#[tokio::test]
async fn scales_out_and_in_with_real_processes() {
    let (p, guard, _) = setup("28200-28209", 1);
    let st = p.start().await.unwrap();
    assert_eq!(st.replicas, 1);
    assert_eq!(discovery(&p), ["127.0.0.1:28200"]);
    let first = pids(&p);
    assert_eq!(replica_pids(&guard.target_dir), first);

    let out = p
        .execute(&req(
            "out",
            ActionKind::ScaleOut,
            ProviderOp::SetReplicas { from: 1, to: 3 },
        ))
        .await
        .unwrap();
    assert_eq!(out.before["replicas"], 1);
    assert_eq!(out.after["replicas"], 3);
    assert_eq!(out.rolled_back, None);
    let three = pids(&p);
    assert_eq!(three.len(), 3);
    assert!(three.is_superset(&first));
    assert_eq!(replica_pids(&guard.target_dir), three);
    let listed = discovery(&p);
    assert_eq!(
        listed,
        ["127.0.0.1:28200", "127.0.0.1:28201", "127.0.0.1:28202"]
    );
    for addr in &listed {
        assert_eq!(http_status(addr, "/").await, Some(200));
        assert_eq!(http_status(addr, "/healthz").await, Some(200));
    }
    let st = p.state().await.unwrap();
    assert_eq!(st.replicas, 3);
    assert!(st.instances.iter().all(|i| i.healthy && i.in_traffic));
    assert_eq!(
        st.instances
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["28200", "28201", "28202"]
    );

    p.execute(&req(
        "in",
        ActionKind::ScaleIn,
        ProviderOp::SetReplicas { from: 3, to: 1 },
    ))
    .await
    .unwrap();
    // The oldest replica survives; the two newer ones are gone and reaped.
    assert_eq!(pids(&p), first);
    assert_eq!(replica_pids(&guard.target_dir), first);
    for pid in three.difference(&first) {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} left behind (zombie?)"
        );
    }
    assert_eq!(discovery(&p), ["127.0.0.1:28200"]);
    assert_eq!(http_status("127.0.0.1:28201", "/healthz").await, None);

    p.shutdown(true).await;
    assert!(replica_pids(&guard.target_dir).is_empty());
    assert!(discovery(&p).is_empty());
}

#[tokio::test]
async fn replaces_a_killed_replica() {
    let (p, guard, _) = setup("28210-28219", 2);
    p.start().await.unwrap();
    let (port, victim) = p.replica_pids()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let id = port.to_string();
    eventually(&p, |s| s.instances.iter().any(|i| i.id == id && !i.healthy)).await;
    // Killing is not acting: the dead replica is still listed until the agent decides.
    assert_eq!(discovery(&p).len(), 2);

    let out = p
        .execute(&req(
            "failover-1",
            ActionKind::Failover,
            ProviderOp::Replace {
                instance: format!("127.0.0.1:{port}"),
            },
        ))
        .await
        .unwrap();
    assert_eq!(out.after["replicas"], 2);
    let now = p.replica_pids();
    let (_, new_pid) = now.iter().find(|(p, _)| *p == port).copied().unwrap();
    assert_ne!(new_pid, victim);
    assert_eq!(replica_pids(&guard.target_dir).len(), 2);
    assert!(replica_pids(&guard.target_dir).contains(&new_pid));
    assert_eq!(
        http_status(&format!("127.0.0.1:{port}"), "/healthz").await,
        Some(200)
    );
    assert_eq!(discovery(&p), ["127.0.0.1:28210", "127.0.0.1:28211"]);
    eventually(&p, |s| s.instances.iter().all(|i| i.healthy)).await;

    let missing = p
        .execute(&req(
            "failover-2",
            ActionKind::Failover,
            ProviderOp::Replace {
                instance: "28219".into(),
            },
        ))
        .await;
    assert!(matches!(
        missing,
        Err(homeostat::model::ProviderError::NotFound { .. })
    ));
}

#[tokio::test]
async fn circuit_open_half_open_close_edit_the_discovery_file() {
    let (p, _guard, _) = setup("28220-28229", 3);
    p.start().await.unwrap();
    let all = ["127.0.0.1:28220", "127.0.0.1:28221", "127.0.0.1:28222"];
    assert_eq!(discovery(&p), all);
    let before = pids(&p);

    let op = |id: &str, op| req(id, ActionKind::CircuitBreak, op);
    p.execute(&op(
        "c1",
        ProviderOp::CircuitOpen {
            instance: "127.0.0.1:28221".into(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(discovery(&p), ["127.0.0.1:28220", "127.0.0.1:28222"]);
    // Still reported (and still running) so the scraper keeps watching it.
    let st = p.state().await.unwrap();
    let i = st.instances.iter().find(|i| i.id == "28221").unwrap();
    assert!(!i.in_traffic);
    assert_eq!(i.address.as_deref(), Some("127.0.0.1:28221"));
    assert_eq!(http_status("127.0.0.1:28221", "/healthz").await, Some(200));
    assert_eq!(
        p.reconcile(&op(
            "c1",
            ProviderOp::CircuitOpen {
                instance: "28221".into()
            }
        ))
        .await
        .unwrap(),
        Reconciliation::Applied
    );

    p.execute(&op(
        "c2",
        ProviderOp::CircuitHalfOpen {
            instance: "28221".into(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(discovery(&p), all);
    p.execute(&op(
        "c3",
        ProviderOp::CircuitOpen {
            instance: "28221".into(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(discovery(&p), ["127.0.0.1:28220", "127.0.0.1:28222"]);
    p.execute(&op(
        "c4",
        ProviderOp::CircuitClose {
            instance: "28221".into(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(discovery(&p), all);
    assert!(p
        .state()
        .await
        .unwrap()
        .instances
        .iter()
        .all(|i| i.in_traffic));
    // Circuit changes never restart anything.
    assert_eq!(pids(&p), before);

    // The health poller notices a replica that turns unhealthy while running, and recovers.
    let client = reqwest::Client::new();
    let flip = |healthy: bool| {
        client
            .post(format!(
                "http://127.0.0.1:28222/admin/health?healthy={healthy}"
            ))
            .send()
    };
    assert!(flip(false).await.unwrap().status().is_success());
    eventually(&p, |s| {
        s.instances
            .iter()
            .any(|i| i.id == "28222" && !i.healthy && i.in_traffic)
    })
    .await;
    assert!(flip(true).await.unwrap().status().is_success());
    eventually(&p, |s| s.instances.iter().all(|i| i.healthy)).await;
    assert_eq!(pids(&p), before);
}

#[tokio::test]
async fn redeploy_rolls_back_a_version_that_fails_health() {
    let (p0, guard, data_dir) = setup("28230-28239", 2);
    drop(p0);
    let mut cfg = config("28230-28239");
    cfg.startup_timeout = Some(Duration::from_secs(2));
    let p = ProcessProvider::new(TARGET, cfg, &data_dir, 2).unwrap();
    p.start().await.unwrap();
    let old_pids = pids(&p);
    let old_discovery = discovery(&p);

    let out = p
        .execute(&req(
            "deploy-bad",
            ActionKind::Redeploy,
            ProviderOp::Redeploy {
                version: Some("v2-bad".into()),
                command: None,
                env: Default::default(),
            },
        ))
        .await
        .unwrap();
    let why = out.rolled_back.expect("reported as rolled back");
    assert!(why.contains("v2-bad") && why.contains("v1"), "{why}");
    // Old replicas untouched and serving; the bad one is gone; traffic never saw it.
    assert_eq!(pids(&p), old_pids);
    assert_eq!(replica_pids(&guard.target_dir), old_pids);
    assert_eq!(discovery(&p), old_discovery);
    for addr in &old_discovery {
        assert_eq!(http_status(addr, "/").await, Some(200));
        assert_eq!(build_info(addr).await, "v1");
    }
    let st = p.state().await.unwrap();
    assert_eq!(st.version.as_deref(), Some("v1"));
    assert_eq!(out.before, out.after);

    // A good version rolls forward one at a time...
    let out = p
        .execute(&req(
            "deploy-v2",
            ActionKind::Redeploy,
            ProviderOp::Redeploy {
                version: Some("v2".into()),
                command: None,
                env: Default::default(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(out.rolled_back, None);
    let v2_pids = pids(&p);
    assert!(v2_pids.is_disjoint(&old_pids));
    assert_eq!(replica_pids(&guard.target_dir), v2_pids);
    let listed = discovery(&p);
    assert_eq!(listed.len(), 2);
    for addr in &listed {
        assert_eq!(build_info(addr).await, "v2");
    }
    let st = p.state().await.unwrap();
    assert_eq!(st.version.as_deref(), Some("v2"));
    assert!(st
        .instances
        .iter()
        .all(|i| i.version.as_deref() == Some("v2")));

    // ...and Rollback returns to the previous version.
    p.execute(&req("rollback", ActionKind::Redeploy, ProviderOp::Rollback))
        .await
        .unwrap();
    let listed = discovery(&p);
    assert_eq!(listed.len(), 2);
    for addr in &listed {
        assert_eq!(build_info(addr).await, "v1");
    }
    assert_eq!(p.state().await.unwrap().version.as_deref(), Some("v1"));
    assert_eq!(replica_pids(&guard.target_dir).len(), 2);
}

#[tokio::test]
async fn adopts_replicas_after_an_agent_restart() {
    let (p, guard, data_dir) = setup("28240-28249", 3);
    p.start().await.unwrap();
    p.execute(&req(
        "circuit",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: "28242".into(),
        },
    ))
    .await
    .unwrap();
    let before = p.replica_pids();
    // Simulated crash: the provider goes away without stopping anything.
    drop(p);
    assert_eq!(replica_pids(&guard.target_dir).len(), 3);
    // One replica dies while the agent is down.
    let (dead_port, dead_pid) = before[1];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dead_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for _ in 0..50 {
        if !replica_pids(&guard.target_dir).contains(&dead_pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let p = ProcessProvider::new(TARGET, config("28240-28249"), &data_dir, 3).unwrap();
    let st = p.start().await.unwrap();
    assert_eq!(st.replicas, 3);
    let after = p.replica_pids();
    // The two survivors are adopted with the same pids; only the dead one was started anew.
    for (port, pid) in &before {
        if *pid != dead_pid {
            assert!(after.contains(&(*port, *pid)), "{after:?}");
        }
    }
    assert!(after.iter().all(|(_, pid)| *pid != dead_pid));
    assert_eq!(
        replica_pids(&guard.target_dir),
        after.iter().map(|(_, pid)| *pid).collect()
    );
    assert_eq!(after.len(), 3);
    // The open circuit survived the restart.
    assert_eq!(dead_port, 28241);
    assert_eq!(discovery(&p), ["127.0.0.1:28240", "127.0.0.1:28241"]);

    // A second restart with everything alive starts nothing at all.
    let same = p.replica_pids();
    drop(p);
    let p = ProcessProvider::new(TARGET, config("28240-28249"), &data_dir, 1).unwrap();
    assert_eq!(p.start().await.unwrap().replicas, 3);
    assert_eq!(p.replica_pids(), same);
    assert_eq!(replica_pids(&guard.target_dir).len(), 3);
}

#[tokio::test]
async fn stops_unrecorded_replicas_left_by_a_crash() {
    let (p, guard, _) = setup("28250-28259", 1);
    p.start().await.unwrap();
    let recorded = pids(&p);
    // A replica the agent spawned but crashed before recording: same marker, not in the file.
    let mut orphan = std::process::Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .args(["demo-service", "--port", "28259"])
        .env(
            "HOMEOSTAT_REPLICA",
            format!("{}#28259", guard.target_dir.display()),
        )
        .process_group(0)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if http_status("127.0.0.1:28259", "/healthz").await == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(replica_pids(&guard.target_dir).len(), 2);
    drop(p);
    let p = ProcessProvider::new(
        TARGET,
        config("28250-28259"),
        guard.target_dir.parent().unwrap().parent().unwrap(),
        1,
    )
    .unwrap();
    p.start().await.unwrap();
    assert_eq!(pids(&p), recorded);
    let mut exited = None;
    for _ in 0..100 {
        exited = orphan.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exited.is_some(), "the orphan was not stopped");
    assert_eq!(replica_pids(&guard.target_dir), recorded);
}

#[tokio::test]
async fn repeated_action_ids_do_not_act_twice() {
    let (p, guard, _) = setup("28260-28269", 1);
    p.start().await.unwrap();
    let scale = req(
        "same-id",
        ActionKind::ScaleOut,
        ProviderOp::SetReplicas { from: 1, to: 2 },
    );
    assert_eq!(
        p.reconcile(&scale).await.unwrap(),
        Reconciliation::NotApplied
    );
    let first = p.execute(&scale).await.unwrap();
    let two = pids(&p);
    assert_eq!(two.len(), 2);

    // Someone scales back to 1 by other means; the old id must still not act again.
    p.execute(&req(
        "other",
        ActionKind::ScaleIn,
        ProviderOp::SetReplicas { from: 2, to: 1 },
    ))
    .await
    .unwrap();
    let again = p.execute(&scale).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(pids(&p).len(), 1);
    assert_eq!(replica_pids(&guard.target_dir).len(), 1);
    // The recorded id reconciles as applied; a new id judges by the state.
    assert_eq!(p.reconcile(&scale).await.unwrap(), Reconciliation::Applied);
    let fresh = req(
        "fresh",
        ActionKind::ScaleOut,
        ProviderOp::SetReplicas { from: 1, to: 2 },
    );
    assert_eq!(
        p.reconcile(&fresh).await.unwrap(),
        Reconciliation::NotApplied
    );

    // The record survives a restart.
    drop(p);
    let data_dir = guard.target_dir.parent().unwrap().parent().unwrap();
    let p = ProcessProvider::new(TARGET, config("28260-28269"), data_dir, 1).unwrap();
    p.start().await.unwrap();
    assert_eq!(p.execute(&scale).await.unwrap(), first);
    assert_eq!(pids(&p).len(), 1);

    // Reusing an id for a different operation is refused.
    let reused = req(
        "same-id",
        ActionKind::ScaleOut,
        ProviderOp::SetReplicas { from: 1, to: 5 },
    );
    assert!(p.execute(&reused).await.is_err());
    assert_eq!(pids(&p).len(), 1);
}

#[tokio::test]
async fn a_replica_that_ignores_sigterm_is_killed() {
    let (p0, guard, data_dir) = setup("28270-28279", 1);
    drop(p0);
    let mut cfg = config("28270-28279");
    cfg.command.push("--ignore-sigterm".into());
    cfg.stop_timeout = Some(Duration::from_millis(300));
    let p = ProcessProvider::new(TARGET, cfg, &data_dir, 1).unwrap();
    p.start().await.unwrap();
    let stubborn = pids(&p);
    assert_eq!(stubborn.len(), 1);
    let pid = *stubborn.iter().next().unwrap();
    // It really ignores SIGTERM.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(replica_pids(&guard.target_dir), stubborn);

    p.execute(&req(
        "in",
        ActionKind::ScaleIn,
        ProviderOp::SetReplicas { from: 1, to: 0 },
    ))
    .await
    .unwrap();
    assert!(replica_pids(&guard.target_dir).is_empty());
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(discovery(&p).is_empty());
    assert_eq!(p.state().await.unwrap().replicas, 0);
}
