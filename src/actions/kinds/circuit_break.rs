//! `circuit_break`: take one instance out of traffic for `open_for` (then
//! half-open, then closed or open again; see [`crate::actions::circuit`]).
//! At most `max_open_share` of a target's instances may be open at once (the
//! rule's, else the target's).
use super::{ms, no_cooldown, Kind, Plan, Planning, Subject};
use crate::actions::circuit::DEFAULT_OPEN_FOR;
use crate::actions::types::Decision;
use crate::model::{Cause, ProviderOp};
use crate::model::{CircuitChange, CircuitState};

pub(super) const KIND: Kind = Kind {
    plan,
    directions: &[None],
    may_shrink: false,
    exclusive: false,
    cooldown: no_cooldown,
    blast_radius,
};

fn plan(p: &Planning<'_>) -> Plan {
    let spec = &p.decision.action;
    let Some(instance) = p.instance() else {
        return Plan::hold(Cause::Invalid, "circuit_break needs an instance");
    };
    match p.state.circuits().state(&spec.target, &instance) {
        CircuitState::Closed => Plan {
            instance: Some(instance.clone()),
            circuit: Some(CircuitChange {
                from: CircuitState::Closed,
                to: CircuitState::Open,
                open_for_ms: ms(spec.open_for.unwrap_or(DEFAULT_OPEN_FOR)) as u64,
            }),
            ..Plan::op(ProviderOp::CircuitOpen { instance })
        },
        s => Plan {
            instance: Some(instance.clone()),
            ..Plan::hold(
                Cause::InProgress,
                format!(
                    "circuit of {}/{instance} is already {}",
                    spec.target,
                    s.as_str()
                ),
            )
        },
    }
}

/// Opening one more circuit must leave enough instances taking traffic.
fn blast_radius(d: &Decision, x: &Subject<'_>, p: &Planning<'_>) -> Option<(Cause, String)> {
    let ts = p.target;
    let share = d
        .action
        .max_open_share
        .unwrap_or(p.limits.max_open_share)
        .clamp(0.0, 1.0);
    let total = (ts.instances.len() as u32).max(ts.replicas) as usize;
    // Circuits of instances that are gone (replaced) no longer take traffic away.
    // Rules may name an instance by id or by address (`{{ labels.instance }}`).
    let known: Vec<&str> = ts
        .instances
        .iter()
        .flat_map(|x| std::iter::once(x.id.as_str()).chain(x.address.as_deref()))
        .collect();
    let open_now = p
        .state
        .circuits()
        .iter()
        .filter(|((t, inst), _)| {
            *t == x.target && (known.is_empty() || known.contains(&inst.as_str()))
        })
        .count();
    let open_after = open_now + 1;
    // With no instance count (e.g. webhook targets), allow one open circuit.
    let allowed = if total == 0 {
        1
    } else {
        (share * total as f64 + 1e-9).floor() as usize
    };
    (open_after > allowed).then(|| {
        (
            Cause::BlastRadius,
            format!(
                "opening would leave {open_after} of {total} instances of {} out of traffic (max share {share})",
                x.target
            ),
        )
    })
}
