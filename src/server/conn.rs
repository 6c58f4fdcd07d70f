//! The listener: our own accept loop over hyper's HTTP/1 connections, so that
//! no client can hold the agent's file descriptors (DESIGN.md §12).
//!
//! Owns, per connection, where it is in its request cycle (idle, reading a
//! request head, busy with a request), the header-read and idle timeouts that
//! close it, and the connection cap: at the cap a new connection closes the
//! one idle the longest (so a health check still gets in while idle or
//! half-sent connections fill the cap), or is refused when every connection
//! is busy. The cap is derived from `RLIMIT_NOFILE`, keeping half of the
//! descriptors for scrapes, provider calls and the audit log. Must not look
//! at requests: routing and limits per request are the router's.
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};

use crate::locks::lock;

/// Default of `http.header_read_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `http.idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of `http.max_connections` (the cap is also at most half of
/// `RLIMIT_NOFILE`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// The cap never goes below this, whatever the descriptor limit.
const MIN_CONNECTIONS: usize = 4;
/// How long in-flight requests may finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(35);

/// The `http:` settings of the agent config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// From the first byte of a request head to its end.
    pub header_read_timeout: Duration,
    /// A connection with no request and no bytes for this long is closed
    /// (a new one, or a keep-alive one between requests).
    pub idle_timeout: Duration,
    /// Most connections open at once (see [`connection_cap`]).
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The `http:` block as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpLimits {
    /// From the first byte of a request head to its end, e.g. `10s`. Default `10s`.
    pub header_read_timeout: Option<String>,
    /// Close a connection without a request for this long. Default `60s`.
    pub idle_timeout: Option<String>,
    /// Most connections at once (also at most half of RLIMIT_NOFILE). Default 1024.
    pub max_connections: Option<u64>,
}

/// Validate `http:`; every error is `(field, message)`.
pub fn compile_limits(raw: RawHttpLimits) -> Result<HttpLimits, Vec<(&'static str, String)>> {
    let d = HttpLimits::default();
    let mut errs = Vec::new();
    let mut timeout = |field: &'static str, v: Option<String>, default: Duration| match v
        .as_deref()
        .map(crate::spec::parse_duration)
    {
        None => default,
        Some(Ok(t)) if !t.is_zero() => t,
        Some(Ok(_)) => {
            errs.push((field, format!("http.{field}: must be more than 0s")));
            default
        }
        Some(Err(e)) => {
            errs.push((field, format!("http.{field}: {e}")));
            default
        }
    };
    let header_read_timeout = timeout(
        "header_read_timeout",
        raw.header_read_timeout,
        d.header_read_timeout,
    );
    let idle_timeout = timeout("idle_timeout", raw.idle_timeout, d.idle_timeout);
    let max_connections = match raw.max_connections {
        None => d.max_connections,
        Some(n) if n >= MIN_CONNECTIONS as u64 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            errs.push((
                "max_connections",
                format!("http.max_connections: {n} is below the minimum of {MIN_CONNECTIONS}"),
            ));
            d.max_connections
        }
    };
    if errs.is_empty() {
        Ok(HttpLimits {
            header_read_timeout,
            idle_timeout,
            max_connections,
        })
    } else {
        Err(errs)
    }
}

/// The soft `RLIMIT_NOFILE` of this process, if it can be read.
pub fn fd_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (as Go programs do at
/// start), so a low default soft limit does not cap the agent needlessly.
/// Returns the soft limit in force afterwards.
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// Connections served at once: `max_connections`, but at most half of the
/// descriptor limit, so the other half stays for scrapes, providers, the
/// audit log and the store's files.
pub fn connection_cap(max_connections: usize, fd_limit: Option<u64>) -> usize {
    let by_fds = fd_limit.map_or(usize::MAX, |n| usize::try_from(n / 2).unwrap_or(usize::MAX));
    max_connections.min(by_fds).max(MIN_CONNECTIONS)
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// Where one connection is, shared by its I/O wrapper, its service and the sweeper.
struct ConnState {
    phase: AtomicU8,
    /// When the phase began, ms since the server started.
    since_ms: AtomicU64,
    close: Notify,
}

impl ConnState {
    fn enter(&self, phase: u8, now_ms: u64) {
        self.since_ms.store(now_ms, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }
}

/// The monotonic time base of one server.
#[derive(Clone, Copy)]
struct Epoch(tokio::time::Instant);

impl Epoch {
    fn now_ms(&self) -> u64 {
        let elapsed = crate::clock::monotonic_now().saturating_duration_since(self.0);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Open connections, by id.
struct Registry {
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    /// Signalled whenever a connection ends (shutdown waits on it).
    ended: Notify,
    refused: AtomicUsize,
}

impl Registry {
    /// Make room for one more connection under `cap`: `true` if there is room
    /// or an idle connection was told to close.
    fn make_room(&self, cap: usize) -> bool {
        let conns = lock(&self.conns);
        if conns.len() < cap {
            return true;
        }
        let victim = conns
            .values()
            .filter(|c| c.phase.load(Ordering::Relaxed) != BUSY)
            .min_by_key(|c| c.since_ms.load(Ordering::Relaxed));
        match victim {
            Some(c) => {
                // Out of the count at once, so the next accept sees the room taken.
                c.phase.store(BUSY, Ordering::Relaxed);
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Tell every connection past its timeout to close.
    fn sweep(&self, now_ms: u64, limits: &HttpLimits) {
        let idle = limits.idle_timeout.as_millis() as u64;
        let head = limits.header_read_timeout.as_millis() as u64;
        for c in lock(&self.conns).values() {
            let age = now_ms.saturating_sub(c.since_ms.load(Ordering::Relaxed));
            let expired = match c.phase.load(Ordering::Relaxed) {
                IDLE => age >= idle,
                HEAD => age >= head,
                _ => false,
            };
            if expired {
                c.close.notify_one();
            }
        }
    }
}

/// The socket, noting the first byte of a request head on an idle connection.
struct Watched<T> {
    io: T,
    state: Arc<ConnState>,
    epoch: Epoch,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before && self.state.phase.load(Ordering::Relaxed) == IDLE {
            let now = self.epoch.now_ms();
            self.state.enter(HEAD, now);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serve `app` on `listener` within `limits` until `shutdown` resolves; then
/// stop accepting, let requests in flight finish (at most
/// [`SHUTDOWN_GRACE`]) and close the rest.
pub async fn serve_connections<F>(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let cap = connection_cap(limits.max_connections, fd_limit());
    tracing::info!(
        cap,
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        "HTTP connection limits"
    );
    let epoch = Epoch(crate::clock::monotonic_now());
    let registry = Arc::new(Registry {
        conns: Mutex::new(HashMap::new()),
        ended: Notify::new(),
        refused: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = tokio::spawn(sweep_loop(registry.clone(), limits.clone(), epoch));
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (or a reset before accept): wait
                    // instead of spinning; the sweeper frees descriptors.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if !registry.make_room(cap) {
            registry.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let state = Arc::new(ConnState {
            phase: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(epoch.now_ms()),
            close: Notify::new(),
        });
        lock(&registry.conns).insert(id, state.clone());
        tokio::spawn(serve_one(
            stream,
            app.clone(),
            state,
            epoch,
            stop_rx.clone(),
            registry.clone(),
            id,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        loop {
            let ended = registry.ended.notified();
            if lock(&registry.conns).is_empty() {
                return;
            }
            ended.await;
        }
    })
    .await;
    if drained.is_err() {
        for c in lock(&registry.conns).values() {
            c.close.notify_one();
        }
    }
    sweeper.abort();
    Ok(())
}

async fn sweep_loop(registry: Arc<Registry>, limits: HttpLimits, epoch: Epoch) {
    let shortest = limits.header_read_timeout.min(limits.idle_timeout);
    let every = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_report = 0u64;
    loop {
        ticker.tick().await;
        let now = epoch.now_ms();
        registry.sweep(now, &limits);
        // At most one line per 10 s, however many connections were refused.
        if now.saturating_sub(last_report) >= 10_000 {
            let refused = registry.refused.swap(0, Ordering::Relaxed);
            if refused > 0 {
                tracing::warn!(
                    refused,
                    "HTTP connections refused: every connection was busy at the connection cap"
                );
            }
            last_report = now;
        }
    }
}

async fn serve_one(
    stream: tokio::net::TcpStream,
    app: Router,
    state: Arc<ConnState>,
    epoch: Epoch,
    mut stop: watch::Receiver<bool>,
    registry: Arc<Registry>,
    id: u64,
) {
    let io = TokioIo::new(Watched {
        io: stream,
        state: state.clone(),
        epoch,
    });
    let svc_state = state.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let state = svc_state.clone();
        state.enter(BUSY, epoch.now_ms());
        async move {
            let resp = tower::ServiceExt::oneshot(app, req).await;
            state.enter(IDLE, epoch.now_ms());
            resp
        }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            // Timed out, or evicted at the cap: dropping the connection closes it.
            _ = state.close.notified() => break,
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                }
            }
        }
    }
    lock(&registry.conns).remove(&id);
    registry.ended.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_half_the_descriptors() {
        assert_eq!(connection_cap(1024, Some(256)), 128);
        assert_eq!(connection_cap(1024, Some(65_536)), 1024);
        assert_eq!(connection_cap(100, None), 100);
        assert_eq!(connection_cap(1024, Some(3)), MIN_CONNECTIONS);
    }

    #[test]
    fn http_block_defaults_and_errors() {
        assert_eq!(
            compile_limits(RawHttpLimits::default()),
            Ok(HttpLimits::default())
        );
        let errs = compile_limits(RawHttpLimits {
            header_read_timeout: Some("0s".into()),
            idle_timeout: Some("later".into()),
            max_connections: Some(1),
        })
        .expect_err("invalid");
        let fields: Vec<&str> = errs.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["header_read_timeout", "idle_timeout", "max_connections"]
        );
        assert!(
            errs.iter()
                .all(|(f, m)| m.starts_with(&format!("http.{f}: "))),
            "{errs:?}"
        );
    }

    fn conn(phase: u8, since: u64) -> Arc<ConnState> {
        Arc::new(ConnState {
            phase: AtomicU8::new(phase),
            since_ms: AtomicU64::new(since),
            close: Notify::new(),
        })
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_makes_room() {
        let reg = Registry {
            conns: Mutex::new(HashMap::new()),
            ended: Notify::new(),
            refused: AtomicUsize::new(0),
        };
        let busy = conn(BUSY, 0);
        let old_idle = conn(IDLE, 5);
        let new_head = conn(HEAD, 9);
        for (i, c) in [&busy, &old_idle, &new_head].into_iter().enumerate() {
            lock(&reg.conns).insert(i as u64, c.clone());
        }
        assert!(reg.make_room(4), "room left");
        assert!(reg.make_room(3));
        // The idle one was told to close (a permit waits for it), not the others.
        tokio::time::timeout(Duration::from_secs(1), old_idle.close.notified())
            .await
            .expect("oldest idle connection closed");
        assert_eq!(old_idle.phase.load(Ordering::Relaxed), BUSY);
        assert!(reg.make_room(3), "then the half-sent head goes");
        assert!(!reg.make_room(3), "all busy: refused");
    }

    #[tokio::test]
    async fn sweep_closes_what_timed_out() {
        let reg = Registry {
            conns: Mutex::new(HashMap::new()),
            ended: Notify::new(),
            refused: AtomicUsize::new(0),
        };
        let limits = HttpLimits {
            header_read_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(1000),
            max_connections: 10,
        };
        let head = conn(HEAD, 0);
        let idle = conn(IDLE, 0);
        let busy = conn(BUSY, 0);
        for (i, c) in [&head, &idle, &busy].into_iter().enumerate() {
            lock(&reg.conns).insert(i as u64, c.clone());
        }
        reg.sweep(500, &limits);
        let closed = |c: &Arc<ConnState>| {
            let c = c.clone();
            async move {
                tokio::time::timeout(Duration::from_millis(50), c.close.notified())
                    .await
                    .is_ok()
            }
        };
        assert!(closed(&head).await, "head past its 100 ms");
        assert!(!closed(&idle).await, "idle within its 1 s");
        reg.sweep(1500, &limits);
        assert!(closed(&idle).await);
        assert!(!closed(&busy).await, "a busy connection is never swept");
    }
}
