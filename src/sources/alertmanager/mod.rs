//! Alertmanager in: `POST /api/v1/alerts` takes Alertmanager's webhook payload
//! (version "4") and hands each alert to the agent's trigger rules.
//!
//! Owns the endpoint (authentication with the same policy as the other
//! mutating endpoints, validation, the response), the payload format
//! ([`payload`]), and the rebuild of "which alerts were already acted on" from
//! the audit log ([`acted_alerts`]). Must not decide anything: the agent,
//! through [`AlertReceiver`], runs the rules, the guard and the executor.
//!
//! Semantics (docs/rules.md, "Alertmanager triggers"):
//! - Trigger rules are evaluated when a delivery arrives, not on the group tick.
//! - Only `firing` alerts act; a `resolved` alert removes the rule instance and
//!   never acts.
//! - One rule acts at most once per alert, identified by fingerprint and
//!   `startsAt`: Alertmanager's redeliveries (`repeat_interval`, retries, a
//!   peer's copy) are duplicates, also after an agent restart, because every
//!   decision records the alert in its audit `reason.alert`.
pub mod payload;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::audit::{AuditEvent, EventKind};
use crate::clock::Clock;
use crate::model::{AlertInput, AlertKey, TimestampMs};
use crate::server::MutationPolicy;

pub use payload::{PayloadError, MAX_ALERTS_PER_REQUEST};

/// The path Alertmanager's `webhook_configs.url` points at.
pub const PATH: &str = "/api/v1/alerts";

/// What happened to the alerts of one delivery (the response's `data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Alerts in the payload.
    pub alerts: usize,
    /// Decisions made (each went through the guard and is in the audit log).
    pub decisions: usize,
    /// (rule, alert) pairs already acted on: nothing done.
    pub duplicates: usize,
    /// Resolved (rule, alert) pairs: instance removed, no action.
    pub resolved: usize,
    /// Alerts no trigger rule matches.
    pub unmatched: usize,
}

/// The agent's side: run every trigger rule on the alerts at `now`.
pub trait AlertReceiver: Send + Sync + 'static {
    fn receive(&self, alerts: Vec<AlertInput>, now: TimestampMs) -> Receipt;
}

#[derive(Clone)]
struct ReceiverState {
    receiver: Arc<dyn AlertReceiver>,
    policy: Arc<MutationPolicy>,
    clock: Clock,
}

/// `POST /api/v1/alerts`, to merge into the server with
/// [`crate::server::router_with`] (which adds the body limit and timeout).
pub fn router(receiver: Arc<dyn AlertReceiver>, policy: MutationPolicy, clock: Clock) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .with_state(ReceiverState {
            receiver,
            policy: Arc::new(policy),
            clock,
        })
}

async fn receive(State(s): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(resp) = s.policy.check(&headers) {
        return resp;
    }
    let alerts = match payload::parse(&body) {
        Ok((_, alerts)) => alerts,
        Err(e) => {
            tracing::warn!(error = %e, "alertmanager payload refused");
            return bad_request(&e.to_string());
        }
    };
    let receiver = s.receiver.clone();
    let now = s.clock.now_ms();
    // Guarding writes (and fsyncs) the audit log: off the async workers.
    match tokio::task::spawn_blocking(move || receiver.receive(alerts, now)).await {
        Ok(receipt) => Json(json!({"status": "success", "data": receipt})).into_response(),
        // Never the panic's text in an answer; the log has it.
        Err(e) => {
            tracing::error!(error = %e, "alert receiver task failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"status": "error", "errorType": "internal", "error": "internal error (the agent's log has the details)"})),
            )
                .into_response()
        }
    }
}

fn bad_request(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "error", "errorType": "bad_data", "error": msg})),
    )
        .into_response()
}

/// The alerts trigger rules already handled, from the audit log: every
/// `decision` event that carries `reason.alert` and an action id (it acted,
/// or was handed to dry-run or approval). Suppressions for passing reasons
/// (cooldown, pause, rate limit …) have no action id, so a redelivery retries.
pub fn acted_alerts<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> HashSet<AlertKey> {
    events
        .into_iter()
        .filter(|ev| ev.event == Some(EventKind::Decision) && ev.action_id.is_some())
        .filter_map(|ev| {
            let alert = ev.reason.as_ref()?.alert.as_ref()?;
            Some(AlertKey::new(ev.rule.as_deref()?, alert))
        })
        .collect()
}
