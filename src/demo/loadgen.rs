//! Load generator for the demo: requests at an adjustable rate, spread over the
//! replicas listed in a Prometheus `file_sd` discovery file.
//!
//! Owns: pacing (a token bucket fed at `rps`), round-robin over the targets the
//! discovery file lists (re-read every second, so scale-out, circuit breaks and
//! redeploys show up in the traffic), bounded concurrency (requests beyond the
//! limit are shed and counted, never queued without bound), and the counters and
//! latency quantiles behind the demo's live progress line. Must not decide
//! anything about the target: it is the "users" of the demo.
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::locks::lock;

/// How the load generator runs.
#[derive(Debug, Clone)]
pub struct LoadGenConfig {
    /// Prometheus `file_sd` JSON listing `host:port` targets.
    pub discovery_file: PathBuf,
    /// Path requested on each target.
    pub path: String,
    /// Most requests in flight at once; more are shed (counted in `shed`).
    pub max_concurrency: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// How often the discovery file is re-read.
    pub reread_interval: Duration,
    /// Latencies older than this are left out of the quantiles.
    pub latency_window: Duration,
    /// Initial request rate.
    pub rps: f64,
}

impl LoadGenConfig {
    pub fn new(discovery_file: impl Into<PathBuf>) -> Self {
        Self {
            discovery_file: discovery_file.into(),
            path: "/".into(),
            max_concurrency: 128,
            request_timeout: Duration::from_secs(5),
            reread_interval: Duration::from_secs(1),
            latency_window: Duration::from_secs(10),
            rps: 0.0,
        }
    }
}

/// A snapshot for the progress line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    /// Current target rate.
    pub rps: f64,
    /// Targets in the discovery file right now.
    pub targets: usize,
    /// Requests sent.
    pub sent: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Non-2xx responses, connection errors and timeouts.
    pub failed: u64,
    /// Requests not sent because `max_concurrency` were in flight.
    pub shed: u64,
    /// Ticks with requests due but no target to send them to.
    pub no_target: u64,
    /// Latency quantiles (seconds) over the recent window, if any responses came back.
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    /// Requests sent per `host:port`.
    pub per_target: BTreeMap<String, u64>,
}

impl std::fmt::Display for LoadStats {
    /// One line for the demo's live progress display.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |q: Option<f64>| q.map_or("-".to_string(), |s| format!("{:.0}ms", s * 1000.0));
        let done = self.ok + self.failed;
        let err_pct = if done == 0 {
            0.0
        } else {
            self.failed as f64 * 100.0 / done as f64
        };
        write!(
            f,
            "load {:.0} rps -> {} replicas | ok {} failed {} ({err_pct:.1}%) | p50 {} p90 {} p99 {}",
            self.rps,
            self.targets,
            self.ok,
            self.failed,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
        )?;
        if self.shed > 0 {
            write!(f, " | shed {}", self.shed)?;
        }
        Ok(())
    }
}

/// Why the load generator could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadGenError {
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("invalid config: {0}")]
    Config(String),
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    shed: AtomicU64,
    no_target: AtomicU64,
}

struct Shared {
    cfg: LoadGenConfig,
    /// Requests per second, as f64 bits.
    rps_bits: AtomicU64,
    targets: Mutex<Vec<String>>,
    next: AtomicUsize,
    counters: Counters,
    per_target: Mutex<BTreeMap<String, u64>>,
    latencies: Mutex<VecDeque<(Instant, f64)>>,
}

/// A running load generator; stops when dropped or on [`LoadGen::stop`].
pub struct LoadGen {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// Bound on remembered latencies, so a long run at high rate stays small.
const MAX_LATENCIES: usize = 20_000;

impl LoadGen {
    /// Start generating load (needs a tokio runtime and, for reqwest, an installed
    /// rustls crypto provider).
    pub fn start(cfg: LoadGenConfig) -> Result<Self, LoadGenError> {
        if cfg.max_concurrency == 0 {
            return Err(LoadGenError::Config("max_concurrency must be > 0".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .pool_max_idle_per_host(cfg.max_concurrency)
            .build()?;
        let shared = Arc::new(Shared {
            rps_bits: AtomicU64::new(sanitize_rps(cfg.rps).to_bits()),
            cfg,
            targets: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            counters: Counters::default(),
            per_target: Mutex::new(BTreeMap::new()),
            latencies: Mutex::new(VecDeque::new()),
        });
        let task = tokio::spawn(drive(shared.clone(), client));
        Ok(Self { shared, task })
    }

    /// Change the request rate (negative or NaN means 0).
    pub fn set_rps(&self, rps: f64) {
        self.shared
            .rps_bits
            .store(sanitize_rps(rps).to_bits(), Ordering::Relaxed);
    }

    pub fn rps(&self) -> f64 {
        f64::from_bits(self.shared.rps_bits.load(Ordering::Relaxed))
    }

    /// Targets as last read from the discovery file.
    pub fn targets(&self) -> Vec<String> {
        lock(&self.shared.targets).clone()
    }

    pub fn stats(&self) -> LoadStats {
        let s = &self.shared;
        let window_start = crate::clock::monotonic_now().checked_sub(s.cfg.latency_window);
        let mut recent: Vec<f64> = lock(&s.latencies)
            .iter()
            .filter(|(at, _)| window_start.is_none_or(|w| *at >= w))
            .map(|(_, l)| *l)
            .collect();
        recent.sort_by(f64::total_cmp);
        LoadStats {
            rps: self.rps(),
            targets: lock(&s.targets).len(),
            sent: s.counters.sent.load(Ordering::Relaxed),
            ok: s.counters.ok.load(Ordering::Relaxed),
            failed: s.counters.failed.load(Ordering::Relaxed),
            shed: s.counters.shed.load(Ordering::Relaxed),
            no_target: s.counters.no_target.load(Ordering::Relaxed),
            p50: quantile(&recent, 0.5),
            p90: quantile(&recent, 0.9),
            p99: quantile(&recent, 0.99),
            per_target: lock(&s.per_target).clone(),
        }
    }

    /// Stop sending; requests in flight are abandoned.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sanitize_rps(rps: f64) -> f64 {
    if rps.is_finite() && rps > 0.0 {
        rps
    } else {
        0.0
    }
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Deserialize)]
struct TargetGroup {
    #[serde(default)]
    targets: Vec<String>,
}

/// Targets of a `file_sd` file. `Ok(None)`: the file is unreadable JSON (keep the old list).
fn read_targets(path: &Path) -> Option<Vec<String>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Vec<TargetGroup>>(&bytes)
            .ok()
            .map(|groups| groups.into_iter().flat_map(|g| g.targets).collect()),
        // No file: nothing to send to (the target was torn down or not started yet).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Vec::new()),
        Err(_) => None,
    }
}

/// Pace requests: every tick, add `rps × elapsed` tokens and send one request per whole token.
async fn drive(s: Arc<Shared>, client: reqwest::Client) {
    let limit = Arc::new(Semaphore::new(s.cfg.max_concurrency));
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = crate::clock::monotonic_now();
    let mut last_read: Option<Instant> = None;
    let mut tokens = 0.0f64;
    loop {
        tick.tick().await;
        let now = crate::clock::monotonic_now();
        if last_read.is_none_or(|r| now.duration_since(r) >= s.cfg.reread_interval) {
            if let Some(list) = read_targets(&s.cfg.discovery_file) {
                *lock(&s.targets) = list;
            }
            last_read = Some(now);
        }
        let rps = f64::from_bits(s.rps_bits.load(Ordering::Relaxed));
        tokens += rps * now.duration_since(last).as_secs_f64();
        last = now;
        // At most a tenth of a second's worth in one burst (after a stall or a rate jump).
        tokens = tokens.min((rps / 10.0).max(1.0));
        if rps == 0.0 {
            tokens = 0.0;
        }
        while tokens >= 1.0 {
            tokens -= 1.0;
            let target = {
                let targets = lock(&s.targets);
                if targets.is_empty() {
                    None
                } else {
                    let i = s.next.fetch_add(1, Ordering::Relaxed) % targets.len();
                    Some(targets[i].clone())
                }
            };
            let Some(target) = target else {
                s.counters.no_target.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                s.counters.shed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            s.counters.sent.fetch_add(1, Ordering::Relaxed);
            *lock(&s.per_target).entry(target.clone()).or_insert(0) += 1;
            let url = format!("http://{target}{}", s.cfg.path);
            let client = client.clone();
            let s = s.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let started = crate::clock::monotonic_now();
                let ok = match client.get(&url).send().await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        // Read the body so the connection can be reused.
                        let _ = resp.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                let elapsed = started.elapsed().as_secs_f64();
                let counter = if ok {
                    &s.counters.ok
                } else {
                    &s.counters.failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let mut lat = lock(&s.latencies);
                lat.push_back((crate::clock::monotonic_now(), elapsed));
                while lat.len() > MAX_LATENCIES {
                    lat.pop_front();
                }
                if let Some(cutoff) =
                    crate::clock::monotonic_now().checked_sub(s.cfg.latency_window)
                {
                    while lat.front().is_some_and(|(at, _)| *at < cutoff) {
                        lat.pop_front();
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[3.0], 0.01), Some(3.0));
    }

    #[test]
    fn progress_line() {
        let s = LoadStats {
            rps: 150.0,
            targets: 3,
            ok: 990,
            failed: 10,
            p50: Some(0.021),
            p99: Some(0.25),
            ..Default::default()
        };
        assert_eq!(
            s.to_string(),
            "load 150 rps -> 3 replicas | ok 990 failed 10 (1.0%) | p50 21ms p90 - p99 250ms"
        );
    }

    #[test]
    fn discovery_file_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sd.json");
        assert_eq!(read_targets(&p), Some(vec![]));
        std::fs::write(
            &p,
            r#"[{"targets":["a:1","b:2"],"labels":{"x":"y"}},{"targets":["c:3"]}]"#,
        )
        .unwrap();
        assert_eq!(
            read_targets(&p),
            Some(vec!["a:1".into(), "b:2".into(), "c:3".into()])
        );
        std::fs::write(&p, "[{\"targets\":[").unwrap();
        assert_eq!(read_targets(&p), None);
    }

    /// A server on an ephemeral port that counts the requests it gets.
    async fn counting_server() -> (String, Arc<AtomicU64>) {
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, hits)
    }

    async fn wait_for(mut cond: impl FnMut() -> bool) {
        for _ in 0..200 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("condition not reached within 10s");
    }

    #[tokio::test]
    async fn spreads_requests_round_robin_and_follows_the_file() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers.push(counting_server().await);
        }
        let dir = tempfile::tempdir().unwrap();
        let sd = dir.path().join("sd.json");
        let addrs: Vec<&String> = servers.iter().map(|(a, _)| a).collect();
        std::fs::write(&sd, serde_json::json!([{ "targets": addrs }]).to_string()).unwrap();

        let mut cfg = LoadGenConfig::new(&sd);
        cfg.reread_interval = Duration::from_millis(100);
        let lg = LoadGen::start(cfg).unwrap();
        lg.set_rps(200.0);
        wait_for(|| lg.stats().ok >= 90).await;
        lg.set_rps(0.0);
        // Let requests in flight finish so per-server counts are final.
        wait_for(|| {
            let s = lg.stats();
            s.ok + s.failed == s.sent
        })
        .await;
        let hits: Vec<u64> = servers
            .iter()
            .map(|(_, h)| h.load(Ordering::Relaxed))
            .collect();
        let total: u64 = hits.iter().sum();
        assert_eq!(total, lg.stats().ok);
        // Round robin: each of three servers gets its third, give or take one.
        for h in &hits {
            assert!(h * 3 + 3 >= total && h * 3 <= total + 3, "{hits:?}");
        }
        let stats = lg.stats();
        assert_eq!(stats.targets, 3);
        assert_eq!(stats.failed, 0);
        assert!(stats.p50.is_some() && stats.p99 >= stats.p50);

        // Only the first server remains listed: new traffic goes there alone.
        std::fs::write(
            &sd,
            serde_json::json!([{ "targets": [addrs[0]] }]).to_string(),
        )
        .unwrap();
        wait_for(|| lg.targets().len() == 1).await;
        let before: Vec<u64> = servers
            .iter()
            .map(|(_, h)| h.load(Ordering::Relaxed))
            .collect();
        lg.set_rps(200.0);
        wait_for(|| servers[0].1.load(Ordering::Relaxed) >= before[0] + 20).await;
        lg.set_rps(0.0);
        assert_eq!(servers[1].1.load(Ordering::Relaxed), before[1]);
        assert_eq!(servers[2].1.load(Ordering::Relaxed), before[2]);
        lg.stop();
    }

    #[tokio::test]
    async fn unreachable_targets_count_as_failed_and_concurrency_is_bounded() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A listener that accepts but never answers: every request hangs until its timeout.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        let sd = dir.path().join("sd.json");
        std::fs::write(&sd, serde_json::json!([{ "targets": [addr] }]).to_string()).unwrap();
        let mut cfg = LoadGenConfig::new(&sd);
        cfg.max_concurrency = 4;
        cfg.request_timeout = Duration::from_millis(300);
        cfg.rps = 200.0;
        let lg = LoadGen::start(cfg).unwrap();
        wait_for(|| {
            let s = lg.stats();
            s.failed >= 4 && s.shed > 0
        })
        .await;
        let s = lg.stats();
        assert_eq!(s.ok, 0);
        assert!(s.sent - s.failed <= 4, "{s:?}");
        drop(silent);
    }
}
