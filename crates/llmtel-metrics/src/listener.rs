//! Hardened listeners: [`Limits`] on connections, time and size, and the counts of what they
//! refused ([`ListenerStats`]).
//!
//! The built-in `/metrics` listener ([`PrometheusSink::serve`](crate::PrometheusSink::serve))
//! applies them; so does [`serve_with_limits`] (feature `serve`), which serves any axum
//! router (the quality dashboard, an app's own endpoints):
//!
//! - connections are served concurrently, at most [`Limits::max_connections`] at a time; a
//!   connection beyond that is answered `503` and closed at once, and counted
//!   ([`ListenerStats::refused`]);
//! - a request's head (request line and headers) must arrive within
//!   [`Limits::header_read_timeout`]: for the first request of a connection, from the moment
//!   it is accepted; for the next ones, from their first byte (a client sending one byte
//!   every few seconds is cut off, and counted in [`ListenerStats::timed_out`]);
//! - a connection with no byte read or written for [`Limits::idle_timeout`] is closed (a
//!   kept-alive connection waits that long for its next request, whatever the header-read
//!   timeout), and counted in [`ListenerStats::timed_out`];
//! - a head over [`Limits::max_header_bytes`] is answered `431`, a body over
//!   [`Limits::max_body_bytes`] `413` (a declared length at once, a chunked body when it
//!   gets there), counted in [`ListenerStats::too_large`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Limits of a listener. Clones share one set of counters ([`Limits::stats`]).
#[derive(Clone, Debug)]
pub struct Limits {
    max_connections: usize,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_header_bytes: usize,
    max_body_bytes: usize,
    counters: Arc<Counters>,
}

impl Default for Limits {
    /// 64 connections, 5 s to send a request head, 30 s idle, 16 KiB of head, 64 KiB of body.
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            counters: Arc::default(),
        }
    }
}

impl Limits {
    /// The defaults (see [`Limits::default`]).
    pub fn new() -> Self {
        Limits::default()
    }

    /// Connections served at once (at least 1); more are answered `503` and closed.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Time a client has to send a whole request head (at least 1 ms).
    pub fn with_header_read_timeout(mut self, t: Duration) -> Self {
        self.header_read_timeout = t.max(Duration::from_millis(1));
        self
    }

    /// Time a connection may stay open with no byte read or written (at least 1 ms).
    pub fn with_idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = t.max(Duration::from_millis(1));
        self
    }

    /// Largest request head (request line and headers), in bytes (at least 1 KiB).
    pub fn with_max_header_bytes(mut self, n: usize) -> Self {
        self.max_header_bytes = n.max(1024);
        self
    }

    /// Largest request body, in bytes.
    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Connections served at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Time a client has to send a whole request head.
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// Time a connection may stay open with no byte read or written.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Largest request head, in bytes.
    pub fn max_header_bytes(&self) -> usize {
        self.max_header_bytes
    }

    /// Largest request body, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// What the listeners using these limits (or a clone of them) accepted and refused.
    pub fn stats(&self) -> ListenerStats {
        self.counters.stats()
    }

    #[cfg(any(feature = "prometheus", feature = "serve"))]
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }
}

/// Counts of a listener (since it started; monotonic except `active`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections refused (`503`, closed) because `max_connections` were being served.
    pub refused: u64,
    /// Connections being served now.
    pub active: u64,
    /// Connections closed because a request head was too slow or the connection idle.
    pub timed_out: u64,
    /// Requests refused for their size (`431` head, `413` body).
    pub too_large: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    active: AtomicU64,
    timed_out: AtomicU64,
    too_large: AtomicU64,
}

impl Counters {
    fn stats(&self) -> ListenerStats {
        ListenerStats {
            accepted: self.accepted.load(Relaxed),
            refused: self.refused.load(Relaxed),
            active: self.active.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
        }
    }

    #[cfg(any(feature = "prometheus", feature = "serve"))]
    /// Takes a connection slot if one is free (counting an accept), else counts a refusal.
    pub(crate) fn try_admit(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let admitted = self
            .active
            .fetch_update(Relaxed, Relaxed, |a| (a < max as u64).then_some(a + 1))
            .is_ok();
        if admitted {
            self.accepted.fetch_add(1, Relaxed);
            Some(Slot(self.clone()))
        } else {
            self.refused.fetch_add(1, Relaxed);
            None
        }
    }

    #[cfg(any(feature = "prometheus", feature = "serve"))]
    pub(crate) fn timed_out(&self) {
        self.timed_out.fetch_add(1, Relaxed);
    }

    #[cfg(any(feature = "prometheus", feature = "serve"))]
    pub(crate) fn too_large(&self) {
        self.too_large.fetch_add(1, Relaxed);
    }
}

// The counting machinery below is used by the listeners: the built-in `/metrics` one
// (`prometheus`) and `serve_with_limits` (`serve`).
#[cfg(any(feature = "prometheus", feature = "serve"))]
/// A connection slot; frees itself when dropped.
#[derive(Debug)]
pub(crate) struct Slot(Arc<Counters>);

#[cfg(any(feature = "prometheus", feature = "serve"))]
impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

#[cfg(any(feature = "prometheus", feature = "serve"))]
/// What a refused connection is told before it is closed.
pub(crate) const REFUSED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 39\r\nConnection: close\r\nRetry-After: 1\r\n\r\ntoo many connections: try again later\r\n";

#[cfg(feature = "serve")]
pub use serve::{serve_with_limits, serve_with_limits_until};

#[cfg(feature = "serve")]
mod serve {
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use axum::Router;
    use axum::extract::Request;
    use axum::http::{StatusCode, header};
    use axum::middleware::Next;
    use axum::response::IntoResponse;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};

    use super::{Counters, Limits, REFUSED_RESPONSE};

    /// Serves `router` on `listener` within `limits` (see the [module docs](super)), until the
    /// listener fails. Use it instead of `axum::serve` for any listener a client you do not
    /// control can reach.
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// use llmtel_metrics::listener::{Limits, serve_with_limits};
    /// let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// let limits = Limits::default().with_max_connections(256);
    /// serve_with_limits(listener, app, limits).await
    /// # }
    /// ```
    ///
    /// # Errors
    /// Never returns while the listener works; an accept error that is not about one
    /// connection (e.g. out of file descriptors) is retried after a short pause.
    pub async fn serve_with_limits(
        listener: TcpListener,
        router: Router,
        limits: Limits,
    ) -> io::Result<()> {
        serve_with_limits_until(listener, router, limits, std::future::pending()).await
    }

    /// As [`serve_with_limits`], stopping to accept when `shutdown` completes (connections
    /// being served end on their own timeouts).
    ///
    /// # Errors
    /// As [`serve_with_limits`].
    pub async fn serve_with_limits_until(
        listener: TcpListener,
        router: Router,
        limits: Limits,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        let max_body = limits.max_body_bytes;
        let body_counters = limits.counters().clone();
        let router = router
            .layer(axum::extract::DefaultBodyLimit::max(max_body))
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let counters = body_counters.clone();
                    async move {
                        let declared = req
                            .headers()
                            .get(header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok());
                        if declared.is_some_and(|n| n > max_body as u64) {
                            counters.too_large();
                            return (
                                StatusCode::PAYLOAD_TOO_LARGE,
                                format!("request body over {max_body} bytes\n"),
                            )
                                .into_response();
                        }
                        let response = next.run(req).await;
                        // A body with no declared length (chunked) stopped at the limit by
                        // `DefaultBodyLimit`.
                        if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                            counters.too_large();
                        }
                        response
                    }
                },
            ));
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let counters = limits.counters().clone();
            let Some(slot) = counters.try_admit(limits.max_connections) else {
                // Never waits: the answer fits a fresh socket's send buffer.
                let _ = stream.try_write(REFUSED_RESPONSE);
                drop(stream);
                continue;
            };
            let (router, limits) = (router.clone(), limits.clone());
            tokio::spawn(async move {
                serve_connection(stream, router, &limits, &counters).await;
                drop(slot);
            });
        }
    }

    async fn serve_connection(
        stream: TcpStream,
        router: Router,
        limits: &Limits,
        counters: &Counters,
    ) {
        let activity = Arc::new(AtomicU64::new(0));
        let head = Arc::new(HeadClock::new(limits.header_read_timeout));
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
            head: head.clone(),
        });
        let service = Watched {
            inner: TowerToHyperService::new(router),
            head: head.clone(),
        };
        let mut b = hyper::server::conn::http1::Builder::new();
        // No header-read timeout of hyper's: it starts as soon as a response is written, so
        // an idle kept-alive connection would be closed after it rather than after the idle
        // timeout. The loop below keeps both deadlines.
        b.timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .max_header_size(limits.max_header_bytes)
            .keep_alive(true);
        let conn = b.serve_connection(io, service);
        tokio::pin!(conn);
        let tick = (limits.idle_timeout.min(limits.header_read_timeout) / 4)
            .max(Duration::from_millis(10));
        let (mut seen, mut quiet) = (0u64, Duration::ZERO);
        loop {
            tokio::select! {
                r = &mut conn => {
                    if let Err(e) = r {
                        if e.is_timeout() {
                            counters.timed_out();
                        } else if e.is_parse_too_large() {
                            counters.too_large();
                        }
                    }
                    return;
                }
                _ = tokio::time::sleep(tick) => {
                    if head.overdue() {
                        counters.timed_out();
                        return;
                    }
                    let now = activity.load(Relaxed);
                    if now != seen {
                        (seen, quiet) = (now, Duration::ZERO);
                    } else {
                        quiet += tick;
                        if quiet >= limits.idle_timeout {
                            counters.timed_out();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// When the request head being read is due, in milliseconds since the connection was
    /// accepted, or one of two states without a deadline.
    struct HeadClock {
        start: Instant,
        timeout_ms: u64,
        due: AtomicU64,
    }

    /// A request is being handled: no head is due.
    const SERVING: u64 = u64::MAX;
    /// The next byte read starts a head (a response was made; kept alive).
    const NEXT_READ: u64 = u64::MAX - 1;

    impl HeadClock {
        /// The first head is due `timeout` after the connection was accepted.
        fn new(timeout: Duration) -> Self {
            let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(NEXT_READ - 1);
            HeadClock {
                start: Instant::now(),
                timeout_ms,
                due: AtomicU64::new(timeout_ms),
            }
        }

        fn now_ms(&self) -> u64 {
            u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NEXT_READ - 1)
        }

        /// Bytes were read: if they start a head, it is due `timeout` from now.
        fn read(&self) {
            if self.due.load(Relaxed) == NEXT_READ {
                let due = self
                    .now_ms()
                    .saturating_add(self.timeout_ms)
                    .min(NEXT_READ - 1);
                let _ = self.due.compare_exchange(NEXT_READ, due, Relaxed, Relaxed);
            }
        }

        /// A whole head was read: the request is handled.
        fn head_read(&self) {
            self.due.store(SERVING, Relaxed);
        }

        /// The response is made: the next read starts the next head.
        fn responded(&self) {
            self.due.store(NEXT_READ, Relaxed);
        }

        /// Whether a head is being read past its deadline.
        fn overdue(&self) -> bool {
            let due = self.due.load(Relaxed);
            due < NEXT_READ && self.now_ms() >= due
        }
    }

    /// The connection's service, telling its [`HeadClock`] when a head was read (hyper calls
    /// the service then) and when the response is made.
    struct Watched<S> {
        inner: S,
        head: Arc<HeadClock>,
    }

    impl<S, R> hyper::service::Service<R> for Watched<S>
    where
        S: hyper::service::Service<R>,
        S::Future: Send + 'static,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

        fn call(&self, req: R) -> Self::Future {
            self.head.head_read();
            let response = self.inner.call(req);
            let head = self.head.clone();
            Box::pin(async move {
                let r = response.await;
                head.responded();
                r
            })
        }
    }

    /// A TCP stream that counts its reads and writes, for the idle timeout, and starts the
    /// deadline of a head on its first byte.
    struct Tracked {
        inner: TcpStream,
        activity: Arc<AtomicU64>,
        head: Arc<HeadClock>,
    }

    impl AsyncRead for Tracked {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let r = Pin::new(&mut self.inner).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.activity.fetch_add(1, Relaxed);
                self.head.read();
            }
            r
        }
    }

    impl AsyncWrite for Tracked {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let r = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
                self.activity.fetch_add(1, Relaxed);
            }
            r
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }
}
