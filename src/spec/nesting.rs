//! A bound on how deeply an expression nests, found by one pass over its
//! text, before any parser sees it.
//!
//! Parsers of expression languages (PromQL's, evalexpr's) and the evaluators
//! behind them recurse once per level of the syntax tree, so a few kilobytes
//! of `((((…` or `----…` overflow the stack and abort the process. The tree's
//! height is at most the sum, along the deepest chain of brackets, of the
//! operators written at each bracket level (each operator adds at most one
//! level; a left-deep `a + b + c …` adds one per `+`) plus one per bracket.
//! [`nesting_bound`] computes that sum without building anything, so callers
//! can refuse a text whose bound exceeds what their stack is sized for.

/// Which comment and operator syntax the text uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// PromQL: `#` comments, `and`/`or`/`unless`/`atan2` are operators, and
    /// `{…}` holds label matchers (whose `=`, `!=`, `=~` nest nothing).
    PromQl,
    /// A plain condition (evalexpr): no comments, symbolic operators only.
    Condition,
}

/// The first place where the bound passed `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    /// Byte offset in the text.
    pub offset: usize,
}

impl TooDeep {
    /// 1-based line and column (in characters) of the place in `text`.
    pub fn line_column(&self, text: &str) -> (usize, usize) {
        let mut end = self.offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

/// One open bracket: operators written directly inside it and the deepest
/// bracket closed inside it.
#[derive(Clone, Copy)]
struct Level {
    close: u8,
    ops: usize,
    deepest_child: usize,
}

impl Level {
    fn new(close: u8) -> Self {
        Level {
            close,
            ops: 0,
            deepest_child: 0,
        }
    }

    fn height(&self) -> usize {
        self.ops + self.deepest_child + 1
    }
}

/// An upper bound on the syntax-tree height of `text`; `Err` as soon as it
/// exceeds `max` (so the scan of a hostile text stops early). Unbalanced
/// brackets are not an error here: the parser reports them properly.
pub fn nesting_bound(text: &str, max: usize, syntax: Syntax) -> Result<usize, TooDeep> {
    let b = text.as_bytes();
    let mut stack: Vec<Level> = vec![Level::new(0)];
    let mut i = 0;
    // The previous byte was an operator character: a run such as `>=` or
    // `!=` is one operator, but a `-`, `+` or `!` after it is a unary one.
    let mut in_op_run = false;
    while i < b.len() {
        let c = b[i];
        let top = stack.len() - 1;
        let in_braces = syntax == Syntax::PromQl && stack[top].close == b'}';
        let mut op = false;
        match c {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                in_op_run = false;
                continue;
            }
            b'#' if syntax == Syntax::PromQl => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                let close = match c {
                    b'(' => b')',
                    b'[' => b']',
                    _ => b'}',
                };
                stack.push(Level::new(close));
                if stack.len() > max {
                    return Err(TooDeep { offset: i });
                }
            }
            b')' | b']' | b'}' if stack.len() > 1 && stack[top].close == c => {
                let Some(done) = stack.pop() else {
                    unreachable!("the stack holds more than the root level");
                };
                let parent = stack.len() - 1;
                let p = &mut stack[parent];
                p.deepest_child = p.deepest_child.max(done.height());
                // A `[range]` or `[range:step]` wraps what precedes it in a
                // matrix selector or a subquery: one more level.
                if c == b']' {
                    p.ops += 1;
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|'
            | b'~'
                if !in_braces =>
            {
                op = true;
                let unary = matches!(c, b'-' | b'+' | b'!');
                if !in_op_run || unary {
                    stack[top].ops += 1;
                }
            }
            c if syntax == Syntax::PromQl && !in_braces && c.is_ascii_alphabetic() => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &text[start..i];
                if ["and", "or", "unless", "atan2"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    stack[top].ops += 1;
                }
                in_op_run = false;
                if stack[top].height() > max {
                    return Err(TooDeep { offset: start });
                }
                continue;
            }
            _ => {}
        }
        in_op_run = op;
        if stack[stack.len() - 1].height() > max {
            return Err(TooDeep { offset: i });
        }
        i += 1;
    }
    // Close what is still open (the parser will refuse it anyway).
    while stack.len() > 1 {
        let Some(done) = stack.pop() else { break };
        let parent = stack.len() - 1;
        stack[parent].deepest_child = stack[parent].deepest_child.max(done.height());
    }
    let h = stack[0].height();
    if h > max {
        return Err(TooDeep { offset: b.len() });
    }
    Ok(h)
}

/// Index just past the string literal that starts at `start` (escapes
/// honoured except in PromQL's raw backtick strings).
fn skip_string(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quote != b'`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(t: &str) -> usize {
        nesting_bound(t, usize::MAX, Syntax::PromQl).expect("no max")
    }

    #[test]
    fn everyday_queries_are_shallow() {
        assert_eq!(bound("up"), 1);
        assert!(bound(r#"sum by (le) (rate(x_bucket{job="a",code!="5.."}[5m]))"#) <= 6);
        assert!(
            bound(
                r#"histogram_quantile(0.99, sum by (le) (rate(x_bucket{job=~"a|b"}[5m]))) > 0.5"#
            ) <= 8
        );
        // Matchers in braces and operators in strings or comments nest nothing.
        let many_matchers: String = (0..300).map(|i| format!("l{i}!=\"-+-\",")).collect();
        assert!(bound(&format!("x{{{many_matchers}}}")) <= 3);
        assert!(bound("x # ((((((((((((((((((((((((((\n") <= 2);
        assert!(bound("x{a=\"((((((((((\"}") <= 3);
    }

    #[test]
    fn brackets_and_operator_chains_count() {
        let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(bound(&deep) > 500);
        assert!(bound(&format!("{}x", "-".repeat(500))) > 500);
        assert!(bound(&vec!["x"; 500].join(" + ")) > 499);
        assert!(bound(&vec!["x"; 500].join(" or ")) > 499);
        assert!(bound(&vec!["x"; 500].join("^")) > 499);
        assert!(bound(&format!("x{}", "[5m:1m]".repeat(300))) > 300);
        // `>=` is one operator, `>= -` two.
        assert_eq!(bound("a >= b"), 2);
        assert_eq!(bound("a >= -b"), 3);
        assert_eq!(bound("a != b"), 2);
    }

    #[test]
    fn the_scan_stops_at_the_limit() {
        let deep = "(".repeat(100_000);
        assert_eq!(
            nesting_bound(&deep, 128, Syntax::PromQl),
            Err(TooDeep { offset: 127 })
        );
        assert!(nesting_bound("!!!!!!!!!!true", 5, Syntax::Condition).is_err());
        assert!(nesting_bound("(a > 1) && (b < 2)", 5, Syntax::Condition).is_ok());
        // Unbalanced text is the parser's business, not an error here.
        assert!(nesting_bound(")))(", 5, Syntax::PromQl).is_ok());
    }
}
