//! The one path by which actions-related events reach the audit log and the
//! guard state.
//!
//! Owns [`Journal`] (append to the log, then fold the written event into the
//! shared [`GuardState`] — the same fold that rebuilds the state at start-up)
//! and the builders of the events about decisions and actions, with their
//! typed `detail` payloads ([`super::detail`]). Must not decide anything: it
//! records.
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::guard::Verdict;
use super::intent::Intent;
use super::kinds::DEFAULT_STABILIZATION_WINDOW;
use super::state::GuardState;
use super::types::Decision;
use crate::audit::detail::{DecisionDetail, OutcomeDetail, ReconciledDetail, StartedDetail};
use crate::audit::{AuditEvent, EventKind};
use crate::model::CircuitChange;
use crate::model::{ActionKind, Origin, TimestampMs};

/// Where events are written. Implemented by [`crate::audit::AuditLog`]; the
/// trait keeps the executor testable and the dependency one-way.
pub trait AuditSink: Send + Sync {
    /// Append one event (fsync'd before returning); returns it with `seq`, `ts`
    /// and hashes filled in.
    fn append(&self, ev: AuditEvent, now: TimestampMs) -> Result<AuditEvent, SinkError>;
}

/// The audit log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("audit log: {0}")]
pub struct SinkError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl AuditSink for crate::audit::AuditLog {
    fn append(&self, ev: AuditEvent, now: TimestampMs) -> Result<AuditEvent, SinkError> {
        crate::audit::AuditLog::append(self, ev, now).map_err(|e| SinkError(Box::new(e)))
    }
}

/// Appends events and folds each written event into the guard state, in log
/// order (the state lock is held across the append so the two cannot diverge).
pub struct Journal {
    sink: Arc<dyn AuditSink>,
    state: Mutex<GuardState>,
}

impl Journal {
    /// `state` is usually `GuardState::rebuild(&read_all(dir)?)`.
    pub fn new(sink: Arc<dyn AuditSink>, state: GuardState) -> Self {
        Self {
            sink,
            state: Mutex::new(state),
        }
    }

    /// Write `ev` and fold it into the state. On error nothing is folded.
    pub fn record(&self, ev: AuditEvent, now: TimestampMs) -> Result<AuditEvent, SinkError> {
        let mut state = self.lock();
        let written = self.sink.append(ev, now)?;
        state.observe(&written);
        Ok(written)
    }

    /// The live guard state. Do not hold the guard across an `.await`.
    pub fn state(&self) -> MutexGuard<'_, GuardState> {
        self.lock()
    }

    fn lock(&self) -> MutexGuard<'_, GuardState> {
        // A panic while holding the lock cannot leave the fold half-applied in a
        // way worse than losing the agent, so recover the data instead of panicking.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record `decision` and, when the verdict suppresses it, the suppression.
    /// Returns the written events (decision first).
    pub fn record_decision(
        &self,
        decision: &Decision,
        verdict: &Verdict,
        now: TimestampMs,
    ) -> Result<Vec<AuditEvent>, SinkError> {
        let mut out = vec![self.record(decision_event(decision, verdict), now)?];
        if let Some(ev) = suppressed_event(decision, verdict) {
            out.push(self.record(ev, now)?);
        }
        Ok(out)
    }

    /// Pause all actions (the guard suppresses every decision with `paused`).
    pub fn pause(&self, actor: &str, now: TimestampMs) -> Result<AuditEvent, SinkError> {
        let mut ev = AuditEvent::new(EventKind::Paused);
        ev.actor = Some(actor.to_string());
        self.record(ev, now)
    }

    pub fn resume(&self, actor: &str, now: TimestampMs) -> Result<AuditEvent, SinkError> {
        let mut ev = AuditEvent::new(EventKind::Resumed);
        ev.actor = Some(actor.to_string());
        self.record(ev, now)
    }
}

fn to_detail<T: Serialize>(d: &T) -> Option<serde_json::Value> {
    // Serialising these plain structs cannot fail; `ok()` keeps the writer total.
    serde_json::to_value(d).ok()
}

fn decision_base(kind: EventKind, d: &Decision) -> AuditEvent {
    let mut ev = AuditEvent::new(kind);
    ev.rule = Some(d.rule.clone());
    ev.group = Some(d.group.clone()).filter(|g| !g.is_empty());
    ev.target = Some(d.action.target.clone());
    ev.instance = d.instance.clone().or_else(|| d.action.instance.clone());
    ev.kind = Some(d.action.kind);
    ev.mode = Some(d.mode);
    ev.reason = Some(d.reason.clone());
    ev.actor = Some("rule".into());
    ev.trace_id = d.reason.trace_ids.first().cloned();
    ev
}

/// The `decision` event for a guarded decision (written for every decision).
pub fn decision_event(d: &Decision, v: &Verdict) -> AuditEvent {
    let mut ev = decision_base(EventKind::Decision, d);
    let (verdict, op) = match v {
        Verdict::Act(i) => ("act", Some(i.op.clone())),
        Verdict::Suppress { would, .. } => ("suppressed", would.as_ref().map(|i| i.op.clone())),
    };
    let window = (d.action.kind == ActionKind::Scale).then(|| {
        d.action
            .stabilization_window
            .unwrap_or(DEFAULT_STABILIZATION_WINDOW)
            .as_millis() as u64
    });
    let detail = DecisionDetail {
        verdict: verdict.into(),
        op,
        recommendation: v.recommendation(),
        stabilization_window_ms: window,
    };
    ev.detail = to_detail(&detail);
    match v {
        Verdict::Act(i) => ev.action_id = Some(i.action_id.clone()),
        Verdict::Suppress {
            cause,
            would: Some(i),
            ..
        } if carries_id(*cause) => ev.action_id = Some(i.action_id.clone()),
        Verdict::Suppress { .. } => {}
    }
    ev
}

fn carries_id(cause: crate::model::Cause) -> bool {
    matches!(
        cause,
        crate::model::Cause::DryRun | crate::model::Cause::Approval
    )
}

/// The `suppressed` event, if the verdict is a suppression. For `dry_run` and
/// `approval` the detail records the would-be request.
pub fn suppressed_event(d: &Decision, v: &Verdict) -> Option<AuditEvent> {
    let Verdict::Suppress {
        cause,
        detail,
        would,
        ..
    } = v
    else {
        return None;
    };
    let mut ev = decision_base(EventKind::Suppressed, d);
    ev.cause = Some(cause.as_str().into());
    let mut obj = serde_json::Map::new();
    obj.insert("message".into(), serde_json::Value::String(detail.clone()));
    if let Some(i) = would {
        // Only a dry run or an approval gives the would-be action an identity
        // (approval refers to it later); other suppressions are not actions.
        if carries_id(*cause) {
            ev.action_id = Some(i.action_id.clone());
        }
        if let Some(r) = to_detail(&i.request()) {
            obj.insert("would".into(), r);
        }
    }
    ev.detail = Some(serde_json::Value::Object(obj));
    Some(ev)
}

/// Common fields of every event about one intent.
pub(crate) fn intent_event(kind: EventKind, i: &Intent, provider: &str) -> AuditEvent {
    let mut ev = AuditEvent::new(kind);
    ev.action_id = Some(i.action_id.clone());
    ev.rule = Some(i.rule.clone()).filter(|r| !r.is_empty());
    ev.group = Some(i.group.clone()).filter(|g| !g.is_empty());
    ev.target = Some(i.target.clone());
    ev.instance = i.instance.clone();
    ev.kind = Some(i.kind);
    ev.provider = Some(provider.to_string());
    ev.mode = Some(i.mode);
    ev.reason = i.reason.clone();
    ev.actor = Some(
        match i.origin {
            Origin::Rule => "rule",
            Origin::Circuit => "agent",
        }
        .into(),
    );
    ev.trace_id = i.trace_id.clone();
    ev
}

pub(crate) fn started_event(i: &Intent, provider: &str, timeout_ms: u64) -> AuditEvent {
    let mut ev = intent_event(EventKind::ActionStarted, i, provider);
    ev.detail = to_detail(&StartedDetail {
        request: i.request(),
        origin: i.origin,
        direction: i.direction,
        circuit: i.circuit,
        timeout_ms,
    });
    ev
}

pub(crate) fn outcome_detail(
    i: &Intent,
    attempts: u32,
    rolled_back: Option<String>,
) -> Option<serde_json::Value> {
    to_detail(&OutcomeDetail {
        attempts,
        origin: i.origin,
        direction: i.direction,
        op: Some(i.op.clone()),
        rolled_back,
    })
}

pub(crate) fn circuit_event(i: &Intent, provider: &str, change: CircuitChange) -> AuditEvent {
    let mut ev = intent_event(EventKind::CircuitChanged, i, provider);
    ev.before = Some(serde_json::Value::String(change.from.as_str().into()));
    ev.after = Some(serde_json::Value::String(change.to.as_str().into()));
    ev.detail = to_detail(&change);
    ev
}

pub(crate) fn reconciled_detail(
    result: crate::model::Reconciliation,
    started: &StartedDetail,
) -> Option<serde_json::Value> {
    to_detail(&ReconciledDetail {
        result,
        request: started.request.clone(),
        origin: started.origin,
        direction: started.direction,
    })
}
