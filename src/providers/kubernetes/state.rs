//! Pure functions over Kubernetes objects: the adapter's view of a workload
//! and its pods, label selectors, rollout progress (kubectl's rules), the
//! template a redeploy writes, the merge patch between two templates, the
//! revision a rollback returns to, and what a started action did.
//!
//! Owns no I/O and no state; everything here is a function of its arguments,
//! so it is unit-tested without an API server.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::{json, Map, Value};

use super::config::WorkloadKind;
use crate::model::{InstanceInfo, Reconciliation};

/// Template annotation: the action id of the redeploy that wrote the template.
pub const ACTION_ANNOTATION: &str = "homeostat.io/action-id";
/// Template annotation `kubectl rollout restart` sets; a new value restarts every pod.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Pod annotation holding the quarantine label's value while the label is removed.
pub const QUARANTINE_ANNOTATION: &str = "homeostat.io/quarantined";
/// Workload annotation: the redeploy action whose stalled rollout was rolled back.
pub const ROLLED_BACK_ANNOTATION: &str = "homeostat.io/rolled-back-action";
/// Workload annotation: the rollback action that wrote the current template.
pub const ROLLBACK_ANNOTATION: &str = "homeostat.io/rollback-action";
/// Revision number of a Deployment and its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Label the Deployment controller adds to its ReplicaSets' templates.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The parts of a Deployment or StatefulSet the adapter uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub generation: i64,
    pub annotations: BTreeMap<String, String>,
    /// `spec.replicas` (the API's default, 1, when unset).
    pub replicas: u32,
    pub selector: LabelSelector,
    /// `spec.template` (a PodTemplateSpec) as JSON, for diffs and patches.
    pub template: Value,
    pub status: WorkloadStatus,
}

/// Rollout-relevant status fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadStatus {
    pub observed_generation: i64,
    pub replicas: u32,
    pub updated: u32,
    pub ready: u32,
    pub available: u32,
    /// StatefulSet only.
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    /// Deployment condition Progressing=False/ProgressDeadlineExceeded, its message.
    pub deadline_exceeded: Option<String>,
}

fn count(v: Option<i32>) -> u32 {
    v.unwrap_or(0).max(0) as u32
}

fn meta_parts(meta: &ObjectMeta) -> Result<(String, String, String, i64), String> {
    let name = meta.name.clone().ok_or("metadata.name is missing")?;
    let uid = meta.uid.clone().ok_or("metadata.uid is missing")?;
    let rv = meta
        .resource_version
        .clone()
        .ok_or("metadata.resourceVersion is missing")?;
    Ok((name, uid, rv, meta.generation.unwrap_or(0)))
}

impl Workload {
    pub fn from_deployment(d: Deployment) -> Result<Self, String> {
        let (name, uid, resource_version, generation) = meta_parts(&d.metadata)?;
        let spec = d.spec.ok_or("spec is missing")?;
        let status = d.status.unwrap_or_default();
        let deadline_exceeded = status.conditions.as_ref().and_then(|cs| {
            cs.iter()
                .find(|c| {
                    c.type_ == "Progressing"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                })
                .map(|c| c.message.clone().unwrap_or_default())
        });
        Ok(Self {
            kind: WorkloadKind::Deployment,
            name,
            uid,
            resource_version,
            generation,
            annotations: d.metadata.annotations.unwrap_or_default(),
            replicas: count(Some(spec.replicas.unwrap_or(1))),
            selector: spec.selector,
            template: serde_json::to_value(&spec.template).map_err(|e| e.to_string())?,
            status: WorkloadStatus {
                observed_generation: status.observed_generation.unwrap_or(0),
                replicas: count(status.replicas),
                updated: count(status.updated_replicas),
                ready: count(status.ready_replicas),
                available: count(status.available_replicas),
                current_revision: None,
                update_revision: None,
                deadline_exceeded,
            },
        })
    }

    pub fn from_statefulset(s: StatefulSet) -> Result<Self, String> {
        let (name, uid, resource_version, generation) = meta_parts(&s.metadata)?;
        let spec = s.spec.ok_or("spec is missing")?;
        let status = s.status.unwrap_or_default();
        Ok(Self {
            kind: WorkloadKind::StatefulSet,
            name,
            uid,
            resource_version,
            generation,
            annotations: s.metadata.annotations.unwrap_or_default(),
            replicas: count(Some(spec.replicas.unwrap_or(1))),
            selector: spec.selector,
            template: serde_json::to_value(&spec.template).map_err(|e| e.to_string())?,
            status: WorkloadStatus {
                observed_generation: status.observed_generation.unwrap_or(0),
                replicas: count(Some(status.replicas)),
                updated: count(status.updated_replicas),
                ready: count(status.ready_replicas),
                available: count(status.available_replicas),
                current_revision: status.current_revision,
                update_revision: status.update_revision,
                deadline_exceeded: None,
            },
        })
    }

    /// `Deployment shop/web` for messages.
    pub fn describe(&self, namespace: &str) -> String {
        format!("{:?} {namespace}/{}", self.kind, self.name)
    }

    pub fn template_labels(&self) -> BTreeMap<String, String> {
        string_map(self.template.pointer("/metadata/labels"))
    }

    pub fn template_annotations(&self) -> BTreeMap<String, String> {
        string_map(self.template.pointer("/metadata/annotations"))
    }

    /// The container a redeploy changes: by name, else the first.
    pub fn container<'a>(&'a self, name: Option<&str>) -> Option<&'a Value> {
        container_in(&self.template, name)
    }

    /// Image of the configured container.
    pub fn image(&self, container: Option<&str>) -> Option<String> {
        container_image(&self.template, container)
    }

    /// The pod port to scrape: configured, else the container port named
    /// `metrics`, else the container's first port.
    pub fn metrics_port(&self, configured: Option<u16>, container: Option<&str>) -> Option<u16> {
        if configured.is_some() {
            return configured;
        }
        let ports = self.container(container)?.get("ports")?.as_array()?;
        let port_of = |p: &Value| {
            p.get("containerPort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
        };
        ports
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some("metrics"))
            .or_else(|| ports.first())
            .and_then(port_of)
    }

    /// The workload's revision: a Deployment's revision annotation (a number).
    pub fn revision(&self) -> Option<i64> {
        self.annotations.get(REVISION).and_then(|r| r.parse().ok())
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Image of a pod template's container (by name, else the first).
pub fn container_image(template: &Value, container: Option<&str>) -> Option<String> {
    container_in(template, container)
        .and_then(|c| c.get("image"))
        .and_then(Value::as_str)
        .map(String::from)
}

fn container_in<'a>(template: &'a Value, name: Option<&str>) -> Option<&'a Value> {
    let containers = template.pointer("/spec/containers")?.as_array()?;
    match name {
        Some(n) => containers
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(n)),
        None => containers.first(),
    }
}

/// A label selector in the API's query syntax (`app=web,tier in (a,b)`).
pub fn selector_string(sel: &LabelSelector) -> Result<String, String> {
    let mut parts = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(format!("unknown selector operator {other:?}")),
        });
    }
    if parts.is_empty() {
        return Err("the selector is empty (it would select every pod)".into());
    }
    Ok(parts.join(","))
}

/// Every label key a selector looks at.
pub fn selector_keys(sel: &LabelSelector) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    keys.extend(
        sel.match_expressions
            .iter()
            .flatten()
            .map(|e| e.key.clone()),
    );
    keys
}

/// Why `quarantine_label` cannot take pods out of traffic safely, if it cannot.
pub fn check_quarantine(
    w: &Workload,
    namespace: &str,
    label: &str,
    service: Option<(&str, &Service)>,
) -> Result<(), String> {
    let what = w.describe(namespace);
    if selector_keys(&w.selector).contains(label) {
        return Err(format!(
            "quarantine_label {label:?} is in the selector of {what}: removing it from a pod would orphan the pod \
             and the controller would start a replacement. Use a label the Service selects on but the workload's selector does not"
        ));
    }
    let labels = w.template_labels();
    let Some(value) = labels.get(label) else {
        return Err(format!(
            "quarantine_label {label:?} is not a label of {what}'s pod template: a Service selecting on it would select no pod"
        ));
    };
    if let Some((name, svc)) = service {
        let selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        match selector.get(label) {
            None => {
                return Err(format!(
                    "Service {namespace}/{name} does not select on quarantine_label {label:?}: removing it from a pod \
                     would not take the pod out of the Service's endpoints"
                ))
            }
            Some(v) if v != value => {
                return Err(format!(
                    "Service {namespace}/{name} selects {label}={v} but {what}'s pods carry {label}={value}"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Where a rollout stands, by kubectl's `rollout status` rules.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Complete,
    Waiting(String),
    Failed(String),
}

pub fn progress(w: &Workload) -> Progress {
    let s = &w.status;
    if s.observed_generation < w.generation {
        return Progress::Waiting(format!(
            "the controller has not seen generation {} yet (observed {})",
            w.generation, s.observed_generation
        ));
    }
    if let Some(msg) = &s.deadline_exceeded {
        return Progress::Failed(format!("progress deadline exceeded: {msg}"));
    }
    match w.kind {
        WorkloadKind::Deployment => {
            if s.updated < w.replicas {
                Progress::Waiting(format!("{} of {} updated replicas", s.updated, w.replicas))
            } else if s.replicas > s.updated {
                Progress::Waiting(format!(
                    "{} old replicas pending termination",
                    s.replicas - s.updated
                ))
            } else if s.available < s.updated {
                Progress::Waiting(format!(
                    "{} of {} updated replicas available",
                    s.available, s.updated
                ))
            } else {
                Progress::Complete
            }
        }
        WorkloadKind::StatefulSet => {
            if s.ready < w.replicas {
                Progress::Waiting(format!("{} of {} pods ready", s.ready, w.replicas))
            } else if s.update_revision.is_some() && s.update_revision != s.current_revision {
                Progress::Waiting(format!(
                    "{} of {} pods updated to revision {}",
                    s.updated,
                    w.replicas,
                    s.update_revision.as_deref().unwrap_or("")
                ))
            } else {
                Progress::Complete
            }
        }
    }
}

/// The tag (or digest) of an image reference; `latest` when it has neither.
pub fn image_tag(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        return digest.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag.to_string(),
        None => "latest".to_string(),
    }
}

fn is_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && (s.as_bytes()[0].is_ascii_alphanumeric() || s.as_bytes()[0] == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `image` moved to `version`: a tag replaces the tag (or digest); a value
/// with `/`, `:` or `@` is taken as a whole image reference.
pub fn with_version(image: &str, version: &str) -> Result<String, String> {
    if version.contains(['/', ':', '@']) {
        if version.is_empty() || version.chars().any(char::is_whitespace) {
            return Err(format!(
                "version {version:?} is not a valid image reference"
            ));
        }
        return Ok(version.to_string());
    }
    if !is_tag(version) {
        return Err(format!(
            "version {version:?} is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"
        ));
    }
    let repo = image.split_once('@').map_or(image, |(r, _)| r);
    let slash = repo.rfind('/').map_or(0, |i| i + 1);
    let repo = match repo[slash..].rfind(':') {
        Some(i) => &repo[..slash + i],
        None => repo,
    };
    Ok(format!("{repo}:{version}"))
}

/// What a redeploy changes in the pod template.
#[derive(Debug, Clone, Copy)]
pub struct TemplateChange<'a> {
    pub version: Option<&'a str>,
    pub command: Option<&'a [String]>,
    pub env: &'a BTreeMap<String, String>,
    pub restarted_at: &'a str,
    pub action_id: &'a str,
}

/// `template` with the change applied to `container` (name; default the first).
pub fn changed_template(
    template: &Value,
    container: Option<&str>,
    change: TemplateChange<'_>,
) -> Result<Value, String> {
    let mut t = template.clone();
    let obj = t
        .as_object_mut()
        .ok_or("the pod template is not an object")?;
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("template metadata is not an object")?;
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("template annotations are not an object")?;
    annotations.insert(RESTARTED_AT.into(), json!(change.restarted_at));
    annotations.insert(ACTION_ANNOTATION.into(), json!(change.action_id));

    let containers = t
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
        .ok_or("the pod template has no containers")?;
    let idx = match container {
        Some(name) => containers
            .iter()
            .position(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| format!("the pod template has no container {name:?}"))?,
        None if containers.is_empty() => return Err("the pod template has no containers".into()),
        None => 0,
    };
    let c = containers[idx]
        .as_object_mut()
        .ok_or("a container is not an object")?;
    if let Some(v) = change.version {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        c.insert("image".into(), json!(with_version(image, v)?));
    }
    if let Some(cmd) = change.command {
        if cmd.is_empty() {
            return Err("command is empty".into());
        }
        c.insert("command".into(), json!(cmd));
        // The op's command is the whole argv.
        c.remove("args");
    }
    if !change.env.is_empty() {
        let env = c
            .entry("env")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or("container env is not a list")?;
        for (k, v) in change.env {
            let entry = json!({"name": k, "value": v});
            match env
                .iter_mut()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(k.as_str()))
            {
                Some(e) => *e = entry,
                None => env.push(entry),
            }
        }
    }
    Ok(t)
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`: keys only in
/// `from` become `null`, objects are diffed recursively, anything else is
/// replaced whole. `None` if they are equal.
pub fn merge_diff(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for k in a.keys() {
                if !b.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            for (k, bv) in b {
                match a.get(k) {
                    None => {
                        patch.insert(k.clone(), bv.clone());
                    }
                    Some(av) => {
                        if let Some(d) = merge_diff(av, bv) {
                            patch.insert(k.clone(), d);
                        }
                    }
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if from == to => None,
        _ => Some(to.clone()),
    }
}

fn owned_by(refs: &Option<Vec<OwnerReference>>, uid: &str) -> bool {
    refs.iter()
        .flatten()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

/// A revision to roll back to: its number and pod template.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub number: i64,
    pub template: Value,
}

/// Was `template` written by the redeploy `rolled_back` (whose rollout was undone)?
fn written_by(template: &Value, rolled_back: Option<&str>) -> bool {
    rolled_back.is_some_and(|id| {
        template
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ACTION_ANNOTATION))
            .and_then(Value::as_str)
            == Some(id)
    })
}

/// The revision before `current` among the Deployment's ReplicaSets (what
/// `kubectl rollout undo` picks), its template without `pod-template-hash`;
/// a revision written by the redeploy `rolled_back` (whose rollout homeostat
/// undid) is skipped, so a rollback never returns to a known-bad version.
pub fn previous_replicaset(
    rses: &[ReplicaSet],
    owner_uid: &str,
    current: i64,
    rolled_back: Option<&str>,
) -> Option<Revision> {
    rses.iter()
        .filter(|rs| owned_by(&rs.metadata.owner_references, owner_uid))
        .filter_map(|rs| {
            let n: i64 = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()?;
            let mut template = serde_json::to_value(rs.spec.as_ref()?.template.as_ref()?).ok()?;
            if let Some(labels) = template
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                labels.remove(POD_TEMPLATE_HASH);
            }
            (n < current && !written_by(&template, rolled_back)).then_some(Revision {
                number: n,
                template,
            })
        })
        .max_by_key(|r| r.number)
}

/// The revision before the StatefulSet's update revision among its
/// ControllerRevisions (their `data` is `{"spec":{"template":{…,"$patch":"replace"}}}`),
/// skipping one written by the rolled-back redeploy as above.
pub fn previous_controller_revision(
    crs: &[ControllerRevision],
    owner_uid: &str,
    update_revision: Option<&str>,
    rolled_back: Option<&str>,
) -> Option<Revision> {
    let owned: Vec<&ControllerRevision> = crs
        .iter()
        .filter(|cr| owned_by(&cr.metadata.owner_references, owner_uid))
        .collect();
    let current = match update_revision {
        Some(name) => owned
            .iter()
            .find(|cr| cr.metadata.name.as_deref() == Some(name))
            .map(|cr| cr.revision)?,
        None => owned.iter().map(|cr| cr.revision).max()?,
    };
    owned
        .iter()
        .filter(|cr| cr.revision < current)
        .filter_map(|cr| {
            let mut template = cr.data.as_ref()?.0.pointer("/spec/template")?.clone();
            template.as_object_mut()?.remove("$patch");
            (!written_by(&template, rolled_back)).then_some(Revision {
                number: cr.revision,
                template,
            })
        })
        .max_by_key(|r| r.number)
}

/// Is the pod being deleted?
pub fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

pub fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

pub fn pod_annotations(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.annotations.clone().unwrap_or_default()
}

/// Out of the Service's endpoints through the quarantine label?
pub fn quarantined(pod: &Pod, label: Option<&str>) -> bool {
    label.is_some_and(|l| !pod_labels(pod).contains_key(l))
}

/// Image of the pod's configured container (by name, else the first).
pub fn pod_image(pod: &Pod, container: Option<&str>) -> Option<String> {
    let cs = &pod.spec.as_ref()?.containers;
    let c = match container {
        Some(n) => cs.iter().find(|c| c.name == n)?,
        None => cs.first()?,
    };
    c.image.clone()
}

/// How pods become [`InstanceInfo`]s.
#[derive(Debug, Clone, Copy)]
pub struct PodView<'a> {
    pub metrics_port: Option<u16>,
    pub quarantine_label: Option<&'a str>,
    pub container: Option<&'a str>,
}

/// A pod as an instance; `None` for a pod being deleted.
pub fn instance(pod: &Pod, view: PodView<'_>) -> Option<InstanceInfo> {
    if terminating(pod) {
        return None;
    }
    let name = pod_name(pod).to_string();
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    let address = match (ip, view.metrics_port) {
        (Some(ip), Some(port)) => Some(format!("{ip}:{port}")),
        _ => None,
    };
    Some(InstanceInfo {
        id: name.clone(),
        address,
        healthy: pod_ready(pod),
        in_traffic: !quarantined(pod, view.quarantine_label),
        version: pod_image(pod, view.container).map(|i| image_tag(&i)),
        labels: BTreeMap::from([("pod".to_string(), name)]),
    })
}

/// The pod an op names: its name, or `ip:port` / `ip` (the scraper's
/// `instance` label).
pub fn find_pod<'a>(pods: &'a [Pod], instance: &str, metrics_port: Option<u16>) -> Option<&'a Pod> {
    if let Some(p) = pods.iter().find(|p| pod_name(p) == instance) {
        return Some(p);
    }
    let (ip, port) = match instance.rsplit_once(':') {
        Some((ip, port)) => (ip, port.parse::<u16>().ok()),
        None => (instance, None),
    };
    if port.is_some() && metrics_port.is_some() && port != metrics_port {
        return None;
    }
    pods.iter().find(|p| {
        !terminating(p) && p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(ip)
    })
}

/// Did a scale from `from` to `to` happen, given the scale's spec.replicas now?
pub fn reconcile_scale(now: u32, from: u32, to: u32) -> Reconciliation {
    if now == to {
        Reconciliation::Applied
    } else if now == from {
        Reconciliation::NotApplied
    } else {
        Reconciliation::Unknown
    }
}

/// Did a circuit op reach its goal (`want_in_traffic`) on `pod` (`None`: gone)?
pub fn reconcile_circuit(pod: Option<&Pod>, label: &str, want_in_traffic: bool) -> Reconciliation {
    match pod {
        None => Reconciliation::Unknown,
        Some(p) if terminating(p) => Reconciliation::Unknown,
        Some(p) => {
            let in_traffic = !quarantined(p, Some(label));
            if in_traffic == want_in_traffic {
                Reconciliation::Applied
            } else {
                Reconciliation::NotApplied
            }
        }
    }
}

/// Was the pod named by a failover taken down? A Deployment's pods never
/// come back under the same name; a StatefulSet's do, so a live pod of that
/// name proves nothing there.
pub fn reconcile_replace(pod: Option<&Pod>, kind: WorkloadKind) -> Reconciliation {
    match pod {
        None => Reconciliation::Applied,
        Some(p) if terminating(p) => Reconciliation::Applied,
        Some(_) if kind == WorkloadKind::StatefulSet => Reconciliation::Unknown,
        Some(_) => Reconciliation::NotApplied,
    }
}

/// Did the redeploy `action_id` take effect? Its template carries the action
/// id; a completed rollout of it is applied, one still rolling is unknown.
pub fn reconcile_redeploy(w: &Workload, action_id: &str) -> Reconciliation {
    if w.annotations
        .get(ROLLED_BACK_ANNOTATION)
        .map(String::as_str)
        == Some(action_id)
    {
        return Reconciliation::NotApplied;
    }
    if w.template_annotations()
        .get(ACTION_ANNOTATION)
        .map(String::as_str)
        != Some(action_id)
    {
        return Reconciliation::NotApplied;
    }
    match progress(w) {
        Progress::Complete => Reconciliation::Applied,
        _ => Reconciliation::Unknown,
    }
}

/// Did the rollback `action_id` write the current template?
pub fn reconcile_rollback(w: &Workload, action_id: &str) -> Reconciliation {
    if w.annotations.get(ROLLBACK_ANNOTATION).map(String::as_str) == Some(action_id) {
        Reconciliation::Applied
    } else {
        Reconciliation::NotApplied
    }
}

/// The workload and its pods for the audit log's `before` / `after`.
pub fn summary(w: &Workload, pods: &[Pod], namespace: &str, view: PodView<'_>) -> Value {
    let mut instances: Vec<InstanceInfo> = pods.iter().filter_map(|p| instance(p, view)).collect();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    json!({
        "kind": format!("{:?}", w.kind),
        "namespace": namespace,
        "name": w.name,
        "replicas": w.replicas,
        "ready": w.status.ready,
        "updated": w.status.updated,
        "generation": w.generation,
        "revision": w.annotations.get(REVISION).cloned().or_else(|| w.status.update_revision.clone()),
        "image": w.image(view.container),
        "version": w.image(view.container).map(|i| image_tag(&i)),
        "instances": instances.iter().map(|i| json!({
            "id": i.id,
            "ready": i.healthy,
            "in_traffic": i.in_traffic,
            "version": i.version,
        })).collect::<Vec<_>>(),
    })
}
