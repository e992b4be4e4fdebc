//! A client-chosen model name and a provider's response id and model, however long, are
//! kept capped at `llmtel::MAX_VALUE_BYTES` on the span, counted in `health()`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
fn a_64_kib_model_name_and_response_id_are_capped_on_the_span() {
    let model = "m".repeat(64 * 1024);
    let id = "i".repeat(64 * 1024);
    let request = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"Hi"}}]}}"#);
    let response: &'static str = Box::leak(
        format!(
            r#"{{"id":"{id}","model":"{model}x","choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":3,"completion_tokens":1}}}}"#
        )
        .into_boxed_str(),
    );
    let before = llmtel::health().values_truncated;
    let p = run_async(|| async move {
        let server = Replay::start(vec![Reply::json(200, response)]).await;
        let c = client(middleware(&server));
        let (status, got) = post(&c, &server.url("/openai/v1/chat/completions"), &request).await;
        assert_eq!(status, 200);
        assert_eq!(
            got.len(),
            response.len(),
            "the caller gets the body unchanged"
        );
    });
    let s = llm_span(&p);
    let max = llmtel::MAX_VALUE_BYTES;
    for key in [
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.response.id",
    ] {
        let v = str_attr(&s, key);
        assert!(v.len() <= max, "{key}: {} bytes", v.len());
        assert!(v.ends_with(']'), "{key} carries the cap marker: {v}");
    }
    assert!(
        s.name.len() <= max + 16,
        "span name: {} bytes",
        s.name.len()
    );
    assert!(llmtel::health().values_truncated >= before + 3);
}
