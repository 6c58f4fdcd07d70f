//! Engine and loader tests with explicit time.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::model::{ActionKind, Labels, Mode, Sample, *};

fn catalog() -> Catalog {
    BTreeMap::from([
        ("app".to_string(), &ActionKind::ALL as &'static [ActionKind]),
        ("hook".to_string(), &[ActionKind::ScaleOut][..]),
    ])
}

fn load(yaml: &str) -> Result<RuleSet, Vec<crate::spec::Diagnostic>> {
    let cat = catalog();
    let ctx = LoadContext {
        catalog: &cat,
        sources: ["prom".to_string()].into(),
        default_interval: Duration::from_secs(10),
    };
    load_str(Path::new("r.yaml"), yaml, &ctx)
}

/// One rule in one group, from the body of the rule (indented 6 spaces).
fn rule(body: &str) -> Rule {
    let yaml = format!("groups:\n  - name: g\n    rules:\n      - name: r\n{body}");
    match load(&yaml) {
        Ok(set) => set.groups[0].rules[0].clone(),
        Err(d) => panic!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn s(labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        labels: Labels::new(labels.iter().copied()),
        value,
    }
}

fn ok(samples: Vec<Sample>) -> QueryOutcome {
    QueryOutcome::Ok(samples)
}

fn one(name: &str, v: f64) -> BTreeMap<String, QueryOutcome> {
    BTreeMap::from([(name.to_string(), ok(vec![s(&[], v)]))])
}

const SCALE_OUT: &str = "        queries: { x: 'sum(up)' }
        when: x > 1
        for: 30s
        action: { kind: scale_out, target: app }
";

#[test]
fn for_goes_pending_then_firing() {
    let r = rule(SCALE_OUT);
    let mut st = RuleState::default();
    for t in [0, 10_000, 20_000] {
        let e = r.evaluate(&mut st, &one("x", 5.0), t);
        assert!(e.decisions.is_empty(), "fired early at {t}");
        assert_eq!(e.status.state, AlertState::Pending);
        assert_eq!(e.status.instances[0].active_since, 0);
    }
    let e = r.evaluate(&mut st, &one("x", 5.0), 30_000);
    assert_eq!(e.status.state, AlertState::Firing);
    assert_eq!(e.decisions.len(), 1);
    let d = &e.decisions[0];
    assert_eq!(d.reason.pending_since, Some(0));
    assert_eq!(d.reason.for_ms, 30_000);
    assert_eq!(d.reason.values["x"], 5.0);
    assert_eq!(d.at, 30_000);
    // every evaluation while firing yields a decision (the guard does cooldowns)
    assert_eq!(
        r.evaluate(&mut st, &one("x", 5.0), 40_000).decisions.len(),
        1
    );
    // condition false → inactive, no decision
    let e = r.evaluate(&mut st, &one("x", 0.0), 50_000);
    assert!(e.decisions.is_empty());
    assert_eq!(e.status.state, AlertState::Inactive);
    assert!(e.status.instances.is_empty());
}

#[test]
fn zero_for_fires_at_first_evaluation() {
    let r = rule("        queries: { x: 'sum(up)' }\n        when: x > 1\n        action: { kind: scale_out, target: app }\n");
    let mut st = RuleState::default();
    assert_eq!(r.evaluate(&mut st, &one("x", 2.0), 0).decisions.len(), 1);
}

#[test]
fn flapping_condition_resets_pending() {
    let r = rule(SCALE_OUT);
    let mut st = RuleState::default();
    r.evaluate(&mut st, &one("x", 5.0), 0);
    r.evaluate(&mut st, &one("x", 5.0), 20_000);
    r.evaluate(&mut st, &one("x", 0.0), 25_000); // flap
    let e = r.evaluate(&mut st, &one("x", 5.0), 30_000);
    assert!(e.decisions.is_empty(), "pending must restart after a flap");
    assert_eq!(e.status.instances[0].active_since, 30_000);
    assert!(r
        .evaluate(&mut st, &one("x", 5.0), 50_000)
        .decisions
        .is_empty());
    assert_eq!(
        r.evaluate(&mut st, &one("x", 5.0), 60_000).decisions.len(),
        1
    );
}

#[test]
fn keep_firing_for_holds_then_resolves() {
    let r = rule(
        "        queries: { x: 'sum(up)' }\n        when: x > 1\n        keep_firing_for: 20s\n        action: { kind: scale_out, target: app }\n",
    );
    let mut st = RuleState::default();
    assert_eq!(r.evaluate(&mut st, &one("x", 5.0), 0).decisions.len(), 1);
    let e = r.evaluate(&mut st, &one("x", 0.0), 10_000);
    assert_eq!(e.status.state, AlertState::Firing);
    assert_eq!(e.status.instances[0].keep_firing_since, Some(10_000));
    assert_eq!(e.decisions.len(), 1);
    assert_eq!(
        r.evaluate(&mut st, &one("x", 0.0), 20_000).status.state,
        AlertState::Firing
    );
    // true again clears keep_firing_since
    r.evaluate(&mut st, &one("x", 5.0), 25_000);
    assert_eq!(
        r.evaluate(&mut st, &one("x", 0.0), 30_000).status.instances[0].keep_firing_since,
        Some(30_000)
    );
    assert_eq!(
        r.evaluate(&mut st, &one("x", 0.0), 49_999).status.state,
        AlertState::Firing
    );
    let e = r.evaluate(&mut st, &one("x", 0.0), 50_000);
    assert_eq!(e.status.state, AlertState::Inactive);
    assert!(e.decisions.is_empty());
}

fn no_data_outcomes() -> [(&'static str, QueryOutcome); 4] {
    [
        ("missing", QueryOutcome::Missing),
        ("missing", QueryOutcome::Ok(vec![])),
        ("stale", QueryOutcome::Stale),
        ("failed", QueryOutcome::Failed("boom".into())),
    ]
}

fn with_policy(kind: &str, policy: &str) -> Rule {
    rule(&format!(
        "        queries: {{ x: 'sum(up)' }}\n        when: x > 1\n        on_no_data: {policy}\n        action: {{ kind: {kind}, target: app }}\n"
    ))
}

#[test]
fn on_no_data_hold_keeps_state_without_decisions() {
    for (word, outcome) in no_data_outcomes() {
        let r = with_policy("scale_out", "hold");
        let mut st = RuleState::default();
        r.evaluate(&mut st, &one("x", 5.0), 0);
        let e = r.evaluate(
            &mut st,
            &BTreeMap::from([("x".to_string(), outcome.clone())]),
            10_000,
        );
        assert!(e.decisions.is_empty(), "{word}");
        assert_eq!(e.status.state, AlertState::Firing, "{word}: state held");
        assert!(
            e.status.no_data.as_deref().unwrap().starts_with(word),
            "{word}: {:?}",
            e.status.no_data
        );
        // and from inactive nothing starts
        let mut fresh = RuleState::default();
        let e = r.evaluate(&mut fresh, &BTreeMap::from([("x".to_string(), outcome)]), 0);
        assert!(
            e.status.instances.is_empty() && e.decisions.is_empty(),
            "{word}"
        );
    }
}

#[test]
fn on_no_data_resolve_treats_condition_as_false() {
    for (word, outcome) in no_data_outcomes() {
        let r = with_policy("scale_out", "resolve");
        let mut st = RuleState::default();
        r.evaluate(&mut st, &one("x", 5.0), 0);
        let e = r.evaluate(
            &mut st,
            &BTreeMap::from([("x".to_string(), outcome)]),
            10_000,
        );
        assert!(e.decisions.is_empty(), "{word}");
        assert_eq!(e.status.state, AlertState::Inactive, "{word}");
    }
}

#[test]
fn on_no_data_fire_treats_condition_as_true() {
    for (word, outcome) in no_data_outcomes() {
        let r = with_policy("scale_out", "fire");
        let mut st = RuleState::default();
        let e = r.evaluate(&mut st, &BTreeMap::from([("x".to_string(), outcome)]), 0);
        assert_eq!(e.decisions.len(), 1, "{word}");
        let d = &e.decisions[0];
        assert!(
            d.reason.no_data.as_deref().unwrap().starts_with(word),
            "{word}"
        );
        assert!(d.reason.values["x"].is_nan());
        assert_eq!(d.action.kind, ActionKind::ScaleOut);
    }
}

#[test]
fn no_data_never_scales_in() {
    for kind in ["scale_in", "scale"] {
        for policy in ["hold", "fire", "resolve"] {
            for (word, outcome) in no_data_outcomes() {
                let r = if kind == "scale" {
                    rule(&format!(
                        "        queries: {{ x: 'sum(up)' }}\n        when: x > 1\n        on_no_data: {policy}\n        keep_firing_for: 1m\n        action: {{ kind: scale, target: app, metric: x, target_value: 2 }}\n"
                    ))
                } else {
                    rule(&format!(
                        "        queries: {{ x: 'sum(up)' }}\n        when: x > 1\n        on_no_data: {policy}\n        keep_firing_for: 1m\n        action: {{ kind: scale_in, target: app }}\n"
                    ))
                };
                let mut st = RuleState::default();
                // firing with data first, so a careless engine would keep acting
                assert_eq!(r.evaluate(&mut st, &one("x", 5.0), 0).decisions.len(), 1);
                for t in 1..5 {
                    let e = r.evaluate(
                        &mut st,
                        &BTreeMap::from([("x".to_string(), outcome.clone())]),
                        t * 10_000,
                    );
                    assert!(
                        e.decisions.is_empty(),
                        "{kind} {policy} {word} produced {:?}",
                        e.decisions
                    );
                }
                let mut fresh = RuleState::default();
                let e = r.evaluate(&mut fresh, &BTreeMap::from([("x".to_string(), outcome)]), 0);
                assert!(
                    e.decisions.is_empty(),
                    "{kind} {policy} {word} from inactive"
                );
            }
        }
    }
}

#[test]
fn absent_query_counts_as_failed_and_worst_kind_wins() {
    let r = rule(
        "        queries: { a: 'sum(up)', b: 'sum(up)', c: 'sum(up)' }\n        when: a > 1\n        on_no_data: fire\n        action: { kind: scale_out, target: app }\n",
    );
    let mut st = RuleState::default();
    let outcomes = BTreeMap::from([
        ("a".to_string(), QueryOutcome::Missing),
        ("b".to_string(), QueryOutcome::Stale),
    ]);
    let e = r.evaluate(&mut st, &outcomes, 0);
    assert_eq!(
        e.decisions[0].reason.no_data.as_deref(),
        Some("failed: query c: not evaluated")
    );
}

#[test]
fn joins_on_label_sets() {
    let a = s(&[("__name__", "up"), ("instance", "a")], 1.0);
    let b = s(&[("__name__", "up"), ("instance", "b")], 0.0);
    let c = s(&[("__name__", "up"), ("instance", "c")], 0.0);
    let err_a = s(&[("instance", "a")], 0.1);
    let err_b = s(&[("instance", "b")], 0.9);
    let total = s(&[], 42.0);
    // up: 3 results, err: 2 → instances a, b; total broadcasts
    let j = join(&[
        ("up", &[a.clone(), b.clone(), c.clone()]),
        ("err", &[err_a, err_b]),
        ("total", &[total]),
    ]);
    assert_eq!(j.len(), 2);
    assert_eq!(j[0].0, Labels::new([("instance", "a")]));
    assert_eq!(
        j[0].1,
        BTreeMap::from([
            ("up".into(), 1.0),
            ("err".into(), 0.1),
            ("total".into(), 42.0)
        ])
    );
    assert_eq!(j[1].1["err"], 0.9);
    // a single result with an instance label applies only where it does not contradict
    let only_b = s(&[("instance", "b"), ("job", "x")], 7.0);
    let j = join(&[("up", &[a.clone(), b.clone(), c]), ("one", &[only_b])]);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].0, Labels::new([("instance", "b"), ("job", "x")]));
    // singles only: one instance with the union of labels
    let j = join(&[("p", &[s(&[("job", "x")], 1.0)]), ("q", &[s(&[], 2.0)])]);
    assert_eq!(
        j,
        vec![(
            Labels::new([("job", "x")]),
            BTreeMap::from([("p".into(), 1.0), ("q".into(), 2.0)])
        )]
    );
}

#[test]
fn per_instance_rules_render_instance_and_annotations() {
    let r = rule(
        "        queries:
          up: 'up{job=\"demo\"}'
          total: 'sum(up)'
        when: up == 0
        mode: dry_run
        labels: { team: sre }
        annotations: { summary: '{{ labels.instance }} down ({{ total }} up)' }
        action: { kind: failover, target: app, instance: '{{ labels.instance }}' }
",
    );
    let mut st = RuleState::default();
    let up = vec![
        s(
            &[("__name__", "up"), ("instance", "a:1"), ("job", "demo")],
            1.0,
        ),
        s(
            &[("__name__", "up"), ("instance", "b:2"), ("job", "demo")],
            0.0,
        ),
    ];
    let out = BTreeMap::from([
        ("up".to_string(), ok(up)),
        ("total".to_string(), ok(vec![s(&[], 1.0)])),
    ]);
    let e = r.evaluate(&mut st, &out, 1_000);
    assert_eq!(e.decisions.len(), 1);
    let d = &e.decisions[0];
    assert_eq!(d.instance.as_deref(), Some("b:2"));
    assert_eq!(d.action.instance.as_deref(), Some("b:2"));
    assert_eq!(d.annotations["summary"], "b:2 down (1 up)");
    assert_eq!(d.mode, Mode::DryRun);
    assert_eq!(
        d.labels,
        Labels::new([("instance", "b:2"), ("job", "demo"), ("team", "sre")])
    );
    assert_eq!(d.rule, "r");
    assert_eq!(d.group, "g");
    assert_eq!(
        e.status.instances.len(),
        1,
        "the healthy instance is inactive and not kept"
    );

    // b's series disappears while a's remains: b resolves
    let up = vec![s(
        &[("__name__", "up"), ("instance", "a:1"), ("job", "demo")],
        1.0,
    )];
    let out = BTreeMap::from([
        ("up".to_string(), ok(up)),
        ("total".to_string(), ok(vec![s(&[], 1.0)])),
    ]);
    let e = r.evaluate(&mut st, &out, 2_000);
    assert!(e.decisions.is_empty());
    assert!(e.status.instances.is_empty());
}

#[test]
fn integer_literals_compare_equal_to_float_values() {
    let r = rule("        queries: { x: 'sum(up)' }\n        when: x == 0 || x / 2 == 2.5\n        action: { kind: scale_out, target: app }\n");
    let mut st = RuleState::default();
    assert_eq!(r.evaluate(&mut st, &one("x", 0.0), 0).decisions.len(), 1);
    assert_eq!(
        r.evaluate(&mut st, &one("x", 5.0), 1).decisions.len(),
        1,
        "no integer division"
    );
    assert!(r.evaluate(&mut st, &one("x", 4.0), 2).decisions.is_empty());
}

#[test]
fn when_runtime_error_changes_nothing() {
    // `x` compared to a string is a type error at evaluation time (a load
    // error too, since `check` looks for it: the node is set after loading).
    let mut r = rule("        queries: { x: 'sum(up)' }\n        when: x > 1\n        action: { kind: scale_out, target: app }\n");
    r.when = evalexpr::build_operator_tree("x > \"a\"").unwrap();
    let mut st = RuleState::default();
    let e = r.evaluate(&mut st, &one("x", 5.0), 0);
    assert!(e.decisions.is_empty());
    assert!(e.status.last_error.is_some());
}

#[test]
fn engine_keeps_state_across_reload_of_same_rule() {
    let set = load("groups:\n  - name: g\n    rules:\n      - name: r\n        queries: { x: 'sum(up)' }\n        when: x > 1\n        for: 10s\n        action: { kind: scale_out, target: app }\n").unwrap();
    let mut eng = Engine::new();
    let r = set.rule("r").unwrap();
    eng.evaluate(r, &one("x", 5.0), 0);
    let set2 = set.clone();
    eng.retain(&set2);
    assert_eq!(
        eng.evaluate(set2.rule("r").unwrap(), &one("x", 5.0), 10_000)
            .decisions
            .len(),
        1
    );
    eng.retain(&RuleSet::default());
    assert!(
        eng.evaluate(r, &one("x", 5.0), 20_000).decisions.is_empty(),
        "state dropped"
    );
    assert_eq!(eng.status(&set).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn paused_time_drives_for_through_the_clock() {
    let clock = crate::clock::Clock::starting_at(1_700_000_000_000);
    let r = rule(SCALE_OUT);
    let mut st = RuleState::default();
    let mut fired_at = None;
    for _ in 0..10 {
        let e = r.evaluate(&mut st, &one("x", 5.0), clock.now_ms());
        if !e.decisions.is_empty() && fired_at.is_none() {
            fired_at = Some(clock.now_ms());
        }
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    assert_eq!(fired_at, Some(1_700_000_030_000));
}

#[test]
fn loads_defaults_and_groups() {
    let set = load(
        "groups:\n  - name: a\n    interval: 2s\n    rules:\n      - name: r1\n        queries: { x: 'sum(up)', y: { source: prom, expr: 'sum(rate(x[5m]))' } }\n        when: x > y\n        cooldown: 1m\n        action: { kind: scale, target: app, metric: x, target_value: 10 }\n  - name: b\n    rules: []\n",
    )
    .unwrap();
    assert_eq!(set.groups.len(), 2);
    assert_eq!(set.groups[0].interval, Duration::from_secs(2));
    assert_eq!(set.groups[1].interval, Duration::from_secs(10));
    let r = &set.groups[0].rules[0];
    assert_eq!(r.on_no_data, OnNoData::Hold);
    assert_eq!(r.mode, Mode::Enforce);
    assert_eq!(r.cooldown, Some(Duration::from_secs(60)));
    assert_eq!(r.queries[1].source.as_deref(), Some("prom"));
    assert!(r.queries[1].local.is_none());
    assert_eq!(r.action.metric.as_deref(), Some("x"));
}

#[test]
fn unsupported_kind_names_provider_capabilities() {
    let d = load(
        "groups:\n  - name: a\n    rules:\n      - name: r\n        queries: { x: 'sum(up)' }\n        when: x > 1\n        action: { kind: redeploy, target: hook }\n",
    )
    .unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].to_string(),
        "r.yaml:7:25: rule \"r\": action: target \"hook\"'s provider does not support redeploy (supported: scale_out)"
    );
}

#[test]
fn local_queries_map_to_outcomes_through_the_store() {
    use crate::store::Store;
    let r = rule("        queries:\n          up: 'up{job=\"demo\"}'\n          other: 'nothing_here'\n        when: up == 0\n        action: { kind: failover, target: app, instance: '{{ labels.instance }}' }\n");
    let mut store = Store::new();
    let a = Labels::new([("__name__", "up"), ("job", "demo"), ("instance", "a:1")]);
    let id = store.append(&a, 1_000, 0.0);
    let out = crate::agent::tick::local_outcomes(&r, &store, 2_000);
    assert_eq!(
        out["up"],
        QueryOutcome::Ok(vec![s(
            &[("__name__", "up"), ("instance", "a:1"), ("job", "demo")],
            0.0
        )])
    );
    assert_eq!(out["other"], QueryOutcome::Missing);
    store.mark_stale(id, 3_000);
    let out = crate::agent::tick::local_outcomes(&r, &store, 4_000);
    assert_eq!(out["up"], QueryOutcome::Stale);
}

#[test]
fn nan_safe_idle_condition_of_the_shipped_rules() {
    let r = rule("        queries: { p99: 'sum(up)', rps: 'sum(up)' }\n        when: rps < 2 && !(p99 >= 0.1)\n        action: { kind: scale_in, target: app }\n");
    let mut st = RuleState::default();
    let vals = |p99: f64, rps: f64| {
        BTreeMap::from([
            ("p99".to_string(), ok(vec![s(&[], p99)])),
            ("rps".to_string(), ok(vec![s(&[], rps)])),
        ])
    };
    assert_eq!(
        r.evaluate(&mut st, &vals(f64::NAN, 0.0), 0).decisions.len(),
        1,
        "idle: NaN p99"
    );
    assert!(r.evaluate(&mut st, &vals(0.2, 0.0), 1).decisions.is_empty());
    assert!(r
        .evaluate(&mut st, &vals(0.05, 5.0), 2)
        .decisions
        .is_empty());
}

#[test]
fn a_changed_rule_starts_afresh_after_reload() {
    let yaml = |when: &str| {
        format!("groups:\n  - name: g\n    rules:\n      - name: r\n        queries: {{ x: 'sum(up)' }}\n        when: {when}\n        for: 10s\n        action: {{ kind: scale_out, target: app }}\n")
    };
    let old = load(&yaml("x > 1")).unwrap();
    let new = load(&yaml("x > 2")).unwrap();
    let mut eng = Engine::new();
    let group = |eng: &mut Engine, set: &RuleSet, now| -> Vec<Evaluation> {
        let rules = &set.groups[0].rules;
        rules
            .iter()
            .map(|r| eng.evaluate(r, &one("x", 5.0), now))
            .collect()
    };
    group(&mut eng, &old, 0);
    eng.retain(&new);
    let e = group(&mut eng, &new, 10_000);
    assert!(
        e[0].decisions.is_empty(),
        "pending timer of the old definition carried over"
    );
    assert_eq!(e[0].status.instances[0].active_since, 10_000);
}
