//! Router tests through tower's `oneshot` (no sockets); tests/scrape_http.rs
//! covers a real listener and graceful shutdown.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use super::*;
use crate::model::Labels;
use crate::store::Store;

#[derive(Default)]
pub(crate) struct FakeAgent {
    pub ready: AtomicBool,
    pub paused: AtomicBool,
    pub reloads: AtomicUsize,
    pub reload_ok: AtomicBool,
    pub actors: Mutex<Vec<String>>,
    pub filters: Mutex<Vec<AuditFilter>>,
}

#[async_trait::async_trait]
impl AgentControl for FakeAgent {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    fn rules(&self) -> serde_json::Value {
        serde_json::json!({"groups": [{"name": "checkout", "rules": []}]})
    }
    fn targets(&self) -> serde_json::Value {
        crate::scrape::targets_api_json(&[])
    }
    async fn audit(&self, filter: AuditFilter) -> Result<serde_json::Value, String> {
        self.filters.lock().expect("lock").push(filter);
        Ok(serde_json::json!([]))
    }
    async fn reload(&self) -> Result<String, String> {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        if self.reload_ok.load(Ordering::SeqCst) {
            Ok("rules reloaded: 3 groups".into())
        } else {
            Err("rules/bad.yaml:3:5: unknown field `whne`".into())
        }
    }
    async fn set_paused(&self, paused: bool, actor: &str) -> Result<serde_json::Value, String> {
        self.paused.store(paused, Ordering::SeqCst);
        self.actors.lock().expect("lock").push(actor.to_string());
        Ok(serde_json::json!({ "paused": paused }))
    }
}

fn app_with(cfg: ServerConfig, agent: Arc<FakeAgent>) -> Router {
    let store = Store::shared();
    {
        let mut s = store.write().expect("store");
        s.append(&Labels::new([("__name__", "up"), ("job", "a")]), 1_000, 1.0);
    }
    router(
        &cfg,
        agent,
        store,
        Arc::new(Metrics::new()),
        Clock::starting_at(2_000),
    )
    .expect("router")
}

fn loopback() -> ServerConfig {
    ServerConfig::new("127.0.0.1:9798".parse().expect("addr"))
}

fn public() -> ServerConfig {
    ServerConfig::new("0.0.0.0:9798".parse().expect("addr"))
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

fn post(uri: &str, auth: Option<&str>) -> Request<Body> {
    // JSON, as a mutating request from loopback without a token must be.
    let mut b = Request::post(uri).header("content-type", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::empty()).expect("request")
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn healthy_and_ready_transition() {
    let agent = Arc::new(FakeAgent::default());
    let app = app_with(loopback(), agent.clone());
    assert_eq!(call(&app, get("/-/healthy")).await.0, StatusCode::OK);
    assert_eq!(
        call(&app, get("/-/ready")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    agent.ready.store(true, Ordering::SeqCst);
    assert_eq!(call(&app, get("/-/ready")).await.0, StatusCode::OK);
    assert_eq!(call(&app, get("/nope")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&app, post("/-/healthy", None)).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn metrics_negotiates_openmetrics_or_text() {
    let app = app_with(loopback(), Arc::new(FakeAgent::default()));
    let req = Request::get("/metrics")
        .header("accept", crate::scrape::ACCEPT_HEADER)
        .body(Body::empty())
        .expect("request");
    let (status, headers, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"));
    // The store gauge is refreshed on every scrape of /metrics.
    assert!(body.contains("homeostat_store_series 1\n"), "{body}");

    let (status, headers, body) = call(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(!body.contains("# EOF"));
    assert!(body.contains("# TYPE homeostat_build_info gauge"), "{body}");
}

#[tokio::test]
async fn mutating_endpoints_need_the_token_when_configured() {
    let agent = Arc::new(FakeAgent::default());
    agent.reload_ok.store(true, Ordering::SeqCst);
    let app = app_with(public().with_token("s3cret"), agent.clone());
    for uri in ["/-/reload", "/api/v1/pause", "/api/v1/resume"] {
        let (status, headers, body) = call(&app, post(uri, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} without token");
        assert!(headers.contains_key("www-authenticate"));
        assert_eq!(json(&body)["status"], "error");
        let (status, _, _) = call(&app, post(uri, Some("Bearer wrong"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} with a wrong token");
    }
    assert_eq!(agent.reloads.load(Ordering::SeqCst), 0);
    assert!(agent.actors.lock().expect("lock").is_empty());

    let (status, _, body) = call(&app, post("/-/reload", Some("Bearer s3cret"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("rules reloaded"));
    let (status, _, body) = call(
        &app,
        post("/api/v1/pause?actor=alice", Some("Bearer s3cret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json(&body),
        serde_json::json!({"status": "success", "data": {"paused": true}})
    );
    assert!(agent.paused.load(Ordering::SeqCst));
    let (status, _, _) = call(&app, post("/api/v1/resume", Some("Bearer s3cret"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!agent.paused.load(Ordering::SeqCst));
    assert_eq!(
        *agent.actors.lock().expect("lock"),
        vec!["api:alice".to_string(), "api".to_string()]
    );
}

#[tokio::test]
async fn no_token_means_loopback_only() {
    let agent = Arc::new(FakeAgent::default());
    let app = app_with(public(), agent.clone());
    let (status, _, body) = call(&app, post("/api/v1/pause", None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json(&body)["errorType"], "forbidden");
    assert!(!agent.paused.load(Ordering::SeqCst));

    let app = app_with(loopback(), agent.clone());
    assert_eq!(
        call(&app, post("/api/v1/pause", None)).await.0,
        StatusCode::OK
    );
    assert!(agent.paused.load(Ordering::SeqCst));
}

#[tokio::test]
async fn rejected_reload_is_an_error_and_says_why() {
    let agent = Arc::new(FakeAgent::default());
    let app = app_with(loopback(), agent.clone());
    let (status, _, body) = call(&app, post("/-/reload", None)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("rules/bad.yaml:3:5"), "{body}");
    assert_eq!(agent.reloads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn query_validation_errors_use_the_prometheus_envelope() {
    let app = app_with(loopback(), Arc::new(FakeAgent::default()));
    for uri in [
        "/api/v1/query",
        "/api/v1/query?query=",
        "/api/v1/query?query=sum(",
        "/api/v1/query?query=up&time=notatime",
        "/api/v1/query?query=%zz",
    ] {
        let (status, headers, body) = call(&app, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("application/json"));
        let v = json(&body);
        assert_eq!(v["status"], "error", "{uri}");
        assert_eq!(v["errorType"], "bad_data", "{uri}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{uri}");
    }
    // A POST body must be a form.
    let req = Request::post("/api/v1/query")
        .header("content-type", "application/json")
        .body(Body::from("{\"query\":\"up\"}"))
        .expect("request");
    assert_eq!(call(&app, req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A form POST with a broken expression is parsed and rejected like GET.
    let req = Request::post("/api/v1/query")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("query=rate(up%5B"))
        .expect("request");
    let (status, _, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap_or("")
            .contains("query"),
        "{body}"
    );
}

#[tokio::test]
async fn oversized_body_is_413_and_nothing_runs() {
    let agent = Arc::new(FakeAgent::default());
    let mut cfg = loopback();
    cfg.body_limit = 1024;
    let app = app_with(cfg, agent.clone());
    let big = format!("query={}", "a".repeat(4096));
    let req = Request::post("/api/v1/query")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(big.clone()))
        .expect("request");
    assert_eq!(call(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::post("/api/v1/pause")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(big))
        .expect("request");
    assert_eq!(call(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!agent.paused.load(Ordering::SeqCst));
}

#[tokio::test]
async fn rules_targets_audit_are_enveloped() {
    let agent = Arc::new(FakeAgent::default());
    let app = app_with(loopback(), agent.clone());
    let (s, _, b) = call(&app, get("/api/v1/rules")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&b)["data"]["groups"][0]["name"], "checkout");
    let (s, _, b) = call(&app, get("/api/v1/targets")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&b)["data"]["activeTargets"], serde_json::json!([]));
    let (s, _, b) = call(
        &app,
        get("/api/v1/audit?rule=r1&target=checkout&event=suppressed&limit=7&since=1700000000"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(json(&b)["status"], "success");
    assert_eq!(
        agent.filters.lock().expect("lock")[0],
        AuditFilter {
            since: Some(1_700_000_000_000),
            rule: Some("r1".into()),
            target: Some("checkout".into()),
            event: Some(EventKind::Suppressed),
            limit: 7,
        }
    );
    let (s, _, b) = call(&app, get("/api/v1/audit?event=bogus")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(json(&b)["errorType"], "bad_data");
}

struct SlowAgent;

#[async_trait::async_trait]
impl AgentControl for SlowAgent {
    fn ready(&self) -> bool {
        true
    }
    fn rules(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn targets(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    async fn audit(&self, _filter: AuditFilter) -> Result<serde_json::Value, String> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(serde_json::Value::Null)
    }
    async fn reload(&self) -> Result<String, String> {
        Ok(String::new())
    }
    async fn set_paused(&self, _paused: bool, _actor: &str) -> Result<serde_json::Value, String> {
        Ok(serde_json::Value::Null)
    }
}

#[tokio::test(start_paused = true)]
async fn slow_request_times_out_with_503() {
    let mut cfg = loopback();
    cfg.request_timeout = Duration::from_secs(5);
    let app = router(
        &cfg,
        Arc::new(SlowAgent),
        Store::shared(),
        Arc::new(Metrics::new()),
        Clock::starting_at(0),
    )
    .expect("router");
    let (s, _, b) = call(&app, get("/api/v1/audit")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
}

#[test]
fn config_debug_redacts_token() {
    let cfg = loopback().with_token("very-secret-token");
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains("very-secret-token"));
    assert!(dbg.contains("redacted"));
}

struct ApprovingAgent;

#[async_trait::async_trait]
impl AgentControl for ApprovingAgent {
    fn ready(&self) -> bool {
        true
    }
    fn rules(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn targets(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    async fn audit(&self, _filter: AuditFilter) -> Result<serde_json::Value, String> {
        Ok(serde_json::Value::Null)
    }
    async fn reload(&self) -> Result<String, String> {
        Ok(String::new())
    }
    async fn set_paused(&self, _paused: bool, _actor: &str) -> Result<serde_json::Value, String> {
        Ok(serde_json::Value::Null)
    }
    fn approvals(&self) -> serde_json::Value {
        serde_json::json!([{"action_id": "a1"}])
    }
    async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        actor: &str,
    ) -> Result<serde_json::Value, ControlError> {
        match id {
            "a1" => Ok(serde_json::json!({"action_id": id, "approved": approve, "by": actor})),
            "done" => Err(ControlError::Conflict("already approved".into())),
            _ => Err(ControlError::NotFound(format!(
                "no pending approval {id:?}"
            ))),
        }
    }
}

#[tokio::test]
async fn approvals_list_and_decide_with_auth() {
    let app = router(
        &public().with_token("s3cret"),
        Arc::new(ApprovingAgent),
        Store::shared(),
        Arc::new(Metrics::new()),
        Clock::starting_at(0),
    )
    .expect("router");
    let (s, _, b) = call(&app, get("/api/v1/approvals")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&b)["data"][0]["action_id"], "a1");
    assert_eq!(
        call(&app, post("/api/v1/approvals/a1/approve", None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, _, b) = call(
        &app,
        post(
            "/api/v1/approvals/a1/approve?actor=carol",
            Some("Bearer s3cret"),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        json(&b)["data"],
        serde_json::json!({"action_id": "a1", "approved": true, "by": "api:carol"})
    );
    let (s, _, b) = call(
        &app,
        post("/api/v1/approvals/a1/reject", Some("Bearer s3cret")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&b)["data"]["approved"], false);
    assert_eq!(
        call(
            &app,
            post("/api/v1/approvals/done/approve", Some("Bearer s3cret"))
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(
            &app,
            post("/api/v1/approvals/zz/approve", Some("Bearer s3cret"))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // Without an implementation the default says "not found", never "approved".
    let app = app_with(loopback(), Arc::new(FakeAgent::default()));
    assert_eq!(
        call(&app, post("/api/v1/approvals/a1/approve", None))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn extra_routes_get_the_same_limits() {
    let mut cfg = loopback();
    cfg.body_limit = 16;
    let extra = Router::new().route(
        "/api/v1/alerts",
        axum::routing::post(|body: axum::body::Bytes| async move { format!("got {}", body.len()) }),
    );
    let app = router_with(
        &cfg,
        Arc::new(FakeAgent::default()),
        Store::shared(),
        Arc::new(Metrics::new()),
        Clock::starting_at(0),
        extra,
    )
    .expect("router");
    let small = Request::post("/api/v1/alerts")
        .body(Body::from("[]"))
        .expect("request");
    assert_eq!(call(&app, small).await.2, "got 2");
    let big = Request::post("/api/v1/alerts")
        .body(Body::from(vec![b'x'; 100]))
        .expect("request");
    assert_eq!(call(&app, big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        call(&app, get("/api/v1/unknown")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn oncall_page_is_html_that_reads_the_api() {
    let app = app_with(loopback(), Arc::new(FakeAgent::default()));
    let (status, headers, body) = call(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let page = body;
    for endpoint in ["api/v1/rules", "api/v1/audit"] {
        assert!(page.contains(endpoint), "page reads {endpoint}");
    }
    // Values from the API are inserted as text, never as markup.
    assert!(!page.contains("innerHTML"));
}

/// A handler that panics answers 500 without the panic's text, over a real
/// socket, and the server goes on serving (also on the same connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_500_and_the_server_serves_on() {
    let extra = Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("secret-panic-text 4242");
            }
            "unreachable"
        }),
    );
    let app = router_with(
        &loopback(),
        Arc::new(FakeAgent::default()),
        Store::shared(),
        Arc::new(Metrics::new()),
        Clock::starting_at(0),
        extra,
    )
    .expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .get(format!("http://{addr}/boom"))
            .send()
            .await
            .expect("an answer, not a dropped connection");
        assert_eq!(r.status(), 500);
        let body = r.text().await.expect("body");
        assert!(!body.contains("secret-panic-text"), "{body}");
        assert_eq!(json(&body)["errorType"], "internal");
        let r = client
            .get(format!("http://{addr}/-/healthy"))
            .send()
            .await
            .expect("healthy");
        assert_eq!(r.status(), 200);
    }
    let _ = stop.send(());
    server.await.expect("join").expect("served");
}
