//! `failover`: replace one instance. An instance is not replaced twice within
//! its cooldown (the rule's, else [`DEFAULT_INSTANCE_COOLDOWN`]), whichever
//! rule asks, so a replacement gets the chance to come up.
use std::time::Duration;

use super::{no_blast_radius, Cooldown, Kind, Plan, Planning, Subject};
use crate::actions::state::GuardState;
use crate::actions::types::Decision;
use crate::model::{Cause, ProviderOp};

/// The instance cooldown when the rule sets none.
pub const DEFAULT_INSTANCE_COOLDOWN: Duration = Duration::from_secs(60);

pub(super) const KIND: Kind = Kind {
    plan,
    directions: &[None],
    may_shrink: false,
    exclusive: false,
    cooldown,
    blast_radius: no_blast_radius,
};

fn plan(p: &Planning<'_>) -> Plan {
    match p.instance() {
        Some(instance) => Plan {
            instance: Some(instance.clone()),
            ..Plan::op(ProviderOp::Replace { instance })
        },
        None => Plan::hold(Cause::Invalid, "failover needs an instance"),
    }
}

fn cooldown(d: &Decision, x: &Subject<'_>, state: &GuardState) -> Option<Cooldown> {
    let instance = x.instance?;
    Some(Cooldown {
        last: state.last_failover(x.target, instance),
        length: d.cooldown.unwrap_or(DEFAULT_INSTANCE_COOLDOWN),
        what: format!("{}/{instance} was failed over", x.target),
        name: Some("instance cooldown"),
    })
}
