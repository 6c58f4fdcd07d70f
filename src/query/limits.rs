//! What one query may cost (DESIGN.md §12): the size and depth of its text,
//! the samples it holds, and when it must stop.
//!
//! Owns the pre-parse check ([`check_text`]: the parser, our lowering and the
//! evaluator all recurse, so depth is bounded before any of them runs), the
//! configured limits ([`QueryLimits`], the `query:` block of the agent config)
//! and the running account of one evaluation ([`Budget`]). Must not read the
//! clock itself: a deadline is a [`Deadline`] from the clock module.
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{EvalError, QueryError};
use crate::clock::Deadline;
use crate::spec::nesting::{nesting_bound, Syntax};

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Deepest nesting accepted, counted by [`nesting_bound`] (brackets plus the
/// operators written at each bracket level). Far above any real query; a
/// debug build needs up to ~15 KiB of stack per level to parse, lower and
/// evaluate, so 128 levels fit the agent's 8 MiB thread stacks four times
/// over (and its 2 MiB ones in a release build).
pub const MAX_NESTING_DEPTH: usize = 128;

/// Stack of every thread that parses or evaluates queries (the runtime's
/// workers and blocking pool): the size of a main thread's.
pub const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Default of `query.max_samples`, as Prometheus's `--query.max-samples`.
pub const DEFAULT_MAX_SAMPLES: usize = 50_000_000;

/// Default of `query.timeout`: below the HTTP server's 30 s request timeout,
/// so an API client gets the evaluator's error rather than a bare 503.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Default of `query.max_concurrency`: API queries evaluated at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 2;

/// Refuse a text that is too long or nests too deeply, without parsing it.
pub fn check_text(text: &str) -> Result<(), QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong {
            len: text.len(),
            max: MAX_QUERY_BYTES,
        });
    }
    nesting_bound(text, MAX_NESTING_DEPTH, Syntax::PromQl).map_err(|e| {
        let (line, column) = e.line_column(text);
        QueryError::TooDeep {
            max: MAX_NESTING_DEPTH,
            line,
            column,
        }
    })?;
    Ok(())
}

/// The `query:` settings of the agent config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most samples one evaluation may hold at once.
    pub max_samples: usize,
    /// Longest one evaluation (API or rule) may run.
    pub timeout: Duration,
    /// API queries evaluated at once; more wait for a slot (within `timeout`).
    pub max_concurrency: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_samples: DEFAULT_MAX_SAMPLES,
            timeout: DEFAULT_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }
}

/// The `query:` block as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueryLimits {
    /// Most samples one evaluation may hold at once. Default 50000000.
    pub max_samples: Option<u64>,
    /// Longest one evaluation (API or rule) may run, e.g. `20s`. Default `20s`.
    pub timeout: Option<String>,
    /// API queries evaluated at once. Default 2.
    pub max_concurrency: Option<u64>,
}

/// Validate `query:`; every error is `(field, message)`.
pub fn compile_limits(raw: RawQueryLimits) -> Result<QueryLimits, Vec<(&'static str, String)>> {
    let d = QueryLimits::default();
    let mut errs = Vec::new();
    let max_samples = match raw.max_samples {
        None => d.max_samples,
        Some(n) => match usize::try_from(n).ok().filter(|n| *n > 0) {
            Some(n) => n,
            None => {
                errs.push((
                    "max_samples",
                    format!("query.max_samples: {n} must be at least 1"),
                ));
                d.max_samples
            }
        },
    };
    let timeout = match raw.timeout.as_deref().map(crate::spec::parse_duration) {
        None => d.timeout,
        Some(Ok(t)) if !t.is_zero() => t,
        Some(Ok(_)) => {
            errs.push(("timeout", "query.timeout: must be more than 0s".to_string()));
            d.timeout
        }
        Some(Err(e)) => {
            errs.push(("timeout", format!("query.timeout: {e}")));
            d.timeout
        }
    };
    let max_concurrency = match raw.max_concurrency {
        None => d.max_concurrency,
        Some(n @ 1..=256) => n as usize,
        Some(n) => {
            errs.push((
                "max_concurrency",
                format!("query.max_concurrency: {n} is not between 1 and 256"),
            ));
            d.max_concurrency
        }
    };
    if errs.is_empty() {
        Ok(QueryLimits {
            max_samples,
            timeout,
            max_concurrency,
        })
    } else {
        Err(errs)
    }
}

impl QueryLimits {
    /// Limits for one evaluation starting now: the sample limit and a
    /// deadline `timeout` from now.
    pub fn start(&self) -> EvalLimits {
        EvalLimits {
            max_samples: self.max_samples,
            deadline: Some((Deadline::after(self.timeout), self.timeout)),
            cancel: None,
        }
    }
}

/// Asks a running evaluation to stop (the client went away). Clones share
/// the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A guard that cancels when dropped: an HTTP handler holds one, so a
    /// client hanging up or the request timeout (both drop the handler's
    /// future) stops the evaluation.
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// See [`CancelFlag::on_drop`].
#[derive(Debug)]
pub struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// What one evaluation may spend.
#[derive(Debug, Clone)]
pub struct EvalLimits {
    /// Most samples held at once: every sample a selector loaded and every
    /// point a subquery produced, until the node that consumes them is built
    /// (as Prometheus's `--query.max-samples` counts).
    pub max_samples: usize,
    /// Stop with [`EvalError::Timeout`] once the deadline passes; the
    /// duration is the timeout it came from, for the message.
    pub deadline: Option<(Deadline, Duration)>,
    /// Stop with [`EvalError::Cancelled`] once set.
    pub cancel: Option<CancelFlag>,
}

impl Default for EvalLimits {
    /// The default sample limit, no deadline, no cancellation.
    fn default() -> Self {
        EvalLimits {
            max_samples: DEFAULT_MAX_SAMPLES,
            deadline: None,
            cancel: None,
        }
    }
}

impl EvalLimits {
    pub fn with_cancel(mut self, cancel: CancelFlag) -> Self {
        self.cancel = Some(cancel);
        self
    }
}

/// Units of work between two reads of the clock; the cancel flag (one
/// relaxed load) is read at every unit.
const WORK_PER_CLOCK_READ: u32 = 256;

/// The running account of one evaluation: samples held, work done.
pub(crate) struct Budget<'l> {
    limits: &'l EvalLimits,
    held: Cell<usize>,
    work: Cell<u32>,
}

impl<'l> Budget<'l> {
    pub fn new(limits: &'l EvalLimits) -> Self {
        Budget {
            limits,
            held: Cell::new(0),
            work: Cell::new(0),
        }
    }

    /// Samples held now, to [`Budget::release_to`] later.
    pub fn mark(&self) -> usize {
        self.held.get()
    }

    /// Everything charged since `mark` was consumed and dropped.
    pub fn release_to(&self, mark: usize) {
        self.held.set(self.held.get().min(mark));
    }

    /// Hold `n` more samples; also one unit of work.
    pub fn charge(&self, n: usize) -> Result<(), EvalError> {
        let held = self.held.get().saturating_add(n);
        self.held.set(held);
        if held > self.limits.max_samples {
            return Err(EvalError::TooManySamples {
                limit: self.limits.max_samples,
            });
        }
        self.tick()
    }

    /// One unit of work (a series visited, a subquery step): stop if
    /// cancelled, or (every so often) if past the deadline.
    pub fn tick(&self) -> Result<(), EvalError> {
        let n = self.work.get().wrapping_add(1);
        self.work.set(n);
        if n % WORK_PER_CLOCK_READ == 0 {
            self.check_now()
        } else if self
            .limits
            .cancel
            .as_ref()
            .is_some_and(CancelFlag::is_cancelled)
        {
            Err(EvalError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Cancelled or past the deadline, looked at now.
    pub fn check_now(&self) -> Result<(), EvalError> {
        if self
            .limits
            .cancel
            .as_ref()
            .is_some_and(CancelFlag::is_cancelled)
        {
            return Err(EvalError::Cancelled);
        }
        match self.limits.deadline {
            Some((deadline, after)) if deadline.passed() => Err(EvalError::Timeout { after }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_depth_are_refused_before_parsing() {
        assert!(check_text("sum(rate(x[5m]))").is_ok());
        let long = format!("x{}", " ".repeat(MAX_QUERY_BYTES));
        assert_eq!(
            check_text(&long),
            Err(QueryError::TooLong {
                len: MAX_QUERY_BYTES + 1,
                max: MAX_QUERY_BYTES
            })
        );
        let deep = format!("{}1{}", "(".repeat(2000), ")".repeat(2000));
        match check_text(&deep) {
            Err(QueryError::TooDeep { max, line, column }) => {
                assert_eq!((max, line), (MAX_NESTING_DEPTH, 1));
                assert!(column <= MAX_NESTING_DEPTH + 1, "{column}");
            }
            other => panic!("{other:?}"),
        }
        match check_text("x +\n  (((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1") {
            Err(QueryError::TooDeep { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn budget_counts_samples_held_and_stops_when_cancelled() {
        let cancel = CancelFlag::new();
        let limits = EvalLimits::default().with_cancel(cancel.clone());
        let limits = EvalLimits {
            max_samples: 10,
            ..limits
        };
        let b = Budget::new(&limits);
        b.charge(6).expect("within");
        let m = b.mark();
        b.charge(4).expect("exactly at the limit");
        b.release_to(m);
        b.charge(4).expect("released samples do not count");
        assert_eq!(b.charge(1), Err(EvalError::TooManySamples { limit: 10 }));
        let b = Budget::new(&limits);
        b.tick().expect("running");
        let guard = cancel.on_drop();
        drop(guard);
        assert_eq!(b.tick(), Err(EvalError::Cancelled));
    }

    /// The deepest shape of each kind the check accepts, compiled and
    /// evaluated on a thread with the agent's stack; one level more is
    /// refused before parsing.
    #[test]
    fn deepest_accepted_queries_fit_the_thread_stack() {
        let n = MAX_NESTING_DEPTH - 2;
        type Shape = Box<dyn Fn(usize) -> String + Send>;
        let shapes: Vec<(&str, Shape)> = vec![
            (
                "paren",
                Box::new(|n| format!("{}x{}", "(".repeat(n), ")".repeat(n))),
            ),
            (
                "sum",
                Box::new(|n| format!("{}x{}", "sum(".repeat(n), ")".repeat(n))),
            ),
            (
                "abs",
                Box::new(|n| format!("{}x{}", "abs(".repeat(n), ")".repeat(n))),
            ),
            ("neg", Box::new(|n| format!("{}x", "-".repeat(n)))),
            ("plus", Box::new(|n| vec!["x"; n + 1].join(" + "))),
            ("pow", Box::new(|n| vec!["x"; n + 1].join("^"))),
            ("or", Box::new(|n| vec!["x"; n + 1].join(" or "))),
            // One step per level ([1m:2m]), so the nest costs no more than its depth.
            (
                "subquery",
                Box::new(|n| {
                    let n = n / 2;
                    format!("{}x{}", "max_over_time(".repeat(n), "[1m:2m])".repeat(n))
                }),
            ),
        ];
        let handle = std::thread::Builder::new()
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || {
                let mut store = crate::store::Store::new();
                let x = crate::model::Labels::new([("__name__", "x")]);
                store.append(&x, 0, 1.0);
                let mut refused = Vec::new();
                for (name, shape) in &shapes {
                    let mut last_ok = 0;
                    for depth in [n / 2, n, n + 1, n + 2, n + 3, 2000] {
                        match super::super::compile(&shape(depth)) {
                            Ok(q) => {
                                // Any answer (even an error) proves it ran without overflowing.
                                let _ = q.eval(&store, 60_000);
                                last_ok = depth;
                            }
                            Err(QueryError::TooDeep { .. }) => {}
                            Err(e) => panic!("{name} at {depth}: {e}"),
                        }
                    }
                    refused.push((*name, last_ok));
                }
                refused
            })
            .expect("spawn");
        for (name, last_ok) in handle.join().expect("no stack overflow") {
            assert!(last_ok >= n / 2, "{name}: even {} levels refused", n / 2);
            assert!(last_ok < 2000, "{name}: 2000 levels accepted");
        }
    }

    /// 100 series with 10 samples each, 10 s apart.
    fn store_100x10() -> crate::store::Store {
        let mut store = crate::store::Store::new();
        for i in 0..100 {
            let l =
                crate::model::Labels::new([("__name__", "x".to_string()), ("i", i.to_string())]);
            for t in 0..10 {
                store.append(&l, t * 10_000, 1.0);
            }
        }
        store
    }

    #[test]
    fn evaluation_stops_at_the_sample_limit_the_deadline_or_a_cancel() {
        let store = store_100x10();
        let at = 95_000;
        let limits = EvalLimits {
            max_samples: 500,
            ..EvalLimits::default()
        };
        let q = |t: &str| super::super::compile(t).expect("compiles");
        // 100 samples held: fine; 1000 loaded by the range selector: refused.
        assert!(q("count(x)").eval_with(&store, at, &limits).is_ok());
        assert_eq!(
            q("sum(count_over_time(x[10m]))")
                .eval_with(&store, at, &limits)
                .err(),
            Some(EvalError::TooManySamples { limit: 500 })
        );
        // Samples are counted while held, not in total: 100 steps of 100 each
        // are consumed one step at a time by the aggregation inside.
        assert!(q("max_over_time(count(x)[100s:1s])")
            .eval_with(&store, at, &limits)
            .is_ok());
        // A subquery's output is held until its parent consumes it.
        assert_eq!(
            q("count(max_over_time(x[100s:1s]))")
                .eval_with(&store, at, &limits)
                .err(),
            Some(EvalError::TooManySamples { limit: 500 })
        );
        let late = EvalLimits {
            deadline: Some((Deadline::after(Duration::ZERO), Duration::from_secs(7))),
            ..EvalLimits::default()
        };
        assert_eq!(
            q("count(x)").eval_with(&store, at, &late).err(),
            Some(EvalError::Timeout {
                after: Duration::from_secs(7)
            })
        );
        let cancel = CancelFlag::new();
        cancel.cancel();
        let gone = EvalLimits::default().with_cancel(cancel);
        assert_eq!(
            q("count(max_over_time(x[1h:1s]))")
                .eval_with(&store, at, &gone)
                .err(),
            Some(EvalError::Cancelled)
        );
        // The shared-store path obeys the same limits.
        let shared = std::sync::RwLock::new(store_100x10());
        assert_eq!(
            q("sum(count_over_time(x[10m]))")
                .eval_shared(&shared, at, &limits)
                .err(),
            Some(EvalError::TooManySamples { limit: 500 })
        );
        assert!(q("count(x)").eval_shared(&shared, at, &limits).is_ok());
    }

    #[test]
    fn query_block_defaults_and_errors() {
        assert_eq!(
            compile_limits(RawQueryLimits::default()),
            Ok(QueryLimits::default())
        );
        let ok = compile_limits(RawQueryLimits {
            max_samples: Some(1000),
            timeout: Some("1m30s".into()),
            max_concurrency: Some(4),
        })
        .expect("valid");
        assert_eq!(ok.max_samples, 1000);
        assert_eq!(ok.timeout, Duration::from_secs(90));
        assert_eq!(ok.max_concurrency, 4);
        let errs = compile_limits(RawQueryLimits {
            max_samples: Some(0),
            timeout: Some("soon".into()),
            max_concurrency: Some(0),
        })
        .expect_err("invalid");
        let fields: Vec<&str> = errs.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["max_samples", "timeout", "max_concurrency"]);
        assert!(
            errs.iter()
                .all(|(f, m)| m.starts_with(&format!("query.{f}: "))),
            "{errs:?}"
        );
    }

    #[test]
    fn a_passed_deadline_stops_at_the_next_check() {
        let limits = EvalLimits {
            deadline: Some((Deadline::after(Duration::ZERO), Duration::from_secs(3))),
            ..EvalLimits::default()
        };
        let b = Budget::new(&limits);
        assert_eq!(
            b.check_now(),
            Err(EvalError::Timeout {
                after: Duration::from_secs(3)
            })
        );
        // `tick` reads the clock every WORK_PER_CLOCK_READ units.
        let stopped = (0..WORK_PER_CLOCK_READ)
            .map(|_| b.tick())
            .find(Result::is_err);
        assert!(stopped.is_some());
    }
}
