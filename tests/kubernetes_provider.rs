#![cfg(feature = "kubernetes")]
//! The kubernetes provider against the in-process fake API server
//! (`tests/fake_kube`), through a real kube client over HTTP: every action
//! kind, conflicts, PodDisruptionBudgets, quarantine across a restart,
//! rollouts that complete and ones that stall and are rolled back,
//! reconciliation, an API that is down, slow or forbids, kubeconfig contexts;
//! and the real agent binary acting on the fake.
//!
//! No real cluster runs here: what these tests prove is the adapter against
//! the fake's model of the API (see its module doc), not against a live
//! Kubernetes.
//!
//! Real time, not paused tokio time (socket I/O and HTTP timeouts).
mod common;
mod fake_kube;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use fake_kube::{
    image_of, is_ready, obj_annotations, obj_labels, obj_name, obj_uid, FakeKube, Seed,
};
use homeostat::audit::EventKind;
use homeostat::model::{
    ActionKind, ActionRequest, ProviderError, ProviderOp, Reconciliation, TargetState,
};
use homeostat::providers::kubernetes::config::{FailoverMethod, KubernetesConfig, WorkloadKind};
use homeostat::providers::kubernetes::KubernetesProvider;
use homeostat::providers::Provider;
use serde_json::json;

const NS: &str = "shop";
const QUARANTINE: &str = "serving";

struct Env {
    fake: FakeKube,
    tmp: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// A fake with Deployment `web` (3 replicas of `registry.example/web:v1`,
/// pods labelled `app=web, serving=true`) and Service `web` selecting both.
async fn env_with(replicas: i64) -> Env {
    let fake = FakeKube::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = fake.write_kubeconfig(tmp.path(), NS, "fake");
    fake.add_deployment(
        NS,
        "web",
        Seed {
            replicas,
            image: "registry.example/web:v1",
            extra_labels: &[(QUARANTINE, "true")],
        },
    );
    fake.add_service(NS, "web", &[("app", "web"), (QUARANTINE, "true")]);
    fake.settle("deployments", NS, "web").await;
    Env {
        fake,
        tmp,
        kubeconfig,
    }
}

async fn env() -> Env {
    env_with(3).await
}

fn cfg(env: &Env) -> KubernetesConfig {
    let mut c = KubernetesConfig::named("web");
    c.kubeconfig = Some(env.kubeconfig.clone());
    c.api_timeout = Some(Duration::from_secs(2));
    c.poll_interval = Some(Duration::from_millis(50));
    c.rollout_timeout = Some(Duration::from_secs(10));
    c.quarantine_label = Some(QUARANTINE.into());
    c.service = Some("web".into());
    c
}

async fn started(c: KubernetesConfig) -> (KubernetesProvider, TargetState) {
    let p = KubernetesProvider::new("web", c).unwrap();
    let s = p.start().await.unwrap();
    (p, s)
}

fn req(id: &str, kind: ActionKind, op: ProviderOp) -> ActionRequest {
    ActionRequest {
        action_id: id.into(),
        target: "web".into(),
        kind,
        op,
        rule: "test".into(),
    }
}

fn scale(id: &str, from: u32, to: u32) -> ActionRequest {
    req(
        id,
        ActionKind::ScaleOut,
        ProviderOp::SetReplicas { from, to },
    )
}

fn replicas(fake: &FakeKube) -> i64 {
    fake.get("deployments", NS, "web").unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

fn pod_names(fake: &FakeKube) -> Vec<String> {
    fake.pods(NS).iter().map(obj_name).collect()
}

/// Poll the fake until `f` holds (bounded by PATIENCE).
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Deadline::after(PATIENCE);
    while !f() {
        assert!(!deadline.passed(), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll the provider's cached state until `f` holds.
async fn until_state(
    p: &KubernetesProvider,
    what: &str,
    f: impl Fn(&TargetState) -> bool,
) -> TargetState {
    let deadline = Deadline::after(PATIENCE);
    loop {
        if let Ok(s) = p.state().await {
            if f(&s) {
                return s;
            }
        }
        assert!(!deadline.passed(), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- start-up

#[tokio::test]
async fn start_adopts_the_deployment_and_reports_its_pods() {
    let e = env().await;
    let (p, s) = started(cfg(&e)).await;
    assert_eq!(s.replicas, 3);
    assert_eq!(s.version.as_deref(), Some("v1"));
    assert_eq!(s.instances.len(), 3);
    let pods = e.fake.pods(NS);
    for (i, pod) in s.instances.iter().zip(&pods) {
        assert_eq!(i.id, obj_name(pod));
        let ip = pod["status"]["podIP"].as_str().unwrap();
        assert_eq!(i.address.as_deref(), Some(format!("{ip}:9100").as_str()));
        assert!(i.healthy && i.in_traffic, "{i:?}");
        assert_eq!(i.version.as_deref(), Some("v1"));
        assert_eq!(i.labels.get("pod"), Some(&i.id));
    }
    // state() answers from the cache the poller keeps fresh.
    let calls = e.fake.calls().len();
    until("the poller to refresh", || e.fake.calls().len() > calls + 2).await;
    assert_eq!(p.state().await.unwrap().replicas, 3);
    assert_eq!(p.namespace().as_deref(), Some(NS));
}

#[tokio::test]
async fn a_missing_workload_is_not_found_at_start() {
    let e = env().await;
    let mut c = cfg(&e);
    c.name = "nope".into();
    c.service = None;
    let err = KubernetesProvider::new("web", c)
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("get deployments \"nope\" in namespace shop"),
        "{err}"
    );
}

#[tokio::test]
async fn a_quarantine_label_in_the_selector_is_refused_at_start() {
    let e = env().await;
    let mut c = cfg(&e);
    c.quarantine_label = Some("app".into());
    c.service = None;
    let err = KubernetesProvider::new("web", c)
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("selector"), "{err}");
    assert!(err.to_string().contains("orphan"), "{err}");

    // A label the pods do not carry, and a Service that does not select on it.
    let mut c = cfg(&e);
    c.quarantine_label = Some("canary".into());
    c.service = None;
    let err = KubernetesProvider::new("web", c)
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a label of"), "{err}");

    e.fake.add_service(NS, "web-all", &[("app", "web")]);
    let mut c = cfg(&e);
    c.service = Some("web-all".into());
    let err = KubernetesProvider::new("web", c)
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("does not select on"), "{err}");
}

#[tokio::test]
async fn kubeconfig_context_is_honoured() {
    let e = env().await;
    // Current context points at a closed port; the configured one at the fake.
    let kc = e.fake.write_kubeconfig(e.tmp.path(), NS, "nowhere");
    let mut c = cfg(&e);
    c.kubeconfig = Some(kc.clone());
    c.context = Some("fake".into());
    let (_p, s) = started(c).await;
    assert_eq!(s.replicas, 3);

    // Without `context`, the current one: its server does not answer (the
    // agent still starts; the target is unavailable and says where it looked).
    let mut c = cfg(&e);
    c.kubeconfig = Some(kc.clone());
    let p = KubernetesProvider::new("web", c).unwrap();
    p.start().await.expect("degraded start");
    let err = p.state().await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");

    let mut c = cfg(&e);
    c.kubeconfig = Some(kc);
    c.context = Some("staging".into());
    let err = KubernetesProvider::new("web", c)
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("staging"), "{err}");
}

#[tokio::test]
async fn wrong_credentials_are_permission_denied() {
    let e = env().await;
    let text = std::fs::read_to_string(&e.kubeconfig)
        .unwrap()
        .replace(&e.fake.token, "stolen-token");
    let kc = e.tmp.path().join("bad-token");
    std::fs::write(&kc, text).unwrap();
    let mut c = cfg(&e);
    c.kubeconfig = Some(kc);
    let err = KubernetesProvider::new("web", c)
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("unauthorized"), "{err}");
    assert!(!err.to_string().contains("stolen-token"), "{err}");
}

// ------------------------------------------------------------------- scale

#[tokio::test]
async fn scale_out_and_in_through_the_scale_subresource() {
    let e = env().await;
    let (p, _) = started(cfg(&e)).await;
    let out = p.execute(&scale("s1", 3, 5)).await.unwrap();
    assert_eq!(out.before["replicas"], 3);
    assert_eq!(out.after["replicas"], 5);
    assert_eq!(replicas(&e.fake), 5);
    until("5 ready pods", || {
        let pods = e.fake.pods(NS);
        pods.len() == 5 && pods.iter().all(is_ready)
    })
    .await;
    assert_eq!(e.fake.count("get", "deployments/scale"), 1);
    assert_eq!(e.fake.count("update", "deployments/scale"), 1);
    let s = until_state(&p, "5 healthy instances", |s| {
        s.instances.len() == 5 && s.instances.iter().all(|i| i.healthy)
    })
    .await;
    assert_eq!(s.replicas, 5);

    // The same action id again: remembered, nothing sent.
    let again = p.execute(&scale("s1", 3, 5)).await.unwrap();
    assert_eq!(again, out);
    assert_eq!(e.fake.count("update", "deployments/scale"), 1);
    // A different id asking for the count it already has: converges without a write.
    p.execute(&scale("s2", 3, 5)).await.unwrap();
    assert_eq!(e.fake.count("update", "deployments/scale"), 1);

    p.execute(&scale("s3", 5, 2)).await.unwrap();
    assert_eq!(replicas(&e.fake), 2);
    until("2 pods", || e.fake.pods(NS).len() == 2).await;
}

#[tokio::test]
async fn a_scale_conflict_is_re_read_and_retried() {
    let e = env().await;
    let (p, _) = started(cfg(&e)).await;
    e.fake.inject("update", "deployments/scale", 409, 2);
    p.execute(&scale("c1", 3, 4)).await.unwrap();
    assert_eq!(replicas(&e.fake), 4);
    // Two refused PUTs, each followed by a fresh GET, then the accepted one.
    assert_eq!(e.fake.count("update", "deployments/scale"), 3);
    assert_eq!(e.fake.count("get", "deployments/scale"), 3);
}

#[tokio::test]
async fn a_stale_resource_version_is_a_real_conflict() {
    let e = env().await;
    let (p, _) = started(cfg(&e)).await;
    // Someone else changes the Deployment between our GET and PUT of the
    // scale: the fake's own precondition check answers 409, the adapter re-reads.
    e.fake
        .slow_after("get", "deployments/scale", Duration::from_millis(300));
    let fake = &e.fake;
    let toucher = async {
        until("the first scale read", || {
            fake.count("get", "deployments/scale") == 1
        })
        .await;
        fake.touch("deployments", NS, "web");
        fake.slow_after("get", "deployments/scale", Duration::ZERO);
    };
    let r = scale("c2", 3, 4);
    let (res, ()) = tokio::join!(p.execute(&r), toucher);
    res.unwrap();
    assert_eq!(replicas(&e.fake), 4);
    assert_eq!(
        e.fake.count("update", "deployments/scale"),
        2,
        "{:?}",
        e.fake.calls()
    );
}

#[tokio::test]
async fn persistent_conflicts_fail_as_conflict() {
    let e = env().await;
    let (p, _) = started(cfg(&e)).await;
    e.fake.inject("update", "deployments/scale", 409, 50);
    let err = p.execute(&scale("c3", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Conflict { .. }), "{err}");
    assert!(err.is_retryable());
    let msg = err.to_string();
    assert!(msg.contains("update deployments/scale \"web\""), "{msg}");
    assert!(msg.contains("still conflicting after 6 attempts"), "{msg}");
    assert_eq!(replicas(&e.fake), 3);
}

// ---------------------------------------------------------------- failover

#[tokio::test]
async fn failover_evicts_the_pod_and_its_controller_replaces_it() {
    let e = env().await;
    let (p, s) = started(cfg(&e)).await;
    let victim = s.instances[1].id.clone();
    let out = p
        .execute(&req(
            "f1",
            ActionKind::Failover,
            ProviderOp::Replace {
                instance: victim.clone(),
            },
        ))
        .await
        .unwrap();
    assert!(out.before["instances"].to_string().contains(&victim));
    assert_eq!(e.fake.count("create", "pods/eviction"), 1);
    until("a replacement pod, the victim gone", || {
        let names = pod_names(&e.fake);
        names.len() == 3 && !names.contains(&victim) && e.fake.pods(NS).iter().all(is_ready)
    })
    .await;

    // By address, as the scraper's `instance` label names it.
    let s = until_state(&p, "the replacement in the cache", |s| {
        s.instances.len() == 3 && !s.instances.iter().any(|i| i.id == victim)
    })
    .await;
    let addr = s.instances[0].address.clone().unwrap();
    let by_addr = s.instances[0].id.clone();
    p.execute(&req(
        "f2",
        ActionKind::Failover,
        ProviderOp::Replace { instance: addr },
    ))
    .await
    .unwrap();
    until("the second victim gone", || {
        !pod_names(&e.fake).contains(&by_addr)
    })
    .await;

    let err = p
        .execute(&req(
            "f3",
            ActionKind::Failover,
            ProviderOp::Replace {
                instance: "web-gone".into(),
            },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn failover_is_refused_by_a_disruption_budget() {
    let e = env().await;
    e.fake.add_pdb(NS, "web-pdb", "web", json!(3));
    let (p, s) = started(cfg(&e)).await;
    let victim = s.instances[0].id.clone();
    let err = p
        .execute(&req(
            "f4",
            ActionKind::Failover,
            ProviderOp::Replace {
                instance: victim.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(!err.is_retryable());
    let msg = err.to_string();
    assert!(msg.contains("PodDisruptionBudget"), "{msg}");
    assert!(msg.contains("create pods/eviction"), "{msg}");
    assert!(pod_names(&e.fake).contains(&victim));

    // A budget that allows one disruption lets it through.
    e.fake.add_pdb(NS, "unused", "other", json!(1));
    e.fake.patch(
        "poddisruptionbudgets",
        NS,
        "web-pdb",
        json!({"spec": {"minAvailable": "50%"}}),
    );
    p.execute(&req(
        "f5",
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: victim.clone(),
        },
    ))
    .await
    .unwrap();
    until("the victim gone", || !pod_names(&e.fake).contains(&victim)).await;
}

#[tokio::test]
async fn a_retried_eviction_whose_pod_is_gone_counts_as_done() {
    let e = env().await;
    let mut c = cfg(&e);
    c.api_timeout = Some(Duration::from_millis(400));
    let (p, s) = started(c).await;
    let victim = s.instances[2].id.clone();
    // The eviction happens, but its answer comes after the client gave up.
    e.fake
        .slow_after("create", "pods/eviction", Duration::from_secs(2));
    let r = req(
        "f6",
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: victim.clone(),
        },
    );
    let err = p.execute(&r).await.unwrap_err();
    assert!(matches!(err, ProviderError::Timeout { .. }), "{err}");
    until("the victim gone", || !pod_names(&e.fake).contains(&victim)).await;
    e.fake.slow_after("create", "pods/eviction", Duration::ZERO);
    // The executor's retry (same id): done, no second eviction.
    p.execute(&r).await.unwrap();
    assert_eq!(e.fake.count("create", "pods/eviction"), 1);
    // A restarted agent reconciles it as applied.
    let (p2, _) = started(cfg(&e)).await;
    assert_eq!(p2.reconcile(&r).await.unwrap(), Reconciliation::Applied);
}

#[tokio::test]
async fn failover_by_delete_when_configured() {
    let e = env().await;
    e.fake.add_pdb(NS, "web-pdb", "web", json!(3));
    let mut c = cfg(&e);
    c.failover = FailoverMethod::Delete;
    let (p, s) = started(c).await;
    let victim = s.instances[0].id.clone();
    p.execute(&req(
        "f7",
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: victim.clone(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(e.fake.count("delete", "pods"), 1);
    assert_eq!(e.fake.count("create", "pods/eviction"), 0);
    until("the victim replaced", || {
        let n = pod_names(&e.fake);
        !n.contains(&victim) && n.len() == 3
    })
    .await;
}

// ----------------------------------------------------------- circuit break

#[tokio::test]
async fn quarantine_removes_the_service_label_and_restores_it_after_a_restart() {
    let e = env().await;
    let (p, s) = started(cfg(&e)).await;
    let pod = s.instances[0].id.clone();
    let uid = obj_uid(&e.fake.get("pods", NS, &pod).unwrap());
    let open = req(
        "c-open",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: pod.clone(),
        },
    );
    p.execute(&open).await.unwrap();
    let live = e.fake.get("pods", NS, &pod).unwrap();
    assert!(!obj_labels(&live).contains_key(QUARANTINE), "{live}");
    assert_eq!(
        obj_annotations(&live)
            .get("homeostat.io/quarantined")
            .map(String::as_str),
        Some("true")
    );
    // Still owned by its ReplicaSet (the label is not in the selector): not replaced.
    assert!(live["metadata"]["ownerReferences"].is_array(), "{live}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(e.fake.pods(NS).len(), 3);
    let s = until_state(&p, "the pod out of traffic", |s| {
        s.instances.iter().any(|i| i.id == pod && !i.in_traffic)
    })
    .await;
    assert_eq!(s.instances.iter().filter(|i| i.in_traffic).count(), 2);
    // Opening again converges without a write.
    let patches = e.fake.count("patch", "pods");
    p.execute(&req(
        "c-open2",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: pod.clone(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(e.fake.count("patch", "pods"), patches);

    // The agent restarts: a fresh provider sees the quarantine and undoes it.
    p.shutdown(false).await;
    drop(p);
    let (p2, s2) = started(cfg(&e)).await;
    assert!(
        s2.instances.iter().any(|i| i.id == pod && !i.in_traffic),
        "{s2:?}"
    );
    assert_eq!(p2.reconcile(&open).await.unwrap(), Reconciliation::Applied);
    let close = req(
        "c-close",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitClose {
            instance: pod.clone(),
        },
    );
    assert_eq!(
        p2.reconcile(&close).await.unwrap(),
        Reconciliation::NotApplied
    );
    p2.execute(&close).await.unwrap();
    let live = e.fake.get("pods", NS, &pod).unwrap();
    assert_eq!(
        obj_labels(&live).get(QUARANTINE).map(String::as_str),
        Some("true")
    );
    assert!(!obj_annotations(&live).contains_key("homeostat.io/quarantined"));
    assert_eq!(obj_uid(&live), uid, "the same pod, not a replacement");
    assert_eq!(p2.reconcile(&close).await.unwrap(), Reconciliation::Applied);
}

#[tokio::test]
async fn half_open_restores_the_label_by_address() {
    let e = env().await;
    let (p, s) = started(cfg(&e)).await;
    let inst = s.instances[1].clone();
    let addr = inst.address.clone().unwrap();
    p.execute(&req(
        "h1",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: addr.clone(),
        },
    ))
    .await
    .unwrap();
    assert!(!obj_labels(&e.fake.get("pods", NS, &inst.id).unwrap()).contains_key(QUARANTINE));
    p.execute(&req(
        "h2",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitHalfOpen { instance: addr },
    ))
    .await
    .unwrap();
    assert!(obj_labels(&e.fake.get("pods", NS, &inst.id).unwrap()).contains_key(QUARANTINE));
}

#[tokio::test]
async fn a_pod_patch_conflict_is_re_read_and_retried() {
    let e = env().await;
    let (p, s) = started(cfg(&e)).await;
    let pod = s.instances[2].id.clone();
    e.fake.inject("patch", "pods", 409, 1);
    p.execute(&req(
        "q1",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: pod.clone(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(e.fake.count("patch", "pods"), 2);
    assert_eq!(e.fake.count("get", "pods"), 1);
    assert!(!obj_labels(&e.fake.get("pods", NS, &pod).unwrap()).contains_key(QUARANTINE));

    e.fake.inject("patch", "pods", 409, 50);
    let err = p
        .execute(&req(
            "q2",
            ActionKind::CircuitBreak,
            ProviderOp::CircuitClose { instance: pod },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("patch pods"), "{err}");
}

#[tokio::test]
async fn circuit_break_without_a_quarantine_label_is_refused() {
    let e = env().await;
    let mut c = cfg(&e);
    c.quarantine_label = None;
    c.service = None;
    let (p, s) = started(c).await;
    let err = p
        .execute(&req(
            "n1",
            ActionKind::CircuitBreak,
            ProviderOp::CircuitOpen {
                instance: s.instances[0].id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("quarantine_label"), "{err}");
    assert_eq!(e.fake.count("patch", "pods"), 0);
}

// ------------------------------------------------------- redeploy, rollback

fn redeploy(id: &str, version: Option<&str>) -> ActionRequest {
    req(
        id,
        ActionKind::Redeploy,
        ProviderOp::Redeploy {
            version: version.map(String::from),
            command: None,
            env: BTreeMap::new(),
        },
    )
}

fn revision(fake: &FakeKube) -> String {
    obj_annotations(&fake.get("deployments", NS, "web").unwrap())
        .get("deployment.kubernetes.io/revision")
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn redeploy_is_a_rollout_restart_that_happens_once_per_action() {
    let e = env().await;
    let (p, s) = started(cfg(&e)).await;
    let old: Vec<String> = s.instances.iter().map(|i| i.id.clone()).collect();
    let r = redeploy("r1", None);
    let out = p.execute(&r).await.unwrap();
    assert_eq!(out.rolled_back, None);
    let d = e.fake.get("deployments", NS, "web").unwrap();
    let ann = &d["spec"]["template"]["metadata"]["annotations"];
    assert!(ann["kubectl.kubernetes.io/restartedAt"].is_string(), "{d}");
    assert_eq!(ann["homeostat.io/action-id"], "r1");
    assert_eq!(revision(&e.fake), "2");
    assert_eq!(image_of(&d), "registry.example/web:v1");
    // Every pod was replaced and the rollout is complete.
    let names = pod_names(&e.fake);
    assert_eq!(names.len(), 3);
    assert!(
        names.iter().all(|n| !old.contains(n)),
        "{names:?} vs {old:?}"
    );
    assert_eq!(out.after["updated"], 3);

    // A restarted agent retrying the same action does not restart again.
    let (p2, _) = started(cfg(&e)).await;
    assert_eq!(p2.reconcile(&r).await.unwrap(), Reconciliation::Applied);
    let patches = e.fake.count("patch", "deployments");
    p2.execute(&r).await.unwrap();
    assert_eq!(e.fake.count("patch", "deployments"), patches);
    assert_eq!(revision(&e.fake), "2");
    assert_eq!(pod_names(&e.fake), names);
    assert_eq!(
        p2.reconcile(&redeploy("never-ran", None)).await.unwrap(),
        Reconciliation::NotApplied
    );
}

#[tokio::test]
async fn redeploy_sets_version_command_and_environment_of_the_container() {
    let e = env().await;
    let mut c = cfg(&e);
    c.container = Some("app".into());
    let (p, _) = started(c).await;
    let r = req(
        "r2",
        ActionKind::Redeploy,
        ProviderOp::Redeploy {
            version: Some("v2".into()),
            command: Some(vec!["/bin/web".into(), "--fast".into()]),
            env: BTreeMap::from([
                ("MODE".to_string(), "fast".to_string()),
                ("NEW".to_string(), "1".to_string()),
            ]),
        },
    );
    let out = p.execute(&r).await.unwrap();
    assert_eq!(out.before["version"], "v1");
    assert_eq!(out.after["version"], "v2");
    let d = e.fake.get("deployments", NS, "web").unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/web:v2");
    assert_eq!(c["command"], json!(["/bin/web", "--fast"]));
    assert_eq!(
        c["env"],
        json!([{"name": "MODE", "value": "fast"}, {"name": "NEW", "value": "1"}])
    );
    assert_eq!(
        c["ports"][0]["containerPort"], 9100,
        "the rest of the container is kept"
    );
    for pod in e.fake.pods(NS) {
        assert_eq!(image_of(&pod), "registry.example/web:v2");
    }
    let s = until_state(&p, "v2 everywhere", |s| {
        s.version.as_deref() == Some("v2")
            && s.instances.len() == 3
            && s.instances
                .iter()
                .all(|i| i.version.as_deref() == Some("v2"))
    })
    .await;
    assert_eq!(s.replicas, 3);

    let err = p
        .execute(&redeploy("r3", Some("not a tag!")))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("not a valid image tag"), "{err}");
}

#[tokio::test]
async fn a_stalled_rollout_is_rolled_back_to_the_previous_replicaset() {
    let e = env().await;
    let mut c = cfg(&e);
    c.rollout_timeout = Some(Duration::from_millis(1500));
    let (p, _) = started(c).await;
    let r = redeploy("bad1", Some("v2-bad"));
    let out = p.execute(&r).await.unwrap();
    let why = out.rolled_back.clone().expect("rolled back");
    assert!(why.contains("version v2-bad"), "{why}");
    assert!(why.contains("rolled back to revision 1"), "{why}");
    assert!(why.contains("registry.example/web:v1"), "{why}");
    let d = e.fake.get("deployments", NS, "web").unwrap();
    assert_eq!(image_of(&d), "registry.example/web:v1");
    assert_eq!(
        obj_annotations(&d)
            .get("homeostat.io/rolled-back-action")
            .map(String::as_str),
        Some("bad1")
    );
    // The old ReplicaSet came back with a new revision; the bad one has no pods.
    assert_eq!(revision(&e.fake), "3");
    let rses = e.fake.list("replicasets", NS);
    assert_eq!(rses.len(), 2);
    for rs in &rses {
        let want = if image_of(rs).contains("bad") { 0 } else { 3 };
        assert_eq!(rs["spec"]["replicas"], want, "{rs}");
    }
    until("only v1 pods, all ready", || {
        let pods = e.fake.pods(NS);
        pods.len() == 3
            && pods
                .iter()
                .all(|p| is_ready(p) && image_of(p).ends_with(":v1"))
    })
    .await;
    assert_eq!(out.after["version"], "v1");

    // Asked to roll back now, there is no good revision to return to: the
    // only other one is the bad version this action rolled back from.
    let err = p
        .execute(&req("bad1-rb", ActionKind::Redeploy, ProviderOp::Rollback))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no previous revision"), "{err}");

    // A restarted agent: the action did not take effect; retrying it reports the rollback again.
    let (p2, _) = started(cfg(&e)).await;
    assert_eq!(p2.reconcile(&r).await.unwrap(), Reconciliation::NotApplied);
    let patches = e.fake.count("patch", "deployments");
    let again = p2.execute(&r).await.unwrap();
    assert!(again.rolled_back.is_some());
    assert_eq!(e.fake.count("patch", "deployments"), patches);
}

#[tokio::test]
async fn rollback_returns_to_the_previous_template_once() {
    let e = env().await;
    let (p, _) = started(cfg(&e)).await;
    let err = p
        .execute(&req("rb0", ActionKind::Redeploy, ProviderOp::Rollback))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("no previous revision"), "{err}");

    p.execute(&redeploy("up", Some("v2"))).await.unwrap();
    assert_eq!(
        image_of(&e.fake.get("deployments", NS, "web").unwrap()),
        "registry.example/web:v2"
    );
    let rb = req("rb1", ActionKind::Redeploy, ProviderOp::Rollback);
    let out = p.execute(&rb).await.unwrap();
    assert_eq!(out.before["version"], "v2");
    assert_eq!(out.after["version"], "v1");
    assert_eq!(out.rolled_back, None);
    let d = e.fake.get("deployments", NS, "web").unwrap();
    assert_eq!(image_of(&d), "registry.example/web:v1");
    // The previous template came back whole: neither our annotations nor the hash label.
    let t = &d["spec"]["template"]["metadata"];
    assert!(
        t["annotations"].get("homeostat.io/action-id").is_none(),
        "{t}"
    );
    assert!(t["labels"].get("pod-template-hash").is_none(), "{t}");
    assert_eq!(revision(&e.fake), "3");
    until("v1 pods only", || {
        e.fake.pods(NS).iter().all(|p| image_of(p).ends_with(":v1"))
    })
    .await;

    let (p2, _) = started(cfg(&e)).await;
    assert_eq!(p2.reconcile(&rb).await.unwrap(), Reconciliation::Applied);
    let patches = e.fake.count("patch", "deployments");
    p2.execute(&rb).await.unwrap();
    assert_eq!(
        e.fake.count("patch", "deployments"),
        patches,
        "no second rollback"
    );
    assert_eq!(revision(&e.fake), "3");
    assert_eq!(
        p2.reconcile(&req("rb-other", ActionKind::Redeploy, ProviderOp::Rollback))
            .await
            .unwrap(),
        Reconciliation::NotApplied
    );
}

// -------------------------------------------------------------- reconcile

#[tokio::test]
async fn reconcile_reads_the_real_state_of_each_op_kind() {
    let e = env().await;
    let (p, s) = started(cfg(&e)).await;
    assert_eq!(
        p.reconcile(&scale("x1", 3, 4)).await.unwrap(),
        Reconciliation::NotApplied
    );
    assert_eq!(
        p.reconcile(&scale("x2", 2, 3)).await.unwrap(),
        Reconciliation::Applied
    );
    assert_eq!(
        p.reconcile(&scale("x3", 1, 2)).await.unwrap(),
        Reconciliation::Unknown
    );
    let pod = s.instances[0].id.clone();
    let replace = req(
        "x4",
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: pod.clone(),
        },
    );
    assert_eq!(
        p.reconcile(&replace).await.unwrap(),
        Reconciliation::NotApplied
    );
    let open = req(
        "x5",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: pod.clone(),
        },
    );
    assert_eq!(
        p.reconcile(&open).await.unwrap(),
        Reconciliation::NotApplied
    );
    let close = req(
        "x6",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitClose {
            instance: pod.clone(),
        },
    );
    assert_eq!(p.reconcile(&close).await.unwrap(), Reconciliation::Applied);
    // A pod that no longer exists: its failover happened; its circuit is unknown.
    let gone = req(
        "x7",
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: "web-gone-12345".into(),
        },
    );
    assert_eq!(p.reconcile(&gone).await.unwrap(), Reconciliation::Applied);
    let gone_open = req(
        "x8",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: "web-gone-12345".into(),
        },
    );
    assert_eq!(
        p.reconcile(&gone_open).await.unwrap(),
        Reconciliation::Unknown
    );
    // Reconcile only reads.
    assert_eq!(e.fake.count("update", "deployments/scale"), 0);
    assert_eq!(e.fake.count("patch", "pods"), 0);
    assert_eq!(e.fake.count("create", "pods/eviction"), 0);
}

// ---------------------------------------------------------------- failures

#[tokio::test]
async fn an_api_that_is_down_is_unavailable_quickly() {
    let e = env().await;
    let (p, _) = started(cfg(&e)).await;
    e.fake.set_down(true).await;
    // Bounded: a dead API must not hang the call (api_timeout is 2s).
    let err = tokio::time::timeout(Duration::from_secs(10), p.execute(&scale("d1", 3, 4)))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("cannot reach the API server"),
        "{err}"
    );
    assert!(err.to_string().contains(&e.fake.addr.to_string()), "{err}");
    // The cache goes stale and says why.
    let deadline = Deadline::after(PATIENCE);
    let stale = loop {
        match p.state().await {
            Err(e) => break e,
            Ok(_) => assert!(!deadline.passed(), "state never went stale"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        matches!(stale, ProviderError::Unavailable { .. }),
        "{stale}"
    );
    // Back up: the next call works.
    e.fake.set_down(false).await;
    p.execute(&scale("d2", 3, 4)).await.unwrap();
    assert_eq!(replicas(&e.fake), 4);
    until_state(&p, "fresh state again", |s| s.replicas == 4).await;
}

#[tokio::test]
async fn an_api_down_at_start_does_not_stop_the_agent_and_the_target_is_adopted_later() {
    let e = env().await;
    e.fake.set_down(true).await;
    let p = KubernetesProvider::new("web", cfg(&e)).unwrap();
    let s = tokio::time::timeout(Duration::from_secs(10), p.start())
        .await
        .expect("start does not hang on a dead API")
        .expect("start succeeds without the API");
    assert_eq!(s, TargetState::default());
    // Until the first contact: no view, and actions fail as unavailable (retryable).
    let err = p.state().await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    let err = p.execute(&scale("down1", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert_eq!(replicas(&e.fake), 3);
    // The API comes back: the poller adopts the target, and actions work.
    e.fake.set_down(false).await;
    until_state(&p, "adopted at the first contact", |s| {
        s.replicas == 3 && s.instances.len() == 3
    })
    .await;
    p.execute(&scale("up1", 3, 4)).await.unwrap();
    assert_eq!(replicas(&e.fake), 4);
}

#[tokio::test]
async fn a_config_that_does_not_fit_the_cluster_is_still_refused_once_adopted() {
    // A quarantine label the workload's selector uses is refused at the first
    // contact even when that contact comes after a degraded start.
    let e = env().await;
    e.fake.set_down(true).await;
    let mut c = cfg(&e);
    c.quarantine_label = Some("app".into());
    c.service = None;
    let p = KubernetesProvider::new("web", c).unwrap();
    p.start().await.expect("degraded start");
    e.fake.set_down(false).await;
    let err = p.execute(&scale("q1", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("quarantine_label"), "{err}");
    assert_eq!(replicas(&e.fake), 3);
}

#[tokio::test]
async fn a_forbidden_call_is_permission_denied_naming_verb_and_resource() {
    let e = env().await;
    let (p, s) = started(cfg(&e)).await;
    e.fake.forbid("update", "deployments/scale");
    let err = p.execute(&scale("p1", 3, 4)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    let msg = err.to_string();
    assert!(
        msg.contains("the Role needs verb \"update\" on resource \"deployments/scale\""),
        "{msg}"
    );
    e.fake.forbid("create", "pods/eviction");
    let err = p
        .execute(&req(
            "p2",
            ActionKind::Failover,
            ProviderOp::Replace {
                instance: s.instances[0].id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("\"create\" on resource \"pods/eviction\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_slow_api_times_out_and_server_errors_are_unavailable() {
    let e = env().await;
    let mut c = cfg(&e);
    c.api_timeout = Some(Duration::from_millis(300));
    let (p, _) = started(c).await;
    e.fake.set_delay(Duration::from_secs(2));
    let err = p.execute(&scale("t1", 3, 4)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Timeout { after_ms: 300, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    e.fake.set_delay(Duration::ZERO);
    e.fake.inject("get", "deployments/scale", 503, 1);
    let err = p.execute(&scale("t2", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
    e.fake.inject("get", "deployments/scale", 429, 1);
    let err = p.execute(&scale("t3", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("throttling"), "{err}");
}

#[tokio::test]
async fn oversized_and_malformed_replies_are_refused() {
    let e = env().await;
    let mut c = cfg(&e);
    // Reading 32 MiB on a busy machine must not turn into a timeout.
    c.api_timeout = Some(Duration::from_secs(30));
    let (p, _) = started(c).await;
    // A pod list of 40 MiB (a valid JSON document) is cut off at the limit.
    let mut huge =
        br#"{"apiVersion":"v1","kind":"PodList","metadata":{},"items":[],"padding":""#.to_vec();
    huge.resize(huge.len() + (40 << 20), b'x');
    huge.extend_from_slice(br#""}"#);
    e.fake.reply_raw("list", "pods", 200, huge);
    let err = p.execute(&scale("o1", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Failed { .. }), "{err}");
    assert!(
        err.to_string().contains("larger than 33554432 bytes"),
        "{err}"
    );
    assert!(err.to_string().contains("list pods"), "{err}");
    e.fake
        .reply_raw("get", "deployments/scale", 200, "{\"spec\": [1, 2");
    let err = p.execute(&scale("o2", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Failed { .. }), "{err}");
    assert!(err.to_string().contains("malformed answer"), "{err}");
    e.fake.reply_raw(
        "get",
        "deployments",
        200,
        "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"}}",
    );
    let err = p.execute(&scale("o3", 3, 4)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Failed { .. }), "{err}");
    assert!(err.to_string().contains("metadata.uid is missing"), "{err}");
    // Nothing was changed, and the next call works.
    assert_eq!(replicas(&e.fake), 3);
    p.execute(&scale("o4", 3, 4)).await.unwrap();
    assert_eq!(replicas(&e.fake), 4);
}

// ------------------------------------------------------------ StatefulSet

async fn sts_env() -> Env {
    let fake = FakeKube::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = fake.write_kubeconfig(tmp.path(), NS, "fake");
    fake.add_statefulset(
        NS,
        "db",
        Seed {
            replicas: 3,
            image: "registry.example/db:v1",
            extra_labels: &[(QUARANTINE, "true")],
        },
    );
    fake.settle("statefulsets", NS, "db").await;
    Env {
        fake,
        tmp,
        kubeconfig,
    }
}

fn sts_cfg(e: &Env) -> KubernetesConfig {
    let mut c = cfg(e);
    c.kind = WorkloadKind::StatefulSet;
    c.name = "db".into();
    c.service = None;
    c
}

#[tokio::test]
async fn statefulset_scale_quarantine_redeploy_and_rollback() {
    let e = sts_env().await;
    let mut c = sts_cfg(&e);
    c.rollout_timeout = Some(Duration::from_secs(3));
    let (p, s) = started(c).await;
    assert_eq!(
        s.instances
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["db-0", "db-1", "db-2"]
    );
    p.execute(&scale("st1", 3, 4)).await.unwrap();
    assert_eq!(e.fake.count("update", "statefulsets/scale"), 1);
    e.fake.settle("statefulsets", NS, "db").await;
    assert!(pod_names(&e.fake).contains(&"db-3".to_string()));

    e.fake.inject("patch", "pods", 409, 1);
    p.execute(&req(
        "st2",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: "db-1".into(),
        },
    ))
    .await
    .unwrap();
    assert!(!obj_labels(&e.fake.get("pods", NS, "db-1").unwrap()).contains_key(QUARANTINE));
    p.execute(&req(
        "st3",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitClose {
            instance: "db-1".into(),
        },
    ))
    .await
    .unwrap();

    let out = p.execute(&redeploy("st4", Some("v2"))).await.unwrap();
    assert_eq!(out.rolled_back, None);
    assert!(e.fake.pods(NS).iter().all(|p| image_of(p).ends_with(":v2")));

    // A bad version stalls on the highest ordinal; the rollback restores the
    // template and evicts the stuck pod, which a StatefulSet does not replace by itself.
    let out = p.execute(&redeploy("st5", Some("v3-bad"))).await.unwrap();
    let why = out.rolled_back.expect("rolled back");
    assert!(why.contains("registry.example/db:v2"), "{why}");
    e.fake.settle("statefulsets", NS, "db").await;
    assert!(e
        .fake
        .pods(NS)
        .iter()
        .all(|p| image_of(p).ends_with(":v2") && is_ready(p)));
    assert!(e.fake.count("list", "controllerrevisions") >= 1);

    let out = p
        .execute(&req("st6", ActionKind::Redeploy, ProviderOp::Rollback))
        .await
        .unwrap();
    assert_eq!(out.after["version"], "v1");
    e.fake.settle("statefulsets", NS, "db").await;
    assert!(e.fake.pods(NS).iter().all(|p| image_of(p).ends_with(":v1")));
    p.execute(&req(
        "st7",
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: "db-0".into(),
        },
    ))
    .await
    .unwrap();

    // The permissions a StatefulSet target needs (docs/providers/kubernetes.md, rbac.yaml's comment).
    let want: std::collections::BTreeSet<(String, String)> = [
        ("get", "statefulsets"),
        ("patch", "statefulsets"),
        ("get", "statefulsets/scale"),
        ("update", "statefulsets/scale"),
        ("list", "controllerrevisions"),
        ("list", "pods"),
        ("get", "pods"),
        ("patch", "pods"),
        ("create", "pods/eviction"),
    ]
    .iter()
    .map(|(v, r)| (v.to_string(), r.to_string()))
    .collect();
    assert_eq!(e.fake.used(), want);
}

// ------------------------------------------------- the agent, end to end

const AGENT_RULES: &str = r#"
groups:
  - name: k8s
    interval: 1s
    rules:
      - name: k8s-scale-out
        queries: { load: control_load }
        when: load > 10
        for: 0s
        cooldown: 1s
        action: { kind: scale_out, target: web, step: 1 }
"#;

fn agent_target(kubeconfig: &std::path::Path) -> String {
    format!(
        r#"  web:
    provider: kubernetes
    min: 1
    max: 6
    cooldown_up: 1s
    cooldown_down: 1s
    kubernetes:
      name: web
      namespace: {NS}
      kubeconfig: {kc}
      context: fake
      api_timeout: 2s
      poll_interval: 200ms
      quarantine_label: {QUARANTINE}
      service: web
"#,
        kc = kubeconfig.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_scales_the_deployment_out() {
    let e = env_with(2).await;
    let control = ControlExporter::start(&[("control_load", 0.0)]).await;
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: agent_target(&e.kubeconfig),
        extra_jobs_yaml: String::new(),
        rules_yaml: AGENT_RULES.into(),
    });
    h.start().await;
    control.set("control_load", 20.0);
    let ok = h
        .wait_event("a scale-out succeeded", |ev| {
            ev.event == Some(EventKind::ActionSucceeded)
                && ev.rule.as_deref() == Some("k8s-scale-out")
        })
        .await;
    control.set("control_load", 0.0);
    let events = h.settled_events().await;
    let id = ok.action_id.clone().unwrap();
    assert_decided_started_succeeded(&events, &id);
    assert_eq!(ok.provider.as_deref(), Some("kubernetes"));
    let before = ok.before.clone().unwrap();
    let after = ok.after.clone().unwrap();
    assert_eq!(before["replicas"], 2, "{before}");
    assert_eq!(after["replicas"], 3, "{after}");
    assert_eq!(after["kind"], "Deployment");
    assert_eq!(after["namespace"], NS);
    // The fake's Deployment really changed, through the scale subresource.
    assert!(replicas(&e.fake) >= 3);
    assert!(e.fake.count("update", "deployments/scale") >= 1);
    until("the new pods", || {
        e.fake.pods(NS).len() as i64 == replicas(&e.fake)
    })
    .await;
    let (code, out) = audit_verify(&h.audit_dir());
    assert_eq!(code, 0, "{out}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_with_the_api_down_fails_with_the_cause_then_trips_the_breaker() {
    let e = env_with(2).await;
    let control = ControlExporter::start(&[("control_load", 0.0)]).await;
    let mut h = Harness::new(&Setup {
        control: control.addr,
        targets_yaml: agent_target(&e.kubeconfig),
        extra_jobs_yaml: String::new(),
        rules_yaml: AGENT_RULES.into(),
    });
    h.start().await;
    e.fake.set_down(true).await;
    control.set("control_load", 20.0);
    let failed = h
        .wait_event("a failed scale-out", |ev| {
            ev.event == Some(EventKind::ActionFailed)
        })
        .await;
    assert_eq!(
        failed.cause.as_deref(),
        Some("unavailable"),
        "{}",
        summarize(&failed)
    );
    let err = failed.error.clone().unwrap_or_default();
    assert!(err.contains("cannot reach the API server"), "{err}");
    assert_eq!(failed.detail.as_ref().unwrap()["attempts"], 3);
    // Repeated failures open the breaker: the next decisions are suppressed.
    let suppressed = h
        .wait_event("a suppression by the breaker", |ev| {
            ev.event == Some(EventKind::Suppressed)
                && ev.cause.as_deref() == Some("provider_unavailable")
        })
        .await;
    assert_eq!(suppressed.target.as_deref(), Some("web"));
    // The agent stays responsive meanwhile.
    let r = http().get(h.url("/-/healthy")).send().await.unwrap();
    assert!(r.status().is_success());
    let rules = h.get_json("/api/v1/rules").await;
    assert!(rules.to_string().contains("k8s-scale-out"));
    control.set("control_load", 0.0);
    assert_eq!(
        replicas(&e.fake),
        2,
        "nothing changed while the API was down"
    );
    h.stop().await;
}
