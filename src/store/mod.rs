//! In-memory time-series store: interned label sets, numeric series ids,
//! per-series ring buffers.
//!
//! Owns retention (set by the agent from the longest range any loaded rule needs,
//! plus the 5m lookback), staleness markers (Prometheus's special NaN) and dropping
//! of series not written for longer than retention. Must not know PromQL:
//! selection is by label matchers only. Not internally synchronised: the agent
//! shares it as [`SharedStore`].
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use crate::model::{Labels, TimestampMs};

/// Bit pattern Prometheus writes as a staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True for the staleness marker (and not for an ordinary NaN sample).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Default retention when no rule asks for more: the 5m lookback plus margin.
pub const DEFAULT_RETENTION_MS: i64 = 10 * 60 * 1000;

/// The store shared between sources (writers) and the rule engine (reader).
pub type SharedStore = Arc<RwLock<Store>>;

/// Numeric id of a series, stable while the series lives.
pub type SeriesId = u32;

/// How a label matcher compares.
#[derive(Debug, Clone)]
pub enum MatchOp {
    Equal(String),
    NotEqual(String),
    /// Fully anchored regex, as in PromQL.
    Re(regex::Regex),
    NotRe(regex::Regex),
}

/// One label matcher; a missing label matches as the empty string, as in PromQL.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
}

impl Matcher {
    pub fn equal(name: &str, value: &str) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal(value.into()),
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).unwrap_or("");
        match &self.op {
            MatchOp::Equal(x) => v == x,
            MatchOp::NotEqual(x) => v != x,
            MatchOp::Re(r) => r.is_match(v),
            MatchOp::NotRe(r) => !r.is_match(v),
        }
    }
}

struct Series {
    labels: Arc<Labels>,
    samples: VecDeque<(TimestampMs, f64)>,
}

/// A selected series and its samples in the requested window, oldest first.
/// Stale markers are included; the query layer interprets them.
pub struct SeriesView<'a> {
    pub id: SeriesId,
    pub labels: &'a Arc<Labels>,
    pub samples: Vec<(TimestampMs, f64)>,
}

/// The store itself.
pub struct Store {
    ids: HashMap<Arc<Labels>, SeriesId>,
    series: Vec<Option<Series>>,
    free: Vec<SeriesId>,
    /// Postings: (label name, value) → series ids, so a selector with equality
    /// matchers visits only the series of its smallest posting list.
    postings: HashMap<(String, String), Vec<SeriesId>>,
    retention_ms: i64,
    samples_total: usize,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Store {
            ids: HashMap::new(),
            series: Vec::new(),
            free: Vec::new(),
            postings: HashMap::new(),
            retention_ms: DEFAULT_RETENTION_MS,
            samples_total: 0,
        }
    }

    pub fn shared() -> SharedStore {
        Arc::new(RwLock::new(Store::new()))
    }

    /// How far back samples are kept.
    pub fn set_retention_ms(&mut self, ms: i64) {
        self.retention_ms = ms.max(DEFAULT_RETENTION_MS);
    }

    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    /// Id of the series with exactly these labels, creating it if needed.
    pub fn series_id(&mut self, labels: &Labels) -> SeriesId {
        if let Some(id) = self.ids.get(labels) {
            return *id;
        }
        let labels = Arc::new(labels.clone());
        let series = Series {
            labels: labels.clone(),
            samples: VecDeque::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.series[id as usize] = Some(series);
                id
            }
            None => {
                self.series.push(Some(series));
                (self.series.len() - 1) as SeriesId
            }
        };
        for (k, v) in labels.iter() {
            self.postings
                .entry((k.to_string(), v.to_string()))
                .or_default()
                .push(id);
        }
        self.ids.insert(labels, id);
        id
    }

    /// Append a sample, creating the series if needed.
    pub fn append(&mut self, labels: &Labels, t: TimestampMs, v: f64) -> SeriesId {
        let id = self.series_id(labels);
        self.append_id(id, t, v);
        id
    }

    /// Append to an existing series. Out-of-order and duplicate timestamps are
    /// ignored, as Prometheus's head does.
    pub fn append_id(&mut self, id: SeriesId, t: TimestampMs, v: f64) {
        let retention = self.retention_ms;
        let Some(Some(s)) = self.series.get_mut(id as usize) else {
            return;
        };
        if let Some(&(last, _)) = s.samples.back() {
            if t <= last {
                return;
            }
        }
        s.samples.push_back((t, v));
        self.samples_total += 1;
        while let Some(&(first, _)) = s.samples.front() {
            if first >= t - retention {
                break;
            }
            s.samples.pop_front();
            self.samples_total -= 1;
        }
    }

    /// Write a staleness marker (the target or series disappeared).
    pub fn mark_stale(&mut self, id: SeriesId, t: TimestampMs) {
        let last_is_stale = self
            .series
            .get(id as usize)
            .and_then(|s| s.as_ref())
            .and_then(|s| s.samples.back())
            .is_some_and(|&(_, v)| is_stale_nan(v));
        if !last_is_stale {
            self.append_id(id, t, stale_nan());
        }
    }

    pub fn labels(&self, id: SeriesId) -> Option<&Arc<Labels>> {
        self.series.get(id as usize)?.as_ref().map(|s| &s.labels)
    }

    /// The series a selector has to look at: the shortest posting list among
    /// its equality matchers (`None`: no usable matcher, every series).
    /// `label=""` also matches series without the label, so it cannot narrow.
    fn candidates(&self, matchers: &[Matcher]) -> Option<&[SeriesId]> {
        let mut best: Option<&[SeriesId]> = None;
        for m in matchers {
            let MatchOp::Equal(v) = &m.op else { continue };
            if v.is_empty() {
                continue;
            }
            let ids = self
                .postings
                .get(&(m.name.clone(), v.clone()))
                .map_or(&[][..], |ids| ids.as_slice());
            if best.is_none_or(|b| ids.len() < b.len()) {
                best = Some(ids);
            }
        }
        best
    }

    /// Series matching all matchers, with their samples in `[start, end]`.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start: TimestampMs,
        end: TimestampMs,
    ) -> Vec<SeriesView<'_>> {
        let mut out = Vec::new();
        self.select_each(matchers, start, end, |id, labels, samples| {
            out.push(SeriesView {
                id,
                labels,
                samples: samples.copied().collect(),
            })
        });
        out
    }

    /// Like [`Store::select`] but without copying samples: calls `f` with each
    /// matching series and its samples in `[start, end]`, oldest first. The
    /// query engine uses it so a tick over many series does not allocate per
    /// series.
    pub fn select_each<'s>(
        &'s self,
        matchers: &[Matcher],
        start: TimestampMs,
        end: TimestampMs,
        mut f: impl FnMut(
            SeriesId,
            &'s Arc<Labels>,
            std::collections::vec_deque::Iter<'s, (TimestampMs, f64)>,
        ),
    ) {
        let mut visit = |id: SeriesId| {
            let Some(Some(s)) = self.series.get(id as usize) else {
                return;
            };
            if !matchers.iter().all(|m| m.matches(&s.labels)) {
                return;
            }
            let lo = s.samples.partition_point(|&(t, _)| t < start);
            let hi = s.samples.partition_point(|&(t, _)| t <= end);
            f(id, &s.labels, s.samples.range(lo..hi));
        };
        match self.candidates(matchers) {
            Some(ids) => ids.iter().for_each(|&id| visit(id)),
            None => (0..self.series.len() as SeriesId).for_each(visit),
        }
    }

    /// Drop series whose newest sample is older than retention, or whose newest
    /// sample is a stale marker older than the 5m lookback. Returns how many.
    pub fn gc(&mut self, now: TimestampMs) -> usize {
        const LOOKBACK_MS: i64 = 5 * 60 * 1000;
        let mut dropped = 0;
        for id in 0..self.series.len() {
            let remove = match &self.series[id] {
                Some(s) => match s.samples.back() {
                    None => true,
                    Some(&(t, v)) => {
                        t < now - self.retention_ms || (is_stale_nan(v) && t < now - LOOKBACK_MS)
                    }
                },
                None => false,
            };
            if remove {
                if let Some(s) = self.series[id].take() {
                    self.samples_total -= s.samples.len();
                    self.ids.remove(&s.labels);
                    for (k, v) in s.labels.iter() {
                        let key = (k.to_string(), v.to_string());
                        if let Some(ids) = self.postings.get_mut(&key) {
                            ids.retain(|&x| x as usize != id);
                            if ids.is_empty() {
                                self.postings.remove(&key);
                            }
                        }
                    }
                    self.free.push(id as SeriesId);
                    dropped += 1;
                }
            }
        }
        dropped
    }

    pub fn series_count(&self) -> usize {
        self.ids.len()
    }

    pub fn sample_count(&self) -> usize {
        self.samples_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied())
    }

    #[test]
    fn append_select_and_retention() {
        let mut s = Store::new();
        s.set_retention_ms(DEFAULT_RETENTION_MS);
        let a = l(&[("__name__", "up"), ("job", "a")]);
        let b = l(&[("__name__", "up"), ("job", "b")]);
        for t in 0..100 {
            s.append(&a, t * 10_000, t as f64);
            s.append(&b, t * 10_000, -(t as f64));
        }
        // retention 10m → 61 samples kept (t from 390s to 990s inclusive)
        let all = s.select(&[Matcher::equal("__name__", "up")], 0, i64::MAX);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].samples.len(), 61);
        let only_a = s.select(
            &[
                Matcher::equal("__name__", "up"),
                Matcher {
                    name: "job".into(),
                    op: MatchOp::NotEqual("b".into()),
                },
            ],
            950_000,
            970_000,
        );
        assert_eq!(only_a.len(), 1);
        assert_eq!(
            only_a[0].samples,
            vec![(950_000, 95.0), (960_000, 96.0), (970_000, 97.0)]
        );
        assert_eq!(s.sample_count(), 122);
    }

    #[test]
    fn postings_narrow_on_any_equality_and_keep_promql_semantics() {
        let mut s = Store::new();
        for job in ["a", "b"] {
            for i in 0..3 {
                let inst = i.to_string();
                s.append(
                    &l(&[("__name__", "x"), ("job", job), ("instance", &inst)]),
                    1,
                    1.0,
                );
            }
        }
        s.append(&l(&[("__name__", "x"), ("instance", "9")]), 1, 1.0);
        let count = |s: &Store, ms: &[Matcher]| s.select(ms, 0, 10).len();
        // Without a metric name: the job posting list alone.
        assert_eq!(count(&s, &[Matcher::equal("job", "b")]), 3);
        assert_eq!(
            count(
                &s,
                &[
                    Matcher::equal("__name__", "x"),
                    Matcher::equal("instance", "1")
                ]
            ),
            2
        );
        // `job=""` matches the series without a job label, so it must not narrow.
        assert_eq!(
            count(
                &s,
                &[Matcher::equal("__name__", "x"), Matcher::equal("job", "")]
            ),
            1
        );
        // A value no series has selects nothing.
        assert_eq!(count(&s, &[Matcher::equal("job", "zzz")]), 0);
        // Postings follow gc: dropped series are not visited again.
        assert_eq!(s.gc(DEFAULT_RETENTION_MS + 2), 7);
        assert_eq!(count(&s, &[Matcher::equal("job", "a")]), 0);
        assert!(s.postings.is_empty());
    }

    #[test]
    fn out_of_order_ignored_and_stale_marker_written_once() {
        let mut s = Store::new();
        let a = l(&[("__name__", "x")]);
        let id = s.append(&a, 1000, 1.0);
        s.append_id(id, 500, 2.0);
        s.append_id(id, 1000, 3.0);
        s.mark_stale(id, 2000);
        s.mark_stale(id, 3000);
        let v = s.select(&[Matcher::equal("__name__", "x")], 0, 10_000);
        assert_eq!(v[0].samples.len(), 2);
        assert!(is_stale_nan(v[0].samples[1].1));
        assert!(!is_stale_nan(f64::NAN));
    }

    #[test]
    fn select_each_sees_what_select_returns() {
        let mut s = Store::new();
        for (job, n) in [("a", 3), ("b", 5)] {
            let ls = l(&[("__name__", "up"), ("job", job)]);
            for t in 0..n {
                s.append(&ls, t * 1000, t as f64);
            }
        }
        s.append(&l(&[("job", "nameless")]), 0, 1.0);
        let check = |m: &[Matcher], lo: i64, hi: i64| {
            let mut each = Vec::new();
            s.select_each(m, lo, hi, |id, labels, samples| {
                each.push((id, (**labels).clone(), samples.copied().collect::<Vec<_>>()));
            });
            let sel: Vec<_> = s
                .select(m, lo, hi)
                .into_iter()
                .map(|v| (v.id, (**v.labels).clone(), v.samples))
                .collect();
            assert_eq!(each, sel);
            each.len()
        };
        assert_eq!(check(&[Matcher::equal("__name__", "up")], 1000, 2000), 2);
        assert_eq!(check(&[Matcher::equal("job", "b")], 3000, 10_000), 1);
        assert_eq!(
            check(&[Matcher::equal("job", "nameless")], 0, 0),
            1,
            "no name: full scan"
        );
        assert_eq!(check(&[Matcher::equal("__name__", "none")], 0, 10_000), 0);
    }

    #[test]
    fn gc_drops_old_and_stale_series_and_reuses_ids() {
        let mut s = Store::new();
        let a = l(&[("__name__", "x"), ("i", "1")]);
        let b = l(&[("__name__", "x"), ("i", "2")]);
        let ida = s.append(&a, 0, 1.0);
        let idb = s.append(&b, 0, 1.0);
        s.append_id(idb, 700_000, 1.0);
        s.mark_stale(idb, 710_000);
        assert_eq!(s.gc(720_000), 1, "a is older than retention");
        assert_eq!(s.series_count(), 1);
        assert_eq!(
            s.gc(720_000 + 5 * 60 * 1000),
            1,
            "b's stale marker is past lookback"
        );
        let c = l(&[("__name__", "y")]);
        let idc = s.append(&c, 1, 1.0);
        assert!(idc == ida || idc == idb, "freed ids are reused");
        assert_eq!(
            s.select(&[Matcher::equal("__name__", "x")], 0, i64::MAX)
                .len(),
            0
        );
    }
}
