//! Rendering and recording of the self-metric families (promtool validation is
//! in tests/self_metrics.rs).
use std::time::Duration;

use super::*;
use crate::audit::{AuditEvent, EventKind};
use crate::model::ActionKind;
use crate::scrape::ScrapeObserver;

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn every_family_has_help_and_type_and_eof() {
    let m = Metrics::new();
    // Families with labels render only once they have a child: give each one.
    m.rule_group_evaluated("g", Duration::from_millis(1), false);
    m.set_rule_instances("r", 1, 0, 0);
    m.query_failed("r");
    m.decision("r", ActionKind::Failover);
    m.action_finished(
        ActionKind::Failover,
        "process",
        ActionResult::Failed,
        Some(Duration::from_secs(2)),
    );
    m.scrape_finished("j", "i:1", 0.1, 3, true);
    m.scrape_finished("j", "i:1", 0.1, 0, false);
    m.observe_audit_event(&AuditEvent::new(EventKind::AgentStarted));
    let text = m.encode();
    assert!(text.ends_with("# EOF\n"));
    let types: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    for family in [
        "homeostat_rule_evaluations",
        "homeostat_rule_evaluation_duration_seconds",
        "homeostat_rule_instances",
        "homeostat_decisions",
        "homeostat_actions",
        "homeostat_action_duration_seconds",
        "homeostat_suppressions",
        "homeostat_scrape_duration_seconds",
        "homeostat_scrape_samples",
        "homeostat_scrape_target_up",
        "homeostat_store_series",
        "homeostat_paused",
        "homeostat_leader",
        "homeostat_build_info",
        "homeostat_audit_events",
        "homeostat_query_errors",
        "homeostat_rule_evaluation_failures",
        "homeostat_scrape_failures",
        "homeostat_store_samples",
        "homeostat_approvals_pending",
        "homeostat_audit_write_errors",
        "homeostat_config_last_reload_successful",
        "homeostat_config_last_reload_success_timestamp_seconds",
    ] {
        assert!(types.contains(&family), "{family} missing from:\n{text}");
    }
    for t in &types {
        let help = format!("# HELP {t} ");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&help) && l.len() > help.len() + 10),
            "{t} has no HELP"
        );
    }
    assert_eq!(
        types.len(),
        23,
        "every registered family renders: {types:?}"
    );
    assert!(
        has_line(
            &text,
            "homeostat_suppressions_total{cause=\"rate_limit\"} 0"
        ),
        "known causes start at 0"
    );
    assert!(has_line(
        &text,
        &format!(
            "homeostat_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )
    ));
}

#[test]
fn typed_recorders_render_expected_series() {
    let m = Metrics::new();
    m.rule_group_evaluated("checkout", Duration::from_millis(3), true);
    m.rule_group_evaluated("checkout", Duration::from_millis(3), false);
    m.set_rule_instances("latency", 2, 1, 0);
    m.set_paused(true);
    m.set_store_size(12, 340);
    m.scrape_finished("edge", "127.0.0.1:9100", 0.02, 50, true);
    m.scrape_finished("edge", "127.0.0.1:9101", 5.0, 0, false);
    let t = m.encode();
    assert!(
        has_line(&t, "homeostat_rule_evaluations_total{group=\"checkout\"} 2"),
        "{t}"
    );
    assert!(
        has_line(
            &t,
            "homeostat_rule_evaluation_failures_total{group=\"checkout\"} 1"
        ),
        "{t}"
    );
    assert!(
        has_line(
            &t,
            "homeostat_rule_evaluation_duration_seconds_count{group=\"checkout\"} 2"
        ),
        "{t}"
    );
    assert!(
        has_line(
            &t,
            "homeostat_rule_instances{rule=\"latency\",state=\"inactive\"} 2"
        ),
        "{t}"
    );
    assert!(
        has_line(
            &t,
            "homeostat_rule_instances{rule=\"latency\",state=\"pending\"} 1"
        ),
        "{t}"
    );
    assert!(has_line(&t, "homeostat_paused 1"), "{t}");
    assert!(has_line(&t, "homeostat_store_series 12"), "{t}");
    assert!(
        has_line(&t, "homeostat_scrape_samples_total{job=\"edge\"} 50"),
        "{t}"
    );
    assert!(
        has_line(&t, "homeostat_scrape_failures_total{job=\"edge\"} 1"),
        "{t}"
    );
    assert!(
        has_line(
            &t,
            "homeostat_scrape_target_up{job=\"edge\",instance=\"127.0.0.1:9101\"} 0"
        ),
        "{t}"
    );
    assert!(
        has_line(
            &t,
            "homeostat_scrape_duration_seconds_count{job=\"edge\"} 2"
        ),
        "{t}"
    );

    m.target_removed("edge", "127.0.0.1:9101");
    m.forget_rule("latency");
    let t = m.encode();
    assert!(!t.contains("instance=\"127.0.0.1:9101\""), "{t}");
    assert!(!t.contains("rule=\"latency\""), "{t}");
}

#[test]
fn audit_events_drive_decision_suppression_and_action_families() {
    let m = Metrics::new();
    let mut d = AuditEvent::new(EventKind::Decision);
    d.rule = Some("scale-out".into());
    d.kind = Some(ActionKind::ScaleOut);
    m.observe_audit_event(&d);
    let mut s = AuditEvent::new(EventKind::Suppressed);
    s.cause = Some("cooldown".into());
    m.observe_audit_event(&s);
    s.cause = Some("something_new".into());
    m.observe_audit_event(&s);
    let mut ok = AuditEvent::new(EventKind::ActionSucceeded);
    ok.kind = Some(ActionKind::ScaleOut);
    ok.provider = Some("process".into());
    ok.duration_ms = Some(1500);
    m.observe_audit_event(&ok);
    let mut rec = ok.clone();
    rec.event = Some(EventKind::ActionReconciled);
    m.observe_audit_event(&rec);
    let t = m.encode();
    assert!(
        has_line(
            &t,
            "homeostat_decisions_total{rule=\"scale-out\",kind=\"scale_out\"} 1"
        ),
        "{t}"
    );
    assert!(
        has_line(&t, "homeostat_suppressions_total{cause=\"cooldown\"} 1"),
        "{t}"
    );
    assert!(
        has_line(&t, "homeostat_suppressions_total{cause=\"other\"} 1"),
        "{t}"
    );
    assert!(has_line(&t, "homeostat_actions_total{kind=\"scale_out\",provider=\"process\",outcome=\"succeeded\"} 1"), "{t}");
    assert!(has_line(&t, "homeostat_actions_total{kind=\"scale_out\",provider=\"process\",outcome=\"reconciled\"} 1"), "{t}");
    // Only the succeeded action has a duration; the reconciled one spans a crash.
    assert!(
        has_line(
            &t,
            "homeostat_action_duration_seconds_count{kind=\"scale_out\",provider=\"process\"} 1"
        ),
        "{t}"
    );
    assert!(
        has_line(
            &t,
            "homeostat_action_duration_seconds_sum{kind=\"scale_out\",provider=\"process\"} 1.5"
        ),
        "{t}"
    );
    assert!(
        has_line(&t, "homeostat_audit_events_total{event=\"suppressed\"} 2"),
        "{t}"
    );
}

#[test]
fn log_format_parses() {
    assert_eq!("json".parse::<LogFormat>().ok(), Some(LogFormat::Json));
    assert_eq!("pretty".parse::<LogFormat>().ok(), Some(LogFormat::Pretty));
    assert!("xml".parse::<LogFormat>().is_err());
}

#[test]
fn the_log_filter_keeps_kube_reply_bodies_out_whatever_the_level() {
    for level in ["info", "debug", "trace,kube_client=trace"] {
        let f = super::log_filter(level).unwrap().to_string();
        assert!(f.contains("kube_client::client=error"), "{level}: {f}");
    }
    assert!(super::log_filter("info,=bogus[").is_err());
}

#[test]
fn every_guard_cause_has_its_own_suppression_label_from_start_up() {
    let m = Metrics::new();
    let before = m.encode();
    for cause in crate::model::Cause::ALL {
        let line = format!("homeostat_suppressions_total{{cause=\"{cause}\"}} 0");
        assert!(
            has_line(&before, &line),
            "{line} missing at start:\n{before}"
        );
        let mut s = AuditEvent::new(EventKind::Suppressed);
        s.cause = Some(cause.as_str().into());
        m.observe_audit_event(&s);
    }
    let after = m.encode();
    for cause in crate::model::Cause::ALL {
        let line = format!("homeostat_suppressions_total{{cause=\"{cause}\"}} 1");
        assert!(has_line(&after, &line), "{line} missing:\n{after}");
    }
    assert!(
        !after.contains("cause=\"other\"} 1"),
        "a known cause was counted as other:\n{after}"
    );
}
