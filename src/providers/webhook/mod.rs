//! The webhook provider: every action kind as a signed JSON POST.
//!
//! Owns turning an [`ActionRequest`] into the request body and implementing
//! [`Provider`] for `provider: webhook` targets. The receiver does the real
//! work; this adapter only delivers. Wire contract (see `client.rs`):
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! Idempotency-Key: <action_id>                      same on every retry
//! X-Homeostat-Signature: sha256=<hex HMAC-SHA256(secret, body)>
//!
//! {"schema":1,"action_id":"…","target":"…","kind":"scale_out","rule":"…",
//!  "op":{"op":"set_replicas","from":2,"to":3}}
//! ```
//!
//! Receivers verify the signature over the raw body bytes and deduplicate by
//! `Idempotency-Key`. No timestamp header is sent: replay protection is the
//! idempotency key (a replayed body carries an id the receiver has seen).
//!
//! A webhook target has no observable state: [`Provider::state`] returns an
//! empty [`TargetState`] (0 replicas, no instances), so the guard computes
//! scale ops from 0 and the scraper finds no instances here. `reconcile`
//! returns [`Reconciliation::Unknown`]: the agent cannot ask the receiver, but
//! re-sending is safe because of the idempotency key.
//!
//! Must not log the secret, and must not retry (the executor does).
pub mod client;
pub mod config;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::Serialize;

use self::client::{Secret, WebhookClient};
use self::config::WebhookConfig;
use crate::model::{
    ActionKind, ActionOutcome, ActionRequest, ProviderError, ProviderOp, Reconciliation,
    TargetState,
};
use crate::providers::Provider;

/// The webhook target cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook needs a secret: set `secret_file` or `secret_env`")]
    NoSecret,
    #[error("webhook: set only one of `secret_file` and `secret_env`")]
    BothSecrets,
    #[error("webhook: cannot read secret_file {path}: {source}")]
    SecretFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("webhook: environment variable {name} is not set or not UTF-8")]
    SecretEnv { name: String },
    #[error("webhook: the secret is empty")]
    EmptySecret,
    #[error("webhook: bad url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("webhook: bad header {name:?}")]
    BadHeader { name: String },
    #[error("webhook: header {name:?} is set by homeostat and cannot be overridden")]
    ReservedHeader { name: String },
    #[error("webhook: cannot build HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Read the secret the config points at. Trailing newlines of a file are
/// ignored (editors add them).
pub fn load_secret(cfg: &WebhookConfig) -> Result<Secret, WebhookError> {
    match (&cfg.secret_file, &cfg.secret_env) {
        (Some(_), Some(_)) => Err(WebhookError::BothSecrets),
        (None, None) => Err(WebhookError::NoSecret),
        (Some(path), None) => {
            let bytes = std::fs::read(path).map_err(|source| WebhookError::SecretFile {
                path: path.clone(),
                source,
            })?;
            let end = bytes
                .iter()
                .rposition(|b| *b != b'\n' && *b != b'\r')
                .map_or(0, |i| i + 1);
            Secret::new(&bytes[..end])
        }
        (None, Some(name)) => {
            let v =
                std::env::var(name).map_err(|_| WebhookError::SecretEnv { name: name.clone() })?;
            Secret::new(v.into_bytes())
        }
    }
}

/// The request body. `schema` lets receivers tell future formats apart.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    pub schema: u32,
    pub action_id: &'a str,
    pub target: &'a str,
    pub kind: ActionKind,
    pub rule: &'a str,
    pub op: &'a ProviderOp,
}

impl<'a> Payload<'a> {
    pub fn new(req: &'a ActionRequest) -> Self {
        Payload {
            schema: 1,
            action_id: &req.action_id,
            target: &req.target,
            kind: req.kind,
            rule: &req.rule,
            op: &req.op,
        }
    }
}

/// A `provider: webhook` target.
#[derive(Debug)]
pub struct WebhookProvider {
    target: String,
    client: WebhookClient,
}

impl WebhookProvider {
    /// Reads the secret now, so a missing secret is a start-up error, not a
    /// failed action at 3 a.m.
    pub fn new(target: &str, cfg: &WebhookConfig) -> Result<Self, WebhookError> {
        let secret = load_secret(cfg)?;
        let client = WebhookClient::new(&cfg.url, secret, cfg.timeout, &cfg.headers)?;
        Ok(Self {
            target: target.to_string(),
            client,
        })
    }

    pub fn target(&self) -> &str {
        &self.target
    }
}

#[async_trait::async_trait]
impl Provider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn supports(&self) -> &'static [ActionKind] {
        &ActionKind::ALL
    }

    async fn start(&self) -> Result<TargetState, ProviderError> {
        Ok(TargetState::default())
    }

    /// Always empty: the receiver's state is not observable from here.
    async fn state(&self) -> Result<TargetState, ProviderError> {
        Ok(TargetState::default())
    }

    async fn execute(&self, req: &ActionRequest) -> Result<ActionOutcome, ProviderError> {
        let body = serde_json::to_vec(&Payload::new(req)).map_err(|e| ProviderError::Failed {
            provider: "webhook".into(),
            message: format!("cannot encode request: {e}"),
        })?;
        let (status, response) = self.client.post(&req.action_id, body).await?;
        Ok(ActionOutcome {
            before: serde_json::Value::Null,
            // What the receiver answered is the only "after" we can know.
            after: serde_json::json!({ "status": status, "response": response }),
            rolled_back: None,
        })
    }

    /// Unknown: the receiver deduplicates by idempotency key, so re-sending is safe.
    async fn reconcile(&self, _req: &ActionRequest) -> Result<Reconciliation, ProviderError> {
        Ok(Reconciliation::Unknown)
    }

    async fn shutdown(&self, _stop_instances: bool) {}
}
