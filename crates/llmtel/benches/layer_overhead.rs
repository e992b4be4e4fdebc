//! What llmtel costs the request path, against tracing-opentelemetry alone in the same run,
//! and what it costs the export thread.
//!
//! Request path (`genai_span/*`: an LLM-call span shaped like a real one: the `llm_span!`
//! fields, a response, usage with cached tokens, created, recorded and closed):
//! - `otel_only`: tracing-opentelemetry with the SDK's `BatchSpanProcessor` (baseline);
//! - `otel_llmtel_queue_no_pricing`: llmtel's `ExportQueue` with a no-op exporter, to
//!   separate the queue's own request-path cost from the pricing load on the export thread;
//! - `otel_llmtel_export`: tracing-opentelemetry with llmtel's export pipeline
//!   (`ExportQueue` + `GenAiExporter`, which prices the span on the export thread): what
//!   putting the cost on every exported span costs the application;
//! - `otel_llmtel_export_layer_summaries`: the same plus llmtel's in-process layer and trace
//!   summaries: the stack `llmtel::init()` installs by default.
//!
//! `plain_span/*`: a span with no `gen_ai.*` field, without and with llmtel's layer.
//!
//! `export_thread/*`: per span on the export thread: cloning a GenAI span (baseline) against
//! cloning it and running `GenAiExporter::process` (normalise, price, write the cost).
//!
//! Exporters are no-ops so that network cost does not dilute the ratios. Results and the
//! machine: BENCHMARKS.md.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, InMemorySpanExporter, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct Noop;

impl SpanExporter for Noop {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn sdk_batch() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(Noop).build())
        .build()
}

fn llmtel_queue(price: bool) -> SdkTracerProvider {
    let cfg = llmtel::QueueConfig::default();
    let queue = if price {
        llmtel::ExportQueue::spawn(
            || Ok::<_, std::convert::Infallible>(llmtel::GenAiExporter::new(Noop)),
            cfg,
        )
    } else {
        llmtel::ExportQueue::spawn(|| Ok::<_, std::convert::Infallible>(Noop), cfg)
    }
    .expect("queue");
    SdkTracerProvider::builder()
        .with_span_processor(queue)
        .build()
}

fn otel_layer<S>(p: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(p.tracer("bench"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
}

fn genai_call() {
    let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
    span.record("gen_ai.request.max_tokens", 1024);
    span.record("user.id", "alice");
    let entered = span.enter();
    llmtel::record_response(&span, "chatcmpl-abc", "gpt-4o-2024-08-06", &["stop"]);
    llmtel::record_usage(
        &span,
        &llmtel::Usage {
            input_tokens: 2_400,
            cache_read_tokens: 1_024,
            output_tokens: 350,
            ..Default::default()
        },
    );
    drop(entered);
    drop(span);
}

fn plain_span() {
    let span = tracing::info_span!("db.query", "db.system" = "postgresql", rows = 3);
    let _e = span.enter();
}

fn bench_in(c: &mut Criterion, group: &str, name: &str, dispatch: Dispatch, f: fn()) {
    let mut g = c.benchmark_group(group);
    tracing::dispatcher::with_default(&dispatch, || {
        g.bench_function(name, |b| b.iter(f));
    });
    g.finish();
}

/// One exported GenAI span, as the export thread receives it.
fn exported_genai_span() -> SpanData {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let sub = tracing_subscriber::registry().with(otel_layer(&provider));
    tracing::subscriber::with_default(sub, genai_call);
    exporter
        .get_finished_spans()
        .expect("spans")
        .pop()
        .expect("one span")
}

fn benches(c: &mut Criterion) {
    let baseline = sdk_batch();
    let ours = llmtel_queue(true);
    let queue_only = llmtel_queue(false);
    let otel_only = Dispatch::new(tracing_subscriber::registry().with(otel_layer(&baseline)));
    let llmtel_export = Dispatch::new(tracing_subscriber::registry().with(otel_layer(&ours)));
    let llmtel_queue_only =
        Dispatch::new(tracing_subscriber::registry().with(otel_layer(&queue_only)));
    let summaries = llmtel::TraceSummaries::new(1024);
    let init_stack = Dispatch::new(
        tracing_subscriber::registry()
            .with(llmtel::layer())
            .with(summaries.layer())
            .with(otel_layer(&ours)),
    );
    let with_layer = Dispatch::new(
        tracing_subscriber::registry()
            .with(llmtel::layer())
            .with(otel_layer(&baseline)),
    );

    bench_in(c, "genai_span", "otel_only", otel_only.clone(), genai_call);
    bench_in(
        c,
        "genai_span",
        "otel_llmtel_queue_no_pricing",
        llmtel_queue_only,
        genai_call,
    );
    bench_in(
        c,
        "genai_span",
        "otel_llmtel_export",
        llmtel_export,
        genai_call,
    );
    bench_in(
        c,
        "genai_span",
        "otel_llmtel_export_layer_summaries",
        init_stack,
        genai_call,
    );
    bench_in(c, "plain_span", "otel_only", otel_only, plain_span);
    bench_in(
        c,
        "plain_span",
        "otel_plus_llmtel_layer",
        with_layer,
        plain_span,
    );

    let span = exported_genai_span();
    let stage = llmtel::GenAiExporter::new(Noop);
    let policy = llmtel::ContentCapture::disabled();
    let mut g = c.benchmark_group("export_thread");
    g.bench_function("clone_span", |b| b.iter(|| black_box(span.clone())));
    g.bench_function("clone_span_and_price", |b| {
        b.iter(|| {
            let mut s = span.clone();
            stage.process(&mut s, &policy);
            black_box(s)
        })
    });
    g.finish();

    // Every exported string and every call-log line goes through `redact`: a call-log line
    // (JSON, no secret), a sentence of prose, and a line with a key in it.
    let mut g = c.benchmark_group("redact");
    for (name, text) in [
        ("call_log_line", REDACT_JSON),
        ("prose", REDACT_PROSE),
        ("with_a_key", REDACT_KEY),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(llmtel::redact(black_box(text))))
        });
    }
    g.finish();
    let h = llmtel::health();
    eprintln!(
        "llmtel export queue during the run: queued {}, dropped {}, exported {}",
        h.spans_queued, h.spans_dropped, h.spans_exported
    );
}

const REDACT_JSON: &str = r#"{"kind":"call","ts":"2026-12-03T13:24:01.123456Z","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","name":"chat gpt-4o-mini","operation":"chat","provider":"openai","request_model":"gpt-4o-mini","response_model":"gpt-4o-mini-2024-07-18","input_tokens":1200,"output_tokens":300,"cache_read_tokens":400,"cost_usd":"0.000320","cost_source":"catalog","duration_ms":812.4,"user":"u-1","feature":"load","error_type":null}"#;
const REDACT_PROSE: &str = "The model answered the question about shipping times in under a second, and the customer rated the answer as helpful; no follow-up was needed for this order.";
const REDACT_KEY: &str = "request failed: POST https://api.openai.com/v1/chat/completions with Authorization: Bearer sk-proj-abcdefghijklmnopqrstuvwxyz0123456789 returned 401";

criterion_group!(layer_overhead, benches);
criterion_main!(layer_overhead);
