//! The quality pipeline's cost on the request path, against baselines in the same run.
//!
//! ```sh
//! cargo bench -p llmtel-quality --bench request_path -- --measurement-time 3 --warm-up-time 1
//! ```
//!
//! - `sink/noop` vs `sink/quality`: one `CallSink::on_call` with a ready `LlmCall` (what the
//!   quality sink adds to `llmtel::layer()` per LLM call).
//! - `span/llm_layer_noop_sink` vs `span/llm_layer_quality_sink`: a whole GenAI span (open,
//!   record response and usage, close) through `LlmLayer`, with a no-op sink or the quality
//!   sink.
//! - `span/llm_layer_quality_layer`: the same with `QualityLayer` after `LlmLayer` instead.
#![allow(missing_docs)]
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{Criterion, criterion_group, criterion_main};
use llmtel::{CallSink, LlmCall, LlmLayer, Usage};
use llmtel_quality::Quality;
use tracing_subscriber::prelude::*;

#[derive(Debug, Default)]
struct Noop;
impl CallSink for Noop {
    fn on_call(&self, call: &LlmCall) {
        black_box(call);
    }
}

#[derive(Debug, Default)]
struct Keep(Mutex<Option<LlmCall>>);
impl CallSink for Keep {
    fn on_call(&self, call: &LlmCall) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(call.clone());
    }
}

fn one_span() {
    let span = tracing::info_span!(
        "parent",
        "user.id" = "u-42",
        "llmtel.feature" = "support-bot"
    );
    let _g = span.enter();
    let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
    llmtel::record_response(&call, "chatcmpl-123", "gpt-4o-mini-2024-07-18", &["stop"]);
    llmtel::record_usage(
        &call,
        &Usage {
            input_tokens: 1200,
            cache_read_tokens: 1024,
            output_tokens: 300,
            ..Default::default()
        },
    );
}

fn sample_call() -> LlmCall {
    let keep = Arc::new(Keep::default());
    let sub = tracing_subscriber::registry().with(LlmLayer::new().with_sink(keep.clone()));
    tracing::subscriber::with_default(sub, one_span);
    let call = keep.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    call.expect("the span produced a call")
}

fn bench(c: &mut Criterion) {
    let call = sample_call();
    let quality = Quality::builder().with_queue_capacity(1 << 16).build();

    let mut g = c.benchmark_group("sink");
    let noop = Noop;
    g.bench_function("noop", |b| b.iter(|| noop.on_call(black_box(&call))));
    let sink = quality.sink();
    g.bench_function("quality", |b| b.iter(|| sink.on_call(black_box(&call))));
    g.finish();

    let mut g = c.benchmark_group("span");
    let sub = tracing_subscriber::registry().with(LlmLayer::new().with_sink(Arc::new(Noop)));
    tracing::subscriber::with_default(sub, || {
        g.bench_function("llm_layer_noop_sink", |b| b.iter(one_span));
    });
    let sub =
        tracing_subscriber::registry().with(LlmLayer::new().with_sink(Arc::new(quality.sink())));
    tracing::subscriber::with_default(sub, || {
        g.bench_function("llm_layer_quality_sink", |b| b.iter(one_span));
    });
    let sub = tracing_subscriber::registry()
        .with(LlmLayer::new())
        .with(quality.layer());
    tracing::subscriber::with_default(sub, || {
        g.bench_function("llm_layer_quality_layer", |b| b.iter(one_span));
    });
    g.finish();
    quality.flush(std::time::Duration::from_secs(30));
    let s = quality.stats();
    eprintln!(
        "quality pipeline: {} calls queued, {} dropped (queue full while the bench saturates it)",
        s.calls_queued, s.calls_dropped
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
