//! kill -9 the real agent at the worst moments, restart it on the same data
//! dir, and check that the audit log (the agent's write-ahead log) makes it
//! carry on correctly: open actions are reconciled, cooldowns survive, replicas
//! are adopted (no orphans, no duplicates) and the hash chain verifies.
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use homeostat::audit::{AuditEvent, EventKind};

/// Condition stays true this long after restart while nothing may happen.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(5)).await;
}

/// Seq of the last `agent_started` (the current run's first event).
fn last_start_seq(events: &[AuditEvent]) -> u64 {
    events
        .iter()
        .filter(|e| e.event == Some(EventKind::AgentStarted))
        .map(|e| e.seq)
        .max()
        .unwrap()
}

fn reconciled_result(e: &AuditEvent) -> String {
    e.detail.as_ref().unwrap()["result"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A webhook receiver whose first delivery hangs for 30 s; later ones answer 200.
#[derive(Clone, Default)]
struct Receiver {
    keys: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start(&self) -> std::net::SocketAddr {
        use axum::routing::post;
        let keys = self.keys.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: axum::http::HeaderMap| {
                let keys = keys.clone();
                async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let first = {
                        let mut k = keys.lock().unwrap();
                        k.push(key);
                        k.len() == 1
                    };
                    if first {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_after_action_started_the_action_is_reconciled_and_not_repeated() {
    let control = ControlExporter::start(&[("control_trigger", 0.0)]).await;
    let receiver = Receiver::default();
    let hook = receiver.start().await;
    let targets = format!(
        r#"  hook:
    provider: webhook
    min: 1
    max: 10
    cooldown_up: 1s
    webhook:
      url: "http://{hook}/hook"
      secret_file: "{{ROOT}}/hook.secret"
      timeout: 60s
"#
    );
    let rules = r#"
groups:
  - name: notify
    interval: 1s
    rules:
      - name: notify-scale-out
        queries: { trigger: control_trigger }
        when: trigger > 0
        for: 1s
        cooldown: 1m
        action: { kind: scale_out, target: hook, step: 1 }
"#;
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: targets,
        extra_jobs_yaml: String::new(),
        rules_yaml: rules.into(),
    });
    std::fs::write(h.root.join("hook.secret"), "s3cret\n").unwrap();
    h.start().await;

    control.set("control_trigger", 1.0);
    let started = h
        .wait_event("action_started", |e| {
            e.event == Some(EventKind::ActionStarted)
                && e.rule.as_deref() == Some("notify-scale-out")
        })
        .await;
    h.kill9();
    let id = started.action_id.clone().unwrap();
    // What a crash leaves behind is a valid chain.
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "audit verify right after kill -9: {out}");
    let before_restart = h.events();
    assert!(
        position(&before_restart, EventKind::ActionSucceeded, &id).is_none()
            && position(&before_restart, EventKind::ActionFailed, &id).is_none(),
        "the action must still be open when the agent dies:\n{}",
        h.logs()
    );

    h.start().await;
    let rec = h
        .wait_event("action_reconciled", |e| {
            e.event == Some(EventKind::ActionReconciled) && e.action_id.as_deref() == Some(&id)
        })
        .await;
    // A webhook receiver's state cannot be observed: unknown, counted as applied.
    assert_eq!(reconciled_result(&rec), "unknown", "{}", h.logs());
    let events = h.events();
    let restart = last_start_seq(&events);
    assert!(rec.seq > restart);
    let agent_started = events.iter().find(|e| e.seq == restart).unwrap();
    assert_eq!(agent_started.detail.as_ref().unwrap()["open_actions"], 1);

    // The condition holds on: the rule is held by its cooldown, nothing is re-sent.
    h.wait_event("cooldown suppression after restart", |e| {
        e.seq > restart
            && e.event == Some(EventKind::Suppressed)
            && e.rule.as_deref() == Some("notify-scale-out")
            && e.cause.as_deref() == Some("cooldown")
    })
    .await;
    settle().await;
    let events = h.events();
    assert_eq!(
        started_ids(&events, "notify-scale-out"),
        vec![id.clone()],
        "{}",
        h.logs()
    );
    // Whatever reached the receiver carried the one action id.
    assert!(
        receiver.keys().iter().all(|k| *k == id),
        "{:?}",
        receiver.keys()
    );
    // Exactly one outcome-like event closes the action.
    let closing = events
        .iter()
        .filter(|e| e.action_id.as_deref() == Some(&id))
        .filter(|e| {
            matches!(
                e.event,
                Some(EventKind::ActionSucceeded)
                    | Some(EventKind::ActionFailed)
                    | Some(EventKind::ActionReconciled)
            )
        })
        .count();
    assert_eq!(closing, 1, "{}", h.logs());

    h.stop().await;
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "audit verify: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_cooldown_replicas_are_adopted_and_the_rule_stays_quiet() {
    let control = ControlExporter::start(&[("control_load", 5.0)]).await;
    let rules = r#"
groups:
  - name: scale
    interval: 1s
    rules:
      - name: scale-out
        queries: { load: control_load }
        when: load > 10
        for: 1s
        cooldown: 1m
        action: { kind: scale_out, target: web, step: 1 }
"#;
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: process_target("19300-19319", 1, 3, 1, &[]),
        extra_jobs_yaml: WEB_JOB.into(),
        rules_yaml: rules.into(),
    });
    h.start().await;
    control.set("control_load", 50.0);
    let ok = h
        .wait_event("scale-out succeeded", |e| {
            e.event == Some(EventKind::ActionSucceeded) && e.rule.as_deref() == Some("scale-out")
        })
        .await;
    let id = ok.action_id.clone().unwrap();
    let two = h
        .wait_for("two replicas", PATIENCE, |h| {
            let l = h.live_replicas("web");
            (l.len() == 2 && h.discovery("web").len() == 2).then_some(l)
        })
        .await;
    let agent_pid = h.pid();
    h.kill9();
    assert!(!is_alive(agent_pid));
    // Replicas outlive the agent by design.
    assert_eq!(h.live_replicas("web"), two);

    h.start().await;
    let restart = last_start_seq(&h.events());
    h.wait_event("cooldown suppression after restart", |e| {
        e.seq > restart
            && e.event == Some(EventKind::Suppressed)
            && e.rule.as_deref() == Some("scale-out")
            && e.cause.as_deref() == Some("cooldown")
    })
    .await;
    settle().await;
    let events = h.events();
    assert_eq!(started_ids(&events, "scale-out"), vec![id], "{}", h.logs());
    assert!(
        events
            .iter()
            .all(|e| e.event != Some(EventKind::ActionReconciled)),
        "nothing was open: {}",
        h.logs()
    );
    // Adopted: the same two processes, recorded and in traffic; nothing else runs.
    assert_eq!(h.live_replicas("web"), two, "{}", h.logs());
    assert_eq!(h.recorded_replicas("web"), two);
    assert_eq!(ports_of(&h.discovery("web")), two.keys().copied().collect());
    let targets = h.get_json("/api/v1/targets").await;
    assert_eq!(
        targets["data"]["providers"]["web"]["replicas"], 2,
        "{targets}"
    );
    // The rules API knows the rule acted before the crash and is still cooling down.
    let rules = h.get_json("/api/v1/rules").await;
    let rule = &rules["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["name"], "scale-out", "{rules}");
    assert!(rule["last_action_at"].is_string(), "{rule}");
    assert!(rule["next_action_not_before"].is_string(), "{rule}");

    h.stop().await;
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "audit verify: {out}");
}

/// Start an agent whose target `web` has no replica (min 0) and whose replicas
/// take `delay` to listen; raise the load; kill -9 the agent once the scale-out
/// 0 → 1 is in flight and its replica is spawned and recorded. Returns the
/// harness (agent stopped), the action id and the new replica's (port, pid).
async fn kill_during_scale_out(
    ports: &str,
    delay: &str,
    control: &ControlExporter,
) -> (Harness, String, (u16, u32)) {
    let rules = r#"
groups:
  - name: scale
    interval: 1s
    rules:
      - name: scale-out
        queries: { load: control_load }
        when: load > 10
        for: 1s
        cooldown: 1m
        action: { kind: scale_out, target: web, step: 1 }
"#;
    let target = process_target(ports, 0, 3, 0, &["--startup-delay", delay])
        .replace("startup_timeout: 15s", "startup_timeout: 60s");
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: target,
        extra_jobs_yaml: String::new(),
        rules_yaml: rules.into(),
    });
    h.start().await;
    assert!(h.live_replicas("web").is_empty());

    control.set("control_load", 50.0);
    let started = h
        .wait_event("scale-out started", |e| {
            e.event == Some(EventKind::ActionStarted) && e.rule.as_deref() == Some("scale-out")
        })
        .await;
    let id = started.action_id.clone().unwrap();
    // The new replica is spawned and recorded, but not listening yet.
    let (port, pid) = h
        .wait_for("the new replica recorded", PATIENCE, |h| {
            h.recorded_replicas("web").into_iter().next()
        })
        .await;
    h.kill9();
    let events = h.events();
    assert!(
        position(&events, EventKind::ActionSucceeded, &id).is_none(),
        "killed too late: the scale-out already finished\n{}",
        h.logs()
    );
    // After the restart nothing may act: only reconciliation changes the target.
    control.set("control_load", 5.0);
    (h, id, (port, pid))
}

/// After restart: the action is reconciled as `want`; what runs is what is
/// recorded and in the discovery file, and stays so; nothing else started.
async fn check_reconciled(h: &mut Harness, id: &str, want: &str) {
    let rec = h
        .wait_event("action_reconciled", |e| {
            e.event == Some(EventKind::ActionReconciled) && e.action_id.as_deref() == Some(id)
        })
        .await;
    assert_eq!(reconciled_result(&rec), want, "{}", h.logs());
    let live = h.live_replicas("web");
    assert_eq!(h.recorded_replicas("web"), live, "{}", h.logs());
    assert_eq!(
        ports_of(&h.discovery("web")),
        live.keys().copied().collect()
    );
    settle().await;
    assert_eq!(h.live_replicas("web"), live, "{}", h.logs());
    assert_eq!(started_ids(&h.events(), "scale-out"), vec![id.to_string()]);
    h.stop().await;
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "audit verify: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_scale_out_whose_replica_had_not_come_up_the_restart_completes_it() {
    let control = ControlExporter::start(&[("control_load", 5.0)]).await;
    // 12 s to listen: still starting when the restarted agent looks at it.
    let (mut h, id, (port, pid)) = kill_during_scale_out("19320-19329", "12s", &control).await;
    assert!(is_alive(pid), "the replica outlives the agent");
    h.start().await;
    // The half-started replica is not adopted (not healthy): it is stopped, not
    // orphaned; the target is brought to the count the scale-out recorded
    // (1), so the action is reconciled as applied and its cooldown holds.
    check_reconciled(&mut h, &id, "applied").await;
    assert!(!is_alive(pid), "replica on {port} left running");
    let live = h.live_replicas("web");
    assert_eq!(live.len(), 1, "{}", h.logs());
    assert!(live.values().all(|p| *p != pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_scale_out_whose_replica_came_up_it_is_applied() {
    let control = ControlExporter::start(&[("control_load", 5.0)]).await;
    // 2 s to listen: healthy by the time the agent restarts.
    let (mut h, id, (port, pid)) = kill_during_scale_out("19330-19339", "2s", &control).await;
    let deadline = Deadline::after(PATIENCE);
    loop {
        let ok = http()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(!deadline.passed(), "replica never healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.start().await;
    check_reconciled(&mut h, &id, "applied").await;
    // Adopted: the same process, one replica.
    assert_eq!(h.live_replicas("web"), [(port, pid)].into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_a_circuit_is_open_the_circuit_survives_and_later_closes() {
    let control = ControlExporter::start(&[]).await;
    let rules = r#"
groups:
  - name: errors
    interval: 1s
    rules:
      - name: replica-errors
        queries:
          ratio: >-
            sum by (instance)(rate(http_requests_total{job="web", code=~"5.."}[5s]))
            / sum by (instance)(rate(http_requests_total{job="web"}[5s]))
        when: ratio > 0.5
        for: 2s
        action:
          kind: circuit_break
          target: web
          instance: "{{ labels.instance }}"
          open_for: 8s
"#;
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: process_target("19340-19359", 1, 3, 2, &[]),
        extra_jobs_yaml: WEB_JOB.into(),
        rules_yaml: rules.into(),
    });
    h.start().await;
    let live = h
        .wait_for("two replicas in traffic", PATIENCE, |h| {
            let l = h.live_replicas("web");
            (l.len() == 2 && h.discovery("web").len() == 2).then_some(l)
        })
        .await;
    let victim_port = *live.keys().next().unwrap();
    let victim = format!("127.0.0.1:{victim_port}");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let url = format!("http://{victim}/");
        tokio::spawn(async move {
            let c = http();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = c.get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let fail = |rate: f64| {
        let url = format!("http://{victim}/admin/fail?rate={rate}");
        async move {
            assert!(http().post(url).send().await.unwrap().status().is_success());
        }
    };
    let is_change = |e: &AuditEvent, from: &str, to: &str| {
        e.event == Some(EventKind::CircuitChanged)
            && e.instance.as_deref() == Some(victim.as_str())
            && e.before.as_ref().and_then(|v| v.as_str()) == Some(from)
            && e.after.as_ref().and_then(|v| v.as_str()) == Some(to)
    };
    fail(1.0).await;
    h.wait_event("closed → open", |e| is_change(e, "closed", "open"))
        .await;
    h.kill9();
    assert!(!h.discovery("web").contains(&victim));
    // The replica recovers while no agent runs.
    fail(0.0).await;

    h.start().await;
    let restart = last_start_seq(&h.events());
    // Out of traffic until the rebuilt circuit half-opens (the provider call
    // that puts it back is announced by an action_started first).
    let deadline = Deadline::after(Duration::from_secs(90));
    loop {
        let disc = h.discovery("web");
        let events = h.events();
        let announced = events.iter().any(|e| {
            e.seq > restart
                && e.event == Some(EventKind::ActionStarted)
                && e.instance.as_deref() == Some(victim.as_str())
        });
        assert!(
            !disc.contains(&victim) || announced,
            "victim back in traffic without a circuit transition\n{}",
            h.logs()
        );
        if events
            .iter()
            .any(|e| e.seq > restart && is_change(e, "half_open", "closed"))
        {
            break;
        }
        assert!(
            !deadline.passed(),
            "circuit never closed after restart\n{}",
            h.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = h.events();
    let after: Vec<&AuditEvent> = events.iter().filter(|e| e.seq > restart).collect();
    // Rebuilt as open: it goes open → half_open → closed, never re-opened from closed.
    let half = after
        .iter()
        .position(|e| is_change(e, "open", "half_open"))
        .unwrap_or_else(|| panic!("no open → half_open after restart\n{}", h.logs()));
    let closed = after
        .iter()
        .position(|e| is_change(e, "half_open", "closed"))
        .unwrap();
    assert!(half < closed);
    assert!(
        !after.iter().any(|e| is_change(e, "closed", "open")),
        "{}",
        h.logs()
    );
    h.wait_for("victim back in the discovery file", PATIENCE, |h| {
        h.discovery("web").contains(&victim).then_some(())
    })
    .await;
    // Same processes throughout: the circuit never restarts a replica.
    assert_eq!(h.live_replicas("web"), live);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = traffic.await;
    h.stop().await;
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "audit verify: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_survives_a_crash() {
    let control = ControlExporter::start(&[("control_load", 5.0)]).await;
    let rules = r#"
groups:
  - name: scale
    interval: 1s
    rules:
      - name: scale-out
        queries: { load: control_load }
        when: load > 10
        for: 1s
        cooldown: 1h
        action: { kind: scale_out, target: web, step: 1 }
"#;
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: process_target("19360-19379", 1, 3, 1, &[]),
        extra_jobs_yaml: String::new(),
        rules_yaml: rules.into(),
    });
    h.start().await;
    let (status, body) = h.post("/api/v1/pause").await;
    assert_eq!(status, 200, "{body}");
    h.kill9();

    h.start().await;
    let restart = last_start_seq(&h.events());
    assert_eq!(h.get_json("/api/v1/rules").await["data"]["paused"], true);
    control.set("control_load", 50.0);
    h.wait_event("suppressed as paused after restart", |e| {
        e.seq > restart
            && e.event == Some(EventKind::Suppressed)
            && e.rule.as_deref() == Some("scale-out")
            && e.cause.as_deref() == Some("paused")
    })
    .await;
    settle().await;
    assert!(
        started_ids(&h.events(), "scale-out").is_empty(),
        "{}",
        h.logs()
    );
    assert_eq!(h.live_replicas("web").len(), 1);

    let (status, body) = h.post("/api/v1/resume").await;
    assert_eq!(status, 200, "{body}");
    h.wait_event("scale-out succeeded after resume", |e| {
        e.event == Some(EventKind::ActionSucceeded) && e.rule.as_deref() == Some("scale-out")
    })
    .await;
    h.wait_for("two replicas", PATIENCE, |h| {
        (h.live_replicas("web").len() == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_scale_in_every_running_replica_ends_up_in_traffic_or_stopped() {
    let control = ControlExporter::start(&[("control_load", 5.0)]).await;
    let rules = r#"
groups:
  - name: scale
    interval: 1s
    rules:
      - name: scale-in
        queries: { load: control_load }
        when: load < 1
        for: 1s
        cooldown: 1m
        action: { kind: scale_in, target: web, step: 1 }
"#;
    // Replicas ignore SIGTERM: the retiring one lingers for stop_timeout (8 s)
    // after leaving the discovery file, and the agent is killed in that window.
    let target = process_target("19380-19399", 1, 3, 2, &["--ignore-sigterm"])
        .replace("stop_timeout: 3s", "stop_timeout: 8s");
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: target,
        extra_jobs_yaml: String::new(),
        rules_yaml: rules.into(),
    });
    h.start().await;
    let two = h
        .wait_for("two replicas in traffic", PATIENCE, |h| {
            let l = h.live_replicas("web");
            (l.len() == 2 && h.discovery("web").len() == 2).then_some(l)
        })
        .await;
    control.set("control_load", 0.0);
    let started = h
        .wait_event("scale-in started", |e| {
            e.event == Some(EventKind::ActionStarted) && e.rule.as_deref() == Some("scale-in")
        })
        .await;
    let id = started.action_id.clone().unwrap();
    let (victim_port, victim_pid) = h
        .wait_for("the victim out of the discovery file", PATIENCE, |h| {
            let disc = ports_of(&h.discovery("web"));
            (disc.len() == 1)
                .then(|| two.iter().find(|(p, _)| !disc.contains(p)))
                .flatten()
                .map(|(p, pid)| (*p, *pid))
        })
        .await;
    h.kill9();
    assert!(
        is_alive(victim_pid),
        "the victim must still run when the agent dies"
    );
    assert!(position(&h.events(), EventKind::ActionSucceeded, &id).is_none());
    control.set("control_load", 5.0);

    h.start().await;
    let rec = h
        .wait_event("action_reconciled", |e| {
            e.event == Some(EventKind::ActionReconciled) && e.action_id.as_deref() == Some(&id)
        })
        .await;
    let result = reconciled_result(&rec);
    let live = h.live_replicas("web");
    // Whatever the outcome, no replica runs without serving: the recorded set,
    // the running set and the discovery file agree.
    assert_eq!(h.recorded_replicas("web"), live, "{}", h.logs());
    assert_eq!(
        ports_of(&h.discovery("web")),
        live.keys().copied().collect(),
        "a running replica is out of traffic with no circuit open\n{}",
        h.logs()
    );
    match result.as_str() {
        "applied" => {
            assert_eq!(live.len(), 1, "{}", h.logs());
            assert!(!live.contains_key(&victim_port));
        }
        "not_applied" => assert_eq!(live, two, "{}", h.logs()),
        other => panic!("reconciled as {other}\n{}", h.logs()),
    }
    eprintln!("in-flight scale-in reconciled as {result}");
    h.stop().await;
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "audit verify: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_replica_count_a_scale_in_left() {
    let control = ControlExporter::start(&[("control_load", 0.0)]).await;
    let rules = r#"
groups:
  - name: scale
    interval: 1s
    rules:
      - name: scale-in
        queries: { load: control_load }
        when: load < 1
        for: 1s
        cooldown: 1h
        action: { kind: scale_in, target: web, step: 1 }
"#;
    // Starts with 2 (initial_replicas), may go down to 1 (min).
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: process_target("19420-19439", 1, 3, 2, &[]),
        extra_jobs_yaml: String::new(),
        rules_yaml: rules.into(),
    });
    h.start().await;
    h.wait_event("scale-in succeeded", |e| {
        e.event == Some(EventKind::ActionSucceeded) && e.rule.as_deref() == Some("scale-in")
    })
    .await;
    let one = h
        .wait_for("one replica", PATIENCE, |h| {
            let l = h.live_replicas("web");
            (l.len() == 1).then_some(l)
        })
        .await;
    control.set("control_load", 5.0);
    let status = h.stop().await;
    assert!(status.success());

    // A restart is not an action: it must not grow the target back to 2.
    h.start().await;
    settle().await;
    assert_eq!(h.live_replicas("web"), one, "{}", h.logs());
    assert_eq!(h.recorded_replicas("web"), one);
    assert_eq!(ports_of(&h.discovery("web")), one.keys().copied().collect());
    assert_eq!(started_ids(&h.events(), "scale-in").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_redeploy_before_any_new_replica_served_the_old_ones_keep_serving() {
    let control = ControlExporter::start(&[("control_deploy", 0.0)]).await;
    // The new version's replicas take 30 s to listen.
    let rules = format!(
        r#"
groups:
  - name: deploy
    interval: 1s
    rules:
      - name: deploy-v2
        queries: {{ deploy: control_deploy }}
        when: deploy > 0
        for: 1s
        cooldown: 10m
        action:
          kind: redeploy
          target: web
          version: v2
          command: ["{EXE}", "demo-service", "--port", "{{{{port}}}}", "--version", "{{{{version}}}}", "--startup-delay", "30s"]
"#
    );
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: process_target("19440-19459", 1, 3, 2, &[])
            .replace("startup_timeout: 15s", "startup_timeout: 60s"),
        extra_jobs_yaml: String::new(),
        rules_yaml: rules,
    });
    h.start().await;
    let before = h.live_replicas("web");
    assert_eq!(before.len(), 2);
    let disc_before = h.discovery("web");
    control.set("control_deploy", 1.0);
    let started = h
        .wait_event("redeploy started", |e| {
            e.event == Some(EventKind::ActionStarted) && e.rule.as_deref() == Some("deploy-v2")
        })
        .await;
    let id = started.action_id.clone().unwrap();
    let (new_port, new_pid) = h
        .wait_for("the first new replica recorded", PATIENCE, |h| {
            h.recorded_replicas("web")
                .into_iter()
                .find(|(p, _)| !before.contains_key(p))
        })
        .await;
    h.kill9();
    control.set("control_deploy", 0.0);

    h.start().await;
    let rec = h
        .wait_event("action_reconciled", |e| {
            e.event == Some(EventKind::ActionReconciled) && e.action_id.as_deref() == Some(&id)
        })
        .await;
    assert_eq!(reconciled_result(&rec), "not_applied", "{}", h.logs());
    // The half-started v2 replica is gone; the v1 replicas serve as before.
    assert!(!is_alive(new_pid), "v2 replica on {new_port} left running");
    assert_eq!(h.live_replicas("web"), before, "{}", h.logs());
    assert_eq!(h.recorded_replicas("web"), before);
    assert_eq!(h.discovery("web"), disc_before);
    settle().await;
    assert_eq!(started_ids(&h.events(), "deploy-v2"), vec![id]);
    h.stop().await;
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "audit verify: {out}");
}
