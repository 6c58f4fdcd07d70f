//! Lowering of `promql-parser`'s AST into our evaluation plan ([`Node`]).
//!
//! Owns the list of what we evaluate: every construct the parser accepts that
//! is not on it is rejected here, at load time, with the construct named. The
//! plan is plain data (no parser types), so evaluation never meets an
//! unsupported node. Must not touch the store.
use std::time::Duration;

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::ast::{
    Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use promql_parser::parser::token;

use super::{CompileOptions, QueryError, LOOKBACK_MS};
use crate::model::{is_label_name, METRIC_NAME};
use crate::store::{MatchOp, Matcher};

/// A vector selector: its matchers (metric name first, so the store can use
/// its name postings) and its offset.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    pub matchers: Vec<Matcher>,
    pub offset_ms: i64,
}

/// `by (...)` or `without (...)`; no clause is `By(vec![])`.
#[derive(Debug, Clone)]
pub(crate) enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

/// Vector matching of a binary operation: `on (...)` or `ignoring (...)`,
/// and the cardinality (`group_left`/`group_right` with their extra labels).
#[derive(Debug, Clone, Default)]
pub(crate) struct Matching {
    pub on: bool,
    pub labels: Vec<String>,
    pub card: Card,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Card {
    #[default]
    OneToOne,
    /// `group_left(labels)`: the right side is the "one" side.
    ManyToOne(Vec<String>),
    /// `group_right(labels)`: the left side is the "one" side.
    OneToMany(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    /// Arithmetic drops the metric name; comparisons and `atan2` keep it
    /// (Prometheus 2.42's `shouldDropMetricName`).
    pub fn drops_name(self) -> bool {
        matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow
        )
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
}

/// Functions we evaluate. Range functions take a matrix selector argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    // range-vector functions
    Rate,
    Irate,
    Increase,
    Delta,
    Idelta,
    Deriv,
    PredictLinear,
    Changes,
    Resets,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    SumOverTime,
    CountOverTime,
    LastOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    PresentOverTime,
    AbsentOverTime,
    // instant-vector and scalar functions
    Abs,
    Ceil,
    Floor,
    Round,
    Sqrt,
    Exp,
    Ln,
    Log2,
    Log10,
    ClampMin,
    ClampMax,
    Clamp,
    Time,
    Vector,
    Scalar,
    Timestamp,
    Absent,
    HistogramQuantile,
    Sgn,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    Deg,
    Rad,
    Pi,
    Sort,
    SortDesc,
    DaysInMonth,
    DayOfMonth,
    DayOfWeek,
    Hour,
    Minute,
    Month,
    Year,
}

impl Func {
    fn by_name(name: &str) -> Option<Func> {
        use Func::*;
        Some(match name {
            "rate" => Rate,
            "irate" => Irate,
            "increase" => Increase,
            "delta" => Delta,
            "idelta" => Idelta,
            "deriv" => Deriv,
            "predict_linear" => PredictLinear,
            "changes" => Changes,
            "resets" => Resets,
            "avg_over_time" => AvgOverTime,
            "min_over_time" => MinOverTime,
            "max_over_time" => MaxOverTime,
            "sum_over_time" => SumOverTime,
            "count_over_time" => CountOverTime,
            "last_over_time" => LastOverTime,
            "stddev_over_time" => StddevOverTime,
            "stdvar_over_time" => StdvarOverTime,
            "quantile_over_time" => QuantileOverTime,
            "present_over_time" => PresentOverTime,
            "absent_over_time" => AbsentOverTime,
            "abs" => Abs,
            "ceil" => Ceil,
            "floor" => Floor,
            "round" => Round,
            "sqrt" => Sqrt,
            "exp" => Exp,
            "ln" => Ln,
            "log2" => Log2,
            "log10" => Log10,
            "clamp_min" => ClampMin,
            "clamp_max" => ClampMax,
            "clamp" => Clamp,
            "time" => Time,
            "vector" => Vector,
            "scalar" => Scalar,
            "timestamp" => Timestamp,
            "absent" => Absent,
            "histogram_quantile" => HistogramQuantile,
            "sgn" => Sgn,
            "sin" => Sin,
            "cos" => Cos,
            "tan" => Tan,
            "asin" => Asin,
            "acos" => Acos,
            "atan" => Atan,
            "sinh" => Sinh,
            "cosh" => Cosh,
            "tanh" => Tanh,
            "asinh" => Asinh,
            "acosh" => Acosh,
            "atanh" => Atanh,
            "deg" => Deg,
            "rad" => Rad,
            "pi" => Pi,
            "sort" => Sort,
            "sort_desc" => SortDesc,
            "days_in_month" => DaysInMonth,
            "day_of_month" => DayOfMonth,
            "day_of_week" => DayOfWeek,
            "hour" => Hour,
            "minute" => Minute,
            "month" => Month,
            "year" => Year,
            _ => return None,
        })
    }
}

/// The evaluation plan.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Number(f64),
    Str(String),
    /// Instant vector selector.
    Instant(Selector),
    /// Range vector selector with its range in ms.
    Range(Selector, i64),
    Neg(Box<Node>),
    Call(Func, Vec<Node>),
    Aggregate {
        op: AggOp,
        param: Option<Box<Node>>,
        grouping: Grouping,
        expr: Box<Node>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Node>,
        rhs: Box<Node>,
        matching: Matching,
        return_bool: bool,
    },
    /// `label_replace(v, dst, replacement, src, regex)`, regex anchored and
    /// compiled at load time.
    LabelReplace {
        expr: Box<Node>,
        dst: String,
        replacement: String,
        src: String,
        re: regex::Regex,
    },
    /// `expr[range:step] offset o`: `expr` evaluated at every multiple of
    /// the step in `[t - o - range, t - o]`, giving a range vector.
    Subquery {
        expr: Box<Node>,
        range_ms: i64,
        step_ms: i64,
        offset_ms: i64,
    },
    /// `label_join(v, dst, separator, src...)`.
    LabelJoin {
        expr: Box<Node>,
        dst: String,
        sep: String,
        srcs: Vec<String>,
    },
}

impl Node {
    /// Longest look-back of any selector in the plan, offset included; a
    /// subquery adds its range and offset to what its expression reads.
    /// Never negative (a negative offset reads after the evaluation time).
    pub fn max_range_ms(&self) -> i64 {
        self.reach_ms().max(0)
    }

    fn reach_ms(&self) -> i64 {
        match self {
            Node::Instant(s) => LOOKBACK_MS + s.offset_ms,
            Node::Range(s, range) => range + s.offset_ms,
            Node::Subquery {
                expr,
                range_ms,
                offset_ms,
                ..
            } => offset_ms + range_ms + expr.reach_ms(),
            other => other
                .children()
                .iter()
                .map(|c| c.reach_ms())
                .max()
                .unwrap_or(0),
        }
    }

    fn children(&self) -> Vec<&Node> {
        match self {
            Node::Number(_) | Node::Str(_) | Node::Instant(_) | Node::Range(..) => vec![],
            Node::Neg(e) => vec![e],
            Node::Call(_, args) => args.iter().collect(),
            Node::Aggregate { param, expr, .. } => {
                param.iter().map(|p| &**p).chain([&**expr]).collect()
            }
            Node::Binary { lhs, rhs, .. } => vec![lhs, rhs],
            Node::LabelReplace { expr, .. }
            | Node::LabelJoin { expr, .. }
            | Node::Subquery { expr, .. } => vec![expr],
        }
    }

    /// Call `f` on every selector (instant or range) of the plan.
    pub fn visit_selectors(&self, f: &mut dyn FnMut(&Selector)) {
        self.visit(&mut |n| match n {
            Node::Instant(s) | Node::Range(s, _) => f(s),
            _ => {}
        });
    }

    fn visit(&self, f: &mut dyn FnMut(&Node)) {
        f(self);
        for c in self.children() {
            c.visit(f);
        }
    }
}

fn unsupported(what: impl Into<String>) -> QueryError {
    QueryError::Unsupported(what.into())
}

/// Longest duration Prometheus can express (Go's `time.Duration`, ~292
/// years); bounding it keeps all time arithmetic far from i64 overflow.
const MAX_DURATION_MS: i64 = i64::MAX / 1_000_000;

/// Upper bound on the steps of one subquery (`range / step`).
const MAX_SUBQUERY_STEPS: i64 = 100_000;

fn duration_ms(d: &Duration) -> Result<i64, QueryError> {
    i64::try_from(d.as_millis())
        .ok()
        .filter(|&ms| ms <= MAX_DURATION_MS)
        .ok_or_else(|| QueryError::Parse(format!("duration {d:?} is out of range")))
}

fn selector(vs: &VectorSelector) -> Result<Selector, QueryError> {
    if vs.at.is_some() {
        return Err(unsupported("`@` modifier"));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(unsupported("`or` between label matchers"));
    }
    let offset_ms = match &vs.offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d)?,
        Some(Offset::Neg(d)) => -duration_ms(d)?,
    };
    let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        matchers.push(Matcher::equal(METRIC_NAME, name));
    }
    for m in &vs.matchers.matchers {
        let op = match &m.op {
            PMatchOp::Equal => MatchOp::Equal(m.value.clone()),
            PMatchOp::NotEqual => MatchOp::NotEqual(m.value.clone()),
            // The parser already anchors the regex (`^(?:...)$`), as PromQL requires.
            PMatchOp::Re(r) => MatchOp::Re(r.clone()),
            PMatchOp::NotRe(r) => MatchOp::NotRe(r.clone()),
        };
        matchers.push(Matcher {
            name: m.name.clone(),
            op,
        });
    }
    // Put a `__name__="x"` matcher first: the store uses it for its postings.
    if let Some(i) = matchers
        .iter()
        .position(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal(_)))
    {
        matchers.swap(0, i);
    }
    Ok(Selector {
        matchers,
        offset_ms,
    })
}

fn label_list(l: &promql_parser::label::Labels) -> Vec<String> {
    l.labels.clone()
}

/// Lower a parsed expression into a plan, rejecting what we do not evaluate.
pub(crate) fn lower(e: &Expr, opts: &CompileOptions) -> Result<Node, QueryError> {
    Ok(match e {
        Expr::NumberLiteral(n) => Node::Number(n.val),
        Expr::StringLiteral(s) => Node::Str(s.val.clone()),
        Expr::Paren(p) => lower(&p.expr, opts)?,
        Expr::Unary(u) => Node::Neg(Box::new(lower(&u.expr, opts)?)),
        Expr::VectorSelector(vs) => Node::Instant(selector(vs)?),
        Expr::MatrixSelector(ms) => Node::Range(selector(&ms.vs)?, duration_ms(&ms.range)?),
        Expr::Subquery(sq) => {
            if sq.at.is_some() {
                return Err(unsupported("`@` modifier"));
            }
            let offset_ms = match &sq.offset {
                None => 0,
                Some(Offset::Pos(d)) => duration_ms(d)?,
                Some(Offset::Neg(d)) => -duration_ms(d)?,
            };
            let step_ms = match &sq.step {
                Some(d) => duration_ms(d)?,
                None => opts.default_subquery_step_ms,
            };
            if step_ms <= 0 {
                return Err(QueryError::Parse("subquery step must be positive".into()));
            }
            let range_ms = duration_ms(&sq.range)?;
            // A rule evaluates this every tick: refuse absurd resolutions
            // instead of hanging the rule engine.
            if range_ms / step_ms > MAX_SUBQUERY_STEPS {
                return Err(QueryError::Parse(format!(
                    "subquery would evaluate {} steps; at most {MAX_SUBQUERY_STEPS} are allowed",
                    range_ms / step_ms
                )));
            }
            Node::Subquery {
                expr: Box::new(lower(&sq.expr, opts)?),
                range_ms,
                step_ms,
                offset_ms,
            }
        }
        Expr::Extension(x) => return Err(unsupported(format!("extension `{}`", x.expr.name()))),
        Expr::Call(c) if c.func.name == "label_replace" || c.func.name == "label_join" => {
            label_fn(c, opts)?
        }
        Expr::Call(c) => {
            let name = c.func.name;
            let func =
                Func::by_name(name).ok_or_else(|| unsupported(format!("function `{name}`")))?;
            let args = c
                .args
                .args
                .iter()
                .map(|a| lower(a, opts))
                .collect::<Result<Vec<_>, _>>()?;
            Node::Call(func, args)
        }
        Expr::Aggregate(a) => {
            let op = match a.op.id() {
                token::T_SUM => AggOp::Sum,
                token::T_AVG => AggOp::Avg,
                token::T_MIN => AggOp::Min,
                token::T_MAX => AggOp::Max,
                token::T_COUNT => AggOp::Count,
                token::T_GROUP => AggOp::Group,
                token::T_STDDEV => AggOp::Stddev,
                token::T_STDVAR => AggOp::Stdvar,
                token::T_TOPK => AggOp::Topk,
                token::T_BOTTOMK => AggOp::Bottomk,
                token::T_QUANTILE => AggOp::Quantile,
                token::T_COUNT_VALUES => AggOp::CountValues,
                _ => return Err(unsupported(format!("aggregation `{}`", a.op))),
            };
            let grouping = match &a.modifier {
                None => Grouping::By(Vec::new()),
                Some(LabelModifier::Include(l)) => Grouping::By(label_list(l)),
                Some(LabelModifier::Exclude(l)) => Grouping::Without(label_list(l)),
            };
            let param = match &a.param {
                Some(p) => Some(Box::new(lower(p, opts)?)),
                None => None,
            };
            Node::Aggregate {
                op,
                param,
                grouping,
                expr: Box::new(lower(&a.expr, opts)?),
            }
        }
        Expr::Binary(b) => {
            let op = match b.op.id() {
                token::T_ADD => BinOp::Add,
                token::T_SUB => BinOp::Sub,
                token::T_MUL => BinOp::Mul,
                token::T_DIV => BinOp::Div,
                token::T_MOD => BinOp::Mod,
                token::T_POW => BinOp::Pow,
                token::T_ATAN2 => BinOp::Atan2,
                token::T_EQLC => BinOp::Eq,
                token::T_NEQ => BinOp::Ne,
                token::T_GTR => BinOp::Gt,
                token::T_LSS => BinOp::Lt,
                token::T_GTE => BinOp::Ge,
                token::T_LTE => BinOp::Le,
                token::T_LAND => BinOp::And,
                token::T_LOR => BinOp::Or,
                token::T_LUNLESS => BinOp::Unless,
                _ => return Err(unsupported(format!("operator `{}`", b.op))),
            };
            let mut matching = Matching::default();
            let mut return_bool = false;
            if let Some(m) = &b.modifier {
                let card = match &m.card {
                    VectorMatchCardinality::ManyToOne(l) => Card::ManyToOne(label_list(l)),
                    VectorMatchCardinality::OneToMany(l) => Card::OneToMany(label_list(l)),
                    VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {
                        Card::OneToOne
                    }
                };
                if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                    return Err(unsupported("`fill` modifier"));
                }
                match &m.matching {
                    Some(LabelModifier::Include(l)) => {
                        matching = Matching {
                            on: true,
                            labels: label_list(l),
                            card: Card::OneToOne,
                        }
                    }
                    Some(LabelModifier::Exclude(l)) => {
                        matching = Matching {
                            on: false,
                            labels: label_list(l),
                            card: Card::OneToOne,
                        }
                    }
                    None => {}
                }
                matching.card = card;
                return_bool = m.return_bool;
            }
            Node::Binary {
                op,
                lhs: Box::new(lower(&b.lhs, opts)?),
                rhs: Box::new(lower(&b.rhs, opts)?),
                matching,
                return_bool,
            }
        }
    })
}

/// A valid Prometheus label name.
fn string_arg(e: &Expr, func: &str, opts: &CompileOptions) -> Result<String, QueryError> {
    match lower(e, opts)? {
        Node::Str(s) => Ok(s),
        _ => Err(QueryError::Parse(format!(
            "{func}() needs string literal arguments"
        ))),
    }
}

/// `label_replace` / `label_join`: string arguments are literals, checked and
/// compiled here so a bad regex or label name is a load-time error.
fn label_fn(
    c: &promql_parser::parser::ast::Call,
    opts: &CompileOptions,
) -> Result<Node, QueryError> {
    let name = c.func.name;
    let args = &c.args.args;
    let Some(first) = args.first() else {
        return Err(QueryError::Parse(format!("{name}() needs arguments")));
    };
    let expr = Box::new(lower(first, opts)?);
    let strings = args[1..]
        .iter()
        .map(|a| string_arg(a, name, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(dst) = strings.first().cloned() else {
        return Err(QueryError::Parse(format!(
            "{name}() needs a destination label"
        )));
    };
    if !is_label_name(&dst) {
        return Err(QueryError::Parse(format!(
            "invalid destination label name in {name}(): {dst}"
        )));
    }
    if name == "label_replace" {
        let [_, replacement, src, re] = strings.as_slice() else {
            return Err(QueryError::Parse(
                "label_replace() needs 5 arguments".into(),
            ));
        };
        let re = regex::Regex::new(&format!("^(?:{re})$")).map_err(|_| {
            QueryError::Parse(format!(
                "invalid regular expression in label_replace(): {re}"
            ))
        })?;
        Ok(Node::LabelReplace {
            expr,
            dst,
            replacement: replacement.clone(),
            src: src.clone(),
            re,
        })
    } else {
        let sep = strings.get(1).cloned().unwrap_or_default();
        let srcs: Vec<String> = strings.iter().skip(2).cloned().collect();
        if let Some(bad) = srcs.iter().find(|s| !is_label_name(s)) {
            return Err(QueryError::Parse(format!(
                "invalid source label name in label_join(): {bad}"
            )));
        }
        Ok(Node::LabelJoin {
            expr,
            dst,
            sep,
            srcs,
        })
    }
}
