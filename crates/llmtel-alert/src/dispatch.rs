//! Delivery off the request path: a bounded queue and one dispatcher thread.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::alert::Alert;
use crate::sink::AlertSink;

/// Largest number of alerts handed to a sink in one `send`.
const MAX_BATCH: usize = 64;

enum Msg {
    Alert(Box<Alert>),
    Flush(mpsc::Sender<()>),
}

/// Counters of an [`AlertDispatcher`] (each alert counts once per sink for `delivered` and
/// `failed`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DispatchStats {
    /// Alerts accepted on the queue.
    pub queued: u64,
    /// Alerts dropped because the queue was full or the dispatcher had stopped.
    pub dropped: u64,
    /// Alert deliveries that succeeded (alert x sink).
    pub delivered: u64,
    /// Alert deliveries that failed after the sink's retries (alert x sink).
    pub failed: u64,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    dropped: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Builds an [`AlertDispatcher`].
#[derive(Debug)]
pub struct DispatcherBuilder {
    sinks: Vec<Arc<dyn AlertSink>>,
    capacity: usize,
}

impl DispatcherBuilder {
    /// Adds a sink; every alert goes to every sink.
    pub fn with_sink(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Queue capacity (default 1024, at least 1). Alerts beyond it are dropped and counted.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Starts the dispatcher thread. If the thread cannot be spawned, the dispatcher drops
    /// (and counts) every alert instead of failing.
    pub fn build(self) -> AlertDispatcher {
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::sync_channel::<Msg>(self.capacity);
        let c = counters.clone();
        let sinks = self.sinks;
        let handle = std::thread::Builder::new()
            .name("llmtel-alert".into())
            .spawn(move || run(rx, sinks, c))
            .ok();
        let tx = if handle.is_some() { Some(tx) } else { None };
        AlertDispatcher {
            inner: Arc::new(Inner {
                tx: Mutex::new(tx),
                counters,
                handle: Mutex::new(handle),
            }),
        }
    }
}

#[derive(Debug)]
struct Inner {
    tx: Mutex<Option<SyncSender<Msg>>>,
    counters: Arc<Counters>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// Delivers alerts to its sinks on a dispatcher thread. Cheap to clone (clones share the
/// queue); the thread stops, after delivering what is queued, when the last clone is dropped
/// or [`AlertDispatcher::shutdown`] is called.
#[derive(Clone, Debug)]
pub struct AlertDispatcher {
    inner: Arc<Inner>,
}

impl AlertDispatcher {
    /// A builder with no sinks and a queue of 1024.
    pub fn builder() -> DispatcherBuilder {
        DispatcherBuilder {
            sinks: Vec::new(),
            capacity: 1024,
        }
    }

    /// Queues an alert; never blocks. Returns `false` (and counts a drop) when the queue is
    /// full or the dispatcher has stopped.
    pub fn send(&self, alert: Alert) -> bool {
        let c = &self.inner.counters;
        let tx = self.inner.tx.lock().unwrap_or_else(|e| e.into_inner());
        let ok = match tx.as_ref() {
            Some(tx) => match tx.try_send(Msg::Alert(Box::new(alert))) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if ok {
            c.queued.fetch_add(1, Relaxed);
        } else {
            c.dropped.fetch_add(1, Relaxed);
        }
        ok
    }

    /// Waits up to `timeout` until every alert queued before this call has been handed to
    /// every sink and the sinks have flushed. Returns whether that happened in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = mpsc::channel();
        let mut msg = Msg::Flush(ack_tx);
        loop {
            {
                let tx = self.inner.tx.lock().unwrap_or_else(|e| e.into_inner());
                let Some(tx) = tx.as_ref() else { return false };
                match tx.try_send(msg) {
                    Ok(()) => break,
                    Err(TrySendError::Full(m)) => msg = m,
                    Err(TrySendError::Disconnected(_)) => return false,
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Stops accepting alerts, delivers what is queued, shuts the sinks down and joins the
    /// dispatcher thread (which may take as long as the sinks' timeouts and retries).
    pub fn shutdown(&self) {
        self.inner
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = self
            .inner
            .handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }

    /// The counters.
    pub fn stats(&self) -> DispatchStats {
        let c = &self.inner.counters;
        DispatchStats {
            queued: c.queued.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            delivered: c.delivered.load(Relaxed),
            failed: c.failed.load(Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

fn deliver(batch: &mut Vec<Alert>, sinks: &[Arc<dyn AlertSink>], c: &Counters) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    for sink in sinks {
        // A panicking sink must not take the dispatcher down with it.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.send(batch)));
        match r {
            Ok(Ok(())) => {
                c.delivered.fetch_add(n, Relaxed);
            }
            Ok(Err(e)) => {
                c.failed.fetch_add(n, Relaxed);
                *c.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(llmtel::redact::redact_string(e.to_string()));
            }
            Err(_) => {
                c.failed.fetch_add(n, Relaxed);
                *c.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("{}: sink panicked", sink.name()));
            }
        }
    }
    batch.clear();
}

fn run(rx: Receiver<Msg>, sinks: Vec<Arc<dyn AlertSink>>, c: Arc<Counters>) {
    let mut batch: Vec<Alert> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                // Redacted here, off the request path, before any sink sees it.
                Msg::Alert(a) => batch.push(a.redacted()),
                Msg::Flush(ack) => acks.push(ack),
            }
            if batch.len() >= MAX_BATCH {
                deliver(&mut batch, &sinks, &c);
            }
            next = rx.try_recv().ok();
        }
        deliver(&mut batch, &sinks, &c);
        if !acks.is_empty() {
            for s in &sinks {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.flush()));
            }
            for ack in acks {
                let _ = ack.send(());
            }
        }
    }
    for s in &sinks {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.shutdown()));
    }
}
