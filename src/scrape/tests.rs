//! Unit tests: labels, staleness bookkeeping and scheduling, without HTTP (the
//! HTTP path is covered by tests/scrape_http.rs).
use std::sync::atomic::{AtomicUsize, Ordering};

use super::target::{target_labels, TargetLoop};
use super::*;
use crate::exposition::ParsedSample;
use crate::store::{is_stale_nan, Matcher, Store};

fn sample(pairs: &[(&str, &str)], v: f64) -> ParsedSample {
    ParsedSample {
        labels: Labels::new(pairs.iter().copied()),
        value: v,
        timestamp_ms: None,
        exemplar: None,
    }
}

fn values(store: &Store, name: &str) -> Vec<(Labels, Vec<(TimestampMs, f64)>)> {
    store
        .select(&[Matcher::equal("__name__", name)], 0, i64::MAX)
        .into_iter()
        .map(|v| ((**v.labels).clone(), v.samples))
        .collect()
}

fn job() -> JobConfig {
    JobConfig::new("api", TargetSource::Static(vec![]))
}

fn new_loop(t: &ScrapeTarget) -> TargetLoop {
    TargetLoop::new(&job(), t, target_labels(&job(), t))
}

#[test]
fn target_labels_and_honor_labels() {
    let t = ScrapeTarget::new("10.0.0.1:9100").with_label("zone", "eu");
    let mut j = job();
    j.labels.insert("zone".into(), "us".into());
    j.labels.insert("team".into(), "payments".into());
    let l = target_labels(&j, &t);
    assert_eq!(
        l,
        Labels::new([
            ("job", "api"),
            ("instance", "10.0.0.1:9100"),
            ("zone", "eu"),
            ("team", "payments")
        ]),
        "target labels win over job labels"
    );
    let l = target_labels(&job(), &t);
    assert_eq!(
        l,
        Labels::new([
            ("job", "api"),
            ("instance", "10.0.0.1:9100"),
            ("zone", "eu")
        ])
    );

    let mut store = Store::new();
    let mut tl = new_loop(&t);
    assert_eq!(tl.url, "http://10.0.0.1:9100/metrics");
    tl.apply_success(
        &mut store,
        vec![
            sample(&[("__name__", "a")], 1.0),
            // The exporter's own job/instance win (honor_labels).
            sample(
                &[("__name__", "b"), ("job", "pushed"), ("instance", "x")],
                2.0,
            ),
        ],
        1000,
        0.01,
    );
    let a = values(&store, "a");
    assert_eq!(
        a[0].0,
        Labels::new([
            ("__name__", "a"),
            ("job", "api"),
            ("instance", "10.0.0.1:9100"),
            ("zone", "eu")
        ])
    );
    let b = values(&store, "b");
    assert_eq!(
        b[0].0,
        Labels::new([
            ("__name__", "b"),
            ("job", "pushed"),
            ("instance", "x"),
            ("zone", "eu")
        ])
    );
}

#[test]
fn report_series_written_per_scrape() {
    let t = ScrapeTarget::new("h:1");
    let mut store = Store::new();
    let mut tl = new_loop(&t);
    tl.apply_success(
        &mut store,
        vec![
            sample(&[("__name__", "a")], 1.0),
            sample(&[("__name__", "b")], 1.0),
        ],
        1000,
        0.25,
    );
    tl.apply_failure(&mut store, "boom", 2000, 0.5);
    let up = values(&store, "up");
    assert_eq!(up.len(), 1);
    assert_eq!(
        up[0].0,
        Labels::new([("__name__", "up"), ("job", "api"), ("instance", "h:1")])
    );
    assert_eq!(up[0].1, vec![(1000, 1.0), (2000, 0.0)]);
    assert_eq!(
        values(&store, "scrape_duration_seconds")[0].1,
        vec![(1000, 0.25), (2000, 0.5)]
    );
    assert_eq!(
        values(&store, "scrape_samples_scraped")[0].1,
        vec![(1000, 2.0), (2000, 0.0)]
    );
    assert_eq!(
        values(&store, "scrape_series_added")[0].1,
        vec![(1000, 2.0), (2000, 0.0)]
    );
    assert_eq!(tl.status.health, Health::Down);
    assert_eq!(tl.status.last_error, "boom");
}

#[test]
fn disappearing_series_gets_stale_marker_once() {
    let t = ScrapeTarget::new("h:1");
    let mut store = Store::new();
    let mut tl = new_loop(&t);
    tl.apply_success(
        &mut store,
        vec![
            sample(&[("__name__", "a")], 1.0),
            sample(&[("__name__", "b")], 1.0),
        ],
        1000,
        0.0,
    );
    tl.apply_success(
        &mut store,
        vec![sample(&[("__name__", "a")], 2.0)],
        2000,
        0.0,
    );
    tl.apply_success(
        &mut store,
        vec![sample(&[("__name__", "a")], 3.0)],
        3000,
        0.0,
    );
    let b = &values(&store, "b")[0].1;
    assert_eq!(b.len(), 2);
    assert_eq!(b[0], (1000, 1.0));
    assert_eq!(b[1].0, 2000);
    assert!(is_stale_nan(b[1].1));
    assert_eq!(
        values(&store, "a")[0].1,
        vec![(1000, 1.0), (2000, 2.0), (3000, 3.0)]
    );
    // b comes back: counted as added, and is written normally again.
    tl.apply_success(
        &mut store,
        vec![
            sample(&[("__name__", "a")], 4.0),
            sample(&[("__name__", "b")], 5.0),
        ],
        4000,
        0.0,
    );
    assert_eq!(values(&store, "b")[0].1.last(), Some(&(4000, 5.0)));
    assert_eq!(
        values(&store, "scrape_series_added")[0].1.last(),
        Some(&(4000, 1.0))
    );
}

#[test]
fn explicit_timestamps_used_and_not_staleness_tracked() {
    let t = ScrapeTarget::new("h:1");
    let mut store = Store::new();
    let mut tl = new_loop(&t);
    let mut s = sample(&[("__name__", "ts")], 7.0);
    s.timestamp_ms = Some(500);
    tl.apply_success(&mut store, vec![s], 1000, 0.0);
    tl.apply_success(&mut store, vec![], 2000, 0.0);
    assert_eq!(values(&store, "ts")[0].1, vec![(500, 7.0)]);
}

#[test]
fn failed_scrape_stales_everything_from_last_success() {
    let t = ScrapeTarget::new("h:1");
    let mut store = Store::new();
    let mut tl = new_loop(&t);
    tl.apply_success(
        &mut store,
        vec![
            sample(&[("__name__", "a")], 1.0),
            sample(&[("__name__", "b")], 1.0),
        ],
        1000,
        0.0,
    );
    tl.apply_failure(&mut store, "connection refused", 2000, 0.0);
    tl.apply_failure(&mut store, "connection refused", 3000, 0.0);
    for name in ["a", "b"] {
        let s = &values(&store, name)[0].1;
        assert_eq!(s.len(), 2, "{name}: one sample and one stale marker");
        assert_eq!(s[1].0, 2000);
        assert!(is_stale_nan(s[1].1));
    }
    // up itself is not stale: it says 0.
    assert_eq!(
        values(&store, "up")[0].1,
        vec![(1000, 1.0), (2000, 0.0), (3000, 0.0)]
    );
}

#[test]
fn removed_target_stales_all_series_including_report() {
    let t = ScrapeTarget::new("h:1");
    let mut store = Store::new();
    let mut tl = new_loop(&t);
    tl.apply_success(
        &mut store,
        vec![sample(&[("__name__", "a")], 1.0)],
        1000,
        0.0,
    );
    tl.remove(&mut store, 5000);
    for name in [
        "a",
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_series_added",
    ] {
        let s = &values(&store, name)[0].1;
        assert_eq!(s.last().map(|x| x.0), Some(5000), "{name}");
        assert!(is_stale_nan(s.last().map(|x| x.1).unwrap_or(0.0)), "{name}");
    }
}

#[test]
fn gc_reused_id_is_not_stale_marked() {
    let t = ScrapeTarget::new("h:1");
    let mut store = Store::new();
    let mut tl = new_loop(&t);
    tl.apply_success(
        &mut store,
        vec![sample(&[("__name__", "old")], 1.0)],
        0,
        0.0,
    );
    // Everything is older than retention: gc drops it all; the id gets reused.
    store.gc(10 * 60 * 1000 + 1);
    assert_eq!(store.series_count(), 0);
    // Six new series take every freed id, including the one "old" had.
    for i in 0..6 {
        store.append(
            &Labels::new([("__name__", "other"), ("i", &i.to_string())]),
            700_000,
            1.0,
        );
    }
    tl.apply_success(&mut store, vec![], 700_001, 0.0);
    let others = values(&store, "other");
    assert_eq!(others.len(), 6);
    for (l, s) in others {
        assert_eq!(s, vec![(700_000, 1.0)], "{l} must not get a stale marker");
    }
}

#[test]
fn provider_state_becomes_targets_including_out_of_traffic() {
    use crate::model::InstanceInfo;
    let inst = |id: &str, addr: Option<&str>, in_traffic: bool| InstanceInfo {
        id: id.into(),
        address: addr.map(str::to_string),
        healthy: true,
        in_traffic,
        version: None,
        labels: [("replica".to_string(), id.to_string())].into(),
    };
    let state = TargetState {
        replicas: 3,
        instances: vec![
            inst("1", Some("127.0.0.1:18100"), true),
            inst("2", Some("127.0.0.1:18101"), false),
            inst("3", None, true),
        ],
        version: None,
    };
    let t = targets_from_state(&state);
    assert_eq!(
        t,
        vec![
            ScrapeTarget::new("127.0.0.1:18100").with_label("replica", "1"),
            ScrapeTarget::new("127.0.0.1:18101").with_label("replica", "2"),
        ]
    );
}

#[test]
fn invalid_jobs_rejected() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut j = job();
    j.timeout = Duration::from_secs(20);
    assert!(matches!(
        ScrapeManager::new(Store::shared(), Clock::starting_at(0), vec![j]),
        Err(ScrapeError::Config { .. })
    ));
    let mut j = job();
    j.metrics_path = "metrics".into();
    assert!(ScrapeManager::new(Store::shared(), Clock::starting_at(0), vec![j]).is_err());
    assert!(
        ScrapeManager::new(Store::shared(), Clock::starting_at(0), vec![job(), job()]).is_err()
    );
    assert!(ScrapeManager::new(Store::shared(), Clock::starting_at(0), vec![job()]).is_ok());
}

struct Counting(AtomicUsize);

#[async_trait::async_trait]
impl Discovery for Counting {
    async fn discover(&self) -> Result<Vec<ScrapeTarget>, DiscoveryError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(vec![])
    }
}

#[tokio::test(start_paused = true)]
async fn loop_ticks_every_interval_until_shutdown() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let d = Arc::new(Counting(AtomicUsize::new(0)));
    let mut j = JobConfig::new("j", TargetSource::Discovered(d.clone()));
    j.interval = Duration::from_secs(10);
    j.timeout = Duration::from_secs(1);
    let m = ScrapeManager::new(Store::shared(), Clock::starting_at(0), vec![j]).expect("manager");
    let h = m.start();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(d.0.load(Ordering::SeqCst), 1, "first tick right away");
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(d.0.load(Ordering::SeqCst), 4, "ticks at 0, 10, 20, 30s");
    h.shutdown().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(d.0.load(Ordering::SeqCst), 4, "no ticks after shutdown");
}

struct Flaky {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Discovery for Flaky {
    async fn discover(&self) -> Result<Vec<ScrapeTarget>, DiscoveryError> {
        // First call: one target (on a port nothing listens on); then failures.
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Ok(vec![ScrapeTarget::new("127.0.0.1:1")])
        } else {
            Err(DiscoveryError("provider unavailable".into()))
        }
    }
}

#[tokio::test]
async fn discovery_failure_keeps_previous_targets() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let d = Arc::new(Flaky {
        calls: AtomicUsize::new(0),
    });
    let mut j = JobConfig::new("j", TargetSource::Discovered(d));
    j.timeout = Duration::from_secs(2);
    let m = ScrapeManager::new(Store::shared(), Clock::starting_at(0), vec![j]).expect("manager");
    m.scrape_once("j").await.expect("job");
    m.scrape_once("j").await.expect("job");
    let t = m.targets();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].instance, "127.0.0.1:1");
    assert_eq!(t[0].health, Health::Down);
    assert!(m.scrape_once("nope").await.is_err());
}

#[tokio::test]
async fn mark_all_stale_on_shutdown() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = Store::shared();
    let mut j = JobConfig::new(
        "j",
        TargetSource::Static(vec![ScrapeTarget::new("127.0.0.1:1")]),
    );
    j.timeout = Duration::from_secs(2);
    let clock = Clock::starting_at(1_000_000);
    let m = ScrapeManager::new(store.clone(), clock, vec![j]).expect("manager");
    m.scrape_once("j").await.expect("job");
    assert_eq!(m.targets().len(), 1);
    m.mark_all_stale().await;
    assert!(m.targets().is_empty());
    let s = store.read().expect("store");
    let up = values(&s, "up");
    assert_eq!(up.len(), 1);
    assert_eq!(
        up[0].1.len(),
        2,
        "up=0 from the failed scrape, then a stale marker"
    );
    assert!(is_stale_nan(up[0].1[1].1));
}

#[test]
fn removal_in_the_same_millisecond_still_marks() {
    let t = ScrapeTarget::new("h:1");
    let mut store = Store::new();
    let mut tl = new_loop(&t);
    tl.apply_success(
        &mut store,
        vec![sample(&[("__name__", "a")], 1.0)],
        1000,
        0.0,
    );
    tl.remove(&mut store, 1000);
    let a = &values(&store, "a")[0].1;
    assert_eq!(a.len(), 2);
    assert_eq!(a[1].0, 1001);
    assert!(is_stale_nan(a[1].1));
}

struct FakeProvider {
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl crate::providers::Provider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn supports(&self) -> &'static [crate::model::ActionKind] {
        &[]
    }
    async fn start(&self) -> Result<TargetState, crate::model::ProviderError> {
        self.state().await
    }
    async fn state(&self) -> Result<TargetState, crate::model::ProviderError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(crate::model::ProviderError::Unavailable {
                provider: "fake".into(),
                message: "down".into(),
            });
        }
        Ok(TargetState {
            replicas: 1,
            instances: vec![crate::model::InstanceInfo {
                id: "18100".into(),
                address: Some("127.0.0.1:18100".into()),
                healthy: false,
                in_traffic: false,
                version: Some("v2".into()),
                labels: BTreeMap::new(),
            }],
            version: Some("v2".into()),
        })
    }
    async fn execute(
        &self,
        _req: &crate::model::ActionRequest,
    ) -> Result<crate::model::ActionOutcome, crate::model::ProviderError> {
        Err(crate::model::ProviderError::Failed {
            provider: "fake".into(),
            message: "not in this test".into(),
        })
    }
    async fn reconcile(
        &self,
        _req: &crate::model::ActionRequest,
    ) -> Result<crate::model::Reconciliation, crate::model::ProviderError> {
        Ok(crate::model::Reconciliation::Unknown)
    }
    async fn shutdown(&self, _stop_instances: bool) {}
}

#[tokio::test]
async fn provider_discovery_reports_unhealthy_out_of_traffic_instances_and_errors() {
    let p = Arc::new(FakeProvider {
        fail: std::sync::atomic::AtomicBool::new(false),
    });
    let d = ProviderDiscovery(p.clone());
    assert_eq!(
        d.discover().await.expect("state"),
        vec![ScrapeTarget::new("127.0.0.1:18100")]
    );
    p.fail.store(true, Ordering::SeqCst);
    let e = d.discover().await.expect_err("provider down");
    assert!(e.to_string().contains("down"), "{e}");
}
