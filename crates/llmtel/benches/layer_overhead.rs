//! What llmtel's layer costs on the request path, measured against tracing-opentelemetry
//! alone in the same run.
//!
//! - `genai_span/*`: an LLM-call span shaped like a real one (the `llm_span!` fields, a
//!   response, usage with cached tokens) created, recorded and closed. `otel_only` is the
//!   baseline; `otel_plus_llmtel` adds llmtel's layer (pricing with the built-in catalog and
//!   cost attributes written on the OpenTelemetry span); `otel_plus_llmtel_and_summaries` is
//!   the stack `llmtel::init()` installs.
//! - `plain_span/*`: a span with no `gen_ai.*` field, with and without llmtel's layer.
//!
//! Spans are ended into a processor that discards them, so export cost (the same for both)
//! does not dilute the ratio. Results and the machine: BENCHMARKS.md.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanProcessor};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct Discard;

impl SpanProcessor for Discard {
    fn on_start(&self, _: &mut Span, _: &Context) {}
    fn on_end(&self, span: SpanData) {
        black_box(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn provider() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_span_processor(Discard)
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

fn benches(c: &mut Criterion) {
    let p = provider();
    let otel_only = || Dispatch::new(tracing_subscriber::registry().with(otel_layer(&p)));
    let with_llmtel = || {
        Dispatch::new(
            tracing_subscriber::registry()
                .with(llmtel::layer())
                .with(otel_layer(&p)),
        )
    };
    let with_summaries = || {
        let summaries = llmtel::TraceSummaries::new(1024);
        Dispatch::new(
            tracing_subscriber::registry()
                .with(llmtel::layer())
                .with(summaries.layer())
                .with(otel_layer(&p)),
        )
    };

    bench_in(c, "genai_span", "otel_only", otel_only(), genai_call);
    bench_in(
        c,
        "genai_span",
        "otel_plus_llmtel",
        with_llmtel(),
        genai_call,
    );
    bench_in(
        c,
        "genai_span",
        "otel_plus_llmtel_and_summaries",
        with_summaries(),
        genai_call,
    );
    bench_in(c, "plain_span", "otel_only", otel_only(), plain_span);
    bench_in(
        c,
        "plain_span",
        "otel_plus_llmtel",
        with_llmtel(),
        plain_span,
    );
}

criterion_group!(layer_overhead, benches);
criterion_main!(layer_overhead);
