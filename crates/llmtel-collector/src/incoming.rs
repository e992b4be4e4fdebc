//! The OTLP/gRPC listener's connections, capped as the OTLP/HTTP listener's are: at most
//! `max_connections` open at once (one more is closed at once and counted), and a
//! connection with no byte read or written for [`IDLE`] closed (one that never sends its
//! HTTP/2 preface would otherwise hold its place forever; an open one is pinged every
//! [`KEEPALIVE`], so a live peer is never idle that long).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tonic::codegen::tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::stats::Counters;

/// How often an open gRPC connection is pinged (HTTP/2 PING).
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(30);
/// How long a ping's answer is waited for before the connection is closed.
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// A gRPC connection with no byte either way for this long is closed.
pub(crate) const IDLE: Duration = Duration::from_secs(75);
/// Streams (requests) open at once on one gRPC connection (HTTP/2
/// `SETTINGS_MAX_CONCURRENT_STREAMS`).
pub(crate) const MAX_STREAMS: u32 = 100;
/// Requests of one gRPC connection handled at once; the others wait their turn.
pub(crate) const CONCURRENCY_PER_CONNECTION: usize = 32;
/// The most one gRPC request may take, its message read included (answered `CANCELLED`,
/// which OTLP senders retry).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The accepted connections of a listener, at most `max` open at once.
#[derive(Debug)]
pub(crate) struct Incoming {
    listener: TcpListener,
    open: Arc<AtomicUsize>,
    max: usize,
    idle: Duration,
    counters: Arc<Counters>,
    /// After an accept error (out of file descriptors), a pause before the next accept.
    pause: Option<Pin<Box<Sleep>>>,
}

impl Incoming {
    pub(crate) fn new(
        listener: TcpListener,
        max: usize,
        idle: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        Incoming {
            listener,
            open: Arc::default(),
            max: max.max(1),
            idle,
            counters,
            pause: None,
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(pause) = &mut this.pause {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.pause = None;
        }
        loop {
            let (stream, _) = match this.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(accepted)) => accepted,
                Poll::Ready(Err(e)) => {
                    this.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(20))));
                    return Poll::Ready(Some(Err(e)));
                }
            };
            let max = this.max;
            if this
                .open
                .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
                .is_err()
            {
                // Closed at once: the sender's exporter sees the connection fail and retries.
                this.counters.refused_connection();
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            return Poll::Ready(Some(Ok(Conn {
                stream,
                _slot: Slot(this.open.clone()),
                idle: this.idle,
                last: Instant::now(),
                timer: Box::pin(tokio::time::sleep(this.idle)),
            })));
        }
    }
}

/// A place among the open connections, given back when the connection is dropped.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// An accepted connection, closed once idle for too long.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    _slot: Slot,
    idle: Duration,
    /// When a byte was last read or written.
    last: Instant,
    /// Fires at `last + idle` at the earliest (moved on lazily when it fires early).
    timer: Pin<Box<Sleep>>,
}

impl Conn {
    /// Whether the connection has been idle too long (registering the waker otherwise).
    fn idle_out(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last + self.idle;
            if Instant::now() >= due {
                return true;
            }
            self.timer.as_mut().reset(due);
        }
    }

    fn idle_error() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "idle OTLP/gRPC connection closed")
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending if this.idle_out(cx) => Poll::Ready(Err(Conn::idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending if this.idle_out(cx) => Poll::Ready(Err(Conn::idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending if this.idle_out(cx) => Poll::Ready(Err(Conn::idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
