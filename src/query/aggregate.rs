//! Aggregation operators (`sum avg min max count group stddev stdvar topk
//! bottomk quantile count_values`) with `by`/`without`, as Prometheus 2.42 computes them:
//! plain summation for `sum`, incremental mean for `avg`, NaN replaced by any
//! real value in `min`/`max`, Welford for `stddev`/`stdvar`. The metric name is
//! always dropped (except by `topk`/`bottomk`, which return input samples).
use std::collections::HashMap;
use std::sync::Arc;

use super::api::format_value;
use super::compile::{AggOp, Grouping};
use super::functions::quantile;
use super::value::{Elem, Val};
use super::EvalError;
use crate::model::{is_label_name, Labels, METRIC_NAME};

struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: f64,
    /// Input values (quantile) or input elements (topk/bottomk).
    members: Vec<usize>,
}

fn in_group<'a>(
    e: &'a Elem,
    grouping: &'a Grouping,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    e.iter().filter(move |(k, _)| match grouping {
        Grouping::By(names) => names.iter().any(|n| n == k),
        Grouping::Without(names) => *k != METRIC_NAME && !names.iter().any(|n| n == k),
    })
}

pub(crate) fn aggregate(
    op: AggOp,
    param: Option<Val>,
    grouping: &Grouping,
    input: Vec<Elem>,
) -> Result<Vec<Elem>, EvalError> {
    if op == AggOp::CountValues {
        return count_values(param, grouping, input);
    }
    let scalar_param = match param {
        Some(Val::Scalar(x)) => Some(x),
        Some(_) => {
            return Err(EvalError::Execution(
                "aggregation parameter must be a scalar".into(),
            ))
        }
        None => None,
    };
    let mut k = 0usize;
    if matches!(op, AggOp::Topk | AggOp::Bottomk) {
        let f = scalar_param.unwrap_or(f64::NAN);
        if !(f >= i64::MIN as f64 && f <= i64::MAX as f64) {
            return Err(EvalError::Execution(format!(
                "Scalar value {f} overflows int64"
            )));
        }
        let ki = f as i64;
        if ki < 1 {
            return Ok(Vec::new());
        }
        k = usize::try_from(ki).unwrap_or(usize::MAX);
    }

    let mut index: HashMap<Vec<(&str, &str)>, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (i, e) in input.iter().enumerate() {
        let key: Vec<(&str, &str)> = in_group(e, grouping).collect();
        let v = e.value;
        let gi = match index.get(&key) {
            Some(&gi) => gi,
            None => {
                let labels = Labels::new(key.iter().copied());
                index.insert(key, groups.len());
                groups.push(Group {
                    labels,
                    value: match op {
                        AggOp::Stddev | AggOp::Stdvar => 0.0,
                        AggOp::Group => 1.0,
                        _ => v,
                    },
                    mean: v,
                    count: 1.0,
                    members: vec![i],
                });
                continue;
            }
        };
        let g = &mut groups[gi];
        match op {
            AggOp::Sum => g.value += v,
            AggOp::Avg => {
                g.count += 1.0;
                // Incremental mean avoids overflow; an infinite mean stays
                // unless a NaN or an opposite infinity comes.
                let skip = g.mean.is_infinite()
                    && ((v.is_infinite() && (g.mean > 0.0) == (v > 0.0))
                        || (!v.is_infinite() && !v.is_nan()));
                if !skip {
                    g.mean += v / g.count - g.mean / g.count;
                }
            }
            AggOp::Group => {}
            AggOp::Max => {
                if g.value < v || g.value.is_nan() {
                    g.value = v;
                }
            }
            AggOp::Min => {
                if g.value > v || g.value.is_nan() {
                    g.value = v;
                }
            }
            AggOp::Count => g.count += 1.0,
            AggOp::Stddev | AggOp::Stdvar => {
                g.count += 1.0;
                let delta = v - g.mean;
                g.mean += delta / g.count;
                g.value += delta * (v - g.mean);
            }
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile => g.members.push(i),
            AggOp::CountValues => {}
        }
    }

    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let value = match op {
            AggOp::Avg => g.mean,
            AggOp::Count => g.count,
            AggOp::Stdvar => g.value / g.count,
            AggOp::Stddev => (g.value / g.count).sqrt(),
            AggOp::Quantile => {
                let mut vals: Vec<f64> = g.members.iter().map(|&i| input[i].value).collect();
                quantile(scalar_param.unwrap_or(f64::NAN), &mut vals)
            }
            AggOp::Topk | AggOp::Bottomk => {
                out.extend(select_k(op == AggOp::Topk, k, &g.members, &input));
                continue;
            }
            _ => g.value,
        };
        out.push(Elem::new(Arc::new(g.labels), value));
    }
    Ok(out)
}

/// The k largest (topk) or smallest (bottomk) members, NaN ranked last,
/// returned in that order; ties keep the earlier input.
fn select_k(top: bool, k: usize, members: &[usize], input: &[Elem]) -> Vec<Elem> {
    let mut m: Vec<usize> = members.to_vec();
    m.sort_by(|&a, &b| {
        let (x, y) = (input[a].value, input[b].value);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => {
                let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                if top {
                    o.reverse()
                } else {
                    o
                }
            }
        }
    });
    m.truncate(k);
    m.into_iter().map(|i| input[i].clone()).collect()
}

/// `count_values("label", v)`: count elements per distinct value, the value
/// (formatted as Prometheus prints it) stored in `label`, which `by` keeps.
fn count_values(
    param: Option<Val>,
    grouping: &Grouping,
    input: Vec<Elem>,
) -> Result<Vec<Elem>, EvalError> {
    let Some(Val::Str(label)) = param else {
        return Err(EvalError::Execution(
            "count_values needs a string parameter".into(),
        ));
    };
    if !is_label_name(&label) {
        return Err(EvalError::Execution(format!(
            "invalid label name {label:?}"
        )));
    }
    let grouping = match grouping {
        Grouping::By(names) => {
            let mut n = names.clone();
            n.push(label.clone());
            Grouping::By(n)
        }
        Grouping::Without(names) => Grouping::Without(names.clone()),
    };
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<(Labels, f64)> = Vec::new();
    for e in &input {
        let mut labels = e.to_labels();
        labels.set(&label, &format_value(e.value));
        let tmp = Elem::new(Arc::new(labels), e.value);
        let key = Labels::new(in_group(&tmp, &grouping));
        match index.get(&key) {
            Some(&i) => out[i].1 += 1.0,
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, 1.0));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(l, c)| Elem::new(Arc::new(l), c))
        .collect())
}
