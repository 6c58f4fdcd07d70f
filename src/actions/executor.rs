//! The executor: runs intents through providers under the DESIGN.md §4 contract.
//!
//! Owns the order of writes around a provider call (`action_started`, fsync'd,
//! strictly before the provider is called; then `action_succeeded` or
//! `action_failed`; `circuit_changed` after a successful circuit op), per-attempt
//! timeouts, retries with exponential backoff and full jitter (same action id —
//! the idempotency key — on every attempt), a circuit breaker per provider
//! instance, and start-up reconciliation of actions left open by a crash.
//! Must not decide whether to act (the guard did) and reads time only through
//! [`Clock`].
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::circuit::CircuitTransition;
use super::intent::{new_action_id, Intent};
use super::journal::{
    circuit_event, intent_event, outcome_detail, reconciled_detail, started_event, Journal,
    SinkError,
};
use crate::audit::detail::StartedDetail;
use crate::audit::EventKind;
use crate::clock::Clock;
use crate::model::{
    ActionKind, ActionOutcome, Cause, Mode, Origin, ProviderError, ProviderOp, Reconciliation,
    TimestampMs,
};
use crate::providers::Provider;

/// Retry, timeout and breaker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorConfig {
    /// Attempts per action, the first included.
    pub max_attempts: u32,
    /// Backoff before retry n (1-based) is drawn from [0, min(cap, base × 2^(n-1))].
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Draw the backoff at random in its range (full jitter). Off: sleep the
    /// upper bound (deterministic; for tests).
    pub jitter: bool,
    /// Per-attempt provider timeout.
    pub timeout: Duration,
    /// Per-attempt timeout for redeploy/rollback, which wait for health checks.
    pub redeploy_timeout: Duration,
    /// Per-provider overrides of `timeout`, by provider name.
    pub provider_timeouts: BTreeMap<String, Duration>,
    /// Consecutive provider failures (unavailable/timeout) that open the breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker fails fast.
    pub breaker_open_for: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            jitter: true,
            timeout: Duration::from_secs(60),
            redeploy_timeout: Duration::from_secs(600),
            provider_timeouts: BTreeMap::new(),
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(30),
        }
    }
}

/// The executor could not keep its contract with the audit log.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// `action_started` could not be written: the provider was NOT called.
    #[error("not started, {0}")]
    NotStarted(#[source] SinkError),
    /// The provider was called but its outcome could not be recorded; the
    /// action stays open and is reconciled at the next start.
    #[error("outcome of {action_id} not recorded, {source}")]
    OutcomeNotRecorded {
        action_id: String,
        #[source]
        source: SinkError,
    },
}

/// How an intent ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    Succeeded {
        outcome: ActionOutcome,
        attempts: u32,
        duration_ms: u64,
    },
    Failed {
        error: String,
        /// [`ProviderError::cause`] (`timeout`, `unavailable`, `conflict`,
        /// `permission_denied`, …), `provider_unavailable` (the breaker
        /// opened) or `rolled_back`.
        cause: String,
        attempts: u32,
        retryable: bool,
    },
    /// The provider's breaker is open: not started, a `suppressed` event records it.
    ProviderUnavailable { retry_after_ms: u64 },
    /// The provider cannot do this kind: not started, a `suppressed` event records it.
    Unsupported,
}

/// What [`Executor::start`] did.
// Moved once into `finish`; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Started {
    /// `action_started` is on disk; pass this to [`Executor::finish`].
    Running(StartedAction),
    /// Nothing started (the provider's breaker is open).
    NotStarted(RunResult),
}

/// An action whose `action_started` event is written.
#[derive(Debug)]
pub struct StartedAction {
    intent: Intent,
    started_at: TimestampMs,
    timeout: Duration,
}

impl StartedAction {
    pub fn intent(&self) -> &Intent {
        &self.intent
    }
}

#[derive(Debug, Default)]
struct Breaker {
    consecutive: u32,
    open_until: Option<TimestampMs>,
}

/// Runs intents. One per agent; shared by reference across tasks.
pub struct Executor {
    journal: Arc<Journal>,
    clock: Clock,
    cfg: ExecutorConfig,
    breakers: Mutex<HashMap<String, Breaker>>,
    rng: Mutex<StdRng>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl Executor {
    pub fn new(journal: Arc<Journal>, clock: Clock, cfg: ExecutorConfig) -> Self {
        Self {
            journal,
            clock,
            cfg,
            breakers: Mutex::new(HashMap::new()),
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    /// Fix the jitter sequence (tests).
    #[cfg(test)]
    pub(crate) fn with_seed(self, seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            ..self
        }
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.cfg
    }

    /// Per-attempt timeout for `intent` on `provider`: the configured one, or
    /// longer if the adapter says this op can take longer (it waits for
    /// health checks): a timeout must not cut an attempt the adapter would finish.
    pub fn timeout_for(&self, intent: &Intent, provider: &dyn Provider) -> Duration {
        let configured = match intent.op {
            ProviderOp::Redeploy { .. } | ProviderOp::Rollback => self.cfg.redeploy_timeout,
            _ => self
                .cfg
                .provider_timeouts
                .get(provider.name())
                .copied()
                .unwrap_or(self.cfg.timeout),
        };
        provider
            .attempt_timeout(&intent.op)
            .map_or(configured, |needed| needed.max(configured))
    }

    /// Backoff before retry `retry` (1-based), full jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let upper = backoff_upper(self.cfg.backoff_base, self.cfg.backoff_cap, retry);
        if !self.cfg.jitter || upper.is_zero() {
            return upper;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        Duration::from_millis(rng.random_range(0..=ms(upper)))
    }

    fn breaker_key(provider: &dyn Provider, target: &str) -> String {
        // Providers are instantiated per target: one breaker per instance.
        format!("{}/{target}", provider.name())
    }

    fn breakers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        self.breakers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds the breaker for (`provider`, `target`) still fails fast, if open.
    pub fn breaker_open(&self, provider: &dyn Provider, target: &str) -> Option<u64> {
        let now = self.clock.now_ms();
        self.breakers()
            .get(&Self::breaker_key(provider, target))
            .and_then(|b| b.open_until)
            .filter(|u| *u > now)
            .map(|u| (u - now) as u64)
    }

    /// Record one provider result for the breaker; true if it is open now.
    fn breaker_note(&self, key: &str, result: Result<(), &ProviderError>) -> bool {
        let now = self.clock.now_ms();
        let mut map = self.breakers();
        let b = map.entry(key.to_string()).or_default();
        match result {
            Ok(()) => *b = Breaker::default(),
            // The provider API is there and answered: it is not "down".
            Err(e) if !counts_as_down(e) => b.consecutive = 0,
            Err(_) => {
                b.consecutive += 1;
                if b.consecutive >= self.cfg.breaker_threshold {
                    b.open_until = Some(now + ms(self.cfg.breaker_open_for) as i64);
                }
            }
        }
        b.open_until.is_some_and(|u| u > now)
    }

    /// Run one intent: log it, call the provider (timeout, retries), log the
    /// outcome. Equivalent to [`Executor::start`] then [`Executor::finish`].
    pub async fn run(
        &self,
        intent: &Intent,
        provider: &dyn Provider,
    ) -> Result<RunResult, ExecError> {
        match self.start(intent, provider)? {
            Started::Running(s) => self.finish(s, provider).await,
            Started::NotStarted(r) => Ok(r),
        }
    }

    /// Synchronous first half of [`Executor::run`]: writes `action_started`
    /// (fsync'd) and folds it into the guard state, so a decision checked right
    /// after this call already sees the target busy. Call it in the task that
    /// ran the guard, then spawn [`Executor::finish`]. If the provider's breaker
    /// is open nothing starts: a `suppressed` event with cause
    /// `provider_unavailable` is written instead.
    pub fn start(&self, intent: &Intent, provider: &dyn Provider) -> Result<Started, ExecError> {
        if !provider.supports().contains(&intent.kind) {
            let mut ev = intent_event(EventKind::Suppressed, intent, provider.name());
            ev.cause = Some(Cause::Unsupported.as_str().into());
            ev.detail = Some(serde_json::json!({
                "message": format!("provider {} cannot do {}", provider.name(), intent.kind),
                "would": intent.request(),
            }));
            self.journal
                .record(ev, self.clock.now_ms())
                .map_err(ExecError::NotStarted)?;
            return Ok(Started::NotStarted(RunResult::Unsupported));
        }
        if let Some(left) = self.breaker_open(provider, &intent.target) {
            let mut ev = intent_event(EventKind::Suppressed, intent, provider.name());
            ev.cause = Some(Cause::ProviderUnavailable.as_str().into());
            ev.detail = Some(serde_json::json!({
                "message": format!("{} failed repeatedly; failing fast for {left} ms", provider.name()),
                "would": intent.request(),
            }));
            self.journal
                .record(ev, self.clock.now_ms())
                .map_err(ExecError::NotStarted)?;
            return Ok(Started::NotStarted(RunResult::ProviderUnavailable {
                retry_after_ms: left,
            }));
        }
        let timeout = self.timeout_for(intent, provider);
        let started_at = self.clock.now_ms();
        // The write-ahead record: fsync'd by the sink before we go on.
        self.journal
            .record(
                started_event(intent, provider.name(), ms(timeout)),
                started_at,
            )
            .map_err(ExecError::NotStarted)?;
        Ok(Started::Running(StartedAction {
            intent: intent.clone(),
            started_at,
            timeout,
        }))
    }

    /// Second half of [`Executor::run`]: call the provider with timeout and
    /// retries, then write the outcome. `provider` must be the one given to `start`.
    pub async fn finish(
        &self,
        started: StartedAction,
        provider: &dyn Provider,
    ) -> Result<RunResult, ExecError> {
        let StartedAction {
            intent,
            started_at,
            timeout,
        } = started;
        let intent = &intent;
        let key = Self::breaker_key(provider, &intent.target);
        let req = intent.request();
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let res = match tokio::time::timeout(timeout, provider.execute(&req)).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::Timeout {
                    provider: provider.name().to_string(),
                    after_ms: ms(timeout),
                }),
            };
            match res {
                Ok(outcome) => {
                    self.breaker_note(&key, Ok(()));
                    break Ok(outcome);
                }
                Err(e) => {
                    let open = self.breaker_note(&key, Err(&e));
                    if !e.is_retryable() || attempts >= self.cfg.max_attempts || open {
                        break Err((e, open));
                    }
                    tracing::debug!(action_id = %intent.action_id, attempt = attempts, error = %e, "retrying");
                    tokio::time::sleep(self.backoff(attempts)).await;
                }
            }
        };

        let now = self.clock.now_ms();
        let duration_ms = (now - started_at).max(0) as u64;
        let not_recorded = |source| ExecError::OutcomeNotRecorded {
            action_id: intent.action_id.clone(),
            source,
        };
        match result {
            Ok(outcome) if outcome.rolled_back.is_none() => {
                let mut ev = intent_event(EventKind::ActionSucceeded, intent, provider.name());
                ev.before = Some(outcome.before.clone());
                ev.after = Some(outcome.after.clone());
                ev.duration_ms = Some(duration_ms);
                ev.detail = outcome_detail(intent, attempts, None);
                self.journal.record(ev, now).map_err(not_recorded)?;
                if let Some(change) = intent.circuit {
                    self.journal
                        .record(circuit_event(intent, provider.name(), change), now)
                        .map_err(not_recorded)?;
                }
                Ok(RunResult::Succeeded {
                    outcome,
                    attempts,
                    duration_ms,
                })
            }
            Ok(outcome) => {
                let why = outcome.rolled_back.clone().unwrap_or_default();
                let mut ev = intent_event(EventKind::ActionFailed, intent, provider.name());
                ev.before = Some(outcome.before);
                ev.after = Some(outcome.after);
                ev.duration_ms = Some(duration_ms);
                ev.error = Some(format!("rolled back: {why}"));
                ev.cause = Some("rolled_back".into());
                ev.detail = outcome_detail(intent, attempts, Some(why.clone()));
                self.journal.record(ev, now).map_err(not_recorded)?;
                Ok(RunResult::Failed {
                    error: format!("rolled back: {why}"),
                    cause: "rolled_back".into(),
                    attempts,
                    retryable: false,
                })
            }
            Err((e, breaker_open)) => {
                // The error's class (timeout, conflict, permission_denied, …),
                // or provider_unavailable once this failure opened the breaker.
                let cause = if breaker_open {
                    Cause::ProviderUnavailable.as_str()
                } else {
                    e.cause()
                };
                let mut ev = intent_event(EventKind::ActionFailed, intent, provider.name());
                ev.duration_ms = Some(duration_ms);
                ev.error = Some(e.to_string());
                ev.cause = Some(cause.into());
                ev.detail = outcome_detail(intent, attempts, None);
                self.journal.record(ev, now).map_err(not_recorded)?;
                Ok(RunResult::Failed {
                    error: e.to_string(),
                    cause: cause.into(),
                    attempts,
                    retryable: e.is_retryable(),
                })
            }
        }
    }

    /// At start-up: ask each open action's provider whether it took effect and
    /// record `action_reconciled`. Actions whose target has no provider any more,
    /// or whose provider cannot tell, are recorded as `unknown` (treated as
    /// applied for cooldowns) so they do not block their target forever.
    pub async fn reconcile_open_actions(
        &self,
        providers: &BTreeMap<String, Arc<dyn Provider>>,
    ) -> Result<Vec<(String, Reconciliation)>, ExecError> {
        let open: Vec<_> = self.journal.state().open_actions().cloned().collect();
        let mut out = Vec::new();
        for a in open {
            let provider = providers.get(&a.target);
            let (result, error) = match provider {
                Some(p) => {
                    match tokio::time::timeout(self.cfg.timeout, p.reconcile(&a.request)).await {
                        Ok(Ok(r)) => (r, None),
                        Ok(Err(e)) => (Reconciliation::Unknown, Some(e.to_string())),
                        Err(_) => (
                            Reconciliation::Unknown,
                            Some(format!("reconcile timed out after {:?}", self.cfg.timeout)),
                        ),
                    }
                }
                None => (
                    Reconciliation::Unknown,
                    Some(format!("no provider for target {}", a.target)),
                ),
            };
            let mut ev = crate::audit::AuditEvent::new(EventKind::ActionReconciled);
            ev.action_id = Some(a.action_id.clone());
            ev.rule = Some(a.rule.clone()).filter(|r| !r.is_empty());
            ev.target = Some(a.target.clone());
            ev.instance = a.instance.clone();
            ev.kind = Some(a.kind);
            ev.provider = a.provider.clone();
            ev.actor = Some("agent".into());
            ev.error = error;
            let started = StartedDetail {
                request: a.request.clone(),
                origin: a.origin,
                direction: a.direction,
                circuit: None,
                timeout_ms: 0,
            };
            ev.detail = reconciled_detail(result.clone(), &started);
            self.journal
                .record(ev, self.clock.now_ms())
                .map_err(|source| ExecError::OutcomeNotRecorded {
                    action_id: a.action_id.clone(),
                    source,
                })?;
            out.push((a.action_id, result));
        }
        Ok(out)
    }
}

/// Provider failures that mean "the provider API is not there".
fn counts_as_down(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Unavailable { .. } | ProviderError::Timeout { .. }
    )
}

/// Upper bound of the backoff before retry `retry` (1-based).
pub fn backoff_upper(base: Duration, cap: Duration, retry: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

impl CircuitTransition {
    /// The intent that carries out this transition (origin `circuit`: it does
    /// not count for cooldowns or the hourly rate limit).
    pub fn intent(&self, now: TimestampMs) -> Intent {
        use crate::model::CircuitState as S;
        let instance = self.instance.clone();
        let op = match self.change.to {
            S::Open => ProviderOp::CircuitOpen { instance },
            S::HalfOpen => ProviderOp::CircuitHalfOpen { instance },
            S::Closed => ProviderOp::CircuitClose { instance },
        };
        Intent {
            action_id: new_action_id(now),
            rule: self.rule.clone(),
            group: String::new(),
            target: self.target.clone(),
            kind: ActionKind::CircuitBreak,
            instance: Some(self.instance.clone()),
            op,
            direction: None,
            origin: Origin::Circuit,
            circuit: Some(self.change),
            mode: Mode::Enforce,
            reason: None,
            recommendation: None,
            trace_id: None,
            at: now,
        }
    }
}
