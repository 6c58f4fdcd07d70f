//! Unit tests of the process provider's pieces; the end-to-end behaviour with
//! real demo-service replicas is in `tests/process_provider.rs`.
use std::collections::BTreeMap;
use std::time::Duration;

use super::client::{self, *};
use super::state::*;
use super::*;

fn cfg(command: &[&str], ports: &str) -> ProcessConfig {
    ProcessConfig {
        command: command.iter().map(|s| s.to_string()).collect(),
        ports: ports.into(),
        health: "/healthz".into(),
        initial_replicas: None,
        version: Some("v1".into()),
        env: BTreeMap::new(),
        workdir: None,
        startup_timeout: Some(Duration::from_millis(500)),
        stop_timeout: Some(Duration::from_secs(2)),
        health_interval: None,
        health_timeout: Some(Duration::from_millis(200)),
        discovery_file: None,
    }
}

#[test]
fn port_ranges() {
    assert_eq!(
        crate::spec::parse_port_range("18100-18199").unwrap(),
        18100..=18199
    );
    assert_eq!(
        crate::spec::parse_port_range(" 9000 - 9001 ").unwrap(),
        9000..=9001
    );
    assert_eq!(crate::spec::parse_port_range("8080").unwrap(), 8080..=8080);
    for bad in ["", "a-b", "10-5", "0-10", "1-70000", "-"] {
        assert!(crate::spec::parse_port_range(bad).is_err(), "{bad}");
    }
}

#[test]
fn argv_substitution() {
    let t: Vec<String> = [
        "svc",
        "--port",
        "{{port}}",
        "--v={{ version }}",
        "{{port}}/{{version}}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        resolve_argv(&t, 18100, Some("v2")),
        ["svc", "--port", "18100", "--v=v2", "18100/v2"]
    );
    assert_eq!(resolve_argv(&t, 1, None)[3], "--v=");
}

#[test]
fn instance_ids() {
    assert_eq!(parse_instance("18100"), Some(18100));
    assert_eq!(parse_instance("127.0.0.1:18100"), Some(18100));
    assert_eq!(parse_instance("[::1]:9"), Some(9));
    assert_eq!(parse_instance("web-1"), None);
}

#[test]
fn proc_stat_parsing_survives_odd_process_names() {
    let s = parse_stat("1234 (a) b) c) S 1 1234 1234 0 -1").unwrap();
    assert_eq!(
        s,
        ProcStat {
            state: 'S',
            pgrp: 1234
        }
    );
    assert_eq!(parse_stat("12 (x) Z 1 7 7").unwrap().state, 'Z');
    assert_eq!(parse_stat("garbage"), None);
}

#[test]
fn own_process_is_seen_through_proc() {
    let me = std::process::id();
    assert!(is_alive(me));
    let argv: Vec<String> = std::env::args().collect();
    assert_eq!(cmdline(me).unwrap(), argv);
    assert!(is_our_process(me, &argv, "no-marker"));
    assert!(!is_our_process(
        me,
        &["something-else".to_string()],
        "no-marker"
    ));
    assert!(!is_alive(u32::MAX - 1));
}

#[test]
fn atomic_write_replaces_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub").join("f.json");
    write_atomic(&p, b"one").unwrap();
    write_atomic(&p, b"two").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
    let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["f.json"]);
}

#[test]
fn discovery_file_is_file_sd_json() {
    let text = render_discovery("checkout", &[18100, 18102]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{
            "targets": ["127.0.0.1:18100", "127.0.0.1:18102"],
            "labels": {"homeostat_target": "checkout"}
        }])
    );
    let empty: serde_json::Value =
        serde_json::from_str(&render_discovery("checkout", &[])).unwrap();
    assert_eq!(empty[0]["targets"], serde_json::json!([]));
}

fn dep(v: &str) -> Deployment {
    Deployment {
        command: vec!["svc".into(), "--port".into(), "{{port}}".into()],
        version: Some(v.into()),
        env: Default::default(),
    }
}

fn replica(port: u16, v: &str, in_traffic: bool) -> Replica {
    Replica {
        pid: 1,
        port,
        version: Some(v.into()),
        command: resolve_argv(&dep(v).command, port, Some(v)),
        started_at_ms: 0,
        seq: u64::from(port),
        in_traffic,
        pending_traffic: false,
        retiring: false,
    }
}

#[test]
fn state_file_round_trips() {
    let mut st = PersistedState::new(dep("v2"));
    st.previous = Some(dep("v1"));
    st.replicas = vec![replica(18100, "v2", true), replica(18101, "v2", false)];
    st.actions.record(
        &ActionRequest {
            action_id: "x".into(),
            target: "web".into(),
            kind: ActionKind::ScaleOut,
            op: ProviderOp::SetReplicas { from: 1, to: 2 },
            rule: "r".into(),
        },
        ActionOutcome {
            rolled_back: Some("why".into()),
            ..Default::default()
        },
    );
    let text = serde_json::to_string(&st).unwrap();
    assert_eq!(serde_json::from_str::<PersistedState>(&text).unwrap(), st);
    assert_eq!(st.traffic_ports(), [18100]);
}

fn live(st: &PersistedState) -> TargetState {
    TargetState {
        replicas: st.replicas.len() as u32,
        instances: st
            .replicas
            .iter()
            .map(|r| InstanceInfo {
                id: r.port.to_string(),
                address: None,
                healthy: true,
                in_traffic: r.in_traffic,
                version: r.version.clone(),
                labels: BTreeMap::new(),
            })
            .collect(),
        version: st.current.version.clone(),
    }
}

#[test]
fn reconcile_compares_the_goal_with_what_runs() {
    let mut st = PersistedState::new(dep("v1"));
    st.replicas = vec![replica(18100, "v1", true), replica(18101, "v1", false)];
    let l = live(&st);
    let scale = |from, to| ProviderOp::SetReplicas { from, to };
    assert_eq!(reconcile_op(&scale(1, 2), &st, &l), Reconciliation::Applied);
    assert_eq!(
        reconcile_op(&scale(2, 3), &st, &l),
        Reconciliation::NotApplied
    );
    assert_eq!(reconcile_op(&scale(4, 5), &st, &l), Reconciliation::Unknown);

    let open = |i: &str| ProviderOp::CircuitOpen { instance: i.into() };
    let close = |i: &str| ProviderOp::CircuitClose { instance: i.into() };
    assert_eq!(
        reconcile_op(&open("127.0.0.1:18101"), &st, &l),
        Reconciliation::Applied
    );
    assert_eq!(
        reconcile_op(&open("18100"), &st, &l),
        Reconciliation::NotApplied
    );
    assert_eq!(
        reconcile_op(&close("18100"), &st, &l),
        Reconciliation::Applied
    );
    assert_eq!(
        reconcile_op(&close("18101"), &st, &l),
        Reconciliation::NotApplied
    );
    assert_eq!(
        reconcile_op(&close("18199"), &st, &l),
        Reconciliation::Unknown
    );

    let redeploy = |v: &str| ProviderOp::Redeploy {
        version: Some(v.into()),
        command: None,
        env: Default::default(),
    };
    assert_eq!(
        reconcile_op(&redeploy("v1"), &st, &l),
        Reconciliation::Applied
    );
    assert_eq!(
        reconcile_op(&redeploy("v2"), &st, &l),
        Reconciliation::NotApplied
    );
    // Interrupted half way: one replica on each version.
    st.current = dep("v2");
    st.previous = Some(dep("v1"));
    st.replicas[1] = replica(18102, "v2", true);
    assert_eq!(
        reconcile_op(&redeploy("v2"), &st, &live(&st)),
        Reconciliation::Unknown
    );
}

#[test]
fn constructor_validates() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ProcessProvider::new("t", cfg(&["x"], "10-5"), dir.path(), 1).is_err());
    assert!(ProcessProvider::new("t", cfg(&[], "100-101"), dir.path(), 1).is_err());
    assert!(ProcessProvider::new("../t", cfg(&["x"], "100-101"), dir.path(), 1).is_err());
    let p = ProcessProvider::new("t", cfg(&["x"], "100-101"), dir.path(), 1).unwrap();
    assert_eq!(
        p.discovery_file(),
        dir.path().join("targets").join("t.json")
    );
    assert_eq!(p.target_dir(), dir.path().join("targets").join("t"));
}

#[tokio::test]
async fn state_before_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = ProcessProvider::new("t", cfg(&["x"], "100-101"), dir.path(), 1).unwrap();
    assert!(p.state().await.is_err());
}

#[tokio::test]
async fn marked_processes_are_found_and_stopped_by_group() {
    let dir = tempfile::tempdir().unwrap();
    let argv: Vec<String> = ["sleep", "30"].iter().map(|s| s.to_string()).collect();
    let marker = marker_value(dir.path(), 18055);
    let mut child = client::spawn(&SpawnSpec {
        argv: &argv,
        env: &BTreeMap::new(),
        workdir: None,
        log: &dir.path().join("log"),
        marker: &marker,
    })
    .unwrap();
    let pid = child.id().unwrap();
    // Between fork and exec /proc shows the parent's argv and environment:
    // wait for the exec before looking.
    let deadline = crate::clock::monotonic_now() + Duration::from_secs(5);
    while !is_our_process(pid, &argv, &marker) && crate::clock::monotonic_now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(is_our_process(pid, &argv, &marker));
    // A stranger's argv with our marker still counts (title-rewriting programs).
    assert!(is_our_process(pid, &["other".to_string()], &marker));
    assert!(!is_our_process(pid, &["other".to_string()], "elsewhere#1"));
    let found = scan_marked(dir.path());
    assert_eq!(
        found,
        [(pid, pid as i32, 18055)],
        "own process group, port from marker"
    );
    assert!(signal_group(pid, nix::sys::signal::Signal::SIGTERM));
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert!(!is_alive(pid));
    assert!(scan_marked(dir.path()).is_empty());
}

#[tokio::test]
async fn replica_that_exits_at_start_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(
        &["sh", "-c", "echo started {{port}}; exit 3"],
        "18060-18061",
    );
    c.startup_timeout = Some(Duration::from_secs(30));
    let p = ProcessProvider::new("t", c, dir.path(), 1).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), p.start())
        .await
        .expect("fails long before the startup timeout")
        .unwrap_err();
    assert!(err.to_string().contains("exited during start-up"), "{err}");
    let log = std::fs::read_to_string(p.target_dir().join("replica-18060.log")).unwrap();
    assert_eq!(log, "started 18060\n");
    assert_eq!(p.state().await.unwrap().replicas, 0);
}

#[tokio::test]
async fn replica_that_never_gets_healthy_is_stopped_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let p = ProcessProvider::new("t", cfg(&["sleep", "30"], "18062-18063"), dir.path(), 1).unwrap();
    let err = p.start().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Timeout { after_ms: 500, .. }),
        "{err}"
    );
    assert!(
        scan_marked(p.target_dir()).is_empty(),
        "the sleeper was stopped"
    );
    let st: PersistedState =
        serde_json::from_slice(&std::fs::read(p.target_dir().join("replicas.json")).unwrap())
            .unwrap();
    assert!(st.replicas.is_empty());
}
