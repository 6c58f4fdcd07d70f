//! The one short phrase for what an action changed (`replicas 1→2 (+18101)`,
//! `closed→open, in traffic yes→no`, `rolled back to v1`), from an event's
//! recorded `before`/`after`, its circuit transition and its rollback text.
//! Shared by the event lines and the summary table; must not print or read.
use serde_json::{json, Value};

use super::words::{short_value, truncate, MAX_CHANGE, MAX_KEYS};

fn is_empty_state(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// `yes`/`no` for a traffic flag.
fn yes_no(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_bool) {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

/// Whether a provider's instance `id` (`18101`) names the event's `instance`
/// (`127.0.0.1:18101`, or the id itself).
fn same_instance(id: &str, instance: &str) -> bool {
    id == instance
        || instance
            .rsplit_once(':')
            .is_some_and(|(_, port)| port == id)
}

/// One instance in a [`ReplicaSet`], keyed by its `id`.
struct Instance<'a> {
    id: String,
    fields: &'a serde_json::Map<String, Value>,
}

impl Instance<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key).filter(|v| !v.is_null())
    }
}

/// The replica-set shape of a provider's `before`/`after` (the `process`
/// provider's: `{"replicas": 2, "version": "v1", "instances": [{"id":
/// "18100", "pid": 4242, "version": "v1", "in_traffic": true}]}`). Any of the
/// three members may be missing.
struct ReplicaSet<'a> {
    replicas: Option<&'a Value>,
    version: Option<&'a Value>,
    instances: Option<Vec<Instance<'a>>>,
}

impl<'a> ReplicaSet<'a> {
    /// `None` when `v` does not have this shape.
    fn parse(v: &'a Value) -> Option<Self> {
        let m = v.as_object()?;
        if !m.contains_key("replicas") && !m.contains_key("instances") {
            return None;
        }
        let instances = match m.get("instances") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|i| {
                        let fields = i.as_object()?;
                        let id = match fields.get("id")? {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => return None,
                        };
                        Some(Instance { id, fields })
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            Some(_) => return None,
        };
        Some(ReplicaSet {
            replicas: m.get("replicas"),
            version: m.get("version"),
            instances,
        })
    }

    fn instance(&self, name: &str) -> Option<&Instance<'a>> {
        self.instances
            .as_ref()?
            .iter()
            .find(|i| same_instance(&i.id, name))
    }

    fn ids(&self) -> Vec<&str> {
        self.instances
            .iter()
            .flatten()
            .map(|i| i.id.as_str())
            .collect()
    }
}

/// `word a→b` when `a` and `b` differ.
fn changed(word: &str, a: Option<&Value>, b: Option<&Value>) -> Option<String> {
    let (a, b) = (a.unwrap_or(&Value::Null), b.unwrap_or(&Value::Null));
    (a != b).then(|| format!("{word} {}→{}", short_value(a), short_value(b)))
}

/// What changed between two replica sets: for one `instance` its traffic,
/// process and version; for the target its replica count (naming up to two
/// added or removed instances), its version, or the instances a rolling
/// restart replaced.
fn replica_diff(b: &ReplicaSet, a: &ReplicaSet, instance: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(name) = instance {
        match (b.instance(name), a.instance(name)) {
            (Some(x), Some(y)) => {
                let (px, py) = (x.get("pid"), y.get("pid"));
                if px != py {
                    out.push(format!(
                        "replaced (pid {}→{})",
                        px.map_or("?".into(), short_value),
                        py.map_or("?".into(), short_value)
                    ));
                }
                if x.get("in_traffic") != y.get("in_traffic") {
                    out.push(format!(
                        "in traffic {}→{}",
                        yes_no(x.get("in_traffic")),
                        yes_no(y.get("in_traffic"))
                    ));
                }
                out.extend(changed("version", x.get("version"), y.get("version")));
            }
            (Some(_), None) => out.push("removed".into()),
            (None, Some(_)) => out.push("added".into()),
            (None, None) => {}
        }
    }
    if let Some(c) = changed("replicas", b.replicas, a.replicas) {
        let (old, new) = (b.ids(), a.ids());
        let mut ids: Vec<String> = new
            .iter()
            .filter(|id| !old.contains(id))
            .map(|id| format!("+{id}"))
            .collect();
        ids.extend(
            old.iter()
                .filter(|id| !new.contains(id))
                .map(|id| format!("-{id}")),
        );
        if instance.is_none() && !ids.is_empty() && ids.len() <= 2 {
            out.push(format!("{c} ({})", ids.join(" ")));
        } else {
            out.push(c);
        }
    }
    let version = changed("version", b.version, a.version);
    let same_count = b.replicas == a.replicas;
    out.extend(version.clone());
    if instance.is_none() && same_count && version.is_none() {
        // A rolling restart: same count and version, new processes.
        let replaced = b
            .instances
            .iter()
            .flatten()
            .filter(|x| {
                a.instances
                    .iter()
                    .flatten()
                    .find(|y| y.id == x.id)
                    .is_none_or(|y| y.get("pid") != x.get("pid"))
            })
            .count();
        if replaced > 0 {
            out.push(format!(
                "{replaced} instance{} replaced",
                if replaced == 1 { "" } else { "s" }
            ));
        }
    }
    out
}

/// Changed members of two objects, nested members as `a.b`: `key old→new`.
fn object_diff(
    prefix: &str,
    b: &serde_json::Map<String, Value>,
    a: &serde_json::Map<String, Value>,
    out: &mut Vec<String>,
) {
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (x, y) = (b.get(k), a.get(k));
        if x == y {
            continue;
        }
        let name = format!("{prefix}{k}");
        match (x, y) {
            (Some(Value::Object(xm)), Some(Value::Object(ym))) => {
                object_diff(&format!("{name}."), xm, ym, out);
            }
            _ => out.extend(changed(&name, x, y)),
        }
    }
}

/// The change between two values of any shape: only the members whose value
/// changed, values shortened; a state known only after (a webhook's answer)
/// as `key=value`.
fn generic_diff(b: Option<&Value>, a: Option<&Value>) -> Option<String> {
    let b = b.filter(|v| !is_empty_state(v));
    let a = a.filter(|v| !is_empty_state(v));
    let parts: Vec<String> = match (b, a) {
        (None, None) => return None,
        (Some(Value::Object(bm)), Some(Value::Object(am))) => {
            let mut out = Vec::new();
            object_diff("", bm, am, &mut out);
            out
        }
        (None, Some(Value::Object(am))) => am
            .iter()
            .filter(|(_, v)| !is_empty_state(v))
            .map(|(k, v)| format!("{k}={}", short_value(v)))
            .collect(),
        (b, a) => {
            let (x, y) = (b.unwrap_or(&Value::Null), a.unwrap_or(&Value::Null));
            if x == y {
                Vec::new()
            } else {
                vec![format!("{}→{}", short_value(x), short_value(y))]
            }
        }
    };
    if parts.is_empty() {
        return Some("no change".into());
    }
    let mut shown: Vec<String> = parts.iter().take(MAX_KEYS).cloned().collect();
    if parts.len() > MAX_KEYS {
        shown.push(format!("+{} more", parts.len() - MAX_KEYS));
    }
    Some(shown.join(", "))
}

/// What is known about one action, or one event, to say what it changed.
#[derive(Debug, Default)]
pub(super) struct ChangeFacts<'a> {
    /// The instance acted on (`127.0.0.1:18101`), if the action has one.
    pub(super) instance: Option<&'a str>,
    pub(super) before: Option<&'a Value>,
    pub(super) after: Option<&'a Value>,
    /// A circuit transition, `(from, to)`.
    pub(super) circuit: Option<(&'a str, &'a str)>,
    /// The provider undid the action; the text (error or detail) says why and
    /// usually to which version.
    pub(super) rolled_back: Option<&'a str>,
}

/// The version a rollback returned to: the `after` state's version, else the
/// `… rolled back to v1` of the message.
fn rolled_back_to(after: Option<&Value>, why: &str) -> Option<String> {
    if let Some(v) = after
        .and_then(ReplicaSet::parse)
        .and_then(|s| s.version.and_then(Value::as_str).map(String::from))
    {
        return Some(v);
    }
    let (_, rest) = why.rsplit_once("rolled back to ")?;
    let word = rest.split_whitespace().next()?;
    let word = word.trim_end_matches(['.', ',', ';', ')']);
    (!word.is_empty()).then(|| word.to_string())
}

/// One short phrase for what an action changed: `replicas 1→2 (+18101)`,
/// `version v1→v2`, `in traffic yes→no`, `replaced (pid 28465→28474)`,
/// `closed→open, in traffic yes→no`, `rolled back to v1`, or a short generic
/// diff for other shapes. `None` when nothing is known.
pub(super) fn describe_change(f: &ChangeFacts) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if let Some((from, to)) = f.circuit {
        parts.push(format!("{from}→{to}"));
    }
    if let Some(why) = f.rolled_back {
        parts.push(match rolled_back_to(f.after, why) {
            Some(v) => format!("rolled back to {v}"),
            None => "rolled back".into(),
        });
    } else {
        let sets = f
            .before
            .and_then(ReplicaSet::parse)
            .zip(f.after.and_then(ReplicaSet::parse));
        match sets {
            Some((b, a)) => {
                let diff = replica_diff(&b, &a, f.instance);
                if diff.is_empty() && parts.is_empty() {
                    parts.push("no change".into());
                }
                parts.extend(diff);
            }
            None => {
                // A circuit's own `before`/`after` (circuit_changed) repeats it.
                let dup = f.circuit.is_some_and(|(x, y)| {
                    f.before == Some(&json!(x)) && f.after == Some(&json!(y))
                });
                if !dup {
                    parts.extend(generic_diff(f.before, f.after));
                }
            }
        }
    }
    (!parts.is_empty()).then(|| truncate(&parts.join(", "), MAX_CHANGE))
}
