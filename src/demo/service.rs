//! The demo HTTP service (`homeostat demo-service`): the thing the demo scales.
//!
//! Owns: a small axum server whose work endpoint has a latency that really rises
//! with load (a fixed pool of "workers"; requests queue for one), a failure rate
//! that can be changed at run time, a health endpoint that a "bad" version fails,
//! and hand-rendered Prometheus text metrics about all of it. Must not know about
//! the agent: it is an ordinary service the agent observes from outside.
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::Rng;
use serde::Deserialize;
use tokio::sync::Semaphore;

/// Upper bounds of the latency histogram buckets, in seconds (`+Inf` is implied).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Command-line arguments of `homeostat demo-service`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoServiceArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Version reported in `demo_build_info`; a version containing "bad" fails health.
    /// (A container image sets it through the environment.)
    #[arg(long, default_value = "v1", env = "HOMEOSTAT_DEMO_VERSION")]
    pub version: String,
    /// Concurrent requests served at once; further requests queue (so latency grows with load).
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Time each request holds a worker.
    #[arg(long, default_value = "20ms", value_parser = crate::spec::parse_duration)]
    pub base_latency: Duration,
    /// Uniform jitter added to or subtracted from `base_latency`.
    #[arg(long, default_value = "5ms", value_parser = crate::spec::parse_duration)]
    pub jitter: Duration,
    /// Share of work requests answered with 500 (0..=1); changeable via `POST /admin/fail?rate=`.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// `--healthy=false` makes `/healthz` answer 503 from the start.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub healthy: bool,
    /// Ignore SIGTERM (only SIGINT or SIGKILL stop it): exercises a supervisor's SIGKILL escalation.
    #[arg(long)]
    pub ignore_sigterm: bool,
    /// Wait this long before listening (health fails meanwhile): a slow-starting service.
    #[arg(long, default_value = "0s", value_parser = crate::spec::parse_duration)]
    pub startup_delay: Duration,
}

impl DemoServiceArgs {
    /// Defaults for a given port (tests and the demo driver).
    pub fn for_port(port: u16) -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port,
            version: "v1".into(),
            workers: 4,
            base_latency: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            fail_rate: 0.0,
            healthy: true,
            ignore_sigterm: false,
            startup_delay: Duration::ZERO,
        }
    }
}

/// Why the demo service could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("invalid argument: {0}")]
    InvalidArgs(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Run until SIGTERM or SIGINT, then finish in-flight requests and return.
pub async fn run(args: DemoServiceArgs) -> Result<(), DemoError> {
    let addr = SocketAddr::new(args.host, args.port);
    let app = router(Arc::new(ServiceState::new(&args)?));
    if !args.startup_delay.is_zero() {
        // Stop signals still end the process while it "starts".
        tokio::select! {
            _ = tokio::time::sleep(args.startup_delay) => {}
            _ = shutdown_signal(args.ignore_sigterm) => return Ok(()),
        }
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr, source })?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal(args.ignore_sigterm))
        .await
        .map_err(DemoError::Serve)
}

async fn shutdown_signal(ignore_sigterm: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    // If the handlers cannot be installed, only an external SIGKILL stops us; still serve.
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    if ignore_sigterm {
        // The handler stays installed (replacing the default "terminate") but is never acted on.
        let _term = term;
        match int {
            Ok(mut int) => {
                int.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
        return;
    }
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        (Ok(mut term), Err(_)) => {
            term.recv().await;
        }
        (Err(_), Ok(mut int)) => {
            int.recv().await;
        }
        (Err(_), Err(_)) => std::future::pending::<()>().await,
    }
}

/// Shared state of one service instance.
pub struct ServiceState {
    version: String,
    healthy: AtomicBool,
    /// Failure rate in millionths, so it can be swapped atomically.
    fail_rate_ppm: AtomicU64,
    workers: Semaphore,
    base_latency: Duration,
    jitter: Duration,
    inflight: AtomicI64,
    metrics: Mutex<Metrics>,
}

#[derive(Debug, Default)]
struct Metrics {
    /// (method, code) → count.
    requests: BTreeMap<(String, u16), u64>,
    /// Non-cumulative counts per bucket of [`BUCKETS`], plus one for +Inf.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl ServiceState {
    /// Validate the arguments and build the state.
    pub fn new(args: &DemoServiceArgs) -> Result<Self, DemoError> {
        if args.workers == 0 {
            return Err(DemoError::InvalidArgs(
                "--workers must be at least 1".into(),
            ));
        }
        let ppm = rate_to_ppm(args.fail_rate)
            .ok_or_else(|| DemoError::InvalidArgs("--fail-rate must be within 0..=1".into()))?;
        let mut metrics = Metrics::default();
        // Both series exist from the start so that rate() has data before the first failure.
        metrics.requests.insert(("GET".into(), 200), 0);
        metrics.requests.insert(("GET".into(), 500), 0);
        Ok(Self {
            version: args.version.clone(),
            healthy: AtomicBool::new(args.healthy && !args.version.contains("bad")),
            fail_rate_ppm: AtomicU64::new(ppm),
            workers: Semaphore::new(args.workers),
            base_latency: args.base_latency,
            jitter: args.jitter,
            inflight: AtomicI64::new(0),
            metrics: Mutex::new(metrics),
        })
    }

    fn observe(&self, method: &str, code: u16, seconds: f64) {
        let mut m = match self.metrics.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        *m.requests.entry((method.to_string(), code)).or_insert(0) += 1;
        let idx = BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(BUCKETS.len());
        m.buckets[idx] += 1;
        m.sum += seconds;
        m.count += 1;
    }

    /// Prometheus text format 0.0.4.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write;
        let m = match self.metrics.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = String::with_capacity(2048);
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(
            out,
            "# HELP http_requests_total Requests to the work endpoint, by method and status code."
        );
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        for ((method, code), n) in &m.requests {
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{}\",code=\"{code}\"}} {n}",
                escape_label(method)
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds Latency of the work endpoint, queueing included."
        );
        let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
        let mut cumulative = 0u64;
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += m.buckets[i];
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += m.buckets[BUCKETS.len()];
        let _ = writeln!(
            out,
            "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(out, "http_request_duration_seconds_sum {}", m.sum);
        let _ = writeln!(out, "http_request_duration_seconds_count {}", m.count);
        let _ = writeln!(out, "# HELP demo_build_info Version of the demo service.");
        let _ = writeln!(out, "# TYPE demo_build_info gauge");
        let _ = writeln!(
            out,
            "demo_build_info{{version=\"{}\"}} 1",
            escape_label(&self.version)
        );
        let _ = writeln!(
            out,
            "# HELP demo_inflight_requests Work requests being served or queued."
        );
        let _ = writeln!(out, "# TYPE demo_inflight_requests gauge");
        let _ = writeln!(
            out,
            "demo_inflight_requests {}",
            self.inflight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP demo_fail_rate Configured share of work requests answered with 500."
        );
        let _ = writeln!(out, "# TYPE demo_fail_rate gauge");
        let _ = writeln!(
            out,
            "demo_fail_rate {}",
            self.fail_rate_ppm.load(Ordering::Relaxed) as f64 / 1e6
        );
        out
    }
}

fn rate_to_ppm(rate: f64) -> Option<u64> {
    (rate.is_finite() && (0.0..=1.0).contains(&rate)).then(|| (rate * 1e6).round() as u64)
}

/// Escape a label value for the text format (backslash, quote, newline).
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The service's routes over a given state (tests drive it without a socket).
pub fn router(state: Arc<ServiceState>) -> Router {
    Router::new()
        .route("/", get(work))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/admin/fail", post(admin_fail))
        .route("/admin/health", post(admin_health))
        .with_state(state)
}

/// Decrements the in-flight gauge even when the client goes away mid-request.
struct InflightGuard<'a>(&'a AtomicI64);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn work(State(s): State<Arc<ServiceState>>) -> Response {
    let started = crate::clock::monotonic_now();
    s.inflight.fetch_add(1, Ordering::Relaxed);
    let _guard = InflightGuard(&s.inflight);
    // The rng is not Send: draw everything before the first await.
    let (hold, fail) = {
        let mut rng = rand::rng();
        let jitter = s.jitter.as_secs_f64();
        let offset = if jitter > 0.0 {
            rng.random_range(-jitter..=jitter)
        } else {
            0.0
        };
        let hold = (s.base_latency.as_secs_f64() + offset).max(0.0);
        let ppm = s.fail_rate_ppm.load(Ordering::Relaxed);
        let fail = ppm > 0 && rng.random_range(0..1_000_000u64) < ppm;
        (Duration::from_secs_f64(hold), fail)
    };
    // A closed semaphore never happens (we never close it); serve without a worker if it did.
    let _permit = s.workers.acquire().await.ok();
    tokio::time::sleep(hold).await;
    let code = if fail { 500 } else { 200 };
    s.observe("GET", code, started.elapsed().as_secs_f64());
    if fail {
        (StatusCode::INTERNAL_SERVER_ERROR, "simulated failure\n").into_response()
    } else {
        (StatusCode::OK, format!("ok from {}\n", s.version)).into_response()
    }
}

async fn metrics(State(s): State<Arc<ServiceState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.render_metrics(),
    )
        .into_response()
}

async fn healthz(State(s): State<Arc<ServiceState>>) -> Response {
    if s.healthy.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n").into_response()
    }
}

#[derive(Debug, Deserialize)]
struct FailParams {
    rate: f64,
}

async fn admin_fail(State(s): State<Arc<ServiceState>>, Query(p): Query<FailParams>) -> Response {
    match rate_to_ppm(p.rate) {
        Some(ppm) => {
            s.fail_rate_ppm.store(ppm, Ordering::Relaxed);
            (StatusCode::OK, format!("fail rate {}\n", p.rate)).into_response()
        }
        None => (StatusCode::BAD_REQUEST, "rate must be within 0..=1\n").into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct HealthParams {
    healthy: bool,
}

async fn admin_health(
    State(s): State<Arc<ServiceState>>,
    Query(p): Query<HealthParams>,
) -> Response {
    s.healthy.store(p.healthy, Ordering::Relaxed);
    (StatusCode::OK, format!("healthy {}\n", p.healthy)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn fast_args() -> DemoServiceArgs {
        DemoServiceArgs {
            base_latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            ..DemoServiceArgs::for_port(0)
        }
    }

    async fn call(app: &Router, method: &str, uri: &str) -> (StatusCode, String) {
        let resp = app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Every non-comment line is `name{labels} value`; returns (name+labels, value).
    fn samples(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("sample line has a value");
                let v = match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().expect("numeric value"),
                };
                (series.to_string(), v)
            })
            .collect()
    }

    fn value(samples: &[(String, f64)], series: &str) -> f64 {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .unwrap_or_else(|| panic!("missing {series}"))
            .1
    }

    #[test]
    fn metrics_render_as_prometheus_text() {
        let s = ServiceState::new(&fast_args()).unwrap();
        s.observe("GET", 200, 0.003);
        s.observe("GET", 200, 0.03);
        s.observe("GET", 500, 0.3);
        s.observe("GET", 200, 20.0);
        let text = s.render_metrics();
        let got = samples(&text);
        assert_eq!(
            value(&got, "http_requests_total{method=\"GET\",code=\"200\"}"),
            3.0
        );
        assert_eq!(
            value(&got, "http_requests_total{method=\"GET\",code=\"500\"}"),
            1.0
        );
        assert_eq!(
            value(&got, "http_request_duration_seconds_bucket{le=\"0.005\"}"),
            1.0
        );
        assert_eq!(
            value(&got, "http_request_duration_seconds_bucket{le=\"0.05\"}"),
            2.0
        );
        assert_eq!(
            value(&got, "http_request_duration_seconds_bucket{le=\"0.5\"}"),
            3.0
        );
        assert_eq!(
            value(&got, "http_request_duration_seconds_bucket{le=\"10\"}"),
            3.0
        );
        assert_eq!(
            value(&got, "http_request_duration_seconds_bucket{le=\"+Inf\"}"),
            4.0
        );
        assert_eq!(value(&got, "http_request_duration_seconds_count"), 4.0);
        assert!((value(&got, "http_request_duration_seconds_sum") - 20.333).abs() < 1e-9);
        assert_eq!(value(&got, "demo_build_info{version=\"v1\"}"), 1.0);
        assert_eq!(value(&got, "demo_inflight_requests"), 0.0);
        // Buckets are cumulative and in the documented order.
        let les: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("http_request_duration_seconds_bucket{le=\""))
            .map(|l| l.split('"').next().unwrap())
            .collect();
        assert_eq!(
            les,
            [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                "+Inf"
            ]
        );
        let counts: Vec<f64> = got
            .iter()
            .filter(|(s, _)| s.starts_with("http_request_duration_seconds_bucket"))
            .map(|(_, v)| *v)
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        // Each family has exactly one TYPE line, before its samples.
        for fam in [
            "http_requests_total counter",
            "http_request_duration_seconds histogram",
            "demo_build_info gauge",
            "demo_inflight_requests gauge",
        ] {
            assert_eq!(text.matches(&format!("# TYPE {fam}\n")).count(), 1, "{fam}");
        }
    }

    /// `promtool check metrics` accepts the output (skipped where promtool is not installed).
    #[test]
    fn promtool_accepts_the_metrics() {
        use std::io::Write;
        let s = ServiceState::new(&fast_args()).unwrap();
        s.observe("GET", 200, 0.02);
        let child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("promtool not installed; skipped");
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(s.render_metrics().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let args = DemoServiceArgs {
            version: "a\"b\\c\nd".into(),
            ..fast_args()
        };
        let text = ServiceState::new(&args).unwrap().render_metrics();
        assert!(text.contains("demo_build_info{version=\"a\\\"b\\\\c\\nd\"} 1\n"));
    }

    #[test]
    fn invalid_args_are_rejected() {
        let bad_rate = DemoServiceArgs {
            fail_rate: 1.5,
            ..fast_args()
        };
        assert!(matches!(
            ServiceState::new(&bad_rate),
            Err(DemoError::InvalidArgs(_))
        ));
        let no_workers = DemoServiceArgs {
            workers: 0,
            ..fast_args()
        };
        assert!(ServiceState::new(&no_workers).is_err());
    }

    #[tokio::test]
    async fn work_requests_are_counted_and_fail_on_demand() {
        let state = Arc::new(ServiceState::new(&fast_args()).unwrap());
        let app = router(state.clone());
        assert_eq!(call(&app, "GET", "/").await.0, StatusCode::OK);
        assert_eq!(
            call(&app, "POST", "/admin/fail?rate=1").await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(&app, "GET", "/").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            call(&app, "POST", "/admin/fail?rate=2").await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            call(&app, "POST", "/admin/fail?rate=0").await.0,
            StatusCode::OK
        );
        assert_eq!(call(&app, "GET", "/").await.0, StatusCode::OK);
        let (status, text) = call(&app, "GET", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        let got = samples(&text);
        assert_eq!(
            value(&got, "http_requests_total{method=\"GET\",code=\"200\"}"),
            2.0
        );
        assert_eq!(
            value(&got, "http_requests_total{method=\"GET\",code=\"500\"}"),
            1.0
        );
        assert_eq!(value(&got, "http_request_duration_seconds_count"), 3.0);
        assert_eq!(value(&got, "demo_inflight_requests"), 0.0);
    }

    #[tokio::test]
    async fn bad_version_fails_health() {
        let good = router(Arc::new(ServiceState::new(&fast_args()).unwrap()));
        assert_eq!(call(&good, "GET", "/healthz").await.0, StatusCode::OK);
        let bad = router(Arc::new(
            ServiceState::new(&DemoServiceArgs {
                version: "v2-bad".into(),
                ..fast_args()
            })
            .unwrap(),
        ));
        assert_eq!(
            call(&bad, "GET", "/healthz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let flagged = router(Arc::new(
            ServiceState::new(&DemoServiceArgs {
                healthy: false,
                ..fast_args()
            })
            .unwrap(),
        ));
        assert_eq!(
            call(&flagged, "GET", "/healthz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            call(&flagged, "POST", "/admin/health?healthy=true").await.0,
            StatusCode::OK
        );
        assert_eq!(call(&flagged, "GET", "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_grows_when_workers_are_saturated() {
        // One worker holding 20ms each: the tenth of ten concurrent requests waits ~200ms.
        let args = DemoServiceArgs {
            workers: 1,
            base_latency: Duration::from_millis(20),
            jitter: Duration::ZERO,
            ..DemoServiceArgs::for_port(0)
        };
        let state = Arc::new(ServiceState::new(&args).unwrap());
        let app = router(state.clone());
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { call(&app, "GET", "/").await })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap().0, StatusCode::OK);
        }
        let got = samples(&state.render_metrics());
        // Queueing pushed at least one request past the 0.1s bucket although each holds 20ms.
        assert!(value(&got, "http_request_duration_seconds_bucket{le=\"0.1\"}") < 10.0);
        assert!(value(&got, "http_request_duration_seconds_sum") >= 1.0);
    }
}
