//! Prompts and completions reach the span only under llmtel's capture policy (process-wide,
//! so this file runs in its own test process).
#![allow(clippy::unwrap_used)]

mod common;

use common::fixtures::*;
use common::*;

fn call() -> opentelemetry_sdk::trace::SpanData {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, ANTHROPIC_RESPONSE)]).await;
        let c = client(middleware(&server));
        post(&c, &server.url("/anthropic/v1/messages"), ANTHROPIC_REQUEST).await;
    });
    llm_span(&p)
}

#[test]
fn content_is_off_by_default_then_captured_truncated_and_redacted() {
    let s = call();
    assert!(attr(&s, "gen_ai.input.messages").is_none());
    assert!(attr(&s, "gen_ai.output.messages").is_none());

    llmtel::set_content_capture(
        llmtel::ContentCapture::enabled().with_redactor(|s: &str| s.replace("refund", "[R]")),
    );
    let s = call();
    let input = str_attr(&s, "gen_ai.input.messages");
    assert!(input.contains("What is the [R] window?"), "{input}");
    let output: serde_json::Value =
        serde_json::from_str(&str_attr(&s, "gen_ai.output.messages")).unwrap();
    assert_eq!(output[0]["role"], "assistant");
    assert_eq!(
        output[0]["parts"][0]["content"],
        "Refunds are accepted within 30 days."
    );
    assert_eq!(output[0]["finish_reason"], "end_turn");
    llmtel::set_content_capture(llmtel::ContentCapture::disabled());
}
