//! Talks to the Kubernetes API: one typed call per verb and resource the
//! adapter uses, each bounded by `api_timeout`, each failure mapped to a
//! [`ProviderError`] whose message names the verb and resource (so an
//! operator can fix a Role from the audit log alone).
//!
//! Owns the `kube::Client` and its credentials (in-cluster service account or
//! kubeconfig). Must not decide anything, keep state, or retry: retries on
//! conflicts live in the adapter, retries on outages in the executor. Never
//! logs the client config (it holds tokens).
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::config::{KubernetesConfig, WorkloadKind};
use super::state::Workload;
use crate::model::ProviderError;

pub(super) const PROVIDER: &str = "kubernetes";

/// Largest API reply read (a list of a few thousand pods is a few MiB).
pub const MAX_REPLY_BYTES: usize = 32 << 20;

/// An API reply that exceeded [`MAX_REPLY_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("the reply is larger than {limit} bytes")]
pub struct ReplyTooLarge {
    pub limit: usize,
}

/// A response body that fails once more than `left` bytes arrived.
pub struct Limited<B> {
    inner: B,
    left: usize,
    limit: usize,
}

impl<B> Limited<B> {
    pub fn new(inner: B, limit: usize) -> Self {
        Self {
            inner,
            left: limit,
            limit,
        }
    }
}

impl<B> hyper::body::Body for Limited<B>
where
    B: hyper::body::Body<Data = hyper::body::Bytes> + Unpin,
    B::Error: Into<tower::BoxError>,
{
    type Data = hyper::body::Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len());
                if n > self.left {
                    let limit = self.limit;
                    return Poll::Ready(Some(Err(Box::new(ReplyTooLarge { limit }))));
                }
                self.left -= n;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The API server connection of one target, scoped to its namespace.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    namespace: String,
    /// The cluster URL (no credentials), for messages.
    server: String,
    timeout: Duration,
}

/// What one API call was, for error messages: `patch pods "web-1"`.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub verb: &'static str,
    /// Resource as RBAC names it: `pods`, `deployments/scale`, `pods/eviction`.
    pub resource: &'static str,
    pub name: Option<&'a str>,
}

fn rejected(message: impl Into<String>) -> ProviderError {
    ProviderError::rejected(PROVIDER, message)
}

/// The size limit an error chain reports, if a reply was too large.
fn too_large(e: &(dyn std::error::Error + 'static)) -> Option<usize> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<ReplyTooLarge>() {
            return Some(t.limit);
        }
        cur = err.source();
    }
    None
}

/// Does some error in `e`'s source chain say "timed out"?
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if err.to_string().contains("timed out") || err.to_string().contains("deadline has elapsed")
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The innermost message of an error chain ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Map a kube error of `call` to the adapter's error classes.
pub fn classify(
    e: kube::Error,
    call: Call<'_>,
    namespace: &str,
    server: &str,
    timeout: Duration,
) -> ProviderError {
    let what = match call.name {
        Some(n) => format!(
            "{} {} {n:?} in namespace {namespace}",
            call.verb, call.resource
        ),
        None => format!("{} {} in namespace {namespace}", call.verb, call.resource),
    };
    let provider = PROVIDER.to_string();
    match e {
        kube::Error::Api(status) => {
            let msg = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            match status.code {
                401 => ProviderError::PermissionDenied {
                    provider,
                    message: format!(
                        "{what}: unauthorized (the API server did not accept the credentials): {msg}"
                    ),
                },
                403 => ProviderError::PermissionDenied {
                    provider,
                    message: format!(
                        "{what}: forbidden (the Role needs verb {:?} on resource {:?}): {msg}",
                        call.verb, call.resource
                    ),
                },
                404 => ProviderError::NotFound {
                    provider,
                    message: format!("{what}: {msg}"),
                },
                409 => ProviderError::Conflict {
                    provider,
                    message: format!("{what}: {msg}"),
                },
                429 if is_disruption_budget(&status) => rejected(format!(
                    "{what}: refused by a PodDisruptionBudget (429): {msg}; not retried, the pod keeps running"
                )),
                429 => ProviderError::Unavailable {
                    provider,
                    message: format!("{what}: the API server is throttling (429): {msg}"),
                },
                400 | 415 | 422 => rejected(format!("{what}: invalid ({}): {msg}", status.code)),
                504 => ProviderError::Timeout {
                    provider,
                    after_ms: timeout.as_millis() as u64,
                },
                c if c >= 500 => ProviderError::Unavailable {
                    provider,
                    message: format!("{what}: API server error {c}: {msg}"),
                },
                c => ProviderError::Failed {
                    provider,
                    message: format!("{what}: unexpected answer {c}: {msg}"),
                },
            }
        }
        kube::Error::HyperError(err) => {
            if timed_out(&err) {
                ProviderError::Timeout {
                    provider,
                    after_ms: timeout.as_millis() as u64,
                }
            } else {
                ProviderError::Unavailable {
                    provider,
                    message: format!(
                        "{what}: cannot reach the API server at {server}: {}",
                        root_cause(&err)
                    ),
                }
            }
        }
        kube::Error::Service(err) => {
            if let Some(limit) = too_large(err.as_ref()) {
                ProviderError::Failed {
                    provider,
                    message: format!("{what}: reply refused: larger than {limit} bytes"),
                }
            } else if timed_out(err.as_ref()) {
                ProviderError::Timeout {
                    provider,
                    after_ms: timeout.as_millis() as u64,
                }
            } else {
                ProviderError::Unavailable {
                    provider,
                    message: format!(
                        "{what}: cannot reach the API server at {server}: {}",
                        root_cause(err.as_ref())
                    ),
                }
            }
        }
        kube::Error::Auth(err) => ProviderError::PermissionDenied {
            provider,
            message: format!("{what}: authentication failed: {err}"),
        },
        kube::Error::SerdeError(err) => ProviderError::Failed {
            provider,
            message: format!("{what}: malformed answer from the API server: {err}"),
        },
        other => ProviderError::Failed {
            provider,
            message: format!("{what}: {other}"),
        },
    }
}

/// A 429 from the Eviction API because of a PodDisruptionBudget (its
/// `details.causes[].reason` is `DisruptionBudget`), not API throttling.
fn is_disruption_budget(status: &kube::core::Status) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "DisruptionBudget"))
        || status
            .message
            .to_ascii_lowercase()
            .contains("disruption budget")
}

/// The client config for `cfg`: its kubeconfig (and context), else the
/// in-cluster service account, else `$KUBECONFIG` / `~/.kube/config`.
async fn client_config(cfg: &KubernetesConfig) -> Result<kube::Config, ProviderError> {
    let options = KubeConfigOptions {
        context: cfg.context.clone(),
        cluster: None,
        user: None,
    };
    let context_note = cfg
        .context
        .as_deref()
        .map(|c| format!(" (context {c:?})"))
        .unwrap_or_default();
    if let Some(path) = &cfg.kubeconfig {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| rejected(format!("kubeconfig {}: {e}", path.display())))?;
        return kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| rejected(format!("kubeconfig {}{context_note}: {e}", path.display())));
    }
    if cfg.context.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return kube::Config::incluster()
            .map_err(|e| rejected(format!("in-cluster service account: {e}")));
    }
    kube::Config::from_kubeconfig(&options).await.map_err(|e| {
        rejected(format!(
            "no kubeconfig given, not in a cluster, and $KUBECONFIG / ~/.kube/config{context_note}: {e}"
        ))
    })
}

impl Kube {
    /// Build the client (no request is made).
    pub async fn connect(cfg: &KubernetesConfig, timeout: Duration) -> Result<Self, ProviderError> {
        let mut config = client_config(cfg).await?;
        // Retries are ours (conflicts) and the executor's (outages); kube's own
        // would retry a PodDisruptionBudget's 429 for minutes.
        config.default_retry = false;
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.reset_reader_on_write = true;
        let namespace = cfg
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| rejected(format!("Kubernetes client for {server}: {e}")))?
            .with_layer(&tower::util::MapResponseLayer::new(
                |res: hyper::Response<_>| res.map(|b| Limited::new(b, MAX_REPLY_BYTES)),
            ))
            .build();
        Ok(Self {
            client,
            namespace,
            server,
            timeout,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Run one API call under the timeout and map its error.
    async fn call<T>(
        &self,
        call: Call<'_>,
        fut: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ProviderError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(
                e,
                call,
                &self.namespace,
                &self.server,
                self.timeout,
            )),
            Err(_) => Err(ProviderError::Timeout {
                provider: PROVIDER.into(),
                after_ms: self.timeout.as_millis() as u64,
            }),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub async fn get_workload(
        &self,
        kind: WorkloadKind,
        name: &str,
    ) -> Result<Workload, ProviderError> {
        match kind {
            WorkloadKind::Deployment => {
                let call = Call {
                    verb: "get",
                    resource: "deployments",
                    name: Some(name),
                };
                let d = self.call(call, self.api::<Deployment>().get(name)).await?;
                Workload::from_deployment(d).map_err(malformed(call))
            }
            WorkloadKind::StatefulSet => {
                let call = Call {
                    verb: "get",
                    resource: "statefulsets",
                    name: Some(name),
                };
                let s = self.call(call, self.api::<StatefulSet>().get(name)).await?;
                Workload::from_statefulset(s).map_err(malformed(call))
            }
        }
    }

    /// Merge patch (`application/merge-patch+json`) of the workload.
    pub async fn patch_workload(
        &self,
        kind: WorkloadKind,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Workload, ProviderError> {
        let pp = PatchParams::default();
        match kind {
            WorkloadKind::Deployment => {
                let call = Call {
                    verb: "patch",
                    resource: "deployments",
                    name: Some(name),
                };
                let d = self
                    .call(
                        call,
                        self.api::<Deployment>()
                            .patch(name, &pp, &Patch::Merge(patch)),
                    )
                    .await?;
                Workload::from_deployment(d).map_err(malformed(call))
            }
            WorkloadKind::StatefulSet => {
                let call = Call {
                    verb: "patch",
                    resource: "statefulsets",
                    name: Some(name),
                };
                let s = self
                    .call(
                        call,
                        self.api::<StatefulSet>()
                            .patch(name, &pp, &Patch::Merge(patch)),
                    )
                    .await?;
                Workload::from_statefulset(s).map_err(malformed(call))
            }
        }
    }

    pub async fn get_scale(&self, kind: WorkloadKind, name: &str) -> Result<Scale, ProviderError> {
        match kind {
            WorkloadKind::Deployment => {
                let call = Call {
                    verb: "get",
                    resource: "deployments/scale",
                    name: Some(name),
                };
                self.call(call, self.api::<Deployment>().get_scale(name))
                    .await
            }
            WorkloadKind::StatefulSet => {
                let call = Call {
                    verb: "get",
                    resource: "statefulsets/scale",
                    name: Some(name),
                };
                self.call(call, self.api::<StatefulSet>().get_scale(name))
                    .await
            }
        }
    }

    /// PUT the scale subresource; `scale.metadata.resourceVersion` makes it
    /// conditional (409 if the workload changed since it was read).
    pub async fn replace_scale(
        &self,
        kind: WorkloadKind,
        name: &str,
        scale: &Scale,
    ) -> Result<Scale, ProviderError> {
        let pp = PostParams::default();
        match kind {
            WorkloadKind::Deployment => {
                let call = Call {
                    verb: "update",
                    resource: "deployments/scale",
                    name: Some(name),
                };
                self.call(
                    call,
                    self.api::<Deployment>().replace_scale(name, &pp, scale),
                )
                .await
            }
            WorkloadKind::StatefulSet => {
                let call = Call {
                    verb: "update",
                    resource: "statefulsets/scale",
                    name: Some(name),
                };
                self.call(
                    call,
                    self.api::<StatefulSet>().replace_scale(name, &pp, scale),
                )
                .await
            }
        }
    }

    pub async fn list_pods(&self, selector: &str) -> Result<Vec<Pod>, ProviderError> {
        let call = Call {
            verb: "list",
            resource: "pods",
            name: None,
        };
        let lp = ListParams::default().labels(selector);
        Ok(self.call(call, self.api::<Pod>().list(&lp)).await?.items)
    }

    pub async fn get_pod(&self, name: &str) -> Result<Pod, ProviderError> {
        let call = Call {
            verb: "get",
            resource: "pods",
            name: Some(name),
        };
        self.call(call, self.api::<Pod>().get(name)).await
    }

    /// Merge patch of a pod (labels and annotations).
    pub async fn patch_pod(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Pod, ProviderError> {
        let call = Call {
            verb: "patch",
            resource: "pods",
            name: Some(name),
        };
        self.call(
            call,
            self.api::<Pod>()
                .patch(name, &PatchParams::default(), &Patch::Merge(patch)),
        )
        .await
    }

    /// POST a policy/v1 Eviction for the pod (PodDisruptionBudgets apply).
    pub async fn evict_pod(&self, name: &str) -> Result<(), ProviderError> {
        let call = Call {
            verb: "create",
            resource: "pods/eviction",
            name: Some(name),
        };
        let eviction = Eviction {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            delete_options: None,
        };
        let _: serde_json::Value = self
            .call(
                call,
                self.api::<Pod>().create_subresource(
                    "eviction",
                    name,
                    &PostParams::default(),
                    &eviction,
                ),
            )
            .await?;
        Ok(())
    }

    /// DELETE the pod, only if it is still the one with `uid`.
    pub async fn delete_pod(&self, name: &str, uid: &str) -> Result<(), ProviderError> {
        let call = Call {
            verb: "delete",
            resource: "pods",
            name: Some(name),
        };
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        self.call(call, self.api::<Pod>().delete(name, &dp))
            .await
            .map(|_| ())
    }

    pub async fn list_replicasets(&self, selector: &str) -> Result<Vec<ReplicaSet>, ProviderError> {
        let call = Call {
            verb: "list",
            resource: "replicasets",
            name: None,
        };
        let lp = ListParams::default().labels(selector);
        Ok(self
            .call(call, self.api::<ReplicaSet>().list(&lp))
            .await?
            .items)
    }

    pub async fn list_controller_revisions(
        &self,
        selector: &str,
    ) -> Result<Vec<ControllerRevision>, ProviderError> {
        let call = Call {
            verb: "list",
            resource: "controllerrevisions",
            name: None,
        };
        let lp = ListParams::default().labels(selector);
        Ok(self
            .call(call, self.api::<ControllerRevision>().list(&lp))
            .await?
            .items)
    }

    pub async fn get_service(&self, name: &str) -> Result<Service, ProviderError> {
        let call = Call {
            verb: "get",
            resource: "services",
            name: Some(name),
        };
        self.call(call, self.api::<Service>().get(name)).await
    }
}

/// A reply that decoded but lacks what every such object has.
fn malformed(call: Call<'_>) -> impl FnOnce(String) -> ProviderError + '_ {
    move |why| ProviderError::Failed {
        provider: PROVIDER.into(),
        message: format!(
            "{} {} {:?}: malformed answer from the API server: {why}",
            call.verb,
            call.resource,
            call.name.unwrap_or("")
        ),
    }
}
