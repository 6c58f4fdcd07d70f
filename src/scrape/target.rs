//! Per-target scrape state: label sets, what the last scrape wrote (for staleness),
//! and the status shown on `/api/v1/targets`.
use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::exposition::ParsedSample;
use crate::model::{Labels, TimestampMs, METRIC_NAME};
use crate::store::{SeriesId, Store};

use super::{JobConfig, ScrapeTarget};

/// Report series written for every scrape, as Prometheus does.
const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// A target's health, as on Prometheus's targets page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not scraped yet.
    Unknown,
    Up,
    Down,
}

/// What `/api/v1/targets` shows for one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub job: String,
    pub instance: String,
    pub scrape_url: String,
    /// Target labels: `job`, `instance` and the discovery labels.
    pub labels: Labels,
    /// What discovery reported, in Prometheus's `__address__`, `__scheme__`,
    /// `__metrics_path__` form plus the discovery labels.
    pub discovered_labels: Labels,
    pub health: Health,
    /// Empty after a successful scrape.
    pub last_error: String,
    /// Start of the last scrape (ms since the epoch).
    pub last_scrape_ms: Option<TimestampMs>,
    pub last_scrape_duration_seconds: f64,
    /// Samples in the last successful scrape's body.
    pub last_samples: u64,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
}

impl TargetStatus {
    /// One entry of `activeTargets`, in Prometheus's field names.
    pub fn api_json(&self) -> serde_json::Value {
        let last_scrape = match self.last_scrape_ms {
            Some(t) => crate::clock::rfc3339(t),
            None => "0001-01-01T00:00:00Z".to_string(),
        };
        serde_json::json!({
            "discoveredLabels": self.discovered_labels,
            "labels": self.labels,
            "scrapePool": self.job,
            "scrapeUrl": self.scrape_url,
            "globalUrl": self.scrape_url,
            "lastError": self.last_error,
            "lastScrape": last_scrape,
            "lastScrapeDuration": self.last_scrape_duration_seconds,
            "lastSamples": self.last_samples,
            "health": self.health,
            "scrapeInterval": crate::spec::format_duration(std::time::Duration::from_secs_f64(self.interval_seconds)),
            "scrapeTimeout": crate::spec::format_duration(std::time::Duration::from_secs_f64(self.timeout_seconds)),
        })
    }
}

/// Target label set: `job`, `instance` (the address), then the job's labels, then
/// the discovery labels; later ones may override earlier ones (even `job` and
/// `instance`), as relabelled target labels do in Prometheus.
pub(crate) fn target_labels(cfg: &JobConfig, t: &ScrapeTarget) -> Labels {
    let mut l = Labels::new([("job", cfg.name.as_str()), ("instance", t.address.as_str())]);
    for (k, v) in cfg.labels.iter().chain(t.labels.iter()) {
        if k != METRIC_NAME {
            l.set(k, v);
        }
    }
    l
}

/// honor_labels: the scraped sample's own labels win over target labels.
fn sample_labels(target: &Labels, sample: &Labels) -> Labels {
    let mut l = target.clone();
    for (k, v) in sample.iter() {
        l.set(k, v);
    }
    l
}

pub(crate) struct TargetLoop {
    pub(crate) url: String,
    target_labels: Labels,
    /// Series (without explicit timestamps) written by the last successful scrape.
    /// The labels guard against a series id freed by gc and reused for another series.
    last: HashMap<SeriesId, Arc<Labels>>,
    pub(crate) status: TargetStatus,
}

impl TargetLoop {
    pub(crate) fn new(cfg: &JobConfig, t: &ScrapeTarget, target_labels: Labels) -> Self {
        let url = format!(
            "{}://{}{}",
            cfg.scheme.as_str(),
            t.address,
            cfg.metrics_path
        );
        let instance = target_labels
            .get("instance")
            .unwrap_or(&t.address)
            .to_string();
        let job = target_labels.get("job").unwrap_or(&cfg.name).to_string();
        Self {
            url: url.clone(),
            status: TargetStatus {
                job,
                instance,
                scrape_url: url,
                labels: target_labels.clone(),
                discovered_labels: {
                    let mut d = Labels::new(t.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    d.set("__address__", &t.address);
                    d.set("__scheme__", cfg.scheme.as_str());
                    d.set("__metrics_path__", &cfg.metrics_path);
                    d.set("job", &cfg.name);
                    d
                },
                health: Health::Unknown,
                last_error: String::new(),
                last_scrape_ms: None,
                last_scrape_duration_seconds: 0.0,
                last_samples: 0,
                interval_seconds: cfg.interval.as_secs_f64(),
                timeout_seconds: cfg.timeout.as_secs_f64(),
            },
            target_labels,
            last: HashMap::new(),
        }
    }

    fn report_labels(&self, name: &str) -> Labels {
        let mut l = self.target_labels.clone();
        l.set(METRIC_NAME, name);
        l
    }

    fn write_report(
        &self,
        store: &mut Store,
        t: TimestampMs,
        up: bool,
        duration_s: f64,
        samples: u64,
        added: u64,
    ) {
        let values = [
            if up { 1.0 } else { 0.0 },
            duration_s,
            samples as f64,
            samples as f64,
            added as f64,
        ];
        for (name, v) in REPORT_SERIES.iter().zip(values) {
            store.append(&self.report_labels(name), t, v);
        }
    }

    /// Stale-mark the series of the last scrape that `keep` does not contain.
    fn mark_missing_stale(
        &self,
        store: &mut Store,
        keep: &HashMap<SeriesId, Arc<Labels>>,
        t: TimestampMs,
    ) {
        for (id, labels) in &self.last {
            if keep.contains_key(id) {
                continue;
            }
            // Only if the id still names the same series (gc may have reused it).
            if store.labels(*id).is_some_and(|l| **l == **labels) {
                store.mark_stale(*id, t);
            }
        }
    }

    pub(crate) fn apply_success(
        &mut self,
        store: &mut Store,
        samples: Vec<ParsedSample>,
        t: TimestampMs,
        duration_s: f64,
    ) {
        let n = samples.len() as u64;
        let mut seen: HashMap<SeriesId, Arc<Labels>> = HashMap::with_capacity(self.last.len());
        for s in samples {
            let labels = sample_labels(&self.target_labels, &s.labels);
            let id = store.append(&labels, s.timestamp_ms.unwrap_or(t), s.value);
            // Series with their own timestamps are not staleness-tracked (Prometheus
            // does the same: the exporter owns their time).
            if s.timestamp_ms.is_none() {
                if let Some(l) = store.labels(id) {
                    seen.insert(id, l.clone());
                }
            }
        }
        self.mark_missing_stale(store, &seen, t);
        let added = seen.keys().filter(|id| !self.last.contains_key(id)).count() as u64;
        self.last = seen;
        self.write_report(store, t, true, duration_s, n, added);
        self.status.health = super::Health::Up;
        self.status.last_error.clear();
        self.status.last_scrape_ms = Some(t);
        self.status.last_scrape_duration_seconds = duration_s;
        self.status.last_samples = n;
    }

    pub(crate) fn apply_failure(
        &mut self,
        store: &mut Store,
        error: &str,
        t: TimestampMs,
        duration_s: f64,
    ) {
        self.mark_missing_stale(store, &HashMap::new(), t);
        self.last.clear();
        self.write_report(store, t, false, duration_s, 0, 0);
        self.status.health = super::Health::Down;
        self.status.last_error = error.to_string();
        self.status.last_scrape_ms = Some(t);
        self.status.last_scrape_duration_seconds = duration_s;
        self.status.last_samples = 0;
    }

    /// The target left discovery: every series it wrote, report series included,
    /// gets a stale marker. Only if it was ever scraped (else there is nothing).
    pub(crate) fn remove(&mut self, store: &mut Store, t: TimestampMs) {
        // The store drops a sample at the same timestamp as the last one; a removal
        // in the same millisecond as the last scrape must still leave a marker.
        let t = self.status.last_scrape_ms.map_or(t, |last| t.max(last + 1));
        self.mark_missing_stale(store, &HashMap::new(), t);
        self.last.clear();
        if self.status.last_scrape_ms.is_some() {
            for name in REPORT_SERIES {
                let id = store.series_id(&self.report_labels(name));
                store.mark_stale(id, t);
            }
        }
    }
}
