//! `llmtel.api_key_id` (the key itself, in many apps) was exported and made a Prometheus
//! label as it was, unless redaction took it for a secret: a 32-hex Azure key, or any key
//! without a known prefix, went out in clear. It is now a fingerprint on the exported span
//! and in the label, while the call the export stage's sinks get keeps the value the app
//! set (budgets key spend by it, as they key reservations).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use llmtel::CallSink;
use llmtel_metrics::{Dimension, PrometheusSink};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

/// An Azure OpenAI key: 32 hex digits, no prefix redaction knows.
const AZURE_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[derive(Debug, Default)]
struct Recording(Mutex<Vec<llmtel::LlmCall>>);

impl CallSink for Recording {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

#[test]
fn an_api_key_id_is_exported_and_labelled_only_as_a_fingerprint() {
    assert!(matches!(
        llmtel::redact(AZURE_KEY),
        std::borrow::Cow::Borrowed(_)
    ));
    let exported = InMemorySpanExporter::default();
    let prom = PrometheusSink::builder()
        .with_dimension(Dimension::Custom {
            attribute: "llmtel.api_key_id",
            label: "api_key_id",
        })
        .build();
    let calls = Arc::new(Recording::default());
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(
            llmtel::GenAiExporter::new(exported.clone())
                .with_sink(Arc::new(prom.clone()))
                .with_sink(calls.clone()),
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
            KeyValue::new("llmtel.api_key_id", AZURE_KEY),
        ])
        .start(&tracer);
    span.end();
    provider.force_flush().unwrap();

    // Every path is looked at before any assertion, so a failure names all that leak.
    let mut leaks = Vec::new();
    // The exported span: a fingerprint.
    let spans = exported.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    let attr = spans[0]
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "llmtel.api_key_id")
        .expect("the attribute is kept")
        .value
        .to_string();
    if format!("{:?}", spans[0]).contains(AZURE_KEY)
        || attr != llmtel::redact::fingerprint(AZURE_KEY)
    {
        leaks.push(format!("exported span: llmtel.api_key_id={attr}"));
    }
    // The Prometheus label: the same fingerprint.
    let body = prom.encode_text();
    let label = format!(r#"api_key_id="{}""#, llmtel::redact::fingerprint(AZURE_KEY));
    if body.contains(AZURE_KEY) || !body.contains(&label) {
        leaks.push(format!("Prometheus label, not {label}: {body}"));
    }
    assert!(leaks.is_empty(), "{leaks:#?}");

    // The sinks' call: the app's value (what budgets key by).
    let calls = calls.0.lock().unwrap();
    assert_eq!(
        calls[0].dimensions.get("llmtel.api_key_id"),
        Some(AZURE_KEY)
    );
}

#[test]
fn police_attributes_fingerprints_an_api_key_id_and_a_fingerprint_stays_itself() {
    let mut attrs = vec![KeyValue::new("llmtel.api_key_id", AZURE_KEY)];
    llmtel::police_attributes(&mut attrs, &llmtel::ContentCapture::default());
    let once = attrs[0].value.to_string();
    assert_eq!(once, llmtel::redact::fingerprint(AZURE_KEY));
    // Policed again (a collector after the app): unchanged.
    llmtel::police_attributes(&mut attrs, &llmtel::ContentCapture::default());
    assert_eq!(attrs[0].value.to_string(), once);
}
