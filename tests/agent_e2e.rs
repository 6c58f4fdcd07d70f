//! The real agent binary (`homeostat run`) against real demo-service replicas.
//!
//! Each test writes its own config and rules into a temporary directory, uses
//! its own replica port range, and drives conditions through gauges served by
//! a control exporter in the test process (never CPU load). Everything is
//! observed through the agent's real surfaces: audit log files, HTTP API,
//! discovery file, and the replica processes in /proc.
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use homeostat::audit::{AuditEvent, EventKind};

const SCALE_RULES: &str = r#"
groups:
  - name: scale
    interval: 1s
    rules:
      - name: scale-out
        queries: { load: control_load }
        when: load > 10
        for: 2s
        cooldown: 1s
        action: { kind: scale_out, target: web, step: 1 }
      - name: scale-in
        queries: { load: control_load }
        when: load < 1
        for: 2s
        cooldown: 1s
        action: { kind: scale_in, target: web, step: 1 }
"#;

async fn harness(ports: &str, initial: u32, rules: &str, control: &ControlExporter) -> Harness {
    harness_with(ports, initial, rules, control, |t| t).await
}

async fn harness_with(
    ports: &str,
    initial: u32,
    rules: &str,
    control: &ControlExporter,
    edit_target: impl FnOnce(String) -> String,
) -> Harness {
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: edit_target(process_target(ports, 1, 3, initial, &[])),
        extra_jobs_yaml: WEB_JOB.into(),
        rules_yaml: rules.into(),
    });
    h.start().await;
    h
}

fn of_rule<'a>(events: &'a [AuditEvent], kind: EventKind, rule: &str) -> Vec<&'a AuditEvent> {
    events
        .iter()
        .filter(|e| e.event == Some(kind) && e.rule.as_deref() == Some(rule))
        .collect()
}

fn circuit_changed(e: &AuditEvent, instance: &str, from: &str, to: &str) -> bool {
    e.event == Some(EventKind::CircuitChanged)
        && e.instance.as_deref() == Some(instance)
        && e.before.as_ref().and_then(|v| v.as_str()) == Some(from)
        && e.after.as_ref().and_then(|v| v.as_str()) == Some(to)
}

const CIRCUIT_RULES: &str = r#"
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
          open_for: 3s
"#;

/// Requests to one replica every 50 ms until stopped.
struct Traffic {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(addr: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let url = format!("http://{addr}/");
        let task = tokio::spawn(async move {
            let c = http();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = c.get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.task.await;
    }
}

async fn set_fail(addr: &str, rate: f64) {
    let r = http()
        .post(format!("http://{addr}/admin/fail?rate={rate}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

async fn healthz(port: u16) -> Option<u16> {
    http()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn version_of(port: u16) -> String {
    let text = http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_a_real_target_out_and_in() {
    let control = ControlExporter::start(&[("control_load", 5.0)]).await;
    let h = harness("19100-19119", 1, SCALE_RULES, &control).await;
    let first = h
        .wait_for("one replica", PATIENCE, |h| {
            let live = h.live_replicas("web");
            (live.len() == 1 && h.discovery("web").len() == 1).then_some(live)
        })
        .await;

    control.set("control_load", 50.0);
    // Out to max (3): two scale-outs, then the bounds stop it.
    let grown = h
        .wait_for(
            "3 live replicas, all in the discovery file",
            PATIENCE,
            |h| {
                let live = h.live_replicas("web");
                let disc = ports_of(&h.discovery("web"));
                (live.len() == 3 && disc == live.keys().copied().collect::<BTreeSet<_>>())
                    .then_some(live)
            },
        )
        .await;
    for (port, pid) in &first {
        assert_eq!(grown.get(port), Some(pid), "the first replica kept running");
    }
    for port in grown.keys() {
        assert_eq!(healthz(*port).await, Some(200), "replica on {port} serves");
    }
    let events = h.settled_events().await;
    let outs = started_ids(&events, "scale-out");
    assert!(outs.len() >= 2, "two scale-outs:\n{}", h.logs());
    for id in &outs {
        assert_decided_started_succeeded(&events, id);
    }
    // Never beyond max: once at 3, further firing is suppressed by the bounds.
    h.wait_event("scale-out suppressed by bounds", |e| {
        e.event == Some(EventKind::Suppressed)
            && e.rule.as_deref() == Some("scale-out")
            && e.cause.as_deref() == Some("bounds")
    })
    .await;
    assert_eq!(
        started_ids(&h.events(), "scale-out").len(),
        2,
        "{}",
        h.logs()
    );

    control.set("control_load", 0.0);
    let shrunk = h
        .wait_for("back to 1 replica", PATIENCE, |h| {
            let live = h.live_replicas("web");
            let disc = ports_of(&h.discovery("web"));
            (live.len() == 1 && disc == live.keys().copied().collect::<BTreeSet<_>>())
                .then_some(live)
        })
        .await;
    // Scale-in removes the newest replicas: the first one remains.
    assert_eq!(shrunk, first);
    for (port, pid) in &grown {
        if !shrunk.contains_key(port) {
            assert!(!is_alive(*pid), "retired replica {pid} on {port} is gone");
        }
    }
    let events = h.settled_events().await;
    let ins = started_ids(&events, "scale-in");
    assert_eq!(ins.len(), 2, "{}", h.logs());
    for id in &ins {
        assert_decided_started_succeeded(&events, id);
    }
    // The recorded state agrees with reality.
    assert_eq!(h.recorded_replicas("web"), shrunk);
    // The HTTP audit API tells the same story as the files.
    let api = h
        .get_json("/api/v1/audit?rule=scale-in&event=action_succeeded")
        .await;
    let mut api_ids: Vec<String> = api["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{api}"))
        .iter()
        .map(|e| {
            assert_eq!(e["event"], "action_succeeded", "{api}");
            assert_eq!(e["rule"], "scale-in", "{api}");
            e["action_id"].as_str().unwrap().to_string()
        })
        .collect();
    api_ids.sort();
    let mut ins = ins;
    ins.sort();
    assert_eq!(api_ids, ins);
    let targets = h.get_json("/api/v1/targets").await;
    assert_eq!(
        targets["data"]["providers"]["web"]["replicas"], 1,
        "{targets}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_replaced_on_its_port() {
    let control = ControlExporter::start(&[]).await;
    let rules = r#"
groups:
  - name: health
    interval: 1s
    rules:
      - name: replica-down
        queries: { up: 'up{job="web"}' }
        when: up == 0
        for: 2s
        cooldown: 5s
        action:
          kind: failover
          target: web
          instance: "{{ labels.instance }}"
"#;
    let h = harness("19120-19139", 2, rules, &control).await;
    let before = h
        .wait_for("two replicas", PATIENCE, |h| {
            let live = h.live_replicas("web");
            (live.len() == 2).then_some(live)
        })
        .await;
    let (&port, &old_pid) = before.iter().next().unwrap();
    let (&other_port, &other_pid) = before.iter().nth(1).unwrap();
    signal(old_pid, nix::sys::signal::Signal::SIGKILL);

    let ok = h
        .wait_event("failover succeeded", |e| {
            e.event == Some(EventKind::ActionSucceeded) && e.rule.as_deref() == Some("replica-down")
        })
        .await;
    assert_eq!(
        ok.instance.as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    let id = ok.action_id.clone().unwrap();
    assert_decided_started_succeeded(&h.events(), &id);

    let new_pid = h
        .wait_for(
            "a new process on the killed replica's port",
            PATIENCE,
            |h| {
                h.live_replicas("web")
                    .get(&port)
                    .copied()
                    .filter(|p| *p != old_pid)
            },
        )
        .await;
    assert!(!is_alive(old_pid));
    assert_eq!(
        healthz(port).await,
        Some(200),
        "the replacement serves on {port}"
    );
    assert!(h.discovery("web").contains(&format!("127.0.0.1:{port}")));
    // The healthy replica was not touched, and only the dead one was replaced.
    assert_eq!(h.live_replicas("web").get(&other_port), Some(&other_pid));
    assert_eq!(h.recorded_replicas("web").get(&port), Some(&new_pid));
    let failovers = of_rule(&h.events(), EventKind::ActionStarted, "replica-down")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert!(
        failovers
            .iter()
            .all(|e| e.instance.as_deref() == Some(format!("127.0.0.1:{port}").as_str())),
        "{}",
        h.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_replica_is_taken_out_of_traffic_and_put_back() {
    let control = ControlExporter::start(&[]).await;
    let h = harness("19140-19159", 2, CIRCUIT_RULES, &control).await;
    let live = h
        .wait_for("two replicas in traffic", PATIENCE, |h| {
            let live = h.live_replicas("web");
            (live.len() == 2 && h.discovery("web").len() == 2).then_some(live)
        })
        .await;
    let victim_port = *live.keys().next().unwrap();
    let victim = format!("127.0.0.1:{victim_port}");

    // Traffic to the victim for the whole test.
    let traffic = Traffic::start(&victim);
    set_fail(&victim, 1.0).await;
    h.wait_for("victim out of the discovery file", PATIENCE, |h| {
        let d = h.discovery("web");
        (d.len() == 1 && !d.contains(&victim)).then_some(())
    })
    .await;
    let opened = h
        .wait_event("closed → open", |e| {
            circuit_changed(e, &victim, "closed", "open")
        })
        .await;
    // The victim process is still running: out of traffic, not killed.
    assert_eq!(
        h.live_replicas("web").get(&victim_port),
        live.get(&victim_port)
    );

    set_fail(&victim, 0.0).await;
    let closed = h
        .wait_for("half_open → closed", Duration::from_secs(120), |h| {
            h.events()
                .into_iter()
                .find(|e| circuit_changed(e, &victim, "half_open", "closed"))
        })
        .await;
    h.wait_for("victim back in the discovery file", PATIENCE, |h| {
        let d = h.discovery("web");
        (d.len() == 2 && d.contains(&victim)).then_some(())
    })
    .await;
    traffic.stop().await;

    let events = h.settled_events().await;
    let half = events
        .iter()
        .position(|e| circuit_changed(e, &victim, "open", "half_open"))
        .unwrap_or_else(|| panic!("no open → half_open\n{}", h.logs()));
    let open_at = events.iter().position(|e| e.seq == opened.seq).unwrap();
    let closed_at = events.iter().position(|e| e.seq == closed.seq).unwrap();
    assert!(open_at < half && half < closed_at, "{}", h.logs());
    // Same replica process throughout.
    assert_eq!(
        h.live_replicas("web").get(&victim_port),
        live.get(&victim_port)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_still_failing_when_half_open_reopens_for_twice_as_long() {
    let control = ControlExporter::start(&[]).await;
    let h = harness("19260-19279", 2, CIRCUIT_RULES, &control).await;
    let live = h
        .wait_for("two replicas in traffic", PATIENCE, |h| {
            let live = h.live_replicas("web");
            (live.len() == 2 && h.discovery("web").len() == 2).then_some(live)
        })
        .await;
    let victim_port = *live.keys().next().unwrap();
    let victim = format!("127.0.0.1:{victim_port}");
    let traffic = Traffic::start(&victim);
    set_fail(&victim, 1.0).await;

    // It keeps failing: open (3s) → half-open → open again for 6s.
    let opened = h
        .wait_event("closed → open", |e| {
            circuit_changed(e, &victim, "closed", "open")
        })
        .await;
    let reopened = h
        .wait_event("half_open → open", |e| {
            circuit_changed(e, &victim, "half_open", "open")
        })
        .await;
    let open_for = |e: &AuditEvent| e.detail.as_ref().unwrap()["open_for_ms"].as_u64().unwrap();
    assert_eq!(open_for(&opened), 3000, "{}", h.logs());
    assert_eq!(open_for(&reopened), 6000, "{}", h.logs());
    assert!(h
        .events()
        .iter()
        .any(|e| circuit_changed(e, &victim, "open", "half_open")
            && e.seq > opened.seq
            && e.seq < reopened.seq));
    // Never closed while it kept failing.
    assert!(
        !h.events()
            .iter()
            .any(|e| circuit_changed(e, &victim, "half_open", "closed")),
        "{}",
        h.logs()
    );
    h.wait_for("victim out of the discovery file again", PATIENCE, |h| {
        (!h.discovery("web").contains(&victim)).then_some(())
    })
    .await;

    // Recovered: the next trial closes it.
    set_fail(&victim, 0.0).await;
    h.wait_for("half_open → closed", Duration::from_secs(120), |h| {
        h.events()
            .into_iter()
            .find(|e| circuit_changed(e, &victim, "half_open", "closed"))
    })
    .await;
    h.wait_for("victim back in the discovery file", PATIENCE, |h| {
        h.discovery("web").contains(&victim).then_some(())
    })
    .await;
    traffic.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_to_a_failing_version_rolls_back() {
    let control = ControlExporter::start(&[("control_deploy", 0.0)]).await;
    let rules = r#"
groups:
  - name: deploy
    interval: 1s
    rules:
      - name: deploy-v2
        queries: { deploy: control_deploy }
        when: deploy > 0
        for: 1s
        cooldown: 10m
        action: { kind: redeploy, target: web, version: v2-bad }
"#;
    let h = harness_with("19160-19179", 2, rules, &control, |t| {
        t.replace("startup_timeout: 15s", "startup_timeout: 5s")
    })
    .await;
    let before = h
        .wait_for("two replicas in traffic", PATIENCE, |h| {
            let live = h.live_replicas("web");
            (live.len() == 2 && h.discovery("web").len() == 2).then_some(live)
        })
        .await;
    let disc_before = h.discovery("web");

    control.set("control_deploy", 1.0);
    let failed = h
        .wait_for("the redeploy's outcome", Duration::from_secs(90), |h| {
            h.events().into_iter().find(|e| {
                matches!(
                    e.event,
                    Some(EventKind::ActionFailed) | Some(EventKind::ActionSucceeded)
                ) && e.rule.as_deref() == Some("deploy-v2")
            })
        })
        .await;
    assert_eq!(failed.event, Some(EventKind::ActionFailed), "{}", h.logs());
    assert_eq!(failed.cause.as_deref(), Some("rolled_back"), "{}", h.logs());
    let id = failed.action_id.clone().unwrap();
    let events = h.events();
    let s = position(&events, EventKind::ActionStarted, &id).unwrap();
    let f = position(&events, EventKind::ActionFailed, &id).unwrap();
    assert!(position(&events, EventKind::Decision, &id).unwrap() < s && s < f);

    // The old replicas kept serving: same processes, same discovery, still v1.
    assert_eq!(h.live_replicas("web"), before, "{}", h.logs());
    assert_eq!(h.discovery("web"), disc_before);
    for port in before.keys() {
        assert_eq!(healthz(*port).await, Some(200));
        assert_eq!(version_of(*port).await, "v1");
    }
    // No second attempt while the cooldown runs.
    control.set("control_deploy", 1.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        started_ids(&h.events(), "deploy-v2").len(),
        1,
        "{}",
        h.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_to_a_good_version_replaces_every_replica_one_at_a_time() {
    let control = ControlExporter::start(&[("control_deploy", 0.0)]).await;
    let rules = r#"
groups:
  - name: deploy
    interval: 1s
    rules:
      - name: deploy-v2
        queries: { deploy: control_deploy }
        when: deploy > 0
        for: 1s
        cooldown: 10m
        action: { kind: redeploy, target: web, version: v2 }
"#;
    let h = harness("19280-19299", 2, rules, &control).await;
    let before = h
        .wait_for("two replicas in traffic", PATIENCE, |h| {
            let live = h.live_replicas("web");
            (live.len() == 2 && h.discovery("web").len() == 2).then_some(live)
        })
        .await;
    // Watch the discovery file during the rollout: never empty.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let path = h.data_dir.join("targets/web.json");
        let done = done.clone();
        tokio::spawn(async move {
            let mut smallest = usize::MAX;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(b) = std::fs::read(&path) {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                        let n = v[0]["targets"].as_array().map_or(0, |a| a.len());
                        smallest = smallest.min(n);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            smallest
        })
    };
    control.set("control_deploy", 1.0);
    let ok = h
        .wait_for("the redeploy's outcome", Duration::from_secs(90), |h| {
            h.events().into_iter().find(|e| {
                matches!(
                    e.event,
                    Some(EventKind::ActionFailed) | Some(EventKind::ActionSucceeded)
                ) && e.rule.as_deref() == Some("deploy-v2")
            })
        })
        .await;
    assert_eq!(ok.event, Some(EventKind::ActionSucceeded), "{}", h.logs());
    assert_decided_started_succeeded(&h.events(), ok.action_id.as_deref().unwrap());
    let after = h
        .wait_for("two replicas in traffic", PATIENCE, |h| {
            let live = h.live_replicas("web");
            (live.len() == 2 && ports_of(&h.discovery("web")) == live.keys().copied().collect())
                .then_some(live)
        })
        .await;
    for pid in before.values() {
        assert!(!is_alive(*pid), "old replica {pid} still runs");
    }
    for port in after.keys() {
        assert_eq!(version_of(*port).await, "v2");
        assert_eq!(healthz(*port).await, Some(200));
    }
    assert_eq!(h.recorded_replicas("web"), after);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let smallest = watcher.await.unwrap();
    assert!(
        smallest >= 1,
        "the discovery file was empty during the rollout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_rule_records_what_it_would_do_and_changes_nothing() {
    let control = ControlExporter::start(&[("control_load", 50.0)]).await;
    let rules = r#"
groups:
  - name: dry
    interval: 1s
    rules:
      - name: scale-out-dry
        queries: { load: control_load }
        when: load > 10
        for: 1s
        mode: dry_run
        action: { kind: scale_out, target: web, step: 1 }
"#;
    let h = harness("19180-19199", 1, rules, &control).await;
    let before = h
        .wait_for("one replica", PATIENCE, |h| {
            let l = h.live_replicas("web");
            (l.len() == 1).then_some(l)
        })
        .await;
    let sup = h
        .wait_event("dry_run suppression", |e| {
            e.event == Some(EventKind::Suppressed) && e.rule.as_deref() == Some("scale-out-dry")
        })
        .await;
    assert_eq!(sup.cause.as_deref(), Some("dry_run"), "{}", h.logs());
    // It says what it would have done: 1 → 2 replicas.
    let would = &sup.detail.as_ref().unwrap()["would"];
    assert_eq!(
        would["op"]["to"],
        2,
        "{}",
        serde_json::to_string(&sup.detail).unwrap()
    );
    // Keep the condition true for a few more evaluations.
    settle().await;
    let events = h.events();
    assert!(
        of_rule(&events, EventKind::ActionStarted, "scale-out-dry").is_empty(),
        "{}",
        h.logs()
    );
    assert_eq!(h.live_replicas("web"), before);
    assert_eq!(h.discovery("web").len(), 1);
}

/// Give the agent several group intervals to do what it must not do (the
/// condition stays true meanwhile). Not a timing assertion: nothing may
/// happen however long this is.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_suppresses_and_resume_lets_the_rule_act() {
    let control = ControlExporter::start(&[("control_load", 5.0)]).await;
    let rules = SCALE_RULES.replace("cooldown: 1s", "cooldown: 1h");
    let h = harness("19200-19219", 1, &rules, &control).await;
    h.wait_for("one replica", PATIENCE, |h| {
        (h.live_replicas("web").len() == 1).then_some(())
    })
    .await;

    let (status, body) = h.post("/api/v1/pause").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.get_json("/api/v1/rules").await["data"]["paused"], true);
    h.wait_event("paused event", |e| e.event == Some(EventKind::Paused))
        .await;

    control.set("control_load", 50.0);
    let sup = h
        .wait_event("scale-out suppressed", |e| {
            e.event == Some(EventKind::Suppressed) && e.rule.as_deref() == Some("scale-out")
        })
        .await;
    assert_eq!(sup.cause.as_deref(), Some("paused"), "{}", h.logs());
    settle().await;
    assert!(
        started_ids(&h.events(), "scale-out").is_empty(),
        "{}",
        h.logs()
    );
    assert_eq!(h.live_replicas("web").len(), 1);

    let (status, body) = h.post("/api/v1/resume").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.get_json("/api/v1/rules").await["data"]["paused"], false);
    let ok = h
        .wait_event("scale-out succeeded after resume", |e| {
            e.event == Some(EventKind::ActionSucceeded) && e.rule.as_deref() == Some("scale-out")
        })
        .await;
    assert_decided_started_succeeded(&h.events(), ok.action_id.as_deref().unwrap());
    h.wait_for("two replicas", PATIENCE, |h| {
        (h.live_replicas("web").len() == 2 && h.discovery("web").len() == 2).then_some(())
    })
    .await;
    let events = h.settled_events().await;
    let resumed = events
        .iter()
        .position(|e| e.event == Some(EventKind::Resumed))
        .unwrap();
    let started = events
        .iter()
        .position(|e| e.event == Some(EventKind::ActionStarted))
        .unwrap();
    assert!(resumed < started, "nothing started before resume");
}

fn rule_names(rules: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

const QUIET_RULES: &str = r#"
groups:
  - name: quiet
    interval: 1s
    rules:
      - name: never-fires
        queries: { load: control_load }
        when: load > 1000
        action: { kind: scale_out, target: web, step: 1 }
"#;

const BROKEN_RULES: &str = r#"
groups:
  - name: quiet
    interval: 1s
    rules:
      - name: never-fires
        queries: { load: control_load }
        when: lod > 1000
        action: { kind: scale_out, target: web, step: 1 }
"#;

fn with_extra_rule(name: &str) -> String {
    format!(
        "{QUIET_RULES}      - name: {name}\n        queries: {{ load: control_load }}\n        when: load > 2000\n        action: {{ kind: scale_in, target: web, step: 1 }}\n"
    )
}

fn reloads(h: &Harness) -> Vec<AuditEvent> {
    h.events_of(EventKind::RulesReloaded, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_a_broken_rule_file_and_accepts_a_valid_one() {
    let control = ControlExporter::start(&[("control_load", 5.0)]).await;
    let mut h = harness("19220-19239", 1, QUIET_RULES, &control).await;
    let original = h.get_json("/api/v1/rules").await;
    assert_eq!(rule_names(&original), ["never-fires"]);

    // HTTP: broken → refused, old rules keep running.
    std::fs::write(&h.rules_file, BROKEN_RULES).unwrap();
    let (status, body) = h.post("/-/reload").await;
    assert!(
        !(200..300).contains(&status),
        "broken reload accepted: {status} {body}"
    );
    assert!(body.contains("lod"), "the error names the problem: {body}");
    assert_eq!(
        rule_names(&h.get_json("/api/v1/rules").await),
        ["never-fires"]
    );
    let r = reloads(&h);
    assert_eq!(r.len(), 1, "{}", h.logs());
    assert!(
        r[0].error.as_deref().unwrap_or("").contains("lod"),
        "{}",
        h.logs()
    );
    assert_eq!(r[0].actor.as_deref(), Some("api"));

    // HTTP: valid change → accepted.
    std::fs::write(&h.rules_file, with_extra_rule("added-by-api")).unwrap();
    let (status, body) = h.post("/-/reload").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        rule_names(&h.get_json("/api/v1/rules").await),
        ["added-by-api", "never-fires"]
    );
    let r = reloads(&h);
    assert_eq!(r.len(), 2);
    assert!(r[1].error.is_none(), "{}", h.logs());

    // SIGHUP: broken → refused.
    std::fs::write(&h.rules_file, BROKEN_RULES).unwrap();
    signal(h.pid(), nix::sys::signal::Signal::SIGHUP);
    let r = h
        .wait_for("third rules_reloaded", PATIENCE, |h| {
            let r = reloads(h);
            (r.len() == 3).then_some(r)
        })
        .await;
    assert_eq!(r[2].actor.as_deref(), Some("sighup"));
    assert!(
        r[2].error.as_deref().unwrap_or("").contains("lod"),
        "{}",
        h.logs()
    );
    assert_eq!(
        rule_names(&h.get_json("/api/v1/rules").await),
        ["added-by-api", "never-fires"]
    );

    // SIGHUP: valid → accepted.
    std::fs::write(&h.rules_file, with_extra_rule("added-by-sighup")).unwrap();
    signal(h.pid(), nix::sys::signal::Signal::SIGHUP);
    let r = h
        .wait_for("fourth rules_reloaded", PATIENCE, |h| {
            let r = reloads(h);
            (r.len() == 4).then_some(r)
        })
        .await;
    assert!(r[3].error.is_none(), "{}", h.logs());
    assert_eq!(
        rule_names(&h.get_json("/api/v1/rules").await),
        ["added-by-sighup", "never-fires"]
    );
    let (status, body) = h.post("/-/reload").await;
    assert_eq!(status, 200, "{body}");
    assert!(h.running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_api_returns_the_scraped_up_series_in_prometheus_format() {
    let control = ControlExporter::start(&[("control_load", 5.0)]).await;
    let h = harness("19240-19259", 1, QUIET_RULES, &control).await;
    let replica = h
        .wait_for("one replica", PATIENCE, |h| {
            h.live_replicas("web").keys().next().copied()
        })
        .await;
    let want: BTreeSet<(String, String)> = [
        ("control".to_string(), control.addr.to_string()),
        ("web".to_string(), format!("127.0.0.1:{replica}")),
    ]
    .into();
    let deadline = Deadline::after(PATIENCE);
    let body = loop {
        let body = h.get_json("/api/v1/query?query=up").await;
        let got: BTreeSet<(String, String)> = body["data"]["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        (
                            s["metric"]["job"].as_str().unwrap_or("").to_string(),
                            s["metric"]["instance"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if got == want {
            break body;
        }
        assert!(!deadline.passed(), "up series: {body}\n{}", h.logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "vector");
    for s in body["data"]["result"].as_array().unwrap() {
        assert_eq!(s["metric"]["__name__"], "up", "{body}");
        let value = s["value"].as_array().unwrap();
        assert_eq!(value.len(), 2);
        assert!(value[0].is_number(), "timestamp is a number: {body}");
        assert_eq!(value[1], "1", "value is a string \"1\": {body}");
    }
    // A bad query gets Prometheus's error envelope.
    let r = http()
        .get(h.url("/api/v1/query?query=sum("))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["status"], "error");
    assert_eq!(e["errorType"], "bad_data");
}
