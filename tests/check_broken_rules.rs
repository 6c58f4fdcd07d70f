//! `check` on the broken fixtures: every error, with its exact position, at once.
use std::path::Path;

use homeostat::agent;
use homeostat::model::ActionKind;

const CONFIG: &str = "tests/fixtures/broken/homeostat.yaml";
const R: &str = "tests/fixtures/broken/rules/";

/// Every error in tests/fixtures/broken/rules, in the order `check` sorts them.
const EXPECTED: &[&str] = &[
    "01_bad_yaml.yaml:6:9: did not find expected ',' or '}', while parsing a flow mapping",
    "02_unknown_field.yaml:7:9: rule \"typo\": unknown field `whenn`, expected one of `name`, `description`, `queries`, `when`, `for`, `keep_firing_for`, `cooldown`, `on_no_data`, `mode`, `approval`, `action`, `labels`, `annotations`, `trigger`; did you mean `when`?",
    "03_durations.yaml:3:15: group \"durations\": interval: invalid duration \"5 seconds\": missing unit (ms, s, m, h, d, w, y)",
    "03_durations.yaml:9:14: rule \"bad-for\": for: invalid duration \"30\": missing unit (ms, s, m, h, d, w, y)",
    "03_durations.yaml:10:26: rule \"bad-for\": keep_firing_for: invalid duration \"1fortnight\": unknown unit \"fortnight\" (ms, s, m, h, d, w, y)",
    "04_when.yaml:8:26: rule \"typo-in-when\": when: unknown variable \"p98\" (queries are: p99, rps)",
    "04_when.yaml:13:15: rule \"broken-when\": when: Found an unmatched opening parenthesis '('.",
    "05_promql.yaml:6:16: rule \"bad-promql\": query rps: parse error: unclosed left parenthesis",
    "05_promql.yaml:8:29: rule \"bad-promql\": query remote: unknown source \"nowhere\" (known: prom)",
    "05_promql.yaml:9:11: rule \"bad-promql\": query name \"bad-name\" is not an identifier ([A-Za-z_][A-Za-z0-9_]*)",
    "05_promql.yaml:14:16: rule \"range-vector-query\": query raw: the expression is a matrix; a rule query must give an instant vector or a scalar",
    "05_promql.yaml:19:17: rule \"at-modifier\": query peak: `@` modifier is not supported by homeostat's evaluator",
    "06_actions.yaml:7:44: rule \"unknown-target\": action: unknown target \"nope\" (known: app, hook)",
    "06_actions.yaml:12:11: rule \"scale-without-metric\": action: scale needs metric (a query name)",
    "06_actions.yaml:14:25: rule \"scale-without-metric\": action: target_value must be > 0 (got 0)",
    "06_actions.yaml:18:54: rule \"bad-step\": action: step must be ≥ 1",
    "06_actions.yaml:18:65: rule \"bad-step\": action: metric does not apply to scale_in",
    "06_actions.yaml:22:17: rule \"failover-without-instance\": action: failover needs instance (e.g. \"{{ labels.instance }}\")",
    "06_actions.yaml:26:25: rule \"unknown-kind\": action.kind: unknown variant `reboot`, expected one of `scale_out`, `scale_in`, `scale`, `failover`, `circuit_break`, `redeploy`",
    "07_templates.yaml:8:20: rule \"unknown-template-name\": annotations.summary: unknown template name \"error_rate\" (use a query name: err, or labels.<name>)",
    "07_templates.yaml:9:20: rule \"unknown-template-name\": annotations.runbook: unclosed {{ in \"see {{ labels.instance\"",
    "07_templates.yaml:13:21: rule \"unknown-template-name\": action: instance: unknown template name \"instance\" (use a query name: err, or labels.<name>)",
    "08_duplicates.yaml:2:11: group \"when\": duplicate group name (first defined at tests/fixtures/broken/rules/04_when.yaml:2:11)",
    "08_duplicates.yaml:4:15: rule \"typo-in-when\": duplicate rule name (first defined at tests/fixtures/broken/rules/04_when.yaml:4:15)",
    "08_duplicates.yaml:10:9: rule \"alertmanager\": for cannot be used with trigger: (the alert decides when the rule fires; put `for` in the Prometheus alerting rule)",
];

fn got(result: Result<agent::CheckSummary, Vec<homeostat::spec::Diagnostic>>) -> Vec<String> {
    match result {
        Ok(s) => panic!("broken fixtures passed check: {s}"),
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

fn expected(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = EXPECTED
        .iter()
        .chain(extra)
        .map(|e| format!("{R}{e}"))
        .collect();
    v.sort_by_key(|s| {
        // sort as check does: file, then line, then column (numerically)
        let mut parts = s.splitn(4, ':');
        let f = parts.next().unwrap_or("").to_string();
        let l: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let c: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        (f, l, c)
    });
    v
}

#[test]
fn every_error_is_reported_at_once_with_its_position() {
    let got = got(agent::check(Path::new(CONFIG)));
    let want = expected(&[]);
    for w in &want {
        assert!(
            got.contains(w),
            "missing:\n  {w}\ngot:\n  {}",
            got.join("\n  ")
        );
    }
    for g in &got {
        assert!(want.contains(g), "unexpected:\n  {g}");
    }
    assert_eq!(got, want, "order: by file, line, column");
}

#[test]
fn every_fixture_file_contributes_an_error() {
    let got = got(agent::check(Path::new(CONFIG)));
    for entry in std::fs::read_dir(R).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            got.iter().any(|g| g.starts_with(&format!("{R}{name}:"))),
            "{name} reported nothing"
        );
    }
}

#[test]
fn unsupported_kind_is_rejected_with_the_provider_catalog() {
    // The built-in providers support every kind; a catalog where the webhook
    // target cannot redeploy shows the capability check.
    let got = got(agent::check_with(Path::new(CONFIG), |cfg| {
        let mut c = agent::catalog_for(cfg);
        c.insert(
            "hook".into(),
            &[ActionKind::ScaleOut, ActionKind::ScaleIn][..],
        );
        c
    }));
    let want = expected(&[
        "06_actions.yaml:30:25: rule \"redeploy-on-hook\": action: target \"hook\"'s provider does not support redeploy (supported: scale_out, scale_in)",
    ]);
    assert_eq!(got, want);
}

#[test]
fn a_broken_config_is_reported_before_rules() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("homeostat.yaml");
    std::fs::write(
        &cfg,
        "rule_files: [nothing/*.yaml]\nscrape:\n  interval: 1s\n  timeout: 2s\n",
    )
    .unwrap();
    let first = got(agent::check(&cfg));
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0].ends_with(
            "homeostat.yaml:4:12: scrape.timeout (2s) must not exceed scrape.interval (1s)"
        ),
        "{first:?}"
    );
    std::fs::write(&cfg, "rule_files: [nothing/*.yaml]\n").unwrap();
    let second = got(agent::check(&cfg));
    assert!(
        second[0].ends_with("homeostat.yaml:1:14: rule_files: \"nothing/*.yaml\" matches no files"),
        "{second:?}"
    );
}

#[test]
fn shipped_rule_files_pass_check() {
    let summary = match agent::check(Path::new("tests/fixtures/examples/homeostat.yaml")) {
        Ok(s) => s,
        Err(d) => panic!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    assert_eq!(summary.rule_files, 4);
    assert_eq!(summary.rules, 10);
}

#[test]
fn demo_rules_are_fast_enough_for_a_two_minute_demo() {
    let cfg = homeostat::config::load(Path::new("tests/fixtures/examples/homeostat.yaml")).unwrap();
    let cat = agent::catalog_for(&cfg);
    let set = agent::load_rules(&cfg, &cat).unwrap();
    let demo = set.groups.iter().find(|g| g.name == "demo").unwrap();
    assert!(demo.interval <= std::time::Duration::from_secs(2));
    let kinds: Vec<ActionKind> = demo.rules.iter().map(|r| r.action.kind).collect();
    for k in [
        ActionKind::ScaleOut,
        ActionKind::ScaleIn,
        ActionKind::Failover,
        ActionKind::CircuitBreak,
    ] {
        assert!(kinds.contains(&k), "demo lacks {k}");
    }
    for r in &demo.rules {
        assert!(
            r.for_ <= std::time::Duration::from_secs(20),
            "{} waits too long",
            r.name
        );
        assert_eq!(r.action.target, "demo");
    }
}

#[cfg(all(feature = "docker", feature = "haproxy", feature = "kubernetes"))]
#[test]
fn adapters_declare_their_kinds_and_check_rejects_the_rest() {
    // Docker has no traffic control (no circuit_break); HAProxy runs nothing
    // (no redeploy); Kubernetes does all six. Checked through the real catalog.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let cfg = dir.path().join("homeostat.yaml");
    std::fs::write(
        &cfg,
        r#"rule_files: [rules/*.yaml]
targets:
  web:
    provider: docker
    max: 4
    docker: { port: 8080 }
  edge:
    provider: haproxy
    max: 4
    haproxy: { runtime_api: /run/haproxy/admin.sock, backend: web }
  kube:
    provider: kubernetes
    max: 4
    kubernetes: { name: web }
"#,
    )
    .unwrap();
    let mut rules = String::from("groups:\n  - name: g\n    rules:\n");
    for (target, kind, extra) in [
        ("web", "circuit_break", ", instance: x"),
        ("web", "redeploy", ", version: v2"),
        ("edge", "redeploy", ", version: v2"),
        ("edge", "circuit_break", ", instance: x"),
        ("kube", "circuit_break", ", instance: x"),
        ("kube", "redeploy", ", version: v2"),
    ] {
        rules.push_str(&format!(
            "      - name: {target}-{kind}\n        queries: {{ x: vector(1) }}\n        when: x > 0\n        action: {{ kind: {kind}, target: {target}{extra} }}\n"
        ));
    }
    std::fs::write(dir.path().join("rules/r.yaml"), rules).unwrap();
    let got = got(agent::check(&cfg));
    let file = dir.path().join("rules/r.yaml").display().to_string();
    assert_eq!(
        got,
        vec![
            format!("{file}:7:25: rule \"web-circuit_break\": action: target \"web\"'s provider does not support circuit_break (supported: scale_out, scale_in, scale, failover, redeploy)"),
            format!("{file}:15:25: rule \"edge-redeploy\": action: target \"edge\"'s provider does not support redeploy (supported: scale_out, scale_in, scale, failover, circuit_break)"),
        ]
    );
}

const CHECK: &str = "tests/fixtures/check/";

fn check_files(files: &[&str]) -> Vec<String> {
    let files: Vec<std::path::PathBuf> =
        files.iter().map(|f| format!("{CHECK}{f}").into()).collect();
    got(agent::check_files(Path::new(CONFIG), &files))
}

#[test]
fn conditions_that_would_fail_at_run_time_are_load_errors_with_a_hint() {
    let hint = "(when is an evalexpr expression over the query values)";
    assert_eq!(
        check_files(&["when.yaml"]),
        [
            format!("{CHECK}when.yaml:8:15: rule \"not-a-condition\": when: needs true or false, but finds a number (2) with every query at 1: compare values, e.g. p99 > 1"),
            format!("{CHECK}when.yaml:12:15: rule \"assigns\": when: \"=\" assigns; compare with =="),
            format!("{CHECK}when.yaml:16:26: rule \"promql-and\": when: \"and\" is PromQL; write && {hint}"),
            format!("{CHECK}when.yaml:20:26: rule \"promql-or\": when: \"or\" is PromQL; write || {hint}"),
            format!("{CHECK}when.yaml:24:15: rule \"half-a-condition\": when: needs true or false, but finds a number (1) with every query at 1: compare values, e.g. p99 > 1"),
        ]
    );
}

#[test]
fn unknown_and_mistyped_fields_hide_no_other_error() {
    let rule = "`name`, `description`, `queries`, `when`, `for`, `keep_firing_for`, `cooldown`, `on_no_data`, `mode`, `approval`, `action`, `labels`, `annotations`, `trigger`";
    let action = "`kind`, `target`, `step`, `factor`, `metric`, `target_value`, `tolerance`, `stabilization_window`, `instance`, `open_for`, `max_open_share`, `version`, `command`, `env`, `rollback`";
    assert_eq!(
        check_files(&["fields.yaml"]),
        [
            format!("{CHECK}fields.yaml:5:5: group \"fields\": unknown field `intervl`, expected one of `name`, `interval`, `rules`; did you mean `interval`?"),
            format!("{CHECK}fields.yaml:10:9: rule \"typos\": unknown field `coldown`, expected one of {rule}; did you mean `cooldown`?"),
            // The rest of the rule is still checked: its duration, its target, its action's fields.
            format!("{CHECK}fields.yaml:11:14: rule \"typos\": for: invalid duration \"30\": missing unit (ms, s, m, h, d, w, y)"),
            format!("{CHECK}fields.yaml:12:44: rule \"typos\": action: unknown target \"nope\" (known: app, hook)"),
            format!("{CHECK}fields.yaml:12:50: rule \"typos\": action: unknown field `stpe`, expected one of {action}; did you mean `step`?"),
            format!("{CHECK}fields.yaml:16:30: rule \"wrong-types\": queries.r: unknown field `exprr`, expected `source` or `expr`; did you mean `expr`?"),
            // Wrong types are reported field by field, not just the first.
            format!("{CHECK}fields.yaml:18:15: rule \"wrong-types\": mode: unknown variant `fast`, expected `enforce` or `dry_run`"),
            format!("{CHECK}fields.yaml:19:17: rule \"wrong-types\": labels: invalid type: sequence, expected a map"),
        ]
    );
}

#[test]
fn check_files_checks_the_given_files_instead_of_the_configs() {
    // The config names broken rule files; only the given one is checked.
    let files = [std::path::PathBuf::from(format!("{CHECK}good.yaml"))];
    let summary = agent::check_files(Path::new(CONFIG), &files).expect("good.yaml passes");
    assert_eq!(
        (
            summary.rule_files,
            summary.groups,
            summary.rules,
            summary.targets
        ),
        (1, 1, 1, 2)
    );
    // Several files: every error of each.
    let both = check_files(&["when.yaml", "fields.yaml"]);
    assert_eq!(both.len(), 13, "{both:#?}");
    assert!(
        both[0].starts_with(&format!("{CHECK}fields.yaml:")),
        "sorted by file: {both:#?}"
    );
}
