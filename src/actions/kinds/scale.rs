//! `scale`: HPA-style target tracking. desired = ceil(current × value /
//! target_value), nothing within the tolerance band, and a scale-in only to
//! the highest recommendation of the stabilisation window. Never shrinks on
//! missing data; its direction is known only after planning, so both
//! replica-count cooldowns may apply.
use std::time::Duration;

use super::{fmt_ms, ms, no_blast_radius, no_cooldown, Kind, Plan, Planning};
use crate::model::{Cause, Direction};

/// Relative band around `target_value` inside which nothing changes.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Scale-in uses the highest recommendation over this window.
pub const DEFAULT_STABILIZATION_WINDOW: Duration = Duration::from_secs(300);

pub(super) const KIND: Kind = Kind {
    plan,
    directions: &[Some(Direction::Up), Some(Direction::Down)],
    may_shrink: true,
    exclusive: false,
    cooldown: no_cooldown,
    blast_radius: no_blast_radius,
};

fn plan(p: &Planning<'_>) -> Plan {
    let d = p.decision;
    let limits = p.limits;
    let current = p.target.replicas;
    let spec = &d.action;
    let Some(metric) = spec.metric.as_deref() else {
        return Plan::hold(Cause::Invalid, "scale needs `metric`");
    };
    let target_value = match spec.target_value {
        Some(v) if v.is_finite() && v > 0.0 => v,
        _ => return Plan::hold(Cause::Invalid, "scale needs a positive `target_value`"),
    };
    let value = match d.reason.values.get(metric) {
        Some(v) if v.is_finite() && *v >= 0.0 => *v,
        _ => return Plan::hold(Cause::NoData, format!("no value for `{metric}`")),
    };
    let tolerance = spec.tolerance.unwrap_or(DEFAULT_TOLERANCE).max(0.0);
    let window = ms(spec
        .stabilization_window
        .unwrap_or(DEFAULT_STABILIZATION_WINDOW));
    let ratio = value / target_value;
    // Within the band the recommendation is "stay": it still counts for the window.
    if (ratio - 1.0).abs() <= tolerance {
        return Plan {
            recommendation: Some(current),
            ..Plan::hold(
                Cause::Tolerance,
                format!(
                    "{metric} = {value} is within {}% of target {target_value}",
                    tolerance * 100.0
                ),
            )
        };
    }
    // From zero replicas, compute as if one ran, so load can bring it up.
    let desired = (current.max(1) as f64 * ratio)
        .ceil()
        .clamp(0.0, u32::MAX as f64) as u32;
    let with_rec = |p: Plan| Plan {
        recommendation: Some(desired),
        ..p
    };
    let mut wanted = desired;
    if desired < current {
        if p.no_data() {
            return with_rec(Plan::hold(Cause::NoData, "missing data never scales in"));
        }
        let window_max = p
            .state
            .max_recommendation(&spec.target, &d.rule, p.now - window)
            .unwrap_or(desired);
        wanted = desired.max(window_max).min(current);
        if wanted == current {
            return with_rec(Plan::hold(
                Cause::Stabilization,
                format!(
                    "desired {desired}, but the highest recommendation in the last {} is {window_max}",
                    fmt_ms(window)
                ),
            ));
        }
    }
    let clamped = wanted.clamp(limits.min, limits.max.max(limits.min));
    let dir = if clamped > current {
        Direction::Up
    } else {
        Direction::Down
    };
    if clamped == current {
        return with_rec(Plan::hold(
            Cause::Bounds,
            format!(
                "desired {wanted} clamped to [{}, {}] leaves {current}",
                limits.min, limits.max
            ),
        ));
    }
    with_rec(Plan::set_replicas(current, clamped, dir))
}
