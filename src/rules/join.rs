//! Joining the results of a rule's queries into rule instances, one per label
//! set (as a Prometheus alerting rule has one alert per series).
use std::collections::{BTreeMap, HashMap};

use crate::model::{Labels, Sample};

/// Join query results into rule instances.
///
/// - Queries with several results decide the instance set: a label set (without
///   `__name__`) is an instance if every such query has a series with exactly it.
/// - A query with a single result applies to every instance whose labels do not
///   contradict it (same label name, other value); its labels are added. With
///   `{}` labels (e.g. `sum(...)`) that is every instance.
/// - If no query has several results there is one instance: the union of labels.
///
/// An instance lacking a value for some query is dropped (nothing to decide on).
pub fn join(results: &[(&str, &[Sample])]) -> Vec<(Labels, BTreeMap<String, f64>)> {
    let multi: Vec<&(&str, &[Sample])> = results.iter().filter(|(_, s)| s.len() > 1).collect();
    let single: Vec<(&str, Labels, f64)> = results
        .iter()
        .filter(|(_, s)| s.len() == 1)
        .map(|(n, s)| (*n, s[0].labels.without_metric_name(), s[0].value))
        .collect();

    let mut candidates: Vec<(Labels, BTreeMap<String, f64>)> = Vec::new();
    if let Some(((first_name, first), rest)) = multi.split_first().map(|(f, r)| (**f, r)) {
        let others: Vec<(&str, HashMap<Labels, f64>)> = rest
            .iter()
            .map(|(n, s)| {
                (
                    *n,
                    s.iter()
                        .map(|x| (x.labels.without_metric_name(), x.value))
                        .collect(),
                )
            })
            .collect();
        'outer: for s in first {
            let l = s.labels.without_metric_name();
            let mut values = BTreeMap::from([(first_name.to_string(), s.value)]);
            for (n, m) in &others {
                match m.get(&l) {
                    Some(v) => {
                        values.insert(n.to_string(), *v);
                    }
                    None => continue 'outer,
                }
            }
            candidates.push((l, values));
        }
        // Duplicate label sets within one query (bad `by`): keep the first.
        candidates.dedup_by(|a, b| a.0 == b.0);
    } else {
        candidates.push((Labels::empty(), BTreeMap::new()));
    }

    let mut out = Vec::new();
    'cand: for (mut labels, mut values) in candidates {
        for (n, sl, v) in &single {
            let contradicts = sl
                .iter()
                .any(|(k, val)| labels.get(k).is_some_and(|x| x != val));
            if contradicts {
                continue 'cand;
            }
            for (k, val) in sl.iter() {
                if labels.get(k).is_none() {
                    labels.set(k, val);
                }
            }
            values.insert(n.to_string(), *v);
        }
        out.push((labels, values));
    }
    out
}
