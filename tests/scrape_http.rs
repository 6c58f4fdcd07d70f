//! The scraper against real local HTTP servers (axum on 127.0.0.1:0), and the
//! agent's own HTTP server on a real socket.
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use homeostat::clock::Clock;
use homeostat::model::{Labels, TimestampMs};
use homeostat::scrape::{
    Health, JobConfig, PushedTargets, ScrapeManager, ScrapeTarget, TargetSource, TargetStatus,
    ACCEPT_HEADER,
};
use homeostat::store::{is_stale_nan, Matcher, SharedStore, Store};
use homeostat::telemetry::Metrics;

const T0: TimestampMs = 1_700_000_000_000;

/// What one fake exporter serves; tests change it between scrapes.
#[derive(Clone)]
struct Exposed {
    body: String,
    content_type: &'static str,
    gzip: bool,
    delay: Duration,
    status: StatusCode,
    /// Requests that must all be in flight before any is answered (concurrency check).
    barrier: Option<Arc<tokio::sync::Barrier>>,
}

impl Exposed {
    fn text(body: &str) -> Self {
        Exposed {
            body: body.to_string(),
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            gzip: false,
            delay: Duration::ZERO,
            status: StatusCode::OK,
            barrier: None,
        }
    }
}

#[derive(Clone)]
struct Exporter {
    addr: String,
    exposed: Arc<Mutex<Exposed>>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    hits: Arc<AtomicUsize>,
}

impl Exporter {
    async fn start(exposed: Exposed) -> Exporter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let ex = Exporter {
            addr,
            exposed: Arc::new(Mutex::new(exposed)),
            seen: Arc::new(Mutex::new(Vec::new())),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let state = ex.clone();
        let app = Router::new().route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let st = state.clone();
                async move {
                    st.hits.fetch_add(1, Ordering::SeqCst);
                    st.seen.lock().expect("lock").push(headers.clone());
                    let e = st.exposed.lock().expect("lock").clone();
                    if let Some(b) = &e.barrier {
                        // Bounded wait: a sequential scraper leaves us alone here.
                        let _ = tokio::time::timeout(Duration::from_secs(3), b.wait()).await;
                    }
                    tokio::time::sleep(e.delay).await;
                    let accepts_gzip = headers
                        .get(header::ACCEPT_ENCODING)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains("gzip"));
                    if e.gzip && accepts_gzip {
                        let mut enc = flate2::write::GzEncoder::new(
                            Vec::new(),
                            flate2::Compression::default(),
                        );
                        enc.write_all(e.body.as_bytes()).expect("gzip");
                        let z = enc.finish().expect("gzip");
                        (
                            e.status,
                            [
                                (header::CONTENT_TYPE, e.content_type),
                                (header::CONTENT_ENCODING, "gzip"),
                            ],
                            z,
                        )
                            .into_response()
                    } else {
                        (
                            e.status,
                            [(header::CONTENT_TYPE, e.content_type)],
                            e.body.into_bytes(),
                        )
                            .into_response()
                    }
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ex
    }

    fn set(&self, f: impl FnOnce(&mut Exposed)) {
        f(&mut self.exposed.lock().expect("lock"));
    }
}

fn setup() -> (SharedStore, Clock) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    (Store::shared(), Clock::starting_at(T0))
}

fn job(name: &str, targets: TargetSource) -> JobConfig {
    let mut j = JobConfig::new(name, targets);
    j.interval = Duration::from_secs(10);
    j.timeout = Duration::from_secs(2);
    j
}

fn static_job(name: &str, addrs: &[&str]) -> JobConfig {
    job(
        name,
        TargetSource::Static(addrs.iter().map(|a| ScrapeTarget::new(*a)).collect()),
    )
}

/// All samples of the series with exactly these labels.
fn series(store: &SharedStore, labels: &[(&str, &str)]) -> Vec<(TimestampMs, f64)> {
    let want = Labels::new(labels.iter().copied());
    let s = store.read().expect("store");
    let matchers: Vec<Matcher> = want.iter().map(|(k, v)| Matcher::equal(k, v)).collect();
    s.select(&matchers, 0, i64::MAX)
        .into_iter()
        .find(|v| **v.labels == want)
        .map(|v| v.samples)
        .unwrap_or_default()
}

fn status(m: &ScrapeManager, instance: &str) -> TargetStatus {
    m.targets()
        .into_iter()
        .find(|t| t.instance == instance)
        .unwrap_or_else(|| panic!("no target {instance}"))
}

fn last_is_stale_at(samples: &[(TimestampMs, f64)], t: TimestampMs) -> bool {
    samples
        .last()
        .is_some_and(|&(ts, v)| ts == t && is_stale_nan(v))
}

const BODY: &str = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 1027\nhttp_requests_total{code=\"500\"} 3\n# TYPE temperature gauge\ntemperature 21.5\n";

#[tokio::test]
async fn plain_scrape_writes_samples_labels_and_report_series() {
    let (store, clock) = setup();
    let ex = Exporter::start(Exposed::text(BODY)).await;
    let m = ScrapeManager::new(store.clone(), clock, vec![static_job("demo", &[&ex.addr])])
        .expect("manager");
    m.scrape_once("demo").await.expect("scrape");

    let st = status(&m, &ex.addr);
    assert_eq!(st.health, Health::Up, "{}", st.last_error);
    let t = st.last_scrape_ms.expect("scraped");
    let inst = ex.addr.as_str();
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "http_requests_total"),
                ("code", "200"),
                ("job", "demo"),
                ("instance", inst)
            ]
        ),
        vec![(t, 1027.0)]
    );
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "temperature"),
                ("job", "demo"),
                ("instance", inst)
            ]
        ),
        vec![(t, 21.5)]
    );
    assert_eq!(
        series(
            &store,
            &[("__name__", "up"), ("job", "demo"), ("instance", inst)]
        ),
        vec![(t, 1.0)]
    );
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "scrape_samples_scraped"),
                ("job", "demo"),
                ("instance", inst)
            ]
        ),
        vec![(t, 3.0)]
    );
    let d = series(
        &store,
        &[
            ("__name__", "scrape_duration_seconds"),
            ("job", "demo"),
            ("instance", inst),
        ],
    );
    assert_eq!(d.len(), 1);
    assert!(d[0].1 >= 0.0 && d[0].1 < 2.0, "{d:?}");

    // Prometheus's request headers.
    let seen = ex.seen.lock().expect("lock");
    assert_eq!(seen[0]["accept"], ACCEPT_HEADER);
    assert!(seen[0]["accept"]
        .to_str()
        .unwrap_or("")
        .starts_with("application/openmetrics-text"));
    assert_eq!(seen[0]["x-prometheus-scrape-timeout-seconds"], "2");
    assert!(seen[0]["user-agent"]
        .to_str()
        .unwrap_or("")
        .starts_with("homeostat/"));
}

#[tokio::test]
async fn gzip_body_is_decompressed() {
    let (store, clock) = setup();
    let mut e = Exposed::text(BODY);
    e.gzip = true;
    let ex = Exporter::start(e).await;
    let m = ScrapeManager::new(store.clone(), clock, vec![static_job("demo", &[&ex.addr])])
        .expect("manager");
    m.scrape_once("demo").await.expect("scrape");
    let st = status(&m, &ex.addr);
    assert_eq!(st.health, Health::Up, "{}", st.last_error);
    assert!(ex.seen.lock().expect("lock")[0]["accept-encoding"]
        .to_str()
        .unwrap_or("")
        .contains("gzip"));
    let t = st.last_scrape_ms.expect("scraped");
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "temperature"),
                ("job", "demo"),
                ("instance", &ex.addr)
            ]
        ),
        vec![(t, 21.5)]
    );
}

#[tokio::test]
async fn openmetrics_content_type_selects_openmetrics() {
    let (store, clock) = setup();
    let mut e = Exposed::text(
        "# TYPE jobs counter\n# HELP jobs Jobs run.\njobs_total{kind=\"a\"} 5\n# TYPE build info\nbuild_info{version=\"1.2\"} 1\n# EOF\n",
    );
    e.content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let ex = Exporter::start(e).await;
    let m = ScrapeManager::new(store.clone(), clock, vec![static_job("om", &[&ex.addr])])
        .expect("manager");
    m.scrape_once("om").await.expect("scrape");
    let st = status(&m, &ex.addr);
    assert_eq!(st.health, Health::Up, "{}", st.last_error);
    let t = st.last_scrape_ms.expect("scraped");
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "jobs_total"),
                ("kind", "a"),
                ("job", "om"),
                ("instance", &ex.addr)
            ]
        ),
        vec![(t, 5.0)]
    );
}

#[tokio::test]
async fn timeout_means_down_and_stale_markers() {
    let (store, clock) = setup();
    let ex = Exporter::start(Exposed::text(BODY)).await;
    let mut j = static_job("demo", &[&ex.addr]);
    j.timeout = Duration::from_secs(1);
    let m = ScrapeManager::new(store.clone(), clock, vec![j]).expect("manager");
    m.scrape_once("demo").await.expect("scrape");
    let t1 = status(&m, &ex.addr).last_scrape_ms.expect("scraped");

    ex.set(|e| e.delay = Duration::from_secs(10));
    m.scrape_once("demo").await.expect("scrape");
    let st = status(&m, &ex.addr);
    let t2 = st.last_scrape_ms.expect("scraped");
    assert!(t2 > t1);
    assert_eq!(st.health, Health::Down);
    assert!(
        st.last_error.contains("deadline") || st.last_error.contains("timeout"),
        "{}",
        st.last_error
    );
    let up = series(
        &store,
        &[("__name__", "up"), ("job", "demo"), ("instance", &ex.addr)],
    );
    assert_eq!(up, vec![(t1, 1.0), (t2, 0.0)]);
    let temp = series(
        &store,
        &[
            ("__name__", "temperature"),
            ("job", "demo"),
            ("instance", &ex.addr),
        ],
    );
    assert_eq!(temp.len(), 2);
    assert!(last_is_stale_at(&temp, t2), "{temp:?}");
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "scrape_samples_scraped"),
                ("job", "demo"),
                ("instance", &ex.addr)
            ]
        ),
        vec![(t1, 3.0), (t2, 0.0)]
    );
}

#[tokio::test]
async fn body_over_limit_fails_the_scrape() {
    let (store, clock) = setup();
    let mut big = String::new();
    for i in 0..500 {
        big.push_str(&format!("padding_metric{{i=\"{i}\"}} {i}\n"));
    }
    let ex = Exporter::start(Exposed::text(&big)).await;
    let mut j = static_job("demo", &[&ex.addr]);
    j.body_size_limit = 1024;
    let m = ScrapeManager::new(store.clone(), clock, vec![j]).expect("manager");
    m.scrape_once("demo").await.expect("scrape");
    let st = status(&m, &ex.addr);
    assert_eq!(st.health, Health::Down);
    assert!(
        st.last_error.contains("body size limit"),
        "{}",
        st.last_error
    );
    let t = st.last_scrape_ms.expect("scraped");
    assert_eq!(
        series(
            &store,
            &[("__name__", "up"), ("job", "demo"), ("instance", &ex.addr)]
        ),
        vec![(t, 0.0)]
    );
    assert!(series(
        &store,
        &[
            ("__name__", "padding_metric"),
            ("i", "0"),
            ("job", "demo"),
            ("instance", &ex.addr)
        ]
    )
    .is_empty());

    // The same body compressed is still over the limit: the limit is on what we decode.
    ex.set(|e| e.gzip = true);
    m.scrape_once("demo").await.expect("scrape");
    assert_eq!(status(&m, &ex.addr).health, Health::Down);
}

#[tokio::test]
async fn http_error_and_connection_refused_are_down() {
    let (store, clock) = setup();
    let ex = Exporter::start(Exposed::text(BODY)).await;
    ex.set(|e| e.status = StatusCode::INTERNAL_SERVER_ERROR);
    // Bind and drop a listener to get a port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let m = ScrapeManager::new(
        store.clone(),
        clock,
        vec![static_job("demo", &[&ex.addr, &dead])],
    )
    .expect("manager");
    m.scrape_once("demo").await.expect("scrape");
    let st = status(&m, &ex.addr);
    assert_eq!(st.health, Health::Down);
    assert!(st.last_error.contains("500"), "{}", st.last_error);
    let st = status(&m, &dead);
    assert_eq!(st.health, Health::Down);
    assert!(
        st.last_error.contains("onnection refused"),
        "{}",
        st.last_error
    );
    for inst in [&ex.addr, &dead] {
        assert_eq!(
            series(
                &store,
                &[("__name__", "up"), ("job", "demo"), ("instance", inst)]
            )
            .len(),
            1
        );
    }
}

#[tokio::test]
async fn disappearing_series_gets_a_stale_marker() {
    let (store, clock) = setup();
    let ex = Exporter::start(Exposed::text(BODY)).await;
    let m = ScrapeManager::new(store.clone(), clock, vec![static_job("demo", &[&ex.addr])])
        .expect("manager");
    m.scrape_once("demo").await.expect("scrape");
    let t1 = status(&m, &ex.addr).last_scrape_ms.expect("scraped");
    ex.set(|e| e.body = "temperature 22\n".into());
    tokio::time::sleep(Duration::from_millis(5)).await;
    m.scrape_once("demo").await.expect("scrape");
    let t2 = status(&m, &ex.addr).last_scrape_ms.expect("scraped");
    let gone = series(
        &store,
        &[
            ("__name__", "http_requests_total"),
            ("code", "500"),
            ("job", "demo"),
            ("instance", &ex.addr),
        ],
    );
    assert_eq!(gone[0], (t1, 3.0));
    assert!(last_is_stale_at(&gone, t2), "{gone:?}");
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "temperature"),
                ("job", "demo"),
                ("instance", &ex.addr)
            ]
        ),
        vec![(t1, 21.5), (t2, 22.0)]
    );
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "scrape_samples_scraped"),
                ("job", "demo"),
                ("instance", &ex.addr)
            ]
        ),
        vec![(t1, 3.0), (t2, 1.0)]
    );
}

#[tokio::test]
async fn removed_target_gets_stale_markers_on_everything() {
    let (store, clock) = setup();
    let a = Exporter::start(Exposed::text(BODY)).await;
    let b = Exporter::start(Exposed::text(BODY)).await;
    let pushed = PushedTargets::new(vec![
        ScrapeTarget::new(a.addr.clone()).with_label("replica", "a"),
        ScrapeTarget::new(b.addr.clone()).with_label("replica", "b"),
    ]);
    let m = ScrapeManager::new(
        store.clone(),
        clock,
        vec![job(
            "demo",
            TargetSource::Discovered(Arc::new(pushed.clone())),
        )],
    )
    .expect("manager");
    m.scrape_once("demo").await.expect("scrape");
    assert_eq!(m.targets().len(), 2);
    let t1 = status(&m, &b.addr).last_scrape_ms.expect("scraped");
    // Discovery labels are on every series.
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "temperature"),
                ("job", "demo"),
                ("instance", &b.addr),
                ("replica", "b")
            ]
        ),
        vec![(t1, 21.5)]
    );

    pushed.set(vec![
        ScrapeTarget::new(a.addr.clone()).with_label("replica", "a")
    ]);
    tokio::time::sleep(Duration::from_millis(5)).await;
    m.scrape_once("demo").await.expect("scrape");
    let t2 = status(&m, &a.addr).last_scrape_ms.expect("scraped");
    assert_eq!(m.targets().len(), 1);
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        1,
        "a removed target is not scraped"
    );
    for name in [
        "temperature",
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
    ] {
        let s = series(
            &store,
            &[
                ("__name__", name),
                ("job", "demo"),
                ("instance", &b.addr),
                ("replica", "b"),
            ],
        );
        assert_eq!(s.len(), 2, "{name}: {s:?}");
        // Marked when discovery dropped it, no later than the surviving target's scrape.
        assert!(
            is_stale_nan(s[1].1) && s[1].0 > t1 && s[1].0 <= t2,
            "{name}: {s:?}"
        );
    }
    let a_up = series(
        &store,
        &[
            ("__name__", "up"),
            ("job", "demo"),
            ("instance", &a.addr),
            ("replica", "a"),
        ],
    );
    assert_eq!(a_up.last(), Some(&(t2, 1.0)));
}

#[tokio::test]
async fn targets_are_scraped_concurrently() {
    let (store, clock) = setup();
    // Each exporter answers only once both requests are in flight.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut e = Exposed::text(BODY);
    e.barrier = Some(barrier.clone());
    let a = Exporter::start(e.clone()).await;
    let b = Exporter::start(e).await;
    let mut j = static_job("demo", &[&a.addr, &b.addr]);
    j.timeout = Duration::from_millis(1500);
    let m = ScrapeManager::new(store.clone(), clock, vec![j]).expect("manager");
    m.scrape_once("demo").await.expect("scrape");
    for ex in [&a, &b] {
        let st = status(&m, &ex.addr);
        assert_eq!(st.health, Health::Up, "{}: {}", ex.addr, st.last_error);
    }
}

#[tokio::test]
async fn observer_gets_scrape_metrics() {
    let (store, clock) = setup();
    let ex = Exporter::start(Exposed::text(BODY)).await;
    let metrics = Arc::new(Metrics::new());
    let m = ScrapeManager::new(store, clock, vec![static_job("demo", &[&ex.addr])])
        .expect("manager")
        .with_observer(metrics.clone());
    m.scrape_once("demo").await.expect("scrape");
    ex.set(|e| e.status = StatusCode::SERVICE_UNAVAILABLE);
    m.scrape_once("demo").await.expect("scrape");
    let text = metrics.encode();
    assert!(
        text.contains("homeostat_scrape_samples_total{job=\"demo\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("homeostat_scrape_failures_total{job=\"demo\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("homeostat_scrape_duration_seconds_count{job=\"demo\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "homeostat_scrape_target_up{{job=\"demo\",instance=\"{}\"}} 0\n",
            ex.addr
        )),
        "{text}"
    );
}

#[tokio::test]
async fn targets_api_json_has_prometheus_fields() {
    let (store, clock) = setup();
    let ex = Exporter::start(Exposed::text(BODY)).await;
    let m =
        ScrapeManager::new(store, clock, vec![static_job("demo", &[&ex.addr])]).expect("manager");
    let before = homeostat::scrape::targets_api_json(&m.targets());
    assert_eq!(
        before["activeTargets"],
        serde_json::json!([]),
        "nothing before the first discovery"
    );
    m.scrape_once("demo").await.expect("scrape");
    let v = homeostat::scrape::targets_api_json(&m.targets());
    let t = &v["activeTargets"][0];
    assert_eq!(t["health"], "up");
    assert_eq!(t["scrapePool"], "demo");
    assert_eq!(t["labels"]["instance"], ex.addr.as_str());
    assert_eq!(t["labels"]["job"], "demo");
    assert_eq!(t["discoveredLabels"]["__address__"], ex.addr.as_str());
    assert_eq!(t["discoveredLabels"]["__metrics_path__"], "/metrics");
    assert_eq!(t["discoveredLabels"]["__scheme__"], "http");
    assert_eq!(t["scrapeUrl"], format!("http://{}/metrics", ex.addr));
    assert_eq!(t["lastError"], "");
    assert_eq!(t["lastSamples"], 3);
    assert_eq!(t["scrapeInterval"], "10s");
    assert!(
        t["lastScrape"]
            .as_str()
            .is_some_and(|s| s.starts_with("2023-11-14T22:13:")),
        "{t}"
    );
}

struct Agent {
    ready: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl homeostat::server::AgentControl for Agent {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    fn rules(&self) -> serde_json::Value {
        serde_json::json!({"groups": []})
    }
    fn targets(&self) -> serde_json::Value {
        homeostat::scrape::targets_api_json(&[])
    }
    async fn audit(&self, _f: homeostat::server::AuditFilter) -> Result<serde_json::Value, String> {
        Ok(serde_json::json!([]))
    }
    async fn reload(&self) -> Result<String, String> {
        Ok("reloaded".into())
    }
    async fn set_paused(&self, paused: bool, _actor: &str) -> Result<serde_json::Value, String> {
        Ok(serde_json::json!({ "paused": paused }))
    }
}

/// The agent's server on a real socket: readiness, auth, body limit, graceful
/// shutdown; and our own scraper ingesting our own /metrics (OpenMetrics).
#[tokio::test]
async fn agent_server_on_a_real_socket() {
    use homeostat::server::{router, serve, ServerConfig};
    let (store, clock) = setup();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let agent = Arc::new(Agent {
        ready: std::sync::atomic::AtomicBool::new(false),
    });
    let metrics = Arc::new(Metrics::new());
    let cfg = ServerConfig::new(addr).with_token("t0ken");
    let app = router(&cfg, agent.clone(), store.clone(), metrics.clone(), clock).expect("router");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async move {
        let _ = rx.await;
    }));

    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");
    assert_eq!(
        http.get(url("/-/ready"))
            .send()
            .await
            .expect("get")
            .status(),
        503
    );
    agent.ready.store(true, Ordering::SeqCst);
    assert_eq!(
        http.get(url("/-/ready"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    assert_eq!(
        http.post(url("/-/reload"))
            .send()
            .await
            .expect("post")
            .status(),
        401
    );
    let r = http
        .post(url("/-/reload"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let r = http
        .post(url("/-/reload"))
        .bearer_auth("t0ken")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let r = http
        .post(url("/api/v1/query"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    let r = http
        .get(url("/api/v1/query?query=sum("))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["errorType"], "bad_data");

    // Dogfood: scrape our own /metrics with our own scraper.
    let m = ScrapeManager::new(
        store.clone(),
        clock,
        vec![static_job("homeostat", &[&addr.to_string()])],
    )
    .expect("manager");
    m.scrape_once("homeostat").await.expect("scrape");
    let st = status(&m, &addr.to_string());
    assert_eq!(st.health, Health::Up, "{}", st.last_error);
    let t = st.last_scrape_ms.expect("scraped");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        series(
            &store,
            &[
                ("__name__", "homeostat_build_info"),
                ("version", version),
                ("job", "homeostat"),
                ("instance", &addr.to_string())
            ]
        ),
        vec![(t, 1.0)]
    );

    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful shutdown finishes")
        .expect("join")
        .expect("serve ok");
    assert!(
        http.get(url("/-/healthy")).send().await.is_err(),
        "listener closed after shutdown"
    );
}
