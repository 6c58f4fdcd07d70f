//! The agent protects itself (issue 9, DESIGN.md §12), tried on the real
//! binary the way an attacker or bad luck would: deep and huge queries,
//! absurd times, a query that would run for minutes on 10,000 series,
//! cross-site requests, idle and half-sent connections at a low descriptor
//! limit, and secrets an upstream echoes back. Each test failed against the
//! binary before the fix (the agent aborted, froze, acted, or leaked).
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use homeostat::audit::EventKind;

/// Percent-encode everything but unreserved characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A client that opens a new connection for every request.
fn fresh_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// `(status, JSON body)` of `GET /api/v1/query?query=q[&time=t]`.
async fn query(h: &Harness, q: &str, time: Option<&str>) -> (u16, serde_json::Value) {
    let mut url = h.url(&format!("/api/v1/query?query={}", enc(q)));
    if let Some(t) = time {
        url.push_str(&format!("&time={}", enc(t)));
    }
    let r = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("query {:.60}: {e}\n{}", q, h.logs()));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn assert_healthy(h: &Harness) {
    let r = http().get(h.url("/-/healthy")).send().await;
    assert!(
        r.as_ref().is_ok_and(|r| r.status().is_success()),
        "agent not healthy: {r:?}\n{}",
        h.logs()
    );
}

/// A harness with the control exporter, `extra` appended to the config, and
/// these rules (a webhook target `notify` with its secret exists).
async fn agent_with(extra_jobs: &str, extra: &str, rules: &str) -> (Harness, ControlExporter) {
    let control = ControlExporter::start(&[("control", 0.0)]).await;
    let h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: "  notify:\n    provider: webhook\n    min: 0\n    max: 100\n    cooldown_up: 0s\n    cooldown_down: 0s\n    webhook: { url: \"http://127.0.0.1:9/hook\", secret_file: \"{ROOT}/hook.secret\" }\n".into(),
        extra_jobs_yaml: extra_jobs.into(),
        rules_yaml: rules.into(),
    });
    std::fs::write(h.root.join("hook.secret"), "hook-secret-value\n").unwrap();
    if !extra.is_empty() {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&h.config)
            .unwrap();
        f.write_all(extra.as_bytes()).unwrap();
    }
    (h, control)
}

const NO_RULES: &str = "groups: []\n";

// ---------------------------------------------------------------- item 1

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_and_huge_queries_are_refused_before_parsing() {
    let (mut h, _control) = agent_with("", "", NO_RULES).await;
    h.start().await;
    let deep = [
        format!("{}1{}", "(".repeat(2000), ")".repeat(2000)),
        format!("{}x{}", "sum(".repeat(2000), ")".repeat(2000)),
        format!("{}x{}", "abs(".repeat(1500), ")".repeat(1500)),
        format!("{}1", "-".repeat(3000)),
        vec!["x"; 3000].join("+"),
    ];
    for q in &deep {
        let (status, v) = query(&h, q, None).await;
        assert_eq!(status, 400, "{:.40}: {v}", q);
        assert_eq!(v["errorType"], "bad_data");
        let msg = v["error"].as_str().unwrap_or("");
        assert!(msg.contains("nests too deeply"), "{msg}");
        assert!(msg.contains("128"), "the message names the limit: {msg}");
        assert_healthy(&h).await;
    }
    // Longer than 64 KiB (as a form POST, past any URL limit).
    let long = vec!["up"; 20_000].join(" or ");
    let r = http()
        .post(h.url("/api/v1/query"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("query={}", enc(&long)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap_or("").contains("65536"), "{v}");
    // A query of ordinary depth still answers.
    let (status, v) = query(&h, "sum(abs(((up))))", None).await;
    assert_eq!(status, 200, "{v}");
    assert!(h.running(), "{}", h.logs());
}

#[tokio::test]
async fn a_deep_rule_query_or_condition_is_a_positioned_error() {
    let control = ControlExporter::start(&[]).await;
    let deep = format!("{}control{}", "(".repeat(2000), ")".repeat(2000));
    let deep_when = format!("{}q > 0{}", "(".repeat(2000), ")".repeat(2000));
    let rules = format!(
        "groups:\n  - name: g\n    rules:\n      - name: deep-query\n        queries:\n          q: \"{deep}\"\n        when: q > 0\n        action: {{ kind: scale_out, target: notify }}\n      - name: deep-when\n        queries:\n          q: control\n        when: \"{deep_when}\"\n        action: {{ kind: scale_out, target: notify }}\n"
    );
    let h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: "  notify:\n    provider: webhook\n    min: 0\n    max: 100\n    webhook: { url: \"http://127.0.0.1:9/hook\", secret_file: \"{ROOT}/hook.secret\" }\n".into(),
        extra_jobs_yaml: String::new(),
        rules_yaml: rules,
    });
    std::fs::write(h.root.join("hook.secret"), "s\n").unwrap();
    let out = std::process::Command::new(EXE)
        .arg("check")
        .arg("-c")
        .arg(&h.config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let file = h.rules_file.display().to_string();
    // file:line:column of the query and of the condition, each saying why.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("nests too deeply"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{file}:6:")) && l.contains("deep-query")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{file}:12:")) && l.contains("deep-when")),
        "{text}"
    );
}

// ---------------------------------------------------------------- item 2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_times_are_400_and_the_agent_serves_on() {
    let (mut h, _control) = agent_with("", "", NO_RULES).await;
    h.start().await;
    for t in [
        "-1e18",
        "1e18",
        "NaN",
        "Inf",
        "-Inf",
        "1e400",
        "253402300800",
        "-62135596801",
        "99999999999999999999999",
        "10000-01-01T00:00:00Z",
    ] {
        let (status, v) = query(&h, "up", Some(t)).await;
        assert_eq!(status, 400, "time={t}: {v}");
        assert_eq!(v["errorType"], "bad_data", "time={t}");
        let msg = v["error"].as_str().unwrap_or("");
        assert!(msg.contains("\"time\""), "time={t}: {msg}");
        assert!(!msg.contains("panicked"), "{msg}");
    }
    for since in ["-1e18", "NaN", "100000000000000h", "9223372036854775807ms"] {
        let r = http()
            .get(h.url(&format!("/api/v1/audit?since={}", enc(since))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "since={since}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap_or("").contains("since"), "{v}");
    }
    // Edges of the accepted range still evaluate.
    for t in ["-62135596800", "253402300799.999", "0", "-1.5"] {
        let (status, v) = query(&h, "up", Some(t)).await;
        assert_eq!(status, 200, "time={t}: {v}");
    }
    assert_healthy(&h).await;
    assert!(h.running());
}

// ---------------------------------------------------------------- item 3

/// An exporter of `c{i="0"}` … `c{i="n-1"}`, all 1.
async fn many_series_exporter(n: usize) -> SocketAddr {
    use axum::routing::get;
    let mut body = String::with_capacity(n * 16);
    body.push_str("# TYPE c gauge\n");
    for i in 0..n {
        body.push_str(&format!("c{{i=\"{i}\"}} 1\n"));
    }
    let body = Arc::new(body);
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let b = body.clone();
            async move { (*b).clone() }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

/// `GET /-/healthy` on a new connection every 100 ms until stopped; counts
/// answers within the client's (generous) timeout and failures.
struct HealthPoller {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthPoller {
    fn start(url: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let client = fresh_client(Duration::from_secs(5));
            while !s.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => f.lock().unwrap().push(r.status().to_string()),
                    Err(e) => f.lock().unwrap().push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self {
            stop,
            ok,
            failed,
            task,
        }
    }

    /// (answered, failures)
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.lock().unwrap().clone(),
        )
    }
}

/// `homeostat_rule_evaluations_total` of group `g`, from `/metrics`.
async fn rule_evaluations(h: &Harness) -> f64 {
    let text = http()
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("homeostat_rule_evaluations_total{") && l.contains("group=\"g\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_huge_query_is_stopped_and_never_starves_health_or_rules() {
    let exporter = many_series_exporter(10_000).await;
    let jobs = format!("    - name: many\n      static_targets: [\"{exporter}\"]\n");
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - name: never\n        queries: { q: control }\n        when: q > 100\n        action: { kind: scale_out, target: notify }\n";
    let extra = "query:\n  timeout: 8s\n  max_concurrency: 1\n  max_samples: 15000\n";
    let (mut h, _control) = agent_with(&jobs, extra, rules).await;
    h.start().await;
    wait_for_series(&h).await;

    let heavy = "count(max_over_time(c[27h:1s]))";
    let poller = HealthPoller::start(h.url("/-/healthy"));
    let evals_before = rule_evaluations(&h).await;

    // Stopped by its deadline, with an error naming the limit.
    let r = fresh_client(Duration::from_secs(60))
        .get(h.url(&format!("/api/v1/query?query={}", enc(heavy))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["errorType"], "timeout", "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("query.timeout"),
        "{v}"
    );

    // A client that hangs up after 1 s stops its evaluation: the only query
    // slot is free again for the next query long before the 8 s deadline.
    let gone = fresh_client(Duration::from_secs(1))
        .get(h.url(&format!("/api/v1/query?query={}", enc(heavy))))
        .send()
        .await;
    assert!(
        gone.is_err(),
        "the heavy query should outlast 1 s: {gone:?}"
    );
    let r = fresh_client(Duration::from_secs(5))
        .get(h.url(&format!("/api/v1/query?query={}", enc("count(c)"))))
        .send()
        .await
        .unwrap_or_else(|e| panic!("the slot stayed taken after the client left: {e}"));
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "10000", "{v}");

    // Too many samples held at once: refused, naming the limit.
    let (status, v) = query(&h, "sum(count_over_time(c[10m]))", None).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .contains("query.max_samples: 15000"),
        "{v}"
    );

    let evals_after = rule_evaluations(&h).await;
    let (ok, failed) = poller.finish().await;
    assert!(
        failed.is_empty(),
        "health polls failed: {failed:?}\n{}",
        h.logs()
    );
    assert!(ok >= 20, "only {ok} health polls answered");
    eprintln!(
        "health: {ok} of {ok} polls answered; rule evaluations {evals_before} -> {evals_after}"
    );
    assert!(
        evals_after >= evals_before + 5.0,
        "rule evaluation stalled: {evals_before} -> {evals_after}"
    );
}

/// Wait until the store holds the 10,000 series, scraped at least twice.
async fn wait_for_series(h: &Harness) {
    let deadline = Deadline::after(PATIENCE);
    loop {
        let (s1, v1) = query(h, "count(c)", None).await;
        let (s2, v2) = query(h, "count_over_time(c{i=\"0\"}[1m])", None).await;
        let n = v1["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("0")
            .to_string();
        let scrapes: f64 = v2["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0.0);
        if s1 == 200 && s2 == 200 && n == "10000" && scrapes >= 2.0 {
            return;
        }
        assert!(
            !deadline.passed(),
            "series not scraped: {v1} {v2}\n{}",
            h.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// ---------------------------------------------------------------- item 8

/// A webhook receiver counting deliveries.
async fn hook_receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    use axum::routing::post;
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let n = n2.clone();
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (addr, n)
}

const FIRING: &str = include_str!("fixtures/alertmanager/firing.json");

const TRIGGER_RULES: &str = "groups:\n  - name: alerts\n    interval: 1s\n    rules:\n      - name: on-alert\n        trigger:\n          alert: HighErrorRate\n        action: { kind: scale_out, target: notify }\n";

/// `(status, body)` of a POST with these headers and body.
async fn post_with(h: &Harness, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut req = http().post(h.url(path)).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_cannot_act_or_pause() {
    let (hook, deliveries) = hook_receiver().await;
    let (mut h, _control) = agent_with("", "", TRIGGER_RULES).await;
    // Point the webhook target at the receiver.
    let cfg = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(
        &h.config,
        cfg.replace("127.0.0.1:9/hook", &format!("{hook}/hook")),
    )
    .unwrap();
    h.start().await;

    // What a web page on another site can send: a "simple" request.
    let (s, body) = post_with(
        &h,
        "/api/v1/alerts",
        &[
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
        ],
        FIRING,
    )
    .await;
    assert_eq!(s, 415, "{body}");
    let (s, body) = post_with(&h, "/api/v1/pause", &[], "").await;
    assert_eq!(s, 415, "an empty POST must not pause: {body}");
    let (s, body) = post_with(
        &h,
        "/api/v1/pause",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "https://evil.example"),
        ],
        "actor=evil",
    )
    .await;
    assert_eq!(s, 415, "{body}");
    // JSON with a foreign Origin or a cross-site fetch: refused too.
    let (s, body) = post_with(
        &h,
        "/api/v1/pause",
        &[
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ],
        "{}",
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = post_with(
        &h,
        "/api/v1/alerts",
        &[
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        FIRING,
    )
    .await;
    assert_eq!(s, 403, "{body}");
    // A page whose name was rebound to 127.0.0.1 sends its own Host.
    let (s, body) = post_with(
        &h,
        "/api/v1/pause",
        &[
            ("content-type", "application/json"),
            ("host", "evil.example"),
        ],
        "{}",
    )
    .await;
    assert_eq!(s, 403, "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(deliveries.load(Ordering::SeqCst), 0);
    assert!(
        h.events_of(EventKind::Decision, None).is_empty(),
        "{}",
        h.logs()
    );
    assert!(
        h.events_of(EventKind::Paused, None).is_empty(),
        "{}",
        h.logs()
    );

    // Alertmanager's webhook (JSON, no Origin) still acts; a local JSON
    // pause still pauses.
    let (s, body) = post_with(
        &h,
        "/api/v1/alerts",
        &[("content-type", "application/json")],
        FIRING,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    h.wait_for("a delivery from the alert", PATIENCE, |_| {
        (deliveries.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    let (s, body) = post_with(
        &h,
        "/api/v1/pause",
        &[("content-type", "application/json")],
        r#"{"actor": "alice"}"#,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let paused = h.events_of(EventKind::Paused, None);
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].actor.as_deref(), Some("api:alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let (mut h, _control) = agent_with("", "api:\n  token_file: api.token\n", NO_RULES).await;
    std::fs::write(h.root.join("api.token"), "tok-123456\n").unwrap();
    h.start().await;
    for (auth, want) in [
        ("bearer tok-123456", 200),
        ("BEARER tok-123456", 200),
        ("Bearer tok-123456", 200),
        ("bearer wrong", 401),
        ("Basic tok-123456", 401),
    ] {
        let (s, body) = post_with(&h, "/api/v1/resume", &[("authorization", auth)], "").await;
        assert_eq!(s, want, "{auth}: {body}");
    }
}

// ---------------------------------------------------------------- item 9

/// True once the peer closed `s` (EOF or reset); false while it stays open.
fn closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    let mut r = s;
    match r.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false, // an answer; not closed yet
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            false
        }
        Err(_) => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_half_sent_connections_are_closed_and_health_answers_at_the_cap() {
    let extra = "http:\n  header_read_timeout: 2s\n  idle_timeout: 4s\n";
    let (mut h, _control) = agent_with("", extra, NO_RULES).await;
    // 256 descriptors: a cap of 128 connections, 128 kept for the rest.
    h.start_with_open_files_limit(256).await;
    let addr = h.listen;

    // 300 idle connections (more than the cap) and 50 half-sent request heads.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let half: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();

    // Health checks and scrapes go on while the cap is reached.
    let poller = HealthPoller::start(h.url("/-/healthy"));
    let scrape_time = || async {
        let (_, v) = query(&h, "timestamp(up{job=\"control\"})", None).await;
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let first = scrape_time().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = scrape_time().await;
    let (ok, failed) = poller.finish().await;
    assert!(
        failed.is_empty(),
        "health polls failed at the cap: {failed:?}\n{}",
        h.logs()
    );
    assert!(ok >= 10, "only {ok} health polls");
    eprintln!("health at the connection cap: {ok} of {ok} polls answered");
    assert!(
        later > first && first > 0.0,
        "scrapes stalled: {first} -> {later}"
    );

    // Every idle and half-sent connection is closed by the agent.
    for s in idle.iter().chain(half.iter()) {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    }
    let deadline = Deadline::after(PATIENCE);
    loop {
        let open_idle = idle.iter().filter(|s| !closed(s)).count();
        let open_half = half.iter().filter(|s| !closed(s)).count();
        if open_idle == 0 && open_half == 0 {
            break;
        }
        assert!(
            !deadline.passed(),
            "{open_idle} idle and {open_half} half-sent connections still open\n{}",
            h.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A keep-alive connection is closed once idle after its answer.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Deadline::after(PATIENCE);
    while !closed(&s) {
        assert!(
            !deadline.passed(),
            "an idle keep-alive connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_healthy(&h).await;
}

// ---------------------------------------------------------------- item 7

/// A "Prometheus" that fails every query with a body echoing the request's
/// headers, as some proxies do, padded so the echo is cut off at the end.
async fn echoing_upstream() -> SocketAddr {
    use axum::http::HeaderMap;
    use axum::routing::any;
    let app = axum::Router::new().fallback(any(|headers: HeaderMap| async move {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        // The first echo is whole; the second straddles the 512-byte cut.
        let mut body = format!("upstream error: request had Authorization: {auth} and more; ");
        while body.len() < 512 - 14 {
            body.push('.');
        }
        body.push_str(&format!("{{\"authorization\": \"{auth}\"}}"));
        (axum::http::StatusCode::BAD_GATEWAY, body)
    }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_show_in_the_rules_api() {
    let upstream = echoing_upstream().await;
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - name: remote\n        queries:\n          q: { source: prom, expr: 'up' }\n        when: q > 0\n        action: { kind: scale_out, target: notify }\n      - name: redeploy\n        queries: { q: control }\n        when: q > 100\n        action:\n          kind: redeploy\n          target: notify\n          version: v2\n          env:\n            SMTP_PASS: smtp-SECRET-1\n            PRIVATE_KEY_PEM: pem-SECRET-2\n            DB_PASSWORD: db-SECRET-3\n            LOG_LEVEL: debug\n";
    let extra = format!(
        "sources:\n  prom:\n    url: \"http://{upstream}\"\n    bearer_token_file: prom.token\n"
    );
    let (mut h, _control) = agent_with("", &extra, rules).await;
    std::fs::write(h.root.join("prom.token"), "src-SECRET-0123456789abcdef\n").unwrap();
    h.start().await;
    // Wait until the remote failure, with the echoed body, is in the rule's status.
    let body = h
        .wait_for(
            "the remote query's failure in /api/v1/rules",
            PATIENCE,
            |h| {
                let url = h.url("/api/v1/rules");
                let text = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async { http().get(url).send().await.ok()?.text().await.ok() })
                })
                .join()
                .unwrap()?;
                text.contains("upstream error").then_some(text)
            },
        )
        .await;
    for secret in [
        "SECRET",
        "src-SECRET-0123456789abcdef",
        "smtp-SECRET-1",
        "pem-SECRET-2",
        "db-SECRET-3",
        "src-SEC",
    ] {
        assert!(!body.contains(secret), "{secret} shown: {body}");
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let env = &v["data"]["groups"][0]["rules"][1]["action"]["env"];
    assert_eq!(env["SMTP_PASS"], "***", "{env}");
    assert_eq!(env["PRIVATE_KEY_PEM"], "***", "{env}");
    assert_eq!(
        env["LOG_LEVEL"], "debug",
        "what is not secret stays readable: {env}"
    );
}

/// The systemd unit gives the agent enough descriptors for the default
/// connection cap plus as many again for scrapes and the audit log.
#[test]
fn the_systemd_unit_raises_the_descriptor_limit_for_the_default_cap() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/homeostat.service"),
    )
    .unwrap();
    let limit: u64 = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE in [Service]")
        .parse()
        .unwrap();
    let cap = homeostat::server::conn::connection_cap(
        homeostat::server::conn::DEFAULT_MAX_CONNECTIONS,
        Some(limit),
    );
    assert_eq!(cap, homeostat::server::conn::DEFAULT_MAX_CONNECTIONS);
    assert!(limit as usize >= 2 * cap);
}
