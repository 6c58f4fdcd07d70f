//! Unit tests of the kubernetes provider's pieces that need no API server:
//! config checks, selectors, image tags, template edits, merge diffs,
//! rollout progress, revision choice, reconcile rules, error mapping. The
//! behaviour against an API server is in `tests/kubernetes_provider.rs`.
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::client::{classify, Call};
use super::config::*;
use super::state::*;
use crate::model::{ProviderError, Reconciliation};
use crate::providers::ProviderBlock;
use crate::spec::YPath;

fn workload(kind: WorkloadKind, replicas: u32, status: WorkloadStatus) -> Workload {
    Workload {
        kind,
        name: "web".into(),
        uid: "uid-web".into(),
        resource_version: "7".into(),
        generation: 2,
        annotations: BTreeMap::new(),
        replicas,
        selector: LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            match_expressions: None,
        },
        template: json!({
            "metadata": {"labels": {"app": "web", "serving": "true"}},
            "spec": {"containers": [
                {"name": "app", "image": "reg.example:5000/team/web:v1",
                 "ports": [{"containerPort": 8080}, {"name": "metrics", "containerPort": 9100}],
                 "env": [{"name": "MODE", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
                 "args": ["--old"]},
                {"name": "sidecar", "image": "proxy:1"},
            ]},
        }),
        status,
    }
}

fn done_status(n: u32) -> WorkloadStatus {
    WorkloadStatus {
        observed_generation: 2,
        replicas: n,
        updated: n,
        ready: n,
        available: n,
        ..WorkloadStatus::default()
    }
}

fn errors(c: &KubernetesConfig) -> Vec<String> {
    c.check(&YPath::root())
        .into_iter()
        .map(|(_, m)| m)
        .collect()
}

#[test]
fn config_checks_name_every_bad_field() {
    let mut c = KubernetesConfig::named("Web_App");
    c.namespace = Some("a.b".into());
    c.metrics_port = Some(0);
    c.quarantine_label = Some("-bad".into());
    c.container = Some("App".into());
    c.api_timeout = Some(Duration::ZERO);
    c.poll_interval = Some(Duration::ZERO);
    let e = errors(&c);
    for field in [
        "kubernetes.name",
        "kubernetes.namespace",
        "kubernetes.metrics_port",
        "kubernetes.quarantine_label",
        "kubernetes.container",
        "kubernetes.api_timeout",
        "kubernetes.poll_interval",
    ] {
        assert!(e.iter().any(|m| m.starts_with(field)), "{field}: {e:?}");
    }
    let mut c = KubernetesConfig::named("web");
    c.service = Some("web".into());
    assert!(errors(&c)[0].contains("quarantine_label, which is not set"));
    c.quarantine_label = Some("example.com/serving".into());
    assert!(errors(&c).is_empty());
}

#[test]
fn config_reads_yaml_and_refuses_unknown_fields() {
    let c: KubernetesConfig = serde_yaml::from_str(
        "{kind: StatefulSet, name: db, failover: delete, rollout_timeout: 90s, quarantine_label: serving}",
    )
    .unwrap();
    assert_eq!(c.kind, WorkloadKind::StatefulSet);
    assert_eq!(c.failover, FailoverMethod::Delete);
    assert_eq!(c.rollout_timeout, Some(Duration::from_secs(90)));
    assert!(serde_yaml::from_str::<KubernetesConfig>("{name: db, replica: 3}").is_err());
    assert!(serde_yaml::from_str::<KubernetesConfig>("{name: db, failover: kill}").is_err());
}

#[test]
fn names_and_label_keys() {
    assert!(is_dns_subdomain("web.v1-a"));
    assert!(!is_dns_subdomain("Web"));
    assert!(!is_dns_subdomain("-web"));
    assert!(!is_dns_subdomain(""));
    assert!(is_dns_label("shop"));
    assert!(!is_dns_label("a.b"));
    assert!(is_label_key("serving"));
    assert!(is_label_key("homeostat.io/serving"));
    assert!(is_label_key("A_b.c"));
    assert!(!is_label_key("a/"));
    assert!(!is_label_key("Bad.Prefix/x"));
    assert!(!is_label_key(&"x".repeat(64)));
}

#[test]
fn selectors_in_query_syntax() {
    let sel = LabelSelector {
        match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
        match_expressions: Some(vec![
            LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            },
            LabelSelectorRequirement {
                key: "legacy".into(),
                operator: "DoesNotExist".into(),
                values: None,
            },
            LabelSelectorRequirement {
                key: "zone".into(),
                operator: "Exists".into(),
                values: None,
            },
        ]),
    };
    assert_eq!(
        selector_string(&sel).unwrap(),
        "app=web,tier in (a,b),!legacy,zone"
    );
    assert_eq!(
        selector_keys(&sel).into_iter().collect::<Vec<_>>(),
        ["app", "legacy", "tier", "zone"]
    );
    assert!(selector_string(&LabelSelector::default()).is_err());
}

#[test]
fn image_tags_and_versions() {
    assert_eq!(image_tag("reg.example:5000/team/web:v1"), "v1");
    assert_eq!(image_tag("reg.example:5000/team/web"), "latest");
    assert_eq!(image_tag("web@sha256:abc"), "sha256:abc");
    assert_eq!(
        with_version("reg.example:5000/team/web:v1", "v2").unwrap(),
        "reg.example:5000/team/web:v2"
    );
    assert_eq!(
        with_version("reg.example:5000/team/web", "v2").unwrap(),
        "reg.example:5000/team/web:v2"
    );
    assert_eq!(with_version("web:v1@sha256:abc", "v2").unwrap(), "web:v2");
    assert_eq!(
        with_version("web:v1", "other.example/web:v9").unwrap(),
        "other.example/web:v9"
    );
    assert!(with_version("web:v1", "v 2").is_err());
    assert!(with_version("web:v1", "-v2").is_err());
    assert!(with_version("web:v1", "").is_err());
}

#[test]
fn metrics_port_and_container_choice() {
    let w = workload(WorkloadKind::Deployment, 3, done_status(3));
    assert_eq!(w.metrics_port(None, None), Some(9100));
    assert_eq!(w.metrics_port(Some(7000), None), Some(7000));
    assert_eq!(w.metrics_port(None, Some("sidecar")), None);
    assert_eq!(w.image(Some("sidecar")).as_deref(), Some("proxy:1"));
    assert_eq!(
        w.image(None).as_deref(),
        Some("reg.example:5000/team/web:v1")
    );
}

#[test]
fn a_redeploy_changes_only_the_chosen_container() {
    let w = workload(WorkloadKind::Deployment, 3, done_status(3));
    let env = BTreeMap::from([
        ("MODE".to_string(), "fast".to_string()),
        ("NEW".to_string(), "1".to_string()),
    ]);
    let cmd = vec!["/web".to_string(), "--fast".to_string()];
    let change = TemplateChange {
        version: Some("v2"),
        command: Some(&cmd),
        env: &env,
        restarted_at: "2025-01-01T00:00:00Z",
        action_id: "act-1",
    };
    let t = changed_template(&w.template, None, change).unwrap();
    let c = &t["spec"]["containers"][0];
    assert_eq!(c["image"], "reg.example:5000/team/web:v2");
    assert_eq!(c["command"], json!(["/web", "--fast"]));
    assert!(c.get("args").is_none());
    assert_eq!(
        c["env"],
        json!([{"name": "MODE", "value": "fast"}, {"name": "NEW", "value": "1"}])
    );
    assert_eq!(
        t["spec"]["containers"][1],
        w.template["spec"]["containers"][1]
    );
    assert_eq!(t["metadata"]["annotations"][ACTION_ANNOTATION], "act-1");
    assert_eq!(
        t["metadata"]["annotations"][RESTARTED_AT],
        "2025-01-01T00:00:00Z"
    );
    assert_eq!(t["metadata"]["labels"], w.template["metadata"]["labels"]);

    let t = changed_template(&w.template, Some("sidecar"), change).unwrap();
    assert_eq!(t["spec"]["containers"][1]["image"], "proxy:v2");
    assert_eq!(
        t["spec"]["containers"][0],
        w.template["spec"]["containers"][0]
    );
    assert!(changed_template(&w.template, Some("nope"), change).is_err());
    let empty: Vec<String> = Vec::new();
    let bad = TemplateChange {
        command: Some(&empty),
        ..change
    };
    assert!(changed_template(&w.template, None, bad).is_err());
}

/// RFC 7386, for checking diffs.
fn apply_merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    apply_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[test]
fn merge_diff_examples() {
    let from = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
    let to = json!({"b": {"c": 2, "d": 4, "e": 5}, "l": [1], "n": "x"});
    let d = merge_diff(&from, &to).unwrap();
    assert_eq!(
        d,
        json!({"a": null, "b": {"d": 4, "e": 5}, "l": [1], "n": "x"})
    );
    let mut x = from.clone();
    apply_merge(&mut x, &d);
    assert_eq!(x, to);
    assert_eq!(merge_diff(&to, &to), None);
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ]
}

/// JSON without nulls (a merge patch cannot express a null value).
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn merge_diff_turns_from_into_to(
        from in prop::collection::btree_map("[a-d]", json_value(), 0..5),
        to in prop::collection::btree_map("[a-d]", json_value(), 0..5),
    ) {
        let from = Value::Object(from.into_iter().collect());
        let to = Value::Object(to.into_iter().collect());
        let mut x = from.clone();
        if let Some(d) = merge_diff(&from, &to) {
            apply_merge(&mut x, &d);
        }
        prop_assert_eq!(x, to);
    }
}

#[test]
fn rollout_progress_follows_kubectl() {
    let mut w = workload(WorkloadKind::Deployment, 3, done_status(3));
    assert_eq!(progress(&w), Progress::Complete);
    w.status.observed_generation = 1;
    assert!(matches!(progress(&w), Progress::Waiting(m) if m.contains("generation 2")));
    w.status.observed_generation = 2;
    w.status.updated = 1;
    w.status.replicas = 4;
    assert!(matches!(progress(&w), Progress::Waiting(m) if m.contains("1 of 3 updated")));
    w.status.updated = 3;
    assert!(matches!(progress(&w), Progress::Waiting(m) if m.contains("1 old replicas")));
    w.status.replicas = 3;
    w.status.available = 2;
    assert!(
        matches!(progress(&w), Progress::Waiting(m) if m.contains("2 of 3 updated replicas available"))
    );
    w.status.deadline_exceeded = Some("ReplicaSet web-1 has timed out progressing.".into());
    assert!(matches!(progress(&w), Progress::Failed(m) if m.contains("timed out")));

    let mut s = workload(WorkloadKind::StatefulSet, 3, done_status(3));
    s.status.current_revision = Some("db-a".into());
    s.status.update_revision = Some("db-b".into());
    assert!(matches!(progress(&s), Progress::Waiting(m) if m.contains("revision db-b")));
    s.status.current_revision = Some("db-b".into());
    assert_eq!(progress(&s), Progress::Complete);
    s.status.ready = 2;
    assert!(matches!(progress(&s), Progress::Waiting(m) if m.contains("2 of 3 pods ready")));
}

fn service(selector: &[(&str, &str)]) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": selector.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
    }))
    .unwrap()
}

#[test]
fn quarantine_label_checks() {
    let w = workload(WorkloadKind::Deployment, 3, done_status(3));
    assert!(check_quarantine(&w, "shop", "serving", None).is_ok());
    let svc = service(&[("app", "web"), ("serving", "true")]);
    assert!(check_quarantine(&w, "shop", "serving", Some(("web", &svc))).is_ok());
    let e = check_quarantine(&w, "shop", "app", None).unwrap_err();
    assert!(e.contains("in the selector of Deployment shop/web"), "{e}");
    let e = check_quarantine(&w, "shop", "canary", None).unwrap_err();
    assert!(e.contains("not a label of"), "{e}");
    let svc = service(&[("app", "web")]);
    let e = check_quarantine(&w, "shop", "serving", Some(("web", &svc))).unwrap_err();
    assert!(e.contains("does not select on"), "{e}");
    let svc = service(&[("serving", "yes")]);
    let e = check_quarantine(&w, "shop", "serving", Some(("web", &svc))).unwrap_err();
    assert!(e.contains("serving=yes"), "{e}");
}

fn rs(name: &str, revision: i64, owner: &str, image: &str, action: Option<&str>) -> ReplicaSet {
    let mut ann = serde_json::Map::new();
    if let Some(a) = action {
        ann.insert(ACTION_ANNOTATION.into(), json!(a));
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": {REVISION: revision.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner, "controller": true}],
        },
        "spec": {
            "selector": {"matchLabels": {"app": "web", POD_TEMPLATE_HASH: name}},
            "template": {
                "metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: name}, "annotations": ann},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }))
    .unwrap()
}

#[test]
fn the_previous_replicaset_is_the_one_kubectl_would_pick() {
    let rses = vec![
        rs("a", 1, "uid-web", "web:v1", None),
        rs("b", 2, "uid-web", "web:v2", None),
        rs("c", 3, "uid-web", "web:v3", Some("act-3")),
        rs("x", 9, "someone-else", "web:x", None),
    ];
    let p = previous_replicaset(&rses, "uid-web", 3, None).unwrap();
    assert_eq!(p.number, 2);
    assert_eq!(
        container_image(&p.template, None).as_deref(),
        Some("web:v2")
    );
    assert!(p.template["metadata"]["labels"]
        .get(POD_TEMPLATE_HASH)
        .is_none());
    assert_eq!(p.template["metadata"]["labels"]["app"], "web");
    // Current is 4 (the re-used v2 after a rollback of act-3): v3 is skipped.
    let p = previous_replicaset(&rses, "uid-web", 4, Some("act-3")).unwrap();
    assert_eq!(p.number, 2);
    assert_eq!(previous_replicaset(&rses, "uid-web", 1, None), None);
}

fn cr(name: &str, revision: i64, image: &str, action: Option<&str>) -> ControllerRevision {
    let mut ann = serde_json::Map::new();
    if let Some(a) = action {
        ann.insert(ACTION_ANNOTATION.into(), json!(a));
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "uid-db", "controller": true}]},
        "revision": revision,
        "data": {"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "db"}, "annotations": ann},
                                        "spec": {"containers": [{"name": "db", "image": image}]}}}},
    }))
    .unwrap()
}

#[test]
fn the_previous_controller_revision() {
    let crs = vec![
        cr("db-1", 1, "db:v1", None),
        cr("db-2", 2, "db:v2", None),
        cr("db-3", 3, "db:v3", Some("bad")),
    ];
    let p = previous_controller_revision(&crs, "uid-db", Some("db-3"), None).unwrap();
    assert_eq!(p.number, 2);
    assert!(p.template.get("$patch").is_none());
    assert_eq!(container_image(&p.template, None).as_deref(), Some("db:v2"));
    let crs = vec![
        cr("db-1", 1, "db:v1", None),
        cr("db-3", 3, "db:v3", Some("bad")),
        cr("db-2", 4, "db:v2", None),
    ];
    let p = previous_controller_revision(&crs, "uid-db", Some("db-2"), Some("bad")).unwrap();
    assert_eq!(p.number, 1);
    assert_eq!(
        previous_controller_revision(&crs, "uid-db", Some("db-1"), None),
        None
    );
    assert_eq!(
        previous_controller_revision(&crs, "uid-other", None, None),
        None
    );
}

fn pod(name: &str, ip: &str, labels: &[(&str, &str)], ready: bool, deleting: bool) -> Pod {
    let mut meta = json!({
        "name": name, "uid": format!("uid-{name}"), "resourceVersion": "1",
        "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    if deleting {
        meta["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    }
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {"containers": [{"name": "app", "image": "web:v7"}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
    .unwrap()
}

#[test]
fn pods_become_instances() {
    let view = PodView {
        metrics_port: Some(9100),
        quarantine_label: Some("serving"),
        container: None,
    };
    let p = pod(
        "web-1",
        "10.0.0.5",
        &[("app", "web"), ("serving", "true")],
        true,
        false,
    );
    let i = instance(&p, view).unwrap();
    assert_eq!(i.id, "web-1");
    assert_eq!(i.address.as_deref(), Some("10.0.0.5:9100"));
    assert!(i.healthy && i.in_traffic);
    assert_eq!(i.version.as_deref(), Some("v7"));
    let q = pod("web-2", "10.0.0.6", &[("app", "web")], false, false);
    let i = instance(&q, view).unwrap();
    assert!(!i.healthy && !i.in_traffic);
    let no_label = PodView {
        quarantine_label: None,
        ..view
    };
    assert!(instance(&q, no_label).unwrap().in_traffic);
    assert!(instance(&pod("web-3", "10.0.0.7", &[], true, true), view).is_none());

    let pods = vec![p, q];
    assert_eq!(
        pod_name(find_pod(&pods, "web-2", Some(9100)).unwrap()),
        "web-2"
    );
    assert_eq!(
        pod_name(find_pod(&pods, "10.0.0.5:9100", Some(9100)).unwrap()),
        "web-1"
    );
    assert_eq!(
        pod_name(find_pod(&pods, "10.0.0.6", Some(9100)).unwrap()),
        "web-2"
    );
    assert!(find_pod(&pods, "10.0.0.5:8080", Some(9100)).is_none());
    assert!(find_pod(&pods, "web-9", Some(9100)).is_none());
}

#[test]
fn reconcile_rules() {
    assert_eq!(reconcile_scale(4, 3, 4), Reconciliation::Applied);
    assert_eq!(reconcile_scale(3, 3, 4), Reconciliation::NotApplied);
    assert_eq!(reconcile_scale(5, 3, 4), Reconciliation::Unknown);

    let inside = pod("web-1", "10.0.0.5", &[("serving", "true")], true, false);
    let outside = pod("web-1", "10.0.0.5", &[], true, false);
    let leaving = pod("web-1", "10.0.0.5", &[], true, true);
    assert_eq!(
        reconcile_circuit(Some(&outside), "serving", false),
        Reconciliation::Applied
    );
    assert_eq!(
        reconcile_circuit(Some(&inside), "serving", false),
        Reconciliation::NotApplied
    );
    assert_eq!(
        reconcile_circuit(Some(&inside), "serving", true),
        Reconciliation::Applied
    );
    assert_eq!(
        reconcile_circuit(None, "serving", true),
        Reconciliation::Unknown
    );
    assert_eq!(
        reconcile_circuit(Some(&leaving), "serving", true),
        Reconciliation::Unknown
    );

    assert_eq!(
        reconcile_replace(None, WorkloadKind::Deployment),
        Reconciliation::Applied
    );
    assert_eq!(
        reconcile_replace(Some(&leaving), WorkloadKind::Deployment),
        Reconciliation::Applied
    );
    assert_eq!(
        reconcile_replace(Some(&inside), WorkloadKind::Deployment),
        Reconciliation::NotApplied
    );
    assert_eq!(
        reconcile_replace(Some(&inside), WorkloadKind::StatefulSet),
        Reconciliation::Unknown
    );

    let mut w = workload(WorkloadKind::Deployment, 3, done_status(3));
    assert_eq!(reconcile_redeploy(&w, "r1"), Reconciliation::NotApplied);
    w.template["metadata"]["annotations"] = json!({ACTION_ANNOTATION: "r1"});
    assert_eq!(reconcile_redeploy(&w, "r1"), Reconciliation::Applied);
    w.status.updated = 1;
    assert_eq!(reconcile_redeploy(&w, "r1"), Reconciliation::Unknown);
    w.annotations
        .insert(ROLLED_BACK_ANNOTATION.into(), "r1".into());
    assert_eq!(reconcile_redeploy(&w, "r1"), Reconciliation::NotApplied);
    assert_eq!(reconcile_rollback(&w, "b1"), Reconciliation::NotApplied);
    w.annotations
        .insert(ROLLBACK_ANNOTATION.into(), "b1".into());
    assert_eq!(reconcile_rollback(&w, "b1"), Reconciliation::Applied);
}

fn api_error(code: u16, message: &str, details: Value) -> kube::Error {
    let mut v = json!({"kind": "Status", "status": "Failure", "code": code, "message": message, "reason": "X"});
    if !details.is_null() {
        v["details"] = details;
    }
    kube::Error::Api(Box::new(serde_json::from_value(v).unwrap()))
}

#[test]
fn api_errors_map_to_provider_errors() {
    let call = Call {
        verb: "patch",
        resource: "pods",
        name: Some("web-1"),
    };
    let map = |e| {
        classify(
            e,
            call,
            "shop",
            "https://k8s.example:6443/",
            Duration::from_secs(3),
        )
    };
    let e = map(api_error(403, "pods \"web-1\" is forbidden", Value::Null));
    assert!(matches!(e, ProviderError::PermissionDenied { .. }));
    assert!(
        e.to_string()
            .contains("patch pods \"web-1\" in namespace shop"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("the Role needs verb \"patch\" on resource \"pods\""),
        "{e}"
    );
    assert!(matches!(
        map(api_error(401, "Unauthorized", Value::Null)),
        ProviderError::PermissionDenied { .. }
    ));
    assert!(matches!(
        map(api_error(404, "not found", Value::Null)),
        ProviderError::NotFound { .. }
    ));
    assert!(matches!(
        map(api_error(409, "modified", Value::Null)),
        ProviderError::Conflict { .. }
    ));
    assert!(matches!(
        map(api_error(422, "invalid", Value::Null)),
        ProviderError::Rejected { .. }
    ));
    assert!(matches!(
        map(api_error(500, "boom", Value::Null)),
        ProviderError::Unavailable { .. }
    ));
    assert!(matches!(
        map(api_error(503, "later", Value::Null)),
        ProviderError::Unavailable { .. }
    ));
    assert!(matches!(
        map(api_error(504, "slow", Value::Null)),
        ProviderError::Timeout { after_ms: 3000, .. }
    ));
    assert!(matches!(
        map(api_error(429, "too many requests", Value::Null)),
        ProviderError::Unavailable { .. }
    ));
    let pdb = map(api_error(
        429,
        "Cannot evict pod as it would violate the pod's disruption budget.",
        json!({"causes": [{"reason": "DisruptionBudget", "message": "needs 2"}]}),
    ));
    assert!(matches!(pdb, ProviderError::Rejected { .. }), "{pdb}");
    assert!(!pdb.is_retryable());
    assert!(matches!(
        map(api_error(418, "teapot", Value::Null)),
        ProviderError::Failed { .. }
    ));
}
