//! An in-memory pipeline: llmtel's layer, tracing-opentelemetry and llmtel's exporter in
//! front of the SDK's in-memory exporter, so tests assert on what would be sent.
//! (Also included by llmtel-reqwest's tests, `tests/common/mod.rs`.)
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Array, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::prelude::*;

pub struct Pipeline {
    pub exporter: InMemorySpanExporter,
    pub provider: SdkTracerProvider,
    pub summaries: llmtel::TraceSummaries,
}

impl Pipeline {
    pub fn spans(&self) -> Vec<SpanData> {
        // Spans ended off the request thread (llmtel-reqwest's body reader) first.
        assert!(llmtel::finish_pending_spans(Duration::from_secs(10)));
        self.provider.force_flush().expect("flush");
        self.exporter.get_finished_spans().expect("spans")
    }

    pub fn span(&self, name: &str) -> SpanData {
        let spans = self.spans();
        spans
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no span named {name:?} among {:?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            })
    }
}

/// Runs `f` under a subscriber built in llmtel's order: registry → llmtel layer → summaries →
/// OpenTelemetry layer, exporting through `GenAiExporter` (when `normalize`) into memory.
pub fn run_with(layer: llmtel::LlmLayer, normalize: bool, f: impl FnOnce()) -> Pipeline {
    if normalize {
        run_exporting(layer, |e| e, f)
    } else {
        run_inner(layer, None, f)
    }
}

/// Like [`run_with`], with llmtel's exporter stage configured by `stage`.
pub fn run_exporting(
    layer: llmtel::LlmLayer,
    stage: impl FnOnce(
        llmtel::GenAiExporter<InMemorySpanExporter>,
    ) -> llmtel::GenAiExporter<InMemorySpanExporter>
    + 'static,
    f: impl FnOnce(),
) -> Pipeline {
    run_inner(layer, Some(Box::new(stage)), f)
}

type Stage = Box<
    dyn FnOnce(
        llmtel::GenAiExporter<InMemorySpanExporter>,
    ) -> llmtel::GenAiExporter<InMemorySpanExporter>,
>;

fn run_inner(layer: llmtel::LlmLayer, stage: Option<Stage>, f: impl FnOnce()) -> Pipeline {
    let exporter = InMemorySpanExporter::default();
    let provider = if let Some(stage) = stage {
        SdkTracerProvider::builder()
            .with_simple_exporter(stage(llmtel::GenAiExporter::new(exporter.clone())))
            .build()
    } else {
        SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build()
    };
    let summaries = llmtel::TraceSummaries::new(16);
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(summaries.layer())
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("test"))
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false),
        );
    tracing::subscriber::with_default(subscriber, f);
    Pipeline {
        exporter,
        provider,
        summaries,
    }
}

pub fn run(f: impl FnOnce()) -> Pipeline {
    run_with(llmtel::LlmLayer::new(), true, f)
}

pub fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

pub fn count(span: &SpanData, key: &str) -> usize {
    span.attributes
        .iter()
        .filter(|kv| kv.key.as_str() == key)
        .count()
}

pub fn f64_attr(span: &SpanData, key: &str) -> f64 {
    match attr(span, key) {
        Some(Value::F64(v)) => *v,
        other => panic!("{key}: expected a double, got {other:?}"),
    }
}

pub fn i64_attr(span: &SpanData, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::I64(v)) => *v,
        other => panic!("{key}: expected an integer, got {other:?}"),
    }
}

pub fn str_attr(span: &SpanData, key: &str) -> String {
    match attr(span, key) {
        Some(Value::String(v)) => v.as_str().to_owned(),
        other => panic!("{key}: expected a string, got {other:?}"),
    }
}

pub fn string_array(span: &SpanData, key: &str) -> Vec<String> {
    match attr(span, key) {
        Some(Value::Array(Array::String(v))) => v.iter().map(|s| s.as_str().to_owned()).collect(),
        other => panic!("{key}: expected a string array, got {other:?}"),
    }
}

/// Collects every LLM call the layer completes.
#[derive(Debug, Default)]
pub struct Calls(pub std::sync::Mutex<Vec<llmtel::LlmCall>>);

impl llmtel::CallSink for Calls {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

pub fn collecting_layer() -> (llmtel::LlmLayer, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    (llmtel::LlmLayer::new().with_sink(calls.clone()), calls)
}

/// Asserts two USD amounts agree to a nano-dollar (f64 only at the attribute boundary).
pub fn assert_usd(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected ${expected}, got ${actual}"
    );
}
