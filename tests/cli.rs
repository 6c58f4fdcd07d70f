//! The `homeostat` command line as a user runs it: exit codes and output of
//! `check`, `audit` (with filters), `audit verify` on a real and a tampered
//! log, `run` on a broken config, and `--help` of every command.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use homeostat::audit::{AuditEvent, EventKind};

fn homeostat(args: &[&str]) -> Output {
    Command::new(EXE).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const BROKEN: &str = "tests/fixtures/broken/homeostat.yaml";

#[test]
fn check_prints_every_diagnostic_with_its_position_and_fails() {
    let out = homeostat(&["check", "-c", BROKEN]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // The library's diagnostics (pinned one by one in tests/check_broken_rules.rs)
    // are exactly what the command prints, one per line, in the same order.
    let diags = match homeostat::agent::check(Path::new(BROKEN)) {
        Ok(s) => panic!("broken fixtures passed: {s}"),
        Err(d) => d,
    };
    assert!(diags.len() >= 20, "{}", diags.len());
    let lines: Vec<&str> = stderr.lines().collect();
    let want: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(&lines[..want.len()], &want[..], "stderr:\n{stderr}");
    assert_eq!(lines[want.len()], format!("{} error(s)", want.len()));
    // Every diagnostic starts with file:line:column.
    for l in &lines[..want.len()] {
        let mut parts = l.splitn(4, ':');
        let file = parts.next().unwrap();
        let line: u32 = parts.next().unwrap().parse().unwrap_or(0);
        let col: u32 = parts.next().unwrap().parse().unwrap_or(0);
        assert!(
            file.starts_with("tests/fixtures/broken/rules/") && file.ends_with(".yaml"),
            "{l}"
        );
        assert!(line > 0 && col > 0, "no position in: {l}");
    }
    // Anchors, checked independently of the library.
    for w in [
        "tests/fixtures/broken/rules/04_when.yaml:8:26: rule \"typo-in-when\": when: unknown variable \"p98\" (queries are: p99, rps)",
        "tests/fixtures/broken/rules/06_actions.yaml:7:44: rule \"unknown-target\": action: unknown target \"nope\" (known: app, hook)",
    ] {
        assert!(lines.contains(&w), "missing {w}\n{stderr}");
    }
    for f in [
        "01_bad_yaml",
        "02_unknown_field",
        "03_durations",
        "04_when",
        "05_promql",
        "06_actions",
        "07_templates",
        "08_duplicates",
    ] {
        assert!(
            stderr.contains(&format!("rules/{f}.yaml:")),
            "{f} not reported"
        );
    }
}

#[test]
fn check_accepts_good_configs() {
    let h = Harness::new(&Setup {
        control: "127.0.0.1:9".parse().unwrap(),
        targets_yaml: process_target("19400-19409", 1, 3, 1, &[]),
        extra_jobs_yaml: WEB_JOB.into(),
        rules_yaml: SCALE_RULE.into(),
    });
    let out = homeostat(&["check", "-c", h.config.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stdout.trim().is_empty(), "a summary is printed");
    let out = homeostat(&["check", "-c", "tests/fixtures/examples/homeostat.yaml"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
}

#[test]
fn run_refuses_a_broken_config() {
    let out = homeostat(&["run", "-c", BROKEN]);
    let (stdout, stderr) = text(&out);
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("tests/fixtures/broken/rules/04_when.yaml:8:26:"),
        "{stderr}"
    );
}

const SCALE_RULE: &str = r#"
groups:
  - name: scale
    interval: 1s
    rules:
      - name: scale-out
        queries: { load: control_load }
        when: load > 10
        for: 1s
        cooldown: 1h
        action: { kind: scale_out, target: web, step: 1 }
      - name: scale-out-dry
        queries: { load: control_load }
        when: load > 10
        for: 1s
        mode: dry_run
        action: { kind: scale_out, target: web, step: 1 }
"#;

fn json_lines(stdout: &str) -> Vec<AuditEvent> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_shows_filters_and_verifies_a_real_log() {
    let control = ControlExporter::start(&[("control_load", 50.0)]).await;
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: process_target("19410-19419", 1, 3, 1, &[]),
        extra_jobs_yaml: String::new(),
        rules_yaml: SCALE_RULE.into(),
    });
    h.start().await;
    h.wait_event("scale-out succeeded", |e| {
        e.event == Some(EventKind::ActionSucceeded) && e.rule.as_deref() == Some("scale-out")
    })
    .await;
    h.wait_event("dry run recorded", |e| {
        e.event == Some(EventKind::Suppressed) && e.rule.as_deref() == Some("scale-out-dry")
    })
    .await;
    let status = h.stop().await;
    assert!(status.success(), "agent exit: {status}\n{}", h.logs());
    let dir = h.audit_dir();
    let dir_s = dir.to_str().unwrap();
    let all = homeostat::audit::read_all(&dir).unwrap();
    assert_eq!(all.last().unwrap().event, Some(EventKind::AgentStopped));

    // --json: every event, as written.
    let out = homeostat(&["audit", "--dir", dir_s, "--json"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let shown = json_lines(&text(&out).0);
    assert_eq!(shown, all);

    // --event (comma-separated) and --rule.
    let out = homeostat(&[
        "audit",
        "--dir",
        dir_s,
        "--json",
        "--event",
        "action_started,action_succeeded",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let shown = json_lines(&text(&out).0);
    let want: Vec<_> = all
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                Some(EventKind::ActionStarted) | Some(EventKind::ActionSucceeded)
            )
        })
        .cloned()
        .collect();
    assert!(want.len() >= 2);
    assert_eq!(shown, want);

    let out = homeostat(&["audit", "--dir", dir_s, "--json", "--rule", "scale-out-dry"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let shown = json_lines(&text(&out).0);
    assert!(!shown.is_empty());
    assert!(shown
        .iter()
        .all(|e| e.rule.as_deref() == Some("scale-out-dry")));
    assert_eq!(
        shown.len(),
        all.iter()
            .filter(|e| e.rule.as_deref() == Some("scale-out-dry"))
            .count()
    );
    assert!(shown.iter().any(|e| e.event == Some(EventKind::Suppressed)));

    // Both filters at once.
    let out = homeostat(&[
        "audit",
        "--dir",
        dir_s,
        "--json",
        "--rule",
        "scale-out",
        "--event",
        "decision",
    ]);
    let shown = json_lines(&text(&out).0);
    assert!(!shown.is_empty());
    assert!(shown
        .iter()
        .all(|e| e.rule.as_deref() == Some("scale-out") && e.event == Some(EventKind::Decision)));

    // The human format: one line per event, naming rules and events.
    let out = homeostat(&["audit", "--dir", dir_s]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("scale-out") && stdout.contains("action_succeeded"),
        "{stdout}"
    );

    // verify: intact.
    let (code, report) = audit_verify(&dir);
    assert_eq!(code, 0, "{report}");
    assert!(report.starts_with("OK:"), "{report}");

    // verify: a tampered copy fails and names the file and line.
    let copy = tempfile::tempdir().unwrap();
    let mut tampered = None;
    for f in std::fs::read_dir(&dir).unwrap().flatten() {
        let to = copy.path().join(f.file_name());
        let text = std::fs::read_to_string(f.path()).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        if tampered.is_none() {
            if let Some(i) = lines
                .iter()
                .position(|l| l.contains("\"event\":\"action_succeeded\""))
            {
                // Rewrite history: the action "succeeded" on another target.
                assert!(lines[i].contains("\"target\":\"web\""));
                lines[i] = lines[i].replacen("\"target\":\"web\"", "\"target\":\"wab\"", 1);
                tampered = Some((to.clone(), i + 1));
            }
        }
        std::fs::write(&to, lines.join("\n") + "\n").unwrap();
    }
    let (path, line) = tampered.expect("a line to tamper with");
    let (code, report) = audit_verify(copy.path());
    assert_ne!(code, 0, "tampered log verified: {report}");
    let file = path.file_name().unwrap().to_str().unwrap();
    assert!(
        report.contains(&format!("{file}:{line}:")),
        "report must name {file}:{line}: {report}"
    );
}

#[test]
fn help_of_every_command_mentions_its_options() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--help"],
            &["run", "check", "audit", "demo", "demo-service"],
        ),
        (&["run", "--help"], &["--config"]),
        (&["check", "--help"], &["--config"]),
        (
            &["audit", "--help"],
            &[
                "--dir", "--since", "--rule", "--target", "--event", "--json", "--follow", "verify",
            ],
        ),
        (&["audit", "verify", "--help"], &["--dir"]),
        (&["demo", "--help"], &["--keep", "--data-dir", "--listen"]),
        (
            &["demo-service", "--help"],
            &[
                "--port",
                "--version",
                "--fail-rate",
                "--workers",
                "--startup-delay",
            ],
        ),
    ];
    for (args, words) in cases {
        let out = homeostat(args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        for w in *words {
            assert!(
                stdout.contains(w),
                "{args:?} does not mention {w}:\n{stdout}"
            );
        }
    }
    let out = homeostat(&["--version"]);
    assert!(out.status.success());
    assert!(text(&out).0.contains(env!("CARGO_PKG_VERSION")));
    // An unknown subcommand is a usage error.
    let out = homeostat(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn audit_refuses_a_directory_without_a_log_and_finds_it_from_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    // A config elsewhere whose relative data_dir resolves next to it, not
    // next to where the command runs.
    let conf_dir = tmp.path().join("etc");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let config = conf_dir.join("homeostat.yaml");
    std::fs::write(&config, "data_dir: ./state\n").unwrap();
    let log_dir = conf_dir.join("state/audit");
    let log = homeostat::audit::AuditLog::open(&log_dir, 0).unwrap();
    let mut ev = AuditEvent::new(EventKind::AgentStarted);
    ev.actor = Some("test".into());
    log.append(ev, 1_700_000_000_000).unwrap();
    drop(log);
    let config_s = config.to_str().unwrap();

    let out = homeostat(&["audit", "-c", config_s, "--json"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let shown = json_lines(&text(&out).0);
    assert_eq!(shown, homeostat::audit::read_all(&log_dir).unwrap());
    let out = homeostat(&["audit", "verify", "-c", config_s]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("OK: 1 events"), "{:?}", text(&out));

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let missing = tmp.path().join("missing");
    for (dir, why) in [
        (&empty, "holds no audit files"),
        (&missing, "does not exist"),
        (&config, "not a directory"),
    ] {
        for args in [
            vec!["audit", "--dir", dir.to_str().unwrap()],
            vec!["audit", "verify", "--dir", dir.to_str().unwrap()],
        ] {
            let out = homeostat(&args);
            let (stdout, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
            assert!(!stdout.contains("OK"), "{args:?}: {stdout}");
            assert!(
                stderr.contains("no audit log in") && stderr.contains(why),
                "{args:?}: {stderr}"
            );
        }
    }
    // A config that does not load says so instead of guessing a directory.
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "data_dirr: x\n").unwrap();
    let out = homeostat(&["audit", "-c", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("does not load"), "{:?}", text(&out));
}

#[test]
fn check_takes_rule_files_and_refuses_what_would_fail_at_run_time() {
    let when = "tests/fixtures/check/when.yaml";
    let fields = "tests/fixtures/check/fields.yaml";
    let out = homeostat(&["check", "-c", BROKEN, when, fields]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // Exactly the library's diagnostics for those files (pinned in
    // tests/check_broken_rules.rs), not the config's own broken rule files.
    let diags =
        match homeostat::agent::check_files(Path::new(BROKEN), &[when.into(), fields.into()]) {
            Ok(s) => panic!("broken files passed: {s}"),
            Err(d) => d,
        };
    let lines: Vec<&str> = stderr.lines().collect();
    let want: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(&lines[..want.len()], &want[..], "stderr:\n{stderr}");
    assert_eq!(lines[want.len()], format!("{} error(s)", want.len()));
    assert!(!stderr.contains("tests/fixtures/broken/rules/"), "{stderr}");
    // What the user is told to write instead, checked independently of the library.
    for hint in [
        "when.yaml:16:26: rule \"promql-and\": when: \"and\" is PromQL; write &&",
        "when.yaml:20:26: rule \"promql-or\": when: \"or\" is PromQL; write ||",
        "when.yaml:12:15: rule \"assigns\": when: \"=\" assigns; compare with ==",
        "when.yaml:8:15: rule \"not-a-condition\": when: needs true or false",
        "fields.yaml:10:9: rule \"typos\": unknown field `coldown`",
        "; did you mean `cooldown`?",
        "fields.yaml:11:14: rule \"typos\": for: invalid duration",
    ] {
        assert!(stderr.contains(hint), "missing {hint:?} in\n{stderr}");
    }

    let out = homeostat(&["check", "-c", BROKEN, "tests/fixtures/check/good.yaml"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(
        stdout.trim(),
        "config ok: 2 targets; 1 rule files, 1 groups, 1 rules"
    );

    let out = homeostat(&["check", "-c", BROKEN, "tests/fixtures/check/nothing.yaml"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.starts_with("tests/fixtures/check/nothing.yaml:1:1: cannot read file"),
        "{stderr}"
    );
}
