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

use super::{QueryError, LOOKBACK_MS};
use crate::labels::METRIC_NAME;
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

/// Vector matching of a binary operation: `on (...)` or `ignoring (...)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matching {
    pub on: bool,
    pub labels: Vec<String>,
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
}

impl Node {
    /// Longest look-back of any selector in the plan, offset included.
    pub fn max_range_ms(&self) -> i64 {
        let mut max = 0;
        self.visit(&mut |n| {
            let r = match n {
                Node::Instant(s) => LOOKBACK_MS + s.offset_ms,
                Node::Range(s, range) => range + s.offset_ms,
                _ => 0,
            };
            max = max.max(r);
        });
        max
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
        match self {
            Node::Number(_) | Node::Str(_) | Node::Instant(_) | Node::Range(..) => {}
            Node::Neg(e) => e.visit(f),
            Node::Call(_, args) => args.iter().for_each(|a| a.visit(f)),
            Node::Aggregate { param, expr, .. } => {
                if let Some(p) = param {
                    p.visit(f);
                }
                expr.visit(f);
            }
            Node::Binary { lhs, rhs, .. } => {
                lhs.visit(f);
                rhs.visit(f);
            }
        }
    }
}

fn unsupported(what: impl Into<String>) -> QueryError {
    QueryError::Unsupported(what.into())
}

fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
        Some(Offset::Pos(d)) => duration_ms(d),
        // Prometheus 2.42 accepts negative offsets only behind a feature flag.
        Some(Offset::Neg(_)) => return Err(unsupported("negative `offset`")),
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
pub(crate) fn lower(e: &Expr) -> Result<Node, QueryError> {
    Ok(match e {
        Expr::NumberLiteral(n) => Node::Number(n.val),
        Expr::StringLiteral(s) => Node::Str(s.val.clone()),
        Expr::Paren(p) => lower(&p.expr)?,
        Expr::Unary(u) => Node::Neg(Box::new(lower(&u.expr)?)),
        Expr::VectorSelector(vs) => Node::Instant(selector(vs)?),
        Expr::MatrixSelector(ms) => Node::Range(selector(&ms.vs)?, duration_ms(&ms.range)),
        Expr::Subquery(_) => return Err(unsupported("subquery")),
        Expr::Extension(x) => return Err(unsupported(format!("extension `{}`", x.expr.name()))),
        Expr::Call(c) => {
            let name = c.func.name;
            let func =
                Func::by_name(name).ok_or_else(|| unsupported(format!("function `{name}`")))?;
            let args = c
                .args
                .args
                .iter()
                .map(|a| lower(a))
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
                _ => return Err(unsupported(format!("aggregation `{}`", a.op))),
            };
            let grouping = match &a.modifier {
                None => Grouping::By(Vec::new()),
                Some(LabelModifier::Include(l)) => Grouping::By(label_list(l)),
                Some(LabelModifier::Exclude(l)) => Grouping::Without(label_list(l)),
            };
            let param = match &a.param {
                Some(p) => Some(Box::new(lower(p)?)),
                None => None,
            };
            Node::Aggregate {
                op,
                param,
                grouping,
                expr: Box::new(lower(&a.expr)?),
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
                match &m.card {
                    VectorMatchCardinality::ManyToOne(_) => {
                        return Err(unsupported("`group_left`"))
                    }
                    VectorMatchCardinality::OneToMany(_) => {
                        return Err(unsupported("`group_right`"))
                    }
                    VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {}
                }
                if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                    return Err(unsupported("`fill` modifier"));
                }
                match &m.matching {
                    Some(LabelModifier::Include(l)) => {
                        matching = Matching {
                            on: true,
                            labels: label_list(l),
                        }
                    }
                    Some(LabelModifier::Exclude(l)) => {
                        matching = Matching {
                            on: false,
                            labels: label_list(l),
                        }
                    }
                    None => {}
                }
                return_bool = m.return_bool;
            }
            Node::Binary {
                op,
                lhs: Box::new(lower(&b.lhs)?),
                rhs: Box::new(lower(&b.rhs)?),
                matching,
                return_bool,
            }
        }
    })
}
