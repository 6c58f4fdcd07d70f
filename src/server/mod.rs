//! The agent's HTTP surface (DESIGN.md §6): `/metrics`, `/-/healthy`, `/-/ready`,
//! `POST /-/reload`, the Prometheus-compatible `/api/v1/query`, and the
//! `/api/v1/{rules,targets,audit,approvals,pause,resume}` API.
//!
//! Owns: routing, request limits (body size, timeout), connection limits
//! ([`conn`]: header-read and idle timeouts, a cap), authentication of the
//! mutating endpoints, the pool API queries run on (so they cannot starve the
//! agent's own work), masking of secrets in what the API shows, turning a
//! panicking handler into a 500, the Prometheus response envelope, and
//! graceful shutdown.
//! Must not own agent state: everything it shows or changes goes through the
//! [`AgentControl`] trait the agent implements (plus read access to the store and
//! the self-metrics), so data still flows one way.
//!
//! ## Mutating endpoints (`POST /-/reload`, `/api/v1/pause`, `/api/v1/resume`,
//! `/api/v1/approvals/{id}/approve|reject`)
//! - With an API token configured, they need `Authorization: Bearer <token>`
//!   (compared in constant time) whatever the listen address; anything else is
//!   401. The token is never logged.
//!   The scheme is case-insensitive (`bearer x` works, RFC 9110).
//! - Without a token, they are allowed only when the server listens on a loopback
//!   address (then only local users can reach it, as with Prometheus's
//!   `--web.enable-lifecycle` on localhost); on any other address they answer 403,
//!   so exposing the port can never silently hand out pause/reload. Even on
//!   loopback a request must be `Content-Type: application/json`, with no
//!   cross-site `Origin` / `Sec-Fetch-Site` and a loopback `Host`, so a web page
//!   of another site cannot forge one (DESIGN.md §4a). Alertmanager's webhook
//!   (`POST /api/v1/alerts`) sends JSON and no `Origin`, so it passes.
mod api;
mod auth;
pub mod conn;
mod form;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::audit::EventKind;
use crate::clock::Clock;
use crate::model::TimestampMs;
use crate::store::SharedStore;
use crate::telemetry::Metrics;

pub use auth::MutationPolicy;
pub use conn::HttpLimits;

use crate::query::QueryLimits;
use crate::redact::Redactor;

/// Default cap on request bodies: far above any legitimate query or form.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default cap on handling one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most audit events one `/api/v1/audit` call returns.
pub const MAX_AUDIT_LIMIT: usize = 10_000;

/// Filters of `GET /api/v1/audit`, validated by the server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only events at or after this time (ms since the epoch).
    pub since: Option<TimestampMs>,
    pub rule: Option<String>,
    pub target: Option<String>,
    pub event: Option<EventKind>,
    /// At most this many events, the most recent ones (default 100).
    pub limit: usize,
}

/// What the server needs from the agent. The agent implements it; the server
/// never holds agent state itself.
#[async_trait::async_trait]
pub trait AgentControl: Send + Sync + 'static {
    /// True once rules are loaded and the first scrape round ran (`/-/ready`).
    fn ready(&self) -> bool;
    /// `data` of `/api/v1/rules`: groups, rules, state, last values, next time it may act.
    fn rules(&self) -> serde_json::Value;
    /// `data` of `/api/v1/targets` (see [`crate::scrape::targets_api_json`]).
    fn targets(&self) -> serde_json::Value;
    /// `data` of `/api/v1/audit`: the matching events.
    async fn audit(&self, filter: AuditFilter) -> Result<serde_json::Value, String>;
    /// Reload rule files; `Err` when the new set is invalid (the old one keeps running).
    async fn reload(&self) -> Result<String, String>;
    /// Pause or resume all actions; `actor` goes into the audit log. Returns the
    /// `data` of the response (e.g. `{"paused": true}`).
    async fn set_paused(&self, paused: bool, actor: &str) -> Result<serde_json::Value, String>;
    /// `data` of `GET /api/v1/approvals`: actions waiting for a human.
    fn approvals(&self) -> serde_json::Value {
        serde_json::json!([])
    }
    /// Approve (`true`) or reject a pending action by id; `actor` goes into the
    /// audit log. Returns the `data` of the response.
    async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        actor: &str,
    ) -> Result<serde_json::Value, ControlError> {
        let _ = (approve, actor);
        Err(ControlError::NotFound(format!(
            "no pending approval {id:?}"
        )))
    }
}

/// Errors from [`AgentControl`] calls that map to distinct HTTP statuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// 404: no such thing (e.g. approval id).
    #[error("{0}")]
    NotFound(String),
    /// 409: exists but not in a state that allows this (already decided, expired).
    #[error("{0}")]
    Conflict(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

/// Server settings. `Debug` never prints the token.
#[derive(Clone)]
pub struct ServerConfig {
    /// The address the listener is bound to (decides the no-token policy).
    pub listen: SocketAddr,
    /// Bearer token for the mutating endpoints.
    pub api_token: Option<String>,
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// Limits of `/api/v1/query` evaluations (and the size of their pool).
    pub query: QueryLimits,
    /// Configured secret values, masked in what the API shows.
    pub secrets: Redactor,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            api_token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            query: QueryLimits::default(),
            secrets: Redactor::default(),
        }
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.api_token = Some(token.into());
        self
    }
}

/// Server errors.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("api token must not be empty or contain whitespace")]
    BadToken,
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared by every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) control: Arc<dyn AgentControl>,
    pub(crate) store: SharedStore,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock: Clock,
    pub(crate) policy: Arc<MutationPolicy>,
    /// Permits for API query evaluations (`query.max_concurrency`).
    pub(crate) query_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) query_limits: QueryLimits,
    pub(crate) secrets: Arc<Redactor>,
}

/// Build the router. Bind the listener first, so `cfg.listen` is the real address.
pub fn router(
    cfg: &ServerConfig,
    control: Arc<dyn AgentControl>,
    store: SharedStore,
    metrics: Arc<Metrics>,
    clock: Clock,
) -> Result<Router, ServerError> {
    router_with(cfg, control, store, metrics, clock, Router::new())
}

/// [`router`] plus `extra` routes (receivers such as `POST /v1/traces` or
/// `POST /api/v1/alerts`, the on-call page), which get the same body limit and
/// request timeout. Paths must not clash with the built-in ones.
pub fn router_with(
    cfg: &ServerConfig,
    control: Arc<dyn AgentControl>,
    store: SharedStore,
    metrics: Arc<Metrics>,
    clock: Clock,
    extra: Router,
) -> Result<Router, ServerError> {
    let policy = MutationPolicy::new(cfg.api_token.as_deref(), cfg.listen)?;
    tracing::info!(listen = %cfg.listen, policy = policy.describe(), "HTTP API mutating endpoints");
    let state = AppState {
        control,
        store,
        metrics,
        clock,
        policy: Arc::new(policy),
        query_slots: Arc::new(tokio::sync::Semaphore::new(
            cfg.query.max_concurrency.max(1),
        )),
        query_limits: cfg.query.clone(),
        secrets: Arc::new(cfg.secrets.clone()),
    };
    let timeout = cfg.request_timeout;
    let app = Router::new()
        .route("/", get(api::oncall_page))
        .route("/metrics", get(api::metrics))
        .route("/-/healthy", get(api::healthy))
        .route("/-/ready", get(api::ready))
        .route("/-/reload", post(api::reload))
        .route("/api/v1/query", get(api::query).post(api::query))
        .route("/api/v1/rules", get(api::rules))
        .route("/api/v1/targets", get(api::targets))
        .route("/api/v1/audit", get(api::audit))
        .route("/api/v1/pause", post(api::pause))
        .route("/api/v1/resume", post(api::resume))
        .route("/api/v1/approvals", get(api::approvals))
        .route("/api/v1/approvals/{id}/approve", post(api::approve))
        .route("/api/v1/approvals/{id}/reject", post(api::reject))
        .with_state(state)
        .merge(extra)
        .fallback(api::not_found)
        // Extractors refuse bodies past the limit with 413.
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(resp) => resp,
                    Err(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response()
                    }
                }
            },
        ))
        // Outermost: whatever panics below answers 500, and the agent serves on.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ));
    Ok(app)
}

/// The answer to a request whose handler panicked: a 500 in the API's
/// envelope, without the panic's text (it may hold data the client must not
/// see; the panic itself is printed to the agent's stderr).
fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("an HTTP handler panicked; answered 500");
    api::error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error (the agent's log has the details)",
    )
}

/// Serve with the default [`HttpLimits`] until `shutdown` resolves, then stop
/// accepting and let in-flight requests finish.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: F,
) -> Result<(), ServerError>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    serve_with(listener, app, HttpLimits::default(), shutdown).await
}

/// [`serve`] within `limits` (see [`conn`]).
pub async fn serve_with<F>(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: F,
) -> Result<(), ServerError>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    conn::serve_connections(listener, app, limits, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
