//! The agent's `/metrics` output must pass `promtool check metrics` (the Prometheus
//! project's own linter), with every family populated.
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use homeostat::audit::{AuditEvent, EventKind};
use homeostat::model::{ActionKind, Cause};
use homeostat::scrape::ScrapeObserver;
use homeostat::telemetry::{ActionResult, Metrics};

fn populated() -> Metrics {
    let m = Metrics::new();
    m.rule_group_evaluated("checkout", Duration::from_millis(4), true);
    m.rule_group_evaluated("checkout", Duration::from_millis(40), false);
    m.set_rule_instances("checkout-latency-scale-out", 3, 1, 1);
    m.query_failed("checkout-latency-scale-out");
    m.set_approvals_pending(2);
    m.suppressed(Cause::Cooldown);
    m.action_finished(
        ActionKind::Redeploy,
        "process",
        ActionResult::Failed,
        Some(Duration::from_secs(42)),
    );
    let mut ev = AuditEvent::new(EventKind::Decision);
    ev.rule = Some("checkout-latency-scale-out".into());
    ev.kind = Some(ActionKind::ScaleOut);
    m.observe_audit_event(&ev);
    let mut ev = AuditEvent::new(EventKind::ActionSucceeded);
    ev.kind = Some(ActionKind::ScaleOut);
    ev.provider = Some("process".into());
    ev.duration_ms = Some(850);
    m.observe_audit_event(&ev);
    m.audit_write_failed();
    m.scrape_finished("checkout", "127.0.0.1:18100", 0.012, 120, true);
    m.scrape_finished("checkout", "127.0.0.1:18101", 5.0, 0, false);
    m.set_store_size(1500, 90_000);
    m.set_paused(false);
    m.set_leader(true);
    m.reload_finished(true, 1_700_000_000_000);
    m
}

fn promtool_available() -> bool {
    Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), msg)
}

#[test]
fn self_metrics_pass_promtool_check_metrics() {
    if !promtool_available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("promtool not installed (apt-get install prometheus); required in CI");
        }
        eprintln!("\n\n********\nSKIPPED: promtool not installed (apt-get install prometheus)\n********\n");
        return;
    }
    // promtool (2.42) lints text format 0.0.4, which is what /metrics serves to a
    // client that does not ask for OpenMetrics (curl | promtool check metrics).
    let text = populated().encode_text004();
    let (ok, msg) = promtool_check(&text);
    assert!(
        ok,
        "promtool check metrics failed:\n{msg}\n--- metrics ---\n{text}"
    );
    assert!(
        msg.trim().is_empty(),
        "promtool reported lint problems:\n{msg}\n--- metrics ---\n{text}"
    );
}

/// The oracle must be able to fail: a family without HELP and a counter without
/// `_total` are lint errors, so the check above is not vacuous.
#[test]
fn promtool_rejects_bad_metrics() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not installed (apt-get install prometheus)");
        return;
    }
    let (ok, msg) = promtool_check("# TYPE homeostat_bad counter\nhomeostat_bad 1\n");
    assert!(
        !ok,
        "promtool accepted a counter without HELP and _total: {msg}"
    );
}

/// Both renditions carry the same samples; only family headers differ.
#[test]
fn text004_and_openmetrics_carry_the_same_samples() {
    let m = populated();
    let samples = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let om = m.encode();
    let text = m.encode_text004();
    assert!(om.ends_with("# EOF\n") && !text.contains("# EOF"));
    assert_eq!(samples(&om), samples(&text));
    assert!(
        text.contains("# TYPE homeostat_decisions_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# HELP homeostat_decisions_total "), "{text}");
    assert!(
        text.contains("# TYPE homeostat_scrape_duration_seconds histogram\n"),
        "{text}"
    );
    assert!(!text.contains("# UNIT"), "{text}");
}

/// Logging setup: a bad filter is an error (not a silent default), and a second
/// install is refused rather than panicking. One test, as the subscriber is global.
#[test]
fn init_logging_validates_and_installs_once() {
    use homeostat::telemetry::{init_logging, LogFormat, TelemetryError};
    // RUST_LOG would override the level under test.
    std::env::remove_var("RUST_LOG");
    assert!(matches!(
        init_logging(LogFormat::Json, "homeostat=loud"),
        Err(TelemetryError::Filter { .. })
    ));
    init_logging(LogFormat::Json, "info,homeostat=debug").expect("first install");
    tracing::info!(answer = 42, "logging works");
    assert!(matches!(
        init_logging(LogFormat::Pretty, "info"),
        Err(TelemetryError::AlreadyInstalled)
    ));
}

/// Our own parser (checked against what Prometheus 2.42 ingests) reads both
/// renditions to the same samples.
#[test]
fn both_renditions_parse_to_the_same_samples() {
    use homeostat::exposition::{parse, Format};
    let m = populated();
    let om = parse(m.encode().as_bytes(), Format::OpenMetrics).expect("OpenMetrics parses");
    let text = parse(m.encode_text004().as_bytes(), Format::Text004).expect("text 0.0.4 parses");
    assert!(om.len() > 50, "populated families: {}", om.len());
    let key = |s: &homeostat::exposition::ParsedSample| (s.labels.to_string(), s.value.to_bits());
    let mut a: Vec<_> = om.iter().map(key).collect();
    let mut b: Vec<_> = text.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}
