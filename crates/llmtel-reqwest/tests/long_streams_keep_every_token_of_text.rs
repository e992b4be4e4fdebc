//! Text deltas recognised without a full JSON parse still reach the usage estimate, the
//! chunk count and (under the capture policy, process-wide: this file runs alone) the
//! captured output.
#![allow(clippy::unwrap_used)]

mod common;

use common::fixtures::*;
use common::*;

/// 400 text deltas, some with escapes and non-ASCII, no usage chunk; split into HTTP
/// chunks of 1000 bytes so events straddle chunk boundaries too.
fn stream() -> (Vec<String>, String) {
    let mut text = String::new();
    let mut body = OPENAI_STREAM_FIRST.to_owned();
    for i in 0..400 {
        let t = match i % 7 {
            3 => format!(" line\n{i}"),
            5 => format!(" «{i}» \"q\""),
            _ => format!(" token{i}"),
        };
        text.push_str(&t);
        body.push_str(&openai_chunk(&t));
    }
    body.push_str(OPENAI_STREAM_FINISH);
    body.push_str(DONE);
    let chunks = body
        .as_bytes()
        .chunks(1000)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>();
    // `chunks(1000)` may cut a multi-byte character: rebuild from byte-exact pieces.
    assert_eq!(chunks.concat(), body, "fixture must cut on char boundaries");
    (chunks, text)
}

#[test]
fn a_long_stream_without_usage_is_estimated_and_captured_from_all_its_text() {
    llmtel::set_content_capture(llmtel::ContentCapture::enabled());
    let (chunks, text) = stream();
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&chunks)]).await;
        let c = client(middleware(&server));
        post(
            &c,
            &server.url("/openai/v1/chat/completions"),
            OPENAI_STREAM_REQUEST_NO_USAGE,
        )
        .await;
    });
    // The body reader records the output under the policy in force when it ends the span.
    let s = llm_span(&p);
    llmtel::set_content_capture(llmtel::ContentCapture::disabled());
    let output: serde_json::Value =
        serde_json::from_str(&str_attr(&s, "gen_ai.output.messages")).unwrap();
    assert_eq!(output[0]["parts"][0]["content"], text.as_str());
    assert_eq!(output[0]["finish_reason"], "stop");
    assert_eq!(i64_attr(&s, "llmtel.response.output_chunks"), 400);
    let expected = llmtel::estimate::count_tokens("gpt-4o-2024-08-06", &text).tokens;
    assert_eq!(
        i64_attr(&s, "gen_ai.usage.output_tokens"),
        i64::try_from(expected).unwrap()
    );
    assert_eq!(
        attr(&s, "llmtel.cost.estimated"),
        Some(&opentelemetry::Value::Bool(true))
    );
}
