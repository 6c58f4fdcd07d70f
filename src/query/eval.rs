//! Instant evaluation of a plan against the store, at one timestamp.
//!
//! Owns selector semantics (5m lookback closed on both ends as in Prometheus
//! 2.42, stale markers, `offset`, closed range windows), the internal value
//! representation, and dispatch to functions, aggregations and operators.
//! Label sets are shared with the store (`Arc`) and the metric name is dropped
//! lazily, so a tick over many series clones labels only for its output.
//!
//! Every value built is charged to the evaluation's [`Budget`] (samples held
//! at once, as Prometheus's `--query.max-samples` counts them) and released
//! when its parent has consumed it; selectors and subquery steps also tick
//! the budget, which is where a deadline or cancellation stops the work.
use std::collections::HashMap;
use std::sync::Arc;

use super::compile::{Func, Node, Selector};
use super::functions::{self, Operands};
use super::limits::Budget;
use super::value::{check_unique, check_unique_all, Elem, MSeries, Val};
use super::{aggregate, binary, EvalError, LOOKBACK_MS};
use crate::model::{Labels, TimestampMs};
use crate::store::{is_stale_nan, Store};

/// How the evaluator reaches the store: a store already locked by the caller
/// (rules, tests), or a shared one locked anew for each selector, so a long
/// API query never holds writers (scrapes) back for more than one selection.
pub(crate) trait StoreView {
    fn with_store(&self, f: &mut dyn FnMut(&Store));
}

impl StoreView for Store {
    fn with_store(&self, f: &mut dyn FnMut(&Store)) {
        f(self)
    }
}

impl StoreView for std::sync::RwLock<Store> {
    fn with_store(&self, f: &mut dyn FnMut(&Store)) {
        let store = self
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&store)
    }
}

pub(crate) struct Evaluator<'s> {
    store: &'s dyn StoreView,
    pub at: TimestampMs,
    budget: &'s Budget<'s>,
}

impl<'s> Evaluator<'s> {
    pub fn new(store: &'s dyn StoreView, at: TimestampMs, budget: &'s Budget<'s>) -> Self {
        Evaluator { store, at, budget }
    }

    /// Evaluate `n`. What its operands held is released once it is built;
    /// the result stays charged until the caller's own node is built.
    pub fn eval(&self, n: &Node) -> Result<Val, EvalError> {
        let mark = self.budget.mark();
        let v = self.eval_node(n)?;
        self.budget.release_to(mark);
        self.budget.charge(v.sample_count())?;
        Ok(v)
    }

    fn eval_node(&self, n: &Node) -> Result<Val, EvalError> {
        match n {
            Node::Number(x) => Ok(Val::Scalar(*x)),
            Node::Str(s) => Ok(Val::Str(s.clone())),
            Node::Instant(sel) => Ok(Val::Vector(self.instant(sel, |_, v| v)?)),
            Node::Range(sel, range) => Ok(Val::Matrix(self.range(sel, *range)?)),
            Node::Subquery {
                expr,
                range_ms,
                step_ms,
                offset_ms,
            } => self
                .subquery(expr, *range_ms, *step_ms, *offset_ms)
                .map(Val::Matrix),
            Node::Neg(e) => match self.eval(e)? {
                Val::Scalar(x) => Ok(Val::Scalar(-x)),
                Val::Vector(v) => {
                    let out: Vec<Elem> = v.iter().map(|e| e.with_value_no_name(-e.value)).collect();
                    check_unique(&out)?;
                    Ok(Val::Vector(out))
                }
                other => Err(EvalError::Execution(format!(
                    "unary minus on a {}",
                    other.type_name()
                ))),
            },
            Node::Call(f, args) => self.call(*f, args),
            Node::Aggregate {
                op,
                param,
                grouping,
                expr,
            } => {
                let param = match param {
                    Some(p) => Some(self.eval(p)?),
                    None => None,
                };
                let input = self.vector(expr)?;
                aggregate::aggregate(*op, param, grouping, input).map(Val::Vector)
            }
            Node::Binary {
                op,
                lhs,
                rhs,
                matching,
                return_bool,
            } => {
                let l = self.eval(lhs)?;
                let r = self.eval(rhs)?;
                binary::binary(*op, l, r, matching, *return_bool)
            }
            Node::LabelReplace {
                expr,
                dst,
                replacement,
                src,
                re,
            } => {
                let v = self.vector(expr)?;
                let out = v
                    .into_iter()
                    .map(|e| {
                        let src_val = e.get(src).unwrap_or("");
                        let Some(caps) = re.captures(src_val) else {
                            return e; // no match: unchanged
                        };
                        let mut res = String::new();
                        caps.expand(replacement, &mut res);
                        let mut labels = e.to_labels();
                        labels.set(dst, &res);
                        Elem::new(Arc::new(labels), e.value)
                    })
                    .collect::<Vec<_>>();
                check_unique_all(&out)?;
                Ok(Val::Vector(out))
            }
            Node::LabelJoin {
                expr,
                dst,
                sep,
                srcs,
            } => {
                let v = self.vector(expr)?;
                let out = v
                    .into_iter()
                    .map(|e| {
                        let joined = srcs
                            .iter()
                            .map(|s| e.get(s).unwrap_or(""))
                            .collect::<Vec<_>>()
                            .join(sep);
                        let mut labels = e.to_labels();
                        labels.set(dst, &joined);
                        Elem::new(Arc::new(labels), e.value)
                    })
                    .collect::<Vec<_>>();
                check_unique_all(&out)?;
                Ok(Val::Vector(out))
            }
        }
    }

    /// Evaluate a node that must give an instant vector.
    pub fn vector(&self, n: &Node) -> Result<Vec<Elem>, EvalError> {
        match self.eval(n)? {
            Val::Vector(v) => Ok(v),
            other => Err(EvalError::Execution(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluate a node that must give a scalar.
    pub fn scalar(&self, n: &Node) -> Result<f64, EvalError> {
        match self.eval(n)? {
            Val::Scalar(x) => Ok(x),
            other => Err(EvalError::Execution(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Instant selector (charged to the budget as it selects): the newest
    /// sample in `[t - 5m, t]` (t = at - offset), unless it is a stale marker. `value` maps (sample time, value) to the
    /// element value (used by `timestamp()`).
    pub fn instant(
        &self,
        sel: &Selector,
        value: impl Fn(TimestampMs, f64) -> f64,
    ) -> Result<Vec<Elem>, EvalError> {
        let t = self.at - sel.offset_ms;
        let mut out = Vec::new();
        let mut stopped = Ok(());
        self.store.with_store(&mut |store| {
            store.select_each(
                &sel.matchers,
                t - LOOKBACK_MS,
                t,
                |_, labels, mut samples| {
                    if stopped.is_err() {
                        return;
                    }
                    if let Some(&(st, v)) = samples.next_back() {
                        if !is_stale_nan(v) {
                            stopped = self.budget.charge(1);
                            out.push(Elem::new(labels.clone(), value(st, v)));
                        }
                    } else {
                        stopped = self.budget.tick();
                    }
                },
            )
        });
        stopped.map(|()| out)
    }

    /// Range selector: samples in the closed window `[t - range, t]`, stale
    /// markers removed; series left without samples are omitted.
    pub fn range(&self, sel: &Selector, range_ms: i64) -> Result<Vec<MSeries>, EvalError> {
        let t = self.at - sel.offset_ms;
        let mut out = Vec::new();
        let mut stopped = Ok(());
        self.store.with_store(&mut |store| {
            store.select_each(&sel.matchers, t - range_ms, t, |_, labels, samples| {
                if stopped.is_err() {
                    return;
                }
                // Charge before copying, so one huge selection stops early.
                stopped = self.budget.charge(samples.len());
                if stopped.is_err() {
                    return;
                }
                let samples: Vec<(TimestampMs, f64)> = samples
                    .filter(|(_, v)| !is_stale_nan(*v))
                    .copied()
                    .collect();
                if !samples.is_empty() {
                    out.push(MSeries {
                        labels: labels.clone(),
                        samples,
                    });
                }
            })
        });
        stopped.map(|()| out)
    }

    /// Evaluate `expr` at each multiple of `step` in `[t - range, t]`,
    /// t = at - offset (Prometheus aligns subquery steps to absolute time).
    pub fn subquery(
        &self,
        expr: &Node,
        range_ms: i64,
        step_ms: i64,
        offset_ms: i64,
    ) -> Result<Vec<MSeries>, EvalError> {
        let end = self.at - offset_ms;
        let lo = end - range_ms;
        let mut t = lo.div_euclid(step_ms) * step_ms;
        if t < lo {
            t += step_ms;
        }
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut out: Vec<MSeries> = Vec::new();
        while t <= end {
            self.budget.tick()?;
            let inner = Evaluator::new(self.store, t, self.budget);
            let mark = self.budget.mark();
            let v = match inner.eval(expr)? {
                Val::Vector(v) => v,
                Val::Scalar(x) => vec![Elem::new(Arc::new(Labels::empty()), x)],
                other => {
                    return Err(EvalError::Execution(format!(
                        "subquery of a {}",
                        other.type_name()
                    )))
                }
            };
            // The step's result moves into `out`: charged there instead.
            self.budget.release_to(mark);
            self.budget.charge(v.len())?;
            for e in v {
                let labels = e.to_labels();
                let i = match index.get(&labels) {
                    Some(&i) => i,
                    None => {
                        index.insert(labels.clone(), out.len());
                        out.push(MSeries {
                            labels: Arc::new(labels),
                            samples: Vec::new(),
                        });
                        out.len() - 1
                    }
                };
                out[i].samples.push((t, e.value));
            }
            t += step_ms;
        }
        Ok(out)
    }

    fn call(&self, f: Func, args: &[Node]) -> Result<Val, EvalError> {
        functions::call(self, f, args)
    }
}

impl Operands for Evaluator<'_> {
    fn at(&self) -> TimestampMs {
        self.at
    }

    fn vector(&self, n: &Node) -> Result<Vec<Elem>, EvalError> {
        Evaluator::vector(self, n)
    }

    fn scalar(&self, n: &Node) -> Result<f64, EvalError> {
        Evaluator::scalar(self, n)
    }

    fn instant(
        &self,
        sel: &Selector,
        value: impl Fn(TimestampMs, f64) -> f64,
    ) -> Result<Vec<Elem>, EvalError> {
        Evaluator::instant(self, sel, value)
    }

    fn range(&self, sel: &Selector, range_ms: i64) -> Result<Vec<MSeries>, EvalError> {
        Evaluator::range(self, sel, range_ms)
    }

    fn subquery(
        &self,
        expr: &Node,
        range_ms: i64,
        step_ms: i64,
        offset_ms: i64,
    ) -> Result<Vec<MSeries>, EvalError> {
        Evaluator::subquery(self, expr, range_ms, step_ms, offset_ms)
    }
}

/// See [`super::Query::selects_stale`].
pub(crate) fn selector_is_stale(store: &Store, sel: &Selector, at: TimestampMs) -> bool {
    let t = at - sel.offset_ms;
    let mut stale = false;
    store.select_each(
        &sel.matchers,
        t - store.retention_ms(),
        t,
        |_, _, mut samples| {
            if let Some(&(st, v)) = samples.next_back() {
                if is_stale_nan(v) || st < t - LOOKBACK_MS {
                    stale = true;
                }
            }
        },
    );
    stale
}
