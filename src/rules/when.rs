//! A rule's `when`: an evalexpr expression over the rule's query values,
//! compiled and checked once at load time, evaluated at every tick.
//!
//! Load time catches what would otherwise only fail (or silently never fire)
//! at run time: unknown variables and functions, PromQL's `and`/`or`/`not`,
//! `=` where `==` was meant, `;`, strings compared with numbers, and a result
//! that is not true or false. The type check evaluates the expression with
//! sample values for every query, the same way a tick does. Query values are
//! floats, so integer literals become floats here too.
use std::collections::BTreeMap;

use evalexpr::{ContextWithMutableVariables, EvalexprError, HashMapContext, Node, Operator, Value};

/// Refuse a condition too long or too deep to parse safely, with the
/// bounds of a query's text.
fn bounded(text: &str) -> Result<(), String> {
    use crate::query::limits::{MAX_NESTING_DEPTH, MAX_QUERY_BYTES};
    use crate::spec::nesting::{nesting_bound, Syntax};
    if text.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "the condition is {} bytes long; at most {MAX_QUERY_BYTES} are accepted",
            text.len()
        ));
    }
    nesting_bound(text, MAX_NESTING_DEPTH, Syntax::Condition).map_err(|e| {
        let (line, column) = e.line_column(text);
        format!(
            "the condition nests too deeply: past {MAX_NESTING_DEPTH} levels of brackets and operators at line {line}, column {column} of the condition"
        )
    })?;
    Ok(())
}

/// Values every query takes in turn for the load-time type check.
const SAMPLES: [f64; 2] = [1.0, 0.0];

/// PromQL's logical operators and what a `when` writes instead.
const PROMQL_WORDS: [(&str, &str); 3] = [("and", "&&"), ("or", "||"), ("not", "!")];

/// One problem with a `when`, and the word it is about (to point at it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub word: Option<String>,
    pub message: String,
}

impl Problem {
    fn at(word: &str, message: String) -> Self {
        Problem {
            word: Some(word.to_string()),
            message,
        }
    }

    fn whole(message: String) -> Self {
        Problem {
            word: None,
            message,
        }
    }
}

/// Compile `text` for a rule whose queries are `queries`; every problem found.
pub(super) fn compile(text: &str, queries: &[&str]) -> Result<Node, Vec<Problem>> {
    // evalexpr recurses in parsing and evaluating: bound the text first.
    bounded(text).map_err(|m| vec![Problem::whole(m)])?;
    // PromQL words first: evalexpr's own error for `a > 1 and b > 2` ("tried
    // to append a node to a leaf node") does not say what is wrong.
    let promql: Vec<Problem> = words(text)
        .filter(|w| !queries.contains(w))
        .filter_map(|w| {
            let (_, instead) = PROMQL_WORDS
                .iter()
                .find(|(p, _)| p.eq_ignore_ascii_case(w))?;
            Some(Problem::at(
                w,
                format!("{w:?} is PromQL; write {instead} (when is an evalexpr expression over the query values)"),
            ))
        })
        .collect();
    let mut node = match evalexpr::build_operator_tree(text) {
        Ok(n) => n,
        Err(_) if !promql.is_empty() => return Err(promql),
        Err(e) => return Err(vec![Problem::whole(e.to_string())]),
    };
    if !promql.is_empty() {
        return Err(promql);
    }
    ints_to_floats(&mut node);

    let mut problems = Vec::new();
    let mut unknown: Vec<&str> = node
        .iter_variable_identifiers()
        .filter(|v| !queries.contains(v))
        .collect();
    unknown.sort();
    unknown.dedup();
    for v in unknown {
        problems.push(Problem::at(
            v,
            format!(
                "unknown variable {v:?} (queries are: {})",
                if queries.is_empty() {
                    "none".to_string()
                } else {
                    queries.join(", ")
                }
            ),
        ));
    }
    shape_problems(&node, text, &mut problems);
    if problems.is_empty() {
        problems.extend(type_check(&node, queries));
    }
    if problems.is_empty() {
        Ok(node)
    } else {
        Err(problems)
    }
}

/// Evaluate with one value per query.
pub(super) fn eval(node: &Node, values: &BTreeMap<String, f64>) -> Result<bool, EvalexprError> {
    let mut ctx = HashMapContext::new();
    for (k, v) in values {
        ctx.set_value(k.clone(), Value::Float(*v))?;
    }
    node.eval_boolean_with_context(&ctx)
}

/// Operators and constants that parse but cannot mean what a condition means.
fn shape_problems(node: &Node, text: &str, out: &mut Vec<Problem>) {
    let problem = match node.operator() {
        Operator::Assign => Some(if text.contains("=>") {
            "\"=>\" is not an operator; write >=".to_string()
        } else if text.contains("=<") {
            "\"=<\" is not an operator; write <=".to_string()
        } else {
            "\"=\" assigns; compare with ==".to_string()
        }),
        Operator::AddAssign
        | Operator::SubAssign
        | Operator::MulAssign
        | Operator::DivAssign
        | Operator::ModAssign
        | Operator::ExpAssign
        | Operator::AndAssign
        | Operator::OrAssign => Some(format!(
            "\"{}\" assigns; a when only compares",
            node.operator()
        )),
        Operator::Chain => Some(
            "\";\" chains expressions and only the last one counts; join conditions with && or ||"
                .to_string(),
        ),
        Operator::Const {
            value: Value::String(s),
        } => Some(format!("{s:?} is a string, but query values are numbers")),
        _ => None,
    };
    if let Some(message) = problem {
        if !out.iter().any(|p| p.message == message) {
            out.push(Problem::whole(message));
        }
    }
    for c in node.children() {
        shape_problems(c, text, out);
    }
}

/// Evaluate with every query at each sample value: the result must be a boolean.
fn type_check(node: &Node, queries: &[&str]) -> Option<Problem> {
    for sample in SAMPLES {
        let values: BTreeMap<String, f64> =
            queries.iter().map(|q| (q.to_string(), sample)).collect();
        let problem = match eval(node, &values) {
            Ok(_) => continue,
            Err(EvalexprError::ExpectedBoolean { actual }) => Problem::whole(format!(
                "needs true or false, but finds {} ({actual}) with every query at {sample}: compare values, e.g. {} > 1",
                type_name(&actual),
                queries.first().copied().unwrap_or("x")
            )),
            Err(EvalexprError::FunctionIdentifierNotFound(f)) => {
                Problem::at(&f, format!("unknown function {f:?}"))
            }
            Err(e) => Problem::whole(format!("fails with every query at {sample}: {e}")),
        };
        return Some(problem);
    }
    None
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Float(_) | Value::Int(_) => "a number",
        Value::String(_) => "a string",
        Value::Tuple(_) => "a tuple",
        Value::Boolean(_) => "a boolean",
        Value::Empty => "nothing",
    }
}

/// Identifiers in `text` outside string literals.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut in_string = false;
    let mut prev = '\0';
    let mut start = None;
    let mut out = Vec::new();
    for (i, c) in text.char_indices() {
        if c == '"' && prev != '\\' {
            in_string = !in_string;
        }
        prev = c;
        let ident = !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':');
        match (ident, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(&text[s..i]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out.into_iter()
}

/// Query values are floats, and evalexpr's `==` does not equate `Float(0.0)`
/// with `Int(0)`: `up == 0` would never hold. Integer literals become floats.
fn ints_to_floats(node: &mut Node) {
    if let Operator::Const { value } = node.operator_mut() {
        if let Value::Int(i) = value {
            *value = Value::Float(*i as f64);
        }
    }
    for c in node.children_mut() {
        ints_to_floats(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match compile(text, &["p99", "rps"]) {
            Ok(_) => Vec::new(),
            Err(p) => p.into_iter().map(|p| p.message).collect(),
        }
    }

    #[test]
    fn good_conditions_compile() {
        for t in [
            "p99 > 0.25 && rps > 5",
            "rps < 2 && !(p99 >= 0.1)",
            "p99 == 0",
            "max(p99, rps) > 1",
            "math::ln(rps) > 0 || p99 != 1",
        ] {
            assert_eq!(problems(t), Vec::<String>::new(), "{t}");
        }
    }

    #[test]
    fn integer_literals_compare_with_query_values() {
        let node = compile("p99 == 0", &["p99"]).unwrap();
        let v = BTreeMap::from([("p99".to_string(), 0.0)]);
        assert_eq!(eval(&node, &v).ok(), Some(true));
    }

    #[test]
    fn promql_words_get_their_evalexpr_spelling() {
        assert_eq!(
            problems("p99 > 1 and rps > 2 OR rps > 9"),
            [
                "\"and\" is PromQL; write && (when is an evalexpr expression over the query values)",
                "\"OR\" is PromQL; write || (when is an evalexpr expression over the query values)",
            ]
        );
        assert_eq!(
            problems("not p99 > 1"),
            ["\"not\" is PromQL; write ! (when is an evalexpr expression over the query values)"]
        );
    }

    #[test]
    fn assignment_chains_strings_and_numbers_are_refused() {
        assert_eq!(problems("p99 = 1"), ["\"=\" assigns; compare with =="]);
        assert_eq!(
            problems("p99 => 1"),
            ["\"=>\" is not an operator; write >="]
        );
        assert_eq!(
            problems("p99 > 1; rps > 2"),
            ["\";\" chains expressions and only the last one counts; join conditions with && or ||"]
        );
        assert_eq!(
            problems("p99 == \"high\""),
            ["\"high\" is a string, but query values are numbers"]
        );
        assert_eq!(
            problems("p99 + 1"),
            ["needs true or false, but finds a number (2) with every query at 1: compare values, e.g. p99 > 1"]
        );
        assert_eq!(
            problems("p99 > 1 && rps"),
            ["needs true or false, but finds a number (1) with every query at 1: compare values, e.g. p99 > 1"]
        );
        assert_eq!(problems("foo(p99) > 1"), ["unknown function \"foo\""]);
    }

    #[test]
    fn words_skip_string_literals() {
        let w: Vec<&str> = words("a > 1 && \"and or\" == b_2").collect();
        assert_eq!(w, ["a", "1", "b_2"]);
    }
}
