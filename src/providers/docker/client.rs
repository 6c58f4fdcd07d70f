//! The docker provider's contact with the Docker Engine API (bollard over the
//! engine's Unix socket).
//!
//! Owns: the connection (made lazily, so an agent starts while the engine is
//! down; API version negotiated with the engine on first contact), a timeout
//! on every call, the mapping of bollard's errors to [`ProviderError`]
//! (socket missing or refused → unavailable, 401/403 or `EACCES` →
//! permission denied, 404 → not found, 409 → conflict, no answer → timeout),
//! and turning an inspected container into an [`Observed`] view. Must not
//! decide which container to create or remove: `mod.rs` does.
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, EndpointSettings,
    HealthStatusEnum, ImageInspect, NetworkConnectRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;

use crate::model::ProviderError;

use super::PROVIDER;

/// Label naming the target a container belongs to (`homeostat.target=<name>`).
pub const LABEL_TARGET: &str = "homeostat.target";
/// Label naming the action id that created a container (idempotency key).
pub const LABEL_ACTION: &str = "homeostat.action";
/// Label naming the container a new one replaces (failover, redeploy).
pub const LABEL_REPLACES: &str = "homeostat.replaces";
/// Label with the image the containers ran before the redeploy that created
/// this one: what a rollback returns to if the state file is lost.
pub const LABEL_PREVIOUS_IMAGE: &str = "homeostat.previous-image";

/// Labels the adapter sets per container; never copied from one to another.
pub const PER_CONTAINER_LABELS: [&str; 3] = [LABEL_ACTION, LABEL_REPLACES, LABEL_PREVIOUS_IMAGE];

/// Most containers one target may list; more is refused as a malformed reply
/// rather than inspected one by one.
pub const MAX_CONTAINERS: usize = 1000;

/// A container's lifecycle state, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
            Status::Unknown => "unknown",
        }
    }
}

/// A container's Docker health check state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The container has no health check.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::None => "none",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// One container of a target, as inspected.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Creation time as a sortable key (see [`created_key`]).
    pub created: String,
    /// The image reference it was created from (`Config.Image`, e.g. `web:v1`).
    pub image: String,
    /// The image id it runs (`sha256:…`).
    pub image_id: String,
    pub status: Status,
    pub health: Health,
    /// Host port the configured container port is published on.
    pub host_port: Option<u16>,
    pub labels: BTreeMap<String, String>,
    /// Entrypoint and command as configured.
    pub cmd: Vec<String>,
    /// Environment as configured (`KEY=value`); never logged or audited.
    pub env: Vec<String>,
    pub exit_code: Option<i64>,
    /// The engine's error for a container that failed to start.
    pub error: Option<String>,
    /// Output of the last health check run (for messages).
    pub last_health_output: Option<String>,
}

impl Observed {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    pub fn action(&self) -> Option<&str> {
        self.label(LABEL_ACTION)
    }

    /// A short description of why it is not healthy (status, exit code, health output).
    pub fn condition(&self) -> String {
        let mut s = self.status.as_str().to_string();
        if let Some(code) = self.exit_code.filter(|_| self.status == Status::Exited) {
            s.push_str(&format!(" (exit code {code})"));
        }
        if self.health != Health::None {
            s.push_str(&format!(", health {}", self.health.as_str()));
        }
        if let Some(out) = self
            .last_health_output
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            s.push_str(&format!(", last check: {}", truncate(out, 200)));
        }
        if let Some(e) = self.error.as_deref().filter(|e| !e.is_empty()) {
            s.push_str(&format!(", error: {}", truncate(e, 300)));
        }
        s
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `2024-05-01T10:00:00.5Z` → a key that sorts like the instant it names.
/// The engine trims trailing zeros of the fraction, so plain strings do not
/// sort; the fraction is padded to nanoseconds. Unparseable input is kept
/// as is (it sorts after every parsed key of the same second at worst).
pub fn created_key(rfc3339: &str) -> String {
    let s = rfc3339.trim();
    let Some(body) = s.strip_suffix('Z') else {
        return s.to_string();
    };
    let (secs, frac) = match body.split_once('.') {
        Some((a, b)) => (a, b),
        None => (body, ""),
    };
    if secs.len() != 19 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return s.to_string();
    }
    format!("{secs}.{frac:0<9}Z")
}

/// The engine's view of one container, from its inspect document.
/// `None` if it lacks an id (a malformed reply).
pub fn observe(c: &ContainerInspectResponse, port: u16) -> Option<Observed> {
    let id = c.id.clone().filter(|i| !i.is_empty())?;
    let cfg = c.config.as_ref();
    let state = c.state.as_ref();
    let status = match state.and_then(|s| s.status) {
        Some(ContainerStateStatusEnum::CREATED) => Status::Created,
        Some(ContainerStateStatusEnum::RUNNING) => Status::Running,
        Some(ContainerStateStatusEnum::PAUSED) => Status::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => Status::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => Status::Removing,
        Some(ContainerStateStatusEnum::EXITED) => Status::Exited,
        Some(ContainerStateStatusEnum::DEAD) => Status::Dead,
        _ => Status::Unknown,
    };
    let health_state = state.and_then(|s| s.health.as_ref());
    let health = match health_state.and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        _ => Health::None,
    };
    let last_health_output = health_state
        .and_then(|h| h.log.as_ref())
        .and_then(|l| l.last())
        .and_then(|r| r.output.clone());
    let mut cmd = cfg.and_then(|c| c.entrypoint.clone()).unwrap_or_default();
    cmd.extend(cfg.and_then(|c| c.cmd.clone()).unwrap_or_default());
    Some(Observed {
        name: c
            .name
            .as_deref()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| id.chars().take(12).collect()),
        created: created_key(c.created.as_deref().unwrap_or("")),
        image: cfg.and_then(|c| c.image.clone()).unwrap_or_default(),
        image_id: c.image.clone().unwrap_or_default(),
        status,
        health,
        host_port: host_port_of(c, port),
        labels: cfg
            .and_then(|c| c.labels.clone())
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cmd,
        env: cfg.and_then(|c| c.env.clone()).unwrap_or_default(),
        exit_code: state.and_then(|s| s.exit_code),
        error: state
            .and_then(|s| s.error.clone())
            .filter(|e| !e.is_empty()),
        last_health_output,
        id,
    })
}

/// The host port `port/tcp` is published on: the live binding of a running
/// container, else the configured binding (kept while it is stopped).
pub fn host_port_of(c: &ContainerInspectResponse, port: u16) -> Option<u16> {
    let key = format!("{port}/tcp");
    let parse = |bindings: Option<&Option<Vec<bollard::models::PortBinding>>>| {
        bindings
            .and_then(|b| b.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|b| b.host_port.as_deref())
            .find_map(|p| p.parse::<u16>().ok().filter(|p| *p != 0))
    };
    let live = c
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .and_then(|p| parse(p.get(&key)));
    live.or_else(|| {
        c.host_config
            .as_ref()
            .and_then(|h| h.port_bindings.as_ref())
            .and_then(|p| parse(p.get(&key)))
    })
}

/// The error's class for the executor, from a bollard error.
pub fn map_error(what: &str, e: &bollard::errors::Error) -> ProviderError {
    use bollard::errors::Error as E;
    let provider = PROVIDER.to_string();
    match e {
        E::SocketNotFoundError(path) => ProviderError::Unavailable {
            provider,
            message: format!("{what}: Docker socket {path} not found (is the engine running?)"),
        },
        E::RequestTimeoutError => ProviderError::Timeout {
            provider,
            after_ms: 0,
        },
        E::DockerResponseServerError {
            status_code,
            message,
        } => {
            let message = format!(
                "{what}: engine answered {status_code}: {}",
                truncate(message.trim(), 500)
            );
            match status_code {
                401 | 403 => ProviderError::PermissionDenied { provider, message },
                404 => ProviderError::NotFound { provider, message },
                409 => ProviderError::Conflict { provider, message },
                400 | 422 => ProviderError::Rejected { provider, message },
                502..=504 => ProviderError::Unavailable { provider, message },
                _ => ProviderError::Failed { provider, message },
            }
        }
        E::JsonDataError { message, .. } => ProviderError::Failed {
            provider,
            message: format!(
                "{what}: malformed reply from the engine: {}",
                truncate(message, 300)
            ),
        },
        E::JsonSerdeError { err } => ProviderError::Failed {
            provider,
            message: format!("{what}: malformed reply from the engine: {err}"),
        },
        E::APIVersionParseError {} => ProviderError::Failed {
            provider,
            message: format!("{what}: the engine reported an API version this client cannot parse"),
        },
        other => match io_kind(other) {
            Some((std::io::ErrorKind::PermissionDenied, io)) => ProviderError::PermissionDenied {
                provider,
                message: format!("{what}: {io} (the agent's user may not open the Docker socket)"),
            },
            Some((std::io::ErrorKind::TimedOut, _)) => ProviderError::Timeout {
                provider,
                after_ms: 0,
            },
            Some((_, io)) => ProviderError::Unavailable {
                provider,
                message: format!("{what}: cannot reach the engine: {io}"),
            },
            None if is_transport(other) => ProviderError::Unavailable {
                provider,
                message: format!("{what}: cannot reach the engine: {}", chain(other)),
            },
            None => ProviderError::Failed {
                provider,
                message: format!("{what}: {}", chain(other)),
            },
        },
    }
}

/// Connection-level failures (as opposed to a reply we did not like).
fn is_transport(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        e,
        E::HyperResponseError { .. } | E::HyperLegacyError { .. } | E::IOError { .. }
    )
}

/// The first `std::io::Error` in the error's source chain, with its kind.
fn io_kind(e: &bollard::errors::Error) -> Option<(std::io::ErrorKind, String)> {
    // `IOError` is transparent: its `source()` skips the io::Error itself.
    if let bollard::errors::Error::IOError { err } = e {
        return Some((err.kind(), err.to_string()));
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some((io.kind(), io.to_string()));
        }
        cur = err.source();
    }
    None
}

/// The error and its sources, `a: b: c`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = err.source();
    }
    out
}

/// Is this an engine answer that means "the host port is taken"?
pub fn is_port_conflict(e: &ProviderError) -> bool {
    let msg = e.to_string();
    msg.contains("port is already allocated") || msg.contains("address already in use")
}

/// The Engine API of one socket, every call bounded by a timeout.
pub struct Engine {
    socket: PathBuf,
    api_timeout: Duration,
    stop_timeout: Duration,
    docker: tokio::sync::Mutex<Option<Docker>>,
}

impl Engine {
    pub fn new(socket: PathBuf, api_timeout: Duration, stop_timeout: Duration) -> Self {
        Self {
            socket,
            api_timeout,
            stop_timeout,
            docker: tokio::sync::Mutex::new(None),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn api_timeout(&self) -> Duration {
        self.api_timeout
    }

    fn timeout_error(&self, what: &str, after: Duration) -> ProviderError {
        tracing::warn!(socket = %self.socket.display(), call = what, "Docker Engine API call timed out");
        ProviderError::Timeout {
            provider: PROVIDER.into(),
            after_ms: after.as_millis() as u64,
        }
    }

    /// The client, connecting and negotiating the API version on first use.
    async fn client(&self) -> Result<Docker, ProviderError> {
        let mut slot = self.docker.lock().await;
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let path = self
            .socket
            .to_str()
            .ok_or_else(|| ProviderError::Rejected {
                provider: PROVIDER.into(),
                message: format!("socket path {} is not UTF-8", self.socket.display()),
            })?;
        // bollard's own timeout is only a backstop: every call below has ours.
        let backstop = (self.api_timeout + self.stop_timeout).as_secs() + 30;
        let docker = Docker::connect_with_unix(path, backstop, bollard::API_DEFAULT_VERSION)
            .map_err(|e| self.error("connect", self.api_timeout, &e))?;
        // The engine here may be older than bollard's default API version:
        // ask it (GET /version) and talk its version.
        let docker = match tokio::time::timeout(self.api_timeout, docker.negotiate_version()).await
        {
            Err(_) => return Err(self.timeout_error("version", self.api_timeout)),
            Ok(Err(e)) => return Err(self.error("negotiate API version", self.api_timeout, &e)),
            Ok(Ok(d)) => d,
        };
        *slot = Some(docker.clone());
        Ok(docker)
    }

    async fn call<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, ProviderError> {
        match tokio::time::timeout(limit, fut).await {
            Err(_) => Err(self.timeout_error(what, limit)),
            Ok(Err(e)) => Err(self.error(what, limit, &e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// [`Engine::call`] for calls whose answer carries nothing: an HTTP
    /// status in `fine` (e.g. 304 "already started") counts as success.
    async fn call_unit(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = Result<(), bollard::errors::Error>>,
        fine: &[u16],
    ) -> Result<(), ProviderError> {
        match tokio::time::timeout(limit, fut).await {
            Err(_) => Err(self.timeout_error(what, limit)),
            Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code, .. }))
                if fine.contains(&status_code) =>
            {
                Ok(())
            }
            Ok(Err(e)) => Err(self.error(what, limit, &e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    fn error(&self, what: &str, limit: Duration, e: &bollard::errors::Error) -> ProviderError {
        let sock = self.socket.display();
        match map_error(what, e) {
            // Name the socket: which engine, and which file the agent's user may not open.
            ProviderError::Unavailable { provider, message }
                if !message.contains(&*sock.to_string()) =>
            {
                ProviderError::Unavailable {
                    provider,
                    message: format!("{message} (socket {sock})"),
                }
            }
            ProviderError::PermissionDenied { provider, message } => {
                ProviderError::PermissionDenied {
                    provider,
                    message: format!("{message} (socket {sock})"),
                }
            }
            ProviderError::Timeout { provider, .. } => {
                tracing::warn!(socket = %self.socket.display(), call = what, "Docker Engine API call timed out");
                ProviderError::Timeout {
                    provider,
                    after_ms: limit.as_millis() as u64,
                }
            }
            other => other,
        }
    }

    /// Ids of every container (running or not) labelled `homeostat.target=<target>`.
    pub async fn list_target(&self, target: &str) -> Result<Vec<String>, ProviderError> {
        let d = self.client().await?;
        let mut filters = std::collections::HashMap::new();
        filters.insert("label", vec![format!("{LABEL_TARGET}={target}")]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .call(
                "list containers",
                self.api_timeout,
                d.list_containers(Some(opts)),
            )
            .await?;
        if list.len() > MAX_CONTAINERS {
            return Err(ProviderError::Failed {
                provider: PROVIDER.into(),
                message: format!(
                    "target {target} has {} containers; refusing more than {MAX_CONTAINERS}",
                    list.len()
                ),
            });
        }
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, ProviderError> {
        let d = self.client().await?;
        let opts = InspectContainerOptionsBuilder::default()
            .size(false)
            .build();
        self.call(
            &format!("inspect container {}", short(id)),
            self.api_timeout,
            d.inspect_container(id, Some(opts)),
        )
        .await
    }

    /// Inspect, `None` if the container no longer exists.
    pub async fn inspect_opt(
        &self,
        id: &str,
    ) -> Result<Option<ContainerInspectResponse>, ProviderError> {
        match self.inspect(id).await {
            Ok(c) => Ok(Some(c)),
            Err(ProviderError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn inspect_image(&self, image: &str) -> Result<ImageInspect, ProviderError> {
        let d = self.client().await?;
        self.call(
            &format!("inspect image {image}"),
            self.api_timeout,
            d.inspect_image(image),
        )
        .await
    }

    /// Create a container named `name`; returns its id.
    pub async fn create(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, ProviderError> {
        let d = self.client().await?;
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let r = self
            .call(
                &format!("create container {name}"),
                self.api_timeout,
                d.create_container(Some(opts), body),
            )
            .await?;
        for w in r.warnings.iter().filter(|w| !w.is_empty()) {
            tracing::warn!(container = name, warning = %w, "engine warning on create");
        }
        Ok(r.id)
    }

    /// Attach a container to another network, with aliases.
    pub async fn connect_network(
        &self,
        network: &str,
        id: &str,
        aliases: &[String],
    ) -> Result<(), ProviderError> {
        let d = self.client().await?;
        let req = NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
                ..Default::default()
            }),
        };
        self.call(
            &format!("connect {} to network {network}", short(id)),
            self.api_timeout,
            d.connect_network(network, req),
        )
        .await
    }

    /// Start a container (already running counts as success).
    pub async fn start(&self, id: &str) -> Result<(), ProviderError> {
        let d = self.client().await?;
        self.call_unit(
            &format!("start container {}", short(id)),
            self.api_timeout,
            d.start_container(id, None),
            &[304],
        )
        .await
    }

    /// Stop gracefully (stop signal, SIGKILL after the stop timeout) and remove
    /// a container with its anonymous volumes. A container already gone is fine.
    pub async fn stop_and_remove(&self, id: &str) -> Result<(), ProviderError> {
        let d = self.client().await?;
        let secs = self.stop_timeout.as_secs().clamp(0, i32::MAX as u64) as i32;
        let stop = StopContainerOptionsBuilder::default().t(secs).build();
        let limit = self.api_timeout + self.stop_timeout;
        self.call_unit(
            &format!("stop container {}", short(id)),
            limit,
            d.stop_container(id, Some(stop)),
            &[304, 404],
        )
        .await?;
        self.remove(id).await
    }

    /// Remove at once (SIGKILL if running), with anonymous volumes. Gone is fine.
    pub async fn remove(&self, id: &str) -> Result<(), ProviderError> {
        let d = self.client().await?;
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .call_unit(
                &format!("remove container {}", short(id)),
                self.api_timeout,
                d.remove_container(id, Some(opts)),
                &[404],
            )
            .await
        {
            Ok(()) => Ok(()),
            // "removal already in progress": the engine is doing what we ask.
            Err(ProviderError::Conflict { message, .. })
                if message.contains("already in progress") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The first 12 characters of an id (as `docker ps` shows it); names pass through.
pub fn short(id: &str) -> &str {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..12]
    } else {
        id
    }
}
