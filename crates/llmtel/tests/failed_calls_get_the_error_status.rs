//! Failed calls are exported with `error.type` and the span's error status.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use opentelemetry::trace::Status;

#[test]
fn record_error_status_sets_error_type_and_status() {
    let p = run(|| {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_error_status(
            &span,
            "rate_limit",
            "429 Too Many Requests: retry after 20s",
        );
    });
    let s = p.span("chat gpt-4o");
    assert_eq!(str_attr(&s, "error.type"), "rate_limit");
    assert_eq!(
        s.status,
        Status::error("429 Too Many Requests: retry after 20s")
    );
    // No usage: nothing to price, and no cost written.
    assert!(attr(&s, "gen_ai.usage.cost").is_none());
}

#[test]
fn record_error_keeps_a_message_that_may_quote_the_prompt_only_with_capture_on() {
    let message = "Invalid request: 'tell me about Zanzibar' is not allowed";
    llmtel::set_content_capture(llmtel::ContentCapture::disabled());
    let off = run(|| {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_error(&span, "invalid_request", message);
    });
    let s = off.span("chat gpt-4o");
    assert_eq!(str_attr(&s, "error.type"), "invalid_request");
    assert_eq!(s.status, Status::error("invalid_request"));

    llmtel::set_content_capture(
        llmtel::ContentCapture::enabled().with_redactor(|t: &str| t.replace("Zanzibar", "[place]")),
    );
    let on = run(|| {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_error(&span, "invalid_request", message);
    });
    llmtel::set_content_capture(llmtel::ContentCapture::disabled());
    let s = on.span("chat gpt-4o");
    assert_eq!(
        s.status,
        Status::error("Invalid request: 'tell me about [place]' is not allowed")
    );
}

#[test]
fn a_long_status_description_is_capped_at_a_character_boundary() {
    let long = "é".repeat(2 * llmtel::MAX_STATUS_BYTES);
    let p = run(|| {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_error_status(&span, "server_error", &long);
    });
    let s = p.span("chat gpt-4o");
    match &s.status {
        Status::Error { description } => {
            assert_eq!(description.len(), llmtel::MAX_STATUS_BYTES);
            assert!(description.chars().all(|c| c == 'é'));
        }
        other => panic!("expected an error status, got {other:?}"),
    }
}

#[test]
fn a_key_cut_short_at_the_status_limit_is_still_redacted() {
    // The key starts 10 bytes before the limit: cut first, its first 10 bytes were too short
    // to be taken for a key and went out as they were.
    let key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut text = "x".repeat(llmtel::MAX_STATUS_BYTES - 11);
    text.push(' ');
    text.push_str(key);
    let p = run(|| {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_error_status(&span, "server_error", &text);
    });
    match &p.span("chat gpt-4o").status {
        Status::Error { description } => {
            assert!(description.len() <= llmtel::MAX_STATUS_BYTES);
            assert!(!description.contains("sk-proj"), "{description}");
        }
        other => panic!("expected an error status, got {other:?}"),
    }
}

#[test]
fn error_type_alone_on_a_third_party_span_sets_the_error_status() {
    let (layer, calls) = collecting_layer();
    let p = run_with(layer, true, || {
        let _s = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.request.model" = "gpt-4o",
            "error.type" = "timeout",
        );
    });
    let s = p.span("chat");
    assert_eq!(s.status, Status::error("timeout"));
    assert_eq!(
        calls.0.lock().unwrap()[0].error_type.as_deref(),
        Some("timeout")
    );
}
