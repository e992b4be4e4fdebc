//! The runtime the OTLP metric exporter runs on.
//!
//! The SDK's `PeriodicReader` exports from a thread of its own with a plain executor, but
//! tonic channels and async reqwest clients need a tokio reactor. llmtel starts a small thread
//! owning a current-thread tokio runtime that it keeps driving, builds the exporter inside it,
//! and polls every export inside that runtime's context ([`OnRuntime`]). This works from a
//! plain `fn main` and from inside `#[tokio::main]` alike.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The thread driving the exporter's runtime. Shared by the exporter that runs on it
/// ([`OnRuntime`]); stops when the exporter shuts down, or when the last owner drops it.
pub(crate) struct MetricsRuntime {
    handle: Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: ThreadId,
}

impl MetricsRuntime {
    /// Starts the thread and its runtime.
    pub(crate) fn start() -> std::io::Result<MetricsRuntime> {
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("llmtel-metrics".into())
            .spawn(move || {
                // The exporter's own I/O is never traced back into the pipeline.
                let _no_tracing =
                    tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                // Drives the connections and timers of the exports until the guard drops.
                let _ = rt.block_on(stop_rx);
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the metrics runtime thread stopped"))??;
        Ok(MetricsRuntime {
            handle,
            stop: Mutex::new(Some(stop)),
            thread_id: thread.thread().id(),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread and waits for it (once; later calls do nothing).
    pub(crate) fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            // Never joins itself (an owner dropped on the runtime's own thread).
            if std::thread::current().id() != self.thread_id {
                let _ = t.join();
            }
        }
    }

    /// Runs `f` (e.g. building a tonic exporter) inside the runtime's context.
    pub(crate) fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let _rt = self.handle.enter();
        f()
    }

    /// Wraps `exporter` so that its exports run in this runtime's context; the runtime lives
    /// as long as the exporter and stops when it shuts down.
    pub(crate) fn wrap<E: PushMetricExporter>(self: &Arc<Self>, exporter: E) -> OnRuntime<E> {
        OnRuntime {
            inner: exporter,
            handle: self.handle.clone(),
            runtime: self.clone(),
        }
    }
}

impl Drop for MetricsRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A metric exporter whose exports are polled inside a tokio runtime's context.
pub(crate) struct OnRuntime<E> {
    inner: E,
    handle: Handle,
    runtime: Arc<MetricsRuntime>,
}

impl<E> fmt::Debug for OnRuntime<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnRuntime").finish_non_exhaustive()
    }
}

impl<E: PushMetricExporter> PushMetricExporter for OnRuntime<E> {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        Entered {
            handle: self.handle.clone(),
            fut: Box::pin(self.inner.export(metrics)),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let r = self.inner.shutdown_with_timeout(timeout);
        // The reader exports nothing after its shutdown: the runtime's thread can go.
        self.runtime.stop();
        r
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

struct Entered<F> {
    handle: Handle,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _rt = this.handle.enter();
        let _no_tracing =
            tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        this.fut.as_mut().poll(cx)
    }
}

/// The meter provider llmtel exports with, and the runtime its exporter needs.
pub(crate) struct MetricsExport {
    // Dropped in this order: the provider (its last export) before the runtime.
    pub(crate) provider: SdkMeterProvider,
    pub(crate) runtime: Arc<MetricsRuntime>,
}

impl MetricsExport {
    /// Exports what is left and stops: the provider first, then its runtime.
    pub(crate) fn shutdown(self) -> OTelSdkResult {
        let r = self.provider.shutdown();
        self.runtime.stop();
        r
    }
}
