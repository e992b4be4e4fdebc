//! Issue #12: the export queue's shutdown reports what happened. A shutdown that runs out of
//! time says so; a second call does not claim a success it never saw (it waits for the same
//! answer); once the export thread has finished, the outcome is the real one and every span
//! it accepted was exported.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter, SpanProcessor as _};

/// A collector that takes 800 ms per batch.
#[derive(Debug, Clone)]
struct SlowExporter {
    exported: Arc<AtomicUsize>,
}

impl SpanExporter for SlowExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        std::thread::sleep(Duration::from_millis(800));
        self.exported.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_second_shutdown_after_a_timeout_waits_for_the_real_outcome() {
    let exported = Arc::new(AtomicUsize::new(0));
    let e = SlowExporter {
        exported: exported.clone(),
    };
    let queue = Arc::new(
        llmtel::ExportQueue::spawn(
            move || Ok::<_, std::convert::Infallible>(e),
            llmtel::QueueConfig {
                max_queue_size: 64,
                max_export_batch_size: 64,
                scheduled_delay: Duration::from_secs(60),
                flush_timeout: Duration::from_secs(10),
                ..llmtel::QueueConfig::default()
            },
        )
        .unwrap(),
    );
    // Spans go through a provider whose only processor forwards to the shared queue.
    #[derive(Debug)]
    struct Shared(Arc<llmtel::ExportQueue>);
    impl opentelemetry_sdk::trace::SpanProcessor for Shared {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}
        fn on_end(&self, span: SpanData) {
            self.0.on_end(span);
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
    }
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Shared(queue.clone()))
        .build();
    let tracer = provider.tracer("t");
    for i in 0..10 {
        tracer.start(format!("span {i}")).end();
    }

    // The queued batch takes 800 ms to export: 50 ms is not enough.
    let first = queue.shutdown_with_timeout(Duration::from_millis(50));
    assert!(
        matches!(first, Err(OTelSdkError::Timeout(_))),
        "the first shutdown timed out: {first:?}"
    );
    // Still not done: a second call must not claim success.
    let second = queue.shutdown_with_timeout(Duration::from_millis(10));
    assert!(
        matches!(second, Err(OTelSdkError::Timeout(_))),
        "a second shutdown before the thread finished is not a success: {second:?}"
    );
    // Given the time, the same shutdown completes and everything accepted was exported.
    let third = queue.shutdown_with_timeout(Duration::from_secs(10));
    assert!(third.is_ok(), "{third:?}");
    assert_eq!(exported.load(Ordering::SeqCst), 10);
    // And it stays shut down with that outcome.
    assert!(
        queue
            .shutdown_with_timeout(Duration::from_millis(1))
            .is_ok()
    );
}
