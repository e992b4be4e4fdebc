//! `Duration::MAX` says "as long as it takes" (a flush or shutdown timeout) or "never on its
//! own" (an interval): it means no deadline, never a panic. `Instant::now() + Duration::MAX`
//! overflows: the worker's shutdown panicked (in `Drop` too, where a panic while unwinding
//! aborts the process), the export queue's shutdown and drop panicked, and an interval of
//! `Duration::MAX` panicked the worker's thread outside its job's `catch_unwind`, so the queue
//! was never processed.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use llmtel::worker::{Job, Worker};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

struct Count(Arc<AtomicU64>);

impl Job for Count {
    type Item = u64;
    fn process(&mut self, batch: Vec<u64>) -> Result<(), String> {
        self.0.fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

fn worker(name: &str) -> (Worker<u64>, Arc<AtomicU64>) {
    let seen = Arc::new(AtomicU64::new(0));
    let theirs = seen.clone();
    let worker = Worker::builder(name)
        // Never woken by the items themselves: only the interval or a flush takes them.
        .with_wake_at(1_000)
        .with_interval(Duration::MAX)
        .with_idle_sleep(None)
        .with_drop_timeout(Duration::MAX)
        .spawn(move || Ok::<_, String>(Count(theirs)))
        .unwrap();
    (worker, seen)
}

#[test]
fn a_worker_with_an_endless_interval_and_endless_timeouts_processes_flushes_and_shuts_down() {
    let (worker, seen) = worker("test-max-durations");
    worker.send(7).unwrap();
    // A bounded wait first: a thread that died (the interval panicked it) never answers.
    worker.flush(Duration::from_secs(30)).unwrap();
    worker.flush(Duration::MAX).unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "the flush processed the item"
    );
    let stats = worker.stats();
    assert_eq!((stats.processed, stats.panics), (1, 0), "{stats:?}");
    worker.send(8).unwrap();
    worker.shutdown(Duration::MAX).unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the shutdown processed the rest"
    );
}

#[test]
fn dropping_a_worker_whose_drop_timeout_is_endless_waits_and_does_not_panic() {
    let (worker, seen) = worker("test-max-drop");
    worker.send(1).unwrap();
    // The last handle's drop shuts the worker down with `with_drop_timeout(Duration::MAX)`.
    drop(worker);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

/// Counts what it exports (the in-memory exporter forgets its spans at shutdown).
#[derive(Debug, Clone, Default)]
struct Counted(Arc<AtomicU64>);

impl SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

fn queue(
    exporter: &Counted,
    scheduled_delay: Duration,
    flush_timeout: Duration,
) -> llmtel::ExportQueue {
    let e = exporter.clone();
    llmtel::ExportQueue::spawn(
        move || Ok::<_, std::convert::Infallible>(e),
        llmtel::QueueConfig {
            scheduled_delay,
            flush_timeout,
            ..llmtel::QueueConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn an_export_queue_with_an_endless_delay_exports_what_a_flush_asks_for() {
    let exporter = Counted::default();
    // (A bounded flush timeout: a thread that died never answers.)
    let provider = SdkTracerProvider::builder()
        .with_span_processor(queue(&exporter, Duration::MAX, Duration::from_secs(30)))
        .build();
    provider.tracer("t").start("one").end();
    provider.force_flush().unwrap();
    assert_eq!(exporter.0.load(Ordering::SeqCst), 1);
    provider.shutdown().unwrap();
}

#[test]
fn an_export_queue_with_an_endless_timeout_flushes_and_shuts_down() {
    let exporter = Counted::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(queue(&exporter, Duration::from_secs(2), Duration::MAX))
        .build();
    provider.tracer("t").start("one").end();
    // `force_flush` waits with the queue's flush timeout, `Duration::MAX`.
    provider.force_flush().unwrap();
    assert_eq!(exporter.0.load(Ordering::SeqCst), 1);
    provider.tracer("t").start("two").end();
    provider.shutdown_with_timeout(Duration::MAX).unwrap();
    assert_eq!(exporter.0.load(Ordering::SeqCst), 2);
}

#[test]
fn dropping_an_export_queue_whose_flush_timeout_is_endless_does_not_panic() {
    // `Drop` gives up on an unreachable collector at nine tenths of the flush timeout and
    // shuts the thread down within it.
    drop(queue(&Counted::default(), Duration::MAX, Duration::MAX));
}
