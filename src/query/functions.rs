//! PromQL functions, with Prometheus 2.42's arithmetic: `rate`/`increase`/
//! `delta` extrapolation, `irate`/`idelta`, the `*_over_time` family (Kahan
//! summation where Prometheus uses it), math functions, `absent`, and classic
//! `histogram_quantile`. Must not select from the store except through the
//! evaluator.
use std::collections::HashMap;
use std::sync::Arc;

use super::compile::{Func, Node, Selector};
use super::value::{check_unique, check_unique_all, Elem, MSeries, Val};
use super::EvalError;
use crate::model::{Labels, TimestampMs, METRIC_NAME};
use crate::store::MatchOp;

/// Go's `math.Max`: NaN wins (Rust's `f64::max` ignores NaN).
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: NaN wins.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

/// Kahan–Neumaier step, as Prometheus's `kahanSumInc`.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's `quantile` over plain values: linear interpolation between
/// the closest ranks, `q < 0` → -Inf, `q > 1` → +Inf.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's sort.Float64s puts NaN first.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = go_max(0.0, rank.floor());
    let upper = go_min(n - 1.0, lower + 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// `rate`, `increase` and `delta`: Prometheus 2.42's `extrapolatedRate`.
/// `samples` are the non-stale samples in `[range_start, range_end]`.
fn extrapolated_rate(
    samples: &[(TimestampMs, f64)],
    range_start: TimestampMs,
    range_end: TimestampMs,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first_t, first_v) = samples[0];
    let (last_t, last_v) = samples[samples.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        // A drop is a counter reset: add back the value before the drop.
        let mut prev = 0.0;
        for &(_, v) in samples {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let avg_between = sampled_interval / (samples.len() - 1) as f64;
    if is_counter && result > 0.0 && first_v >= 0.0 {
        // Counters cannot go below zero: do not extrapolate past the zero point.
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold {
        duration_to_start
    } else {
        avg_between / 2.0
    };
    extrapolate_to += if duration_to_end < threshold {
        duration_to_end
    } else {
        avg_between / 2.0
    };
    // One factor, applied once: the order of operations matters for the
    // last bits, and this is the order Prometheus uses.
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: the last two samples.
fn instant_value(samples: &[(TimestampMs, f64)], is_rate: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (prev_t, prev_v) = samples[samples.len() - 2];
    let (last_t, last_v) = samples[samples.len() - 1];
    let mut result = if is_rate && last_v < prev_v {
        last_v // counter reset
    } else {
        last_v - prev_v
    };
    let interval = last_t - prev_t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares fit, x in seconds relative to `intercept_t`. Returns
/// (slope, intercept).
fn linear_regression(samples: &[(TimestampMs, f64)], intercept_t: TimestampMs) -> (f64, f64) {
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    let init_y = samples[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in samples.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    // A constant series has slope 0 exactly (the sums would give rounding noise).
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn avg_over_time(values: &[(TimestampMs, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
    for &(_, v) in values {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() {
        mean
    } else {
        mean + c
    }
}

fn stdvar_over_time(values: &[(TimestampMs, f64)]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Labels `absent()` gives: the equality matchers of the selector, except
/// the name and any label matched more than once or by another operator.
fn absent_labels(sel: Option<&Selector>) -> Labels {
    let Some(sel) = sel else {
        return Labels::empty();
    };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut drop: Vec<&str> = Vec::new();
    for m in &sel.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        match &m.op {
            MatchOp::Equal(v) if !pairs.iter().any(|(n, _)| *n == m.name) => {
                pairs.push((&m.name, v))
            }
            _ => drop.push(&m.name),
        }
    }
    pairs.retain(|(n, _)| !drop.contains(n));
    Labels::new(pairs)
}

fn selector_of(n: &Node) -> Option<&Selector> {
    match n {
        Node::Instant(s) | Node::Range(s, _) => Some(s),
        _ => None,
    }
}

fn arg(args: &[Node], i: usize, f: Func) -> Result<&Node, EvalError> {
    args.get(i)
        .ok_or_else(|| EvalError::Execution(format!("missing argument {} of {:?}", i + 1, f)))
}

/// Map every element's value, dropping the metric name (as Prometheus's
/// simple functions do).
fn map_values(v: Vec<Elem>, f: impl Fn(f64) -> f64) -> Result<Val, EvalError> {
    let out: Vec<Elem> = v.iter().map(|e| e.with_value_no_name(f(e.value))).collect();
    check_unique(&out)?;
    Ok(Val::Vector(out))
}

/// What a function needs from the evaluator that calls it: its arguments
/// evaluated, and the evaluation time. (A trait, so that this file does not
/// import the evaluator that imports it.)
pub(crate) trait Operands {
    fn at(&self) -> TimestampMs;
    fn vector(&self, n: &Node) -> Result<Vec<Elem>, EvalError>;
    fn scalar(&self, n: &Node) -> Result<f64, EvalError>;
    fn instant(
        &self,
        sel: &Selector,
        value: impl Fn(TimestampMs, f64) -> f64,
    ) -> Result<Vec<Elem>, EvalError>;
    fn range(&self, sel: &Selector, range_ms: i64) -> Result<Vec<MSeries>, EvalError>;
    fn subquery(
        &self,
        expr: &Node,
        range_ms: i64,
        step_ms: i64,
        offset_ms: i64,
    ) -> Result<Vec<MSeries>, EvalError>;
}

pub(crate) fn call(ev: &impl Operands, f: Func, args: &[Node]) -> Result<Val, EvalError> {
    use Func::*;
    match f {
        Rate | Irate | Increase | Delta | Idelta | Deriv | PredictLinear | Changes | Resets
        | AvgOverTime | MinOverTime | MaxOverTime | SumOverTime | CountOverTime | LastOverTime
        | StddevOverTime | StdvarOverTime | QuantileOverTime | PresentOverTime | AbsentOverTime => {
            range_function(ev, f, args)
        }
        Abs => map_values(ev.vector(arg(args, 0, f)?)?, f64::abs),
        Ceil => map_values(ev.vector(arg(args, 0, f)?)?, f64::ceil),
        Floor => map_values(ev.vector(arg(args, 0, f)?)?, f64::floor),
        Sqrt => map_values(ev.vector(arg(args, 0, f)?)?, f64::sqrt),
        Exp => map_values(ev.vector(arg(args, 0, f)?)?, f64::exp),
        Ln => map_values(ev.vector(arg(args, 0, f)?)?, f64::ln),
        Log2 => map_values(ev.vector(arg(args, 0, f)?)?, f64::log2),
        Log10 => map_values(ev.vector(arg(args, 0, f)?)?, f64::log10),
        Round => {
            let v = ev.vector(arg(args, 0, f)?)?;
            let to_nearest = match args.get(1) {
                Some(n) => ev.scalar(n)?,
                None => 1.0,
            };
            // Prometheus rounds half up via floor(x + 0.5) on the inverse.
            let inv = 1.0 / to_nearest;
            map_values(v, |x| (x * inv + 0.5).floor() / inv)
        }
        ClampMin => {
            let v = ev.vector(arg(args, 0, f)?)?;
            let min = ev.scalar(arg(args, 1, f)?)?;
            map_values(v, |x| go_max(min, x))
        }
        ClampMax => {
            let v = ev.vector(arg(args, 0, f)?)?;
            let max = ev.scalar(arg(args, 1, f)?)?;
            map_values(v, |x| go_min(max, x))
        }
        Clamp => {
            let v = ev.vector(arg(args, 0, f)?)?;
            let min = ev.scalar(arg(args, 1, f)?)?;
            let max = ev.scalar(arg(args, 2, f)?)?;
            if max < min {
                return Ok(Val::Vector(Vec::new()));
            }
            map_values(v, |x| go_max(min, go_min(max, x)))
        }
        Sgn => map_values(ev.vector(arg(args, 0, f)?)?, |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        }),
        Sin => map_values(ev.vector(arg(args, 0, f)?)?, f64::sin),
        Cos => map_values(ev.vector(arg(args, 0, f)?)?, f64::cos),
        Tan => map_values(ev.vector(arg(args, 0, f)?)?, f64::tan),
        Asin => map_values(ev.vector(arg(args, 0, f)?)?, f64::asin),
        Acos => map_values(ev.vector(arg(args, 0, f)?)?, f64::acos),
        Atan => map_values(ev.vector(arg(args, 0, f)?)?, f64::atan),
        Sinh => map_values(ev.vector(arg(args, 0, f)?)?, f64::sinh),
        Cosh => map_values(ev.vector(arg(args, 0, f)?)?, f64::cosh),
        Tanh => map_values(ev.vector(arg(args, 0, f)?)?, f64::tanh),
        Asinh => map_values(ev.vector(arg(args, 0, f)?)?, f64::asinh),
        Acosh => map_values(ev.vector(arg(args, 0, f)?)?, f64::acosh),
        Atanh => map_values(ev.vector(arg(args, 0, f)?)?, f64::atanh),
        Deg => map_values(ev.vector(arg(args, 0, f)?)?, |v| {
            v * 180.0 / std::f64::consts::PI
        }),
        Rad => map_values(ev.vector(arg(args, 0, f)?)?, |v| {
            v * std::f64::consts::PI / 180.0
        }),
        Pi => Ok(Val::Scalar(std::f64::consts::PI)),
        Sort | SortDesc => {
            let mut v = ev.vector(arg(args, 0, f)?)?;
            // NaN sorts last both ways, as in Prometheus.
            v.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => {
                    let o = a
                        .value
                        .partial_cmp(&b.value)
                        .unwrap_or(std::cmp::Ordering::Equal);
                    if f == SortDesc {
                        o.reverse()
                    } else {
                        o
                    }
                }
            });
            Ok(Val::Vector(v))
        }
        DaysInMonth | DayOfMonth | DayOfWeek | Hour | Minute | Month | Year => {
            let part = |secs: i64| -> f64 { date_part(f, secs) };
            match args.first() {
                // Without an argument: the evaluation time, as a one-element vector.
                None => Ok(Val::Vector(vec![Elem::new(
                    Arc::new(Labels::empty()),
                    part(ev.at().div_euclid(1000)),
                )])),
                // Go converts the float to int64 by truncation.
                Some(a) => map_values(ev.vector(a)?, |v| part(v as i64)),
            }
        }
        Time => Ok(Val::Scalar(ev.at() as f64 / 1000.0)),
        Vector => {
            let x = ev.scalar(arg(args, 0, f)?)?;
            Ok(Val::Vector(vec![Elem::new(Arc::new(Labels::empty()), x)]))
        }
        Scalar => {
            let v = ev.vector(arg(args, 0, f)?)?;
            Ok(Val::Scalar(if v.len() == 1 {
                v[0].value
            } else {
                f64::NAN
            }))
        }
        Timestamp => {
            let a = arg(args, 0, f)?;
            // On a selector, the sample's own timestamp; otherwise the
            // evaluation time (Prometheus's special case).
            let v = match a {
                Node::Instant(sel) => ev.instant(sel, |t, _| t as f64 / 1000.0)?,
                other => {
                    let at = ev.at() as f64 / 1000.0;
                    ev.vector(other)?
                        .into_iter()
                        .map(|mut e| {
                            e.value = at;
                            e
                        })
                        .collect()
                }
            };
            map_values(v, |x| x)
        }
        Absent => {
            let a = arg(args, 0, f)?;
            let v = ev.vector(a)?;
            if !v.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![Elem::new(
                Arc::new(absent_labels(selector_of(a))),
                1.0,
            )]))
        }
        HistogramQuantile => {
            let q = ev.scalar(arg(args, 0, f)?)?;
            let v = ev.vector(arg(args, 1, f)?)?;
            let out = histogram_quantile(q, &v);
            check_unique_all(&out)?;
            Ok(Val::Vector(out))
        }
    }
}

fn range_function(ev: &impl Operands, f: Func, args: &[Node]) -> Result<Val, EvalError> {
    use Func::*;
    // The matrix argument is first, except for quantile_over_time.
    let (m_node, scalar_arg) = match f {
        QuantileOverTime => (arg(args, 1, f)?, Some(ev.scalar(arg(args, 0, f)?)?)),
        PredictLinear => (arg(args, 0, f)?, Some(ev.scalar(arg(args, 1, f)?)?)),
        _ => (arg(args, 0, f)?, None),
    };
    // A range selector or a subquery: both give a matrix, a range and an offset.
    let (matrix, range_ms, offset_ms, absent_sel): (Vec<MSeries>, i64, i64, Option<&Selector>) =
        match m_node {
            Node::Range(sel, range_ms) => (
                ev.range(sel, *range_ms)?,
                *range_ms,
                sel.offset_ms,
                Some(sel),
            ),
            Node::Subquery {
                expr,
                range_ms,
                step_ms,
                offset_ms,
            } => (
                ev.subquery(expr, *range_ms, *step_ms, *offset_ms)?,
                *range_ms,
                *offset_ms,
                None,
            ),
            _ => return Err(EvalError::Execution(format!("{f:?} needs a range vector"))),
        };
    let range_end = ev.at() - offset_ms;
    let range_start = range_end - range_ms;
    if f == AbsentOverTime {
        if !matrix.is_empty() {
            return Ok(Val::Vector(Vec::new()));
        }
        // Prometheus takes labels only from a plain range selector.
        return Ok(Val::Vector(vec![Elem::new(
            Arc::new(absent_labels(absent_sel)),
            1.0,
        )]));
    }
    let mut out = Vec::with_capacity(matrix.len());
    for s in matrix {
        let p = &s.samples;
        if p.is_empty() {
            continue; // selectors and subqueries never give empty series
        }
        let value = match f {
            Rate => extrapolated_rate(p, range_start, range_end, range_ms, true, true),
            Increase => extrapolated_rate(p, range_start, range_end, range_ms, true, false),
            Delta => extrapolated_rate(p, range_start, range_end, range_ms, false, false),
            Irate => instant_value(p, true),
            Idelta => instant_value(p, false),
            Deriv => (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
            PredictLinear => (p.len() >= 2).then(|| {
                // Prometheus fits with the evaluation time as intercept.
                let (slope, intercept) = linear_regression(p, ev.at());
                slope * scalar_arg.unwrap_or(0.0) + intercept
            }),
            Changes => Some(
                p.windows(2)
                    .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                    .count() as f64,
            ),
            Resets => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
            AvgOverTime => Some(avg_over_time(p)),
            MinOverTime => {
                Some(p.iter().skip(1).fold(
                    p[0].1,
                    |m, &(_, v)| {
                        if v < m || m.is_nan() {
                            v
                        } else {
                            m
                        }
                    },
                ))
            }
            MaxOverTime => {
                Some(p.iter().skip(1).fold(
                    p[0].1,
                    |m, &(_, v)| {
                        if v > m || m.is_nan() {
                            v
                        } else {
                            m
                        }
                    },
                ))
            }
            SumOverTime => {
                let (mut sum, mut c) = (0.0, 0.0);
                for &(_, v) in p {
                    (sum, c) = kahan_inc(v, sum, c);
                }
                Some(if f64::is_infinite(sum) { sum } else { sum + c })
            }
            CountOverTime => Some(p.len() as f64),
            LastOverTime => p.last().map(|&(_, v)| v),
            StdvarOverTime => Some(stdvar_over_time(p)),
            StddevOverTime => Some(stdvar_over_time(p).sqrt()),
            QuantileOverTime => {
                let mut vals: Vec<f64> = p.iter().map(|&(_, v)| v).collect();
                Some(quantile(scalar_arg.unwrap_or(f64::NAN), &mut vals))
            }
            PresentOverTime => Some(1.0),
            _ => None,
        };
        if let Some(v) = value {
            out.push(Elem {
                labels: s.labels,
                // last_over_time is the one range function keeping the name.
                drop_name: f != LastOverTime,
                value: v,
            });
        }
    }
    check_unique(&out)?;
    Ok(Val::Vector(out))
}

/// Classic-bucket `histogram_quantile`, Prometheus 2.42's `bucketQuantile`:
/// series grouped by their labels without `le` and the name; a group without a
/// `+Inf` bucket, with fewer than two buckets or no observations gives NaN;
/// non-monotonic counts are fixed up; linear interpolation in the bucket.
fn histogram_quantile(q: f64, v: &[Elem]) -> Vec<Elem> {
    // group key: labels without `le` and name → (first element, buckets)
    let mut index: HashMap<Vec<(&str, &str)>, usize> = HashMap::new();
    let mut groups: Vec<(&Elem, Vec<(f64, f64)>)> = Vec::new();
    for e in v {
        let Some(le) = e.get("le") else { continue };
        let Some(upper) = parse_go_float(le) else {
            continue;
        };
        // The name stays in the key (Prometheus issue 9910): two histograms
        // with the same labels are not merged; they then clash on output.
        let key: Vec<(&str, &str)> = e.iter().filter(|(k, _)| *k != "le").collect();
        let i = *index.entry(key).or_insert_with(|| {
            groups.push((e, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((upper, e.value));
    }
    groups
        .into_iter()
        .map(|(e, mut buckets)| {
            let labels = e
                .labels
                .project(&[METRIC_NAME.to_string(), "le".to_string()], false);
            Elem::new(Arc::new(labels), bucket_quantile(q, &mut buckets))
        })
        .collect()
}

/// Parse an `le` value as Go's `strconv.ParseFloat` would for the usual forms.
fn parse_go_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(&(ub, _)) if ub == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Merge buckets with the same upper bound (e.g. `le="1"` and `le="1.0"`).
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // Counts must not decrease with the bound (scrape races can make them).
    let mut max = f64::NEG_INFINITY;
    for b in merged.iter_mut() {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let last = merged.len() - 1;
    let b = merged[..last].partition_point(|&(_, c)| c < rank);
    if b == last {
        return merged[last - 1].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let bucket_end = merged[b].0;
    let mut count = merged[b].1;
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Calendar fields (UTC) of a Unix time in seconds, for the date functions.
fn date_part(f: Func, secs: i64) -> f64 {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    match f {
        Func::Year => year as f64,
        Func::Month => month as f64,
        Func::DayOfMonth => day as f64,
        // 1970-01-01 was a Thursday (4); Sunday is 0.
        Func::DayOfWeek => (days + 4).rem_euclid(7) as f64,
        Func::Hour => (sod / 3600) as f64,
        Func::Minute => (sod % 3600 / 60) as f64,
        Func::DaysInMonth => {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            match month {
                2 if leap => 29.0,
                2 => 28.0,
                4 | 6 | 9 | 11 => 30.0,
                _ => 31.0,
            }
        }
        _ => f64::NAN,
    }
}
