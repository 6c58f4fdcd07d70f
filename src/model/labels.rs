//! Label sets: sorted, deduplicated (name, value) pairs, `__name__` included.
//!
//! A [`Labels`] value is the identity of a series everywhere in the agent (store,
//! query results, rule instances, audit reasons). Empty values are dropped on
//! construction, as Prometheus does.
use std::fmt;

/// The reserved label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Whether `s` may name a label (`[A-Za-z_][A-Za-z0-9_]*`, as in Prometheus).
/// Rule query names follow the same rule, so they can be template and
/// `when` variables.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A sorted set of labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Build from pairs in any order; later duplicates win; empty values are dropped.
    pub fn new<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let pairs = pairs.into_iter();
        let mut v: Vec<(String, String)> = Vec::with_capacity(pairs.size_hint().0);
        for (k, val) in pairs {
            let (k, val) = (k.into(), val.into());
            match v.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1 = val,
                None => v.push((k, val)),
            }
        }
        v.retain(|(_, val)| !val.is_empty());
        v.sort();
        Labels(v)
    }

    pub fn empty() -> Self {
        Labels(Vec::new())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Set (or, with an empty value, remove) one label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value.to_string())),
        }
    }

    /// A copy without the given label.
    pub fn without(&self, name: &str) -> Labels {
        Labels(self.0.iter().filter(|(n, _)| n != name).cloned().collect())
    }

    /// A copy without the metric name.
    pub fn without_metric_name(&self) -> Labels {
        self.without(METRIC_NAME)
    }

    /// Keep only the named labels (`by`), or drop them (`without`).
    pub fn project(&self, names: &[String], keep: bool) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| names.iter().any(|x| x == n) == keep)
                .cloned()
                .collect(),
        )
    }
}

impl fmt::Display for Labels {
    /// `name{a="b", c="d"}` as Prometheus prints series.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.metric_name() {
            f.write_str(n)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (k, v) in self.iter().filter(|(k, _)| *k != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(Labels::new(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_deduplicated_and_empty_values_dropped() {
        let l = Labels::new([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("a", "3"), ("b", "2")]);
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn set_and_project() {
        let mut l = Labels::new([("__name__", "up"), ("job", "x"), ("instance", "i")]);
        l.set("zone", "eu");
        l.set("instance", "");
        assert_eq!(l.to_string(), "up{job=\"x\", zone=\"eu\"}");
        assert_eq!(
            l.project(&["job".into()], true),
            Labels::new([("job", "x")])
        );
        assert_eq!(l.without_metric_name().metric_name(), None);
    }
}
