//! Why a decision did not become an action: the `cause` of a `suppressed`
//! audit event and the `cause` label of `homeostat_suppressions_total`. One
//! type for both, so the log and the metrics cannot disagree. Pure data.
use serde::{Deserialize, Serialize};

/// Why a decision did not become an action (the `cause` of a `suppressed` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The agent is paused (`POST /api/v1/pause`).
    Paused,
    /// Another agent instance is the leader.
    NotLeader,
    /// The target is at `min`/`max`, or clamping leaves nothing to do.
    Bounds,
    /// `scale`: the metric is inside the tolerance band around `target_value`.
    Tolerance,
    /// `scale`: scale-in held by the stabilisation window.
    Stabilization,
    /// The value a `scale` decision needs is missing, or the decision came from
    /// missing data and would scale in.
    NoData,
    /// The decision cannot be turned into an op (e.g. failover without instance).
    Invalid,
    Cooldown,
    RateLimit,
    /// Too many circuits open at once, or a second redeploy on a target.
    BlastRadius,
    /// Another action on the target is still running, or the circuit is already open.
    InProgress,
    DryRun,
    Approval,
    /// The executor's per-provider circuit breaker is open.
    ProviderUnavailable,
    /// The target's provider cannot do this kind (`homeostat check` should
    /// have refused the rule; this is the executor's last line).
    Unsupported,
}

impl Cause {
    /// Every cause, in the guard's order (DESIGN.md §4) then the executor's.
    pub const ALL: [Cause; 15] = [
        Cause::Paused,
        Cause::NotLeader,
        Cause::Bounds,
        Cause::Tolerance,
        Cause::Stabilization,
        Cause::NoData,
        Cause::Invalid,
        Cause::Cooldown,
        Cause::RateLimit,
        Cause::BlastRadius,
        Cause::InProgress,
        Cause::DryRun,
        Cause::Approval,
        Cause::ProviderUnavailable,
        Cause::Unsupported,
    ];

    /// The cause written as `s` in the audit log, if this build knows it.
    pub fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Paused => "paused",
            Cause::NotLeader => "not_leader",
            Cause::Bounds => "bounds",
            Cause::Tolerance => "tolerance",
            Cause::Stabilization => "stabilization",
            Cause::NoData => "no_data",
            Cause::Invalid => "invalid",
            Cause::Cooldown => "cooldown",
            Cause::RateLimit => "rate_limit",
            Cause::BlastRadius => "blast_radius",
            Cause::InProgress => "in_progress",
            Cause::DryRun => "dry_run",
            Cause::Approval => "approval",
            Cause::ProviderUnavailable => "provider_unavailable",
            Cause::Unsupported => "unsupported",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Cause;

    #[test]
    fn every_cause_is_listed_once_and_parses_back_from_its_audit_text() {
        let mut names: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
            // The audit log writes serde's name; it must be the same text.
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Cause::ALL.len());
        assert_eq!(Cause::parse("other"), None);
    }
}
