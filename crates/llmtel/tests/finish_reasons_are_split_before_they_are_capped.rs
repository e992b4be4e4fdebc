//! A response's finish reasons (one per choice) reach every call and the exported span as
//! the same list, whichever side read them: the layer (a recorded JSON string) and the export
//! stage (the same string, or an array attribute). The layer capped the whole JSON string at
//! `MAX_VALUE_BYTES` before splitting it: 40 choices that stopped for `length` became 27
//! reasons, the last a corrupt `…[<hash>`, while the export stage's sinks got all 40. The
//! list is split first, then capped: at most `MAX_FINISH_REASONS` reasons, each capped by
//! `cap_value`, the same on both sides, and every cap counted.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
use tracing_subscriber::prelude::*;

#[derive(Debug, Default)]
struct Keep(Mutex<Vec<llmtel::LlmCall>>);

impl llmtel::CallSink for Keep {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

impl Keep {
    fn reasons(&self) -> Vec<String> {
        let calls = self.0.lock().unwrap();
        assert_eq!(calls.len(), 1, "one call: {calls:?}");
        calls[0].finish_reasons.clone()
    }
}

fn call(reasons: &[&str]) {
    let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
    llmtel::record_response(&span, "resp-1", "gpt-4o", reasons);
    llmtel::record_usage(&span, &llmtel::Usage::new(10, 40));
}

/// The reasons the layer's sink gets for a span that is not sampled (the call is built on the
/// request thread, from the recorded string).
fn on_the_layer(reasons: &[&str]) -> Vec<String> {
    let keep = Arc::new(Keep::default());
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOff)
        .with_simple_exporter(llmtel::GenAiExporter::new(InMemorySpanExporter::default()))
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer().with_sink(keep.clone()))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")));
    tracing::subscriber::with_default(subscriber, || call(reasons));
    keep.reasons()
}

/// The reasons the export stage's sink gets, and those on the exported span.
fn on_the_export_stage(reasons: &[&str]) -> (Vec<String>, Vec<String>) {
    export_stage(reasons, call)
}

/// A call whose finish reasons are an array attribute set on its OpenTelemetry span (as an
/// instrumentation writing OpenTelemetry attributes directly does).
fn call_with_an_array(reasons: &[&str]) {
    use opentelemetry::{Array, StringValue, Value};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
    span.set_attribute(
        "gen_ai.response.finish_reasons",
        Value::Array(Array::String(
            reasons
                .iter()
                .map(|r| StringValue::from(r.to_string()))
                .collect(),
        )),
    );
    llmtel::record_usage(&span, &llmtel::Usage::new(10, 40));
}

/// [`on_the_export_stage`] for the call `record` makes.
fn export_stage(reasons: &[&str], record: fn(&[&str])) -> (Vec<String>, Vec<String>) {
    let keep = Arc::new(Keep::default());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()).with_sink(keep.clone()))
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")));
    tracing::subscriber::with_default(subscriber, || record(reasons));
    let spans = exporter.get_finished_spans().unwrap();
    let span = spans.iter().find(|s| s.name == "chat gpt-4o").unwrap();
    (
        keep.reasons(),
        string_array(span, "gen_ai.response.finish_reasons"),
    )
}

#[test]
fn forty_choices_stopped_for_length_are_forty_reasons_on_every_side() {
    let reasons = ["length"; 40];
    let expected = vec!["length".to_owned(); 40];
    assert_eq!(on_the_layer(&reasons), expected, "the layer's call");
    let (call, exported) = on_the_export_stage(&reasons);
    assert_eq!(call, expected, "the export stage's call");
    assert_eq!(exported, expected, "the exported span");
}

#[test]
fn past_the_cap_every_side_keeps_the_same_first_reasons_and_counts_the_cut() {
    let long = "x".repeat(10_000);
    let mut reasons = vec!["stop"; 2 * llmtel::MAX_FINISH_REASONS];
    reasons[1] = &long;
    // Capped before the counter is read: this cap is counted too.
    let capped = llmtel::cap_value(&long).into_owned();
    let before = llmtel::health().values_truncated;
    let layer = on_the_layer(&reasons);
    // Exactly two: the long reason and the cut list (64 reasons kept of 128).
    assert_eq!(
        llmtel::health().values_truncated - before,
        2,
        "the layer counts the long reason and the cut list"
    );
    assert_eq!(layer.len(), llmtel::MAX_FINISH_REASONS);
    assert_eq!(layer[0], "stop");
    assert_eq!(layer[1], capped, "a long reason is capped alone");
    assert!(layer[2..].iter().all(|r| r == "stop"), "{layer:?}");
    let before = llmtel::health().values_truncated;
    let (call, exported) = on_the_export_stage(&reasons);
    assert_eq!(call, layer, "the export stage's call");
    assert_eq!(exported, layer, "the exported span");
    assert_eq!(
        llmtel::health().values_truncated - before,
        2,
        "the export stage counts the long reason and the cut list"
    );
}

#[test]
fn empty_reasons_of_an_array_attribute_are_dropped_from_the_exported_span_as_from_the_call() {
    // The call (quality, metrics) dropped the empty reasons; the exported span kept them
    // (rewritten only past 64 reasons or with a reason too long): `["stop"]` on one side,
    // `["", "stop", ""]` on the other.
    let (call, exported) = export_stage(&["", "stop", ""], call_with_an_array);
    assert_eq!(call, ["stop"], "the export stage's call");
    assert_eq!(exported, call, "the exported span");
}

#[test]
fn an_array_attribute_past_the_cap_is_cut_on_the_exported_span_as_in_the_call() {
    // The rewrite of an array attribute was behind a guard that let only strings through:
    // 128 reasons and a 10 kB one stayed on the exported span while the call kept 64.
    let long = "x".repeat(10_000);
    let mut reasons = vec!["stop"; 2 * llmtel::MAX_FINISH_REASONS];
    reasons[1] = &long;
    let capped = llmtel::cap_value(&long).into_owned();
    let before = llmtel::health().values_truncated;
    let (call, exported) = export_stage(&reasons, call_with_an_array);
    assert_eq!(call.len(), llmtel::MAX_FINISH_REASONS);
    assert_eq!(call[1], capped);
    assert_eq!(exported, call, "the exported span");
    assert_eq!(
        llmtel::health().values_truncated - before,
        2,
        "the long reason and the cut list, each counted once"
    );
}
