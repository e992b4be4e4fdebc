//! Failed calls are exported with `error.type` and the span's error status.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use opentelemetry::trace::Status;

#[test]
fn record_error_sets_error_type_and_status() {
    let p = run(|| {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_error(
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
