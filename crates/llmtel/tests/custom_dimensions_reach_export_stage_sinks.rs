//! A custom `llmtel.*` dimension on an exported span (an app's `llmtel.api_key_id`, or one a
//! request span passed down to its LLM call) reaches the call the export stage hands its
//! sinks: budgets scoped by API key or attribute, metric labels and the quality sink read
//! it there. It was dropped (only the layer's call, built from tracing fields, kept it).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

#[derive(Debug, Default)]
struct Recording(Mutex<Vec<llmtel::LlmCall>>);

impl llmtel::CallSink for Recording {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

#[test]
fn the_export_stage_call_keeps_custom_dimensions() {
    let sink = Arc::new(Recording::default());
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(
            llmtel::GenAiExporter::new(InMemorySpanExporter::default()).with_sink(sink.clone()),
        )
        .build();
    let tracer = provider.tracer("test");
    let mut span = tracer
        .span_builder("chat gpt-4o-mini")
        .with_attributes(vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "openai"),
            KeyValue::new("gen_ai.request.model", "gpt-4o-mini"),
            KeyValue::new("gen_ai.usage.input_tokens", 100_i64),
            KeyValue::new("gen_ai.usage.output_tokens", 10_i64),
            KeyValue::new("llmtel.api_key_id", "k1"),
            KeyValue::new("llmtel.evaluation", "true"),
            KeyValue::new("llmtel.tenant", "acme"),
        ])
        .start(&tracer);
    span.end();
    provider.force_flush().unwrap();

    let calls = sink.0.lock().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let dims = &calls[0].dimensions;
    assert_eq!(dims.get("llmtel.api_key_id"), Some("k1"), "{dims:?}");
    assert_eq!(dims.get("llmtel.evaluation"), Some("true"), "{dims:?}");
    assert_eq!(dims.tenant.as_deref(), Some("acme"));
    // Cost and usage attributes are not custom dimensions.
    assert!(
        dims.custom
            .iter()
            .all(|(k, _)| !k.starts_with("llmtel.cost.") && !k.starts_with("llmtel.usage.")),
        "{dims:?}"
    );
    assert_eq!(dims.custom.len(), 2, "{dims:?}");
}
