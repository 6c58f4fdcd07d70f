//! Receiver tests: wire formats, limits and responses, exact series, exemplars,
//! the rule-engine hook, and arbitrary bytes (proptest) never panicking.
use std::io::Write;

use axum::body::Body;
use axum::http::Request;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use tower::ServiceExt;

use super::*;
use crate::store::{Matcher, Store};

const T0: TimestampMs = 1_700_000_000_000;
const PB: Option<&str> = Some("application/x-protobuf");
const JSON: Option<&str> = Some("application/json");

fn span(trace: u8, name: &str, kind: i32, code: i32, dur_ms: u64) -> Span {
    let start = 1_700_000_000_000_000_000u64;
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![trace; 8],
        name: name.into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + dur_ms * 1_000_000,
        status: Some(Status {
            code,
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn receiver(cfg: OtlpConfig) -> (Arc<OtlpReceiver>, SharedStore) {
    let store = Store::shared();
    let rx = Arc::new(OtlpReceiver::new(
        cfg,
        store.clone(),
        Clock::starting_at(T0),
    ));
    (rx, store)
}

fn small_buckets() -> OtlpConfig {
    OtlpConfig {
        enabled: true,
        buckets: vec![0.1, 0.5, 1.0],
        ..OtlpConfig::default()
    }
}

/// (labels without name, value) of the newest sample of every series of `metric`.
fn latest(store: &SharedStore, metric: &str) -> Vec<(String, f64)> {
    let s = store.read().expect("store");
    let mut v: Vec<(String, f64)> = s
        .select(&[Matcher::equal("__name__", metric)], 0, i64::MAX)
        .into_iter()
        .filter_map(|v| {
            let last = v.samples.last()?.1;
            Some((v.labels.without_metric_name().to_string(), last))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

/// 2 = SERVER, 3 = CLIENT; 1 = OK, 2 = ERROR.
fn checkout_spans() -> Vec<Span> {
    vec![
        span(1, "GET /pay", 2, 1, 50),
        span(2, "GET /pay", 2, 1, 300),
        span(3, "GET /pay", 2, 2, 700),
        span(4, "GET /pay", 2, 0, 2_000),
        span(5, "db", 3, 0, 100),
    ]
}

fn expect_checkout_series(store: &SharedStore, factor: f64) {
    let f = factor;
    assert_eq!(
        latest(store, SPANS_TOTAL),
        vec![
            ("{service=\"checkout\", span_kind=\"SPAN_KIND_CLIENT\", span_name=\"db\", status_code=\"STATUS_CODE_UNSET\"}".to_string(), f),
            ("{service=\"checkout\", span_kind=\"SPAN_KIND_SERVER\", span_name=\"GET /pay\", status_code=\"STATUS_CODE_ERROR\"}".to_string(), f),
            ("{service=\"checkout\", span_kind=\"SPAN_KIND_SERVER\", span_name=\"GET /pay\", status_code=\"STATUS_CODE_OK\"}".to_string(), 2.0 * f),
            ("{service=\"checkout\", span_kind=\"SPAN_KIND_SERVER\", span_name=\"GET /pay\", status_code=\"STATUS_CODE_UNSET\"}".to_string(), f),
        ]
    );
    let b = latest(store, "traces_span_duration_seconds_bucket");
    let server: Vec<(String, f64)> = b
        .iter()
        .filter(|(l, _)| l.contains("SERVER"))
        .map(|(l, v)| {
            let le = l
                .split("le=\"")
                .nth(1)
                .unwrap_or("")
                .split('"')
                .next()
                .unwrap_or("");
            (le.to_string(), *v)
        })
        .collect();
    // le sorts as text: "+Inf" < "0.1" < "0.5" < "1".
    assert_eq!(
        server,
        vec![
            ("+Inf".to_string(), 4.0 * f),
            ("0.1".to_string(), f),
            ("0.5".to_string(), 2.0 * f),
            ("1".to_string(), 3.0 * f),
        ]
    );
    let client_le_0_1 = b
        .iter()
        .find(|(l, _)| l.contains("CLIENT") && l.contains("le=\"0.1\""))
        .map(|x| x.1);
    assert_eq!(client_le_0_1, Some(f), "0.1s falls in le=0.1 (inclusive)");
    let sums = latest(store, "traces_span_duration_seconds_sum");
    assert_eq!(sums.len(), 2);
    assert!((sums[1].1 - 3.05 * f).abs() < 1e-9, "{sums:?}");
    assert!((sums[0].1 - 0.1 * f).abs() < 1e-9, "{sums:?}");
    let counts = latest(store, "traces_span_duration_seconds_count");
    assert_eq!(
        counts.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![f, 4.0 * f]
    );
}

#[test]
fn protobuf_request_becomes_exact_counters_and_histograms() {
    let (rx, store) = receiver(small_buckets());
    let body = request("checkout", checkout_spans()).encode_to_vec();
    let (enc, resp) = rx.handle(PB, None, &body, T0).expect("accepted");
    assert_eq!(enc, Encoding::Protobuf);
    assert_eq!(resp.partial_success, None);
    expect_checkout_series(&store, 1.0);
    // Counters are cumulative: a second identical request doubles every total.
    rx.handle(PB, Some("gzip"), &gzip(&body), T0 + 1_000)
        .expect("accepted");
    expect_checkout_series(&store, 2.0);
}

#[test]
fn same_millisecond_requests_are_not_lost() {
    let (rx, store) = receiver(small_buckets());
    let body = request("checkout", checkout_spans()).encode_to_vec();
    rx.handle(PB, None, &body, T0).expect("accepted");
    rx.handle(PB, None, &body, T0).expect("accepted");
    expect_checkout_series(&store, 2.0);
    let s = store.read().expect("store");
    let v = s.select(&[Matcher::equal("__name__", SPANS_TOTAL)], 0, i64::MAX);
    assert_eq!(
        v[0].samples.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![T0, T0 + 1]
    );
}

#[test]
fn json_mapping_hex_ids_enum_names_or_numbers_and_string_int64() {
    let (rx, store) = receiver(small_buckets());
    let spans: Vec<serde_json::Value> = [
        (
            1,
            "GET /pay",
            "SPAN_KIND_SERVER",
            serde_json::json!("STATUS_CODE_OK"),
            50,
        ),
        (2, "GET /pay", "SPAN_KIND_SERVER", serde_json::json!(1), 300),
        (
            3,
            "GET /pay",
            "SPAN_KIND_SERVER",
            serde_json::json!("STATUS_CODE_ERROR"),
            700,
        ),
        (
            4,
            "GET /pay",
            "SPAN_KIND_SERVER",
            serde_json::json!(0),
            2_000,
        ),
        (5, "db", "SPAN_KIND_CLIENT", serde_json::json!(0), 100),
    ]
    .into_iter()
    .map(
        |(t, name, kind, code, ms): (u8, &str, &str, serde_json::Value, u64)| {
            let start = 1_700_000_000_000_000_000u64;
            serde_json::json!({
                "traceId": hex::encode([t; 16]),
                "spanId": hex::encode([t; 8]),
                "name": name,
                "kind": if t == 5 { serde_json::json!(3) } else { serde_json::json!(kind) },
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + ms * 1_000_000).to_string(),
                "status": {"code": code},
            })
        },
    )
    .collect();
    let body = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
    }]});
    let bytes = serde_json::to_vec(&body).expect("json");
    let (enc, resp) = rx
        .handle(Some("application/json; charset=utf-8"), None, &bytes, T0)
        .expect("accepted");
    assert_eq!(enc, Encoding::Json);
    assert_eq!(resp.partial_success, None);
    expect_checkout_series(&store, 1.0);
}

#[test]
fn refusals_map_to_otlp_statuses_with_messages() {
    let (rx, store) = receiver(OtlpConfig {
        max_body_bytes: 1_000,
        ..small_buckets()
    });
    let e = |r: Result<_, (Option<Encoding>, ExportError)>| match r {
        Ok(_) => panic!("expected a refusal"),
        Err((_, e)) => (e.status(), e.to_string()),
    };
    let (st, msg) = e(rx.handle(Some("text/plain"), None, b"x", T0));
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(msg.contains("text/plain"), "{msg}");
    assert_eq!(
        e(rx.handle(None, None, b"x", T0)).0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        e(rx.handle(PB, Some("br"), b"x", T0)).0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let (st, msg) = e(rx.handle(PB, None, &[0xff, 0xff, 0xff], T0));
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(msg.starts_with("invalid OTLP protobuf"), "{msg}");
    let (st, msg) = e(rx.handle(JSON, None, b"{\"resourceSpans\": [", T0));
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(msg.starts_with("invalid OTLP JSON"), "{msg}");
    let (st, msg) = e(rx.handle(
        JSON,
        None,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#,
        T0,
    ));
    assert_eq!(st, StatusCode::BAD_REQUEST, "{msg}");
    let (st, _) = e(rx.handle(PB, Some("gzip"), b"not gzip", T0));
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        e(rx.handle(PB, None, &[0u8; 1_001], T0)).0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // A small gzip body that inflates past the limit.
    let bomb = gzip(&[0u8; 50_000]);
    assert!(bomb.len() < 1_000);
    assert_eq!(
        e(rx.handle(PB, Some("gzip"), &bomb, T0)).0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(store.read().expect("store").series_count(), 0);
}

#[test]
fn partial_success_counts_invalid_and_over_limit_spans() {
    let (rx, store) = receiver(OtlpConfig {
        max_spans_per_request: 4,
        ..small_buckets()
    });
    let mut spans = checkout_spans(); // 5 valid
    let mut bad_id = span(0, "x", 2, 0, 1);
    bad_id.trace_id = vec![0; 16];
    let mut backwards = span(9, "x", 2, 0, 1);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    spans.insert(0, bad_id);
    spans.insert(1, backwards);
    let body = request("checkout", spans).encode_to_vec();
    let (_, resp) = rx.handle(PB, None, &body, T0).expect("accepted");
    let p = resp.partial_success.expect("partial");
    // 2 invalid + 2 valid accepted (4 taken), 3 past the request limit.
    assert_eq!(p.rejected_spans, 5);
    assert_eq!(
        p.error_message,
        "5 of 7 spans rejected (invalid: 2, request_limit: 3); see traces_spans_dropped_total"
    );
    assert_eq!(
        latest(&store, DROPPED_TOTAL),
        vec![
            ("{reason=\"invalid\"}".to_string(), 2.0),
            ("{reason=\"request_limit\"}".to_string(), 3.0),
        ]
    );
    let total: f64 = latest(&store, SPANS_TOTAL).iter().map(|x| x.1).sum();
    assert_eq!(total, 2.0);
}

#[test]
fn span_name_cap_per_service_drops_and_counts() {
    let (rx, store) = receiver(OtlpConfig {
        max_span_names_per_service: 2,
        ..small_buckets()
    });
    let spans = vec![
        span(1, "a", 2, 0, 1),
        span(2, "b", 2, 0, 1),
        span(3, "c", 2, 0, 1),
        span(4, "c", 2, 0, 1),
    ];
    let (_, resp) = rx
        .handle(PB, None, &request("svc", spans).encode_to_vec(), T0)
        .expect("accepted");
    assert_eq!(resp.partial_success.map(|p| p.rejected_spans), Some(2));
    // Known names keep counting; another service has its own budget.
    rx.handle(
        PB,
        None,
        &request("svc", vec![span(5, "a", 2, 0, 1)]).encode_to_vec(),
        T0 + 1,
    )
    .expect("accepted");
    rx.handle(
        PB,
        None,
        &request("other", vec![span(6, "c", 2, 0, 1)]).encode_to_vec(),
        T0 + 2,
    )
    .expect("accepted");
    let names: Vec<(String, f64)> = latest(&store, SPANS_TOTAL);
    assert_eq!(names.len(), 3);
    assert!(names[0].0.contains("service=\"other\""));
    assert!(names[1].0.contains("span_name=\"a\"") && names[1].1 == 2.0);
    assert_eq!(
        latest(&store, DROPPED_TOTAL),
        vec![("{reason=\"span_name_limit\"}".to_string(), 2.0)]
    );
    // Dropped spans leave no histogram either: svc/a, svc/b, other/c.
    let hists = latest(&store, "traces_span_duration_seconds_count");
    assert_eq!(
        hists.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![1.0, 2.0, 1.0]
    );
}

#[test]
fn missing_service_and_empty_name_get_placeholder_labels() {
    let (rx, store) = receiver(small_buckets());
    let mut req = request("x", vec![span(1, "", 1, 0, 1)]);
    req.resource_spans[0].resource = None;
    rx.handle(PB, None, &req.encode_to_vec(), T0)
        .expect("accepted");
    assert_eq!(
        latest(&store, SPANS_TOTAL),
        vec![("{service=\"unknown_service\", span_kind=\"SPAN_KIND_INTERNAL\", span_name=\"unknown\", status_code=\"STATUS_CODE_UNSET\"}".to_string(), 1.0)]
    );
}

#[test]
fn exemplars_keep_slowest_and_recent_failures_within_the_window() {
    let (rx, _) = receiver(OtlpConfig {
        exemplars_per_series: 2,
        ..small_buckets()
    });
    let spans = vec![
        span(1, "GET /pay", 2, 1, 10),
        span(2, "GET /pay", 2, 1, 900),
        span(3, "GET /pay", 2, 1, 500),
        span(4, "GET /pay", 2, 2, 5),
        span(5, "GET /pay", 2, 2, 6),
        span(6, "GET /pay", 2, 2, 7),
    ];
    rx.handle(PB, None, &request("checkout", spans).encode_to_vec(), T0)
        .expect("accepted");
    let idx = rx.exemplars();
    let id = |b: u8| hex::encode([b; 16]);
    let labels = Labels::new([("service", "checkout")]);
    // Failed (most recent kept: 5, 6), then slowest (2, 3).
    assert_eq!(idx.trace_ids(&labels, T0), vec![id(5), id(6), id(2), id(3)]);
    assert!(idx
        .trace_ids(&Labels::new([("service", "other")]), T0)
        .is_empty());
    assert!(idx
        .trace_ids(&labels, T0 + EXEMPLAR_WINDOW_MS + 1)
        .is_empty());
    let q = ["sum(rate(traces_spans_total{service=\"checkout\"}[1m]))"];
    assert_eq!(
        idx.for_decision(&q, &Labels::empty(), T0).map(|v| v.len()),
        Some(4)
    );
    assert_eq!(
        idx.for_decision(&["sum(rate(http_requests_total[1m]))"], &labels, T0),
        None
    );
    assert_eq!(
        idx.for_decision(&["sum(traces_spans_total)"], &Labels::empty(), T0),
        Some(vec![])
    );
}

#[test]
fn rule_queries_over_span_series_and_decisions_carry_trace_ids() {
    use crate::model::QueryOutcome;
    use crate::rules::Engine;
    let (rx, store) = receiver(OtlpConfig {
        exemplars_per_series: 1,
        ..small_buckets()
    });
    // One request per 10s for 2 minutes: 8 calls, 2 of them failed, each time.
    for i in 0..12 {
        let mut spans: Vec<Span> = (0..6)
            .map(|j| span(10 + j, "GET /pay", 2, 1, 200))
            .collect();
        spans.push(span(100 + i as u8, "GET /pay", 2, 2, 800));
        spans.push(span(200 + i as u8, "GET /pay", 2, 2, 50));
        rx.handle(
            PB,
            None,
            &request("checkout", spans).encode_to_vec(),
            T0 + i * 10_000,
        )
        .expect("accepted");
    }
    let at = T0 + 110_000;
    let s = store.read().expect("store");
    let ratio = crate::query::compile("sum by (service)(rate(traces_spans_total{status_code=\"STATUS_CODE_ERROR\"}[1m])) / sum by (service)(rate(traces_spans_total[1m]))").expect("compile");
    let v = ratio.eval_vector(&s, at).expect("eval");
    assert_eq!(v.len(), 1);
    assert!((v[0].value - 0.25).abs() < 1e-9, "{v:?}");
    let p = crate::query::compile("histogram_quantile(0.5, sum by (le, service)(rate(traces_span_duration_seconds_bucket[1m])))").expect("compile");
    let v = p.eval_vector(&s, at).expect("eval");
    // 8 per request: 1 ≤ 0.1, 6 in (0.1, 0.5], 1 in (0.5, 1]; median rank 4 → 0.1 + 0.4 * 3/6.
    assert!((v[0].value - 0.3).abs() < 1e-9, "{v:?}");
    drop(s);

    let yaml = "groups:\n  - name: g\n    rules:\n      - name: errors\n        queries:\n          ratio: 'sum by (service)(rate(traces_spans_total{status_code=\"STATUS_CODE_ERROR\"}[1m])) / sum by (service)(rate(traces_spans_total[1m]))'\n        when: ratio > 0.1\n        action: { kind: scale_out, target: app }\n";
    let cat = std::collections::BTreeMap::from([(
        "app".to_string(),
        &crate::model::ActionKind::ALL as &'static [crate::model::ActionKind],
    )]);
    let ctx = crate::rules::LoadContext {
        catalog: &cat,
        sources: Default::default(),
        default_interval: std::time::Duration::from_secs(10),
    };
    let set = crate::rules::load_str(std::path::Path::new("r.yaml"), yaml, &ctx).expect("rules");
    let rule = &set.groups[0].rules[0];
    let outcomes = crate::agent::tick::local_outcomes(rule, &store.read().expect("store"), at);
    assert!(matches!(outcomes["ratio"], QueryOutcome::Ok(_)));
    let mut engine = Engine::new();
    let eval =
        crate::agent::tick::evaluate(&mut engine, rule, &outcomes, Some(&rx.exemplars()), at);
    assert_eq!(eval.decisions.len(), 1);
    let ids = &eval.decisions[0].reason.trace_ids;
    // The latest failure (one kept per series), then the slowest span.
    assert_eq!(
        ids,
        &vec![hex::encode([211u8; 16]), hex::encode([111u8; 16])]
    );
    // Without the index (or for other rules) the reason has none.
    let eval = crate::agent::tick::evaluate(&mut Engine::new(), rule, &outcomes, None, at);
    assert!(eval.decisions[0].reason.trace_ids.is_empty());
}

#[tokio::test]
async fn http_route_answers_in_the_request_encoding() {
    let (rx, _store) = receiver(OtlpConfig {
        max_spans_per_request: 1,
        ..small_buckets()
    });
    let app = rx
        .router()
        .layer(axum::extract::DefaultBodyLimit::max(10_000));
    let call = |ct: &str, body: Vec<u8>| {
        let app = app.clone();
        let req = Request::post("/v1/traces")
            .header("content-type", ct)
            .body(Body::from(body))
            .expect("request");
        async move {
            let resp = app.oneshot(req).await.expect("infallible");
            let status = resp.status();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let b = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
            (status, ct, b)
        }
    };
    let body = request("s", vec![span(1, "a", 2, 0, 1), span(2, "a", 2, 0, 1)]).encode_to_vec();
    let (st, ct, b) = call("application/x-protobuf", body).await;
    assert_eq!(
        (st, ct.as_str()),
        (StatusCode::OK, "application/x-protobuf")
    );
    let resp = ExportTraceServiceResponse::decode(&b[..]).expect("response");
    assert_eq!(resp.partial_success.map(|p| p.rejected_spans), Some(1));

    let (st, ct, b) = call("application/json", b"{}".to_vec()).await;
    assert_eq!((st, ct.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(&b[..], b"{}");

    let (st, ct, b) = call("application/json", b"[".to_vec()).await;
    assert_eq!(
        (st, ct.as_str()),
        (StatusCode::BAD_REQUEST, "application/json")
    );
    let v: serde_json::Value = serde_json::from_slice(&b).expect("status json");
    assert_eq!(v["code"], 3);
    assert!(v["message"]
        .as_str()
        .unwrap_or("")
        .contains("invalid OTLP JSON"));

    let (st, _, b) = call("application/x-protobuf", vec![0xff; 3]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let s = RpcStatus::decode(&b[..]).expect("rpc status");
    assert!(s.message.contains("invalid OTLP protobuf"), "{}", s.message);

    let (st, _, _) = call("text/plain", vec![]).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Past the server's body limit: refused before decoding.
    let (st, _, _) = call("application/x-protobuf", vec![0; 10_001]).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn config_defaults_and_errors() {
    let c = config::compile(config::RawOtlp::default()).expect("defaults");
    assert_eq!(c, OtlpConfig::default());
    assert!(!c.enabled);
    let raw: config::RawOtlp = serde_yaml::from_str(
        "{enabled: true, histogram_buckets: [0.5, 0.1], max_body_bytes: 3 parsecs, max_spans_per_request: 0}",
    )
    .expect("yaml");
    let errs = config::compile(raw).expect_err("invalid");
    let fields: Vec<&str> = errs.iter().map(|e| e.0).collect();
    assert_eq!(
        fields,
        vec![
            "histogram_buckets",
            "max_body_bytes",
            "max_spans_per_request"
        ]
    );
    assert!(serde_yaml::from_str::<config::RawOtlp>("{enable: true}").is_err());
    let raw: config::RawOtlp = serde_yaml::from_str(
        "{enabled: true, histogram_buckets: [1, 2, .inf], max_body_bytes: 1MiB}",
    )
    .expect("yaml");
    let c = config::compile(raw).expect("valid");
    assert_eq!((c.buckets, c.max_body_bytes), (vec![1.0, 2.0], 1 << 20));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes in any encoding never panic; the outcome is 200 or a
    /// 400/413 with a message.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), json in any::<bool>(), gz in any::<bool>()) {
        let (rx, _) = receiver(OtlpConfig { max_body_bytes: 4096, ..small_buckets() });
        let ct = if json { JSON } else { PB };
        let body = if gz { gzip(&body) } else { body };
        match rx.handle(ct, gz.then_some("gzip"), &body, T0) {
            Ok(_) => {}
            Err((_, e)) => {
                prop_assert!(matches!(e.status(), StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE));
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    /// Mutated valid requests (bit flips in a real protobuf body) never panic.
    #[test]
    fn mutated_protobuf_never_panics(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let (rx, _) = receiver(small_buckets());
        let mut body = request("checkout", checkout_spans()).encode_to_vec();
        for (i, b) in flips {
            let n = body.len();
            body[i.index(n)] ^= b;
        }
        let _ = rx.handle(PB, None, &body, T0);
    }
}

#[test]
fn services_past_the_service_limit_are_dropped_and_counted() {
    let (rx, store) = receiver(small_buckets());
    let mut req = request("s", vec![]);
    let template = req.resource_spans[0].clone();
    req.resource_spans = (0..MAX_SERVICES + 5)
        .map(|i| {
            let mut r = template.clone();
            if let Some(res) = r.resource.as_mut() {
                res.attributes[0].value = Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!("svc-{i:05}"))),
                });
            }
            r.scope_spans[0].spans = vec![span(1, "op", 2, 0, 1)];
            r
        })
        .collect();
    let (_, resp) = rx
        .handle(PB, None, &req.encode_to_vec(), T0)
        .expect("accepted");
    assert_eq!(resp.partial_success.map(|p| p.rejected_spans), Some(5));
    assert_eq!(latest(&store, SPANS_TOTAL).len(), MAX_SERVICES);
    assert_eq!(
        latest(&store, DROPPED_TOTAL),
        vec![("{reason=\"service_limit\"}".to_string(), 5.0)]
    );
}

#[test]
fn agent_config_reports_otlp_errors_with_positions() {
    let p = std::path::Path::new("homeostat.yaml");
    let c = crate::config::compile(p, "otlp:\n  enabled: true\n  exemplars_per_series: 5\n")
        .expect("valid");
    assert!(c.otlp.enabled);
    assert_eq!(c.otlp.exemplars_per_series, 5);
    assert!(!crate::config::compile(p, "").expect("empty").otlp.enabled);
    let errs = crate::config::compile(p, "otlp:\n  enabled: true\n  max_spans_per_request: 0\n")
        .expect_err("invalid");
    let text: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("homeostat.yaml:3") && t.contains("otlp.max_spans_per_request")),
        "{text:?}"
    );
    let errs = crate::config::compile(p, "otlp:\n  enable: true\n").expect_err("typo");
    assert!(
        errs.iter().any(|d| d.to_string().contains("enable")),
        "{errs:?}"
    );
}
