//! The cost lands on the exported span from llmtel's exporter stage, off the request path:
//! with or without llmtel's layer, in any layer order.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::prelude::*;

fn call() {
    let _root = tracing::info_span!("request").entered();
    let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
    llmtel::record_usage(
        &span,
        &llmtel::Usage {
            input_tokens: 1_000,
            output_tokens: 100,
            ..Default::default()
        },
    );
}

fn exported<S>(subscriber: S, exporter: &InMemorySpanExporter) -> SpanData
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    tracing::subscriber::with_default(subscriber, call);
    let spans = exporter.get_finished_spans().unwrap();
    spans.into_iter().find(|s| s.name == "chat gpt-4o").unwrap()
}

fn pipeline() -> (InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    (exporter, provider)
}

// gpt-4o: 1,000 x $2.50/M + 100 x $10/M = 0.0025 + 0.001 = 0.0035
const EXPECTED: f64 = 0.0035;

#[test]
fn without_llmtel_layer() {
    let (exporter, provider) = pipeline();
    let sub = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")));
    assert_usd(
        f64_attr(&exported(sub, &exporter), "gen_ai.usage.cost"),
        EXPECTED,
    );
}

#[test]
fn with_llmtel_layer_after_the_otel_layer() {
    let (exporter, provider) = pipeline();
    let sub = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
        .with(llmtel::layer());
    assert_usd(
        f64_attr(&exported(sub, &exporter), "gen_ai.usage.cost"),
        EXPECTED,
    );
}

#[test]
fn with_llmtel_layer_before_the_otel_layer_and_the_same_cost_in_process() {
    let (exporter, provider) = pipeline();
    let (layer, calls) = collecting_layer();
    let sub = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")));
    let span = exported(sub, &exporter);
    assert_usd(f64_attr(&span, "gen_ai.usage.cost"), EXPECTED);
    let calls = calls.0.lock().unwrap();
    assert_usd(calls[0].cost_usd().unwrap().as_f64(), EXPECTED);
    // The in-process call carries the exported span's ids, to link back to it.
    assert_eq!(calls[0].span_id, Some(span.span_context.span_id()));
    assert_eq!(calls[0].trace_id, Some(span.span_context.trace_id()));
    assert_eq!(count(&span, "gen_ai.usage.cost"), 1);
}
