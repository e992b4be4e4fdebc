//! The dashboard endpoint (feature `dashboard`): the [`Snapshot`] as JSON
//! over HTTP.
//!
//! - [`router`]: an axum router an app nests or merges into its own (`GET /snapshot`,
//!   `GET /healthz`);
//! - [`serve`]: the same on an address of its own, from a thread of its own (no async
//!   runtime needed in the app); it stops when the returned [`DashboardServer`] is dropped.
//!   It is served by llmtel-metrics' hardened listener
//!   ([`llmtel_metrics::listener::serve_with_limits`]): at most 64 connections at a time (more
//!   are answered `503` and counted), 5 s to send a request head, 30 s idle, 16 KiB of head,
//!   64 KiB of body; [`serve_with_limits`] takes other [`Limits`], and
//!   [`DashboardServer::stats`] counts what was refused.
//!
//! It binds where it is told: give `127.0.0.1:<port>` unless the dashboard must be reachable
//! from other hosts (the snapshot names models and features, never content).
//!
//! ```no_run
//! let quality = llmtel_quality::Quality::builder().build();
//! let server = llmtel_quality::dashboard::serve(&quality, "127.0.0.1:9465")?;
//! println!("dashboard data on http://{}/snapshot", server.local_addr());
//! # Ok::<(), llmtel_quality::dashboard::DashboardError>(())
//! ```

use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::thread::JoinHandle;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;

pub use llmtel_metrics::listener::{Limits, ListenerStats};

use crate::monitor::Snapshot;
use crate::pipeline::{Quality, QualityStats};

/// Why the dashboard could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The address is not `host:port`.
    #[error("dashboard address `{0}` is not host:port (e.g. 127.0.0.1:9465)")]
    Addr(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr} for the dashboard: {source} (is the port in use?)")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server's thread or runtime could not be started.
    #[error("cannot start the dashboard server: {0}")]
    Start(std::io::Error),
}

/// The body of `GET /healthz`.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// `ok` while the pipeline runs.
    pub status: &'static str,
    /// The pipeline's counters (queued, dropped, evaluations run...).
    pub stats: QualityStats,
}

async fn snapshot(State(q): State<Quality>) -> Json<Snapshot> {
    Json(q.snapshot())
}

async fn healthz(State(q): State<Quality>) -> Json<Health> {
    Json(Health {
        status: "ok",
        stats: q.stats(),
    })
}

/// A router serving `GET /snapshot` (the JSON of [`Quality::snapshot`]) and `GET /healthz`,
/// to nest (`app.nest("/quality", router(q))`) or merge into an axum app.
///
/// ```
/// let quality = llmtel_quality::Quality::builder().build();
/// let app: axum::Router = axum::Router::new().nest("/quality", llmtel_quality::dashboard::router(quality));
/// ```
pub fn router<S>(quality: Quality) -> axum::Router<S> {
    axum::Router::new()
        .route("/snapshot", get(snapshot))
        .route("/healthz", get(healthz))
        .with_state(quality)
}

/// Serves [`router`] on `addr` (`127.0.0.1:0` picks a free port) from a thread of its own
/// with a single-threaded runtime, within the default [`Limits`]. The server holds a clone of
/// `quality` until it stops.
///
/// # Errors
/// [`DashboardError::Addr`], [`DashboardError::Bind`] or [`DashboardError::Start`].
pub fn serve(quality: &Quality, addr: &str) -> Result<DashboardServer, DashboardError> {
    serve_with_limits(quality, addr, Limits::default())
}

/// As [`serve`], within `limits` (connections, header-read and idle timeouts, head and body
/// sizes).
///
/// # Errors
/// As [`serve`].
pub fn serve_with_limits(
    quality: &Quality,
    addr: &str,
    limits: Limits,
) -> Result<DashboardServer, DashboardError> {
    let sa: SocketAddr = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| DashboardError::Addr(addr.to_owned()))?;
    let bind_err = |source| DashboardError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = StdListener::bind(sa).map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(DashboardError::Start)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app: axum::Router = router(quality.clone());
    let server_limits = limits.clone();
    let thread = std::thread::Builder::new()
        .name("llmtel-dashboard".into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = llmtel_metrics::listener::serve_with_limits_until(
                    listener,
                    app,
                    server_limits,
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await;
            });
        })
        .map_err(DashboardError::Start)?;
    Ok(DashboardServer {
        addr: local,
        limits,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// The dashboard listener of [`serve`]; stops when dropped.
#[derive(Debug)]
pub struct DashboardServer {
    addr: SocketAddr,
    limits: Limits,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DashboardServer {
    /// The address it listens on (the actual port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the listener accepted, refused (over the connection limit), timed out and found
    /// too large.
    pub fn stats(&self) -> ListenerStats {
        self.limits.stats()
    }
}

impl Drop for DashboardServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report
mod tests {
    //! The dashboard's listener is hardened: a slow client does not delay `/snapshot`, it is
    //! cut off by the header-read timeout, extra connections are refused and counted, an
    //! oversized body is refused.
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::*;

    fn get(addr: SocketAddr, path: &str) -> (String, Duration) {
        let t0 = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        (out, t0.elapsed())
    }

    fn wait_until(server: &DashboardServer, pred: impl Fn(&ListenerStats) -> bool) {
        let t0 = Instant::now();
        while !pred(&server.stats()) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{:?}",
                server.stats()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_slow_client_never_delays_the_snapshot_and_is_cut_off() {
        let quality = Quality::builder().build();
        let limits = Limits::new().with_header_read_timeout(Duration::from_secs(2));
        let server = serve_with_limits(&quality, "127.0.0.1:0", limits).unwrap();
        let mut slow = TcpStream::connect(server.local_addr()).unwrap();
        slow.write_all(b"G").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (answer, took) = get(server.local_addr(), "/snapshot");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        // Cut off after the 2 s header-read timeout, and counted.
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        wait_until(&server, |s| s.timed_out == 1);
    }

    #[test]
    fn extra_connections_are_refused_and_an_oversized_body_is_refused() {
        let quality = Quality::builder().build();
        let limits = Limits::new()
            .with_max_connections(1)
            .with_max_body_bytes(1024);
        let server = serve_with_limits(&quality, "127.0.0.1:0", limits).unwrap();
        let held = TcpStream::connect(server.local_addr()).unwrap();
        wait_until(&server, |s| s.active == 1);
        // Told 503 and closed before it sends anything.
        let mut extra = TcpStream::connect(server.local_addr()).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = String::new();
        let _ = extra.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        wait_until(&server, |s| s.refused == 1);
        drop(held);
        wait_until(&server, |s| s.active == 0);

        let mut c = TcpStream::connect(server.local_addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            c,
            "POST /snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 413"), "{out}");
        wait_until(&server, |s| s.too_large == 1);
    }
}
