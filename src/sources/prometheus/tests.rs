//! Unit tests: answer classification, encoding, config compilation (positions,
//! secrets), and the request the client sends (auth, form body, `time`).
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::client::{classify, form_encode, format_time};
use super::*;
use crate::model::SourceFailure;

const EP: &str = "http://p/api/v1/query";
const T: Duration = Duration::from_secs(1);

fn failed_kind(r: &QueryResult) -> Option<SourceFailure> {
    match r {
        QueryResult::Failed { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[test]
fn classify_vector_scalar_and_empty() {
    let body = br#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"__name__":"up","job":"a"},"value":[1700000000.5,"1"]},
        {"metric":{"job":"b"},"value":[1700000000.5,"NaN"]},
        {"metric":{"job":"c"},"value":[1700000000.5,"+Inf"]}]}}"#;
    match classify(200, body, EP, T) {
        QueryResult::Samples(s) => {
            assert_eq!(s.len(), 3);
            assert_eq!(s[0].labels.get("job"), Some("a"));
            assert_eq!(s[0].labels.get("__name__"), Some("up"));
            assert_eq!(s[0].value, 1.0);
            assert!(s[1].value.is_nan());
            assert_eq!(s[2].value, f64::INFINITY);
        }
        other => panic!("{other:?}"),
    }
    let scalar =
        br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"-2.5"]}}"#;
    match classify(200, scalar, EP, T) {
        QueryResult::Samples(s) => {
            assert_eq!(s.len(), 1);
            assert!(s[0].labels.is_empty());
            assert_eq!(s[0].value, -2.5);
        }
        other => panic!("{other:?}"),
    }
    let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    assert_eq!(classify(200, empty, EP, T), QueryResult::Empty);
    assert_eq!(classify(200, empty, EP, T).outcome(), "empty");
}

#[test]
fn classify_errors_into_their_kinds() {
    let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
    let r = classify(400, bad, EP, T);
    assert_eq!(failed_kind(&r), Some(SourceFailure::PromqlError));
    assert_eq!(r.outcome(), "promql_error");
    let exec = br#"{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}"#;
    assert_eq!(
        failed_kind(&classify(422, exec, EP, T)),
        Some(SourceFailure::PromqlError)
    );
    let timeout = br#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
    assert_eq!(
        failed_kind(&classify(503, timeout, EP, T)),
        Some(SourceFailure::Timeout)
    );
    let internal = br#"{"status":"error","errorType":"internal","error":"boom"}"#;
    assert_eq!(
        failed_kind(&classify(500, internal, EP, T)),
        Some(SourceFailure::HttpError)
    );
    // A proxy's error page, a 404 from a wrong path prefix, a 2xx that is not
    // Prometheus: HTTP errors, with the status and the start of the body.
    let r = classify(502, b"<html>Bad Gateway</html>", EP, T);
    assert_eq!(failed_kind(&r), Some(SourceFailure::HttpError));
    match r {
        QueryResult::Failed { error, .. } => {
            assert!(
                error.contains("HTTP 502") && error.contains("Bad Gateway"),
                "{error}"
            )
        }
        _ => unreachable!(),
    }
    assert_eq!(
        failed_kind(&classify(404, b"404 page not found", EP, T)),
        Some(SourceFailure::HttpError)
    );
    assert_eq!(
        failed_kind(&classify(200, b"hello", EP, T)),
        Some(SourceFailure::HttpError)
    );
    assert_eq!(
        failed_kind(&classify(401, b"Unauthorized", EP, T)),
        Some(SourceFailure::HttpError)
    );
}

#[test]
fn matrix_and_string_results_are_promql_errors() {
    let m = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    match classify(200, m, EP, T) {
        QueryResult::Failed { kind, error } => {
            assert_eq!(kind, SourceFailure::PromqlError);
            assert!(error.contains("range vector not allowed"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let s = br#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
    assert_eq!(
        failed_kind(&classify(200, s, EP, T)),
        Some(SourceFailure::PromqlError)
    );
}

#[test]
fn encodings() {
    assert_eq!(format_time(1_700_000_000_123), "1700000000.123");
    assert_eq!(format_time(5), "0.005");
    assert_eq!(format_time(-1500), "-1.500");
    assert_eq!(
        form_encode(r#"sum(rate(x{a="b c"}[1m])) > 0.5 & +"#),
        "sum%28rate%28x%7Ba%3D%22b+c%22%7D%5B1m%5D%29%29+%3E+0.5+%26+%2B"
    );
    assert_eq!(form_encode("é"), "%C3%A9");
}

#[test]
fn outcomes_map_onto_the_rule_engine() {
    assert_eq!(
        to_outcome("p", QueryResult::Empty),
        QueryOutcome::Empty { source: "p".into() }
    );
    assert_eq!(
        to_outcome(
            "p",
            QueryResult::Failed {
                kind: SourceFailure::Timeout,
                error: "e".into()
            }
        ),
        QueryOutcome::SourceFailed {
            source: "p".into(),
            kind: SourceFailure::Timeout,
            error: "e".into()
        }
    );
}

fn errors(text: &str) -> Vec<String> {
    match crate::config::compile(Path::new("conf/h.yaml"), text) {
        Ok(_) => panic!("expected errors"),
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn config_errors_have_positions_and_are_all_reported() {
    let e = errors(
        "sources:\n  a: { url: \"ftp://x\", timeout: 10 parsecs }\n  b:\n    url: http://x\n    bearer_token_env: HOMEOSTAT_TEST_UNSET_VAR_1\n    basic_auth: { username: u, password_env: HOMEOSTAT_TEST_UNSET_VAR_2 }\n  c:\n    url: http://x\n    tls: { ca_file: /nonexistent/ca.pem }\n    bearer_token_file: /nonexistent/token\n  d: { url: http://x, basic_auth: { username: u } }\n  e: { url: http://x, tokne: 1 }\n  f: { url: \"http://u:hunter2@x/\" }\n",
    );
    let all = e.join("\n");
    for want in [
        "conf/h.yaml:2:13: source \"a\": url \"ftp://x\" must start with http:// or https://",
        "conf/h.yaml:2:33: source \"a\": timeout:",
        "conf/h.yaml:5:23: source \"b\": bearer_token_env: environment variable HOMEOSTAT_TEST_UNSET_VAR_1 is not set",
        "source \"b\": basic_auth: password_env: environment variable HOMEOSTAT_TEST_UNSET_VAR_2 is not set",
        "conf/h.yaml:9:21: source \"c\": tls.ca_file: cannot read /nonexistent/ca.pem",
        "conf/h.yaml:10:24: source \"c\": bearer_token_file: cannot read /nonexistent/token",
        "source \"d\": basic_auth needs password_file or password_env",
        "conf/h.yaml:12:",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert!(all.contains("unknown field `tokne`"), "{all}");
    assert!(
        all.contains("conf/h.yaml:13:13: source \"f\": url must not carry credentials"),
        "{all}"
    );
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn ca_file_must_hold_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").expect("write");
    let text = "sources:\n  a: { url: \"https://x\", tls: { ca_file: ca.pem } }\n";
    let e = match crate::config::compile(&dir.path().join("h.yaml"), text) {
        Ok(_) => panic!("a CA file without certificates was accepted"),
        Err(d) => d
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    assert!(e.contains(":2:42: source \"a\": tls.ca_file"), "{e}");
    assert!(e.contains("not PEM certificates"), "{e}");
}

#[test]
fn secrets_are_read_and_never_debug_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tok"), "s3cret-token\n").expect("write");
    std::fs::write(dir.path().join("pw"), "pa55word\n").expect("write");
    let text = "sources:\n  a: { url: \"http://x/\", bearer_token_file: tok, timeout: 3s }\n  b: { url: \"https://x/prom\", basic_auth: { username: alice, password_file: pw }, tls: { insecure_skip_verify: true } }\n";
    let cfg = crate::config::compile(&dir.path().join("h.yaml"), text)
        .unwrap_or_else(|d| panic!("{d:?}"));
    let a = &cfg.sources["a"];
    assert_eq!(a.url, "http://x");
    assert_eq!(a.timeout, Duration::from_secs(3));
    assert_eq!(a.auth, SourceAuth::Bearer(Secret::new("s3cret-token")));
    let b = &cfg.sources["b"];
    assert_eq!(b.url, "https://x/prom");
    assert!(b.tls.insecure_skip_verify);
    match &b.auth {
        SourceAuth::Basic { username, password } => {
            assert_eq!(username, "alice");
            assert_eq!(password.expose(), "pa55word");
        }
        other => panic!("{other:?}"),
    }
    let dbg = format!("{cfg:?}");
    assert!(
        !dbg.contains("s3cret-token") && !dbg.contains("pa55word"),
        "{dbg}"
    );
    assert!(dbg.contains("***"));
    // The client's Debug does not show them either.
    let s = Sources::new(&cfg.sources).expect("sources");
    let dbg = format!("{s:?}");
    assert!(
        !dbg.contains("s3cret-token") && !dbg.contains("pa55word"),
        "{dbg}"
    );
}

#[derive(Debug, Default, Clone)]
struct Seen {
    auth: Option<String>,
    content_type: Option<String>,
    body: String,
    path: String,
}

/// A fake Prometheus that records the request and answers `answer`.
async fn recorder(answer: &'static str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let seen = s2.clone();
        async move {
            let (parts, body) = req.into_parts();
            let h = |n: &str| {
                parts
                    .headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let mut rec = Seen {
                auth: h("authorization"),
                content_type: h("content-type"),
                path: parts.uri.path().to_string(),
                ..Seen::default()
            };
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            rec.body = String::from_utf8_lossy(&body).into_owned();
            seen.lock().expect("lock").push(rec);
            ([("content-type", "application/json")], answer)
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn source(url: &str, auth: SourceAuth) -> SourceConfig {
    SourceConfig {
        url: url.to_string(),
        timeout: Duration::from_secs(5),
        auth,
        tls: SourceTls::default(),
    }
}

#[tokio::test]
async fn request_carries_auth_form_body_and_time() {
    let (url, seen) =
        recorder(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"4"]}}"#).await;
    let bearer = PrometheusClient::new(&source(
        &format!("{url}/prefix"),
        SourceAuth::Bearer(Secret::new("tok-1")),
    ))
    .expect("client");
    let r = bearer.query("up == 1", 1_700_000_000_250).await;
    assert_eq!(r.outcome(), "ok");
    let basic = PrometheusClient::new(&source(
        &url,
        SourceAuth::Basic {
            username: "alice".into(),
            password: Secret::new("pw"),
        },
    ))
    .expect("client");
    basic.query("x", 0).await;
    let none = PrometheusClient::new(&source(&url, SourceAuth::None)).expect("client");
    none.query("x", 0).await;

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].path, "/prefix/api/v1/query");
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer tok-1"));
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen[0].body,
        "query=up+%3D%3D+1&time=1700000000.250&timeout=5000ms"
    );
    // base64("alice:pw")
    assert_eq!(seen[1].auth.as_deref(), Some("Basic YWxpY2U6cHc="));
    assert_eq!(seen[2].auth, None);
}

#[tokio::test]
async fn unreachable_and_unconfigured_sources_are_http_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = std::collections::BTreeMap::from([(
        "down".to_string(),
        source(&format!("http://127.0.0.1:{port}"), SourceAuth::None),
    )]);
    let s = Sources::new(&cfg).expect("sources");
    let answers = s
        .run(
            vec![
                RemoteQuery {
                    name: "a".into(),
                    source: "down".into(),
                    expr: "up".into(),
                },
                RemoteQuery {
                    name: "b".into(),
                    source: "nowhere".into(),
                    expr: "up".into(),
                },
            ],
            0,
        )
        .await;
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].name, "a");
    assert_eq!(answers[0].result.outcome(), "http_error");
    assert_eq!(answers[1].name, "b");
    assert_eq!(answers[1].result.outcome(), "http_error");
}

fn remote_rule(kind: &str, on_no_data: &str) -> crate::rules::Rule {
    let cat: crate::rules::Catalog = std::collections::BTreeMap::from([(
        "app".to_string(),
        &crate::model::ActionKind::ALL as &'static [crate::model::ActionKind],
    )]);
    let ctx = crate::rules::LoadContext {
        catalog: &cat,
        sources: ["prom".to_string()].into(),
        default_interval: Duration::from_secs(10),
    };
    let yaml = format!(
        "groups:\n  - name: g\n    rules:\n      - name: r\n        queries: {{ x: {{ source: prom, expr: 'up' }} }}\n        when: x < 1\n        on_no_data: {on_no_data}\n        action: {{ kind: {kind}, target: app, step: 1 }}\n"
    );
    match crate::rules::load_str(Path::new("r.yaml"), &yaml, &ctx) {
        Ok(set) => set.groups[0].rules[0].clone(),
        Err(d) => panic!("{d:?}"),
    }
}

/// Without a Prometheus: each of the four remote outcomes is its own no-data
/// kind in the status and the reason, and none yields a scale_in; the same
/// outcomes do fire a scale_out with `on_no_data: fire` (so the check is not
/// vacuous).
#[test]
fn remote_outcomes_in_the_engine_never_scale_in() {
    let cases = [
        (
            QueryResult::Empty,
            "empty",
            "empty: query x (source prom) returned no series",
        ),
        (
            QueryResult::Failed {
                kind: SourceFailure::HttpError,
                error: "connection refused".into(),
            },
            "http_error",
            "http_error: query x (source prom): connection refused",
        ),
        (
            QueryResult::Failed {
                kind: SourceFailure::PromqlError,
                error: "bad_data: parse error".into(),
            },
            "promql_error",
            "promql_error: query x (source prom): bad_data: parse error",
        ),
        (
            QueryResult::Failed {
                kind: SourceFailure::Timeout,
                error: "no answer within 1s".into(),
            },
            "timeout",
            "timeout: query x (source prom): no answer within 1s",
        ),
    ];
    for (result, kind, text) in cases {
        let outcomes = std::collections::BTreeMap::from([(
            "x".to_string(),
            to_outcome("prom", result.clone()),
        )]);
        for action in ["scale_in", "scale_out"] {
            let rule = remote_rule(action, "fire");
            let mut engine = crate::rules::Engine::new();
            let mut decisions = Vec::new();
            let mut status = None;
            for t in 0..3 {
                let e = engine.evaluate(&rule, &outcomes, 1_000 * t);
                decisions.extend(e.decisions);
                status = Some(e.status);
            }
            let status = status.expect("evaluated");
            assert_eq!(status.no_data_kind, Some(kind), "{action}: {status:?}");
            assert_eq!(status.no_data.as_deref(), Some(text), "{action}");
            if action == "scale_in" {
                assert!(
                    decisions.is_empty(),
                    "{kind}: scale_in decided: {decisions:?}"
                );
            } else {
                assert_eq!(decisions.len(), 3, "{kind}: {status:?}");
                assert_eq!(decisions[0].reason.no_data.as_deref(), Some(text));
            }
        }
    }
}
