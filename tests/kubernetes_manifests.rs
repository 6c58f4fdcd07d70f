#![cfg(feature = "kubernetes")]
//! deploy/kubernetes/ checked for real:
//! - every manifest against the Kubernetes schemas with `kubernetes-validate
//!   --strict` (PyPI; CI installs it), for Kubernetes 1.33 (the API version
//!   the adapter is built for) and the tool's newest;
//! - the ServiceMonitor, for which kubernetes-validate has no schema (a CRD),
//!   against `schema/servicemonitor.schema.json` (written from the
//!   prometheus-operator CRD) with Python's `jsonschema`, plus its selector and
//!   port against the Service;
//! - the ConfigMap's config and rules with `homeostat check`;
//! - the Deployment's hardening and its wiring to the ConfigMap, Service and
//!   ServiceAccount;
//! - least privilege: every action kind runs against the fake API server
//!   with the ConfigMap's own target config, and the Role must grant exactly
//!   the (verb, resource) pairs the adapter called, no fewer and no more,
//!   with `resourceNames` covering every named call.
mod common;
mod fake_kube;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use fake_kube::{FakeKube, Seed};
use homeostat::model::{ActionKind, ActionRequest, ProviderError, ProviderOp};
use homeostat::providers::kubernetes::config::KubernetesConfig;
use homeostat::providers::kubernetes::KubernetesProvider;
use homeostat::providers::Provider;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// The manifest files (`*.yaml`), sorted.
fn files() -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    f.sort();
    f
}

/// Every document of every manifest, as JSON.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for f in files() {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if !v.is_null() {
                out.push((f.clone(), v));
            }
        }
    }
    out
}

fn one(kind: &str) -> Value {
    let found: Vec<Value> = documents()
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| v["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found.into_iter().next().unwrap()
}

fn str_of<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{ptr} missing in {v}"))
}

// ------------------------------------------------------- schema validation

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let Some(tool) = which("kubernetes-validate") else {
        available(
            false,
            "kubernetes-validate",
            "pip install kubernetes-validate",
        );
        return;
    };
    let docs = documents();
    let expected_passes = docs
        .iter()
        .filter(|(_, v)| v["kind"] != "ServiceMonitor")
        .count();
    let kinds: BTreeSet<&str> = docs
        .iter()
        .map(|(_, v)| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "ConfigMap",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    for version in [Some("1.33.0"), None] {
        let mut cmd = Command::new(&tool);
        cmd.arg("--strict");
        if let Some(v) = version {
            cmd.args(["-k", v]);
        }
        let out = cmd.args(files()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{version:?}:\n{stdout}{stderr}");
        let passed = stdout
            .lines()
            .filter(|l| l.starts_with("INFO ") && l.contains(" passed for resource "))
            .count();
        assert_eq!(passed, expected_passes, "{version:?}:\n{stdout}");
        for line in stdout.lines().filter(|l| !l.starts_with("INFO ")) {
            // The only document without a schema there is the CRD-based one,
            // validated by the next test.
            assert!(
                line.starts_with("WARN ")
                    && line.contains("servicemonitor.yaml")
                    && line.contains("kind ServiceMonitor"),
                "{version:?}: {line}"
            );
        }
    }
}

#[test]
fn the_service_monitor_validates_against_its_crd_schema_and_selects_the_service() {
    let have = Command::new("python3")
        .args(["-c", "import jsonschema, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available(
        have,
        "python3 with jsonschema and PyYAML",
        "pip install kubernetes-validate (brings both)",
    ) {
        return;
    }
    // The file must pass; a copy with a misspelt field and one with a bad
    // interval must not (the validator bites).
    let script = r#"
import json, sys, copy, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
doc = yaml.safe_load(open(sys.argv[2]))
v = jsonschema.Draft202012Validator(schema)
jsonschema.Draft202012Validator.check_schema(schema)
v.validate(doc)
bad1 = copy.deepcopy(doc); bad1["spec"]["endpoints"][0]["intervall"] = "30s"
bad2 = copy.deepcopy(doc); bad2["spec"]["endpoints"][0]["interval"] = "half a minute"
bad3 = copy.deepcopy(doc); del bad3["spec"]["selector"]
for bad in (bad1, bad2, bad3):
    if v.is_valid(bad):
        sys.exit("a broken ServiceMonitor was accepted: %r" % bad["spec"])
print("ok")
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir().join("schema/servicemonitor.schema.json"))
        .arg(dir().join("servicemonitor.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let sm = one("ServiceMonitor");
    let svc = one("Service");
    assert_eq!(sm["metadata"]["namespace"], svc["metadata"]["namespace"]);
    let svc_labels = svc["metadata"]["labels"].as_object().unwrap();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(svc_labels.get(k), Some(v), "ServiceMonitor selects {k}={v}");
    }
    let ports: Vec<&str> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for e in sm["spec"]["endpoints"].as_array().unwrap() {
        assert!(ports.contains(&e["port"].as_str().unwrap()), "{e}");
        assert_eq!(e["path"], "/metrics");
    }
}

// ---------------------------------------------------------- the ConfigMap

fn configmap_files(tmp: &Path) -> PathBuf {
    let cm = one("ConfigMap");
    for (k, v) in cm["data"].as_object().unwrap() {
        std::fs::write(tmp.join(k), v.as_str().unwrap()).unwrap();
    }
    tmp.join("homeostat.yaml")
}

#[test]
fn the_configmap_passes_homeostat_check() {
    let tmp = tempfile::tempdir().unwrap();
    let config = configmap_files(tmp.path());
    let out = Command::new(EXE)
        .arg("check")
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("4 rule"), "{text}");
}

// --------------------------------------------------------- the Deployment

#[test]
fn the_deployment_runs_locked_down_and_is_wired_to_the_rest() {
    let d = one("Deployment");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        d["spec"]["replicas"], 1,
        "no leader election yet: one agent"
    );
    // The image tag is this crate's version.
    let image = str_of(c, "/image");
    assert!(
        image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "{image}"
    );

    // Probes on the agent's port, which is the ConfigMap's listen port and the Service's target.
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(port, 9798);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], c["ports"][0]["name"]);
    let svc = one("Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], c["ports"][0]["name"]);
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&d["spec"]["template"]["metadata"]["labels"][k], v);
    }
    let tmp = tempfile::tempdir().unwrap();
    let config_text = std::fs::read_to_string(configmap_files(tmp.path())).unwrap();
    let config: Value = serde_yaml::from_str(&config_text).unwrap();
    assert!(
        str_of(&config, "/listen").ends_with(&format!(":{port}")),
        "{config}"
    );

    // The config volume holds the file `-c` names; data_dir is a mounted volume
    // (the root filesystem is read-only).
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_path = args[args.iter().position(|a| *a == "-c").unwrap() + 1];
    let mounts = c["volumeMounts"].as_array().unwrap();
    let volumes = pod["volumes"].as_array().unwrap();
    let volume_at = |path: &str| {
        let m = mounts
            .iter()
            .find(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("nothing mounted at {path}"));
        volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap()
            .clone()
    };
    let cfg_vol = volume_at(config_path);
    assert_eq!(
        cfg_vol["configMap"]["name"],
        one("ConfigMap")["metadata"]["name"]
    );
    let key = Path::new(config_path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(one("ConfigMap")["data"][key].is_string(), "{key}");
    let data_vol = volume_at(str_of(&config, "/data_dir"));
    assert!(data_vol["emptyDir"].is_object(), "{data_vol}");

    // Runs as the ServiceAccount the RoleBinding grants the Role to.
    let sa = one("ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    let rb = one("RoleBinding");
    assert_eq!(rb["roleRef"]["name"], one("Role")["metadata"]["name"]);
    assert_eq!(rb["subjects"][0]["name"], sa["metadata"]["name"]);
    assert_eq!(rb["subjects"][0]["namespace"], sa["metadata"]["namespace"]);
    // All in one namespace.
    let ns: BTreeSet<String> = documents()
        .iter()
        .map(|(_, v)| str_of(v, "/metadata/namespace").to_string())
        .collect();
    assert_eq!(ns.len(), 1, "{ns:?}");
}

// ---------------------------------------------------------- least privilege

/// The Role's grants: (group, verb, resource) → resourceNames (empty: any).
fn role_grants() -> BTreeMap<(String, String, String), BTreeSet<String>> {
    let role = one("Role");
    let mut out: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().unwrap() {
        let list = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        for g in list("apiGroups") {
            for r in list("resources") {
                for v in list("verbs") {
                    assert!(g != "*" && r != "*" && v != "*", "wildcard in the Role");
                    let key = (g.clone(), v, r.clone());
                    assert!(!out.contains_key(&key), "{key:?} granted twice");
                    out.insert(key, list("resourceNames").into_iter().collect());
                }
            }
        }
    }
    out
}

fn req(id: &str, kind: ActionKind, op: ProviderOp) -> ActionRequest {
    ActionRequest {
        action_id: id.into(),
        target: "checkout".into(),
        kind,
        op,
        rule: "rbac".into(),
    }
}

#[tokio::test]
async fn the_role_grants_exactly_what_the_adapter_uses() {
    // The ConfigMap's own target block, pointed at the fake.
    let tmp = tempfile::tempdir().unwrap();
    let config: Value =
        serde_yaml::from_str(&std::fs::read_to_string(configmap_files(tmp.path())).unwrap())
            .unwrap();
    let (target, block) = config["targets"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(block["provider"], "kubernetes");
    let mut cfg: KubernetesConfig = serde_json::from_value(block["kubernetes"].clone()).unwrap();
    let ns = str_of(&one("Role"), "/metadata/namespace").to_string();
    assert!(
        cfg.namespace.is_none(),
        "the service account's namespace is used"
    );
    let label = cfg.quarantine_label.clone().expect("quarantine_label");
    let service = cfg.service.clone().expect("service");

    let fake = FakeKube::start().await;
    cfg.kubeconfig = Some(fake.write_kubeconfig(tmp.path(), &ns, "fake"));
    // Only timing changes: a stalled rollout is given up quickly here.
    cfg.rollout_timeout = Some(Duration::from_millis(1500));
    cfg.poll_interval = Some(Duration::from_millis(50));
    fake.add_deployment(
        &ns,
        &cfg.name,
        Seed {
            replicas: 3,
            image: "registry.example/checkout:v1",
            extra_labels: &[(label.as_str(), "true")],
        },
    );
    fake.add_service(
        &ns,
        &service,
        &[("app", cfg.name.as_str()), (label.as_str(), "true")],
    );
    fake.settle("deployments", &ns, &cfg.name).await;

    // Every op kind, including the paths a 409 takes.
    let p = KubernetesProvider::new(target.clone(), cfg.clone()).unwrap();
    let s = p.start().await.unwrap();
    p.state().await.unwrap();
    fake.inject("update", "deployments/scale", 409, 1);
    p.execute(&req(
        "a1",
        ActionKind::ScaleOut,
        ProviderOp::SetReplicas { from: 3, to: 4 },
    ))
    .await
    .unwrap();
    p.execute(&req(
        "a2",
        ActionKind::ScaleIn,
        ProviderOp::SetReplicas { from: 4, to: 3 },
    ))
    .await
    .unwrap();
    let pod = s.instances[0].id.clone();
    fake.inject("patch", "pods", 409, 1);
    p.execute(&req(
        "a3",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitOpen {
            instance: pod.clone(),
        },
    ))
    .await
    .unwrap();
    p.execute(&req(
        "a4",
        ActionKind::CircuitBreak,
        ProviderOp::CircuitClose {
            instance: pod.clone(),
        },
    ))
    .await
    .unwrap();
    p.execute(&req(
        "a5",
        ActionKind::Failover,
        ProviderOp::Replace {
            instance: s.instances[1].id.clone(),
        },
    ))
    .await
    .unwrap();
    let restart = ProviderOp::Redeploy {
        version: None,
        command: None,
        env: BTreeMap::new(),
    };
    fake.inject("patch", "deployments", 409, 1);
    p.execute(&req("a6", ActionKind::Redeploy, restart))
        .await
        .unwrap();
    let bad = ProviderOp::Redeploy {
        version: Some("v2-bad".into()),
        command: None,
        env: BTreeMap::from([("MODE".to_string(), "x".to_string())]),
    };
    let out = p
        .execute(&req("a7", ActionKind::Redeploy, bad.clone()))
        .await
        .unwrap();
    assert!(out.rolled_back.is_some());
    p.execute(&req("a8", ActionKind::Redeploy, ProviderOp::Rollback))
        .await
        .unwrap();
    for r in [
        req(
            "a1",
            ActionKind::ScaleOut,
            ProviderOp::SetReplicas { from: 3, to: 4 },
        ),
        req(
            "a9",
            ActionKind::Failover,
            ProviderOp::Replace {
                instance: pod.clone(),
            },
        ),
        req(
            "a10",
            ActionKind::CircuitBreak,
            ProviderOp::CircuitOpen {
                instance: pod.clone(),
            },
        ),
        req("a7", ActionKind::Redeploy, bad),
        req("a11", ActionKind::Redeploy, ProviderOp::Rollback),
    ] {
        let fresh = KubernetesProvider::new(target.clone(), cfg.clone()).unwrap();
        fresh.start().await.unwrap();
        fresh.reconcile(&r).await.unwrap();
    }
    // A permission the Role lacks is named in the error.
    fake.forbid("create", "pods/eviction");
    let live = fake_kube::obj_name(&fake.pods(&ns)[0]);
    let err = p
        .execute(&req(
            "a12",
            ActionKind::Failover,
            ProviderOp::Replace { instance: live },
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::PermissionDenied { .. }),
        "{err}"
    );

    let grants = role_grants();
    let granted: BTreeSet<(String, String)> = grants
        .keys()
        .map(|(_, v, r)| (v.clone(), r.clone()))
        .collect();
    let used = fake.used();
    assert_eq!(
        granted,
        used,
        "Role vs calls.\nonly granted: {:?}\nonly used: {:?}",
        granted.difference(&used).collect::<Vec<_>>(),
        used.difference(&granted).collect::<Vec<_>>()
    );
    for call in fake.calls() {
        assert_eq!(call.namespace, ns, "{call:?}");
        let key = (call.group.clone(), call.verb.clone(), call.resource.clone());
        let names = grants
            .get(&key)
            .unwrap_or_else(|| panic!("{call:?} is not granted for its API group"));
        if !names.is_empty() {
            let name = call.name.clone().unwrap_or_default();
            assert!(
                names.contains(&name),
                "{call:?} outside resourceNames {names:?}"
            );
        }
    }
}
