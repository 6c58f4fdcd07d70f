//! `redeploy`: roll the target to a new version, command or environment, or
//! back to the previous one. It replaces every instance, so it never runs
//! beside another action on its target (that is a blast-radius suppression).
use super::{no_blast_radius, no_cooldown, Kind, Plan, Planning};
use crate::model::ProviderOp;

pub(super) const KIND: Kind = Kind {
    plan,
    directions: &[None],
    may_shrink: false,
    exclusive: true,
    cooldown: no_cooldown,
    blast_radius: no_blast_radius,
};

fn plan(p: &Planning<'_>) -> Plan {
    let spec = &p.decision.action;
    Plan::op(if spec.rollback {
        ProviderOp::Rollback
    } else {
        ProviderOp::Redeploy {
            version: spec.version.clone(),
            command: spec.command.clone(),
            env: spec.env.clone(),
        }
    })
}
