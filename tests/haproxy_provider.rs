#![cfg(feature = "haproxy")]
//! The haproxy provider against a real HAProxy (Debian package `haproxy`) in
//! front of real demo-service replicas (this crate's binary).
//!
//! Every test starts its own HAProxy with a generated config on free ports
//! (`haproxy_lab`), and proves what the provider did with real requests
//! through HAProxy's frontend: the `X-Server` header says which server
//! answered, and each demo-service's own request counter says what it served.
//! HAProxy and the services are killed on drop, even when a test fails.
mod common;
mod haproxy_lab;

use std::collections::BTreeMap;
use std::time::Duration;

use homeostat::model::{ActionKind, ActionRequest, ProviderError, ProviderOp, Reconciliation};
use homeostat::providers::haproxy::config::{AddServers, OpenState, WeightSetting};
use homeostat::providers::haproxy::{HaproxyConfig, HaproxyProvider};
use homeostat::providers::Provider;

use common::*;
use haproxy_lab::*;

const TARGET: &str = "edge";
/// Requests per traffic sample.
const N: usize = 300;

fn config(lab: &Lab) -> HaproxyConfig {
    HaproxyConfig {
        runtime_api: lab.admin_sock.display().to_string(),
        backend: lab.backend.into(),
        servers: None,
        backups: None,
        circuit_open: None,
        half_open_weight: None,
        metrics_port: None,
        drain_timeout: Some(Duration::from_secs(5)),
        poll_interval: Some(Duration::from_millis(200)),
        timeout: Some(Duration::from_secs(5)),
        add_servers: None,
    }
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

fn open(id: &str, instance: &str) -> ActionRequest {
    req(
        id,
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: instance.into(),
        },
    )
}

fn half_open(id: &str, instance: &str) -> ActionRequest {
    req(
        id,
        ActionKind::CircuitBreak,
        ProviderOp::CircuitHalfOpen {
            instance: instance.into(),
        },
    )
}

fn close(id: &str, instance: &str) -> ActionRequest {
    req(
        id,
        ActionKind::CircuitBreak,
        ProviderOp::CircuitClose {
            instance: instance.into(),
        },
    )
}

fn scale(id: &str, from: u32, to: u32) -> ActionRequest {
    let kind = if to > from {
        ActionKind::ScaleOut
    } else {
        ActionKind::ScaleIn
    };
    req(id, kind, ProviderOp::SetReplicas { from, to })
}

fn failover(id: &str, instance: &str) -> ActionRequest {
    req(
        id,
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: instance.into(),
        },
    )
}

fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn provider(lab: &Lab, cfg: HaproxyConfig) -> (HaproxyProvider, tempfile::TempDir) {
    crypto();
    let data = tempfile::tempdir().unwrap();
    let p = HaproxyProvider::new(TARGET, cfg, data.path()).unwrap();
    p.start()
        .await
        .unwrap_or_else(|e| panic!("start: {e}\n{}", lab.haproxy_log()));
    (p, data)
}

fn count(spread: &BTreeMap<String, usize>, server: &str) -> usize {
    spread.get(server).copied().unwrap_or(0)
}

/// Servers of the target's state by id: (in_traffic, healthy).
async fn instances(p: &HaproxyProvider) -> BTreeMap<String, (bool, bool)> {
    p.state()
        .await
        .unwrap()
        .instances
        .into_iter()
        .map(|i| (i.id, (i.in_traffic, i.healthy)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_stops_traffic_half_open_lets_a_trickle_through_and_close_restores_it() {
    if !haproxy_available() {
        return;
    }
    let lab = Lab::start(Spec::new(vec![srv("s1"), srv("s2"), srv("s3")])).await;
    let (p, _data) = provider(&lab, config(&lab)).await;
    let st = p.state().await.unwrap();
    assert_eq!(st.replicas, 3);
    let victim_addr = lab.address("s2");
    let i = st.instances.iter().find(|i| i.id == "s2").unwrap();
    assert_eq!(i.address.as_deref(), Some(victim_addr.as_str()));
    assert!(i.in_traffic && i.healthy);
    assert_eq!(i.labels["backend"], "web");
    assert_eq!(i.labels["server"], "s2");

    let even = lab.spread(N).await;
    assert!(count(&even, "s2") >= N / 4, "{even:?}");

    // Open, naming the instance as the scraper does (addr:port).
    let served_before = lab.served(&victim_addr).await;
    let out = p.execute(&open("a1", &victim_addr)).await.unwrap();
    assert_eq!(out.before["replicas"], 3);
    assert_eq!(
        out.after["replicas"], 3,
        "an open circuit keeps its replica"
    );
    let s2 = lab.server("s2").await;
    assert_eq!(s2.admin_state(), "maint");
    assert_eq!(s2.weight, 100, "weight kept while open");
    let opened = lab.spread(N).await;
    assert_eq!(count(&opened, "s2"), 0, "{opened:?}");
    assert_eq!(count(&opened, "s1") + count(&opened, "s3"), N);
    assert_eq!(
        lab.served(&victim_addr).await,
        served_before,
        "the open server itself received no request"
    );
    let inst = instances(&p).await;
    assert!(!inst["s2"].0, "s2 out of traffic: {inst:?}");
    assert_eq!(p.state().await.unwrap().replicas, 3);
    assert_eq!(
        p.reconcile(&open("other-id", "s2")).await.unwrap(),
        Reconciliation::Applied
    );

    // Half-open: ready at 10 % of weight 100 → 10 against 100 + 100.
    p.execute(&half_open("a2", "s2")).await.unwrap();
    let s2 = lab.server("s2").await;
    assert_eq!((s2.admin_state(), s2.weight), ("ready", 10));
    let trickle = lab.spread(N).await;
    let share = count(&trickle, "s2");
    assert!(
        (1..=N / 10).contains(&share),
        "half-open gets a small share: {trickle:?}"
    );

    // Closed: back to its configured weight and its full share.
    p.execute(&close("a3", "s2")).await.unwrap();
    let s2 = lab.server("s2").await;
    assert_eq!((s2.admin_state(), s2.weight), ("ready", 100));
    let back = lab.spread(N).await;
    assert!(count(&back, "s2") >= N / 4, "{back:?}");
    assert!(lab.served(&victim_addr).await > served_before);

    // Converging: closing a closed circuit changes nothing and succeeds.
    let again = p.execute(&close("a4", "web/s2")).await.unwrap();
    assert_eq!(again.before, again.after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_mode_stops_new_traffic_but_keeps_health_checks_running() {
    if !haproxy_available() {
        return;
    }
    let lab = Lab::start(Spec::new(vec![srv("s1"), srv("s2")])).await;
    let mut cfg = config(&lab);
    cfg.circuit_open = Some(OpenState::Drain);
    cfg.half_open_weight = Some(WeightSetting::Absolute(3));
    let (p, _data) = provider(&lab, cfg).await;

    p.execute(&open("d1", "s1")).await.unwrap();
    let s1 = lab.server("s1").await;
    assert_eq!(s1.admin_state(), "drain");
    // Checks still run in drain (maint pauses them: bit 0x08 of srv_check_state).
    assert_eq!(s1.check_state & 0x08, 0, "{s1:?}");
    assert!(s1.status.contains("DRAIN"), "{s1:?}");
    let spread = lab.spread(N).await;
    assert_eq!(count(&spread, "s1"), 0, "{spread:?}");
    assert!(!instances(&p).await["s1"].0);

    // A drained server that goes down is seen as unhealthy (its checks run).
    let addr = lab.address("s1");
    let r = http()
        .post(format!("http://{addr}/admin/health?healthy=false"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    lab.wait_servers("s1 DOWN while draining", |s| {
        s.iter().any(|s| s.name == "s1" && s.op_state == 0)
    })
    .await;
    let deadline = Deadline::after(PATIENCE);
    while instances(&p).await["s1"].1 {
        assert!(!deadline.passed(), "the poller never saw s1 unhealthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = http()
        .post(format!("http://{addr}/admin/health?healthy=true"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    lab.wait_servers("s1 UP again", |s| {
        s.iter().any(|s| s.name == "s1" && s.op_state == 2)
    })
    .await;

    // Half-open with an absolute weight.
    p.execute(&half_open("d2", "s1")).await.unwrap();
    let s1 = lab.server("s1").await;
    assert_eq!((s1.admin_state(), s1.weight), ("ready", 3));
    p.execute(&close("d3", "s1")).await.unwrap();
    let spread = lab.spread(100).await;
    assert!(count(&spread, "s1") >= 30, "{spread:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_enables_spare_slots_and_scale_in_drains_then_disables_the_last_ones() {
    if !haproxy_available() {
        return;
    }
    let lab = Lab::start(Spec::new(vec![
        srv("s1"),
        srv("s2"),
        disabled("s3"),
        disabled("s4"),
    ]))
    .await;
    let (p, _data) = provider(&lab, config(&lab)).await;
    let st = p.state().await.unwrap();
    assert_eq!(st.replicas, 2, "disabled slots are spares: {st:?}");
    assert_eq!(
        st.instances
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["s1", "s2"]
    );
    let spread = lab.spread(100).await;
    assert_eq!(count(&spread, "s3") + count(&spread, "s4"), 0);

    let out = p.execute(&scale("u1", 2, 4)).await.unwrap();
    assert_eq!(
        (
            out.before["replicas"].as_u64(),
            out.after["replicas"].as_u64()
        ),
        (Some(2), Some(4))
    );
    let spread = lab.spread(N).await;
    for s in ["s1", "s2", "s3", "s4"] {
        assert!(count(&spread, s) >= N / 8, "{s}: {spread:?}");
    }
    assert_eq!(p.state().await.unwrap().replicas, 4);

    // More than the slots: refused, nothing changed.
    let err = p.execute(&scale("u2", 4, 5)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("out of reach"), "{err}");
    assert_eq!(p.state().await.unwrap().replicas, 4);

    // Scale in to 1: the last slots go (s4, s3, s2), drained then maint + weight 0.
    let out = p.execute(&scale("d1", 4, 1)).await.unwrap();
    assert_eq!(out.after["replicas"], 1);
    let servers = lab.servers().await;
    for s in servers.iter().filter(|s| s.name != "s1") {
        assert_eq!((s.admin_state(), s.weight), ("maint", 0), "{s:?}");
    }
    let spread = lab.spread(100).await;
    assert_eq!(count(&spread, "s1"), 100, "{spread:?}");
    let st = p.state().await.unwrap();
    assert_eq!(st.replicas, 1);
    assert_eq!(st.instances.len(), 1);
    assert_eq!(
        p.reconcile(&scale("other", 4, 1)).await.unwrap(),
        Reconciliation::Applied
    );
    assert_eq!(
        p.reconcile(&scale("other2", 1, 3)).await.unwrap(),
        Reconciliation::NotApplied
    );

    // Out again: the first spare in slot order (s2) comes back at its weight.
    p.execute(&scale("u3", 1, 2)).await.unwrap();
    let s2 = lab.server("s2").await;
    assert_eq!((s2.admin_state(), s2.weight), ("ready", 100));
    let spread = lab.spread(100).await;
    assert!(count(&spread, "s2") >= 30, "{spread:?}");
    assert_eq!(count(&spread, "s3") + count(&spread, "s4"), 0);

    // The same action id again: the recorded outcome, no second scale.
    let replay = p.execute(&scale("u3", 1, 2)).await.unwrap();
    assert_eq!(replay.after["replicas"], 2);
    assert_eq!(p.state().await.unwrap().replicas, 2);
    // The same id for another op is refused.
    let err = p.execute(&scale("u3", 2, 3)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_in_waits_for_the_sessions_of_a_draining_server() {
    if !haproxy_available() {
        return;
    }
    let mut spec = Spec::new(vec![srv("s1"), srv("s2")]);
    spec.latency = "1500ms";
    let lab = Lab::start(spec).await;
    let mut cfg = config(&lab);
    cfg.drain_timeout = Some(Duration::from_secs(60));
    let (p, _data) = provider(&lab, cfg).await;
    // Slow requests in flight, half of them on s2, while it is scaled in.
    let url = format!("http://127.0.0.1:{}/", lab.front_port);
    let mut inflight = Vec::new();
    for _ in 0..10 {
        let url = url.clone();
        inflight.push(tokio::spawn(async move {
            http().get(url).send().await.map(|r| r.status().as_u16())
        }));
    }
    lab.wait_servers("sessions on s2", |s| {
        s.iter().any(|s| s.name == "s2" && s.sessions > 0)
    })
    .await;
    let out = p.execute(&scale("d", 2, 1)).await.unwrap();
    assert_eq!(out.after["replicas"], 1);
    // It went to maint only once its sessions had ended.
    let s2 = lab.server("s2").await;
    assert_eq!((s2.admin_state(), s2.weight, s2.sessions), ("maint", 0, 0));
    for t in inflight {
        let status = t.await.unwrap().expect("request completes");
        assert_eq!(status, 200, "no request was cut by the scale-in");
    }
    let addr = lab.address("s2");
    let before = lab.served(&addr).await;
    let spread = lab.spread(4).await;
    assert_eq!(count(&spread, "s1"), 4);
    assert_eq!(lab.served(&addr).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_switches_a_slot_to_a_spare_and_traffic_moves() {
    if !haproxy_available() {
        return;
    }
    let lab = Lab::start(Spec::new(vec![srv("s1"), srv("s2"), disabled("s3")])).await;
    let (p, _data) = provider(&lab, config(&lab)).await;
    let out = p.execute(&failover("f1", "s2")).await.unwrap();
    assert_eq!(out.before["replicas"], 2);
    assert_eq!(out.after["replicas"], 2, "a failover keeps the count");
    let spread = lab.spread(N).await;
    assert_eq!(count(&spread, "s2"), 0, "{spread:?}");
    assert!(count(&spread, "s3") >= N / 3, "{spread:?}");
    let s2 = lab.server("s2").await;
    assert_eq!(
        (s2.admin_state(), s2.weight),
        ("maint", 0),
        "s2 is a spare now"
    );
    let st = p.state().await.unwrap();
    let ids: Vec<&str> = st.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["s1", "s3"]);
    assert_eq!(
        p.reconcile(&failover("x", "s2")).await.unwrap(),
        Reconciliation::Applied
    );

    // Same id: recorded outcome. Another failover of s2: it is already out, no-op.
    assert_eq!(p.execute(&failover("f1", "s2")).await.unwrap(), out);
    let again = p.execute(&failover("f2", "s2")).await.unwrap();
    assert_eq!(again.before, again.after);

    // The failed-over s2 is a spare now: s1's failover takes it.
    p.execute(&failover("f3", "s1")).await.unwrap();
    let spread = lab.spread(100).await;
    assert_eq!(count(&spread, "s1"), 0, "{spread:?}");
    assert!(count(&spread, "s2") >= 30, "{spread:?}");
    assert!(count(&spread, "s3") >= 30, "{spread:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_without_a_spare_sends_traffic_to_the_backup_server() {
    if !haproxy_available() {
        return;
    }
    // Active/passive: one primary, one backup.
    let lab = Lab::start(Spec::new(vec![srv("p1"), backup("b1")])).await;
    let (p, _data) = provider(&lab, config(&lab)).await;
    let st = p.state().await.unwrap();
    assert_eq!(st.replicas, 1);
    let inst = instances(&p).await;
    assert!(inst["p1"].0);
    assert!(!inst["b1"].0, "a backup waits while a primary serves");
    let spread = lab.spread(50).await;
    assert_eq!(count(&spread, "p1"), 50, "{spread:?}");

    let out = p.execute(&failover("f1", "p1")).await.unwrap();
    assert_eq!(out.after["replicas"], 1, "p1 is held out, still a replica");
    let spread = lab.spread(50).await;
    assert_eq!(count(&spread, "b1"), 50, "{spread:?}");
    let p1 = lab.server("p1").await;
    assert_eq!((p1.admin_state(), p1.weight), ("maint", 100));
    // The poller shows the switch.
    let deadline = Deadline::after(PATIENCE);
    loop {
        let inst = instances(&p).await;
        if !inst["p1"].0 && inst["b1"].0 {
            break;
        }
        assert!(!deadline.passed(), "{inst:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        p.reconcile(&failover("x", "p1")).await.unwrap(),
        Reconciliation::Applied
    );
    // A backup cannot itself be failed over.
    let err = p.execute(&failover("f2", "b1")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_of_one_of_several_primaries_leaves_the_backup_standing_by() {
    if !haproxy_available() {
        return;
    }
    let lab = Lab::start(Spec::new(vec![srv("s1"), srv("s2"), backup("b1")])).await;
    let (p, _data) = provider(&lab, config(&lab)).await;
    p.execute(&failover("f1", "s1")).await.unwrap();
    // HAProxy uses a backup only when no primary can serve: s2 carries it all.
    let spread = lab.spread(60).await;
    assert_eq!(count(&spread, "s2"), 60, "{spread:?}");
    assert_eq!(count(&spread, "b1"), 0, "{spread:?}");
    // The backup is ready: when s2 goes too, it takes over.
    p.execute(&open("o1", "s2")).await.unwrap();
    let spread = lab.spread(60).await;
    assert_eq!(count(&spread, "b1"), 60, "{spread:?}");
    let inst = instances(&p).await;
    assert!(inst["b1"].0, "{inst:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_provider_reads_the_state_back_from_haproxy() {
    if !haproxy_available() {
        return;
    }
    let lab = Lab::start(Spec::new(vec![
        srv("s1"),
        srv("s2"),
        srv("s3"),
        disabled("s4"),
    ]))
    .await;
    crypto();
    let data = tempfile::tempdir().unwrap();
    let a = HaproxyProvider::new(TARGET, config(&lab), data.path()).unwrap();
    a.start().await.unwrap();
    // s4 (disabled in the config) is enabled, then its circuit opens: HAProxy
    // keeps the `disabled` mark, the held-out file says it is a replica.
    a.execute(&scale("u", 3, 4)).await.unwrap();
    a.execute(&open("o1", "s4")).await.unwrap();
    a.execute(&open("o2", "s2")).await.unwrap();
    a.execute(&scale("d", 4, 3)).await.unwrap();
    let before = a.state().await.unwrap();
    a.shutdown(false).await;
    drop(a);
    // scale_in took s4 first (already out of traffic), so s3 and s1 serve.
    assert_eq!(before.replicas, 3);
    let ids: Vec<&str> = before.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2", "s3"], "{before:?}");

    // An agent restart: a new provider over the same data dir and HAProxy.
    let b = HaproxyProvider::new(TARGET, config(&lab), data.path()).unwrap();
    let after = b.start().await.unwrap();
    assert_eq!(after, before);
    assert!(!instances(&b).await["s2"].0);
    // It closes what the other one opened.
    b.execute(&close("c", "s2")).await.unwrap();
    let spread = lab.spread(N).await;
    assert!(count(&spread, "s2") >= N / 4, "{spread:?}");
    assert_eq!(count(&spread, "s4"), 0);

    // And a circuit opened on a formerly disabled slot survives a restart
    // without being taken for a spare.
    b.execute(&scale("u2", 3, 4)).await.unwrap();
    b.execute(&open("o3", "s4")).await.unwrap();
    b.shutdown(false).await;
    drop(b);
    let c = HaproxyProvider::new(TARGET, config(&lab), data.path()).unwrap();
    let st = c.start().await.unwrap();
    assert_eq!(st.replicas, 4, "{st:?}");
    let s4 = st.instances.iter().find(|i| i.id == "s4").unwrap();
    assert!(!s4.in_traffic);
    // scale_out must not take the open-circuit s4 for a spare.
    let err = c.execute(&scale("u3", 4, 5)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_server_grows_past_the_slots_and_del_server_shrinks_back() {
    if !haproxy_available() {
        return;
    }
    let mut spec = Spec::new(vec![srv("s1")]);
    spec.extra_services = 2;
    let lab = Lab::start(spec).await;
    let mut cfg = config(&lab);
    cfg.servers = Some(vec!["s1".into()]);
    cfg.add_servers = Some(AddServers {
        name_prefix: "hs-".into(),
        addresses: lab.extra.iter().map(|s| s.address()).collect(),
        options: Some("check weight 100".into()),
    });
    let (p, _data) = provider(&lab, cfg).await;
    assert_eq!(p.state().await.unwrap().replicas, 1);

    let out = p.execute(&scale("u", 1, 3)).await.unwrap();
    assert_eq!(out.after["replicas"], 3);
    let servers = lab
        .wait_servers("added servers UP", |s| {
            ["hs-1", "hs-2"]
                .iter()
                .all(|n| s.iter().any(|s| &s.name == n && s.status.starts_with("UP")))
        })
        .await;
    assert_eq!(servers.len(), 3);
    let spread = lab.spread(N).await;
    for s in ["s1", "hs-1", "hs-2"] {
        assert!(count(&spread, s) >= N / 5, "{s}: {spread:?}");
    }
    let st = p.state().await.unwrap();
    let addrs: Vec<String> = st
        .instances
        .iter()
        .filter_map(|i| i.address.clone())
        .collect();
    for e in &lab.extra {
        assert!(addrs.contains(&e.address()), "{addrs:?}");
    }
    // The pool is used up.
    let err = p.execute(&scale("u2", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");

    // Scale in: added servers go first, and are deleted.
    let out = p.execute(&scale("d", 3, 1)).await.unwrap();
    assert_eq!(out.after["replicas"], 1);
    let names: Vec<String> = lab.servers().await.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["s1"]);
    let spread = lab.spread(50).await;
    assert_eq!(count(&spread, "s1"), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_api_over_tcp_works_too() {
    if !haproxy_available() {
        return;
    }
    let lab = Lab::start(Spec::new(vec![srv("s1"), srv("s2")])).await;
    let mut cfg = config(&lab);
    cfg.runtime_api = format!("tcp://127.0.0.1:{}", lab.tcp_port);
    let (p, _data) = provider(&lab, cfg).await;
    assert_eq!(p.state().await.unwrap().replicas, 2);
    p.execute(&open("o", "s1")).await.unwrap();
    let spread = lab.spread(50).await;
    assert_eq!(count(&spread, "s2"), 50);
    p.execute(&close("c", "s1")).await.unwrap();
    let spread = lab.spread(50).await;
    assert!(count(&spread, "s1") >= 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_typed_errors() {
    if !haproxy_available() {
        return;
    }
    let mut lab = Lab::start(Spec::new(vec![srv("s1"), srv("s2")])).await;

    // A `level user` socket reads but may not act.
    let mut cfg = config(&lab);
    cfg.runtime_api = lab.user_sock.display().to_string();
    let (user, _d1) = provider(&lab, cfg).await;
    assert_eq!(user.state().await.unwrap().replicas, 2);
    let err = user.execute(&open("u", "s1")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("level admin"), "{err}");

    // Unknown instance and unknown backend: not found.
    let (p, _d2) = provider(&lab, config(&lab)).await;
    let err = p.execute(&open("n", "nope")).await.unwrap_err();
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err}");
    // No spare and no backup: failover is refused, nothing changes.
    let err = p.execute(&failover("f", "s1")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("no spare slot"), "{err}");
    assert_eq!(lab.server("s1").await.admin_state(), "ready");
    let mut cfg = config(&lab);
    cfg.backend = "nosuch".into();
    let data = tempfile::tempdir().unwrap();
    let err = HaproxyProvider::new(TARGET, cfg, data.path())
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err}");
    // A configured slot that does not exist, a backup that is not one.
    let mut cfg = config(&lab);
    cfg.servers = Some(vec!["s1".into(), "s9".into()]);
    let err = HaproxyProvider::new(TARGET, cfg, data.path())
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("s9"), "{err}");
    let mut cfg = config(&lab);
    cfg.servers = Some(vec!["s1".into()]);
    cfg.backups = Some(vec!["s2".into()]);
    let err = HaproxyProvider::new(TARGET, cfg, data.path())
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("backup"), "{err}");

    // HAProxy goes away: unavailable (retryable), and state() says so.
    lab.kill_haproxy();
    let err = p.execute(&open("x", "s1")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert!(err.is_retryable());
    let deadline = Deadline::after(PATIENCE);
    loop {
        match p.state().await {
            Err(ProviderError::Unavailable { .. }) => break,
            other => assert!(!deadline.passed(), "{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // TCP with nothing listening: unavailable too.
    let mut cfg = config(&lab);
    cfg.runtime_api = format!("tcp://127.0.0.1:{}", free_port());
    let q = HaproxyProvider::new(TARGET, cfg, data.path()).unwrap();
    // The agent still starts while HAProxy is down; state() reports the cause.
    assert_eq!(q.start().await.unwrap().replicas, 0);
    assert!(matches!(
        q.state().await,
        Err(ProviderError::Unavailable { .. })
    ));
    let err = q.execute(&scale("s", 0, 1)).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");

    // A runtime API that accepts and never answers: timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(&lab);
    cfg.runtime_api = format!("tcp://{}", silent.local_addr().unwrap());
    cfg.timeout = Some(Duration::from_millis(300));
    let t = HaproxyProvider::new(TARGET, cfg, data.path()).unwrap();
    t.start().await.unwrap();
    let err = t.execute(&open("t", "s1")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Timeout { .. }), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_on_a_static_balance_algorithm_is_refused_with_the_reason() {
    if !haproxy_available() {
        return;
    }
    let mut spec = Spec::new(vec![srv("s1"), srv("s2")]);
    spec.balance = "static-rr";
    let lab = Lab::start(spec).await;
    let (p, _data) = provider(&lab, config(&lab)).await;
    // Open and close work (weights 0 and 100 % are allowed)...
    p.execute(&open("o", "s1")).await.unwrap();
    // ...a low weight is not.
    let err = p.execute(&half_open("h", "s1")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("static"), "{err}");
    p.execute(&close("c", "s1")).await.unwrap();
    let spread = lab.spread(40).await;
    assert_eq!(count(&spread, "s1"), 20, "{spread:?}");
}

// ---------------------------------------------------------------------------
// The agent binary end to end: rules on control gauges act through HAProxy.
// ---------------------------------------------------------------------------

fn edge_target(lab: &Lab) -> String {
    format!(
        r#"  edge:
    provider: haproxy
    min: 1
    cooldown_up: 1s
    cooldown_down: 1s
    haproxy:
      runtime_api: "{sock}"
      backend: web
      servers: [s1, s2, s3]
      poll_interval: 300ms
      drain_timeout: 2s
      timeout: 2s
"#,
        sock = lab.admin_sock.display()
    )
}

const EDGE_JOB: &str = "    - name: edge\n      target: edge\n";

const EDGE_RULES: &str = r#"
groups:
  - name: edge
    interval: 1s
    rules:
      - name: edge-scale-out
        queries: { load: control_load }
        when: load > 10
        for: 1s
        cooldown: 1s
        action: { kind: scale_out, target: edge, step: 1 }
      - name: edge-s2-errors
        queries: { bad: control_bad }
        when: bad > 0
        for: 1s
        action:
          kind: circuit_break
          target: edge
          instance: s2
          open_for: 2s
"#;

fn changed(e: &homeostat::audit::AuditEvent, from: &str, to: &str) -> bool {
    e.event == Some(homeostat::audit::EventKind::CircuitChanged)
        && e.instance.as_deref() == Some("s2")
        && e.before.as_ref().and_then(|v| v.as_str()) == Some(from)
        && e.after.as_ref().and_then(|v| v.as_str()) == Some(to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_scales_and_breaks_circuits_through_haproxy() {
    use homeostat::audit::EventKind;
    if !haproxy_available() {
        return;
    }
    crypto();
    let lab = Lab::start(Spec::new(vec![srv("s1"), srv("s2"), disabled("s3")])).await;
    let control = ControlExporter::start(&[("control_load", 5.0), ("control_bad", 0.0)]).await;
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: edge_target(&lab),
        extra_jobs_yaml: EDGE_JOB.into(),
        rules_yaml: EDGE_RULES.into(),
    });
    h.start().await;
    let targets = h.get_json("/api/v1/targets").await;
    assert_eq!(
        targets["data"]["providers"]["edge"]["replicas"], 2,
        "{targets}"
    );
    // The scraper found the servers through the provider and scrapes their /metrics.
    let deadline = Deadline::after(PATIENCE);
    let scraped = loop {
        let v = h
            .get_json("/api/v1/query?query=up%7Bjob%3D%22edge%22%7D")
            .await;
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        if result.len() == 2 && result.iter().all(|r| r["value"][1] == "1") {
            break result;
        }
        assert!(!deadline.passed(), "servers not scraped: {v}\n{}", h.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut instances: Vec<String> = scraped
        .iter()
        .map(|r| r["metric"]["instance"].as_str().unwrap().to_string())
        .collect();
    instances.sort();
    let mut want = vec![lab.address("s1"), lab.address("s2")];
    want.sort();
    assert_eq!(instances, want);
    assert!(scraped.iter().all(|r| r["metric"]["backend"] == "web"));

    // scale_out: the spare slot s3 goes into traffic.
    control.set("control_load", 20.0);
    let ok = h
        .wait_event("scale_out succeeded", |e| {
            e.event == Some(EventKind::ActionSucceeded)
                && e.rule.as_deref() == Some("edge-scale-out")
        })
        .await;
    control.set("control_load", 5.0);
    assert_decided_started_succeeded(&h.events(), ok.action_id.as_deref().unwrap());
    assert_eq!(ok.before.as_ref().unwrap()["replicas"], 2, "{}", h.logs());
    assert_eq!(ok.after.as_ref().unwrap()["replicas"], 3, "{}", h.logs());
    let spread = lab.spread(90).await;
    assert!(count(&spread, "s3") >= 20, "{spread:?}");

    // circuit_break on s2: open → no traffic to s2; then half-open → closed.
    control.set("control_bad", 1.0);
    h.wait_event("closed → open", |e| changed(e, "closed", "open"))
        .await;
    let s2 = lab.server("s2").await;
    assert_eq!(s2.admin_state(), "maint");
    let before = lab.served(&lab.address("s2")).await;
    let spread = lab.spread(90).await;
    assert_eq!(count(&spread, "s2"), 0, "{spread:?}");
    assert_eq!(lab.served(&lab.address("s2")).await, before);
    control.set("control_bad", 0.0);
    h.wait_event("half_open → closed", |e| {
        changed(e, "half_open", "closed")
    })
    .await;
    let s2 = lab.server("s2").await;
    assert_eq!((s2.admin_state(), s2.weight), ("ready", 100));
    let spread = lab.spread(90).await;
    assert!(count(&spread, "s2") >= 20, "{spread:?}");

    let events = h.settled_events().await;
    let pos = |from, to| {
        events
            .iter()
            .position(|e| changed(e, from, to))
            .unwrap_or_else(|| panic!("no {from} → {to}\n{}", h.logs()))
    };
    assert!(pos("closed", "open") < pos("open", "half_open"));
    assert!(pos("open", "half_open") < pos("half_open", "closed"));
    // The half-open step really ran through HAProxy at the trickle weight.
    let half = events
        .iter()
        .find(|e| {
            e.event == Some(EventKind::ActionSucceeded)
                && e.detail
                    .as_ref()
                    .is_some_and(|d| d["op"]["op"] == "circuit_half_open")
        })
        .unwrap_or_else(|| panic!("no half-open action\n{}", h.logs()));
    let after = half.after.as_ref().unwrap()["servers"]
        .as_array()
        .unwrap()
        .clone();
    let s2_after = after.iter().find(|s| s["server"] == "s2").unwrap();
    assert_eq!(s2_after["weight"], 10, "{half:?}");
    assert_eq!(s2_after["state"], "ready");
    assert!(
        events
            .iter()
            .all(|e| e.event != Some(EventKind::ActionFailed)),
        "{}",
        h.logs()
    );
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_haproxy_down_actions_fail_as_unavailable_and_the_breaker_opens() {
    use homeostat::audit::EventKind;
    if !haproxy_available() {
        return;
    }
    crypto();
    let mut lab = Lab::start(Spec::new(vec![srv("s1"), srv("s2"), disabled("s3")])).await;
    let control = ControlExporter::start(&[("control_load", 5.0), ("control_bad", 0.0)]).await;
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: edge_target(&lab),
        extra_jobs_yaml: EDGE_JOB.into(),
        rules_yaml: EDGE_RULES.into(),
    });
    h.start().await;
    lab.kill_haproxy();
    control.set("control_load", 20.0);

    let failed = h
        .wait_event("an action failed as unavailable", |e| {
            e.event == Some(EventKind::ActionFailed) && e.cause.as_deref() == Some("unavailable")
        })
        .await;
    assert_eq!(
        failed.detail.as_ref().unwrap()["attempts"],
        3,
        "retried: {failed:?}"
    );
    assert!(
        failed.error.as_deref().unwrap_or("").contains("admin.sock"),
        "the error names the socket: {failed:?}"
    );
    // Repeated failures open the per-provider breaker: later decisions are
    // suppressed without calling HAProxy.
    h.wait_event("suppressed: provider_unavailable", |e| {
        e.event == Some(EventKind::Suppressed) && e.cause.as_deref() == Some("provider_unavailable")
    })
    .await;
    // The failure that opened the breaker says so.
    assert!(
        h.events()
            .iter()
            .any(|e| e.event == Some(EventKind::ActionFailed)
                && e.cause.as_deref() == Some("provider_unavailable")),
        "{}",
        h.logs()
    );
    // The agent stays responsive and keeps its last view of the target.
    let r = http().get(h.url("/-/healthy")).send().await.unwrap();
    assert!(r.status().is_success());
    let targets = h.get_json("/api/v1/targets").await;
    assert_eq!(
        targets["data"]["providers"]["edge"]["replicas"], 2,
        "{targets}"
    );
    control.set("control_load", 5.0);
    let status = h.stop().await;
    assert!(status.success(), "{status:?}\n{}", h.logs());
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "{out}");
}
