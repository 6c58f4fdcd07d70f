//! The `action:` block of a rule: which target and kind, and the settings
//! that kind takes. Checks the target exists, that its provider supports the
//! kind, and that every setting applies to the kind and is in range, so a
//! misplaced or impossible setting is an error instead of being ignored.
use std::collections::{BTreeMap, BTreeSet};

use super::raw::RawAction;
use super::template::Template;
use crate::actions::ActionSpec;
use crate::model::ActionKind;
use crate::spec::{parse_duration, SourceFile, YPath};

/// Which action kinds each target's provider supports: target name → kinds.
pub type Catalog = BTreeMap<String, &'static [ActionKind]>;

/// Validate an `action:` block of the rule `what` whose queries are
/// `query_names`: the action and its instance template (failover,
/// circuit_break). Every problem is recorded in `src`.
pub(super) fn validate(
    src: &mut SourceFile,
    ap: &YPath,
    what: &str,
    a: RawAction,
    catalog: &Catalog,
    query_names: &[&str],
) -> (ActionSpec, Option<Template>) {
    use ActionKind::*;
    let kind = a.kind;
    match catalog.get(&a.target) {
        None => {
            let targets: BTreeSet<String> = catalog.keys().cloned().collect();
            src.error(
                &ap.key("target"),
                format!(
                    "{what}: action: unknown target {:?} ({})",
                    a.target,
                    known(&targets)
                ),
            );
        }
        Some(kinds) if !kinds.contains(&kind) => {
            src.error(
                &ap.key("kind"),
                format!(
                "{what}: action: target {:?}'s provider does not support {kind} (supported: {})",
                a.target,
                kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            ),
            )
        }
        Some(_) => {}
    }

    // Fields that only make sense for some kinds: reject the rest, so a
    // misplaced setting is not silently ignored.
    let set: [(&str, bool, &[ActionKind]); 12] = [
        ("step", a.step.is_some(), &[ScaleOut, ScaleIn]),
        ("factor", a.factor.is_some(), &[ScaleOut, ScaleIn]),
        ("metric", a.metric.is_some(), &[Scale]),
        ("target_value", a.target_value.is_some(), &[Scale]),
        ("tolerance", a.tolerance.is_some(), &[Scale]),
        (
            "stabilization_window",
            a.stabilization_window.is_some(),
            &[Scale],
        ),
        ("instance", a.instance.is_some(), &[Failover, CircuitBreak]),
        ("open_for", a.open_for.is_some(), &[CircuitBreak]),
        (
            "max_open_share",
            a.max_open_share.is_some(),
            &[CircuitBreak],
        ),
        ("version", a.version.is_some(), &[Redeploy]),
        ("command", a.command.is_some(), &[Redeploy]),
        ("env", !a.env.is_empty(), &[Redeploy]),
    ];
    for (field, present, kinds) in set {
        if present && !kinds.contains(&kind) {
            src.error(
                &ap.key(field),
                format!("{what}: action: {field} does not apply to {kind}"),
            );
        }
    }
    if a.rollback && kind != Redeploy {
        src.error(
            &ap.key("rollback"),
            format!("{what}: action: rollback does not apply to {kind}"),
        );
    }

    let mut spec = ActionSpec::new(kind, a.target.clone());
    let mut instance_template = None;
    match kind {
        ScaleOut | ScaleIn => {
            if a.step == Some(0) {
                src.error(&ap.key("step"), format!("{what}: action: step must be ≥ 1"));
            }
            if let Some(f) = a.factor {
                if !(f > 1.0 && f.is_finite()) {
                    src.error(
                        &ap.key("factor"),
                        format!("{what}: action: factor must be > 1 (got {f})"),
                    );
                }
            }
            if a.step.is_some() && a.factor.is_some() {
                src.error(
                    &ap.key("factor"),
                    format!("{what}: action: set step or factor, not both"),
                );
            }
            spec.step = a.step;
            spec.factor = a.factor;
        }
        Scale => {
            match &a.metric {
                None => src.error(ap, format!("{what}: action: scale needs metric (a query name)")),
                Some(m) if !query_names.contains(&m.as_str()) => src.error(
                    &ap.key("metric"),
                    format!("{what}: action: metric {m:?} is not a query of this rule (queries are: {})", query_names.join(", ")),
                ),
                Some(_) => {}
            }
            match a.target_value {
                None => src.error(ap, format!("{what}: action: scale needs target_value")),
                Some(v) if !(v > 0.0 && v.is_finite()) => src.error(
                    &ap.key("target_value"),
                    format!("{what}: action: target_value must be > 0 (got {v})"),
                ),
                Some(_) => {}
            }
            if let Some(t) = a.tolerance {
                if !(0.0..1.0).contains(&t) {
                    src.error(
                        &ap.key("tolerance"),
                        format!("{what}: action: tolerance must be in [0, 1) (got {t})"),
                    );
                }
            }
            spec.metric = a.metric.clone();
            spec.target_value = a.target_value;
            spec.tolerance = a.tolerance;
            if let Some(s) = &a.stabilization_window {
                match parse_duration(s) {
                    Ok(d) => spec.stabilization_window = Some(d),
                    Err(e) => src.error(
                        &ap.key("stabilization_window"),
                        format!("{what}: action: stabilization_window: {e}"),
                    ),
                }
            }
        }
        Failover | CircuitBreak => {
            match &a.instance {
                None => src.error(
                    ap,
                    format!("{what}: action: {kind} needs instance (e.g. \"{{{{ labels.instance }}}}\")"),
                ),
                Some(text) => match Template::parse(text, query_names.iter().copied()) {
                    Ok(t) => instance_template = Some(t),
                    Err(e) => src.error(&ap.key("instance"), format!("{what}: action: instance: {e}")),
                },
            }
            spec.instance = a.instance.clone();
            if let Some(s) = &a.open_for {
                match parse_duration(s) {
                    Ok(d) if !d.is_zero() => spec.open_for = Some(d),
                    Ok(_) => src.error(
                        &ap.key("open_for"),
                        format!("{what}: action: open_for must be > 0s"),
                    ),
                    Err(e) => src.error(
                        &ap.key("open_for"),
                        format!("{what}: action: open_for: {e}"),
                    ),
                }
            }
            if let Some(s) = a.max_open_share {
                if !(s > 0.0 && s <= 1.0) {
                    src.error(
                        &ap.key("max_open_share"),
                        format!("{what}: action: max_open_share must be in (0, 1] (got {s})"),
                    );
                }
                spec.max_open_share = Some(s);
            }
        }
        Redeploy => {
            if a.rollback && (a.version.is_some() || a.command.is_some() || !a.env.is_empty()) {
                src.error(
                    &ap.key("rollback"),
                    format!("{what}: action: rollback takes no version, command or env"),
                );
            }
            for name in a.env.keys() {
                if name.is_empty() || name.contains('=') || name.contains('\0') {
                    src.error(
                        &ap.key("env").key(name),
                        format!("{what}: action: env: {name:?} is not a variable name"),
                    );
                }
            }
            if a.command.as_ref().is_some_and(|c| c.is_empty()) {
                src.error(
                    &ap.key("command"),
                    format!("{what}: action: command is empty"),
                );
            }
            spec.version = a.version.clone();
            spec.command = a.command.clone();
            spec.env = a.env.clone();
            spec.rollback = a.rollback;
        }
    }
    (spec, instance_template)
}

/// `known: a, b` (or `none are declared`), for "unknown …" errors.
pub(super) fn known(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        "none are declared".to_string()
    } else {
        format!(
            "known: {}",
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}
