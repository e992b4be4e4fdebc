//! llmtel's layer must run before the OpenTelemetry layer; a stack in the wrong order is
//! detected, counted and warned about instead of silently losing the cost.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::prelude::*;

#[test]
fn cost_is_missing_and_counted_when_the_otel_layer_runs_first() {
    let before = llmtel::health().enrichment_missed;
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
        .with(llmtel::layer()); // wrong: after the OpenTelemetry layer
    tracing::subscriber::with_default(subscriber, || {
        let _root = tracing::info_span!("request").entered();
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 10,
                output_tokens: 10,
                ..Default::default()
            },
        );
    });
    let spans = exporter.get_finished_spans().unwrap();
    let llm = spans.iter().find(|s| s.name == "chat gpt-4o").unwrap();
    assert!(attr(llm, "gen_ai.usage.cost").is_none());
    assert_eq!(llmtel::health().enrichment_missed, before + 1);
}
