//! Payload parsing on realistic fixtures, the endpoint's answers, trigger-rule
//! loading errors with positions, and the engine's dedup by fingerprint and
//! startsAt (also across a restart, via the audit log).
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::payload::{parse, parse_rfc3339, PayloadError};
use super::*;
use crate::audit::{AuditEvent, EventKind};
use crate::clock::parse_time;
use crate::model::{ActionKind, AlertRef, Labels};
use crate::rules::{load_str, Catalog, LoadContext, Rule, RuleSet};
use crate::rules::{AlertOutcome, Engine};

const FIRING: &str = include_str!("../../../tests/fixtures/alertmanager/firing.json");
const RESOLVED: &str = include_str!("../../../tests/fixtures/alertmanager/resolved.json");
const NOW: TimestampMs = 1_795_500_000_000;

fn catalog() -> Catalog {
    BTreeMap::from([("app".to_string(), &ActionKind::ALL as &'static [ActionKind])])
}

fn load(yaml: &str) -> Result<RuleSet, Vec<String>> {
    let cat = catalog();
    let ctx = LoadContext {
        catalog: &cat,
        sources: Default::default(),
        default_interval: Duration::from_secs(10),
    };
    load_str(Path::new("r.yaml"), yaml, &ctx).map_err(|d| d.iter().map(|d| d.to_string()).collect())
}

/// One rule named `r` in group `g`, from its body (indented 8 spaces).
fn rule(body: &str) -> Rule {
    let yaml = format!("groups:\n  - name: g\n    rules:\n      - name: r\n{body}");
    match load(&yaml) {
        Ok(set) => set.groups[0].rules[0].clone(),
        Err(d) => panic!("{}", d.join("\n")),
    }
}

const FAILOVER: &str = "        trigger:
          alert: HighErrorRate
          matchers: { severity: page }
        action: { kind: failover, target: app, instance: '{{ labels.instance }}' }
        labels: { team: payments }
        annotations: { summary: 'failing over {{ labels.instance }}' }
";

fn firing() -> Vec<crate::model::AlertInput> {
    parse(FIRING.as_bytes()).unwrap().1
}

// ---------------------------------------------------------------- payload

#[test]
fn parses_a_real_firing_payload() {
    let (p, alerts) = parse(FIRING.as_bytes()).unwrap();
    assert_eq!(p.version, "4");
    assert_eq!(p.receiver, "homeostat");
    assert_eq!(p.status, "firing");
    assert_eq!(p.group_key, "{}:{alertname=\"HighErrorRate\"}");
    assert_eq!(p.truncated_alerts, 0);
    assert_eq!(p.external_url, "http://alertmanager-0:9093");
    assert_eq!(p.common_labels["job"], "checkout");
    assert_eq!(p.group_labels["alertname"], "HighErrorRate");
    assert_eq!(p.alerts[0].ends_at, "0001-01-01T00:00:00Z");
    assert_eq!(
        p.alerts[0].annotations["runbook_url"],
        "https://runbooks.example.com/checkout/5xx"
    );
    assert_eq!(alerts.len(), 2);
    let a = &alerts[0];
    assert!(a.firing);
    assert_eq!(a.labels.get("instance"), Some("10.0.3.17:8080"));
    assert_eq!(a.labels.get("alertname"), Some("HighErrorRate"));
    assert_eq!(a.reference.name, "HighErrorRate");
    assert_eq!(a.reference.fingerprint, "4a3c4b0e1b8a9d21");
    assert_eq!(a.reference.starts_at, "2026-11-23T04:58:12.481Z");
    assert!(a
        .reference
        .generator_url
        .starts_with("http://prometheus-0:9090/graph?g0.expr="));
    assert_eq!(a.starts_at_ms, parse_time("2026-11-23T04:58:12.481Z"));
    // Nanoseconds and a +01:00 offset, as Go writes them.
    assert_eq!(
        alerts[1].starts_at_ms,
        parse_time("2026-11-23T04:58:13.002Z")
    );
}

#[test]
fn parses_a_real_resolved_payload() {
    let (p, alerts) = parse(RESOLVED.as_bytes()).unwrap();
    assert_eq!(p.status, "resolved");
    assert_eq!(alerts.len(), 1);
    assert!(!alerts[0].firing);
    assert_eq!(alerts[0].reference.fingerprint, "4a3c4b0e1b8a9d21");
}

#[test]
fn refuses_malformed_payloads_with_a_message() {
    assert!(matches!(parse(b"{not json"), Err(PayloadError::Json(_))));
    assert!(matches!(parse(b""), Err(PayloadError::Json(_))));
    assert!(matches!(parse(b"[]"), Err(PayloadError::Json(_))));
    // `alerts` is required.
    assert!(matches!(
        parse(br#"{"version":"4"}"#),
        Err(PayloadError::Json(_))
    ));
    let v3 = FIRING.replace(r#""version": "4""#, r#""version": "3""#);
    assert_eq!(
        parse(v3.as_bytes()).unwrap_err().to_string(),
        "unsupported payload version \"3\" (expected \"4\")"
    );
    let bad_status = FIRING.replacen(r#""status": "firing","#, r#""status": "pending","#, 2);
    assert_eq!(
        parse(bad_status.as_bytes()).unwrap_err().to_string(),
        "alerts[0]: status \"pending\" is neither \"firing\" nor \"resolved\""
    );
    let no_name = FIRING.replacen(r#""alertname": "HighErrorRate","#, "", 1);
    assert_eq!(
        parse(no_name.as_bytes()).unwrap_err().to_string(),
        "alerts[0]: no alertname label"
    );
    let bad_time = FIRING.replace("2026-11-23T04:58:12.481Z", "yesterday");
    assert_eq!(
        parse(bad_time.as_bytes()).unwrap_err().to_string(),
        "alerts[0]: startsAt \"yesterday\" is not an RFC 3339 time"
    );
    let no_fp = FIRING.replace("4a3c4b0e1b8a9d21", "");
    assert_eq!(
        parse(no_fp.as_bytes()).unwrap_err().to_string(),
        "alerts[0]: empty fingerprint"
    );
}

#[test]
fn refuses_too_many_alerts() {
    let one = r#"{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-11-23T04:58:12Z","fingerprint":"f"}"#;
    let many = vec![one; MAX_ALERTS_PER_REQUEST + 1].join(",");
    let body = format!(r#"{{"version":"4","alerts":[{many}]}}"#);
    assert_eq!(
        parse(body.as_bytes()).unwrap_err(),
        PayloadError::TooMany {
            got: MAX_ALERTS_PER_REQUEST + 1,
            max: MAX_ALERTS_PER_REQUEST
        }
    );
    let ok = format!(
        r#"{{"version":"4","alerts":[{}]}}"#,
        vec![one; MAX_ALERTS_PER_REQUEST].join(",")
    );
    assert_eq!(
        parse(ok.as_bytes()).unwrap().1.len(),
        MAX_ALERTS_PER_REQUEST
    );
}

#[test]
fn rfc3339_offsets_and_fractions() {
    let z = parse_time("2026-11-23T04:58:12Z").unwrap();
    assert_eq!(parse_rfc3339("2026-11-23T04:58:12Z"), Some(z));
    assert_eq!(parse_rfc3339("2026-11-23T06:58:12+02:00"), Some(z));
    assert_eq!(parse_rfc3339("2026-11-23T01:28:12-03:30"), Some(z));
    assert_eq!(
        parse_rfc3339("2026-11-23T04:58:12.999999999Z"),
        Some(z + 999)
    );
    assert_eq!(parse_rfc3339("2026-11-23T04:58:12+25:00"), None);
    assert_eq!(parse_rfc3339("2026-11-23 04:58"), None);
    assert_eq!(parse_rfc3339("2026-11-23T04:58:12.000Zé"), None);
    assert_eq!(parse_rfc3339(""), None);
}

// ---------------------------------------------------------------- endpoint

#[derive(Default)]
struct Fake {
    got: Mutex<Vec<usize>>,
}

impl AlertReceiver for Fake {
    fn receive(&self, alerts: Vec<AlertInput>, _now: TimestampMs) -> Receipt {
        self.got.lock().unwrap().push(alerts.len());
        Receipt {
            alerts: alerts.len(),
            decisions: 1,
            ..Receipt::default()
        }
    }
}

async fn post(
    app: &axum::Router,
    body: &str,
    auth: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post(PATH).header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn endpoint_answers_400_401_and_200() {
    let fake = Arc::new(Fake::default());
    let policy = MutationPolicy::new(Some("s3cret"), "0.0.0.0:9798".parse().unwrap()).unwrap();
    let app = router(fake.clone(), policy, Clock::starting_at(NOW));

    let (s, _) = post(&app, FIRING, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post(&app, FIRING, Some("Bearer wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, v) = post(&app, "{oops", Some("Bearer s3cret")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["status"], "error");
    assert!(
        v["error"].as_str().unwrap().starts_with("malformed JSON: "),
        "{v}"
    );
    let (s, v) = post(
        &app,
        r#"{"version":"5","alerts":[]}"#,
        Some("Bearer s3cret"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"],
        "unsupported payload version \"5\" (expected \"4\")"
    );
    assert!(
        fake.got.lock().unwrap().is_empty(),
        "refused bodies reach nobody"
    );

    let (s, v) = post(&app, FIRING, Some("Bearer s3cret")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["alerts"], 2);
    assert_eq!(v["data"]["decisions"], 1);
    assert_eq!(*fake.got.lock().unwrap(), vec![2]);
}

#[tokio::test]
async fn endpoint_is_closed_without_token_off_loopback() {
    let fake = Arc::new(Fake::default());
    let policy = MutationPolicy::new(None, "0.0.0.0:9798".parse().unwrap()).unwrap();
    let app = router(fake.clone(), policy, Clock::starting_at(NOW));
    let (s, _) = post(&app, FIRING, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let policy = MutationPolicy::new(None, "127.0.0.1:9798".parse().unwrap()).unwrap();
    let app = router(fake.clone(), policy, Clock::starting_at(NOW));
    let (s, _) = post(&app, FIRING, None).await;
    assert_eq!(s, StatusCode::OK);
}

// ---------------------------------------------------------------- loading

#[test]
fn trigger_rule_loads() {
    let r = rule(FAILOVER);
    let t = r.trigger.as_ref().unwrap();
    assert_eq!(t.alert, "HighErrorRate");
    assert_eq!(t.matchers["severity"], "page");
    assert!(r.queries.is_empty());
    assert_eq!(r.when_text, "alert HighErrorRate");
}

#[test]
fn trigger_rule_load_errors_have_positions() {
    let y = "groups:
  - name: g
    rules:
      - name: both
        trigger: { alert: A }
        queries: { x: 'sum(up)' }
        when: x > 1
        for: 1m
        keep_firing_for: 1m
        on_no_data: fire
        action: { kind: scale_out, target: app }
      - name: neither
        action: { kind: scale_out, target: app }
      - name: empty
        trigger: { alert: '', matchers: { bad-name: x } }
        action: { kind: scale_out, target: app }
      - name: typo
        trigger: { alert: A, matcher: { a: b } }
        action: { kind: scale_out, target: app }
";
    let errs = load(y).unwrap_err();
    let with = "cannot be used with trigger: (the alert decides when the rule fires; put `for` in the Prometheus alerting rule)";
    let expect = [
        format!("r.yaml:6:9: rule \"both\": queries {with}"),
        format!("r.yaml:7:9: rule \"both\": when {with}"),
        format!("r.yaml:8:9: rule \"both\": for {with}"),
        format!("r.yaml:9:9: rule \"both\": keep_firing_for {with}"),
        format!("r.yaml:10:9: rule \"both\": on_no_data {with}"),
        "r.yaml:12:9: rule \"neither\": queries: at least one query is required (or a trigger:)"
            .to_string(),
        "r.yaml:12:9: rule \"neither\": when is required (or a trigger:)".to_string(),
        "r.yaml:15:27: rule \"empty\": trigger: alert is empty".to_string(),
        "r.yaml:15:43: rule \"empty\": trigger: matcher label name \"bad-name\" is not valid"
            .to_string(),
    ];
    for e in &expect {
        assert!(errs.contains(e), "missing {e:?} in\n{}", errs.join("\n"));
    }
    assert!(
        errs.iter().any(|e| e.starts_with("r.yaml:18:30: ")
            && e.contains("unknown field `matcher`, expected `alert` or `matchers`")),
        "{}",
        errs.join("\n")
    );
    assert_eq!(errs.len(), expect.len() + 1, "{}", errs.join("\n"));
}

// ---------------------------------------------------------------- engine

#[test]
fn firing_alert_decides_once_per_fingerprint_and_starts_at() {
    let r = rule(FAILOVER);
    let mut e = Engine::new();
    let a = &firing()[0];
    let AlertOutcome::Decide(d) = e.alert(&r, a, NOW) else {
        panic!("expected a decision")
    };
    assert_eq!(d.rule, "r");
    assert_eq!(d.action.kind, ActionKind::Failover);
    assert_eq!(d.instance.as_deref(), Some("10.0.3.17:8080"));
    assert_eq!(d.action.instance.as_deref(), Some("10.0.3.17:8080"));
    assert_eq!(d.labels.get("instance"), Some("10.0.3.17:8080"));
    assert_eq!(d.labels.get("alertname"), Some("HighErrorRate"));
    assert_eq!(d.labels.get("team"), Some("payments"));
    assert_eq!(d.annotations["summary"], "failing over 10.0.3.17:8080");
    assert_eq!(d.reason.when, "alert HighErrorRate");
    assert_eq!(
        d.reason.pending_since,
        parse_time("2026-11-23T04:58:12.481Z")
    );
    let alert = d.reason.alert.as_ref().unwrap();
    assert_eq!(alert.fingerprint, "4a3c4b0e1b8a9d21");
    assert_eq!(alert.starts_at, "2026-11-23T04:58:12.481Z");
    assert!(alert.generator_url.starts_with("http://prometheus-0:9090/"));
    assert_eq!(d.at, NOW);

    // Redeliveries of the same alert.
    assert_eq!(e.alert(&r, a, NOW + 2_000), AlertOutcome::Duplicate);
    assert_eq!(e.alert(&r, a, NOW + 4_000), AlertOutcome::Duplicate);
    // The other alert of the payload is another instance.
    assert!(matches!(
        e.alert(&r, &firing()[1], NOW),
        AlertOutcome::Decide(_)
    ));
    // Same fingerprint, new startsAt: it fired again, a new alert.
    let mut again = a.clone();
    again.reference.starts_at = "2026-11-23T06:00:00Z".into();
    again.starts_at_ms = parse_time("2026-11-23T06:00:00Z");
    assert!(matches!(
        e.alert(&r, &again, NOW + 9_000),
        AlertOutcome::Decide(_)
    ));
    assert_eq!(e.alert(&r, &again, NOW + 9_500), AlertOutcome::Duplicate);

    let status = e.status(&RuleSet {
        groups: vec![crate::rules::RuleGroup {
            name: "g".into(),
            file: "r.yaml".into(),
            interval: Duration::from_secs(10),
            rules: vec![r.clone()],
        }],
    });
    assert_eq!(status[0].instances.len(), 2);
    assert!(status[0]
        .instances
        .iter()
        .all(|i| i.state == crate::rules::AlertState::Firing));
}

#[test]
fn resolved_alert_never_acts_and_removes_the_instance() {
    let r = rule(FAILOVER);
    let mut e = Engine::new();
    let resolved = &parse(RESOLVED.as_bytes()).unwrap().1[0];
    // Resolved first (e.g. the agent started after the alert fired): nothing.
    assert_eq!(e.alert(&r, resolved, NOW), AlertOutcome::Resolved);
    let a = &firing()[0];
    assert!(matches!(e.alert(&r, a, NOW), AlertOutcome::Decide(_)));
    assert_eq!(e.alert(&r, resolved, NOW + 1_000), AlertOutcome::Resolved);
    assert_eq!(e.alert(&r, resolved, NOW + 2_000), AlertOutcome::Resolved);
    let set = RuleSet {
        groups: vec![crate::rules::RuleGroup {
            name: "g".into(),
            file: "r.yaml".into(),
            interval: Duration::from_secs(10),
            rules: vec![r.clone()],
        }],
    };
    assert!(e.status(&set)[0].instances.is_empty());
    // A late redelivery of the old firing alert still does not act twice.
    assert_eq!(e.alert(&r, a, NOW + 3_000), AlertOutcome::Duplicate);
}

#[test]
fn matchers_and_alert_name_select_alerts() {
    let r = rule(FAILOVER);
    let mut e = Engine::new();
    let mut other = firing()[0].clone();
    other.labels.set("severity", "ticket");
    assert_eq!(e.alert(&r, &other, NOW), AlertOutcome::NoMatch);
    let mut renamed = firing()[0].clone();
    renamed.labels.set("alertname", "Other");
    assert_eq!(e.alert(&r, &renamed, NOW), AlertOutcome::NoMatch);
    // A query rule ignores alerts.
    let q = rule("        queries: { x: 'sum(up)' }\n        when: x > 1\n        action: { kind: scale_out, target: app }\n");
    assert_eq!(e.alert(&q, &firing()[0], NOW), AlertOutcome::NoMatch);
}

#[test]
fn empty_instance_template_is_invalid_not_a_decision() {
    let r = rule(FAILOVER);
    let mut e = Engine::new();
    let mut a = firing()[0].clone();
    a.labels = Labels::new([("alertname", "HighErrorRate"), ("severity", "page")]);
    assert!(matches!(e.alert(&r, &a, NOW), AlertOutcome::Invalid(_)));
}

#[test]
fn released_claim_lets_a_redelivery_try_again() {
    let r = rule(FAILOVER);
    let mut e = Engine::new();
    let a = &firing()[0];
    assert!(matches!(e.alert(&r, a, NOW), AlertOutcome::Decide(_)));
    assert!(e.alert_acted("r", &a.reference));
    e.release_alert("r", &a.reference); // e.g. the guard said "paused"
    assert!(!e.alert_acted("r", &a.reference));
    assert!(matches!(
        e.alert(&r, a, NOW + 2_000),
        AlertOutcome::Decide(_)
    ));
}

#[test]
fn trigger_rules_do_nothing_on_ticks() {
    let r = rule(FAILOVER);
    let mut e = Engine::new();
    let eval = e.evaluate(&r, &BTreeMap::new(), NOW);
    assert!(eval.decisions.is_empty());
}

// ---------------------------------------------------------------- restart

fn decision_event(rule: &str, action_id: Option<&str>, alert: &AlertRef) -> AuditEvent {
    let mut ev = AuditEvent::new(EventKind::Decision);
    ev.rule = Some(rule.into());
    ev.action_id = action_id.map(String::from);
    ev.reason = Some(crate::model::Reason {
        when: format!("alert {}", alert.name),
        alert: Some(alert.clone()),
        ..Default::default()
    });
    ev
}

#[test]
fn acted_alerts_survive_a_restart_through_the_audit_log() {
    let r = rule(FAILOVER);
    let a = &firing()[0];
    let b = &firing()[1];
    // Round trip through the audit line format, as the fold reads it.
    let written: Vec<AuditEvent> = [
        decision_event("r", Some("act-1"), &a.reference),
        // Suppressed for a passing cause (no action id): not consumed.
        decision_event("r", None, &b.reference),
        // Another rule's decision on the same alert does not count for `r`.
        decision_event("other", Some("act-2"), &b.reference),
        AuditEvent::new(EventKind::AgentStarted),
    ]
    .iter()
    .map(|ev| serde_json::from_str(&serde_json::to_string(ev).unwrap()).unwrap())
    .collect();
    let acted = acted_alerts(written.iter());
    assert_eq!(acted.len(), 2);
    let mut e = Engine::with_acted_alerts(acted);
    assert_eq!(e.alert(&r, a, NOW), AlertOutcome::Duplicate);
    assert!(matches!(e.alert(&r, b, NOW), AlertOutcome::Decide(_)));
}
