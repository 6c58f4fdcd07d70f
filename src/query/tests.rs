//! Evaluator tests on hand-computed data. Each test builds a store, appends
//! samples at chosen times (seconds in the helpers), evaluates at a time and
//! compares with values worked out by hand in the comments.
use super::*;
use crate::store::stale_nan;

const S: i64 = 1000;

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

/// Append `(seconds, value)` samples to the series with these labels.
fn add(s: &mut Store, labels: &[(&str, &str)], points: &[(i64, f64)]) {
    let ls = l(labels);
    for &(t, v) in points {
        s.append(&ls, t * S, v);
    }
}

/// Samples every `step` seconds from `start` to `end` inclusive, value f(t).
fn every(start: i64, end: i64, step: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (start..=end)
        .step_by(step as usize)
        .map(|t| (t, f(t)))
        .collect()
}

fn eval(s: &Store, q: &str, at_s: i64) -> Value {
    compile(q)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .eval(s, at_s * S)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// Vector result as (labels as Prometheus prints them, value), sorted.
fn vector(s: &Store, q: &str, at_s: i64) -> Vec<(String, f64)> {
    match eval(s, q, at_s) {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> = v
                .into_iter()
                .map(|x| (x.labels.to_string(), x.value))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("{q}: expected vector, got {other:?}"),
    }
}

/// The value of a single-element vector result, or of a scalar.
fn one(s: &Store, q: &str, at_s: i64) -> f64 {
    match eval(s, q, at_s) {
        Value::Scalar(x) => x,
        Value::Vector(v) if v.len() == 1 => v[0].value,
        other => panic!("{q}: expected one value, got {other:?}"),
    }
}

fn err(s: &Store, q: &str, at_s: i64) -> String {
    match compile(q).expect("compiles").eval(s, at_s * S) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{q}: expected an error, got {v:?}"),
    }
}

fn unsupported(q: &str) -> String {
    match compile(q) {
        Err(QueryError::Unsupported(what)) => what,
        other => panic!("{q}: expected Unsupported, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[track_caller]
fn assert_close(a: f64, b: f64) {
    assert!(close(a, b), "{a} != {b}");
}

// ---------------------------------------------------------------- selectors

#[test]
fn instant_selector_takes_newest_sample() {
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "up"), ("job", "a")],
        &[(0, 1.0), (10, 2.0), (20, 3.0)],
    );
    // at 15s the newest sample at or before 15s is the one at 10s
    assert_eq!(
        vector(&s, "up", 15),
        vec![("up{job=\"a\"}".to_string(), 2.0)]
    );
    assert_eq!(
        vector(&s, "up", 20),
        vec![("up{job=\"a\"}".to_string(), 3.0)]
    );
    // before the first sample: nothing
    assert!(vector(&s, "up", -1).is_empty());
}

#[test]
fn lookback_is_five_minutes_closed_on_both_ends() {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "x")], &[(100, 7.0)]);
    // 2.42: a sample exactly 5m old still counts; 1ms later it has expired.
    assert_eq!(one(&s, "x", 400), 7.0);
    let q = compile("x").unwrap();
    assert_eq!(q.eval(&s, 400 * S + 1).unwrap(), Value::Vector(vec![]));
}

#[test]
fn stale_marker_ends_series_until_next_sample() {
    let mut s = Store::new();
    let ls = l(&[("__name__", "x")]);
    let id = s.append(&ls, 0, 1.0);
    s.mark_stale(id, 10 * S);
    assert!(
        vector(&s, "x", 5).len() == 1,
        "before the marker the sample is visible"
    );
    assert!(
        vector(&s, "x", 10).is_empty(),
        "newest sample is the marker"
    );
    assert!(
        vector(&s, "x", 200).is_empty(),
        "still stale within lookback"
    );
    s.append(&ls, 20 * S, 2.0);
    assert_eq!(one(&s, "x", 25), 2.0, "a new sample revives the series");
}

#[test]
fn nan_sample_is_a_value_not_a_stale_marker() {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "x")], &[(0, f64::NAN)]);
    assert!(one(&s, "x", 1).is_nan());
}

fn jobs_store() -> Store {
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "req"), ("job", "api"), ("zone", "eu")],
        &[(0, 1.0)],
    );
    add(
        &mut s,
        &[("__name__", "req"), ("job", "api-2"), ("zone", "us")],
        &[(0, 2.0)],
    );
    add(&mut s, &[("__name__", "req"), ("job", "web")], &[(0, 4.0)]);
    add(
        &mut s,
        &[("__name__", "other"), ("job", "api")],
        &[(0, 8.0)],
    );
    s
}

#[test]
fn equality_matchers() {
    let s = jobs_store();
    assert_eq!(one(&s, r#"req{job="api"}"#, 1), 1.0);
    // != keeps api-2 and web
    assert_eq!(one(&s, r#"sum(req{job!="api"})"#, 1), 6.0);
    // a missing label matches the empty string
    assert_eq!(one(&s, r#"req{zone=""}"#, 1), 4.0);
    // selecting by name through __name__
    assert_eq!(one(&s, r#"{__name__="other"}"#, 1), 8.0);
}

#[test]
fn regex_matchers_are_fully_anchored() {
    let s = jobs_store();
    // "api" must not match "api-2": the regex is anchored at both ends
    assert_eq!(one(&s, r#"req{job=~"api"}"#, 1), 1.0);
    assert_eq!(one(&s, r#"sum(req{job=~"api.*"})"#, 1), 3.0);
    assert!(
        vector(&s, r#"req{job=~"pi"}"#, 1).is_empty(),
        "no substring match"
    );
    // !~ is anchored too: drops "api" only; web and api-2 remain (2 + 4)
    assert_eq!(one(&s, r#"sum(req{job!~"api"})"#, 1), 6.0);
    // regex on the name
    assert_eq!(
        one(&s, r#"sum({__name__=~"req|other", job="api"})"#, 1),
        9.0
    );
}

#[test]
fn offset_moves_the_evaluation_time_back() {
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "x")],
        &every(0, 600, 60, |t| t as f64),
    );
    // at 600s, offset 5m reads the sample at 300s
    assert_eq!(one(&s, "x offset 5m", 600), 300.0);
    // range with offset: [240s, 300s] holds 240 and 300 → sum 540
    assert_eq!(one(&s, "sum_over_time(x[1m] offset 5m)", 600), 540.0);
}

#[test]
fn range_selector_is_closed_and_drops_stale_markers() {
    let mut s = Store::new();
    let ls = l(&[("__name__", "x"), ("i", "1")]);
    let id = s.append(&ls, 0, 1.0);
    s.append_id(id, 30 * S, 2.0);
    s.append_id(id, 60 * S, 3.0);
    s.mark_stale(id, 61 * S);
    // [0s, 60s] at 60s: both ends included → 3 samples
    match eval(&s, "x[1m]", 60) {
        Value::Matrix(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].labels, ls, "a range selector keeps the name");
            assert_eq!(m[0].samples, vec![(0, 1.0), (30 * S, 2.0), (60 * S, 3.0)]);
        }
        other => panic!("{other:?}"),
    }
    // [1s, 61s] at 61s: 30s, 60s and the stale marker at 61s, which is dropped
    assert_eq!(one(&s, "count_over_time(x[1m])", 61), 2.0);
    // a window holding only the stale marker gives no series at all
    assert!(vector(&s, "count_over_time(x[500ms])", 61).is_empty());
}

// ---------------------------------------------------------------- rate family

fn counter(points: &[(i64, f64)]) -> Store {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "c"), ("job", "a")], points);
    s
}

#[test]
fn rate_without_extrapolation_when_samples_hit_the_edges() {
    // samples at 0,10,..,60 with value = t: window [0,60] at 60s, both edges
    // sampled → increase = 60 exactly, rate = 60 / 60s = 1.
    let s = counter(&every(0, 60, 10, |t| t as f64));
    assert_close(one(&s, "increase(c[1m])", 60), 60.0);
    assert_close(one(&s, "rate(c[1m])", 60), 1.0);
    // the result has no metric name
    assert_eq!(vector(&s, "rate(c[1m])", 60)[0].0, "{job=\"a\"}");
}

#[test]
fn rate_extrapolates_to_range_edges() {
    // samples at 5,15,..,55 with value t+5 (10..60); window [0,60] at 60s.
    // delta 50 over sampled 50s; avg interval 10s, threshold 11s; 5s to each
    // edge (< 11) → extrapolate to 60s; zero point is 10s before the first
    // sample (> 5s) so no clamp. increase = 50 * 60/50 = 60, rate = 1.
    let s = counter(&every(5, 55, 10, |t| (t + 5) as f64));
    assert_close(one(&s, "increase(c[1m])", 60), 60.0);
    assert_close(one(&s, "rate(c[1m])", 60), 1.0);
}

#[test]
fn rate_extrapolates_only_half_an_interval_past_a_gap() {
    // samples at 20,30,40 = 100,110,120; window [0,60] at 60s. delta 20 over
    // 20s, avg 10s, threshold 11s; 20s to each edge ≥ 11 → add 5s each side:
    // 20 * 30/20 = 30 = increase; rate = 30/60 = 0.5.
    let s = counter(&[(20, 100.0), (30, 110.0), (40, 120.0)]);
    assert_close(one(&s, "increase(c[1m])", 60), 30.0);
    assert_close(one(&s, "rate(c[1m])", 60), 0.5);
}

#[test]
fn rate_does_not_extrapolate_a_counter_below_zero() {
    // samples at 30..60 = 1,11,21,31; window [0,60]. delta 30 over 30s; the
    // counter would reach 0 at 30*(1/30) = 1s before the first sample, which
    // is less than the 30s to the range start → add 1s; end 0s.
    // increase = 30 * 31/30 = 31.
    let s = counter(&[(30, 1.0), (40, 11.0), (50, 21.0), (60, 31.0)]);
    assert_close(one(&s, "increase(c[1m])", 60), 31.0);
}

#[test]
fn rate_handles_counter_resets() {
    // 0,10,20 then reset to 5,15,25,35 at 30..60. Raw delta 35, plus 20 (the
    // value before the drop) = 55; edges are sampled → increase 55,
    // rate 55/60.
    let s = counter(&[
        (0, 0.0),
        (10, 10.0),
        (20, 20.0),
        (30, 5.0),
        (40, 15.0),
        (50, 25.0),
        (60, 35.0),
    ]);
    assert_close(one(&s, "increase(c[1m])", 60), 55.0);
    assert_close(one(&s, "rate(c[1m])", 60), 55.0 / 60.0);
    assert_eq!(one(&s, "resets(c[1m])", 60), 1.0);
}

#[test]
fn rate_needs_two_samples() {
    let s = counter(&[(50, 3.0)]);
    assert!(vector(&s, "rate(c[1m])", 60).is_empty());
    assert!(vector(&s, "irate(c[1m])", 60).is_empty());
    assert!(vector(&s, "delta(c[1m])", 60).is_empty());
}

#[test]
fn delta_is_not_counter_aware() {
    // gauge 10 → 4 → 7 at 0,30,60: delta = 7 - 10 = -3 (edges sampled).
    let s = counter(&[(0, 10.0), (30, 4.0), (60, 7.0)]);
    assert_close(one(&s, "delta(c[1m])", 60), -3.0);
    // the same data as a counter: reset at 4 adds 10 → 7 - 10 + 10 = 7
    assert_close(one(&s, "increase(c[1m])", 60), 7.0);
}

#[test]
fn irate_and_idelta_use_the_last_two_samples() {
    // last two: 50s=40, 60s=52 → irate 12/10s = 1.2, idelta 12
    let s = counter(&[(40, 1.0), (50, 40.0), (60, 52.0)]);
    assert_close(one(&s, "irate(c[1m])", 60), 1.2);
    assert_close(one(&s, "idelta(c[1m])", 60), 12.0);
    // reset: 50s=40, 60s=5 → irate takes 5 as the increase: 5/10 = 0.5;
    // idelta is the plain difference -35
    let s = counter(&[(50, 40.0), (60, 5.0)]);
    assert_close(one(&s, "irate(c[1m])", 60), 0.5);
    assert_close(one(&s, "idelta(c[1m])", 60), -35.0);
}

#[test]
fn rate_with_offset_uses_the_shifted_window() {
    // value = t, samples every 10s to 600s. rate over [240,300] = 1.
    let s = counter(&every(0, 600, 10, |t| t as f64));
    assert_close(one(&s, "rate(c[1m] offset 5m)", 600), 1.0);
    // and a counter of value 2t → 2/s
    let s = counter(&every(0, 600, 10, |t| 2.0 * t as f64));
    assert_close(one(&s, "rate(c[5m])", 600), 2.0);
}

// ---------------------------------------------------------------- *_over_time

fn gauge() -> Store {
    let mut s = Store::new();
    // samples 1, 5, 3, 7 at 10,20,30,40; name kept for last_over_time check
    add(
        &mut s,
        &[("__name__", "g"), ("i", "1")],
        &[(10, 1.0), (20, 5.0), (30, 3.0), (40, 7.0)],
    );
    s
}

#[test]
fn over_time_aggregates() {
    let s = gauge();
    // window [0,40] holds all four: sum 16, avg 4, min 1, max 7, count 4
    assert_eq!(one(&s, "sum_over_time(g[40s])", 40), 16.0);
    assert_eq!(one(&s, "avg_over_time(g[40s])", 40), 4.0);
    assert_eq!(one(&s, "min_over_time(g[40s])", 40), 1.0);
    assert_eq!(one(&s, "max_over_time(g[40s])", 40), 7.0);
    assert_eq!(one(&s, "count_over_time(g[40s])", 40), 4.0);
    // window [25,40]: 3, 7
    assert_eq!(one(&s, "avg_over_time(g[15s])", 40), 5.0);
    assert_eq!(
        vector(&s, "max_over_time(g[15s])", 40)[0].0,
        "{i=\"1\"}",
        "name dropped"
    );
}

#[test]
fn last_over_time_keeps_the_metric_name() {
    let s = gauge();
    assert_eq!(
        vector(&s, "last_over_time(g[1m])", 45),
        vec![("g{i=\"1\"}".to_string(), 7.0)]
    );
    // present_over_time is 1 for any series with samples
    assert_eq!(one(&s, "present_over_time(g[1m])", 45), 1.0);
}

#[test]
fn stddev_stdvar_quantile_over_time() {
    let s = gauge();
    // values 1,5,3,7: mean 4, squared deviations 9+1+1+9 = 20, /4 = 5
    assert_close(one(&s, "stdvar_over_time(g[1m])", 40), 5.0);
    assert_close(one(&s, "stddev_over_time(g[1m])", 40), 5f64.sqrt());
    // sorted 1,3,5,7; q=0.5 → rank 1.5 → 3 + 0.5*(5-3) = 4
    assert_close(one(&s, "quantile_over_time(0.5, g[1m])", 40), 4.0);
    // q=0.9 → rank 2.7 → 5 + 0.7*2 = 6.4
    assert_close(one(&s, "quantile_over_time(0.9, g[1m])", 40), 6.4);
}

#[test]
fn min_max_over_time_skip_nan_unless_all_nan() {
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "n")],
        &[(10, f64::NAN), (20, 2.0), (30, f64::NAN), (40, 1.0)],
    );
    assert_eq!(one(&s, "max_over_time(n[1m])", 40), 2.0);
    assert_eq!(one(&s, "min_over_time(n[1m])", 40), 1.0);
    // sum with a NaN is NaN
    assert!(one(&s, "sum_over_time(n[1m])", 40).is_nan());
    let mut s = Store::new();
    add(&mut s, &[("__name__", "n")], &[(10, f64::NAN)]);
    assert!(one(&s, "max_over_time(n[1m])", 40).is_nan());
}

#[test]
fn avg_over_time_of_infinities() {
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "n")],
        &[(10, f64::INFINITY), (20, 2.0), (30, f64::INFINITY)],
    );
    assert_eq!(one(&s, "avg_over_time(n[1m])", 40), f64::INFINITY);
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "n")],
        &[(10, f64::INFINITY), (20, f64::NEG_INFINITY)],
    );
    assert!(one(&s, "avg_over_time(n[1m])", 40).is_nan());
}

#[test]
fn deriv_changes_and_predict_linear() {
    let mut s = Store::new();
    // y = 2t + 1 at 0,10,20,30 → slope 2/s
    add(
        &mut s,
        &[("__name__", "y")],
        &every(0, 30, 10, |t| 2.0 * t as f64 + 1.0),
    );
    assert_close(one(&s, "deriv(y[1m])", 30), 2.0);
    // predict 10s after 30s: 61 + 20 = 81
    assert_close(one(&s, "predict_linear(y[1m], 10)", 30), 81.0);
    // every sample differs from the previous → 3 changes
    assert_eq!(one(&s, "changes(y[1m])", 30), 3.0);
    // constant series: slope 0, no changes
    let mut s = Store::new();
    add(&mut s, &[("__name__", "y")], &every(0, 30, 10, |_| 5.0));
    assert_eq!(one(&s, "deriv(y[1m])", 30), 0.0);
    assert_eq!(one(&s, "changes(y[1m])", 30), 0.0);
}

// ---------------------------------------------------------------- aggregation

fn http() -> Store {
    let mut s = Store::new();
    let rows = [
        ("checkout", "a", "200", 1.0),
        ("checkout", "b", "200", 2.0),
        ("checkout", "a", "500", 4.0),
        ("search", "c", "200", 8.0),
    ];
    for (job, inst, code, v) in rows {
        add(
            &mut s,
            &[
                ("__name__", "http"),
                ("job", job),
                ("instance", inst),
                ("code", code),
            ],
            &[(0, v)],
        );
    }
    s
}

#[test]
fn aggregations_without_grouping() {
    let s = http();
    assert_eq!(vector(&s, "sum(http)", 1), vec![("{}".to_string(), 15.0)]);
    assert_eq!(one(&s, "avg(http)", 1), 3.75);
    assert_eq!(one(&s, "min(http)", 1), 1.0);
    assert_eq!(one(&s, "max(http)", 1), 8.0);
    assert_eq!(one(&s, "count(http)", 1), 4.0);
    assert_eq!(one(&s, "group(http)", 1), 1.0);
}

#[test]
fn aggregation_by_labels() {
    let s = http();
    assert_eq!(
        vector(&s, "sum by (job) (http)", 1),
        vec![
            ("{job=\"checkout\"}".to_string(), 7.0),
            ("{job=\"search\"}".to_string(), 8.0)
        ]
    );
    // the modifier may also follow the argument
    assert_eq!(vector(&s, "count(http) by (code)", 1).len(), 2);
    // a label no series has: one group with empty labels
    assert_eq!(
        vector(&s, "max by (nope) (http)", 1),
        vec![("{}".to_string(), 8.0)]
    );
}

#[test]
fn aggregation_without_labels_drops_the_name() {
    let s = http();
    // without (instance, code) leaves job only; the name is always dropped
    assert_eq!(
        vector(&s, "sum without (instance, code) (http)", 1),
        vec![
            ("{job=\"checkout\"}".to_string(), 7.0),
            ("{job=\"search\"}".to_string(), 8.0)
        ]
    );
    // without () keeps every label but the name: 4 groups
    let v = vector(&s, "sum without () (http)", 1);
    assert_eq!(v.len(), 4);
    assert!(v.iter().all(|(ls, _)| !ls.starts_with("http")));
}

#[test]
fn avg_min_max_count_by() {
    let s = http();
    // checkout: 1, 2, 4
    assert_close(
        one(&s, r#"avg by (job) (http{job="checkout"})"#, 1),
        7.0 / 3.0,
    );
    assert_eq!(one(&s, r#"min by (job) (http{job="checkout"})"#, 1), 1.0);
    assert_eq!(one(&s, r#"max by (job) (http{job="checkout"})"#, 1), 4.0);
    assert_eq!(one(&s, r#"count by (job) (http{job="checkout"})"#, 1), 3.0);
}

#[test]
fn aggregation_of_nothing_is_empty() {
    let s = Store::new();
    assert!(vector(&s, "sum(nothing)", 1).is_empty());
    assert!(vector(&s, "count by (job) (nothing)", 1).is_empty());
}

#[test]
fn aggregations_with_nan_and_inf() {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "v"), ("i", "1")], &[(0, f64::NAN)]);
    add(&mut s, &[("__name__", "v"), ("i", "2")], &[(0, 3.0)]);
    add(
        &mut s,
        &[("__name__", "v"), ("i", "3")],
        &[(0, f64::INFINITY)],
    );
    // min/max replace a NaN first value by real values
    assert_eq!(one(&s, "min(v)", 1), 3.0);
    assert_eq!(one(&s, "max(v)", 1), f64::INFINITY);
    assert!(one(&s, "sum(v)", 1).is_nan());
    assert_eq!(one(&s, r#"avg(v{i!="1"})"#, 1), f64::INFINITY);
}

#[test]
fn topk_bottomk_quantile_stddev() {
    let s = http();
    // topk keeps the input series, name included
    let mut top: Vec<f64> = vector(&s, "topk(2, http)", 1).iter().map(|x| x.1).collect();
    top.sort_by(f64::total_cmp);
    assert_eq!(top, vec![4.0, 8.0]);
    assert!(vector(&s, "topk(1, http)", 1)[0].0.starts_with("http{"));
    assert_eq!(one(&s, "bottomk(1, http)", 1), 1.0);
    // values 1,2,4,8: q 0.5 → rank 1.5 → 2 + 0.5*2 = 3
    assert_close(one(&s, "quantile(0.5, http)", 1), 3.0);
    // mean 3.75; deviations² 7.5625+3.0625+0.0625+18.0625 = 28.75; /4 = 7.1875
    assert_close(one(&s, "stdvar(http)", 1), 7.1875);
    assert_close(one(&s, "stddev(http)", 1), 7.1875f64.sqrt());
}

// ---------------------------------------------------------------- binary operators

#[test]
fn scalar_arithmetic_precedence_and_unary_minus() {
    let s = Store::new();
    assert_eq!(one(&s, "1 + 2 * 3", 0), 7.0);
    assert_eq!(one(&s, "(1 + 2) * 3", 0), 9.0);
    // ^ is right-associative: 2^(3^2) = 512
    assert_eq!(one(&s, "2 ^ 3 ^ 2", 0), 512.0);
    assert_eq!(
        one(&s, "-2 ^ 2", 0),
        -4.0,
        "unary minus binds looser than ^"
    );
    assert_eq!(one(&s, "7 % 3", 0), 1.0);
    assert_eq!(
        one(&s, "-7 % 3", 0),
        -1.0,
        "sign of the dividend, as Go's math.Mod"
    );
    assert_eq!(one(&s, "1 / 0", 0), f64::INFINITY);
    assert_eq!(one(&s, "-1 / 0", 0), f64::NEG_INFINITY);
    assert!(one(&s, "0 / 0", 0).is_nan());
    assert_eq!(one(&s, "- (3 - 5)", 0), 2.0);
    assert_eq!(one(&s, "2 > bool 1", 0), 1.0);
    assert_eq!(one(&s, "2 < bool 1", 0), 0.0);
}

#[test]
fn vector_scalar_arithmetic_drops_the_name() {
    let s = jobs_store();
    assert_eq!(
        vector(&s, r#"req{job="web"} * 2"#, 1),
        vec![("{job=\"web\"}".to_string(), 8.0)]
    );
    // scalar on the left: 10 - 4 = 6
    assert_eq!(one(&s, r#"10 - req{job="web"}"#, 1), 6.0);
    assert_eq!(one(&s, r#"req{job="web"} - 10"#, 1), -6.0);
    assert_eq!(one(&s, r#"2 ^ req{job="web"}"#, 1), 16.0);
    assert_eq!(
        vector(&s, r#"-req{job="web"}"#, 1),
        vec![("{job=\"web\"}".to_string(), -4.0)]
    );
}

#[test]
fn vector_scalar_comparison_filters_and_keeps_the_name() {
    let s = jobs_store();
    // req values 1, 2, 4: > 1.5 keeps 2 and 4, unchanged, with their name
    let v = vector(&s, "req > 1.5", 1);
    assert_eq!(v.iter().map(|x| x.1).sum::<f64>(), 6.0);
    assert!(v.iter().all(|x| x.0.starts_with("req{")));
    // scalar on the left: the vector's value is kept (1.5 < 2 and 1.5 < 4)
    let v = vector(&s, "1.5 < req", 1);
    assert_eq!(v.iter().map(|x| x.1).sum::<f64>(), 6.0);
    assert!(vector(&s, "req == 3", 1).is_empty());
    assert_eq!(vector(&s, "req != 1", 1).len(), 2);
    assert_eq!(vector(&s, "req >= 2", 1).len(), 2);
    assert_eq!(vector(&s, "req <= 2", 1).len(), 2);
}

#[test]
fn bool_comparison_returns_zero_or_one_without_name() {
    let s = jobs_store();
    let v = vector(&s, "req > bool 1.5", 1);
    assert_eq!(v.len(), 3);
    assert_eq!(v.iter().map(|x| x.1).sum::<f64>(), 2.0);
    assert!(
        v.iter().all(|x| x.0.starts_with('{')),
        "bool drops the name"
    );
}

fn pair_store() -> Store {
    let mut s = Store::new();
    for (inst, errs, total) in [("a", 1.0, 10.0), ("b", 3.0, 12.0), ("c", 5.0, 0.0)] {
        add(
            &mut s,
            &[("__name__", "errors"), ("job", "api"), ("instance", inst)],
            &[(0, errs)],
        );
        add(
            &mut s,
            &[("__name__", "total"), ("job", "api"), ("instance", inst)],
            &[(0, total)],
        );
    }
    add(
        &mut s,
        &[("__name__", "errors"), ("job", "api"), ("instance", "z")],
        &[(0, 9.0)],
    );
    s
}

#[test]
fn vector_vector_one_to_one_matches_all_labels_but_name() {
    let s = pair_store();
    // errors/total per instance; z has no partner and is dropped; c divides by 0
    assert_eq!(
        vector(&s, "errors / total", 1),
        vec![
            ("{instance=\"a\", job=\"api\"}".to_string(), 0.1),
            ("{instance=\"b\", job=\"api\"}".to_string(), 0.25),
            ("{instance=\"c\", job=\"api\"}".to_string(), f64::INFINITY),
        ]
    );
}

#[test]
fn vector_matching_on_and_ignoring() {
    let mut s = pair_store();
    add(
        &mut s,
        &[("__name__", "limit"), ("instance", "a"), ("env", "prod")],
        &[(0, 2.0)],
    );
    // on(instance): the result keeps only `instance`
    assert_eq!(
        vector(&s, "errors - on(instance) limit", 1),
        vec![("{instance=\"a\"}".to_string(), -1.0)]
    );
    // ignoring(job, env): a matches; result is lhs labels without job/env
    assert_eq!(
        vector(&s, "errors + ignoring(job, env) limit", 1),
        vec![("{instance=\"a\"}".to_string(), 3.0)]
    );
}

#[test]
fn vector_vector_comparison_keeps_lhs() {
    let s = pair_store();
    // errors > total only where... 1>10 no, 3>12 no, 5>0 yes → errors{c}=5
    assert_eq!(
        vector(&s, "errors > total", 1),
        vec![("errors{instance=\"c\", job=\"api\"}".to_string(), 5.0)]
    );
    let v = vector(&s, "errors > bool total", 1);
    assert_eq!(
        v.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![0.0, 0.0, 1.0]
    );
}

#[test]
fn many_to_many_matching_is_an_error() {
    let s = pair_store();
    // on(job): every `total` series has job=api → duplicates on the right
    let e = err(&s, "errors / on(job) total", 1);
    assert!(
        e.contains(
            "found duplicate series for the match group {job=\"api\"} on the right hand-side"
        ),
        "{e}"
    );
    assert!(e.contains("many-to-many matching not allowed"), "{e}");
}

#[test]
fn many_to_one_without_group_modifier_is_an_error() {
    let mut s = pair_store();
    add(&mut s, &[("__name__", "one"), ("job", "api")], &[(0, 1.0)]);
    // every errors series maps to the single `one` series on(job)
    let e = err(&s, "errors * on(job) one", 1);
    assert!(
        e.contains("many-to-one matching must be explicit (group_left/group_right)"),
        "{e}"
    );
    // but an empty side short-circuits before any check
    assert!(vector(&s, "errors * on(job) nothing", 1).is_empty());
}

#[test]
fn dropping_the_name_must_not_create_duplicates() {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "a"), ("x", "1")], &[(0, 1.0)]);
    add(&mut s, &[("__name__", "b"), ("x", "1")], &[(0, 2.0)]);
    let e = err(&s, r#"{__name__=~"a|b"} * 2"#, 1);
    assert_eq!(e, "vector cannot contain metrics with the same labelset");
    add(&mut s, &[("__name__", "a"), ("x", "1")], &[(10, 3.0)]);
    add(&mut s, &[("__name__", "b"), ("x", "1")], &[(10, 4.0)]);
    let e = err(&s, r#"rate({__name__=~"a|b"}[1m])"#, 10);
    assert_eq!(e, "vector cannot contain metrics with the same labelset");
    // comparisons keep the name, so no clash
    assert_eq!(vector(&s, r#"{__name__=~"a|b"} > 0"#, 1).len(), 2);
}

#[test]
fn set_operators() {
    let s = pair_store();
    // errors and total: instances a,b,c (z has no partner); keeps lhs values
    let v = vector(&s, "errors and total", 1);
    assert_eq!(
        v.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![1.0, 3.0, 5.0]
    );
    assert!(v[0].0.starts_with("errors{"));
    // errors unless total: only z
    assert_eq!(
        vector(&s, "errors unless total", 1),
        vec![("errors{instance=\"z\", job=\"api\"}".to_string(), 9.0)]
    );
    // total or errors: 3 totals + errors{z}
    assert_eq!(vector(&s, "total or errors", 1).len(), 4);
    // on(job) and: every errors series shares job=api with a total
    assert_eq!(vector(&s, "errors and on(job) total", 1).len(), 4);
    assert!(vector(&s, "errors and nothing", 1).is_empty());
}

// ---------------------------------------------------------------- functions

#[test]
fn math_functions() {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "m"), ("i", "1")], &[(0, -2.5)]);
    add(&mut s, &[("__name__", "m"), ("i", "2")], &[(0, 1.4)]);
    let vals = |q: &str| vector(&s, q, 1).iter().map(|x| x.1).collect::<Vec<_>>();
    assert_eq!(vals("abs(m)"), vec![2.5, 1.4]);
    assert_eq!(vals("ceil(m)"), vec![-2.0, 2.0]);
    assert_eq!(vals("floor(m)"), vec![-3.0, 1.0]);
    // round half up: -2.5 → floor(-2.0) = -2
    assert_eq!(vals("round(m)"), vec![-2.0, 1.0]);
    assert_eq!(vals("round(m, 0.5)"), vec![-2.5, 1.5]);
    assert_eq!(vals("clamp_min(m, 0)"), vec![0.0, 1.4]);
    assert_eq!(vals("clamp_max(m, 0)"), vec![-2.5, 0.0]);
    assert_eq!(vals("clamp(m, -1, 1)"), vec![-1.0, 1.0]);
    assert!(
        vals("clamp(m, 1, -1)").is_empty(),
        "max < min gives nothing"
    );
    assert!(
        vector(&s, "abs(m)", 1).iter().all(|x| x.0.starts_with('{')),
        "name dropped"
    );
    assert_close(one(&s, r#"sqrt(abs(m{i="1"}) * 10)"#, 1), 5.0);
    assert_close(one(&s, r#"ln(exp(m{i="2"}))"#, 1), 1.4);
    assert_close(one(&s, "log2(vector(8))", 1), 3.0);
    assert_close(one(&s, "log10(vector(1000))", 1), 3.0);
}

#[test]
fn clamp_with_nan() {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "m")], &[(0, f64::NAN)]);
    // Go's math.Max/Min propagate NaN
    assert!(one(&s, "clamp_min(m, 0)", 1).is_nan());
    assert!(one(&s, "clamp_max(m, 0)", 1).is_nan());
}

#[test]
fn time_vector_scalar_timestamp() {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "x")], &[(40, 3.0)]);
    assert_eq!(eval(&s, "time()", 100), Value::Scalar(100.0));
    assert_eq!(vector(&s, "vector(5)", 100), vec![("{}".to_string(), 5.0)]);
    assert_eq!(eval(&s, "scalar(x)", 100), Value::Scalar(3.0));
    assert!(matches!(eval(&s, "scalar(nothing)", 100), Value::Scalar(v) if v.is_nan()));
    // timestamp of a selector is the sample's own time (40s), not the eval time
    assert_eq!(one(&s, "timestamp(x)", 100), 40.0);
    assert_eq!(one(&s, "time() - timestamp(x)", 100), 60.0);
    // on a computed vector it is the evaluation time
    assert_eq!(one(&s, "timestamp(x * 1)", 100), 100.0);
    // fractional seconds
    assert_eq!(
        compile("time()").unwrap().eval(&s, 1500).unwrap(),
        Value::Scalar(1.5)
    );
}

#[test]
fn absent_and_absent_over_time() {
    let s = jobs_store();
    assert!(vector(&s, r#"absent(req{job="api"})"#, 1).is_empty());
    // labels come from the equality matchers; a regex matcher's label is not set
    assert_eq!(
        vector(&s, r#"absent(nothing{job="api", zone=~"e.*"})"#, 1),
        vec![("{job=\"api\"}".to_string(), 1.0)]
    );
    // the same label matched twice is dropped
    assert_eq!(
        vector(&s, r#"absent(nothing{job="a", job="b", env="x"})"#, 1),
        vec![("{env=\"x\"}".to_string(), 1.0)]
    );
    assert_eq!(
        vector(&s, "absent(sum(nothing))", 1),
        vec![("{}".to_string(), 1.0)]
    );
    assert!(vector(&s, "absent_over_time(req[1m])", 1).is_empty());
    assert_eq!(
        vector(&s, r#"absent_over_time(gone{job="x"}[1m])"#, 1),
        vec![("{job=\"x\"}".to_string(), 1.0)]
    );
}

// ---------------------------------------------------------------- histogram_quantile

/// A realistic latency histogram: bounds 0.05 .. 1 and +Inf with cumulative
/// counts 10, 30, 60, 90, 99, 100 (so 100 observations).
fn histogram(s: &mut Store, job: &str, t: i64, scale: f64) {
    let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];
    let counts = [10.0, 30.0, 60.0, 90.0, 99.0, 100.0];
    for (le, c) in bounds.iter().zip(counts) {
        add(
            s,
            &[("__name__", "lat_bucket"), ("job", job), ("le", le)],
            &[(t, c * scale)],
        );
    }
}

#[test]
fn histogram_quantile_interpolates_in_the_bucket() {
    let mut s = Store::new();
    histogram(&mut s, "api", 0, 1.0);
    // q=0.5: rank 50 → bucket (0.1, 0.25] with 30 obs, 20 into it:
    // 0.1 + 0.15 * 20/30 = 0.2
    assert_close(one(&s, "histogram_quantile(0.5, lat_bucket)", 1), 0.2);
    // q=0.9: rank 90 → bucket (0.25, 0.5], 30 into 30 → 0.5
    assert_close(one(&s, "histogram_quantile(0.9, lat_bucket)", 1), 0.5);
    // q=0.99: rank 99 → bucket (0.5, 1], 9 of 9 → 1
    assert_close(one(&s, "histogram_quantile(0.99, lat_bucket)", 1), 1.0);
    // q=0.05: rank 5 → first bucket (0, 0.05], 5 of 10 → 0.025
    assert_close(one(&s, "histogram_quantile(0.05, lat_bucket)", 1), 0.025);
    // q=0.995: rank 99.5 lands in the +Inf bucket → the highest finite bound
    assert_eq!(one(&s, "histogram_quantile(0.995, lat_bucket)", 1), 1.0);
    // the result drops `le` and the name
    assert_eq!(
        vector(&s, "histogram_quantile(0.5, lat_bucket)", 1)[0].0,
        "{job=\"api\"}"
    );
}

#[test]
fn histogram_quantile_of_rate_summed_by_le() {
    // The design's p99 query. Counts at 0s are 0; at 60s they are the
    // histogram ×6, so every bucket's increase over [0,60] is 6× its count
    // and sampled at both edges: rates are count/10. Two jobs summed by le
    // double everything; quantiles are unchanged by scaling: p50 = 0.2.
    let mut s = Store::new();
    for job in ["a", "b"] {
        histogram(&mut s, job, 0, 0.0);
        histogram(&mut s, job, 60, 6.0);
    }
    let q = "histogram_quantile(0.5, sum by (le) (rate(lat_bucket[1m])))";
    assert_eq!(vector(&s, q, 60).len(), 1);
    assert_close(one(&s, q, 60), 0.2);
    assert_close(
        one(
            &s,
            "histogram_quantile(0.99, sum by (le) (rate(lat_bucket[1m])))",
            60,
        ),
        1.0,
    );
    // per job (sum by (job, le)) gives one result per job
    assert_eq!(
        vector(
            &s,
            "histogram_quantile(0.5, sum by (job, le) (rate(lat_bucket[1m])))",
            60
        )
        .len(),
        2
    );
}

#[test]
fn histogram_quantile_edge_cases() {
    let mut s = Store::new();
    // no +Inf bucket → NaN
    add(
        &mut s,
        &[("__name__", "h1_bucket"), ("le", "1")],
        &[(0, 5.0)],
    );
    assert!(one(&s, "histogram_quantile(0.5, h1_bucket)", 1).is_nan());
    // only the +Inf bucket → fewer than two buckets → NaN
    add(
        &mut s,
        &[("__name__", "h2_bucket"), ("le", "+Inf")],
        &[(0, 5.0)],
    );
    assert!(one(&s, "histogram_quantile(0.5, h2_bucket)", 1).is_nan());
    // no observations → NaN
    add(
        &mut s,
        &[("__name__", "h3_bucket"), ("le", "1")],
        &[(0, 0.0)],
    );
    add(
        &mut s,
        &[("__name__", "h3_bucket"), ("le", "+Inf")],
        &[(0, 0.0)],
    );
    assert!(one(&s, "histogram_quantile(0.5, h3_bucket)", 1).is_nan());
    // q outside [0, 1] → ±Inf; NaN q → NaN
    histogram(&mut s, "api", 0, 1.0);
    assert_eq!(
        one(&s, "histogram_quantile(1.5, lat_bucket)", 1),
        f64::INFINITY
    );
    assert_eq!(
        one(&s, "histogram_quantile(-1, lat_bucket)", 1),
        f64::NEG_INFINITY
    );
    assert!(one(&s, "histogram_quantile(NaN, lat_bucket)", 1).is_nan());
    // series without a parseable `le` are ignored
    add(
        &mut s,
        &[("__name__", "h4_bucket"), ("le", "abc")],
        &[(0, 1.0)],
    );
    assert!(vector(&s, "histogram_quantile(0.5, h4_bucket)", 1).is_empty());
}

#[test]
fn histogram_quantile_fixes_non_monotonic_buckets() {
    // counts 10, 8 (a scrape race), 20 at le 1, 2, +Inf: the 8 becomes 10.
    // q=0.5: rank 10 → first bucket with count ≥ 10 is le=1 → 0 + 1*10/10 = 1
    let mut s = Store::new();
    for (le, c) in [("1", 10.0), ("2", 8.0), ("+Inf", 20.0)] {
        add(&mut s, &[("__name__", "h_bucket"), ("le", le)], &[(0, c)]);
    }
    assert_close(one(&s, "histogram_quantile(0.5, h_bucket)", 1), 1.0);
    // q=0.75: rank 15 → lands in +Inf → highest finite bound 2
    assert_eq!(one(&s, "histogram_quantile(0.75, h_bucket)", 1), 2.0);
}

#[test]
fn histogram_quantile_with_non_positive_first_bound() {
    // first bucket le=-1 with the rank inside it → its bound, no interpolation
    let mut s = Store::new();
    for (le, c) in [("-1", 5.0), ("0", 5.0), ("+Inf", 10.0)] {
        add(&mut s, &[("__name__", "h_bucket"), ("le", le)], &[(0, c)]);
    }
    assert_eq!(one(&s, "histogram_quantile(0.2, h_bucket)", 1), -1.0);
}

// ---------------------------------------------------------------- compile

#[test]
fn unsupported_constructs_are_rejected_at_compile_time_by_name() {
    assert_eq!(
        unsupported("histogram_count(up)"),
        "function `histogram_count`"
    );
    assert_eq!(
        unsupported("max_over_time(up[5m:1m] @ 100)"),
        "`@` modifier"
    );
    assert_eq!(unsupported("up @ 100"), "`@` modifier");
    assert_eq!(unsupported("limitk(2, up)"), "aggregation `limitk`");
    // the message names the construct
    let e = compile("histogram_sum(up)").unwrap_err();
    assert_eq!(
        e.to_string(),
        "function `histogram_sum` is not supported by homeostat's evaluator"
    );
}

#[test]
fn parse_errors_are_reported() {
    assert!(matches!(compile("sum(up"), Err(QueryError::Parse(_))));
    assert!(
        matches!(compile("rate(up)"), Err(QueryError::Parse(_))),
        "type error"
    );
    assert!(
        matches!(compile("{job=~\".*\"}"), Err(QueryError::Parse(_))),
        "empty-matching selector"
    );
}

#[test]
fn max_range_covers_ranges_offsets_and_lookback() {
    let r = |q: &str| compile(q).unwrap().max_range_ms();
    assert_eq!(r("1 + 2"), 0);
    assert_eq!(r("up"), LOOKBACK_MS);
    assert_eq!(r("rate(x[1m])"), 60_000);
    assert_eq!(r("rate(x[10m])"), 600_000);
    assert_eq!(r("rate(x[5m] offset 1m)"), 360_000);
    assert_eq!(r("up offset 10m"), 900_000);
    assert_eq!(r("sum(rate(a[2m])) / sum(b offset 1m)"), 360_000);
    assert_eq!(compile("rate(x[1m])").unwrap().text(), "rate(x[1m])");
}

// ---------------------------------------------------------------- API and helpers

#[test]
fn eval_vector_wraps_scalars_and_rejects_strings() {
    let s = jobs_store();
    let v = compile("1 + 1").unwrap().eval_vector(&s, 0).unwrap();
    assert_eq!(
        v,
        vec![Sample {
            labels: Labels::empty(),
            value: 2.0
        }]
    );
    assert_eq!(
        compile(r#"req{job="web"}"#)
            .unwrap()
            .eval_vector(&s, 1000)
            .unwrap()[0]
            .value,
        4.0
    );
    assert!(compile("\"hello\"").unwrap().eval_vector(&s, 0).is_err());
    assert!(compile("req[1m]").unwrap().eval_vector(&s, 0).is_err());
}

#[test]
fn selects_stale_tells_stale_from_missing() {
    let mut s = Store::new();
    let fresh = l(&[("__name__", "up"), ("job", "fresh")]);
    let marked = l(&[("__name__", "up"), ("job", "marked")]);
    let old = l(&[("__name__", "up"), ("job", "old")]);
    s.append(&fresh, 590 * S, 1.0);
    let id = s.append(&marked, 500 * S, 1.0);
    s.mark_stale(id, 550 * S);
    s.append(&old, 200 * S, 1.0); // older than 5m at 600s
    let stale = |q: &str| compile(q).unwrap().selects_stale(&s, 600 * S);
    assert!(!stale(r#"up{job="fresh"}"#));
    assert!(
        stale(r#"up{job="marked"}"#),
        "newest sample is a stale marker"
    );
    assert!(
        stale(r#"sum(rate(up{job="old"}[1m]))"#),
        "went stale: last sample past lookback"
    );
    assert!(!stale(r#"up{job="missing"}"#), "missing is not stale");
    assert!(stale("up"), "any stale series counts");
}

#[test]
fn api_json_vector_format() {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "v"), ("i", "1")], &[(0, 0.1)]);
    let v = eval(&s, "v", 1);
    assert_eq!(
        api_json(&v, 1500),
        serde_json::json!({
            "resultType": "vector",
            "result": [{"metric": {"__name__": "v", "i": "1"}, "value": [1.5, "0.1"]}]
        })
    );
    // whole seconds print as integers, as Prometheus does
    assert_eq!(
        api_json(&Value::Scalar(2.0), 2000),
        serde_json::json!({"resultType": "scalar", "result": [2, "2"]})
    );
}

#[test]
fn api_value_formatting_matches_prometheus() {
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(stale_nan()), "NaN");
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_value(1.0), "1");
    assert_eq!(format_value(-0.25), "-0.25");
    assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
    // Go's 'f' format never uses an exponent
    assert_eq!(format_value(1e21), "1000000000000000000000");
    assert_eq!(format_value(1.5e-7), "0.00000015");
}

#[test]
fn api_json_matrix_and_string() {
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "v")],
        &[(10, 1.0), (20, f64::INFINITY)],
    );
    let m = eval(&s, "v[1m]", 30);
    assert_eq!(
        api_json(&m, 30_000),
        serde_json::json!({
            "resultType": "matrix",
            "result": [{"metric": {"__name__": "v"}, "values": [[10, "1"], [20, "+Inf"]]}]
        })
    );
    assert_eq!(
        api_json(&eval(&s, "\"hi\"", 0), 0),
        serde_json::json!({"resultType": "string", "result": [0, "hi"]})
    );
}

#[test]
fn empty_results_are_empty_vectors() {
    let s = Store::new();
    assert_eq!(eval(&s, "nothing", 1), Value::Vector(vec![]));
    assert_eq!(eval(&s, "rate(nothing[1m])", 1), Value::Vector(vec![]));
    assert_eq!(eval(&s, "nothing * 2 > 1", 1), Value::Vector(vec![]));
    assert_eq!(
        eval(&s, "histogram_quantile(0.9, nothing)", 1),
        Value::Vector(vec![])
    );
    assert_eq!(
        api_json(&Value::Vector(vec![]), 0),
        serde_json::json!({"resultType": "vector", "result": []})
    );
}

#[test]
fn group_left_copies_labels_from_the_one_side() {
    let mut s = pair_store();
    // an info-style metric: one series per job carrying a `team` label
    add(
        &mut s,
        &[("__name__", "info"), ("job", "api"), ("team", "pay")],
        &[(0, 1.0)],
    );
    // errors (many) * on(job) group_left(team) info (one): each errors series
    // keeps its labels, gains team="pay", loses its name (arithmetic)
    let v = vector(&s, "errors * on(job) group_left(team) info", 1);
    assert_eq!(v.len(), 4);
    assert_eq!(
        v[0],
        (
            "{instance=\"a\", job=\"api\", team=\"pay\"}".to_string(),
            1.0
        )
    );
    // group_right: the left side is the "one"; values are left op right
    let v = vector(&s, "info - on(job) group_right errors", 1);
    assert_eq!(
        v.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![0.0, -2.0, -4.0, -8.0]
    );
    assert!(v[0].0.contains("instance=\"a\""));
    // comparison with group_left keeps the name of the many side; errors
    // are 1, 3, 5, 9 against info = 1 → the three above 1 remain
    let v = vector(&s, "errors > on(job) group_left info", 1);
    assert!(v.iter().all(|x| x.0.starts_with("errors{")), "{v:?}");
    assert_eq!(v.len(), 3);
}

#[test]
fn group_left_errors() {
    let mut s = pair_store();
    add(
        &mut s,
        &[("__name__", "info"), ("job", "api"), ("team", "pay")],
        &[(0, 1.0)],
    );
    add(
        &mut s,
        &[("__name__", "info"), ("job", "api"), ("team", "ops")],
        &[(0, 1.0)],
    );
    // two `info` series per job on the one side
    let e = err(&s, "errors * on(job) group_left(team) info", 1);
    assert!(e.contains("on the right hand-side"), "{e}");
    let e = err(&s, "info * on(job) group_right(team) errors", 1);
    assert!(e.contains("on the left hand-side"), "{e}");
    // results that collide after the label change
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "a"), ("x", "1"), ("y", "1")],
        &[(0, 1.0)],
    );
    add(
        &mut s,
        &[("__name__", "a"), ("x", "1"), ("y", "2")],
        &[(0, 1.0)],
    );
    add(&mut s, &[("__name__", "b"), ("x", "1")], &[(0, 1.0)]);
    let e = err(&s, "a * ignoring(y) group_left(y) b", 1);
    assert_eq!(
        e,
        "multiple matches for labels: grouping labels must ensure unique matches"
    );
}

#[test]
fn label_replace_and_label_join() {
    let s = jobs_store();
    // capture group into a new label; the name is kept
    assert_eq!(
        vector(
            &s,
            r#"label_replace(req{job="api-2"}, "svc", "$1", "job", "(.*)-\\d+")"#,
            1
        ),
        vec![(
            "req{job=\"api-2\", svc=\"api\", zone=\"us\"}".to_string(),
            2.0
        )]
    );
    // anchored: "pi" does not match "api" → unchanged
    assert_eq!(
        vector(
            &s,
            r#"label_replace(req{job="api"}, "svc", "x", "job", "pi")"#,
            1
        ),
        vec![("req{job=\"api\", zone=\"eu\"}".to_string(), 1.0)]
    );
    // an empty replacement removes the destination label
    assert_eq!(
        vector(
            &s,
            r#"label_replace(req{job="api"}, "zone", "", "job", ".*")"#,
            1
        ),
        vec![("req{job=\"api\"}".to_string(), 1.0)]
    );
    // dropping zone, then overwriting job with a constant, makes the three
    // req series identical
    let e = err(
        &s,
        r#"label_replace(label_replace(req, "zone", "", "zone", ".*"), "job", "same", "job", ".*")"#,
        1,
    );
    assert_eq!(e, "vector cannot contain metrics with the same labelset");
    assert_eq!(
        vector(
            &s,
            r#"label_join(req{job="api"}, "id", "/", "job", "zone", "missing")"#,
            1
        ),
        vec![(
            "req{id=\"api/eu/\", job=\"api\", zone=\"eu\"}".to_string(),
            1.0
        )]
    );
    // bad regex and bad label names are load-time errors
    assert!(matches!(
        compile(r#"label_replace(up, "a", "", "b", "(")"#),
        Err(QueryError::Parse(_))
    ));
    assert!(matches!(
        compile(r#"label_replace(up, "1a", "", "b", ".*")"#),
        Err(QueryError::Parse(_))
    ));
    assert!(matches!(
        compile(r#"label_join(up, "a", ",", "b-c")"#),
        Err(QueryError::Parse(_))
    ));
}

#[test]
fn count_values_counts_each_distinct_value() {
    let mut s = Store::new();
    for (i, v) in [("1", 2.0), ("2", 2.0), ("3", 0.5), ("4", f64::INFINITY)] {
        add(
            &mut s,
            &[("__name__", "ver"), ("i", i), ("job", "a")],
            &[(0, v)],
        );
    }
    assert_eq!(
        vector(&s, r#"count_values("v", ver)"#, 1),
        vec![
            ("{v=\"+Inf\"}".to_string(), 1.0),
            ("{v=\"0.5\"}".to_string(), 1.0),
            ("{v=\"2\"}".to_string(), 2.0),
        ]
    );
    // by keeps job as well
    assert_eq!(
        vector(&s, r#"count_values by (job) ("v", ver)"#, 1)[2],
        ("{job=\"a\", v=\"2\"}".to_string(), 2.0)
    );
    // without (i) keeps job and the value label, drops the name
    assert_eq!(
        vector(&s, r#"count_values without (i) ("v", ver)"#, 1).len(),
        3
    );
}

#[test]
fn subqueries_evaluate_at_aligned_steps() {
    // value = t/10 every 10s from 0 to 600s
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "g"), ("i", "1")],
        &every(0, 600, 10, |t| t as f64 / 10.0),
    );
    // x[2m:1m] at 600s: steps 480, 540, 600 → 48, 54, 60
    match eval(&s, "g[2m:1m]", 600) {
        Value::Matrix(m) => assert_eq!(
            m[0].samples,
            vec![(480 * S, 48.0), (540 * S, 54.0), (600 * S, 60.0)]
        ),
        other => panic!("{other:?}"),
    }
    // at 610s the steps stay aligned to multiples of 1m: 540, 600 (490 < 540)
    assert_eq!(one(&s, "count_over_time(g[2m:1m])", 610), 2.0);
    assert_eq!(one(&s, "max_over_time(g[2m:1m])", 610), 60.0);
    // default step is 1m
    assert_eq!(one(&s, "count_over_time(g[5m:])", 600), 6.0);
    // offset shifts the window: [360, 480] → 36, 42, 48, sum 126
    assert_eq!(one(&s, "sum_over_time(g[2m:1m] offset 2m)", 600), 126.0);
    // max of a rate over time: rate(g[1m]) is 0.1/s everywhere
    assert_close(one(&s, "max_over_time(rate(g[1m])[5m:30s])", 600), 0.1);
    // rate over a subquery uses the subquery's range: points 480..600 by 1m
    // rise 12 over 120s, edges sampled → 0.1/s
    assert_close(one(&s, "rate(g[2m:1m])", 600), 0.1);
    // absent_over_time on a subquery has no labels to copy
    assert_eq!(
        vector(&s, r#"absent_over_time(nope{job="x"}[5m:1m])"#, 600),
        vec![("{}".to_string(), 1.0)]
    );
}

#[test]
fn max_range_of_subqueries() {
    let r = |q: &str| compile(q).unwrap().max_range_ms();
    // 10m subquery range + 1m offset + the inner rate's 5m range
    assert_eq!(r("max_over_time(rate(x[5m])[10m:1m] offset 1m)"), 960_000);
    // an instant selector inside a subquery adds the lookback
    assert_eq!(r("max_over_time(x[10m:1m])"), 900_000);
}

#[test]
fn negative_offset_reads_later_samples() {
    // Prometheus 2.42 has negative offsets enabled by default.
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "x")],
        &every(0, 600, 60, |t| t as f64),
    );
    assert_eq!(one(&s, "x offset -2m", 300), 420.0);
    assert_eq!(
        compile("x offset -2m").unwrap().max_range_ms(),
        LOOKBACK_MS - 120_000
    );
    assert_eq!(compile("rate(x[1m] offset -5m)").unwrap().max_range_ms(), 0);
}

#[test]
fn trig_sign_and_sort_functions() {
    let mut s = Store::new();
    add(&mut s, &[("__name__", "m"), ("i", "1")], &[(0, -2.0)]);
    add(&mut s, &[("__name__", "m"), ("i", "2")], &[(0, f64::NAN)]);
    add(&mut s, &[("__name__", "m"), ("i", "3")], &[(0, 3.0)]);
    let vals = |q: &str| match eval(&s, q, 1) {
        Value::Vector(v) => v.into_iter().map(|x| x.value).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let sgn = vals(r#"sgn(m{i!="2"})"#);
    assert_eq!(sgn.len(), 2);
    assert_eq!(sgn.iter().sum::<f64>(), 0.0, "-1 and 1");
    // sort keeps its order in the result; NaN last in both directions
    let asc = vals("sort(m)");
    assert_eq!(&asc[..2], &[-2.0, 3.0]);
    assert!(asc[2].is_nan());
    let desc = vals("sort_desc(m)");
    assert_eq!(&desc[..2], &[3.0, -2.0]);
    assert!(desc[2].is_nan());
    assert_close(one(&s, "pi()", 1), std::f64::consts::PI);
    assert_close(one(&s, r#"deg(rad(m{i="3"}))"#, 1), 3.0);
    assert_close(one(&s, "cos(vector(0))", 1), 1.0);
    assert_close(one(&s, "sin(vector(pi() / 2))", 1), 1.0);
}

#[test]
fn date_functions_use_utc() {
    let mut s = Store::new();
    // 2024-02-29T13:45:00Z = 1709214300 (a Thursday, leap year)
    add(&mut s, &[("__name__", "ts")], &[(0, 1_709_214_300.0)]);
    assert_eq!(one(&s, "year(ts)", 1), 2024.0);
    assert_eq!(one(&s, "month(ts)", 1), 2.0);
    assert_eq!(one(&s, "day_of_month(ts)", 1), 29.0);
    assert_eq!(one(&s, "day_of_week(ts)", 1), 4.0);
    assert_eq!(one(&s, "hour(ts)", 1), 13.0);
    assert_eq!(one(&s, "minute(ts)", 1), 45.0);
    assert_eq!(one(&s, "days_in_month(ts)", 1), 29.0);
    // without an argument: the evaluation time (0 = 1970-01-01, a Thursday)
    assert_eq!(one(&s, "year()", 0), 1970.0);
    assert_eq!(one(&s, "day_of_week()", 0), 4.0);
    assert_eq!(one(&s, "days_in_month()", 0), 31.0);
}

#[test]
fn histogram_quantile_does_not_merge_different_histograms() {
    // two histograms with identical labels but different names are kept
    // apart and then clash once the name is dropped
    let mut s = Store::new();
    for name in ["a_bucket", "b_bucket"] {
        for (le, c) in [("1", 1.0), ("+Inf", 2.0)] {
            add(&mut s, &[("__name__", name), ("le", le)], &[(0, c)]);
        }
    }
    let e = err(
        &s,
        r#"histogram_quantile(0.5, {__name__=~"a_bucket|b_bucket"})"#,
        1,
    );
    assert_eq!(e, "vector cannot contain metrics with the same labelset");
    assert_eq!(one(&s, "histogram_quantile(0.5, a_bucket)", 1), 1.0);
}

#[test]
fn default_subquery_step_is_configurable() {
    let mut s = Store::new();
    add(
        &mut s,
        &[("__name__", "g")],
        &every(0, 600, 10, |t| t as f64),
    );
    let opts = CompileOptions {
        default_subquery_step_ms: 30_000,
    };
    // [5m:] with a 30s step at 600s: 300, 330, ..., 600 → 11 points
    let q = compile_with("count_over_time(g[5m:])", &opts).unwrap();
    assert_eq!(q.eval_vector(&s, 600 * S).unwrap()[0].value, 11.0);
    // an explicit step wins
    let q = compile_with("count_over_time(g[5m:1m])", &opts).unwrap();
    assert_eq!(q.eval_vector(&s, 600 * S).unwrap()[0].value, 6.0);
}

#[test]
fn compiled_queries_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + Clone>(_: &T) {}
    let q = compile(r#"sum by (job) (rate(x{job=~"a.*"}[1m])) > 1"#).unwrap();
    shareable(&q);
    let s = Store::new();
    let handle = std::thread::spawn(move || q.eval_vector(&s, 0).map(|v| v.len()));
    assert_eq!(handle.join().unwrap(), Ok(0));
}

#[test]
fn rate_applies_extrapolation_and_per_second_as_one_factor() {
    // 0,10,20,5,15,25 at 0..50s, window [-5s, 55s]: increase 25 + 20 (reset)
    // = 45; zero point at the first sample → 0s to start, 5s to end:
    // 45 × (55/50) / 60 = 0.825. Multiplying by 55/50 first gives
    // 0.8250000000000001; promtool 2.42 prints 0.825, so the factor
    // (55/50)/60 is formed first.
    let s = counter(&[
        (0, 0.0),
        (10, 10.0),
        (20, 20.0),
        (30, 5.0),
        (40, 15.0),
        (50, 25.0),
    ]);
    assert_eq!(one(&s, "rate(c[1m])", 55), 0.825);
}

#[test]
fn atan2_keeps_the_metric_name() {
    // Prometheus drops the name only for + - * / % ^.
    let s = jobs_store();
    let v = vector(&s, r#"req{job="web"} atan2 0"#, 1);
    assert_eq!(v[0].0, "req{job=\"web\"}");
    assert_close(v[0].1, std::f64::consts::FRAC_PI_2);
}

#[test]
fn absurd_durations_and_subquery_resolutions_are_refused() {
    // beyond Go's 292-year duration limit
    assert!(matches!(
        compile("rate(x[300y])"),
        Err(QueryError::Parse(_))
    ));
    assert!(matches!(
        compile("x offset 1000y"),
        Err(QueryError::Parse(_))
    ));
    // a day at 1ms resolution would be 86.4 million evaluations per tick
    assert!(matches!(
        compile("max_over_time(x[1d:1ms])"),
        Err(QueryError::Parse(_))
    ));
    // a day at 1s is fine
    assert!(compile("max_over_time(x[1d:1s])").is_ok());
}
