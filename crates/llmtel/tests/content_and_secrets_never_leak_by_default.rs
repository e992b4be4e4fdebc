//! Prompt and response content reach telemetry only on opt-in, truncated and redacted;
//! credentials never do.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use opentelemetry::Value;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::prelude::*;

fn export_with(policy: llmtel::ContentCapture, f: impl FnOnce()) -> SpanData {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(
            llmtel::GenAiExporter::new(exporter.clone()).with_content_capture(policy),
        )
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")));
    tracing::subscriber::with_default(subscriber, f);
    exporter
        .get_finished_spans()
        .unwrap()
        .pop()
        .expect("one span")
}

/// A span written by another library that records content and a header on its own.
fn chatty_library_call() {
    let _s = tracing::info_span!(
        "chat",
        "gen_ai.operation.name" = "chat",
        "gen_ai.request.model" = "gpt-4o",
        "gen_ai.input.messages" = r#"[{"role":"user","content":"my key is sk-proj-ABCDEFGHIJKLMNOPQRSTUV, summarise this long text please"}]"#,
        "http.request.header.authorization" = "Bearer sk-proj-ABCDEFGHIJKLMNOPQRSTUV",
        "llm.provider.api_key" = "sk-ant-api03-XYZXYZXYZXYZXYZXYZ",
        // Keys without a known prefix, under names ending with the word key or token.
        "azure.openai_key" = "0123456789abcdef0123456789abcdef",
        "app.botToken" = "T0KENVALUE-without-prefix",
        "ocp-apim-subscription-key" = "f00dfeedf00dfeed",
        "gen_ai.request.max_tokens" = 512,
        // Not credentials, though named like them.
        "gen_ai.server.time_to_first_token" = 0.31,
        "messaging.rabbitmq.destination.routing_key" = "orders",
    );
}

#[test]
fn content_recorded_by_anyone_is_dropped_when_capture_is_off() {
    let s = export_with(llmtel::ContentCapture::disabled(), chatty_library_call);
    assert!(attr(&s, "gen_ai.input.messages").is_none());
    assert!(attr(&s, "http.request.header.authorization").is_none());
    assert!(attr(&s, "llm.provider.api_key").is_none());
    for name in [
        "azure.openai_key",
        "app.botToken",
        "ocp-apim-subscription-key",
    ] {
        assert!(attr(&s, name).is_none(), "{name}: {:?}", s.attributes);
    }
    for kept in [
        "gen_ai.request.max_tokens",
        "gen_ai.server.time_to_first_token",
        "messaging.rabbitmq.destination.routing_key",
    ] {
        assert!(attr(&s, kept).is_some(), "{kept}: {:?}", s.attributes);
    }
    assert!(s.dropped_attributes_count >= 6);
}

#[test]
fn content_is_redacted_and_truncated_when_capture_is_on() {
    let policy = llmtel::ContentCapture::enabled()
        .with_max_chars(60)
        .with_redactor(|s: &str| s.replace("summarise", "[verb]"));
    let s = export_with(policy, chatty_library_call);
    let Some(Value::String(v)) = attr(&s, "gen_ai.input.messages") else {
        panic!("content kept on opt-in: {:?}", s.attributes)
    };
    let v = v.as_str();
    assert!(!v.contains("sk-proj"), "API key redacted: {v}");
    assert!(v.contains("[REDACTED]"), "{v}");
    assert!(v.contains("[verb]"), "user hook applied: {v}");
    assert!(v.contains("…[truncated "), "truncated: {v}");
    assert!(v.chars().count() < 60 + 30, "{v}");
    // Credentials never, even on opt-in.
    assert!(attr(&s, "http.request.header.authorization").is_none());
    assert!(attr(&s, "llm.provider.api_key").is_none());
}

#[test]
fn the_recording_helper_records_nothing_while_capture_is_off() {
    // The process-wide policy is off unless set; this test binary never sets it.
    let s = export_with(llmtel::ContentCapture::enabled(), || {
        let span = llmtel::llm_span!(
            "chat",
            "openai",
            "gpt-4o",
            "gen_ai.input.messages" = tracing::field::Empty
        );
        llmtel::record_input_messages(&span, r#"[{"role":"user","content":"hello"}]"#);
    });
    assert!(attr(&s, "gen_ai.input.messages").is_none());
}
