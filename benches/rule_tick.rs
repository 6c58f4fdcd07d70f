//! One rule-evaluation tick over 10,000 series: query evaluation plus the
//! rule engine, through the functions the agent runs every group interval
//! (`homeostat::agent::tick`).
//!
//! Store: 1,000 instances × 10 series (2 request counters, 7 histogram
//! buckets, `up`), 10 minutes of 10 s samples. Rules: the demo's shapes —
//! service-wide p99 and rps, a per-instance 5xx ratio, per-instance `up`, and a
//! per-instance p99.
use std::collections::BTreeMap;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use homeostat::agent::{catalog_for, load_context, tick};
use homeostat::model::{Labels, QueryOutcome};
use homeostat::rules::{self, Engine, RuleSet};
use homeostat::store::Store;

const INSTANCES: usize = 1_000;
const STEP_MS: i64 = 10_000;
const SAMPLES: i64 = 60; // 10 minutes
const LES: [&str; 7] = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];

fn fill() -> (Store, i64) {
    let mut store = Store::new();
    let t0 = 1_700_000_000_000;
    let mut series = Vec::with_capacity(INSTANCES * 10);
    for i in 0..INSTANCES {
        let inst = format!("10.0.{}.{}:8080", i / 250, i % 250);
        let base = [("job", "app"), ("instance", inst.as_str())];
        for code in ["200", "500"] {
            let l = base.iter().copied().chain([
                ("__name__", "http_requests_total"),
                ("code", code),
                ("method", "GET"),
            ]);
            series.push((
                store.series_id(&Labels::new(l)),
                if code == "200" {
                    50.0
                } else {
                    1.0 + (i % 7) as f64
                },
            ));
        }
        for (k, le) in LES.iter().enumerate() {
            let l = base.iter().copied().chain([
                ("__name__", "http_request_duration_seconds_bucket"),
                ("le", *le),
            ]);
            series.push((store.series_id(&Labels::new(l)), 10.0 * (k + 1) as f64));
        }
        let l = base.iter().copied().chain([("__name__", "up")]);
        series.push((
            store.series_id(&Labels::new(l)),
            if i % 100 == 0 { -1.0 } else { 0.0 },
        ));
    }
    for n in 0..SAMPLES {
        let t = t0 + n * STEP_MS;
        for (id, per_step) in &series {
            // counters grow by `per_step`; `up` (negative marker) is 0 or 1
            let v = if *per_step <= 0.0 {
                if *per_step < 0.0 {
                    0.0
                } else {
                    1.0
                }
            } else {
                per_step * n as f64
            };
            store.append_id(*id, t, v);
        }
    }
    assert_eq!(store.series_count(), INSTANCES * 10);
    (store, t0 + (SAMPLES - 1) * STEP_MS)
}

const RULES: &str = r#"
groups:
  - name: bench
    rules:
      - name: latency-scale-out
        queries:
          p99: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job="app"}[1m])))
          rps: sum(rate(http_requests_total{job="app"}[1m]))
        when: p99 > 0.25 && rps > 5
        for: 30s
        action: { kind: scale_out, target: app }
      - name: instance-errors
        queries:
          error_ratio: >-
            sum by (instance) (rate(http_requests_total{job="app", code=~"5.."}[1m]))
            / sum by (instance) (rate(http_requests_total{job="app"}[1m]))
        when: error_ratio > 0.1
        for: 1m
        action: { kind: circuit_break, target: app, instance: "{{ labels.instance }}" }
      - name: instance-down
        queries:
          up: up{job="app"}
        when: up == 0
        action: { kind: failover, target: app, instance: "{{ labels.instance }}" }
      - name: instance-latency
        queries:
          p99: histogram_quantile(0.99, sum by (instance, le) (rate(http_request_duration_seconds_bucket{job="app"}[1m])))
        when: p99 > 0.5
        for: 2m
        annotations: { summary: "{{ labels.instance }} p99 {{ p99 }}s" }
        action: { kind: failover, target: app, instance: "{{ labels.instance }}" }
"#;

fn rules() -> RuleSet {
    let cfg = homeostat::config::compile(
        Path::new("bench.yaml"),
        "targets:\n  app:\n    provider: webhook\n    webhook: { url: \"http://127.0.0.1:9/\" }\n",
    )
    .expect("bench config");
    let cat = catalog_for(&cfg);
    let ctx = load_context(&cfg, &cat);
    rules::load_str(Path::new("bench-rules.yaml"), RULES, &ctx).expect("bench rules")
}

fn tick(set: &RuleSet, store: &Store, engine: &mut Engine, now: i64) -> usize {
    let mut decisions = 0;
    for g in &set.groups {
        for r in &g.rules {
            let outcomes = tick::local_outcomes(r, store, now);
            decisions += tick::evaluate(engine, r, &outcomes, None, now)
                .decisions
                .len();
        }
    }
    decisions
}

fn bench(c: &mut Criterion) {
    let (store, now) = fill();
    let set = rules();
    let mut engine = Engine::new();
    // Sanity: the per-instance rules really produce instances.
    let first = tick(&set, &store, &mut engine, now);
    assert!(first > 0, "bench rules produced no decisions");

    let mut g = c.benchmark_group("rule_tick");
    g.sample_size(10);
    g.throughput(Throughput::Elements((INSTANCES * 10) as u64));
    g.bench_function("queries+engine/10k_series/4_rules", |b| {
        b.iter(|| tick(&set, &store, &mut engine, now))
    });
    g.bench_function("queries_only/10k_series/4_rules", |b| {
        b.iter(|| {
            set.rules()
                .map(|r| tick::local_outcomes(r, &store, now).len())
                .sum::<usize>()
        })
    });
    let outcomes: Vec<BTreeMap<String, QueryOutcome>> = set
        .rules()
        .map(|r| tick::local_outcomes(r, &store, now))
        .collect();
    g.bench_function("engine_only/4_rules", |b| {
        b.iter(|| {
            set.rules()
                .zip(&outcomes)
                .map(|(r, o)| tick::evaluate(&mut engine, r, o, None, now).decisions.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
