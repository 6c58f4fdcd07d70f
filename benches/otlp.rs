//! OTLP ingestion in spans per second: protobuf decode + conversion to span
//! metrics + store append, for one realistic export batch (512 spans, 10
//! services, 20 span names per service, server/client/internal kinds, ~3 %
//! errors), as the OpenTelemetry SDK's batch processor sends it. `json` is the
//! same batch through the OTLP/JSON path.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use homeostat::clock::Clock;
use homeostat::sources::otlp::{OtlpConfig, OtlpReceiver};
use homeostat::store::Store;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

const SPANS: usize = 512;
const SERVICES: usize = 10;
const NAMES: usize = 20;

fn batch() -> ExportTraceServiceRequest {
    let start = 1_700_000_000_000_000_000u64;
    let resource_spans = (0..SERVICES)
        .map(|s| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(format!("service-{s}"))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..SPANS / SERVICES + usize::from(s < SPANS % SERVICES))
                    .map(|i| {
                        let n = (s * 7919 + i * 104_729) as u64;
                        Span {
                            trace_id: (n as u128 + 1).to_be_bytes().to_vec(),
                            span_id: (n + 1).to_be_bytes().to_vec(),
                            name: format!("operation-{}", i % NAMES),
                            kind: 1 + (i % 3) as i32,
                            start_time_unix_nano: start,
                            end_time_unix_nano: start + (n % 2_000) * 1_000_000,
                            status: Some(Status {
                                code: if i % 33 == 0 { 2 } else { 0 },
                                message: String::new(),
                            }),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

fn ingest(c: &mut Criterion) {
    let req = batch();
    let count: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(count, SPANS);
    let pb = req.encode_to_vec();
    let json = serde_json::to_vec(&req).expect("json");
    let mut g = c.benchmark_group("otlp_ingest");
    g.throughput(Throughput::Elements(SPANS as u64));
    for (name, ct, body) in [
        ("protobuf_512_spans", "application/x-protobuf", &pb),
        ("json_512_spans", "application/json", &json),
    ] {
        let rx = OtlpReceiver::new(
            OtlpConfig {
                enabled: true,
                ..OtlpConfig::default()
            },
            Store::shared(),
            Clock::starting_at(0),
        );
        let mut t = 1_700_000_000_000i64;
        g.bench_function(name, |b| {
            b.iter(|| {
                t += 1_000;
                let r = rx.handle(Some(ct), None, black_box(body), t);
                black_box(r.is_ok())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
