//! Unit tests: signing, status mapping, secret loading, payload shape. The
//! HTTP round trip is tested against a real receiver in tests/webhook_provider.rs.
use std::collections::BTreeMap;
use std::io::Write;

use super::client::{classify, sign, Secret};
use super::config::WebhookConfig;
use super::*;

fn cfg() -> WebhookConfig {
    WebhookConfig {
        url: "http://127.0.0.1:9/hook".into(),
        secret_file: None,
        secret_env: None,
        timeout: None,
        headers: BTreeMap::new(),
    }
}

#[test]
fn signature_is_hmac_sha256_hex() {
    // RFC 4231 test case 2
    let s = Secret::new(b"Jefe".to_vec()).unwrap();
    assert_eq!(
        sign(&s, b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn status_mapping_decides_what_is_retried() {
    assert!(classify(200, "").is_ok());
    assert!(classify(204, "").is_ok());
    for s in [429, 500, 502, 503, 504] {
        assert!(classify(s, "").unwrap_err().is_retryable(), "{s}");
    }
    for s in [400, 401, 403, 404, 409, 422] {
        assert!(!classify(s, "").unwrap_err().is_retryable(), "{s}");
    }
    let long = "x".repeat(5000);
    let msg = classify(500, &long).unwrap_err().to_string();
    assert!(msg.len() < 700, "error bodies are cut: {}", msg.len());
}

#[test]
fn secret_from_file_ignores_trailing_newline() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"s3cr3t\n").unwrap();
    let c = WebhookConfig {
        secret_file: Some(f.path().to_path_buf()),
        ..cfg()
    };
    let s = load_secret(&c).unwrap();
    assert_eq!(
        sign(&s, b"x"),
        sign(&Secret::new(b"s3cr3t".to_vec()).unwrap(), b"x")
    );
}

#[test]
fn secret_configuration_errors() {
    assert!(matches!(load_secret(&cfg()), Err(WebhookError::NoSecret)));
    let both = WebhookConfig {
        secret_file: Some("/nonexistent".into()),
        secret_env: Some("HOMEOSTAT_TEST_NOPE".into()),
        ..cfg()
    };
    assert!(matches!(load_secret(&both), Err(WebhookError::BothSecrets)));
    let missing = WebhookConfig {
        secret_env: Some("HOMEOSTAT_TEST_SECRET_THAT_IS_NOT_SET".into()),
        ..cfg()
    };
    assert!(matches!(
        load_secret(&missing),
        Err(WebhookError::SecretEnv { .. })
    ));
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"\n").unwrap();
    let empty = WebhookConfig {
        secret_file: Some(f.path().to_path_buf()),
        ..cfg()
    };
    assert!(matches!(
        load_secret(&empty),
        Err(WebhookError::EmptySecret)
    ));
}

#[test]
fn secret_never_shows_in_debug_output() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"hunter2-very-secret").unwrap();
    let c = WebhookConfig {
        secret_file: Some(f.path().to_path_buf()),
        ..cfg()
    };
    let p = WebhookProvider::new("notify", &c).unwrap();
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("***"));
}

#[test]
fn config_errors_for_url_and_headers() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"k").unwrap();
    let base = WebhookConfig {
        secret_file: Some(f.path().to_path_buf()),
        ..cfg()
    };
    let bad_url = WebhookConfig {
        url: "ftp://example/hook".into(),
        ..base.clone()
    };
    assert!(matches!(
        WebhookProvider::new("t", &bad_url),
        Err(WebhookError::BadUrl { .. })
    ));
    let reserved = WebhookConfig {
        headers: BTreeMap::from([("Idempotency-Key".to_string(), "x".to_string())]),
        ..base.clone()
    };
    assert!(matches!(
        WebhookProvider::new("t", &reserved),
        Err(WebhookError::ReservedHeader { .. })
    ));
    let ok = WebhookConfig {
        headers: BTreeMap::from([("Authorization".to_string(), "Bearer t".to_string())]),
        ..base
    };
    assert!(WebhookProvider::new("t", &ok).is_ok());
}

#[test]
fn payload_carries_the_request() {
    let req = ActionRequest {
        action_id: "a1".into(),
        target: "notify".into(),
        kind: ActionKind::ScaleOut,
        op: ProviderOp::SetReplicas { from: 2, to: 3 },
        rule: "r".into(),
    };
    let v = serde_json::to_value(Payload::new(&req)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "schema": 1, "action_id": "a1", "target": "notify", "kind": "scale_out",
            "rule": "r", "op": {"op": "set_replicas", "from": 2, "to": 3}
        })
    );
}

#[tokio::test]
async fn webhook_has_no_observable_state_and_reconciles_unknown() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"k").unwrap();
    let c = WebhookConfig {
        secret_file: Some(f.path().to_path_buf()),
        ..cfg()
    };
    let p = WebhookProvider::new("t", &c).unwrap();
    assert_eq!(p.state().await.unwrap(), TargetState::default());
    assert_eq!(p.supports(), &ActionKind::ALL);
    let req = ActionRequest {
        action_id: "a1".into(),
        target: "t".into(),
        kind: ActionKind::Redeploy,
        op: ProviderOp::Rollback,
        rule: "r".into(),
    };
    assert_eq!(p.reconcile(&req).await.unwrap(), Reconciliation::Unknown);
}
