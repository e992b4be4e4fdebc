//! The export queue never blocks the app: a full queue drops and counts; a clean shutdown
//! exports everything it accepted; realistic LLM rates drop nothing with the defaults.
//! One test per behaviour that reads the process-wide counters, so that tests running in
//! parallel in this binary do not disturb each other's deltas.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

static SERIAL: Mutex<()> = Mutex::new(());

/// An exporter that takes `delay` per batch, like a slow collector.
#[derive(Debug, Clone)]
struct SlowExporter {
    delay: Duration,
    exported: Arc<AtomicUsize>,
}

impl SpanExporter for SlowExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        std::thread::sleep(self.delay);
        self.exported.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

fn provider(delay: Duration, cfg: llmtel::QueueConfig) -> (SdkTracerProvider, Arc<AtomicUsize>) {
    let exported = Arc::new(AtomicUsize::new(0));
    let e = SlowExporter {
        delay,
        exported: exported.clone(),
    };
    let queue = llmtel::ExportQueue::spawn(move || Ok::<_, std::convert::Infallible>(e), cfg)
        .expect("queue");
    (
        SdkTracerProvider::builder()
            .with_span_processor(queue)
            .build(),
        exported,
    )
}

#[test]
fn a_full_queue_drops_counts_and_never_blocks_then_shutdown_exports_the_rest() {
    let _serial = SERIAL.lock().unwrap();
    let before = llmtel::health();
    let cfg = llmtel::QueueConfig {
        max_queue_size: 16,
        max_export_batch_size: 8,
        scheduled_delay: Duration::from_millis(50),
        flush_timeout: Duration::from_secs(10),
        ..llmtel::QueueConfig::default()
    };
    let (provider, exported) = provider(Duration::from_millis(200), cfg);
    let tracer = provider.tracer("t");
    let started = Instant::now();
    for i in 0..500 {
        let mut s = tracer.start(format!("span {i}"));
        s.end();
    }
    let elapsed = started.elapsed();
    // 500 spans against a 200 ms-per-batch exporter would take seconds if on_end blocked.
    assert!(
        elapsed < Duration::from_secs(2),
        "on_end blocked: {elapsed:?}"
    );
    provider.shutdown().expect("clean shutdown");
    let after = llmtel::health();
    let queued = after.spans_queued - before.spans_queued;
    let dropped = after.spans_dropped - before.spans_dropped;
    assert_eq!(queued + dropped, 500);
    assert!(
        dropped > 0,
        "a 16-span queue behind a slow exporter must drop"
    );
    assert_eq!(
        exported.load(Ordering::SeqCst) as u64,
        queued,
        "every accepted span is exported at shutdown"
    );
    assert_eq!(after.spans_exported - before.spans_exported, queued);
}

#[test]
fn the_default_queue_drops_nothing_at_a_busy_llm_services_rate() {
    let _serial = SERIAL.lock().unwrap();
    let before = llmtel::health();
    // A busy LLM service: 200 requests/s with 5 spans each = 1,000 spans/s for 3 s, against a
    // collector that takes 100 ms per batch.
    let (provider, exported) = provider(Duration::from_millis(100), llmtel::QueueConfig::default());
    let tracer = provider.tracer("t");
    let start = Instant::now();
    let mut sent = 0u64;
    for tick in 0..300u64 {
        for _ in 0..10 {
            let mut s = tracer.start("llm span");
            s.end();
            sent += 1;
        }
        let next = start + Duration::from_millis(10 * (tick + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    provider.shutdown().expect("clean shutdown");
    let after = llmtel::health();
    assert_eq!(after.spans_dropped - before.spans_dropped, 0);
    assert_eq!(exported.load(Ordering::SeqCst) as u64, sent);
}

#[test]
fn an_exporter_that_cannot_be_built_is_a_clear_error() {
    let err = llmtel::ExportQueue::spawn(
        || Err::<SlowExporter, _>("invalid endpoint 'ht!tp://x'"),
        llmtel::QueueConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid endpoint"), "{err}");
}

/// An exporter whose first export panics; later ones count what they export.
#[derive(Debug, Clone)]
struct PanicsOnce {
    panicked: Arc<std::sync::atomic::AtomicBool>,
    exported: Arc<AtomicUsize>,
}

impl SpanExporter for PanicsOnce {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("an exporter bug");
        }
        self.exported.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_panicking_exporter_loses_its_batch_counted_and_the_queue_goes_on() {
    let _serial = SERIAL.lock().unwrap();
    let before = llmtel::health();
    let exported = Arc::new(AtomicUsize::new(0));
    let e = PanicsOnce {
        panicked: Arc::default(),
        exported: exported.clone(),
    };
    let cfg = llmtel::QueueConfig {
        max_queue_size: 64,
        max_export_batch_size: 8,
        scheduled_delay: Duration::from_millis(50),
        flush_timeout: Duration::from_secs(10),
        ..llmtel::QueueConfig::default()
    };
    let queue = llmtel::ExportQueue::spawn(move || Ok::<_, std::convert::Infallible>(e), cfg)
        .expect("queue");
    let provider = SdkTracerProvider::builder()
        .with_span_processor(queue)
        .build();
    let tracer = provider.tracer("t");
    for i in 0..8 {
        tracer.start(format!("first {i}")).end();
    }
    let err = provider
        .force_flush()
        .expect_err("the lost batch is reported");
    assert!(
        err.to_string().contains("8 spans were not sent") && err.to_string().contains("panicked"),
        "{err}"
    );
    let lost = llmtel::health().spans_export_failed - before.spans_export_failed;
    assert_eq!(lost, 8, "the panicking batch is counted as lost");
    for i in 0..16 {
        tracer.start(format!("then {i}")).end();
    }
    provider
        .force_flush()
        .expect("the queue goes on after the panic");
    assert_eq!(exported.load(Ordering::SeqCst), 16);
    provider.shutdown().expect("clean shutdown");
}
