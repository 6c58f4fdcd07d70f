//! `homeostat test` against promtool: every `tests/promql/*.yaml` file must
//! pass under both `promtool test rules` and `homeostat test`; the example
//! rules' action tests must pass under `homeostat test`; and the runner's
//! notation, tolerance, loading quirk and failure messages are unit-tested.
//!
//! promtool is an external program (Debian package `prometheus`): under
//! `CI=true` a missing promtool fails; elsewhere a loud `SKIPPED:` goes to
//! stderr and the promtool half returns.
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use homeostat::ruletest::{expand, parse_labels, run_str};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn promtool_present() -> bool {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) => {
            assert!(o.status.success(), "promtool --version failed");
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

fn homeostat_test(paths: &[PathBuf]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .arg("test")
        .args(paths)
        .output()
        .expect("run homeostat test");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promql_suite_has_enough_cases() {
    let n: usize = files("tests/promql", ".yaml")
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .expect("read")
                .matches("- expr:")
                .count()
        })
        .sum();
    assert!(n >= 150, "only {n} cases in tests/promql");
}

#[test]
fn promql_suite_passes_homeostat_test() {
    let all = files("tests/promql", ".yaml");
    assert!(!all.is_empty());
    for f in &all {
        let (ok, out) = homeostat_test(std::slice::from_ref(f));
        assert!(ok, "homeostat test {}:\n{out}", f.display());
        assert!(out.contains("SUCCESS"), "{out}");
    }
}

#[test]
fn promql_suite_passes_promtool() {
    if !promtool_present() {
        let msg = "promtool not installed (apt-get install prometheus)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}; CI=true requires it");
        }
        let _ = writeln!(
            std::io::stderr(),
            "\n********\nSKIPPED: {msg} (tests/ruletest.rs)\n********\n"
        );
        return;
    }
    for f in files("tests/promql", ".yaml") {
        let out = Command::new("promtool")
            .args(["test", "rules"])
            .arg(&f)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool test rules {}:\n{}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn example_rules_have_passing_action_tests() {
    // Test files live in rules/examples/tests/: configs glob
    // `rules/examples/*.yaml` as rule files.
    let rules = files("rules/examples", ".yaml");
    assert!(!rules.is_empty());
    for r in rules {
        let name = r
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        let test = root().join(format!("rules/examples/tests/{name}.test.yaml"));
        assert!(test.exists(), "{} has no test file", r.display());
        let (ok, out) = homeostat_test(std::slice::from_ref(&test));
        assert!(ok, "homeostat test {}:\n{out}", test.display());
    }
}

fn run(text: &str) -> homeostat::ruletest::FileReport {
    run_str(Path::new("inline.yaml"), text).expect("file runs")
}

#[test]
fn expanding_notation() {
    let v = expand("1+2x3 1-2x1 _ stale 4x2 _x2 -1 Inf").expect("valid");
    let got: Vec<String> = v
        .iter()
        .map(|x| match x {
            None => "_".into(),
            Some(f) if homeostat::store::is_stale_nan(*f) => "stale".into(),
            Some(f) => f.to_string(),
        })
        .collect();
    assert_eq!(
        got,
        ["1", "3", "5", "7", "1", "-1", "_", "stale", "4", "4", "4", "_", "_", "-1", "inf"]
    );
    assert!(expand("1+x3").is_err());
    assert!(expand("abc").is_err());
    let err = expand("1 2 zz").unwrap_err().to_string();
    assert!(err.contains("\"zz\""), "{err}");
    assert_eq!(
        parse_labels(r#"up{job="a"}"#).expect("valid"),
        parse_labels(r#"{__name__="up", job="a"}"#).expect("valid")
    );
    assert!(parse_labels("{}").expect("valid").is_empty());
    assert!(parse_labels(r#"up{job=~"a"}"#).is_err());
}

const ONE: &str = r#"
tests:
  - interval: 1m
    input_series:
      - series: 'x{a="1"}'
        values: '1000000 2000000 3000000'
    promql_expr_test:
      - expr: x
        eval_time: 1m
        exp_samples:
          - labels: 'x{a="1"}'
            value: VALUE
"#;

#[test]
fn values_compare_with_relative_tolerance() {
    // 2e6 * (1 ± 1e-6) is 2e6 ± 2: within; ± 3 is outside.
    assert!(run(&ONE.replace("VALUE", "2000001.9")).passed());
    assert!(run(&ONE.replace("VALUE", "1999998.1")).passed());
    assert!(!run(&ONE.replace("VALUE", "2000003")).passed());
    assert!(!run(&ONE.replace("VALUE", "1999997")).passed());
}

#[test]
fn nan_equals_nan() {
    let text = r#"
tests:
  - interval: 1m
    input_series:
      - series: 'x'
        values: 'NaN NaN'
    promql_expr_test:
      - expr: x
        eval_time: 1m
        exp_samples:
          - labels: 'x'
            value: .nan
      - expr: x
        eval_time: 1m
        exp_samples:
          - labels: 'x'
            value: 1
"#;
    let r = run(text);
    assert_eq!(r.cases, 2);
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
}

#[test]
fn samples_after_the_last_evaluation_step_are_not_loaded() {
    // promtool 2.42 loads samples up to the last whole evaluation_interval
    // at or before the largest eval_time of the group: at 1m30s with a 1m
    // evaluation interval, the samples at 70s..90s are not there yet.
    let text = r#"
evaluation_interval: 1m
tests:
  - interval: 10s
    input_series:
      - series: 'c'
        values: '0+1x20'
    promql_expr_test:
      - expr: c
        eval_time: 1m30s
        exp_samples:
          - labels: 'c'
            value: 6
"#;
    assert!(run(text).passed(), "{:?}", run(text).failures);
    // With a 30s evaluation interval, 1m30s is itself a step.
    let r = run(&text.replace("evaluation_interval: 1m", "evaluation_interval: 30s"));
    assert_eq!(r.failures.len(), 1);
    assert!(
        r.failures[0].contains("got: {__name__=\"c\"} 9"),
        "{}",
        r.failures[0]
    );
}

#[test]
fn wrong_expectation_fails_with_a_readable_message() {
    let r = run(&ONE.replace("VALUE", "7"));
    assert_eq!(r.failures.len(), 1);
    let m = &r.failures[0];
    for part in [
        "inline.yaml",
        "test group 0",
        "expr: \"x\"",
        "eval_time: 1m",
        "exp: {__name__=\"x\", a=\"1\"} 7",
        "got: {__name__=\"x\", a=\"1\"} 2000000",
    ] {
        assert!(m.contains(part), "{part:?} missing in:\n{m}");
    }
    // And the CLI exits non-zero on it.
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("wrong.yaml");
    std::fs::write(&f, ONE.replace("VALUE", "7")).expect("write");
    let (ok, out) = homeostat_test(&[f]);
    assert!(!ok);
    assert!(out.contains("FAILED") && out.contains("got:"), "{out}");
}

#[test]
fn label_sets_must_match_exactly_and_order_is_free() {
    let text = r#"
tests:
  - interval: 1m
    input_series:
      - series: 'x{a="1"}'
        values: '1 2'
      - series: 'x{a="2"}'
        values: '5 6'
    promql_expr_test:
      - expr: sort_desc(x)
        eval_time: 1m
        exp_samples:
          - labels: 'x{a="1"}'
            value: 2
          - labels: 'x{a="2"}'
            value: 6
      - expr: sum(x)
        eval_time: 1m
        exp_samples:
          - labels: '{a="1"}'
            value: 8
"#;
    let r = run(text);
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert!(r.failures[0].contains("sum(x)"));
}

#[test]
fn promtool_only_fields_are_rejected_clearly() {
    let text = r#"
tests:
  - interval: 1m
    alert_rule_test:
      - eval_time: 1m
        alertname: X
"#;
    let e = run_str(Path::new("a.yaml"), text).unwrap_err().to_string();
    assert!(e.contains("alert_rule_test is not supported"), "{e}");
    // An empty list is no test at all: accepted, as promtool does.
    assert!(run_str(
        Path::new("a.yaml"),
        "tests:\n  - interval: 1m\n    alert_rule_test: []\n"
    )
    .is_ok());
    let e = run_str(Path::new("a.yaml"), "rule_files: [x.yml]\ntests: []\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("Prometheus rule files"), "{e}");
    let e = run_str(Path::new("a.yaml"), "tests: []\nbogus: 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn wrong_action_expectations_fail_with_what_happened() {
    let path = root().join("rules/examples/tests/latency-autoscaling.test.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    // Wrong replica count, and a suppression that did not happen.
    let wrong = text
        .replace("op: set_replicas, to: 3 }", "op: set_replicas, to: 4 }")
        .replace(
            "at: 2m30s, rule: checkout-latency-scale-out, cause: cooldown",
            "at: 2m30s, rule: checkout-latency-scale-out, cause: bounds",
        );
    assert_ne!(wrong, text);
    let r = run_str(&path, &wrong).expect("runs");
    let all = r.failures.join("\n");
    assert_eq!(r.failures.len(), 3, "{all}");
    assert!(all.contains("expected action at 2m 15s: rule checkout-latency-scale-out scale_out on checkout op set_replicas to 4"), "{all}");
    assert!(all.contains("unexpected actions up to 5m 30s:"), "{all}");
    assert!(all.contains("(set_replicas 2 → 3)"), "{all}");
    assert!(
        all.contains(
            "expected suppression at 2m 30s: rule checkout-latency-scale-out cause bounds"
        ),
        "{all}"
    );
    assert!(all.contains("got: suppressed cooldown"), "{all}");
    // An action nobody expected fails too.
    let extra = text.replace(
        "        - { at: 5m15s, rule: checkout-latency-scale-out, kind: scale_out, target: checkout, op: set_replicas, to: 5 }\n",
        "",
    );
    assert_ne!(extra, text);
    let r = run_str(&path, &extra).expect("runs");
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert!(
        r.failures[0].contains(
            "at 5m 15s rule checkout-latency-scale-out scale_out on checkout (set_replicas 3 → 5)"
        ),
        "{}",
        r.failures[0]
    );
}

#[test]
fn a_group_without_interval_keeps_only_the_first_value_as_promtool_does() {
    let text = r#"
evaluation_interval: 30s
tests:
  - input_series:
      - series: 'x'
        values: '_ 5+1x10'
    promql_expr_test:
      - expr: x
        eval_time: 2m
        exp_samples:
          - labels: 'x'
            value: 5
"#;
    let r = run(text);
    assert!(r.passed(), "{:?}", r.failures);
    let r = run(&text.replace("value: 5", "value: 8"));
    assert_eq!(r.failures.len(), 1);
}
