//! Guard, fold, circuit and executor tests with paused tokio time and a real
//! audit log in a temporary directory.
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::audit::{read_all, AuditLog, EventKind};
use crate::clock::Clock;
use crate::model::{
    ActionOutcome, ActionRequest, InstanceInfo, Labels, ProviderError, ProviderOp, Reconciliation,
    TargetState, TimestampMs, *,
};
use crate::providers::Provider;

const T0: TimestampMs = 1_700_000_000_000;
const SEC: i64 = 1000;
const MIN: i64 = 60_000;

// ---------- fixtures ----------

fn decision(rule: &str, kind: ActionKind, target: &str, at: TimestampMs) -> Decision {
    Decision {
        rule: rule.into(),
        group: "g".into(),
        action: ActionSpec::new(kind, target),
        labels: Labels::empty(),
        instance: None,
        mode: Mode::Enforce,
        approval: Approval::None,
        cooldown: None,
        reason: Reason::default(),
        annotations: BTreeMap::new(),
        at,
    }
}

fn on_instance(mut d: Decision, instance: &str) -> Decision {
    d.instance = Some(instance.into());
    d
}

fn target_state(replicas: u32) -> TargetState {
    TargetState {
        replicas,
        instances: (0..replicas)
            .map(|i| InstanceInfo {
                id: format!("i{i}"),
                address: Some(format!("127.0.0.1:{}", 18100 + i)),
                healthy: true,
                in_traffic: true,
                version: None,
                labels: BTreeMap::new(),
            })
            .collect(),
        version: None,
    }
}

fn limits(min: u32, max: u32) -> TargetLimits {
    TargetLimits {
        min,
        max,
        cooldown_up: Duration::ZERO,
        cooldown_down: Duration::ZERO,
        max_actions_per_hour: 0,
        max_open_share: 0.5,
    }
}

#[derive(Debug, Clone, Copy)]
enum Resp {
    Ok,
    Unavailable,
    Rejected,
    Denied,
    Conflict,
    Hang,
    RolledBack,
}

/// A provider that answers from a script and remembers every call.
struct FakeProvider {
    script: Mutex<VecDeque<Resp>>,
    calls: Mutex<Vec<(TimestampMs, ActionRequest)>>,
    clock: Clock,
    /// When set, `execute` reads the audit log and records whether its
    /// `action_started` line is already on disk.
    audit_dir: Option<PathBuf>,
    started_on_disk: Mutex<Vec<bool>>,
    reconcile_as: Reconciliation,
    supports: &'static [ActionKind],
    /// What `attempt_timeout` answers.
    attempt: Option<Duration>,
}

impl FakeProvider {
    fn new(clock: Clock) -> Self {
        Self {
            script: Mutex::new(VecDeque::new()),
            calls: Mutex::new(Vec::new()),
            clock,
            audit_dir: None,
            started_on_disk: Mutex::new(Vec::new()),
            reconcile_as: Reconciliation::Applied,
            supports: &ActionKind::ALL,
            attempt: None,
        }
    }
    fn script(self, r: &[Resp]) -> Self {
        *self.script.lock().unwrap() = r.iter().copied().collect();
        self
    }
    fn calls(&self) -> Vec<(TimestampMs, ActionRequest)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Provider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn supports(&self) -> &'static [ActionKind] {
        self.supports
    }
    fn attempt_timeout(&self, _op: &ProviderOp) -> Option<Duration> {
        self.attempt
    }
    async fn start(&self) -> Result<TargetState, ProviderError> {
        Ok(TargetState::default())
    }
    async fn state(&self) -> Result<TargetState, ProviderError> {
        Ok(TargetState::default())
    }
    async fn execute(&self, req: &ActionRequest) -> Result<ActionOutcome, ProviderError> {
        self.calls
            .lock()
            .unwrap()
            .push((self.clock.now_ms(), req.clone()));
        if let Some(dir) = &self.audit_dir {
            let on_disk = read_all(dir).unwrap().iter().any(|e| {
                e.event == Some(EventKind::ActionStarted)
                    && e.action_id.as_deref() == Some(&req.action_id)
            });
            self.started_on_disk.lock().unwrap().push(on_disk);
        }
        let r = self.script.lock().unwrap().pop_front().unwrap_or(Resp::Ok);
        let p = "fake".to_string();
        match r {
            Resp::Ok => Ok(ActionOutcome {
                before: serde_json::json!({"n": 1}),
                after: serde_json::json!({"n": 2}),
                rolled_back: None,
            }),
            Resp::Unavailable => Err(ProviderError::Unavailable {
                provider: p,
                message: "503".into(),
            }),
            Resp::Rejected => Err(ProviderError::Rejected {
                provider: p,
                message: "400".into(),
            }),
            Resp::Denied => Err(ProviderError::PermissionDenied {
                provider: p,
                message: "cannot patch deployments/scale".into(),
            }),
            Resp::Conflict => Err(ProviderError::Conflict {
                provider: p,
                message: "resourceVersion changed".into(),
            }),
            Resp::RolledBack => Ok(ActionOutcome {
                before: serde_json::json!({"version": "v1"}),
                after: serde_json::json!({"version": "v1"}),
                rolled_back: Some("v2 never became healthy".into()),
            }),
            Resp::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(ActionOutcome::default())
            }
        }
    }
    async fn reconcile(&self, _req: &ActionRequest) -> Result<Reconciliation, ProviderError> {
        Ok(self.reconcile_as.clone())
    }
    async fn shutdown(&self, _stop_instances: bool) {}
}

/// An agent's action machinery over a real audit log.
struct Rig {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    clock: Clock,
    exec: Executor,
    guard: Guard,
}

impl Rig {
    fn new() -> Self {
        Self::with(ExecutorConfig {
            jitter: false,
            ..ExecutorConfig::default()
        })
    }

    fn with(cfg: ExecutorConfig) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("audit");
        let log = AuditLog::open(&dir, 1 << 20).unwrap();
        let clock = Clock::starting_at(T0);
        let journal = Arc::new(Journal::new(Arc::new(log), GuardState::default()));
        Rig {
            _dir: tmp,
            dir,
            clock,
            exec: Executor::new(journal, clock, cfg).with_seed(7),
            guard: Guard::default(),
        }
    }

    fn now(&self) -> TimestampMs {
        self.clock.now_ms()
    }

    fn journal(&self) -> &Journal {
        self.exec.journal()
    }

    /// Guard the decision at the current time and record it, as the agent does.
    fn check(&self, d: &Decision, l: &TargetLimits, ts: &TargetState) -> Verdict {
        let now = self.now();
        let mut d = d.clone();
        d.at = now;
        let v = self.guard.check(&d, l, &self.journal().state(), ts, now);
        self.journal().record_decision(&d, &v, now).unwrap();
        v
    }

    /// Check and, if allowed, run through `p`; returns the verdict.
    async fn act(
        &self,
        d: &Decision,
        l: &TargetLimits,
        ts: &TargetState,
        p: &dyn Provider,
    ) -> Verdict {
        let v = self.check(d, l, ts);
        if let Verdict::Act(i) = &v {
            let r = self.exec.run(i, p).await.unwrap();
            assert!(matches!(r, RunResult::Succeeded { .. }), "{r:?}");
        }
        v
    }

    fn events(&self) -> Vec<crate::audit::AuditEvent> {
        read_all(&self.dir).unwrap()
    }
}

async fn advance(ms: i64) {
    tokio::time::advance(Duration::from_millis(ms as u64)).await;
}

fn cause(v: &Verdict) -> Option<Cause> {
    v.cause()
}

fn op(v: &Verdict) -> ProviderOp {
    match v {
        Verdict::Act(i) => i.op.clone(),
        other => panic!("expected Act, got {other:?}"),
    }
}

// ---------- guard: cooldowns ----------

#[tokio::test(start_paused = true)]
async fn rule_cooldown_suppresses_until_it_expires() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let mut d = decision("r", ActionKind::ScaleOut, "web", T0);
    d.cooldown = Some(Duration::from_secs(120));
    let l = limits(1, 10);
    assert!(matches!(
        rig.act(&d, &l, &target_state(2), &p).await,
        Verdict::Act(_)
    ));
    advance(MIN).await;
    assert_eq!(
        cause(&rig.check(&d, &l, &target_state(3))),
        Some(Cause::Cooldown)
    );
    // another rule on the same target is not bound by this rule's cooldown
    let other = decision("other", ActionKind::ScaleOut, "web", T0);
    assert!(matches!(
        rig.check(&other, &l, &target_state(3)),
        Verdict::Act(_)
    ));
    advance(MIN + 1).await;
    assert!(matches!(
        rig.check(&d, &l, &target_state(3)),
        Verdict::Act(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn target_cooldowns_up_and_down_are_separate() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let l = TargetLimits {
        cooldown_up: Duration::from_secs(60),
        cooldown_down: Duration::from_secs(300),
        ..limits(1, 10)
    };
    let out = decision("out", ActionKind::ScaleOut, "web", T0);
    let inn = decision("in", ActionKind::ScaleIn, "web", T0);

    // t0: scale-in. It blocks further scale-in, not scale-out.
    assert!(matches!(
        rig.act(&inn, &l, &target_state(4), &p).await,
        Verdict::Act(_)
    ));
    advance(10 * SEC).await;
    assert_eq!(
        cause(&rig.check(&inn, &l, &target_state(3))),
        Some(Cause::Cooldown)
    );
    advance(110 * SEC).await;
    // t0+2m: scale-out
    assert!(matches!(
        rig.act(&out, &l, &target_state(3), &p).await,
        Verdict::Act(_)
    ));
    // t0+2m30s: up is blocked for cooldown_up only
    advance(30 * SEC).await;
    assert_eq!(
        cause(&rig.check(&out, &l, &target_state(4))),
        Some(Cause::Cooldown)
    );
    advance(31 * SEC).await;
    assert!(matches!(
        rig.check(&out, &l, &target_state(4)),
        Verdict::Act(_)
    ));
    // t0+5m30s: the scale-in's own cooldown_down is over, but down also waits
    // cooldown_down after the scale-up (never shrink right after growing)
    advance(2 * MIN + 29 * SEC).await;
    let v = rig.check(&inn, &l, &target_state(4));
    assert_eq!(cause(&v), Some(Cause::Cooldown), "{v:?}");
    // t0+7m01s: 5m01s after the scale-up
    advance(MIN + 31 * SEC).await;
    assert!(matches!(
        rig.check(&inn, &l, &target_state(4)),
        Verdict::Act(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn failover_cooldown_is_per_instance() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let l = limits(1, 10);
    let mut d = decision("dead", ActionKind::Failover, "web", T0);
    d.cooldown = Some(Duration::from_secs(60));
    let a = on_instance(d.clone(), "i0");
    let b = on_instance(d.clone(), "i1");
    assert_eq!(
        op(&rig.act(&a, &l, &target_state(3), &p).await),
        ProviderOp::Replace {
            instance: "i0".into()
        }
    );
    advance(30 * SEC).await;
    assert_eq!(
        cause(&rig.check(&a, &l, &target_state(3))),
        Some(Cause::Cooldown)
    );
    assert!(matches!(
        rig.act(&b, &l, &target_state(3), &p).await,
        Verdict::Act(_)
    ));
    // the per-instance cooldown holds across rules too
    let other = on_instance(decision("other", ActionKind::Failover, "web", T0), "i0");
    assert_eq!(
        cause(&rig.check(&other, &l, &target_state(3))),
        Some(Cause::Cooldown)
    );
    advance(31 * SEC).await;
    assert!(matches!(
        rig.check(&a, &l, &target_state(3)),
        Verdict::Act(_)
    ));
}

// ---------- guard: rate limit, pause, dry-run, bounds ----------

#[tokio::test(start_paused = true)]
async fn rate_limit_counts_starts_in_the_last_hour() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let l = TargetLimits {
        max_actions_per_hour: 3,
        ..limits(1, 100)
    };
    let d = decision("r", ActionKind::ScaleOut, "web", T0);
    for i in 0..3 {
        assert!(matches!(
            rig.act(&d, &l, &target_state(2 + i), &p).await,
            Verdict::Act(_)
        ));
        advance(10 * MIN).await;
    }
    // t0+30m: three starts in the hour
    let v = rig.check(&d, &l, &target_state(5));
    assert_eq!(cause(&v), Some(Cause::RateLimit), "{v:?}");
    // t0+60m: the first start is exactly one hour old and no longer counts
    advance(30 * MIN).await;
    assert!(matches!(
        rig.check(&d, &l, &target_state(5)),
        Verdict::Act(_)
    ));
    // another target has its own budget
    let other = decision("r", ActionKind::ScaleOut, "api", T0);
    assert!(matches!(
        rig.check(&other, &l, &target_state(5)),
        Verdict::Act(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn pause_suppresses_everything_until_resume_and_survives_restart() {
    let rig = Rig::new();
    let d = decision("r", ActionKind::ScaleOut, "web", T0);
    let l = limits(1, 10);
    rig.journal().pause("api:alice", rig.now()).unwrap();
    assert_eq!(
        cause(&rig.check(&d, &l, &target_state(2))),
        Some(Cause::Paused)
    );
    // paused comes first, even before bounds
    assert_eq!(
        cause(&rig.check(&d, &l, &target_state(10))),
        Some(Cause::Paused)
    );
    assert!(GuardState::rebuild(&rig.events()).paused());
    rig.journal().resume("api:alice", rig.now()).unwrap();
    assert!(matches!(
        rig.check(&d, &l, &target_state(2)),
        Verdict::Act(_)
    ));
    assert!(!GuardState::rebuild(&rig.events()).paused());
}

#[tokio::test(start_paused = true)]
async fn not_leader_suppresses() {
    let mut rig = Rig::new();
    rig.guard.leader = false;
    let d = decision("r", ActionKind::ScaleOut, "web", T0);
    assert_eq!(
        cause(&rig.check(&d, &limits(1, 10), &target_state(2))),
        Some(Cause::NotLeader)
    );
}

#[tokio::test(start_paused = true)]
async fn dry_run_records_the_would_be_op() {
    let rig = Rig::new();
    let mut d = decision("r", ActionKind::ScaleOut, "web", T0);
    d.mode = Mode::DryRun;
    d.action.step = Some(2);
    let v = rig.check(&d, &limits(1, 10), &target_state(3));
    let Verdict::Suppress { cause, would, .. } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(*cause, Cause::DryRun);
    assert_eq!(
        would.as_ref().unwrap().op,
        ProviderOp::SetReplicas { from: 3, to: 5 }
    );
    let evs = rig.events();
    let sup = evs
        .iter()
        .find(|e| e.event == Some(EventKind::Suppressed))
        .unwrap();
    assert_eq!(sup.cause.as_deref(), Some("dry_run"));
    assert_eq!(
        sup.action_id.as_deref(),
        Some(would.as_ref().unwrap().action_id.as_str())
    );
    let would = &sup.detail.as_ref().unwrap()["would"];
    assert_eq!(would["op"]["op"], "set_replicas");
    assert_eq!(would["op"]["to"], 5);
    // a dry run starts no action and so sets no cooldown
    assert!(!evs
        .iter()
        .any(|e| e.event == Some(EventKind::ActionStarted)));
    assert!(rig
        .journal()
        .state()
        .last_scale("web", Direction::Up)
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn approval_required_is_suppressed_after_dry_run_check() {
    let rig = Rig::new();
    let mut d = decision("r", ActionKind::Redeploy, "web", T0);
    d.approval = Approval::Required;
    d.action.version = Some("v2".into());
    let v = rig.check(&d, &limits(1, 10), &target_state(3));
    assert_eq!(cause(&v), Some(Cause::Approval));
}

#[tokio::test(start_paused = true)]
async fn bounds_at_max_and_min_and_clamping() {
    let rig = Rig::new();
    let l = limits(2, 5);
    let out = decision("out", ActionKind::ScaleOut, "web", T0);
    let inn = decision("in", ActionKind::ScaleIn, "web", T0);
    assert_eq!(
        cause(&rig.check(&out, &l, &target_state(5))),
        Some(Cause::Bounds)
    );
    assert_eq!(
        cause(&rig.check(&inn, &l, &target_state(2))),
        Some(Cause::Bounds)
    );
    let mut big = out.clone();
    big.action.step = Some(4);
    assert_eq!(
        op(&rig.check(&big, &l, &target_state(3))),
        ProviderOp::SetReplicas { from: 3, to: 5 }
    );
    let mut half = inn.clone();
    half.action.factor = Some(2.0);
    assert_eq!(
        op(&rig.check(&half, &l, &target_state(5))),
        ProviderOp::SetReplicas { from: 5, to: 2 }
    );
    let mut grow = out.clone();
    grow.action.factor = Some(1.5);
    assert_eq!(
        op(&rig.check(&grow, &limits(1, 10), &target_state(3))),
        ProviderOp::SetReplicas { from: 3, to: 5 }
    );
}

#[tokio::test(start_paused = true)]
async fn missing_data_never_scales_in() {
    let rig = Rig::new();
    let mut d = decision("in", ActionKind::ScaleIn, "web", T0);
    d.reason.no_data = Some("stale".into());
    assert_eq!(
        cause(&rig.check(&d, &limits(1, 10), &target_state(4))),
        Some(Cause::NoData)
    );
    let mut s = decision("track", ActionKind::Scale, "web", T0);
    s.action.metric = Some("rps".into());
    s.action.target_value = Some(100.0);
    assert_eq!(
        cause(&rig.check(&s, &limits(1, 10), &target_state(4))),
        Some(Cause::NoData)
    );
}

// ---------- target tracking ----------

fn tracking(value: f64) -> Decision {
    let mut d = decision("track", ActionKind::Scale, "web", T0);
    d.action.metric = Some("rps_per_replica".into());
    d.action.target_value = Some(100.0);
    d.reason.values.insert("rps_per_replica".into(), value);
    d
}

#[tokio::test(start_paused = true)]
async fn target_tracking_respects_the_tolerance_band() {
    let rig = Rig::new();
    let l = limits(1, 20);
    assert_eq!(
        cause(&rig.check(&tracking(109.0), &l, &target_state(4))),
        Some(Cause::Tolerance)
    );
    assert_eq!(
        cause(&rig.check(&tracking(91.0), &l, &target_state(4))),
        Some(Cause::Tolerance)
    );
    // ceil(4 × 150/100) = 6
    assert_eq!(
        op(&rig.check(&tracking(150.0), &l, &target_state(4))),
        ProviderOp::SetReplicas { from: 4, to: 6 }
    );
    // ceil(4 × 111/100) = 5: just outside the band
    assert_eq!(
        op(&rig.check(&tracking(111.0), &l, &target_state(4))),
        ProviderOp::SetReplicas { from: 4, to: 5 }
    );
    // clamped to max
    assert_eq!(
        op(&rig.check(&tracking(1000.0), &l, &target_state(4))),
        ProviderOp::SetReplicas { from: 4, to: 20 }
    );
}

#[tokio::test(start_paused = true)]
async fn scale_in_uses_the_max_recommendation_over_the_window() {
    let rig = Rig::new();
    let l = limits(1, 20);
    let ts = target_state(8);
    // t0: desired 8 (in band) → recorded
    assert_eq!(
        cause(&rig.check(&tracking(100.0), &l, &ts)),
        Some(Cause::Tolerance)
    );
    advance(MIN).await;
    // t0+1m: desired ceil(8 × 0.5) = 4, but 8 is in the window
    let v = rig.check(&tracking(50.0), &l, &ts);
    assert_eq!(cause(&v), Some(Cause::Stabilization), "{v:?}");
    assert_eq!(v.recommendation(), Some(4));
    advance(MIN).await;
    // t0+2m: desired ceil(8 × 0.75) = 6
    assert_eq!(
        cause(&rig.check(&tracking(75.0), &l, &ts)),
        Some(Cause::Stabilization)
    );
    // t0+5m30s: the 8 has left the window; the 6 (t0+2m) has not → 6, not the latest 4
    advance(3 * MIN + 30 * SEC).await;
    assert_eq!(
        op(&rig.check(&tracking(50.0), &l, &ts)),
        ProviderOp::SetReplicas { from: 8, to: 6 }
    );
    // scale-up is never held by the window
    assert_eq!(
        op(&rig.check(&tracking(200.0), &l, &target_state(4))),
        ProviderOp::SetReplicas { from: 4, to: 8 }
    );
    // and the window is rebuilt from the log after a restart
    let rebuilt = GuardState::rebuild(&rig.events());
    let now = rig.now();
    assert_eq!(
        rebuilt.max_recommendation("web", "track", now - 5 * MIN),
        rig.journal()
            .state()
            .max_recommendation("web", "track", now - 5 * MIN)
    );
    assert_eq!(
        rebuilt.max_recommendation("web", "track", now - 5 * MIN),
        Some(8)
    );
}

// ---------- circuits ----------

fn circuit(instance: &str) -> Decision {
    let mut d = decision("errors", ActionKind::CircuitBreak, "web", T0);
    d.instance = Some(instance.into());
    d.action.open_for = Some(Duration::from_secs(30));
    d
}

async fn run_due(rig: &Rig, p: &dyn Provider) -> Vec<CircuitTransition> {
    let due = rig.journal().state().circuits().due(rig.now());
    for t in &due {
        let r = rig.exec.run(&t.intent(rig.now()), p).await.unwrap();
        assert!(matches!(r, RunResult::Succeeded { .. }), "{r:?}");
    }
    due
}

#[tokio::test(start_paused = true)]
async fn circuit_opens_half_opens_and_closes() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let l = limits(1, 10);
    let ts = target_state(4);
    let d = circuit("i1");
    assert_eq!(
        op(&rig.act(&d, &l, &ts, &p).await),
        ProviderOp::CircuitOpen {
            instance: "i1".into()
        }
    );
    assert_eq!(
        rig.journal().state().circuits().state("web", "i1"),
        CircuitState::Open
    );
    // while open: nothing due, and the rule firing again does not act twice
    advance(29 * SEC).await;
    assert!(run_due(&rig, &p).await.is_empty());
    assert_eq!(cause(&rig.check(&d, &l, &ts)), Some(Cause::InProgress));
    advance(SEC).await;
    let due = run_due(&rig, &p).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].change.to, CircuitState::HalfOpen);
    assert_eq!(
        rig.journal().state().circuits().state("web", "i1"),
        CircuitState::HalfOpen
    );
    // nothing happens until the opening rule is evaluated again
    assert!(run_due(&rig, &p).await.is_empty());
    advance(10 * SEC).await;
    rig.journal()
        .state()
        .note_evaluation("errors", rig.now(), &[]);
    let due = run_due(&rig, &p).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].change.to, CircuitState::Closed);
    assert_eq!(
        rig.journal().state().circuits().state("web", "i1"),
        CircuitState::Closed
    );
    // provider saw open, half-open, close; the audit log has three circuit_changed
    let ops: Vec<_> = p.calls().into_iter().map(|(_, r)| r.op).collect();
    assert_eq!(
        ops,
        vec![
            ProviderOp::CircuitOpen {
                instance: "i1".into()
            },
            ProviderOp::CircuitHalfOpen {
                instance: "i1".into()
            },
            ProviderOp::CircuitClose {
                instance: "i1".into()
            },
        ]
    );
    let changes: Vec<_> = rig
        .events()
        .into_iter()
        .filter(|e| e.event == Some(EventKind::CircuitChanged))
        .map(|e| e.after.unwrap())
        .collect();
    assert_eq!(changes, vec!["open", "half_open", "closed"]);
}

#[tokio::test(start_paused = true)]
async fn half_open_circuit_that_fails_again_reopens_with_doubled_open_for() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let ts = target_state(4);
    let d = circuit("i2");
    rig.act(&d, &limits(1, 10), &ts, &p).await;
    for expected_open_for in [60_000u64, 120_000, 240_000, 480_000, 600_000, 600_000] {
        let open_for = rig
            .journal()
            .state()
            .circuits()
            .get("web", "i2")
            .unwrap()
            .open_for_ms;
        advance(open_for as i64).await;
        assert_eq!(run_due(&rig, &p).await[0].change.to, CircuitState::HalfOpen);
        advance(10 * SEC).await;
        // the rule fires again for this instance (another instance's firing does not count)
        let fired = [circuit("i2")];
        rig.journal()
            .state()
            .note_evaluation("errors", rig.now(), &fired);
        let due = run_due(&rig, &p).await;
        assert_eq!(due[0].change.to, CircuitState::Open);
        assert_eq!(due[0].change.open_for_ms, expected_open_for);
        let c = rig
            .journal()
            .state()
            .circuits()
            .get("web", "i2")
            .cloned()
            .unwrap();
        assert_eq!(
            (c.state, c.open_for_ms),
            (CircuitState::Open, expected_open_for)
        );
    }
    // circuit state is rebuilt from the log
    let rebuilt = GuardState::rebuild(&rig.events());
    assert_eq!(
        rebuilt
            .circuits()
            .get("web", "i2")
            .map(|c| (c.state, c.open_for_ms)),
        Some((CircuitState::Open, 600_000))
    );
}

#[tokio::test(start_paused = true)]
async fn blast_radius_limits_open_circuits_and_redeploys() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let l = limits(1, 10);
    let ts = target_state(4);
    assert!(matches!(
        rig.act(&circuit("i0"), &l, &ts, &p).await,
        Verdict::Act(_)
    ));
    assert!(matches!(
        rig.act(&circuit("i1"), &l, &ts, &p).await,
        Verdict::Act(_)
    ));
    // 3 of 4 out of traffic would exceed 50 %
    let v = rig.check(&circuit("i2"), &l, &ts);
    assert_eq!(cause(&v), Some(Cause::BlastRadius), "{v:?}");
    // a larger share allows it
    let mut wide = circuit("i2");
    wide.action.max_open_share = Some(0.75);
    assert!(matches!(rig.check(&wide, &l, &ts), Verdict::Act(_)));
    // so does the target's configured share (guard.max_open_share)
    let wide_target = TargetLimits {
        max_open_share: 0.75,
        ..limits(1, 10)
    };
    assert!(matches!(
        rig.check(&circuit("i2"), &wide_target, &ts),
        Verdict::Act(_)
    ));

    // one redeploy at a time: an open (running) redeploy blocks another
    let mut r = decision("deploy", ActionKind::Redeploy, "api", T0);
    r.action.version = Some("v2".into());
    let Verdict::Act(first) = rig.check(&r, &l, &ts) else {
        panic!()
    };
    let started = journal::started_event(&first, "fake", 1000);
    rig.journal().record(started, rig.now()).unwrap();
    assert_eq!(cause(&rig.check(&r, &l, &ts)), Some(Cause::BlastRadius));
    // and no other action runs on the target meanwhile
    let out = decision("out", ActionKind::ScaleOut, "api", T0);
    assert_eq!(cause(&rig.check(&out, &l, &ts)), Some(Cause::BlastRadius));
}

// ---------- restart ----------

#[tokio::test(start_paused = true)]
async fn restart_inside_a_cooldown_does_not_act_again() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let mut d = decision("r", ActionKind::ScaleOut, "web", T0);
    d.cooldown = Some(Duration::from_secs(300));
    let l = TargetLimits {
        cooldown_up: Duration::from_secs(60),
        ..limits(1, 10)
    };
    assert!(matches!(
        rig.act(&d, &l, &target_state(2), &p).await,
        Verdict::Act(_)
    ));
    advance(2 * MIN).await;
    // a new agent: reopen the log, fold it into a fresh state
    let log = AuditLog::open(&rig.dir, 1 << 20).unwrap();
    let state = GuardState::rebuild(&read_all(&rig.dir).unwrap());
    let journal = Arc::new(Journal::new(Arc::new(log), state));
    let now = rig.now();
    let v = Guard::default().check(&d, &l, &journal.state(), &target_state(3), now);
    assert_eq!(cause(&v), Some(Cause::Cooldown), "{v:?}");
    // a fresh state without the log would have acted: the test proves the fold matters
    let v = Guard::default().check(&d, &l, &GuardState::default(), &target_state(3), now);
    assert!(matches!(v, Verdict::Act(_)));
}

#[tokio::test(start_paused = true)]
async fn open_action_after_crash_is_reconciled_and_keeps_its_cooldown() {
    let rig = Rig::new();
    let mut d = decision("r", ActionKind::ScaleOut, "web", T0);
    d.cooldown = Some(Duration::from_secs(300));
    let l = limits(1, 10);
    let Verdict::Act(intent) = rig.check(&d, &l, &target_state(2)) else {
        panic!()
    };
    // crash right after action_started: no outcome
    rig.journal()
        .record(journal::started_event(&intent, "fake", 60_000), rig.now())
        .unwrap();
    advance(10 * SEC).await;

    let log = AuditLog::open(&rig.dir, 1 << 20).unwrap();
    let state = GuardState::rebuild(&read_all(&rig.dir).unwrap());
    assert_eq!(state.open_actions().count(), 1);
    // while open, the target is busy
    assert_eq!(
        cause(&Guard::default().check(&d, &l, &state, &target_state(3), rig.now())),
        Some(Cause::InProgress)
    );
    let journal = Arc::new(Journal::new(Arc::new(log), state));
    let exec = Executor::new(journal.clone(), rig.clock, ExecutorConfig::default());
    let p: Arc<dyn Provider> = Arc::new(FakeProvider::new(rig.clock));
    let providers = BTreeMap::from([("web".to_string(), p)]);
    let done = exec.reconcile_open_actions(&providers).await.unwrap();
    assert_eq!(
        done,
        vec![(intent.action_id.clone(), Reconciliation::Applied)]
    );
    assert_eq!(journal.state().open_actions().count(), 0);
    let v = Guard::default().check(&d, &l, &journal.state(), &target_state(3), rig.now());
    assert_eq!(cause(&v), Some(Cause::Cooldown));
    let evs = read_all(&rig.dir).unwrap();
    let rec = evs.last().unwrap();
    assert_eq!(rec.event, Some(EventKind::ActionReconciled));
    assert_eq!(rec.detail.as_ref().unwrap()["result"], "applied");
    assert!(crate::audit::verify(&rig.dir).unwrap().is_ok());
}

// ---------- executor ----------

#[tokio::test(start_paused = true)]
async fn executor_writes_started_before_calling_the_provider() {
    let rig = Rig::new();
    let mut p = FakeProvider::new(rig.clock);
    p.audit_dir = Some(rig.dir.clone());
    let d = decision("r", ActionKind::ScaleOut, "web", T0);
    rig.act(&d, &limits(1, 10), &target_state(2), &p).await;
    assert_eq!(*p.started_on_disk.lock().unwrap(), vec![true]);
    let kinds: Vec<_> = rig.events().iter().filter_map(|e| e.event).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Decision,
            EventKind::ActionStarted,
            EventKind::ActionSucceeded
        ]
    );
    let ok = rig.events().pop().unwrap();
    assert_eq!(ok.before, Some(serde_json::json!({"n": 1})));
    assert_eq!(ok.after, Some(serde_json::json!({"n": 2})));
    assert!(ok.duration_ms.is_some());
}

#[tokio::test(start_paused = true)]
async fn start_makes_the_target_busy_before_the_provider_runs() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let l = limits(1, 10);
    let a = decision("a", ActionKind::ScaleOut, "web", T0);
    let b = decision("b", ActionKind::Failover, "web", T0);
    let Verdict::Act(i) = rig.check(&a, &l, &target_state(2)) else {
        panic!()
    };
    let Started::Running(s) = rig.exec.start(&i, &p).unwrap() else {
        panic!()
    };
    // a second rule firing in the same tick sees the target busy
    assert_eq!(
        cause(&rig.check(&on_instance(b.clone(), "i0"), &l, &target_state(2))),
        Some(Cause::InProgress)
    );
    assert!(p.calls().is_empty());
    let r = rig.exec.finish(s, &p).await.unwrap();
    assert!(matches!(r, RunResult::Succeeded { .. }));
    assert!(matches!(
        rig.check(&on_instance(b, "i0"), &l, &target_state(3)),
        Verdict::Act(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn executor_retries_retryable_errors_with_exponential_backoff() {
    let rig = Rig::new(); // jitter off: the full backoff bound is slept
    let p = FakeProvider::new(rig.clock).script(&[Resp::Unavailable, Resp::Unavailable, Resp::Ok]);
    let Verdict::Act(i) = rig.check(
        &decision("r", ActionKind::ScaleOut, "web", T0),
        &limits(1, 10),
        &target_state(2),
    ) else {
        panic!()
    };
    let start = rig.now();
    let r = rig.exec.run(&i, &p).await.unwrap();
    assert!(
        matches!(r, RunResult::Succeeded { attempts: 3, .. }),
        "{r:?}"
    );
    let calls = p.calls();
    let at: Vec<_> = calls.iter().map(|(t, _)| t - start).collect();
    assert_eq!(at, vec![0, 200, 600]);
    assert!(calls.iter().all(|(_, r)| r.action_id == i.action_id));
    let ok = rig.events().pop().unwrap();
    assert_eq!(ok.event, Some(EventKind::ActionSucceeded));
    assert_eq!(ok.detail.as_ref().unwrap()["attempts"], 3);
    assert_eq!(ok.duration_ms, Some(600));
}

#[tokio::test(start_paused = true)]
async fn executor_gives_up_after_max_attempts_and_does_not_retry_rejections() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock).script(&[Resp::Unavailable; 3]);
    let l = limits(1, 10);
    let d = decision("r", ActionKind::ScaleOut, "web", T0);
    let Verdict::Act(i) = rig.check(&d, &l, &target_state(2)) else {
        panic!()
    };
    let r = rig.exec.run(&i, &p).await.unwrap();
    assert!(matches!(r, RunResult::Failed { attempts: 3, .. }), "{r:?}");
    let failed = rig.events().pop().unwrap();
    assert_eq!(failed.event, Some(EventKind::ActionFailed));
    assert!(failed.error.unwrap().contains("503"));
    // a failed action starts no cooldown, and closes the open action
    assert!(rig
        .journal()
        .state()
        .last_scale("web", Direction::Up)
        .is_none());
    assert_eq!(rig.journal().state().open_actions().count(), 0);

    let p = FakeProvider::new(rig.clock).script(&[Resp::Rejected, Resp::Ok]);
    let Verdict::Act(i) = rig.check(&d, &l, &target_state(2)) else {
        panic!()
    };
    let r = rig.exec.run(&i, &p).await.unwrap();
    assert!(
        matches!(
            r,
            RunResult::Failed {
                attempts: 1,
                retryable: false,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(p.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn action_failed_names_the_error_class_and_only_transient_ones_are_retried() {
    for (script, cause, attempts) in [
        (&[Resp::Denied][..], "permission_denied", 1),
        (&[Resp::Rejected][..], "rejected", 1),
        (&[Resp::Conflict; 3][..], "conflict", 3),
        (&[Resp::Unavailable; 3][..], "unavailable", 3),
    ] {
        let rig = Rig::new();
        let p = FakeProvider::new(rig.clock).script(script);
        let Verdict::Act(i) = rig.check(
            &decision("r", ActionKind::ScaleOut, "web", T0),
            &limits(1, 10),
            &target_state(2),
        ) else {
            panic!()
        };
        let r = rig.exec.run(&i, &p).await.unwrap();
        assert!(
            matches!(&r, RunResult::Failed { cause: c, attempts: a, .. } if c == cause && *a == attempts),
            "{r:?}"
        );
        let failed = rig.events().pop().unwrap();
        assert_eq!(failed.event, Some(EventKind::ActionFailed));
        assert_eq!(failed.cause.as_deref(), Some(cause));
        assert_eq!(p.calls().len(), attempts as usize);
    }
}

#[tokio::test(start_paused = true)]
async fn an_adapter_that_needs_longer_gets_longer_but_never_less() {
    let rig = Rig::with(ExecutorConfig {
        jitter: false,
        max_attempts: 1,
        timeout: Duration::from_secs(5),
        ..ExecutorConfig::default()
    });
    let Verdict::Act(i) = rig.check(
        &decision("r", ActionKind::ScaleOut, "web", T0),
        &limits(1, 10),
        &target_state(2),
    ) else {
        panic!()
    };
    let mut p = FakeProvider::new(rig.clock).script(&[Resp::Hang]);
    p.attempt = Some(Duration::from_secs(90));
    assert_eq!(rig.exec.timeout_for(&i, &p), Duration::from_secs(90));
    let r = rig.exec.run(&i, &p).await.unwrap();
    assert!(
        matches!(&r, RunResult::Failed { cause, .. } if cause == "timeout"),
        "{r:?}"
    );
    assert_eq!(rig.events().pop().unwrap().duration_ms, Some(90_000));
    p.attempt = Some(Duration::from_secs(1));
    assert_eq!(rig.exec.timeout_for(&i, &p), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn executor_times_out_a_hanging_provider() {
    let rig = Rig::with(ExecutorConfig {
        jitter: false,
        max_attempts: 2,
        timeout: Duration::from_secs(5),
        ..ExecutorConfig::default()
    });
    let p = FakeProvider::new(rig.clock).script(&[Resp::Hang, Resp::Hang]);
    let Verdict::Act(i) = rig.check(
        &decision("r", ActionKind::ScaleOut, "web", T0),
        &limits(1, 10),
        &target_state(2),
    ) else {
        panic!()
    };
    let r = rig.exec.run(&i, &p).await.unwrap();
    let RunResult::Failed {
        cause, attempts, ..
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!((cause.as_str(), attempts), ("timeout", 2));
    // two 5 s timeouts and one 200 ms backoff, not the provider's hour
    assert_eq!(rig.events().pop().unwrap().duration_ms, Some(10_200));
}

#[tokio::test(start_paused = true)]
async fn provider_breaker_fails_fast_then_tries_again() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock).script(&[Resp::Unavailable; 6]);
    let l = limits(1, 10);
    let d = decision("r", ActionKind::ScaleOut, "web", T0);
    let intent = |rig: &Rig| match rig.check(&d, &l, &target_state(2)) {
        Verdict::Act(i) => i,
        v => panic!("{v:?}"),
    };
    // 3 failures, then 2 more: the 5th consecutive failure opens the breaker mid-retry
    let r1 = rig.exec.run(&intent(&rig), &p).await.unwrap();
    assert!(matches!(r1, RunResult::Failed { attempts: 3, .. }));
    let r2 = rig.exec.run(&intent(&rig), &p).await.unwrap();
    let RunResult::Failed {
        cause, attempts, ..
    } = r2
    else {
        panic!("{r2:?}")
    };
    assert_eq!((cause.as_str(), attempts), ("provider_unavailable", 2));
    assert_eq!(p.calls().len(), 5);
    // open: fails fast without calling the provider or starting an action
    let r3 = rig.exec.run(&intent(&rig), &p).await.unwrap();
    assert!(
        matches!(r3, RunResult::ProviderUnavailable { .. }),
        "{r3:?}"
    );
    assert_eq!(p.calls().len(), 5);
    let last = rig.events().pop().unwrap();
    assert_eq!(last.event, Some(EventKind::Suppressed));
    assert_eq!(last.cause.as_deref(), Some("provider_unavailable"));
    // after 30 s one trial goes through; it succeeds and closes the breaker
    advance(30 * SEC).await;
    let p = FakeProvider::new(rig.clock);
    let r4 = rig.exec.run(&intent(&rig), &p).await.unwrap();
    assert!(
        matches!(r4, RunResult::Succeeded { attempts: 1, .. }),
        "{r4:?}"
    );
    assert!(rig.exec.breaker_open(&p, "web").is_none());
}

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_within_the_exponential_bound() {
    let rig = Rig::with(ExecutorConfig::default());
    for retry in 1..=8u32 {
        let bound =
            executor::backoff_upper(Duration::from_millis(200), Duration::from_secs(10), retry);
        let draws: Vec<_> = (0..200).map(|_| rig.exec.backoff(retry)).collect();
        assert!(draws.iter().all(|d| *d <= bound));
        // jittered: not all the same, and spread over the range
        assert!(draws.iter().any(|d| *d < bound / 4));
        assert!(draws.iter().any(|d| *d > bound * 3 / 4));
    }
    assert_eq!(
        executor::backoff_upper(Duration::from_millis(200), Duration::from_secs(10), 3),
        Duration::from_millis(800)
    );
    assert_eq!(
        executor::backoff_upper(Duration::from_millis(200), Duration::from_secs(10), 40),
        Duration::from_secs(10)
    );
}

#[tokio::test(start_paused = true)]
async fn cooldown_until_reports_when_a_rule_may_act_next() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let l = TargetLimits {
        cooldown_up: Duration::from_secs(60),
        ..limits(1, 10)
    };
    let mut d = decision("r", ActionKind::ScaleOut, "web", T0);
    d.cooldown = Some(Duration::from_secs(120));
    assert_eq!(
        rig.guard
            .cooldown_until(&d, &l, &rig.journal().state(), rig.now()),
        None
    );
    rig.act(&d, &l, &target_state(2), &p).await;
    let acted = rig.now();
    advance(10 * SEC).await;
    // the longer of rule cooldown (2m) and cooldown_up (1m)
    assert_eq!(
        rig.guard
            .cooldown_until(&d, &l, &rig.journal().state(), rig.now()),
        Some(acted + 2 * MIN)
    );
    advance(2 * MIN).await;
    assert_eq!(
        rig.guard
            .cooldown_until(&d, &l, &rig.journal().state(), rig.now()),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn no_circuit_transition_is_due_while_paused() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    rig.act(&circuit("i0"), &limits(1, 10), &target_state(4), &p)
        .await;
    rig.journal().pause("cli", rig.now()).unwrap();
    advance(MIN).await;
    assert!(rig.journal().state().due_circuits(rig.now()).is_empty());
    assert_eq!(rig.journal().state().circuits().due(rig.now()).len(), 1);
    rig.journal().resume("cli", rig.now()).unwrap();
    assert_eq!(rig.journal().state().due_circuits(rig.now()).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn blast_radius_ignores_circuits_of_instances_that_are_gone() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let l = limits(1, 10);
    rig.act(&circuit("i0"), &l, &target_state(2), &p).await;
    // with i0 and i1 running, a second open circuit would be 2 of 2
    assert_eq!(
        cause(&rig.check(&circuit("i1"), &l, &target_state(2))),
        Some(Cause::BlastRadius)
    );
    // instances named by address count as known too
    let by_addr = |port: u32| {
        let mut d = circuit(&format!("127.0.0.1:{port}"));
        d.action.target = "api".into();
        d
    };
    assert!(matches!(
        rig.act(&by_addr(18101), &l, &target_state(2), &p).await,
        Verdict::Act(_)
    ));
    assert_eq!(
        cause(&rig.check(&by_addr(18100), &l, &target_state(2))),
        Some(Cause::BlastRadius)
    );
    // i0 was replaced by i2: its circuit no longer takes traffic away
    let mut ts = target_state(2);
    ts.instances[0].id = "i2".into();
    assert!(matches!(
        rig.check(&circuit("i1"), &l, &ts),
        Verdict::Act(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_redeploy_is_a_failure_that_still_starts_the_cooldown() {
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock).script(&[Resp::RolledBack]);
    let l = limits(1, 10);
    let mut d = decision("deploy", ActionKind::Redeploy, "web", T0);
    d.action.version = Some("v2".into());
    d.cooldown = Some(Duration::from_secs(600));
    let Verdict::Act(i) = rig.check(&d, &l, &target_state(3)) else {
        panic!()
    };
    assert_eq!(
        i.op,
        ProviderOp::Redeploy {
            version: Some("v2".into()),
            command: None,
            env: Default::default(),
        }
    );
    assert_eq!(
        rig.exec.timeout_for(&i, &p),
        ExecutorConfig::default().redeploy_timeout
    );
    let r = rig.exec.run(&i, &p).await.unwrap();
    let RunResult::Failed { cause, .. } = &r else {
        panic!("{r:?}")
    };
    assert_eq!(cause, "rolled_back");
    let ev = rig.events().pop().unwrap();
    assert_eq!(ev.event, Some(EventKind::ActionFailed));
    assert_eq!(ev.cause.as_deref(), Some("rolled_back"));
    assert!(ev.error.unwrap().contains("never became healthy"));
    advance(MIN).await;
    assert_eq!(
        cause_of(&rig.check(&d, &l, &target_state(3))),
        Some(Cause::Cooldown)
    );
    let mut rollback = d.clone();
    rollback.rule = "rollback".into();
    rollback.action.rollback = true;
    assert_eq!(
        op(&rig.check(&rollback, &l, &target_state(3))),
        ProviderOp::Rollback
    );
}

fn cause_of(v: &Verdict) -> Option<Cause> {
    v.cause()
}

#[tokio::test(start_paused = true)]
async fn reconciled_not_applied_sets_no_cooldown_and_missing_providers_are_unknown() {
    let rig = Rig::new();
    let l = limits(1, 10);
    let mut d = decision("r", ActionKind::ScaleOut, "web", T0);
    d.cooldown = Some(Duration::from_secs(300));
    let mut other = decision("r", ActionKind::ScaleOut, "gone", T0);
    other.cooldown = Some(Duration::from_secs(300));
    for dd in [&d, &other] {
        let Verdict::Act(i) = rig.check(dd, &l, &target_state(2)) else {
            panic!()
        };
        rig.journal()
            .record(journal::started_event(&i, "fake", 1), rig.now())
            .unwrap();
    }
    let mut fake = FakeProvider::new(rig.clock);
    fake.reconcile_as = Reconciliation::NotApplied;
    let p: Arc<dyn Provider> = Arc::new(fake);
    let providers = BTreeMap::from([("web".to_string(), p)]);
    let done = rig.exec.reconcile_open_actions(&providers).await.unwrap();
    let results: Vec<_> = done.into_iter().map(|(_, r)| r).collect();
    assert_eq!(results.len(), 2);
    assert!(results.contains(&Reconciliation::NotApplied));
    assert!(results.contains(&Reconciliation::Unknown));
    let state = rig.journal().state();
    assert_eq!(state.open_actions().count(), 0);
    // not applied: the rule may act again at once; unknown: assume it happened
    let g = Guard::default();
    assert!(matches!(
        g.check(&d, &l, &state, &target_state(2), rig.now()),
        Verdict::Act(_)
    ));
    assert_eq!(
        cause_of(&g.check(&other, &l, &state, &target_state(2), rig.now())),
        Some(Cause::Cooldown)
    );
    let unknown = rig
        .events()
        .into_iter()
        .find(|e| {
            e.event == Some(EventKind::ActionReconciled) && e.target.as_deref() == Some("gone")
        })
        .unwrap();
    assert!(unknown.error.unwrap().contains("no provider"));
}

#[tokio::test(start_paused = true)]
async fn executor_futures_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let rig = Rig::new();
    let p = FakeProvider::new(rig.clock);
    let Verdict::Act(i) = rig.check(
        &decision("r", ActionKind::ScaleOut, "web", T0),
        &limits(1, 10),
        &target_state(2),
    ) else {
        panic!()
    };
    let fut = rig.exec.run(&i, &p);
    assert_send(&fut);
    let providers = BTreeMap::new();
    let rec = rig.exec.reconcile_open_actions(&providers);
    assert_send(&rec);
    assert!(matches!(fut.await.unwrap(), RunResult::Succeeded { .. }));
    assert!(rec.await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn executor_refuses_a_kind_the_provider_cannot_do() {
    let rig = Rig::new();
    let mut p = FakeProvider::new(rig.clock);
    p.supports = &[ActionKind::ScaleOut, ActionKind::ScaleIn];
    let d = on_instance(decision("r", ActionKind::Failover, "web", T0), "i0");
    let Verdict::Act(i) = rig.check(&d, &limits(1, 10), &target_state(2)) else {
        panic!()
    };
    assert_eq!(rig.exec.run(&i, &p).await.unwrap(), RunResult::Unsupported);
    assert!(p.calls().is_empty());
    let ev = rig.events().pop().unwrap();
    assert_eq!(ev.event, Some(EventKind::Suppressed));
    assert_eq!(ev.cause.as_deref(), Some("unsupported"));
    assert!(!rig
        .events()
        .iter()
        .any(|e| e.event == Some(EventKind::ActionStarted)));
}

#[test]
fn action_spec_durations_are_written_as_the_loader_reads_them() {
    let mut spec = ActionSpec::new(ActionKind::CircuitBreak, "web");
    spec.open_for = Some(Duration::from_secs(90));
    spec.stabilization_window = Some(Duration::from_secs(86_400));
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["open_for"], "1m30s");
    assert_eq!(json["stabilization_window"], "1d");
    for text in [&json["open_for"], &json["stabilization_window"]] {
        assert!(
            crate::spec::parse_duration(text.as_str().unwrap()).is_ok(),
            "{text} does not parse back"
        );
    }
    let back: ActionSpec = serde_json::from_value(json).unwrap();
    assert_eq!(back, spec);
}
