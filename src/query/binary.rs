//! Binary operators: arithmetic, comparison (filtering or `bool`), `atan2`,
//! and the set operators `and`/`or`/`unless`, between scalars and vectors,
//! with one-to-one and many-to-one vector matching (`on`/`ignoring`,
//! `group_left`/`group_right`) as Prometheus 2.42 does it, including its errors for ambiguous matches.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::compile::{BinOp, Card, Matching};
use super::value::{check_unique, Elem, Val};
use super::EvalError;
use crate::model::{Labels, METRIC_NAME};

/// Apply `op` to two numbers: (value, keep). Comparisons keep the left value.
fn elem_op(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        // Rust's `%` on floats is C's fmod, like Go's math.Mod.
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

pub(crate) fn binary(
    op: BinOp,
    l: Val,
    r: Val,
    matching: &Matching,
    return_bool: bool,
) -> Result<Val, EvalError> {
    match (l, r) {
        (Val::Scalar(a), Val::Scalar(b)) => {
            let (v, keep) = elem_op(op, a, b);
            if op.is_comparison() {
                // The parser only allows scalar comparisons with `bool`.
                Ok(Val::Scalar(if keep { 1.0 } else { 0.0 }))
            } else {
                Ok(Val::Scalar(v))
            }
        }
        (Val::Vector(v), Val::Scalar(s)) => vector_scalar(op, v, s, false, return_bool),
        (Val::Scalar(s), Val::Vector(v)) => vector_scalar(op, v, s, true, return_bool),
        (Val::Vector(a), Val::Vector(b)) => match op {
            BinOp::And => Ok(Val::Vector(and(a, b, matching))),
            BinOp::Or => Ok(Val::Vector(or(a, b, matching))),
            BinOp::Unless => Ok(Val::Vector(unless(a, b, matching))),
            _ => vector_vector(op, a, b, matching, return_bool).map(Val::Vector),
        },
        _ => Err(EvalError::Execution(format!(
            "binary operator {op:?} needs scalar or instant vector operands"
        ))),
    }
}

fn vector_scalar(
    op: BinOp,
    v: Vec<Elem>,
    s: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Val, EvalError> {
    let mut out = Vec::with_capacity(v.len());
    let drop = op.drops_name() || return_bool;
    for mut e in v {
        let (l, r) = if swap { (s, e.value) } else { (e.value, s) };
        let (mut value, mut keep) = elem_op(op, l, r);
        // `1 < x` keeps x's value, not the scalar.
        if op.is_comparison() && swap {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            e.value = value;
            e.drop_name |= drop;
            out.push(e);
        }
    }
    check_unique(&out)?;
    Ok(Val::Vector(out))
}

/// Matching signature: the `on` labels, or all but the `ignoring` labels and
/// the metric name.
fn signature<'a>(e: &'a Elem, m: &Matching) -> Vec<(&'a str, &'a str)> {
    if m.on {
        e.iter()
            .filter(|(k, _)| m.labels.iter().any(|n| n == k))
            .collect()
    } else {
        e.iter()
            .filter(|(k, _)| *k != METRIC_NAME && !m.labels.iter().any(|n| n == k))
            .collect()
    }
}

fn fmt_pairs(p: &[(&str, &str)]) -> String {
    go_labels(p.iter().copied())
}

/// Labels as Prometheus prints them in messages: `{__name__="x", a="b"}`.
fn go_labels<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let inner: Vec<String> = pairs.map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn vector_vector(
    op: BinOp,
    lhs: Vec<Elem>,
    rhs: Vec<Elem>,
    m: &Matching,
    return_bool: bool,
) -> Result<Vec<Elem>, EvalError> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    // Iterate the "many" side and look up the "one" side, which must be unique
    // per matching signature.
    let (many, one, swapped, include, one_side) = match &m.card {
        Card::OneToOne => (&lhs, &rhs, false, None, "right"),
        Card::ManyToOne(inc) => (&lhs, &rhs, false, Some(inc), "right"),
        Card::OneToMany(inc) => (&rhs, &lhs, true, Some(inc), "left"),
    };
    let mut ones: HashMap<Vec<(&str, &str)>, &Elem> = HashMap::with_capacity(one.len());
    for r in one {
        let sig = signature(r, m);
        if let Some(dup) = ones.get(&sig) {
            return Err(EvalError::Execution(format!(
                "found duplicate series for the match group {} on the {one_side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                fmt_pairs(&sig),
                go_labels(dup.iter()),
                go_labels(r.iter()),
            )));
        }
        ones.insert(sig, r);
    }
    let mut matched: HashSet<Vec<(&str, &str)>> = HashSet::new();
    let mut grouped: HashMap<Vec<(&str, &str)>, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    let arithmetic = op.drops_name();
    for l in many {
        let sig = signature(l, m);
        let Some(r) = ones.get(&sig) else { continue };
        let (vl, vr) = if swapped {
            (r.value, l.value)
        } else {
            (l.value, r.value)
        };
        let (mut value, keep) = elem_op(op, vl, vr);
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let drop_name = arithmetic || return_bool || l.drop_name;
        match include {
            None => {
                let elem = if m.on || !m.labels.is_empty() {
                    // `on` keeps only its labels, `ignoring` removes its labels.
                    let pairs = l.iter().filter(|(k, _)| {
                        !(drop_name && *k == METRIC_NAME)
                            && (m.labels.iter().any(|n| n == k) == m.on)
                    });
                    Elem::new(Arc::new(Labels::new(pairs)), value)
                } else {
                    Elem {
                        labels: l.labels.clone(),
                        drop_name,
                        value,
                    }
                };
                if !matched.insert(sig) {
                    return Err(EvalError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                            .into(),
                    ));
                }
                out.push(elem);
            }
            Some(inc) => {
                // The "many" side's labels, plus the listed labels copied
                // from the "one" side (removed when it lacks them).
                let mut labels = Elem {
                    labels: l.labels.clone(),
                    drop_name,
                    value,
                }
                .to_labels();
                for name in inc {
                    labels.set(name, r.get(name).unwrap_or(""));
                }
                if !grouped.entry(sig).or_default().insert(labels.clone()) {
                    return Err(EvalError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
                out.push(Elem::new(Arc::new(labels), value));
            }
        }
    }
    Ok(out)
}

fn and(lhs: Vec<Elem>, rhs: Vec<Elem>, m: &Matching) -> Vec<Elem> {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let right: HashSet<Vec<(&str, &str)>> = rhs.iter().map(|r| signature(r, m)).collect();
    lhs.iter()
        .filter(|l| right.contains(&signature(l, m)))
        .cloned()
        .collect()
}

fn or(lhs: Vec<Elem>, rhs: Vec<Elem>, m: &Matching) -> Vec<Elem> {
    let left: HashSet<Vec<(&str, &str)>> = lhs.iter().map(|l| signature(l, m)).collect();
    let extra: Vec<Elem> = rhs
        .iter()
        .filter(|r| !left.contains(&signature(r, m)))
        .cloned()
        .collect();
    let mut out = lhs.clone();
    out.extend(extra);
    out
}

fn unless(lhs: Vec<Elem>, rhs: Vec<Elem>, m: &Matching) -> Vec<Elem> {
    if rhs.is_empty() {
        return lhs;
    }
    let right: HashSet<Vec<(&str, &str)>> = rhs.iter().map(|r| signature(r, m)).collect();
    lhs.iter()
        .filter(|l| !right.contains(&signature(l, m)))
        .cloned()
        .collect()
}
