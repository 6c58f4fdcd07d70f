//! Differential test against the real oracle, promtool 2.42: every case of
//! `testdata/promtool_cases.txt` is evaluated by us and by `promtool test
//! rules` (as a unit-test file with empty expectations, so promtool prints
//! what it got), and the two must agree: same label sets, values within a
//! relative 1e-6 (Go's libm and summation order differ in the last bits), and
//! an error on both sides or on neither.
//!
//! promtool is an external program (Debian package `prometheus`; `.ci/run`
//! installs it). The project rule for such tests: under `CI=true` a missing
//! promtool is a failure; elsewhere the test prints a loud `SKIPPED:` line to
//! stderr and returns, so a laptop without Prometheus still runs the suite.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;

use super::*;
use crate::store::stale_nan;

struct Case {
    expr: String,
    at_ms: i64,
}

struct Group {
    interval: String,
    series: Vec<(String, String)>,
    cases: Vec<(String, Case)>,
}

/// `1m30s`, `50m`, `10s`, `500ms` → milliseconds.
fn duration_ms(s: &str) -> i64 {
    let mut total = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: i64 = rest[..digits].parse().expect("duration number");
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += n * match unit {
            "ms" => 1,
            "s" | "" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            other => panic!("unit {other}"),
        };
    }
    total
}

fn number(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "Inf" | "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or_else(|_| panic!("number {s}")),
    }
}

/// promtool's expanding notation → one optional value per interval.
fn expand(values: &str) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for tok in values.split_whitespace() {
        if tok == "_" {
            out.push(None);
        } else if tok == "stale" {
            out.push(Some(stale_nan()));
        } else if let Some(n) = tok.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(None, n.parse().expect("count")));
        } else if let Some(x) = tok.find('x') {
            let (head, n) = (&tok[..x], tok[x + 1..].parse::<usize>().expect("count"));
            let split = head[1..].find(['+', '-']).map(|i| i + 1);
            let (a, b) = match split {
                Some(i) => (number(&head[..i]), number(&head[i..])),
                None => (number(head), 0.0),
            };
            out.extend((0..=n).map(|k| Some(a + b * k as f64)));
        } else {
            out.push(Some(number(tok)));
        }
    }
    out
}

fn series_labels(selector: &str) -> Labels {
    let Ok(promql_parser::parser::Expr::VectorSelector(vs)) =
        promql_parser::parser::parse(selector)
    else {
        panic!("series {selector}");
    };
    let mut pairs: Vec<(String, String)> = vs
        .matchers
        .matchers
        .iter()
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    if let Some(n) = vs.name {
        pairs.push(("__name__".into(), n));
    }
    Labels::new(pairs)
}

fn parse_cases(text: &str) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(interval) = line.strip_prefix("load ") {
            groups.push(Group {
                interval: interval.trim().to_string(),
                series: Vec::new(),
                cases: Vec::new(),
            });
            continue;
        }
        let g = groups.last_mut().expect("a load line first");
        if let Some(rest) = line.strip_prefix("eval ") {
            let (t, expr) = rest.split_once(' ').expect("eval <time> <expr>");
            g.cases.push((
                t.to_string(),
                Case {
                    expr: expr.to_string(),
                    at_ms: duration_ms(t),
                },
            ));
        } else {
            let cut = line
                .find('}')
                .map(|i| i + 1)
                .unwrap_or_else(|| line.find(' ').expect("values"));
            g.series.push((
                line[..cut].trim().to_string(),
                line[cut..].trim().to_string(),
            ));
        }
    }
    groups
}

/// What one side produced: sorted (labels, value) pairs, or an error.
#[derive(Debug)]
enum Outcome {
    Samples(Vec<(String, f64)>),
    /// The message is only shown in failure reports (messages may differ).
    Error(#[allow(dead_code)] String),
}

fn ours(g: &Group) -> Vec<Outcome> {
    let mut store = Store::new();
    store.set_retention_ms(24 * 3_600_000);
    let step = duration_ms(&g.interval);
    // promtool loads input samples lazily while it steps through rule
    // evaluations every `evaluation_interval` (1m) up to the largest
    // eval_time: samples after the last such step are never loaded.
    let max_at = g.cases.iter().map(|(_, c)| c.at_ms).max().unwrap_or(0);
    let loaded_till = max_at.div_euclid(60_000) * 60_000;
    for (sel, values) in &g.series {
        let labels = series_labels(sel);
        for (i, v) in expand(values).into_iter().enumerate() {
            let t = i as i64 * step;
            if let Some(v) = v.filter(|_| t <= loaded_till) {
                store.append(&labels, t, v);
            }
        }
    }
    g.cases
        .iter()
        .map(|(_, c)| {
            let result = compile(&c.expr)
                .map_err(|e| e.to_string())
                .and_then(|q| q.eval(&store, c.at_ms).map_err(|e| e.to_string()));
            match result {
                Ok(Value::Vector(v)) => {
                    let mut s: Vec<(String, f64)> = v
                        .iter()
                        .map(|x| {
                            let inner: Vec<String> =
                                x.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                            (format!("{{{}}}", inner.join(", ")), x.value)
                        })
                        .collect();
                    s.sort_by(|a, b| a.0.cmp(&b.0));
                    Outcome::Samples(s)
                }
                Ok(Value::Scalar(x)) => Outcome::Samples(vec![("{}".into(), x)]),
                Ok(other) => Outcome::Error(format!("not a vector or scalar: {other:?}")),
                Err(e) => Outcome::Error(e),
            }
        })
        .collect()
}

fn promtool_yaml(groups: &[Group]) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("json string");
    let mut y = String::from("evaluation_interval: 1m\ntests:\n");
    for g in groups {
        let _ = writeln!(y, "  - interval: {}\n    input_series:", g.interval);
        for (sel, values) in &g.series {
            let _ = writeln!(
                y,
                "      - series: {}\n        values: {}",
                q(sel),
                q(values)
            );
        }
        y.push_str("    promql_expr_test:\n");
        for (t, c) in &g.cases {
            let _ = writeln!(
                y,
                "      - expr: {}\n        eval_time: {t}\n        exp_samples: []",
                q(&c.expr)
            );
        }
    }
    y
}

/// Parse promtool's failure report: `expr: "...", time: 1m,` then either
/// `, err: ...` on the same line or `got: {labels} 1E+00, ...` two lines on.
fn parse_promtool(out: &str) -> HashMap<(String, i64), Outcome> {
    let mut map = HashMap::new();
    let lines: Vec<&str> = out.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr: ") else {
            continue;
        };
        let Some(tpos) = rest.rfind(", time: ") else {
            continue;
        };
        let expr: String = serde_json::from_str(&rest[..tpos]).expect("quoted expr");
        let after = &rest[tpos + 8..];
        let (t, err) = match after.split_once(", err: ") {
            Some((t, e)) => (t, Some(e.to_string())),
            None => (after.trim_end_matches(','), None),
        };
        let key = (expr, duration_ms(t));
        if let Some(e) = err {
            map.insert(key, Outcome::Error(e));
            continue;
        }
        let got = lines.get(i + 2).map(|l| l.trim()).unwrap_or("");
        let got = got.strip_prefix("got: ").expect("got line");
        let mut samples = Vec::new();
        let mut rest = got;
        while let Some(open) = rest.find('{') {
            let close = open + rest[open..].find('}').expect("closing brace");
            let labels = rest[open..=close].to_string();
            let tail = &rest[close + 2..];
            let end = tail.find(", ").unwrap_or(tail.len());
            samples.push((labels, number(&tail[..end])));
            rest = &tail[end..];
        }
        samples.sort_by(|a, b| a.0.cmp(&b.0));
        map.insert(key, Outcome::Samples(samples));
    }
    map
}

fn agree(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Error(_), Outcome::Error(_)) => true,
        (Outcome::Samples(x), Outcome::Samples(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|((la, va), (lb, vb))| {
                    la == lb
                        && ((va.is_nan() && vb.is_nan())
                            || va == vb
                            || (va - vb).abs() <= 1e-6 * vb.abs())
                })
        }
        _ => false,
    }
}

#[test]
fn cases_file_parses() {
    let groups = parse_cases(include_str!("testdata/promtool_cases.txt"));
    assert!(groups.iter().map(|g| g.cases.len()).sum::<usize>() >= 300);
    let bits: Vec<Option<u64>> = expand("1+2x2 _ stale -1-1x1")
        .into_iter()
        .map(|x| x.map(f64::to_bits))
        .collect();
    let want: Vec<Option<u64>> = [
        Some(1.0),
        Some(3.0),
        Some(5.0),
        None,
        Some(stale_nan()),
        Some(-1.0),
        Some(-2.0),
    ]
    .into_iter()
    .map(|x| x.map(f64::to_bits))
    .collect();
    assert_eq!(bits, want);
    assert_eq!(duration_ms("1m30s"), 90_000);
}

/// Why the oracle cannot be used.
const MISSING: &str = "promtool not installed (apt-get install prometheus)";

/// Whether promtool can be run. `false` only when it is not on PATH; any other
/// failure to run it is a broken install and fails the test.
fn promtool_present() -> bool {
    match std::process::Command::new("promtool")
        .arg("--version")
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "promtool --version failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

/// The rule for tests that need an external program, decided from the value
/// of `CI`: `Err` (fail) in CI, `Ok(false)` (skip) elsewhere.
fn gate(present: bool, ci: Option<&str>) -> Result<bool, String> {
    match (present, ci == Some("true")) {
        (true, _) => Ok(true),
        (false, true) => Err(format!("{MISSING}; CI=true requires it")),
        (false, false) => Ok(false),
    }
}

#[test]
fn missing_promtool_fails_in_ci_and_skips_elsewhere() {
    assert_eq!(gate(true, Some("true")), Ok(true));
    assert_eq!(gate(true, None), Ok(true));
    assert_eq!(gate(false, None), Ok(false));
    assert_eq!(gate(false, Some("false")), Ok(false));
    assert_eq!(gate(false, Some("1")), Ok(false));
    let err = gate(false, Some("true")).unwrap_err();
    assert!(err.contains("apt-get install prometheus"), "{err}");
}

#[test]
fn promtool_agrees() {
    let ci = std::env::var("CI").ok();
    match gate(promtool_present(), ci.as_deref()) {
        Ok(true) => {}
        Ok(false) => {
            // Straight to the process's stderr: libtest captures `eprintln!`
            // of passing tests, and a skip must not pass unnoticed.
            let _ = writeln!(
                std::io::stderr(),
                "\n\n********\nSKIPPED: {MISSING} (query::difftest::promtool_agrees)\n********\n"
            );
            return;
        }
        Err(msg) => panic!("{msg}"),
    }
    let groups = parse_cases(include_str!("testdata/promtool_cases.txt"));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cases.yml");
    std::fs::write(&file, promtool_yaml(&groups)).expect("write yaml");
    let out = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = parse_promtool(&text);
    // A file promtool could not load reports no case at all: that is not
    // agreement. (Every case file has cases with non-empty results, which
    // promtool reports as failures against the empty expectations.)
    assert!(
        !theirs.is_empty(),
        "promtool reported no case results (exit {}):\n{text}",
        out.status
    );
    let mut failures = Vec::new();
    let mut n = 0;
    for g in &groups {
        for ((_, case), mine) in g.cases.iter().zip(ours(g)) {
            n += 1;
            // promtool reports only failures: a passing case got no samples.
            let empty = Outcome::Samples(Vec::new());
            let prom = theirs
                .get(&(case.expr.clone(), case.at_ms))
                .unwrap_or(&empty);
            if !agree(&mine, prom) {
                failures.push(format!(
                    "{} @ {}ms\n  ours: {mine:?}\n  promtool: {prom:?}",
                    case.expr, case.at_ms
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
