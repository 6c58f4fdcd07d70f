//! One evaluation of 1,000 typical rules over 100,000 series: each rule is
//! `sum by (job) (rate(http_requests_total{job="svc-N"}[1m])) > threshold`,
//! the shape most remediation rules have, evaluated through the functions the
//! agent runs every group interval (`homeostat::agent::tick`).
//!
//! Store: 1,000 services × 100 instances of a request counter (100,000
//! series), 5 minutes of 10 s samples. Under `cargo test --benches` (no
//! `--bench` flag: each bench body runs once, in a debug build) the store has
//! 10 instances per service, so CI checks the bench quickly; the figure comes
//! from `cargo bench`, at full size.
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use homeostat::agent::{catalog_for, load_context, tick};
use homeostat::model::Labels;
use homeostat::rules::{self, Engine, RuleSet};
use homeostat::store::Store;

const SERVICES: usize = 1_000;
const INSTANCES: usize = 100;
const INSTANCES_SMOKE: usize = 10;
const STEP_MS: i64 = 10_000;
const SAMPLES: i64 = 31; // 5 minutes

fn fill(instances: usize) -> (Store, i64) {
    let mut store = Store::new();
    let t0 = 1_700_000_000_000;
    let mut ids = Vec::with_capacity(SERVICES * instances);
    for s in 0..SERVICES {
        let job = format!("svc-{s}");
        for i in 0..instances {
            let inst = format!("10.{}.{}.{}:8080", s / 250, s % 250, i);
            let labels = Labels::new([
                ("__name__", "http_requests_total"),
                ("job", job.as_str()),
                ("instance", inst.as_str()),
                ("code", "200"),
            ]);
            // Services differ in traffic so that some rules fire.
            let per_step = (1 + s % 20) as f64 * (INSTANCES / instances) as f64;
            ids.push((store.series_id(&labels), per_step));
        }
    }
    for n in 0..SAMPLES {
        let t = t0 + n * STEP_MS;
        for (id, per_step) in &ids {
            store.append_id(*id, t, per_step * n as f64);
        }
    }
    assert_eq!(store.series_count(), SERVICES * instances);
    (store, t0 + (SAMPLES - 1) * STEP_MS)
}

fn rules() -> RuleSet {
    let mut text = String::from("groups:\n  - name: bench\n    rules:\n");
    for s in 0..SERVICES {
        text.push_str(&format!(
            "      - name: svc-{s}-scale-out\n        queries:\n          rps: sum by (job) (rate(http_requests_total{{job=\"svc-{s}\"}}[1m]))\n        when: rps > 150\n        for: 1m\n        action: {{ kind: scale_out, target: app }}\n"
        ));
    }
    let cfg = homeostat::config::compile(
        Path::new("bench.yaml"),
        "targets:\n  app:\n    provider: webhook\n    webhook: { url: \"http://127.0.0.1:9/\" }\n",
    )
    .expect("bench config");
    let cat = catalog_for(&cfg);
    let ctx = load_context(&cfg, &cat);
    rules::load_str(Path::new("bench-rules.yaml"), &text, &ctx).expect("bench rules")
}

/// Evaluate every rule once; returns how many rule instances are not inactive.
fn tick(set: &RuleSet, store: &Store, engine: &mut Engine, now: i64) -> usize {
    let mut active = 0;
    for r in set.rules() {
        let outcomes = tick::local_outcomes(r, store, now);
        active += tick::evaluate(engine, r, &outcomes, None, now)
            .status
            .instances
            .len();
    }
    active
}

fn bench(c: &mut Criterion) {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let instances = if benchmarking {
        INSTANCES
    } else {
        INSTANCES_SMOKE
    };
    let (store, now) = fill(instances);
    let set = rules();
    assert_eq!(set.rules().count(), SERVICES);
    let mut engine = Engine::new();
    // Sanity: services with 10 or more requests per step per instance (× 100
    // instances ÷ 10 s = 100+ rps) exceed 150 rps from 16 per step on; those rules hold.
    let active = tick(&set, &store, &mut engine, now);
    assert!(
        active > 0 && active < SERVICES,
        "{active} of {SERVICES} rules active"
    );

    let mut g = c.benchmark_group("rules_1000");
    g.sample_size(10);
    g.throughput(Throughput::Elements(SERVICES as u64));
    let name = format!("1000_rules/{}k_series", SERVICES * instances / 1000);
    g.bench_function(&name, |b| b.iter(|| tick(&set, &store, &mut engine, now)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
