//! The `kubernetes` provider: a target is one Deployment or StatefulSet.
//!
//! Owns carrying out the six action kinds through the Kubernetes API, a cache
//! of the workload and its pods (refreshed by a background poller, so
//! [`Provider::state`] never waits for the API), and the start-up checks of
//! the config against the live objects. Must not decide when to act, and
//! keeps no files: every fact it needs after a restart is in the cluster
//! (annotations it writes on the objects it changes).
//!
//! Semantics worth knowing:
//! - scale_out / scale_in / scale: GET the `scale` subresource, PUT it back
//!   with the new `spec.replicas` and the `resourceVersion` it was read at; a
//!   409 (someone else changed the workload) re-reads and retries up to
//!   [`CONFLICT_RETRIES`] times, then fails with `Conflict` (retryable). The
//!   op returns once the API accepted the count; pods start asynchronously.
//! - failover: an Eviction (`pods/eviction`, policy/v1) of the pod, so a
//!   PodDisruptionBudget is honoured: a 429 naming the budget is `Rejected`
//!   (not retried: the budget will not change within the executor's retry
//!   window, and the pod keeps running). `failover: delete` deletes instead
//!   (no budget consulted). The pod's controller starts the replacement.
//! - circuit_break: open removes `quarantine_label` from the pod (the Service
//!   stops sending it traffic; the workload's selector does not use the label,
//!   so the pod stays owned and is not replaced) and keeps the value in the
//!   pod annotation `homeostat.io/quarantined`; close restores it. Half-open
//!   is close: a Service has no weights. Both are merge patches conditional
//!   on the pod's `resourceVersion`.
//! - redeploy: a rollout restart (template annotation
//!   `kubectl.kubernetes.io/restartedAt`) that also sets the configured
//!   container's image tag (`version`), command and environment, and the
//!   template annotation `homeostat.io/action-id`. It waits up to
//!   `rollout_timeout` for the rollout (kubectl's `rollout status` rules); a
//!   rollout that does not complete is undone like `kubectl rollout undo`
//!   (the previous ReplicaSet's template, or for a StatefulSet the previous
//!   ControllerRevision's, plus evicting the pods stuck on the bad revision)
//!   and reported with [`ActionOutcome::rolled_back`]. rollback is the same
//!   undo on request; it skips a revision whose rollout homeostat rolled
//!   back (the workload annotation `homeostat.io/rolled-back-action` names
//!   that redeploy), so it never returns to a known-bad version.
//! - Idempotency: outcomes of the last 100 action ids are kept in memory; in
//!   the cluster, a redeploy is recognised by its action id in the template
//!   and a rollback by the workload annotation `homeostat.io/rollback-action`,
//!   so a retry (or a restarted agent) never restarts twice. A retried
//!   eviction whose pod is gone counts as done.
//! - Start-up: the target is adopted (workload read, config checked against
//!   it: a quarantine label the selector uses is refused) at `start()`, or,
//!   if the API does not answer then, at the first contact: the agent runs
//!   without the API, `state()` and actions report `Unavailable` meanwhile.
//! - Operations are serialised per target; `state()` never waits for one.
pub mod config;

#[cfg(feature = "kubernetes")]
pub mod client;
#[cfg(feature = "kubernetes")]
pub mod state;

#[cfg(all(test, feature = "kubernetes"))]
mod tests;

use std::sync::Arc;

use crate::model::{ActionKind, ProviderError};
use crate::providers::{Provider, ProviderContext};

pub use config::KubernetesConfig;

/// What a kubernetes target can do. All six.
pub const KINDS: &[ActionKind] = &{
    use ActionKind::*;
    [ScaleOut, ScaleIn, Scale, Failover, CircuitBreak, Redeploy]
};

/// Attempts after a 409 on a conditional write before giving up with `Conflict`.
pub const CONFLICT_RETRIES: u32 = 5;

/// The adapter for `target`, as the agent builds it at start-up.
#[cfg(feature = "kubernetes")]
pub fn build(
    target: &str,
    cfg: &KubernetesConfig,
    _ctx: &ProviderContext,
) -> Result<Arc<dyn Provider>, ProviderError> {
    Ok(Arc::new(adapter::KubernetesProvider::new(
        target,
        cfg.clone(),
    )?))
}

/// The adapter for `target`: this binary was built without it.
#[cfg(not(feature = "kubernetes"))]
pub fn build(
    _target: &str,
    _cfg: &KubernetesConfig,
    _ctx: &ProviderContext,
) -> Result<Arc<dyn Provider>, ProviderError> {
    Err(ProviderError::Rejected {
        provider: "kubernetes".into(),
        message: "this homeostat was built without the `kubernetes` feature".into(),
    })
}

#[cfg(feature = "kubernetes")]
pub use adapter::KubernetesProvider;

#[cfg(feature = "kubernetes")]
mod adapter {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, Mutex, Weak};
    use std::time::Duration;

    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{json, Value};
    use tokio::task::JoinHandle;

    use super::client::{Kube, PROVIDER};
    use super::config::{FailoverMethod, KubernetesConfig, WorkloadKind};
    use super::state::{self, PodView, Progress, Revision, TemplateChange, Workload};
    use super::CONFLICT_RETRIES;
    use crate::clock::Clock;
    use crate::locks::lock;
    use crate::model::ActionKind;
    use crate::model::{
        ActionOutcome, ActionRequest, ProviderError, ProviderOp, Reconciliation, TargetState,
    };
    use crate::providers::{CompletedActions, Provider};

    const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(10);
    const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(240);
    const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
    /// Consecutive transient API errors tolerated while waiting for a rollout.
    const WAIT_ERRORS: u32 = 3;

    /// A `provider: kubernetes` target. Cheap to clone (shared inside).
    #[derive(Clone)]
    pub struct KubernetesProvider {
        inner: Arc<Inner>,
    }

    /// The workload and its pods as last read.
    #[derive(Debug, Clone)]
    struct Snapshot {
        workload: Workload,
        pods: Vec<Pod>,
    }

    #[derive(Default)]
    struct Cache {
        snap: Option<Snapshot>,
        refreshed_at: Option<tokio::time::Instant>,
        last_error: Option<String>,
    }

    struct Inner {
        target: String,
        cfg: KubernetesConfig,
        clock: Clock,
        api_timeout: Duration,
        rollout_timeout: Duration,
        poll_interval: Duration,
        kube: tokio::sync::OnceCell<Kube>,
        /// Set once the workload was read and the config checked against it
        /// (at start, or at the first contact if the API was down then).
        adopted: std::sync::atomic::AtomicBool,
        /// Serialises operations (start, execute, reconcile).
        op_lock: tokio::sync::Mutex<()>,
        cache: Mutex<Cache>,
        /// Outcomes of completed actions (idempotency within this process).
        done: Mutex<CompletedActions>,
        /// Pods an action id already tried to take down: (name, uid).
        evictions: Mutex<HashMap<String, (String, String)>>,
        poller: Mutex<Option<JoinHandle<()>>>,
    }

    impl Drop for Inner {
        fn drop(&mut self) {
            if let Some(h) = lock(&self.poller).take() {
                h.abort();
            }
        }
    }

    fn rejected(message: impl Into<String>) -> ProviderError {
        ProviderError::rejected(PROVIDER, message)
    }

    fn failed(message: impl Into<String>) -> ProviderError {
        ProviderError::failed(PROVIDER, message)
    }

    fn not_found(message: impl Into<String>) -> ProviderError {
        ProviderError::not_found(PROVIDER, message)
    }

    fn human(d: Duration) -> String {
        crate::spec::format_duration(d)
    }

    /// Pause before retrying after a 409: short, growing.
    async fn conflict_pause(attempt: u32) {
        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt + 1))).await;
    }

    impl KubernetesProvider {
        /// A provider for `target`. Nothing is contacted until [`Provider::start`].
        pub fn new(
            target: impl Into<String>,
            cfg: KubernetesConfig,
        ) -> Result<Self, ProviderError> {
            let target = target.into();
            let problems =
                crate::providers::ProviderBlock::check(&cfg, &crate::spec::YPath::root());
            if let Some((_, msg)) = problems.into_iter().next() {
                return Err(rejected(msg));
            }
            Ok(Self {
                inner: Arc::new(Inner {
                    target,
                    api_timeout: cfg.api_timeout.unwrap_or(DEFAULT_API_TIMEOUT),
                    rollout_timeout: cfg.rollout_timeout.unwrap_or(DEFAULT_ROLLOUT_TIMEOUT),
                    poll_interval: cfg.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
                    cfg,
                    clock: Clock::system(),
                    kube: tokio::sync::OnceCell::new(),
                    adopted: std::sync::atomic::AtomicBool::new(false),
                    op_lock: tokio::sync::Mutex::new(()),
                    cache: Mutex::new(Cache::default()),
                    done: Mutex::new(CompletedActions::default()),
                    evictions: Mutex::new(HashMap::new()),
                    poller: Mutex::new(None),
                }),
            })
        }

        /// The namespace the target lives in (known after `start()`).
        pub fn namespace(&self) -> Option<String> {
            self.inner.kube.get().map(|k| k.namespace().to_string())
        }

        fn start_poller(&self) {
            let mut slot = lock(&self.inner.poller);
            if slot.as_ref().is_some_and(|h| !h.is_finished()) {
                return;
            }
            // A weak handle: dropping the provider ends the poller.
            let weak: Weak<Inner> = Arc::downgrade(&self.inner);
            let interval = self.inner.poll_interval;
            *slot = Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(interval).await;
                    let Some(inner) = weak.upgrade() else { return };
                    if let Err(e) = inner.refresh_or_adopt().await {
                        let msg = e.to_string();
                        let changed = lock(&inner.cache).last_error.as_deref() != Some(&msg);
                        if changed {
                            tracing::warn!(target = %inner.target, error = %msg, "kubernetes state refresh failed");
                        }
                        lock(&inner.cache).last_error = Some(msg);
                    }
                    drop(inner);
                }
            }));
        }
    }

    impl Inner {
        fn kube(&self) -> Result<&Kube, ProviderError> {
            self.kube
                .get()
                .ok_or_else(|| failed("provider not started"))
        }

        fn kind(&self) -> WorkloadKind {
            self.cfg.kind
        }

        fn name(&self) -> &str {
            &self.cfg.name
        }

        fn container(&self) -> Option<&str> {
            self.cfg.container.as_deref()
        }

        fn view<'a>(&'a self, w: &Workload) -> PodView<'a> {
            PodView {
                metrics_port: w.metrics_port(self.cfg.metrics_port, self.container()),
                quarantine_label: self.cfg.quarantine_label.as_deref(),
                container: self.container(),
            }
        }

        fn describe(&self) -> String {
            let ns = self.kube.get().map(|k| k.namespace()).unwrap_or("?");
            format!("{:?} {ns}/{}", self.kind(), self.name())
        }

        /// The workload's selector in query syntax.
        fn selector(&self, w: &Workload) -> Result<String, ProviderError> {
            state::selector_string(&w.selector)
                .map_err(|e| rejected(format!("{}: {e}", self.describe())))
        }

        /// Connect, read the workload and its pods, and check the config
        /// against them (quarantine label, container).
        async fn adopt(&self) -> Result<Snapshot, ProviderError> {
            self.kube
                .get_or_try_init(|| Kube::connect(&self.cfg, self.api_timeout))
                .await?;
            let snap = self.refresh().await?;
            self.validate(&snap.workload).await?;
            if !self.adopted.swap(true, std::sync::atomic::Ordering::SeqCst) {
                tracing::info!(
                    target = %self.target,
                    workload = %self.describe(),
                    replicas = snap.workload.replicas,
                    pods = snap.pods.len(),
                    "kubernetes target adopted"
                );
            }
            Ok(snap)
        }

        /// [`Inner::refresh`] once adopted, [`Inner::adopt`] before.
        async fn refresh_or_adopt(&self) -> Result<Snapshot, ProviderError> {
            if self.adopted.load(std::sync::atomic::Ordering::SeqCst) {
                self.refresh().await
            } else {
                self.adopt().await
            }
        }

        /// Read the workload and its pods; update the cache.
        async fn refresh(&self) -> Result<Snapshot, ProviderError> {
            let kube = self.kube()?;
            let workload = kube.get_workload(self.kind(), self.name()).await?;
            let selector = self.selector(&workload)?;
            let pods = kube.list_pods(&selector).await?;
            let snap = Snapshot { workload, pods };
            let mut cache = lock(&self.cache);
            cache.snap = Some(snap.clone());
            cache.refreshed_at = Some(crate::clock::monotonic_now());
            cache.last_error = None;
            Ok(snap)
        }

        fn target_state(&self, snap: &Snapshot) -> TargetState {
            let view = self.view(&snap.workload);
            let mut instances: Vec<_> = snap
                .pods
                .iter()
                .filter_map(|p| state::instance(p, view))
                .collect();
            instances.sort_by(|a, b| a.id.cmp(&b.id));
            TargetState {
                replicas: snap.workload.replicas,
                instances,
                version: snap
                    .workload
                    .image(self.container())
                    .map(|i| state::image_tag(&i)),
            }
        }

        fn summary(&self, snap: &Snapshot) -> Value {
            let ns = self.kube.get().map(|k| k.namespace()).unwrap_or("");
            state::summary(&snap.workload, &snap.pods, ns, self.view(&snap.workload))
        }

        /// Start-up checks of the config against the live objects.
        async fn validate(&self, w: &Workload) -> Result<(), ProviderError> {
            let kube = self.kube()?;
            self.selector(w)?;
            if let Some(c) = self.container() {
                if w.container(Some(c)).is_none() {
                    return Err(rejected(format!(
                        "kubernetes.container: {} has no container {c:?}",
                        self.describe()
                    )));
                }
            }
            if let Some(label) = &self.cfg.quarantine_label {
                let svc = match &self.cfg.service {
                    Some(name) => Some((name.as_str(), kube.get_service(name).await?)),
                    None => None,
                };
                state::check_quarantine(
                    w,
                    kube.namespace(),
                    label,
                    svc.as_ref().map(|(n, s)| (*n, s)),
                )
                .map_err(|e| rejected(format!("kubernetes.quarantine_label: {e}")))?;
            }
            Ok(())
        }

        // ------------------------------------------------------------ scale

        async fn set_replicas(&self, to: u32) -> Result<(), ProviderError> {
            let kube = self.kube()?;
            let wanted = i32::try_from(to).map_err(|_| rejected(format!("{to} replicas")))?;
            let mut attempt = 0;
            loop {
                let mut scale = kube.get_scale(self.kind(), self.name()).await?;
                let spec = scale.spec.get_or_insert_with(Default::default);
                if spec.replicas == Some(wanted) {
                    return Ok(());
                }
                spec.replicas = Some(wanted);
                match kube.replace_scale(self.kind(), self.name(), &scale).await {
                    Ok(_) => return Ok(()),
                    Err(ProviderError::Conflict { provider, message }) => {
                        if attempt >= CONFLICT_RETRIES {
                            return Err(ProviderError::Conflict {
                                provider,
                                message: format!(
                                    "{message} (still conflicting after {} attempts: the workload keeps changing)",
                                    attempt + 1
                                ),
                            });
                        }
                        tracing::debug!(target = %self.target, attempt, "scale conflict; re-reading");
                        conflict_pause(attempt).await;
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        // --------------------------------------------------------- failover

        async fn replace(
            &self,
            action_id: &str,
            instance: &str,
            snap: &Snapshot,
        ) -> Result<(), ProviderError> {
            let kube = self.kube()?;
            let port = self.view(&snap.workload).metrics_port;
            let prior = lock(&self.evictions).get(action_id).cloned();
            let Some(pod) = state::find_pod(&snap.pods, instance, port) else {
                if let Some((name, _)) = prior {
                    tracing::info!(target = %self.target, pod = %name, "pod of an earlier attempt is gone: failover done");
                    return Ok(());
                }
                return Err(not_found(format!(
                    "no pod {instance:?} of {}",
                    self.describe()
                )));
            };
            let name = state::pod_name(pod).to_string();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if let Some((_, old_uid)) = &prior {
                if *old_uid != uid {
                    // A StatefulSet's replacement carries the same name.
                    return Ok(());
                }
            }
            if state::terminating(pod) {
                return Ok(());
            }
            lock(&self.evictions).insert(action_id.to_string(), (name.clone(), uid.clone()));
            let result = match self.cfg.failover {
                FailoverMethod::Evict => kube.evict_pod(&name).await,
                FailoverMethod::Delete => kube.delete_pod(&name, &uid).await,
            };
            match result {
                Ok(()) => Ok(()),
                // Gone between the list and the eviction: the goal holds.
                Err(ProviderError::NotFound { .. }) => Ok(()),
                // Delete's uid precondition failed: that pod is gone already.
                Err(ProviderError::Conflict { .. })
                    if self.cfg.failover == FailoverMethod::Delete =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }

        // -------------------------------------------------- circuit breaking

        async fn set_quarantine(
            &self,
            instance: &str,
            open: bool,
            snap: &Snapshot,
        ) -> Result<(), ProviderError> {
            let kube = self.kube()?;
            let label = self.cfg.quarantine_label.as_deref().ok_or_else(|| {
                rejected(
                    "circuit_break needs kubernetes.quarantine_label (a pod label the Service selects on)",
                )
            })?;
            let port = self.view(&snap.workload).metrics_port;
            let pod = state::find_pod(&snap.pods, instance, port)
                .ok_or_else(|| not_found(format!("no pod {instance:?} of {}", self.describe())))?;
            let name = state::pod_name(pod).to_string();
            let template_value = snap.workload.template_labels().get(label).cloned();
            let mut pod = pod.clone();
            let mut attempt = 0;
            loop {
                let labels = state::pod_labels(&pod);
                let annotations = state::pod_annotations(&pod);
                let rv = pod.metadata.resource_version.clone().unwrap_or_default();
                let patch = if open {
                    let Some(value) = labels.get(label) else {
                        return Ok(());
                    };
                    json!({"metadata": {
                        "resourceVersion": rv,
                        "labels": {label: null},
                        "annotations": {state::QUARANTINE_ANNOTATION: value},
                    }})
                } else if labels.contains_key(label) {
                    if !annotations.contains_key(state::QUARANTINE_ANNOTATION) {
                        return Ok(());
                    }
                    json!({"metadata": {
                        "resourceVersion": rv,
                        "annotations": {state::QUARANTINE_ANNOTATION: null},
                    }})
                } else {
                    let value = annotations
                        .get(state::QUARANTINE_ANNOTATION)
                        .cloned()
                        .or_else(|| template_value.clone())
                        .ok_or_else(|| {
                            rejected(format!(
                                "pod {name} has no label {label} and no record of its value"
                            ))
                        })?;
                    json!({"metadata": {
                        "resourceVersion": rv,
                        "labels": {label: value},
                        "annotations": {state::QUARANTINE_ANNOTATION: null},
                    }})
                };
                match kube.patch_pod(&name, &patch).await {
                    Ok(_) => return Ok(()),
                    Err(ProviderError::Conflict { provider, message }) => {
                        if attempt >= CONFLICT_RETRIES {
                            return Err(ProviderError::Conflict {
                                provider,
                                message: format!(
                                    "{message} (still conflicting after {} attempts)",
                                    attempt + 1
                                ),
                            });
                        }
                        conflict_pause(attempt).await;
                        attempt += 1;
                        pod = kube.get_pod(&name).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        // ------------------------------------------------ redeploy, rollback

        /// Poll until the rollout completes (`Ok(Ok)`), fails or times out
        /// (`Ok(Err(why))`). API errors end the wait after a few in a row.
        async fn wait_rollout(&self) -> Result<Result<Workload, String>, ProviderError> {
            let kube = self.kube()?;
            let deadline = crate::clock::monotonic_now() + self.rollout_timeout;
            let mut errors = 0;
            loop {
                let last_why = match kube.get_workload(self.kind(), self.name()).await {
                    Ok(w) => {
                        errors = 0;
                        match state::progress(&w) {
                            Progress::Complete => return Ok(Ok(w)),
                            Progress::Failed(why) => return Ok(Err(why)),
                            Progress::Waiting(why) => why,
                        }
                    }
                    Err(e) if e.is_retryable() && errors < WAIT_ERRORS => {
                        errors += 1;
                        e.to_string()
                    }
                    Err(e) => return Err(e),
                };
                let now = crate::clock::monotonic_now();
                if now >= deadline {
                    return Ok(Err(format!(
                        "not complete after {}: {last_why}",
                        human(self.rollout_timeout)
                    )));
                }
                tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
            }
        }

        /// The revision before the current one.
        async fn previous_revision(&self, w: &Workload) -> Result<Revision, ProviderError> {
            let kube = self.kube()?;
            let selector = self.selector(w)?;
            let bad = w
                .annotations
                .get(state::ROLLED_BACK_ANNOTATION)
                .map(String::as_str);
            let prev = match self.kind() {
                WorkloadKind::Deployment => {
                    let rses = kube.list_replicasets(&selector).await?;
                    state::previous_replicaset(&rses, &w.uid, w.revision().unwrap_or(i64::MAX), bad)
                }
                WorkloadKind::StatefulSet => {
                    let crs = kube.list_controller_revisions(&selector).await?;
                    state::previous_controller_revision(
                        &crs,
                        &w.uid,
                        w.status.update_revision.as_deref(),
                        bad,
                    )
                }
            };
            prev.ok_or_else(|| {
                rejected(format!(
                    "{} has no previous revision to roll back to",
                    self.describe()
                ))
            })
        }

        /// Write the previous revision's template (what `kubectl rollout
        /// undo` does), marking the workload with `marker: action_id`.
        async fn undo(
            &self,
            mut w: Workload,
            action_id: &str,
            marker: &str,
        ) -> Result<Revision, ProviderError> {
            let kube = self.kube()?;
            let mut attempt = 0;
            loop {
                let prev = self.previous_revision(&w).await?;
                let mut spec = json!({});
                if let Some(diff) = state::merge_diff(&w.template, &prev.template) {
                    spec = json!({"template": diff});
                }
                let patch = json!({
                    "metadata": {
                        "resourceVersion": w.resource_version,
                        "annotations": {marker: action_id},
                    },
                    "spec": spec,
                });
                match kube.patch_workload(self.kind(), self.name(), &patch).await {
                    Ok(_) => return Ok(prev),
                    Err(ProviderError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                        conflict_pause(attempt).await;
                        attempt += 1;
                        w = kube.get_workload(self.kind(), self.name()).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        /// A StatefulSet does not replace a pod that never became ready on a
        /// bad revision by itself ("forced rollback"): evict those pods.
        async fn evict_stuck(&self, bad_revision: Option<&str>) -> Result<(), ProviderError> {
            let Some(bad) = bad_revision else {
                return Ok(());
            };
            let kube = self.kube()?;
            let w = kube.get_workload(self.kind(), self.name()).await?;
            let pods = kube.list_pods(&self.selector(&w)?).await?;
            for p in pods.iter().filter(|p| {
                !state::terminating(p)
                    && !state::pod_ready(p)
                    && state::pod_labels(p)
                        .get("controller-revision-hash")
                        .map(String::as_str)
                        == Some(bad)
            }) {
                match kube.evict_pod(state::pod_name(p)).await {
                    Ok(()) | Err(ProviderError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }

        async fn redeploy(
            &self,
            action_id: &str,
            version: Option<&str>,
            command: Option<&[String]>,
            env: &BTreeMap<String, String>,
        ) -> Result<Option<String>, ProviderError> {
            let kube = self.kube()?;
            let mut w = kube.get_workload(self.kind(), self.name()).await?;
            if w.annotations
                .get(state::ROLLED_BACK_ANNOTATION)
                .map(String::as_str)
                == Some(action_id)
            {
                return Ok(Some(format!(
                    "the rollout of action {action_id} did not complete and was rolled back (found on a retry)"
                )));
            }
            let what = match version {
                Some(v) => format!("version {v}"),
                None => "a restart".to_string(),
            };
            let restarted_at = crate::clock::rfc3339(self.clock.now_ms());
            let change = TemplateChange {
                version,
                command,
                env,
                restarted_at: &restarted_at,
                action_id,
            };
            let mut attempt = 0;
            // A retry of this action finds its id in the template: no second restart.
            while w
                .template_annotations()
                .get(state::ACTION_ANNOTATION)
                .map(String::as_str)
                != Some(action_id)
            {
                let new_template =
                    state::changed_template(&w.template, self.container(), change)
                        .map_err(|e| rejected(format!("redeploy of {}: {e}", self.describe())))?;
                let Some(diff) = state::merge_diff(&w.template, &new_template) else {
                    break;
                };
                let patch = json!({
                    "metadata": {"resourceVersion": w.resource_version},
                    "spec": {"template": diff},
                });
                match kube.patch_workload(self.kind(), self.name(), &patch).await {
                    Ok(nw) => w = nw,
                    Err(ProviderError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                        conflict_pause(attempt).await;
                        attempt += 1;
                        w = kube.get_workload(self.kind(), self.name()).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            let why = match self.wait_rollout().await? {
                Ok(_) => return Ok(None),
                Err(why) => why,
            };
            tracing::warn!(target = %self.target, %why, "rollout did not complete; rolling back");
            let w = kube.get_workload(self.kind(), self.name()).await?;
            let bad_revision = w.status.update_revision.clone();
            let prev = self
                .undo(w, action_id, state::ROLLED_BACK_ANNOTATION)
                .await?;
            if self.kind() == WorkloadKind::StatefulSet {
                self.evict_stuck(bad_revision.as_deref()).await?;
            }
            let image =
                state::container_image(&prev.template, self.container()).unwrap_or_default();
            let reason = format!(
                "the rollout of {what} did not complete ({why}); rolled back to revision {} ({image})",
                prev.number
            );
            match self.wait_rollout().await? {
                Ok(_) => Ok(Some(reason)),
                Err(why2) => Err(failed(format!(
                    "{reason}, but the rollback's rollout did not complete either: {why2}"
                ))),
            }
        }

        async fn rollback(&self, action_id: &str) -> Result<(), ProviderError> {
            let kube = self.kube()?;
            let w = kube.get_workload(self.kind(), self.name()).await?;
            let mut note = String::from("the previous revision");
            if w.annotations
                .get(state::ROLLBACK_ANNOTATION)
                .map(String::as_str)
                != Some(action_id)
            {
                let bad_revision = w.status.update_revision.clone();
                let prev = self.undo(w, action_id, state::ROLLBACK_ANNOTATION).await?;
                note = format!("revision {}", prev.number);
                if self.kind() == WorkloadKind::StatefulSet {
                    self.evict_stuck(bad_revision.as_deref()).await?;
                }
            }
            match self.wait_rollout().await? {
                Ok(_) => Ok(()),
                Err(why) => Err(failed(format!(
                    "rolled {} back to {note}, but the rollout did not complete: {why}",
                    self.describe()
                ))),
            }
        }

        fn recall(&self, req: &ActionRequest) -> Result<Option<ActionOutcome>, ProviderError> {
            lock(&self.done).recall(req, PROVIDER)
        }

        fn remember(&self, req: &ActionRequest, outcome: &ActionOutcome) {
            lock(&self.done).record(req, outcome.clone());
            lock(&self.evictions).remove(&req.action_id);
        }
    }

    #[async_trait::async_trait]
    impl Provider for KubernetesProvider {
        fn name(&self) -> &'static str {
            PROVIDER
        }

        fn supports(&self) -> &'static [ActionKind] {
            super::KINDS
        }

        /// A redeploy waits up to `rollout_timeout` for its rollout, and as
        /// long again for the undo when it does not complete.
        fn attempt_timeout(&self, op: &ProviderOp) -> Option<Duration> {
            matches!(op, ProviderOp::Redeploy { .. } | ProviderOp::Rollback)
                .then(|| self.inner.rollout_timeout * 2 + crate::providers::ATTEMPT_MARGIN)
        }

        async fn start(&self) -> Result<TargetState, ProviderError> {
            let inner = &self.inner;
            let _op = inner.op_lock.lock().await;
            let adopted = inner.adopt().await;
            self.start_poller();
            match adopted {
                Ok(snap) => Ok(inner.target_state(&snap)),
                // The agent runs without the API; the poller adopts the target
                // at the first contact, and actions fail as unavailable meanwhile.
                Err(e @ (ProviderError::Unavailable { .. } | ProviderError::Timeout { .. })) => {
                    tracing::warn!(target = %inner.target, error = %e, "Kubernetes API not reachable at start; the target is adopted when it is");
                    lock(&inner.cache).last_error = Some(e.to_string());
                    Ok(TargetState::default())
                }
                // A config that does not fit the cluster is refused loudly.
                Err(e) => Err(e),
            }
        }

        async fn state(&self) -> Result<TargetState, ProviderError> {
            let inner = &self.inner;
            let cache = lock(&inner.cache);
            let Some(snap) = &cache.snap else {
                return Err(match &cache.last_error {
                    Some(e) => ProviderError::Unavailable {
                        provider: PROVIDER.into(),
                        message: format!("{} not read yet: {e}", inner.describe()),
                    },
                    None => failed("provider not started"),
                });
            };
            let stale_after = inner.poll_interval * 3 + inner.api_timeout;
            let age = cache
                .refreshed_at
                .map(|t| crate::clock::monotonic_now().saturating_duration_since(t))
                .unwrap_or(Duration::MAX);
            if age > stale_after {
                return Err(ProviderError::Unavailable {
                    provider: PROVIDER.into(),
                    message: format!(
                        "no fresh state of {} for {}: {}",
                        inner.describe(),
                        human(Duration::from_secs(age.as_secs())),
                        cache.last_error.as_deref().unwrap_or("no refresh yet")
                    ),
                });
            }
            Ok(inner.target_state(snap))
        }

        async fn execute(&self, req: &ActionRequest) -> Result<ActionOutcome, ProviderError> {
            let inner = &self.inner;
            let _op = inner.op_lock.lock().await;
            if let Some(outcome) = inner.recall(req)? {
                return Ok(outcome);
            }
            let snap = inner.refresh_or_adopt().await?;
            let before = inner.summary(&snap);
            let rolled_back = match &req.op {
                ProviderOp::SetReplicas { to, .. } => inner.set_replicas(*to).await.map(|_| None),
                ProviderOp::Replace { instance } => inner
                    .replace(&req.action_id, instance, &snap)
                    .await
                    .map(|_| None),
                ProviderOp::CircuitOpen { instance } => inner
                    .set_quarantine(instance, true, &snap)
                    .await
                    .map(|_| None),
                ProviderOp::CircuitHalfOpen { instance }
                | ProviderOp::CircuitClose { instance } => inner
                    .set_quarantine(instance, false, &snap)
                    .await
                    .map(|_| None),
                ProviderOp::Redeploy {
                    version,
                    command,
                    env,
                } => {
                    inner
                        .redeploy(&req.action_id, version.as_deref(), command.as_deref(), env)
                        .await
                }
                ProviderOp::Rollback => inner.rollback(&req.action_id).await.map(|_| None),
            }?;
            let after = match inner.refresh().await {
                Ok(s) => inner.summary(&s),
                Err(e) => {
                    json!({"error": format!("state after the action could not be read: {e}")})
                }
            };
            let outcome = ActionOutcome {
                before,
                after,
                rolled_back,
            };
            inner.remember(req, &outcome);
            Ok(outcome)
        }

        async fn reconcile(&self, req: &ActionRequest) -> Result<Reconciliation, ProviderError> {
            let inner = &self.inner;
            if inner.recall(req)?.is_some() {
                return Ok(Reconciliation::Applied);
            }
            inner.refresh_or_adopt().await?;
            let kube = inner.kube()?;
            match &req.op {
                ProviderOp::SetReplicas { from, to } => {
                    let scale = kube.get_scale(inner.kind(), inner.name()).await?;
                    let now = scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
                    Ok(state::reconcile_scale(now, *from, *to))
                }
                ProviderOp::Replace { instance } => {
                    let snap = inner.refresh().await?;
                    let port = inner.view(&snap.workload).metrics_port;
                    Ok(match state::find_pod(&snap.pods, instance, port) {
                        Some(p) => state::reconcile_replace(Some(p), inner.kind()),
                        // An address may have been reused or never resolved: cannot tell.
                        None if instance.contains(':') => Reconciliation::Unknown,
                        None => state::reconcile_replace(None, inner.kind()),
                    })
                }
                ProviderOp::CircuitOpen { instance }
                | ProviderOp::CircuitHalfOpen { instance }
                | ProviderOp::CircuitClose { instance } => {
                    let Some(label) = inner.cfg.quarantine_label.as_deref() else {
                        return Ok(Reconciliation::Unknown);
                    };
                    let snap = inner.refresh().await?;
                    let port = inner.view(&snap.workload).metrics_port;
                    let want = !matches!(req.op, ProviderOp::CircuitOpen { .. });
                    Ok(state::reconcile_circuit(
                        state::find_pod(&snap.pods, instance, port),
                        label,
                        want,
                    ))
                }
                ProviderOp::Redeploy { .. } => {
                    let w = kube.get_workload(inner.kind(), inner.name()).await?;
                    Ok(state::reconcile_redeploy(&w, &req.action_id))
                }
                ProviderOp::Rollback => {
                    let w = kube.get_workload(inner.kind(), inner.name()).await?;
                    Ok(state::reconcile_rollback(&w, &req.action_id))
                }
            }
        }

        async fn shutdown(&self, _stop_instances: bool) {
            // The workload belongs to the cluster: a demo teardown does not delete it.
            if let Some(h) = lock(&self.inner.poller).take() {
                h.abort();
            }
        }
    }
}
