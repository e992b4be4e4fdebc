//! The dashboard endpoint (feature `dashboard`): the [`Snapshot`](crate::Snapshot) as JSON
//! over HTTP.
//!
//! - [`router`]: an axum router an app nests or merges into its own (`GET /snapshot`,
//!   `GET /healthz`);
//! - [`serve`]: the same on an address of its own, from a thread of its own (no async
//!   runtime needed in the app); it stops when the returned [`DashboardServer`] is dropped.
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
/// with a single-threaded runtime. The server holds a clone of `quality` until it stops.
///
/// # Errors
/// [`DashboardError::Addr`], [`DashboardError::Bind`] or [`DashboardError::Start`].
pub fn serve(quality: &Quality, addr: &str) -> Result<DashboardServer, DashboardError> {
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
        .build()
        .map_err(DashboardError::Start)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app: axum::Router = router(quality.clone());
    let thread = std::thread::Builder::new()
        .name("llmtel-dashboard".into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        })
        .map_err(DashboardError::Start)?;
    Ok(DashboardServer {
        addr: local,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// The dashboard listener of [`serve`]; stops when dropped.
#[derive(Debug)]
pub struct DashboardServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DashboardServer {
    /// The address it listens on (the actual port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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
