//! `scale_in`: remove `step` replicas (default 1), or divide by `factor`,
//! down to the target's `min`. Never on missing data; held back by
//! `cooldown_down` (which any replica change starts).
use super::{no_blast_radius, no_cooldown, Kind, Plan, Planning};
use crate::model::{Cause, Direction};

pub(super) const KIND: Kind = Kind {
    plan,
    directions: &[Some(Direction::Down)],
    may_shrink: true,
    exclusive: false,
    cooldown: no_cooldown,
    blast_radius: no_blast_radius,
};

fn plan(p: &Planning<'_>) -> Plan {
    let spec = &p.decision.action;
    let current = p.target.replicas;
    let min = p.limits.min;
    if p.no_data() {
        return Plan::hold(Cause::NoData, "missing data never scales in");
    }
    if current <= min {
        return Plan::hold(
            Cause::Bounds,
            format!("{} is at min ({current} ≤ {min})", spec.target),
        );
    }
    let wanted = match spec.factor {
        Some(f) if f > 1.0 => ((current as f64 / f).floor() as u32).min(current - 1),
        _ => current.saturating_sub(spec.step.unwrap_or(1).max(1)),
    };
    Plan::set_replicas(current, wanted.max(min), Direction::Down)
}
