//! With the OpenTelemetry layer stacked before llmtel's
//! (`registry().with(otel).with(llmtel::layer())`), a call span never entered and whose
//! outcome was never recorded (its request future cancelled) is ended and exported before
//! llmtel's layer closes it, and llmtel never read its OpenTelemetry id: the dimensions it
//! inherits (`user.id`, `llmtel.feature`, `llmtel.tenant`) cannot reach the exported span.
//! That loss was neither kept nor counted; it is counted in
//! `Health::late_attributes_dropped`. No loss is counted where nothing was exported: under an
//! unsampled parent, or without an OpenTelemetry layer.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use tracing_subscriber::prelude::*;

/// A request span with three dimensions and, inside it, a call span opened and dropped
/// (never entered, nothing recorded).
fn cancelled_call() {
    let request = tracing::info_span!(
        "request",
        "user.id" = "u-1",
        "llmtel.feature" = "faq",
        "llmtel.tenant" = "acme"
    );
    request.in_scope(|| {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        drop(span);
    });
}

/// The exported call span (if any) and how much `late_attributes_dropped` moved, the
/// OpenTelemetry layer first (`otel`) or absent.
fn run(sampler: Sampler, otel: bool) -> (Option<SpanData>, u64) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    let before = llmtel::health().late_attributes_dropped;
    if otel {
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
            .with(llmtel::layer());
        tracing::subscriber::with_default(subscriber, cancelled_call);
    } else {
        let subscriber = tracing_subscriber::registry().with(llmtel::layer());
        tracing::subscriber::with_default(subscriber, cancelled_call);
    }
    provider.force_flush().unwrap();
    let moved = llmtel::health().late_attributes_dropped - before;
    let span = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "chat gpt-4o");
    (span, moved)
}

#[test]
fn a_cancelled_call_never_entered_counts_what_it_could_not_carry_and_only_if_exported() {
    let (span, moved) = run(Sampler::AlwaysOn, true);
    let span = span.expect("the call span is exported");
    let missing: Vec<_> = [
        ("user.id", "u-1"),
        ("llmtel.feature", "faq"),
        ("llmtel.tenant", "acme"),
    ]
    .into_iter()
    .filter(|(k, v)| attr(&span, k).map(|x| x.as_str().into_owned()).as_deref() != Some(*v))
    .map(|(k, _)| k)
    .collect();
    if missing.is_empty() {
        assert_eq!(moved, 0, "every dimension reached the span: nothing lost");
    } else {
        assert_eq!(
            moved, 1,
            "{missing:?} are missing from the exported span: the loss is counted, once"
        );
    }
    // (In the same test: the counter is the process's.)
    let (span, moved) = run(Sampler::AlwaysOff, true);
    assert!(span.is_none(), "unsampled: not exported");
    assert_eq!(moved, 0, "an unsampled span lost nothing");
    let (span, moved) = run(Sampler::AlwaysOn, false);
    assert!(span.is_none(), "no OpenTelemetry layer: nothing exported");
    assert_eq!(moved, 0, "no OpenTelemetry layer: nothing lost");
}
