//! `scale_out`: add `step` replicas (default 1), or multiply by `factor`, up
//! to the target's `max`. Held back by `cooldown_up`.
use super::{no_blast_radius, no_cooldown, Kind, Plan, Planning};
use crate::model::{Cause, Direction};

pub(super) const KIND: Kind = Kind {
    plan,
    directions: &[Some(Direction::Up)],
    may_shrink: false,
    exclusive: false,
    cooldown: no_cooldown,
    blast_radius: no_blast_radius,
};

fn plan(p: &Planning<'_>) -> Plan {
    let spec = &p.decision.action;
    let current = p.target.replicas;
    let max = p.limits.max;
    if current >= max {
        return Plan::hold(
            Cause::Bounds,
            format!("{} is at max ({current} ≥ {max})", spec.target),
        );
    }
    let wanted = match spec.factor {
        Some(f) if f > 1.0 => {
            let grown = (current.max(1) as f64 * f).ceil().min(u32::MAX as f64) as u32;
            grown.max(current.saturating_add(1))
        }
        _ => current.saturating_add(spec.step.unwrap_or(1).max(1)),
    };
    Plan::set_replicas(current, wanted.min(max), Direction::Up)
}
