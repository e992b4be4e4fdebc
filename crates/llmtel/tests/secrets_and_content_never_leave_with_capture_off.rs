//! Spans carrying known API keys (in the status, events, span names, arbitrary attributes
//! and the attributes of a span link) and a known prompt (in an evaluator's explanation and an error message),
//! exported through llmtel's exporter: with capture off neither appears anywhere in what is
//! exported; with capture on, content is kept through the app's redaction hook and keys are
//! still removed.
#![allow(clippy::unwrap_used)]

use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::prelude::*;

const OPENAI_KEY: &str = "sk-proj-Q2x7Vb9LmN4kR8tY1uW3zA6cE5dF0gH";
const GEMINI_KEY: &str = "AIzaSyD-FAKEke72PouQMnMX-a7eZSW0jkFMBWY";
const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.T0k3n";
const OPAQUE: &str = "opaque-query-token-9f8e7d";
const PROMPT: &str = "please summarise my divorce settlement with Jane Roe";

fn gemini_url() -> String {
    format!(
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent?key={GEMINI_KEY}"
    )
}

fn export(policy: llmtel::ContentCapture) -> Vec<SpanData> {
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
        let request = tracing::info_span!(
            "request",
            "otel.name" = %format!("POST /proxy?access_token={OPAQUE}"),
            "url.full" = %gemini_url(),
            "app.note" = %format!("called with Authorization: Bearer {BEARER}"),
            "app.config" = %format!(r#"{{"api_key":"{OPENAI_KEY}","x-api-key":"{OPAQUE}"}}"#),
        );
        let _r = request.enter();
        let call = llmtel::llm_span!(
            "chat",
            "gcp.gemini",
            "gemini-2.5-flash",
            "gen_ai.evaluation.explanation" = %format!("the answer ignored: {PROMPT}"),
            "error.message" = %format!("400 Invalid value (\"{PROMPT}\") key {OPENAI_KEY}"),
            "app.list" = tracing::field::Empty,
        );
        {
            use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            call.add_link_with_attributes(
                SpanContext::new(
                    TraceId::from(7u128),
                    SpanId::from(7u64),
                    TraceFlags::SAMPLED,
                    true,
                    TraceState::NONE,
                ),
                vec![
                    opentelemetry::KeyValue::new(
                        "link.note",
                        format!("queued with key {OPENAI_KEY}"),
                    ),
                    opentelemetry::KeyValue::new("link.api_key", OPAQUE),
                    opentelemetry::KeyValue::new("link.kind", "retry-of"),
                ],
            );
        }
        call.in_scope(|| {
            tracing::info!(
                url = %gemini_url(),
                header = %format!("x-goog-api-key: {GEMINI_KEY}"),
                explanation_like = %format!("Bearer {BEARER}"),
                "retrying {} with key {OPENAI_KEY}",
                gemini_url()
            );
            tracing::warn!(
                "gen_ai.evaluation.explanation" = %format!("quoted: {PROMPT}"),
                "evaluation"
            );
        });
        llmtel::record_usage(
            &call,
            &llmtel::Usage {
                input_tokens: 10,
                output_tokens: 2,
                ..Default::default()
            },
        );
        // A description that quotes no content: kept whatever the policy, keys redacted.
        llmtel::record_error_status(
            &call,
            "connect",
            &format!(
                "error sending request for url ({}): Bearer {BEARER} failed, key {OPENAI_KEY}",
                gemini_url()
            ),
        );
    });
    provider.force_flush().unwrap();
    exporter.get_finished_spans().unwrap()
}

fn assert_no_keys(all: &str) {
    for key in [OPENAI_KEY, GEMINI_KEY, BEARER, OPAQUE, "AIzaSy", "sk-proj-"] {
        assert!(!all.contains(key), "{key} was exported: {all}");
    }
}

#[test]
fn keys_and_prompts_never_leave_with_capture_off() {
    let spans = export(llmtel::ContentCapture::disabled());
    assert_eq!(spans.len(), 2, "{spans:?}");
    let all = format!("{spans:?}");
    assert_no_keys(&all);
    assert!(!all.contains(PROMPT), "the prompt was exported: {all}");
    assert!(!all.contains("divorce"), "{all}");
    assert!(
        all.contains("[REDACTED]"),
        "redacted values are marked: {all}"
    );

    let call = spans.iter().find(|s| s.name.contains("gemini")).unwrap();
    let Status::Error { description } = &call.status else {
        panic!("the failed call keeps its error status: {:?}", call.status)
    };
    assert!(
        description.starts_with("error sending request for url"),
        "{description}"
    );
    assert!(
        call.events.iter().any(|e| e.name.starts_with("retrying")),
        "events are kept, redacted: {:?}",
        call.events
    );
    // The content attributes are gone, counted as dropped; the rest of the span is intact.
    let keys: Vec<&str> = call.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert!(!keys.contains(&"gen_ai.evaluation.explanation"), "{keys:?}");
    assert!(!keys.contains(&"error.message"), "{keys:?}");
    assert!(
        keys.contains(&"gen_ai.usage.cost"),
        "still priced: {keys:?}"
    );
    assert!(call.dropped_attributes_count >= 2);
    // The link is kept, its credential attribute removed and counted, the rest redacted.
    let link = &call.links.links[0];
    let link_keys: Vec<&str> = link.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(link_keys, ["link.note", "link.kind"], "{link:?}");
    assert_eq!(link.dropped_attributes_count, 1);
}

#[test]
fn with_capture_on_content_goes_through_the_hook_and_keys_still_never_leave() {
    let policy = llmtel::ContentCapture::enabled().with_redactor(|s: &str| {
        s.replace("Jane Roe", "[NAME]")
            .replace("divorce", "[TOPIC]")
    });
    let spans = export(policy);
    let all = format!("{spans:?}");
    assert_no_keys(&all);
    assert!(
        !all.contains("Jane Roe"),
        "the hook ran on every content value: {all}"
    );
    let call = spans.iter().find(|s| s.name.contains("gemini")).unwrap();
    let explanation = call
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "gen_ai.evaluation.explanation")
        .map(|kv| kv.value.to_string())
        .expect("explanation kept on opt-in");
    assert_eq!(
        explanation,
        "the answer ignored: please summarise my [TOPIC] settlement with [NAME]"
    );
}
