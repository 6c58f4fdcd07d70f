//! The webhook provider against a real local HTTP receiver (axum on
//! 127.0.0.1:0) that checks the HMAC signature itself and records the
//! idempotency key of every request.
//!
//! These tests run on real time, not paused tokio time: with paused time the
//! runtime auto-advances the clock while it waits on socket I/O, which would
//! fire the HTTP and executor timeouts spuriously.
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use homeostat::actions::{
    ActionSpec, Decision, Executor, ExecutorConfig, Guard, GuardState, Journal, RunResult,
    TargetLimits, Verdict,
};
use homeostat::audit::{read_all, AuditLog, EventKind};
use homeostat::clock::Clock;
use homeostat::model::{
    ActionKind, ActionRequest, Approval, Labels, Mode, ProviderError, ProviderOp, Reason,
};
use homeostat::providers::webhook::config::WebhookConfig;
use homeostat::providers::webhook::WebhookProvider;
use homeostat::providers::Provider;

const SECRET: &[u8] = b"receiver-shared-secret";

#[derive(Debug, Clone)]
struct Got {
    idempotency_key: Option<String>,
    signature_ok: bool,
    body: serde_json::Value,
}

struct Receiver {
    secret: Vec<u8>,
    /// Status (and delay) of each successive response; 200 when empty.
    script: Mutex<VecDeque<(u16, Duration)>>,
    got: Mutex<Vec<Got>>,
}

fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn hook(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let signature_ok = verify(&r.secret, &body, header("x-homeostat-signature").as_deref());
    r.got.lock().unwrap().push(Got {
        idempotency_key: header("idempotency-key"),
        signature_ok,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    if !signature_ok {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    let (status, delay) = r
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, Duration::ZERO));
    tokio::time::sleep(delay).await;
    let code = StatusCode::from_u16(status).unwrap();
    (code, format!("{{\"answered\":{status}}}"))
}

/// Redirects to the real hook: a webhook must not follow it.
async fn moved() -> (StatusCode, [(axum::http::HeaderName, &'static str); 1]) {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(axum::http::header::LOCATION, "/hook")],
    )
}

/// Start a receiver; returns its URL and shared state.
async fn receiver(script: &[(u16, Duration)]) -> (String, Arc<Receiver>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = Arc::new(Receiver {
        secret: SECRET.to_vec(),
        script: Mutex::new(script.iter().copied().collect()),
        got: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/moved", post(moved))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), r)
}

fn provider(
    url: &str,
    secret: &[u8],
    dir: &std::path::Path,
    timeout: Option<Duration>,
) -> WebhookProvider {
    let path = dir.join("hook.secret");
    let mut content = secret.to_vec();
    content.push(b'\n');
    std::fs::write(&path, content).unwrap();
    let cfg = WebhookConfig {
        url: url.to_string(),
        secret_file: Some(path),
        secret_env: None,
        timeout,
        headers: BTreeMap::new(),
    };
    WebhookProvider::new("notify", &cfg).unwrap()
}

fn request(id: &str) -> ActionRequest {
    ActionRequest {
        action_id: id.into(),
        target: "notify".into(),
        kind: ActionKind::Failover,
        op: ProviderOp::Replace {
            instance: "db-1".into(),
        },
        rule: "db-down".into(),
    }
}

#[tokio::test]
async fn delivers_a_signed_request_with_the_idempotency_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, r) = receiver(&[]).await;
    let p = provider(&url, SECRET, tmp.path(), None);
    let out = p.execute(&request("act-1")).await.unwrap();
    assert_eq!(out.after["status"], 200);
    assert_eq!(out.after["response"]["answered"], 200);
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(got[0].signature_ok);
    assert_eq!(got[0].idempotency_key.as_deref(), Some("act-1"));
    assert_eq!(
        got[0].body,
        serde_json::json!({
            "schema": 1, "action_id": "act-1", "target": "notify", "kind": "failover",
            "rule": "db-down", "op": {"op": "replace", "instance": "db-1"}
        })
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_receiver_and_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, r) = receiver(&[]).await;
    let p = provider(&url, b"not-the-shared-secret", tmp.path(), None);
    let err = p.execute(&request("act-2")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(!r.got.lock().unwrap()[0].signature_ok);
}

#[tokio::test]
async fn a_slow_receiver_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, _r) = receiver(&[(200, Duration::from_secs(5))]).await;
    let p = provider(&url, SECRET, tmp.path(), Some(Duration::from_millis(300)));
    let err = p.execute(&request("act-3")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Timeout { .. }), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, r) = receiver(&[]).await;
    let p = provider(&url.replace("/hook", "/moved"), SECRET, tmp.path(), None);
    let err = p.execute(&request("act-5")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("307"), "{err}");
    assert!(r.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn nothing_listening_is_retryable() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = provider(&format!("http://{addr}/hook"), SECRET, tmp.path(), None);
    let err = p.execute(&request("act-4")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
}

/// Guard a scale-out for the webhook target and run it through a real
/// executor writing a real audit log.
async fn run_through_executor(
    script: &[(u16, Duration)],
) -> (
    RunResult,
    String,
    Vec<Got>,
    Vec<homeostat::audit::AuditEvent>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let (url, r) = receiver(script).await;
    let p = provider(&url, SECRET, tmp.path(), None);
    let dir = tmp.path().join("audit");
    let log = AuditLog::open(&dir, 1 << 20).unwrap();
    let clock = Clock::system();
    let journal = Arc::new(Journal::new(Arc::new(log), GuardState::default()));
    let exec = Executor::new(journal.clone(), clock, ExecutorConfig::default());

    let now = clock.now_ms();
    let d = Decision {
        rule: "queue-deep".into(),
        group: "notify".into(),
        action: ActionSpec::new(ActionKind::ScaleOut, "notify"),
        labels: Labels::empty(),
        instance: None,
        mode: Mode::Enforce,
        approval: Approval::None,
        cooldown: None,
        reason: Reason::default(),
        annotations: BTreeMap::new(),
        at: now,
    };
    let limits = TargetLimits {
        min: 0,
        max: 10,
        ..TargetLimits::default()
    };
    let state = p.state().await.unwrap();
    let v = Guard::default().check(&d, &limits, &journal.state(), &state, now);
    journal.record_decision(&d, &v, now).unwrap();
    let Verdict::Act(intent) = v else {
        panic!("{v:?}")
    };
    assert_eq!(intent.op, ProviderOp::SetReplicas { from: 0, to: 1 });
    let result = exec.run(&intent, &p).await.unwrap();
    let got = r.got.lock().unwrap().clone();
    (result, intent.action_id, got, read_all(&dir).unwrap())
}

fn position(events: &[homeostat::audit::AuditEvent], kind: EventKind) -> Option<usize> {
    events.iter().position(|e| e.event == Some(kind))
}

#[tokio::test]
async fn executor_retries_500s_with_the_same_idempotency_key() {
    let ms0 = Duration::ZERO;
    let (result, id, got, events) =
        run_through_executor(&[(500, ms0), (500, ms0), (200, ms0)]).await;
    assert!(
        matches!(result, RunResult::Succeeded { attempts: 3, .. }),
        "{result:?}"
    );
    assert_eq!(got.len(), 3);
    for g in &got {
        assert!(g.signature_ok);
        assert_eq!(g.idempotency_key.as_deref(), Some(id.as_str()));
        assert_eq!(g.body["action_id"], id.as_str());
    }
    let started = position(&events, EventKind::ActionStarted).unwrap();
    let succeeded = position(&events, EventKind::ActionSucceeded).unwrap();
    assert!(started < succeeded);
    assert_eq!(events[succeeded].action_id.as_deref(), Some(id.as_str()));
    assert_eq!(events[succeeded].detail.as_ref().unwrap()["attempts"], 3);
    assert_eq!(events[succeeded].provider.as_deref(), Some("webhook"));
    assert!(position(&events, EventKind::ActionFailed).is_none());
}

#[tokio::test]
async fn executor_does_not_retry_a_400() {
    let ms0 = Duration::ZERO;
    let (result, id, got, events) = run_through_executor(&[(400, ms0), (200, ms0)]).await;
    let RunResult::Failed {
        attempts,
        retryable,
        ..
    } = &result
    else {
        panic!("{result:?}")
    };
    assert_eq!((*attempts, *retryable), (1, false));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].idempotency_key.as_deref(), Some(id.as_str()));
    let started = position(&events, EventKind::ActionStarted).unwrap();
    let failed = position(&events, EventKind::ActionFailed).unwrap();
    assert!(started < failed);
    assert!(events[failed].error.as_deref().unwrap().contains("400"));
    assert!(position(&events, EventKind::ActionSucceeded).is_none());
}
