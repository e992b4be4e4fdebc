//! Content recorded with llmtel's helpers is truncated where it is recorded, and llmtel's
//! exporter applies the same policy again (to every span, whoever recorded the content). The
//! exported value says how much of the content was dropped: it was cut a second time, marker
//! included, and said `…[truncated 22 chars]` for 990 characters dropped.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use opentelemetry::Value;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::prelude::*;

#[test]
fn the_exported_content_says_how_much_was_dropped() {
    let policy = llmtel::ContentCapture::enabled().with_max_chars(10);
    // The recording helpers read the process-wide policy (this binary's only test).
    llmtel::set_content_capture(policy.clone());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(
            llmtel::GenAiExporter::new(exporter.clone()).with_content_capture(policy),
        )
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")));
    tracing::subscriber::with_default(subscriber, || {
        let span = llmtel::llm_span!(
            "chat",
            "openai",
            "gpt-4o",
            "gen_ai.input.messages" = tracing::field::Empty
        );
        llmtel::record_input_messages(&span, &"a".repeat(1_000));
    });
    let span = exporter.get_finished_spans().unwrap().pop().unwrap();
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "gen_ai.input.messages")
        .map(|kv| kv.value.clone());
    assert_eq!(
        value,
        Some(Value::String(
            format!("{}…[truncated 990 chars]", "a".repeat(10)).into()
        ))
    );
}
