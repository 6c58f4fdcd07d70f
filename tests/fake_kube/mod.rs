//! An in-process fake of the Kubernetes API server: exactly the endpoints the
//! `kubernetes` provider calls, with their real semantics, because no API
//! server can run on this machine.
//!
//! Implemented (namespaced; JSON; `Authorization: Bearer <token>` required):
//! - `GET` deployments / statefulsets / pods / services by name;
//! - `GET` lists of pods, replicasets and controllerrevisions with a
//!   `labelSelector` (`k=v`, `k==v`, `k!=v`, `k in (..)`, `k notin (..)`, `k`, `!k`);
//! - `GET` / `PUT` the `scale` subresource of deployments and statefulsets
//!   (autoscaling/v1 Scale; a stale `metadata.resourceVersion` is a 409);
//! - `PATCH` deployments, statefulsets and pods with a JSON merge patch
//!   (RFC 7386; `metadata.resourceVersion` in the patch is a precondition;
//!   other patch types are answered 415); immutable selectors, template labels
//!   that do not match the selector, empty containers: 422;
//! - `POST pods/{name}/eviction` (policy/v1) honouring PodDisruptionBudgets
//!   (`minAvailable` / `maxUnavailable`, integer or percent; 429 with a
//!   `DisruptionBudget` cause when it would go below zero; 500 for a pod with
//!   two budgets, as the real server);
//! - `DELETE pods/{name}` with a uid precondition.
//!
//! Every object carries `metadata.resourceVersion` (one global counter,
//! bumped on every change) and workloads a `metadata.generation` (bumped on
//! spec changes). Missing objects are 404s with a `Status` body, unknown
//! paths 404, watch is not implemented (501), neither is any verb the
//! adapter does not use (501, so a test notices a new call).
//!
//! Controllers run after every write and every 20 ms: a Deployment controller
//! (a ReplicaSet per template with the `deployment.kubernetes.io/revision`
//! annotation, rolling update with maxSurge 1 / maxUnavailable 0, rollback to
//! an old template re-using its ReplicaSet with a new revision), a
//! ReplicaSet controller (creates and deletes pods, releases pods whose labels
//! no longer match its selector, adopts orphans that do), a StatefulSet
//! controller (ordered pods `<name>-<i>`, ControllerRevisions, rolling update
//! from the highest ordinal, waiting for every pod to be Ready, so a broken
//! pod stalls it as in a real cluster), and the kubelet's part: a pod becomes
//! Running and Ready one tick after it is created, unless one of its images
//! contains `bad` (never Ready); a deleted or evicted pod terminates (gone)
//! one tick later.
//!
//! Faults: down (the port stops accepting and open connections are cut),
//! 403 for a (verb, resource), any status for the next N calls of a (verb,
//! resource) (409 conflicts, 503 …), and a delay before every answer.
//! Every request is recorded as (verb, resource[/subresource], name).
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sha2::Digest;

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub verb: String,
    /// As RBAC names it: `pods`, `pods/eviction`, `deployments/scale`.
    pub resource: String,
    /// API group (`""` for the core group, `apps`, …).
    pub group: String,
    pub namespace: String,
    pub name: Option<String>,
}

#[derive(Default)]
struct Faults {
    forbidden: BTreeSet<(String, String)>,
    /// (verb, resource) → statuses to answer the next calls with.
    inject: BTreeMap<(String, String), VecDeque<u16>>,
    delay: Duration,
    /// (verb, resource) → how long to hold the answer after doing the work
    /// (the client may time out although the change happened).
    slow_after: BTreeMap<(String, String), Duration>,
    /// (verb, resource) → raw answers (status, body) for the next calls.
    raw: BTreeMap<(String, String), VecDeque<(u16, Bytes)>>,
}

/// Object key: (resource, namespace, name).
type Key = (String, String, String);

struct World {
    rv: u64,
    seq: u64,
    tick: u64,
    objects: BTreeMap<Key, Value>,
    /// Pod uid → tick it was created / tick it started terminating.
    born: HashMap<String, u64>,
    dying: HashMap<String, u64>,
}

struct Shared {
    world: Mutex<World>,
    faults: Mutex<Faults>,
    calls: Mutex<Vec<Call>>,
    token: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fake API server, serving on `addr` until dropped.
pub struct FakeKube {
    pub addr: SocketAddr,
    pub token: String,
    shared: Arc<Shared>,
    proxy: Arc<Proxy>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.proxy.stop();
        for t in &self.tasks {
            t.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// The front door: a TCP proxy that can be taken down and brought back on the
// same port, cutting open (keep-alive) connections, like a dead API server.
// ---------------------------------------------------------------------------

struct Proxy {
    public: SocketAddr,
    backend: SocketAddr,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn bind(public: SocketAddr, backend: SocketAddr) -> Arc<Self> {
        let p = Arc::new(Proxy {
            public,
            backend,
            accept: Mutex::new(None),
            conns: Arc::new(Mutex::new(Vec::new())),
        });
        p.start().await;
        p
    }

    async fn start(&self) {
        let listener = tokio::net::TcpListener::bind(self.public)
            .await
            .expect("fake kube: bind the public port");
        let backend = self.backend;
        let conns = self.conns.clone();
        let h = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let c = tokio::spawn(async move {
                    if let Ok(mut b) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut sock, &mut b).await;
                    }
                });
                let mut conns = lock(&conns);
                conns.retain(|c| !c.is_finished());
                conns.push(c);
            }
        });
        *lock(&self.accept) = Some(h);
    }

    fn stop(&self) {
        if let Some(h) = lock(&self.accept).take() {
            h.abort();
        }
        for c in lock(&self.conns).drain(..) {
            c.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// Small JSON helpers.
// ---------------------------------------------------------------------------

fn str_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn labels(o: &Value) -> BTreeMap<String, String> {
    str_map(o.pointer("/metadata/labels"))
}

fn annotations(o: &Value) -> BTreeMap<String, String> {
    str_map(o.pointer("/metadata/annotations"))
}

fn uid(o: &Value) -> String {
    o.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn name_of(o: &Value) -> String {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn int(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn controller_uid(o: &Value) -> Option<String> {
    o.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid")?.as_str().map(String::from))
}

fn terminating(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp").is_some()
}

fn pod_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn set_annotation(o: &mut Value, key: &str, value: &str) {
    if !o["metadata"]["annotations"].is_object() {
        o["metadata"]["annotations"] = json!({});
    }
    if let Some(a) = o["metadata"]["annotations"].as_object_mut() {
        a.insert(key.to_string(), json!(value));
    }
}

fn set_ptr(o: &mut Value, ptr: &str, v: Value) {
    if let Some(slot) = o.pointer_mut(ptr) {
        *slot = v;
        return;
    }
    // Create the path.
    let mut cur = o;
    let parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let m = cur.as_object_mut().unwrap();
        if i + 1 == parts.len() {
            m.insert((*p).to_string(), v);
            return;
        }
        cur = m.entry((*p).to_string()).or_insert_with(|| json!({}));
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
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
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Key-sorted JSON text: equal values give equal text.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn template_hash(template: &Value) -> String {
    let digest = sha2::Sha256::digest(canonical(template).as_bytes());
    // The real controller's alphabet for generated names (no vowels).
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest
        .iter()
        .take(10)
        .map(|b| ALPHA[*b as usize % ALPHA.len()] as char)
        .collect()
}

fn without_label(template: &Value, key: &str) -> Value {
    let mut t = template.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove(key);
    }
    t
}

// ---------------------------------------------------------------------------
// Label selectors.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn matches_reqs(reqs: &[Req], l: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| match r {
        Req::Eq(k, v) => l.get(k) == Some(v),
        Req::Ne(k, v) => l.get(k) != Some(v),
        Req::In(k, vs) => l.get(k).is_some_and(|x| vs.contains(x)),
        Req::NotIn(k, vs) => l.get(k).is_none_or(|x| !vs.contains(x)),
        Req::Exists(k) => l.contains_key(k),
        Req::NotExists(k) => !l.contains_key(k),
    })
}

/// The query syntax of `labelSelector`.
fn parse_selector(s: &str) -> Result<Vec<Req>, String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '(' => {
                depth += 1;
                cur.push(ch)
            }
            ')' => {
                depth -= 1;
                cur.push(ch)
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let rest = rest.trim();
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("bad set {rest:?}"))?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    let mut reqs = Vec::new();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            return Err("empty requirement".into());
        }
        if let Some(k) = p.strip_prefix('!') {
            reqs.push(Req::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = p.split_once("!=") {
            reqs.push(Req::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once("==") {
            reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once('=') {
            reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            reqs.push(Req::NotIn(k.trim().into(), set(rest)?));
        } else if let Some((k, rest)) = p.split_once(" in ") {
            reqs.push(Req::In(k.trim().into(), set(rest)?));
        } else if p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            reqs.push(Req::Exists(p.to_string()));
        } else {
            return Err(format!("unable to parse requirement {p:?}"));
        }
    }
    Ok(reqs)
}

/// A `LabelSelector` object (matchLabels + matchExpressions).
fn selector_reqs(sel: &Value) -> Vec<Req> {
    let mut reqs: Vec<Req> = str_map(sel.get("matchLabels"))
        .into_iter()
        .map(|(k, v)| Req::Eq(k, v))
        .collect();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let values: Vec<String> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        reqs.push(match e.get("operator").and_then(Value::as_str) {
            Some("In") => Req::In(key, values),
            Some("NotIn") => Req::NotIn(key, values),
            Some("Exists") => Req::Exists(key),
            _ => Req::NotExists(key),
        });
    }
    reqs
}

fn selector_text(sel: &Value) -> String {
    str_map(sel.get("matchLabels"))
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------
// Status answers.
// ---------------------------------------------------------------------------

fn status(code: u16, reason: &str, message: &str, details: Value) -> Response {
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    if !details.is_null() {
        body["details"] = details;
    }
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn ok(code: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        axum::Json(body),
    )
        .into_response()
}

fn group_of(resource: &str) -> &'static str {
    match resource {
        "deployments" | "statefulsets" | "replicasets" | "controllerrevisions" => "apps",
        "poddisruptionbudgets" => "policy",
        _ => "",
    }
}

/// `deployments.apps` as the real messages write it.
fn qualified(resource: &str) -> String {
    match group_of(resource) {
        "" => resource.to_string(),
        g => format!("{resource}.{g}"),
    }
}

fn not_found(resource: &str, name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("{} {name:?} not found", qualified(resource)),
        json!({"name": name, "group": group_of(resource), "kind": resource}),
    )
}

fn conflict(resource: &str, name: &str) -> Response {
    status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
            qualified(resource)
        ),
        json!({"name": name, "group": group_of(resource), "kind": resource}),
    )
}

fn invalid(resource: &str, name: &str, why: &str) -> Response {
    status(
        422,
        "Invalid",
        &format!("{} {name:?} is invalid: {why}", qualified(resource)),
        json!({"name": name, "group": group_of(resource), "kind": resource}),
    )
}

fn kind_of(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "deployments" => ("apps/v1", "Deployment"),
        "statefulsets" => ("apps/v1", "StatefulSet"),
        "replicasets" => ("apps/v1", "ReplicaSet"),
        "controllerrevisions" => ("apps/v1", "ControllerRevision"),
        "poddisruptionbudgets" => ("policy/v1", "PodDisruptionBudget"),
        "services" => ("v1", "Service"),
        _ => ("v1", "Pod"),
    }
}

// ---------------------------------------------------------------------------
// The world: objects and controllers.
// ---------------------------------------------------------------------------

impl World {
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn next_uid(&mut self) -> String {
        self.seq += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.seq)
    }

    fn timestamp(&self) -> String {
        // Seconds since a fixed epoch advance with the controller's ticks.
        let ms = 1_750_000_000_000i64 + (self.tick as i64) * 20;
        let t = homeostat::clock::rfc3339(ms);
        // The API's format has whole seconds.
        format!("{}Z", &t[..19])
    }

    fn get(&self, resource: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(resource.to_string(), ns.to_string(), name.to_string()))
    }

    fn list(&self, resource: &str, ns: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, n, _), _)| r == resource && n == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Store `obj` with a new resourceVersion.
    fn put(&mut self, resource: &str, ns: &str, mut obj: Value) -> Value {
        let rv = self.next_rv();
        set_ptr(&mut obj, "/metadata/resourceVersion", json!(rv));
        let name = name_of(&obj);
        self.objects
            .insert((resource.to_string(), ns.to_string(), name), obj.clone());
        obj
    }

    /// Store `obj` only if it differs from what is stored (then a new rv).
    fn put_if_changed(&mut self, resource: &str, ns: &str, obj: Value) {
        let name = name_of(&obj);
        if self.get(resource, ns, &name) != Some(&obj) {
            self.put(resource, ns, obj);
        }
    }

    fn remove(&mut self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .remove(&(resource.to_string(), ns.to_string(), name.to_string()))
    }

    /// A new object with metadata filled in as the API server does.
    fn create(&mut self, resource: &str, ns: &str, mut obj: Value) -> Value {
        let (api_version, kind) = kind_of(resource);
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(kind);
        let uid = self.next_uid();
        let ts = self.timestamp();
        set_ptr(&mut obj, "/metadata/namespace", json!(ns));
        set_ptr(&mut obj, "/metadata/uid", json!(uid));
        set_ptr(&mut obj, "/metadata/creationTimestamp", json!(ts));
        if matches!(resource, "deployments" | "statefulsets" | "replicasets") {
            set_ptr(&mut obj, "/metadata/generation", json!(1));
        }
        if resource == "pods" {
            self.born.insert(uid, self.tick);
        }
        self.put(resource, ns, obj)
    }

    fn owned(&self, resource: &str, ns: &str, owner_uid: &str) -> Vec<Value> {
        self.list(resource, ns)
            .into_iter()
            .filter(|o| controller_uid(o).as_deref() == Some(owner_uid))
            .collect()
    }

    fn owner_ref(owner: &Value, kind: &str) -> Value {
        json!([{
            "apiVersion": "apps/v1", "kind": kind, "name": name_of(owner),
            "uid": uid(owner), "controller": true, "blockOwnerDeletion": true,
        }])
    }

    /// One round of every controller.
    fn reconcile(&mut self) {
        self.tick += 1;
        self.kubelet();
        let keys: Vec<Key> = self.objects.keys().cloned().collect();
        for (r, ns, name) in &keys {
            match r.as_str() {
                "deployments" => self.reconcile_deployment(ns, name),
                "statefulsets" => self.reconcile_statefulset(ns, name),
                _ => {}
            }
        }
        let keys: Vec<Key> = self.objects.keys().cloned().collect();
        for (r, ns, name) in &keys {
            if r == "replicasets" {
                self.reconcile_replicaset(ns, name);
            }
        }
    }

    /// Pods become Running/Ready a tick after creation (never, with a "bad"
    /// image); terminating pods are gone a tick after their deletion.
    fn kubelet(&mut self) {
        let tick = self.tick;
        let pods: Vec<(String, Value)> = self
            .objects
            .iter()
            .filter(|((r, _, _), _)| r == "pods")
            .map(|((_, ns, _), v)| (ns.clone(), v.clone()))
            .collect();
        for (ns, mut p) in pods {
            let id = uid(&p);
            if terminating(&p) {
                let since = *self.dying.entry(id.clone()).or_insert(tick);
                if tick > since {
                    self.remove("pods", &ns, &name_of(&p));
                    self.dying.remove(&id);
                    self.born.remove(&id);
                }
                continue;
            }
            let born = *self.born.entry(id).or_insert(tick);
            if tick <= born || p.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
            {
                continue;
            }
            let bad = p
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("image")
                            .and_then(Value::as_str)
                            .is_some_and(|i| i.contains("bad"))
                    })
                });
            let ready = if bad { "False" } else { "True" };
            let ts = self.timestamp();
            p["status"]["phase"] = json!("Running");
            p["status"]["conditions"] = json!([
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": ts},
                {"type": "Ready", "status": ready, "lastTransitionTime": ts},
            ]);
            self.put("pods", &ns, p);
        }
    }

    fn new_pod(&mut self, ns: &str, name: &str, template: &Value, owner: &Value, owner_kind: &str) {
        self.seq += 1;
        let ip = format!("10.244.{}.{}", (self.seq / 250) % 250, self.seq % 250 + 2);
        let mut meta = template
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| json!({}));
        meta["name"] = json!(name);
        meta["ownerReferences"] = Self::owner_ref(owner, owner_kind);
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        spec["nodeName"] = json!("fake-node-1");
        let pod = json!({
            "metadata": meta,
            "spec": spec,
            "status": {"phase": "Pending", "podIP": ip, "podIPs": [{"ip": ip}],
                        "conditions": [{"type": "Ready", "status": "False"}]},
        });
        self.create("pods", ns, pod);
    }

    fn mark_deleted(&mut self, ns: &str, name: &str) {
        if let Some(mut p) = self.get("pods", ns, name).cloned() {
            if terminating(&p) {
                return;
            }
            let ts = self.timestamp();
            set_ptr(&mut p, "/metadata/deletionTimestamp", json!(ts));
            set_ptr(&mut p, "/metadata/deletionGracePeriodSeconds", json!(30));
            self.dying.insert(uid(&p), self.tick);
            self.put("pods", ns, p);
        }
    }

    fn revision(o: &Value) -> i64 {
        annotations(o)
            .get("deployment.kubernetes.io/revision")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    }

    fn reconcile_deployment(&mut self, ns: &str, name: &str) {
        let Some(mut d) = self.get("deployments", ns, name).cloned() else {
            return;
        };
        let duid = uid(&d);
        let template = d["spec"]["template"].clone();
        let selector = d["spec"]["selector"].clone();
        let desired = d["spec"]
            .get("replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let rses = self.owned("replicasets", ns, &duid);
        let max_rev = rses.iter().map(Self::revision).max().unwrap_or(0);
        let current = rses
            .iter()
            .find(|rs| without_label(&rs["spec"]["template"], "pod-template-hash") == template)
            .cloned();
        let new_rs = match current {
            Some(mut rs) => {
                if Self::revision(&rs) < max_rev {
                    // Rolling back to an old template re-uses its ReplicaSet.
                    set_annotation(
                        &mut rs,
                        "deployment.kubernetes.io/revision",
                        &(max_rev + 1).to_string(),
                    );
                    self.put("replicasets", ns, rs.clone())
                } else {
                    rs
                }
            }
            None => {
                let hash = template_hash(&template);
                let mut t = template.clone();
                set_ptr(&mut t, "/metadata/labels/pod-template-hash", json!(hash));
                let mut sel = selector.clone();
                set_ptr(&mut sel, "/matchLabels/pod-template-hash", json!(hash));
                let rs = json!({
                    "metadata": {
                        "name": format!("{name}-{hash}"),
                        "labels": labels(&t),
                        "annotations": {"deployment.kubernetes.io/revision": (max_rev + 1).to_string()},
                        "ownerReferences": Self::owner_ref(&d, "Deployment"),
                    },
                    "spec": {"replicas": 0, "selector": sel, "template": t},
                    "status": {"replicas": 0},
                });
                self.create("replicasets", ns, rs)
            }
        };
        let new_name = name_of(&new_rs);
        let new_rev = Self::revision(&new_rs);

        // Rolling update, maxSurge 1 and maxUnavailable 0.
        let rses = self.owned("replicasets", ns, &duid);
        let olds: Vec<Value> = rses
            .iter()
            .filter(|rs| name_of(rs) != new_name)
            .cloned()
            .collect();
        let old_total: i64 = olds.iter().map(|rs| int(rs, "/spec/replicas")).sum();
        let mut new_spec = int(&new_rs, "/spec/replicas");
        let pods = self.list("pods", ns);
        let owned_uids: BTreeSet<String> = rses.iter().map(uid).collect();
        let available = pods
            .iter()
            .filter(|p| !terminating(p) && pod_ready(p))
            .filter(|p| controller_uid(p).is_some_and(|u| owned_uids.contains(&u)))
            .count() as i64;
        if old_total == 0 {
            new_spec = desired;
        } else {
            new_spec = new_spec.min(desired);
            if new_spec < desired && new_spec + old_total < desired + 1 {
                new_spec += 1;
            }
            let mut removable = (available - desired).max(0);
            let mut olds = olds.clone();
            olds.sort_by_key(Self::revision);
            for mut rs in olds {
                let have = int(&rs, "/spec/replicas");
                // Pods of an old ReplicaSet that are not Ready count for
                // nothing: they go regardless (the real controller's cleanup
                // of unhealthy replicas).
                let rs_uid = uid(&rs);
                let unready = pods
                    .iter()
                    .filter(|p| !terminating(p) && !pod_ready(p))
                    .filter(|p| controller_uid(p).as_deref() == Some(rs_uid.as_str()))
                    .count() as i64;
                let cut = have.min(removable + unready);
                removable -= (cut - unready).max(0);
                if cut > 0 {
                    rs["spec"]["replicas"] = json!(have - cut);
                    self.put("replicasets", ns, rs);
                }
            }
        }
        if let Some(mut rs) = self.get("replicasets", ns, &new_name).cloned() {
            if int(&rs, "/spec/replicas") != new_spec {
                rs["spec"]["replicas"] = json!(new_spec);
                self.put("replicasets", ns, rs);
            }
        }

        // History limit: old, empty ReplicaSets beyond revisionHistoryLimit go.
        let limit = d["spec"]
            .get("revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10);
        let mut empty_olds: Vec<Value> = self
            .owned("replicasets", ns, &duid)
            .into_iter()
            .filter(|rs| name_of(rs) != new_name && int(rs, "/spec/replicas") == 0)
            .filter(|rs| {
                let rs_uid = uid(rs);
                !pods
                    .iter()
                    .any(|p| controller_uid(p).as_deref() == Some(rs_uid.as_str()))
            })
            .collect();
        empty_olds.sort_by_key(Self::revision);
        while empty_olds.len() as i64 > limit {
            let rs = empty_olds.remove(0);
            self.remove("replicasets", ns, &name_of(&rs));
        }

        // Status.
        let rses = self.owned("replicasets", ns, &duid);
        let owned_uids: BTreeSet<String> = rses.iter().map(uid).collect();
        let new_uid = uid(&self
            .get("replicasets", ns, &new_name)
            .cloned()
            .unwrap_or_default());
        let active: Vec<&Value> = pods
            .iter()
            .filter(|p| !terminating(p))
            .filter(|p| controller_uid(p).is_some_and(|u| owned_uids.contains(&u)))
            .collect();
        let updated = active
            .iter()
            .filter(|p| controller_uid(p).as_deref() == Some(new_uid.as_str()))
            .count();
        let ready = active.iter().filter(|p| pod_ready(p)).count() as i64;
        let mut st = d.get("status").cloned().unwrap_or_else(|| json!({}));
        st["observedGeneration"] = d["metadata"]["generation"].clone();
        st["replicas"] = json!(active.len());
        st["updatedReplicas"] = json!(updated);
        st["readyReplicas"] = json!(ready);
        st["availableReplicas"] = json!(ready);
        st["unavailableReplicas"] = json!((desired - ready).max(0));
        st["conditions"] = json!([
            {"type": "Available", "status": if ready >= desired { "True" } else { "False" },
             "reason": if ready >= desired { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }},
            {"type": "Progressing", "status": "True",
             "reason": if updated as i64 == desired && active.len() as i64 == desired { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" }},
        ]);
        let mut changed = d.get("status") != Some(&st);
        d["status"] = st;
        let rev = new_rev.to_string();
        if annotations(&d).get("deployment.kubernetes.io/revision") != Some(&rev) {
            set_annotation(&mut d, "deployment.kubernetes.io/revision", &rev);
            changed = true;
        }
        if changed {
            self.put("deployments", ns, d);
        }
    }

    fn reconcile_replicaset(&mut self, ns: &str, name: &str) {
        let Some(mut rs) = self.get("replicasets", ns, name).cloned() else {
            return;
        };
        let rs_uid = uid(&rs);
        let reqs = selector_reqs(&rs["spec"]["selector"]);
        // Release owned pods whose labels left the selector; adopt orphans that match.
        for mut p in self.list("pods", ns) {
            let owner = controller_uid(&p);
            let matches = matches_reqs(&reqs, &labels(&p));
            if owner.as_deref() == Some(rs_uid.as_str()) && !matches {
                p["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("ownerReferences"));
                self.put("pods", ns, p);
            } else if owner.is_none() && matches && !terminating(&p) {
                p["metadata"]["ownerReferences"] = Self::owner_ref(&rs, "ReplicaSet");
                self.put("pods", ns, p);
            }
        }
        let want = int(&rs, "/spec/replicas");
        let mut active: Vec<Value> = self
            .owned("pods", ns, &rs_uid)
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        let have = active.len() as i64;
        if have < want {
            let template = rs["spec"]["template"].clone();
            for _ in have..want {
                self.seq += 1;
                let pod_name = format!("{name}-{}", &template_hash(&json!(self.seq))[..5]);
                self.new_pod(ns, &pod_name, &template, &rs, "ReplicaSet");
            }
        } else if have > want {
            // Not ready first, then the newest.
            active.sort_by(|a, b| pod_ready(a).cmp(&pod_ready(b)).then(uid(b).cmp(&uid(a))));
            for p in active.iter().take((have - want) as usize) {
                self.mark_deleted(ns, &name_of(p));
            }
        }
        let active: Vec<Value> = self
            .owned("pods", ns, &rs_uid)
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        let ready = active.iter().filter(|p| pod_ready(p)).count();
        let st = json!({
            "replicas": active.len(), "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"].clone(),
        });
        if rs.get("status") != Some(&st) {
            rs["status"] = st;
            self.put("replicasets", ns, rs);
        }
    }

    fn reconcile_statefulset(&mut self, ns: &str, name: &str) {
        let Some(mut s) = self.get("statefulsets", ns, name).cloned() else {
            return;
        };
        let suid = uid(&s);
        let template = s["spec"]["template"].clone();
        let desired = s["spec"]
            .get("replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let hash = template_hash(&template);
        let rev_name = format!("{name}-{hash}");
        let crs = self.owned("controllerrevisions", ns, &suid);
        let max_rev = crs.iter().map(|c| int(c, "/revision")).max().unwrap_or(0);
        match crs.iter().find(|c| name_of(c) == rev_name).cloned() {
            Some(mut cr) => {
                if int(&cr, "/revision") < max_rev {
                    cr["revision"] = json!(max_rev + 1);
                    self.put("controllerrevisions", ns, cr);
                }
            }
            None => {
                let mut data_t = template.clone();
                data_t["$patch"] = json!("replace");
                let mut l = str_map(s["spec"]["selector"].get("matchLabels"));
                l.insert("controller.kubernetes.io/hash".into(), hash.clone());
                let cr = json!({
                    "metadata": {"name": rev_name, "labels": l,
                                 "ownerReferences": Self::owner_ref(&s, "StatefulSet")},
                    "data": {"spec": {"template": data_t}},
                    "revision": max_rev + 1,
                });
                self.create("controllerrevisions", ns, cr);
            }
        }
        let pod = |w: &World, i: i64| w.get("pods", ns, &format!("{name}-{i}")).cloned();
        let rev_of = |p: &Value| labels(p).get("controller-revision-hash").cloned();
        // Create the lowest missing ordinal once all below it are Ready.
        let mut all_ready = true;
        for i in 0..desired {
            match pod(self, i) {
                Some(p) if !terminating(&p) => {
                    if !pod_ready(&p) {
                        all_ready = false;
                        break;
                    }
                }
                Some(_) => {
                    all_ready = false;
                    break;
                }
                None => {
                    let mut t = template.clone();
                    let pod_name = format!("{name}-{i}");
                    set_ptr(
                        &mut t,
                        "/metadata/labels/controller-revision-hash",
                        json!(rev_name),
                    );
                    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
                        l.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
                    }
                    self.new_pod(ns, &pod_name, &t, &s, "StatefulSet");
                    all_ready = false;
                    break;
                }
            }
        }
        // Scale down from the highest ordinal, one at a time, once all are Ready.
        let existing: Vec<Value> = self
            .owned("pods", ns, &suid)
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        let ordinal = |p: &Value| {
            name_of(p)
                .rsplit_once('-')
                .and_then(|(_, n)| n.parse::<i64>().ok())
                .unwrap_or(-1)
        };
        if all_ready {
            if let Some(extra) = existing
                .iter()
                .filter(|p| ordinal(p) >= desired)
                .max_by_key(|p| ordinal(p))
            {
                self.mark_deleted(ns, &name_of(extra));
            } else if let Some(stale) = existing
                .iter()
                .filter(|p| rev_of(p).as_deref() != Some(rev_name.as_str()))
                .max_by_key(|p| ordinal(p))
            {
                // Rolling update: replace the highest stale pod while all are Ready.
                self.mark_deleted(ns, &name_of(stale));
            }
        }
        let existing: Vec<Value> = self
            .owned("pods", ns, &suid)
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        let ready = existing.iter().filter(|p| pod_ready(p)).count() as i64;
        let updated = existing
            .iter()
            .filter(|p| rev_of(p).as_deref() == Some(rev_name.as_str()))
            .count() as i64;
        let mut st = s.get("status").cloned().unwrap_or_else(|| json!({}));
        let current_rev = st
            .get("currentRevision")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| rev_name.clone());
        let current_rev = if updated == desired && existing.len() as i64 == desired {
            rev_name.clone()
        } else {
            current_rev
        };
        let current = existing
            .iter()
            .filter(|p| rev_of(p).as_deref() == Some(current_rev.as_str()))
            .count();
        st["observedGeneration"] = s["metadata"]["generation"].clone();
        st["replicas"] = json!(existing.len());
        st["readyReplicas"] = json!(ready);
        st["availableReplicas"] = json!(ready);
        st["updatedReplicas"] = json!(updated);
        st["currentReplicas"] = json!(current);
        st["currentRevision"] = json!(current_rev);
        st["updateRevision"] = json!(rev_name);
        if s.get("status") != Some(&st) {
            s["status"] = st;
            self.put("statefulsets", ns, s);
        }
    }

    /// Would evicting `pod` violate its PodDisruptionBudget? `Err(answer)` if so.
    fn eviction_allowed(&self, ns: &str, pod: &Value) -> Result<(), Box<Response>> {
        let pl = labels(pod);
        let pdbs: Vec<Value> = self
            .list("poddisruptionbudgets", ns)
            .into_iter()
            .filter(|b| matches_reqs(&selector_reqs(&b["spec"]["selector"]), &pl))
            .collect();
        if pdbs.len() > 1 {
            return Err(Box::new(status(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                Value::Null,
            )));
        }
        let Some(pdb) = pdbs.first() else {
            return Ok(());
        };
        let reqs = selector_reqs(&pdb["spec"]["selector"]);
        let matched: Vec<Value> = self
            .list("pods", ns)
            .into_iter()
            .filter(|p| !terminating(p) && matches_reqs(&reqs, &labels(p)))
            .collect();
        let expected = matched.len() as i64;
        let healthy = matched.iter().filter(|p| pod_ready(p)).count() as i64;
        let resolve = |v: &Value| -> i64 {
            match v {
                Value::String(s) if s.ends_with('%') => {
                    let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
                    (expected * pct + 99) / 100
                }
                Value::String(s) => s.parse().unwrap_or(0),
                other => other.as_i64().unwrap_or(0),
            }
        };
        let desired_healthy = if let Some(min) = pdb["spec"].get("minAvailable") {
            resolve(min)
        } else if let Some(max) = pdb["spec"].get("maxUnavailable") {
            (expected - resolve(max)).max(0)
        } else {
            0
        };
        let allowed = if pod_ready(pod) {
            healthy - desired_healthy >= 1
        } else {
            // unhealthyPodEvictionPolicy IfHealthyBudget (the default).
            healthy >= desired_healthy
        };
        if allowed {
            return Ok(());
        }
        Err(Box::new(status(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
            json!({"causes": [{
                "reason": "DisruptionBudget",
                "message": format!(
                    "The disruption budget {} needs {desired_healthy} healthy pods and has {healthy} currently",
                    name_of(pdb)
                ),
            }]}),
        )))
    }
}

// ---------------------------------------------------------------------------
// HTTP.
// ---------------------------------------------------------------------------

struct Route {
    group: String,
    version: String,
    namespace: String,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    match rest {
        ["namespaces", ns, res] => Some(Route {
            group,
            version,
            namespace: ns.to_string(),
            resource: res.to_string(),
            name: None,
            sub: None,
        }),
        ["namespaces", ns, res, name] => Some(Route {
            group,
            version,
            namespace: ns.to_string(),
            resource: res.to_string(),
            name: Some(name.to_string()),
            sub: None,
        }),
        ["namespaces", ns, res, name, sub] => Some(Route {
            group,
            version,
            namespace: ns.to_string(),
            resource: res.to_string(),
            name: Some(name.to_string()),
            sub: Some(sub.to_string()),
        }),
        _ => None,
    }
}

fn query_param(uri: &Uri, key: &str) -> Option<String> {
    let q = uri.query()?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            let v = v.replace('+', " ");
            percent_decode(&v)
        })
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(route) = parse_path(uri.path()) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Value::Null,
        );
    };
    let verb = match (&method, route.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if query_param(&uri, "watch").as_deref() == Some("true") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
    .to_string();
    let resource = match &route.sub {
        Some(sub) => format!("{}/{sub}", route.resource),
        None => route.resource.clone(),
    };
    lock(&shared.calls).push(Call {
        verb: verb.clone(),
        resource: resource.clone(),
        group: route.group.clone(),
        namespace: route.namespace.clone(),
        name: route.name.clone(),
    });
    let delay = lock(&shared.faults).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", shared.token) {
        return status(401, "Unauthorized", "Unauthorized", Value::Null);
    }
    // The group/version must be the resource's.
    let expected = match group_of(&route.resource) {
        "" => ("", "v1"),
        g => (g, "v1"),
    };
    if (route.group.as_str(), route.version.as_str()) != expected
        || !matches!(
            route.resource.as_str(),
            "deployments"
                | "statefulsets"
                | "replicasets"
                | "controllerrevisions"
                | "pods"
                | "services"
                | "poddisruptionbudgets"
        )
    {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Value::Null,
        );
    }
    let name = route.name.clone().unwrap_or_default();
    {
        let mut faults = lock(&shared.faults);
        if faults.forbidden.contains(&(verb.clone(), resource.clone())) {
            let group = if route.group.is_empty() {
                "\"\"".to_string()
            } else {
                format!("{:?}", route.group)
            };
            let msg = format!(
                "{} {name:?} is forbidden: User \"system:serviceaccount:{ns}:homeostat\" cannot {verb} resource {:?} in API group {group} in the namespace {ns:?}",
                qualified(&route.resource),
                resource,
                ns = route.namespace,
            );
            return status(
                403,
                "Forbidden",
                &msg,
                json!({"name": name, "kind": route.resource}),
            );
        }
        if let Some((code, body)) = faults
            .raw
            .get_mut(&(verb.clone(), resource.clone()))
            .and_then(VecDeque::pop_front)
        {
            return (
                StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
        if let Some(q) = faults.inject.get_mut(&(verb.clone(), resource.clone())) {
            if let Some(code) = q.pop_front() {
                return match code {
                    409 => conflict(&route.resource, &name),
                    429 => status(429, "TooManyRequests", "the server has received too many requests and has asked us to try again later", Value::Null),
                    503 => status(503, "ServiceUnavailable", "the server is currently unable to handle the request", Value::Null),
                    c => status(c, "InternalError", "injected failure", Value::Null),
                };
            }
        }
    }
    let answer = {
        let mut w = lock(&shared.world);
        let answer = dispatch(&mut w, &verb, &route, &headers, &body, &uri);
        if matches!(verb.as_str(), "create" | "update" | "patch" | "delete") {
            w.reconcile();
        }
        answer
    };
    let hold = lock(&shared.faults)
        .slow_after
        .get(&(verb, resource))
        .copied();
    if let Some(d) = hold {
        tokio::time::sleep(d).await;
    }
    answer
}

fn scale_of(o: &Value) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {
            "name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"],
            "uid": o["metadata"]["uid"], "resourceVersion": o["metadata"]["resourceVersion"],
            "creationTimestamp": o["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": o["spec"].get("replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": o.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_text(&o["spec"]["selector"]),
        },
    })
}

fn dispatch(
    w: &mut World,
    verb: &str,
    route: &Route,
    headers: &HeaderMap,
    body: &Bytes,
    uri: &Uri,
) -> Response {
    let ns = route.namespace.as_str();
    let res = route.resource.as_str();
    let name = route.name.as_deref().unwrap_or("");
    match (verb, res, route.sub.as_deref()) {
        ("get", "deployments" | "statefulsets" | "pods" | "services", None) => {
            match w.get(res, ns, name) {
                Some(o) => ok(200, o.clone()),
                None => not_found(res, name),
            }
        }
        ("list", "pods" | "replicasets" | "controllerrevisions", None) => {
            let reqs = match query_param(uri, "labelSelector") {
                Some(s) => match parse_selector(&s) {
                    Ok(r) => r,
                    Err(e) => {
                        return status(
                            400,
                            "BadRequest",
                            &format!("unable to parse requirement: {e}"),
                            Value::Null,
                        )
                    }
                },
                None => Vec::new(),
            };
            let items: Vec<Value> = w
                .list(res, ns)
                .into_iter()
                .filter(|o| matches_reqs(&reqs, &labels(o)))
                .collect();
            let (api_version, kind) = kind_of(res);
            ok(
                200,
                json!({
                    "apiVersion": api_version, "kind": format!("{kind}List"),
                    "metadata": {"resourceVersion": w.rv.to_string()},
                    "items": items,
                }),
            )
        }
        ("get", "deployments" | "statefulsets", Some("scale")) => match w.get(res, ns, name) {
            Some(o) => ok(200, scale_of(o)),
            None => not_found(res, name),
        },
        ("update", "deployments" | "statefulsets", Some("scale")) => {
            let Some(mut o) = w.get(res, ns, name).cloned() else {
                return not_found(res, name);
            };
            let Ok(scale) = serde_json::from_slice::<Value>(body) else {
                return status(
                    400,
                    "BadRequest",
                    "the body of the request was not valid JSON",
                    Value::Null,
                );
            };
            if scale
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k != "Scale")
            {
                return status(400, "BadRequest", "expected a Scale", Value::Null);
            }
            if let Some(n) = scale.pointer("/metadata/name").and_then(Value::as_str) {
                if n != name {
                    return status(
                        400,
                        "BadRequest",
                        "the name of the object does not match the name on the URL",
                        Value::Null,
                    );
                }
            }
            if let Some(rv) = scale
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            {
                if Some(rv)
                    != o.pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                {
                    return conflict(res, name);
                }
            }
            let Some(replicas) = scale.pointer("/spec/replicas").and_then(Value::as_i64) else {
                return invalid(res, name, "spec.replicas: Required value");
            };
            if replicas < 0 {
                return invalid(
                    res,
                    name,
                    "spec.replicas: Invalid value: must be greater than or equal to 0",
                );
            }
            if o["spec"].get("replicas").and_then(Value::as_i64) != Some(replicas) {
                o["spec"]["replicas"] = json!(replicas);
                let g = int(&o, "/metadata/generation") + 1;
                o["metadata"]["generation"] = json!(g);
                o = w.put(res, ns, o);
            }
            ok(200, scale_of(&o))
        }
        ("patch", "deployments" | "statefulsets" | "pods", None) => {
            let ctype = headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !ctype.starts_with("application/merge-patch+json") {
                return status(
                    415,
                    "UnsupportedMediaType",
                    &format!("the fake implements only merge patches, not {ctype:?}"),
                    Value::Null,
                );
            }
            let Some(old) = w.get(res, ns, name).cloned() else {
                return not_found(res, name);
            };
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return status(
                    400,
                    "BadRequest",
                    "the body of the request was not valid JSON",
                    Value::Null,
                );
            };
            if !patch.is_object() {
                return status(
                    400,
                    "BadRequest",
                    "a merge patch must be a JSON object",
                    Value::Null,
                );
            }
            if let Some(rv) = patch
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            {
                if Some(rv)
                    != old
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                {
                    return conflict(res, name);
                }
            }
            let mut new = old.clone();
            merge_patch(&mut new, &patch);
            // What the server keeps no matter what a patch says.
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "resourceVersion",
                "generation",
                "deletionTimestamp",
                "ownerReferences",
            ] {
                match old["metadata"].get(field) {
                    Some(v) => new["metadata"][field] = v.clone(),
                    None => {
                        new["metadata"].as_object_mut().map(|m| m.remove(field));
                    }
                }
            }
            new["apiVersion"] = old["apiVersion"].clone();
            new["kind"] = old["kind"].clone();
            new["status"] = old["status"].clone();
            if res == "pods" {
                if new["spec"] != old["spec"] {
                    return invalid(res, name, "spec: Forbidden: pod updates may not change fields other than image and a few others (the fake allows none)");
                }
            } else {
                if new["spec"]["selector"] != old["spec"]["selector"] {
                    return invalid(
                        res,
                        name,
                        "spec.selector: Invalid value: field is immutable",
                    );
                }
                let reqs = selector_reqs(&new["spec"]["selector"]);
                if !matches_reqs(&reqs, &labels(&new["spec"]["template"])) {
                    return invalid(res, name, "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`");
                }
                let containers = new
                    .pointer("/spec/template/spec/containers")
                    .and_then(Value::as_array);
                match containers {
                    Some(cs) if !cs.is_empty() => {
                        for (i, c) in cs.iter().enumerate() {
                            if c.get("name")
                                .and_then(Value::as_str)
                                .is_none_or(str::is_empty)
                            {
                                return invalid(
                                    res,
                                    name,
                                    &format!(
                                        "spec.template.spec.containers[{i}].name: Required value"
                                    ),
                                );
                            }
                            if c.get("image")
                                .and_then(Value::as_str)
                                .is_none_or(str::is_empty)
                            {
                                return invalid(
                                    res,
                                    name,
                                    &format!(
                                        "spec.template.spec.containers[{i}].image: Required value"
                                    ),
                                );
                            }
                        }
                    }
                    _ => {
                        return invalid(res, name, "spec.template.spec.containers: Required value")
                    }
                }
                if new["spec"]
                    .get("replicas")
                    .and_then(Value::as_i64)
                    .is_some_and(|r| r < 0)
                {
                    return invalid(
                        res,
                        name,
                        "spec.replicas: Invalid value: must be greater than or equal to 0",
                    );
                }
                if new["spec"] != old["spec"] {
                    let g = int(&old, "/metadata/generation") + 1;
                    new["metadata"]["generation"] = json!(g);
                }
            }
            if new == old {
                return ok(200, old);
            }
            let stored = w.put(res, ns, new);
            ok(200, stored)
        }
        ("create", "pods", Some("eviction")) => {
            let Some(pod) = w.get("pods", ns, name).cloned() else {
                return not_found("pods", name);
            };
            let Ok(ev) = serde_json::from_slice::<Value>(body) else {
                return status(
                    400,
                    "BadRequest",
                    "the body of the request was not valid JSON",
                    Value::Null,
                );
            };
            if let Some(k) = ev.get("kind").and_then(Value::as_str) {
                if k != "Eviction"
                    || ev.get("apiVersion").and_then(Value::as_str) != Some("policy/v1")
                {
                    return status(
                        400,
                        "BadRequest",
                        &format!("expected a policy/v1 Eviction, got {k}"),
                        Value::Null,
                    );
                }
            }
            if ev.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
                return status(
                    400,
                    "BadRequest",
                    "name in URL does not match name in Eviction object",
                    Value::Null,
                );
            }
            if !terminating(&pod) {
                if let Err(answer) = w.eviction_allowed(ns, &pod) {
                    return *answer;
                }
                w.mark_deleted(ns, name);
            }
            ok(
                201,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            )
        }
        ("delete", "pods", None) => {
            let Some(pod) = w.get("pods", ns, name).cloned() else {
                return not_found("pods", name);
            };
            let opts: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if let Some(want) = opts.pointer("/preconditions/uid").and_then(Value::as_str) {
                if want != uid(&pod) {
                    return status(
                        409,
                        "Conflict",
                        &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {}", uid(&pod)),
                        json!({"name": name, "kind": "pods"}),
                    );
                }
            }
            w.mark_deleted(ns, name);
            let p = w.get("pods", ns, name).cloned().unwrap_or(pod);
            ok(200, p)
        }
        ("watch", _, _) => status(
            501,
            "NotImplemented",
            "the fake does not implement watch",
            Value::Null,
        ),
        _ => status(
            501,
            "NotImplemented",
            &format!(
                "the fake does not implement {verb} on {res}{}",
                route
                    .sub
                    .as_deref()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default()
            ),
            Value::Null,
        ),
    }
}

// ---------------------------------------------------------------------------
// The test-facing handle.
// ---------------------------------------------------------------------------

/// Pod template labels and container of a seeded workload.
pub struct Seed<'a> {
    pub replicas: i64,
    pub image: &'a str,
    /// Pod labels besides `app: <name>` (the selector); e.g. a quarantine label.
    pub extra_labels: &'a [(&'a str, &'a str)],
}

impl FakeKube {
    /// Start serving on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shared = Arc::new(Shared {
            world: Mutex::new(World {
                rv: 1000,
                seq: 0,
                tick: 0,
                objects: BTreeMap::new(),
                born: HashMap::new(),
                dying: HashMap::new(),
            }),
            faults: Mutex::new(Faults::default()),
            calls: Mutex::new(Vec::new()),
            token: format!("fake-token-{}", rand::random::<u64>()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = backend_listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(backend_listener, app).await;
        });
        let public = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let proxy = Proxy::bind(public, backend).await;
        let s2 = shared.clone();
        let controllers = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                lock(&s2.world).reconcile();
            }
        });
        Self {
            addr: public,
            token: shared.token.clone(),
            shared,
            proxy,
            tasks: vec![server, controllers],
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig with contexts `fake` (this server, `namespace`) and
    /// `nowhere` (a closed port); `current` is the current context.
    pub fn write_kubeconfig(&self, dir: &Path, namespace: &str, current: &str) -> PathBuf {
        let path = dir.join(format!("kubeconfig-{current}"));
        let text = format!(
            r#"apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster: {{server: "{url}"}}
  - name: nowhere
    cluster: {{server: "http://127.0.0.1:1"}}
users:
  - name: tester
    user: {{token: "{token}"}}
contexts:
  - name: fake
    context: {{cluster: fake, user: tester, namespace: {namespace}}}
  - name: nowhere
    context: {{cluster: nowhere, user: tester, namespace: {namespace}}}
current-context: {current}
"#,
            url = self.url(),
            token = self.token,
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.shared.world)
    }

    fn pod_template(name: &str, seed: &Seed<'_>) -> Value {
        let mut l = Map::new();
        l.insert("app".into(), json!(name));
        for (k, v) in seed.extra_labels {
            l.insert((*k).into(), json!(v));
        }
        json!({
            "metadata": {"labels": l},
            "spec": {"containers": [{
                "name": "app", "image": seed.image,
                "ports": [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "normal"}],
                "imagePullPolicy": "IfNotPresent",
            }], "restartPolicy": "Always", "terminationGracePeriodSeconds": 30},
        })
    }

    /// A Deployment `name` (selector `app: name`) and let its controller run.
    pub fn add_deployment(&self, ns: &str, name: &str, seed: Seed<'_>) {
        let d = json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": seed.replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": Self::pod_template(name, &seed),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
        });
        let mut w = self.world();
        w.create("deployments", ns, d);
        w.reconcile();
    }

    /// A StatefulSet `name` (selector `app: name`).
    pub fn add_statefulset(&self, ns: &str, name: &str, seed: Seed<'_>) {
        let s = json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": seed.replicas,
                "serviceName": name,
                "selector": {"matchLabels": {"app": name}},
                "template": Self::pod_template(name, &seed),
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            },
        });
        let mut w = self.world();
        w.create("statefulsets", ns, s);
        w.reconcile();
    }

    pub fn add_service(&self, ns: &str, name: &str, selector: &[(&str, &str)]) {
        let sel: Map<String, Value> = selector
            .iter()
            .map(|(k, v)| ((*k).into(), json!(v)))
            .collect();
        let svc = json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"selector": sel, "ports": [{"name": "http", "port": 80, "targetPort": 8080}], "type": "ClusterIP"},
        });
        self.world().create("services", ns, svc);
    }

    /// A PodDisruptionBudget over `app: <app>` with `minAvailable` (int or "50%").
    pub fn add_pdb(&self, ns: &str, name: &str, app: &str, min_available: Value) {
        let pdb = json!({
            "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": app}}, "minAvailable": min_available},
        });
        self.world().create("poddisruptionbudgets", ns, pdb);
    }

    pub fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.world().get(resource, ns, name).cloned()
    }

    /// Pods of `ns` that are not terminating, by name.
    pub fn pods(&self, ns: &str) -> Vec<Value> {
        let mut pods: Vec<Value> = self
            .world()
            .list("pods", ns)
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        pods.sort_by_key(name_of);
        pods
    }

    pub fn list(&self, resource: &str, ns: &str) -> Vec<Value> {
        self.world().list(resource, ns)
    }

    /// Change an object behind the adapter's back (a new resourceVersion).
    pub fn touch(&self, resource: &str, ns: &str, name: &str) {
        let mut w = self.world();
        if let Some(mut o) = w.get(resource, ns, name).cloned() {
            let n = w.rv;
            set_ptr(
                &mut o,
                "/metadata/annotations/touched",
                json!(n.to_string()),
            );
            w.put(resource, ns, o);
        }
    }

    /// Apply a merge patch to an object directly (as another client would).
    pub fn patch(&self, resource: &str, ns: &str, name: &str, patch: Value) {
        let mut w = self.world();
        if let Some(mut o) = w.get(resource, ns, name).cloned() {
            let spec_before = o.get("spec").cloned();
            merge_patch(&mut o, &patch);
            if o.get("spec").cloned() != spec_before && resource != "pods" {
                let g = int(&o, "/metadata/generation") + 1;
                o["metadata"]["generation"] = json!(g);
            }
            w.put(resource, ns, o);
            w.reconcile();
        }
    }

    /// Wait until the workload's rollout is complete and all its pods are
    /// Ready (`resource`: deployments or statefulsets).
    pub async fn settle(&self, resource: &str, ns: &str, name: &str) {
        for _ in 0..1000 {
            if let Some(o) = self.get(resource, ns, name) {
                let want = o["spec"]
                    .get("replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                let st = &o["status"];
                let n = |k: &str| st.get(k).and_then(Value::as_i64).unwrap_or(-1);
                let pods = self.pods(ns);
                let done = n("observedGeneration") == int(&o, "/metadata/generation")
                    && n("replicas") == want
                    && n("updatedReplicas") == want
                    && n("readyReplicas") == want
                    && pods.len() as i64 == want
                    && pods.iter().all(pod_ready)
                    && (resource != "statefulsets"
                        || st["currentRevision"] == st["updateRevision"]);
                if done {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{resource} {ns}/{name} did not settle: {}",
            serde_json::to_string_pretty(&self.get(resource, ns, name)).unwrap()
        );
    }

    // ---- faults

    /// Stop accepting connections and cut the open ones (`true`), or serve again.
    pub async fn set_down(&self, down: bool) {
        if down {
            self.proxy.stop();
        } else if lock(&self.proxy.accept).is_none() {
            self.proxy.start().await;
        }
    }

    /// Answer 403 to `verb` on `resource` (e.g. `patch`, `pods`).
    pub fn forbid(&self, verb: &str, resource: &str) {
        lock(&self.shared.faults)
            .forbidden
            .insert((verb.into(), resource.into()));
    }

    pub fn allow(&self, verb: &str, resource: &str) {
        lock(&self.shared.faults)
            .forbidden
            .remove(&(verb.into(), resource.into()));
    }

    /// Answer the next `n` calls of `verb` on `resource` with `code`.
    pub fn inject(&self, verb: &str, resource: &str, code: u16, n: usize) {
        lock(&self.shared.faults)
            .inject
            .entry((verb.into(), resource.into()))
            .or_default()
            .extend(std::iter::repeat_n(code, n));
    }

    /// Answer the next call of `verb` on `resource` with this raw body.
    pub fn reply_raw(&self, verb: &str, resource: &str, code: u16, body: impl Into<Bytes>) {
        lock(&self.shared.faults)
            .raw
            .entry((verb.into(), resource.into()))
            .or_default()
            .push_back((code, body.into()));
    }

    /// Injected answers not used yet for (`verb`, `resource`).
    pub fn pending_injections(&self, verb: &str, resource: &str) -> usize {
        lock(&self.shared.faults)
            .inject
            .get(&(verb.to_string(), resource.to_string()))
            .map_or(0, VecDeque::len)
    }

    /// Do the work of `verb` on `resource`, then hold the answer for `d`.
    pub fn slow_after(&self, verb: &str, resource: &str, d: Duration) {
        lock(&self.shared.faults)
            .slow_after
            .insert((verb.into(), resource.into()), d);
    }

    /// Wait `d` before every answer.
    pub fn set_delay(&self, d: Duration) {
        lock(&self.shared.faults).delay = d;
    }

    // ---- what the adapter called

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.calls).clone()
    }

    pub fn clear_calls(&self) {
        lock(&self.shared.calls).clear();
    }

    /// Every (verb, resource[/sub]) called so far.
    pub fn used(&self) -> BTreeSet<(String, String)> {
        self.calls()
            .into_iter()
            .map(|c| (c.verb, c.resource))
            .collect()
    }

    /// Number of calls of (`verb`, `resource`).
    pub fn count(&self, verb: &str, resource: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.verb == verb && c.resource == resource)
            .count()
    }
}

// ---------------------------------------------------------------------------
// Object accessors for tests.
// ---------------------------------------------------------------------------

pub fn obj_labels(o: &Value) -> BTreeMap<String, String> {
    labels(o)
}

pub fn obj_annotations(o: &Value) -> BTreeMap<String, String> {
    annotations(o)
}

pub fn obj_name(o: &Value) -> String {
    name_of(o)
}

pub fn obj_uid(o: &Value) -> String {
    uid(o)
}

pub fn is_ready(p: &Value) -> bool {
    pod_ready(p)
}

pub fn image_of(o: &Value) -> String {
    o.pointer("/spec/template/spec/containers/0/image")
        .or_else(|| o.pointer("/spec/containers/0/image"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}
