//! Issue #14: replayed provider responses that report price dimensions are priced on the
//! exported span, checked against hand-computed values: OpenAI `service_tier: "flex"` and
//! audio tokens (`prompt_tokens_details.audio_tokens`, `completion_tokens_details.audio_tokens`),
//! Anthropic `usage.server_tool_use.web_search_requests` and `usage.service_tier`, Gemini
//! `promptTokensDetails` with an `AUDIO` modality.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

const FLEX_REQUEST: &str = r#"{"model":"gpt-5","service_tier":"flex","messages":[{"role":"user","content":"Summarise the ticket"}]}"#;
const FLEX_RESPONSE: &str = r#"{"id":"chatcmpl-flex-1","object":"chat.completion","created":1764700000,"model":"gpt-5-2025-08-07","service_tier":"flex","choices":[{"index":0,"message":{"role":"assistant","content":"Done."},"finish_reason":"stop"}],"usage":{"prompt_tokens":10000,"completion_tokens":2000,"total_tokens":12000,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}"#;

const AUDIO_REQUEST: &str = r#"{"model":"gpt-4o-audio-preview-2025-06-03","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"},"messages":[{"role":"user","content":"Read this aloud"}]}"#;
const AUDIO_RESPONSE: &str = r#"{"id":"chatcmpl-audio-1","object":"chat.completion","created":1764700000,"model":"gpt-4o-audio-preview-2025-06-03","service_tier":"default","choices":[{"index":0,"message":{"role":"assistant","content":null,"audio":{"id":"audio_1","data":"UklGRg==","expires_at":1764703600,"transcript":"Hello."}},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":400},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":300}}}"#;

#[test]
fn a_flex_response_is_priced_at_the_flex_rates() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, FLEX_RESPONSE)]).await;
        let c = client(middleware(&server));
        let (status, _) = post(&c, &server.url("/openai/v1/chat/completions"), FLEX_REQUEST).await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "openai.response.service_tier"), "flex");
    assert_eq!(str_attr(&s, "llmtel.pricing.service_tier"), "flex");
    // gpt-5 flex: 10,000 x $0.625/M + 2,000 x $5.00/M = 0.00625 + 0.01 = $0.01625
    // (standard would be $0.0325).
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.01625);
    // llmtel's layer prices the call for its sinks (budgets, metrics) at the same rates.
    let _ = p.spans();
    let summary = p.summaries.recent(1).pop().expect("a trace summary");
    assert_usd(summary.cost.as_f64(), 0.01625);
}

#[test]
fn audio_tokens_are_priced_at_the_audio_rates() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, AUDIO_RESPONSE)]).await;
        let c = client(middleware(&server));
        let (status, _) = post(
            &c,
            &server.url("/openai/v1/chat/completions"),
            AUDIO_REQUEST,
        )
        .await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "llmtel.usage.audio.input_tokens"), 400);
    assert_eq!(i64_attr(&s, "llmtel.usage.audio.output_tokens"), 300);
    // Text 600 in x $2.50/M = 0.0015, audio 400 in x $40/M = 0.016,
    // text 200 out x $10/M = 0.002, audio 300 out x $80/M = 0.024: $0.0435.
    assert_usd(f64_attr(&s, "llmtel.cost.audio_input"), 0.016);
    assert_usd(f64_attr(&s, "llmtel.cost.audio_output"), 0.024);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.0435);
    let _ = p.spans();
    let summary = p.summaries.recent(1).pop().expect("a trace summary");
    assert_usd(summary.cost.as_f64(), 0.0435);
    // The standard tier the response names is the catalog's base price: no tier attribute.
    assert!(attr(&s, "llmtel.pricing.service_tier").is_none());
}

const ANTHROPIC_SEARCH_RESPONSE: &str = r#"{"id":"msg_01WebSearch","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"text","text":"The refund window is 30 days."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1000,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":100,"server_tool_use":{"web_search_requests":3},"service_tier":"standard"}}"#;

#[test]
fn anthropic_web_searches_and_service_tier_are_recorded_and_each_search_is_priced() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, ANTHROPIC_SEARCH_RESPONSE)]).await;
        let c = client(middleware(&server));
        let (status, _) = post(
            &c,
            &server.url("/anthropic/v1/messages"),
            common::fixtures::ANTHROPIC_REQUEST,
        )
        .await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "llmtel.usage.web_search.requests"), 3);
    assert_eq!(str_attr(&s, "llmtel.response.service_tier"), "standard");
    // claude-sonnet-4: 1,000 x $3/M + 100 x $15/M = $0.0045, and 3 searches at $10 per
    // 1,000: $0.03. Total $0.0345. (A search the catalog has no price for is noted, never
    // priced at zero: llmtel-pricing's a_request_charge_missing_from_the_catalog_is_noted.)
    assert_usd(f64_attr(&s, "llmtel.cost.web_search"), 0.03);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.0345);
    assert!(common::attr(&s, "llmtel.cost.notes").is_none(), "{s:?}");
}

const GEMINI_AUDIO_RESPONSE: &str = r#"{"candidates":[{"content":{"parts":[{"text":"It is a cat purring."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1000,"candidatesTokenCount":200,"totalTokenCount":1200,"promptTokensDetails":[{"modality":"TEXT","tokenCount":600},{"modality":"AUDIO","tokenCount":400}],"candidatesTokensDetails":[{"modality":"TEXT","tokenCount":200}]},"modelVersion":"gemini-2.5-flash","responseId":"gem-audio-1"}"#;

#[test]
fn gemini_audio_input_tokens_are_priced_at_the_audio_rate() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, GEMINI_AUDIO_RESPONSE)]).await;
        let c = client(middleware(&server));
        let (status, _) = post(
            &c,
            &server.url("/gemini/v1beta/models/gemini-2.5-flash:generateContent"),
            common::fixtures::GEMINI_REQUEST,
        )
        .await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "llmtel.usage.audio.input_tokens"), 400);
    // gemini-2.5-flash: text 600 x $0.30/M = 0.00018, audio 400 x $1.00/M = 0.0004,
    // output 200 x $2.50/M = 0.0005: $0.00108.
    assert_usd(f64_attr(&s, "llmtel.cost.audio_input"), 0.0004);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.00108);
}

const GEMINI_IMAGE_RESPONSE: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Here is your cat."},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="}}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":1295,"totalTokenCount":1307,"promptTokensDetails":[{"modality":"TEXT","tokenCount":12}],"candidatesTokensDetails":[{"modality":"TEXT","tokenCount":5},{"modality":"IMAGE","tokenCount":1290}]},"modelVersion":"gemini-2.5-flash-image","responseId":"gem-image-1"}"#;

#[test]
fn gemini_image_output_tokens_are_priced_at_the_image_output_rate() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, GEMINI_IMAGE_RESPONSE)]).await;
        let c = client(middleware(&server));
        let (status, _) = post(
            &c,
            &server.url("/gemini/v1beta/models/gemini-2.5-flash-image:generateContent"),
            common::fixtures::GEMINI_REQUEST,
        )
        .await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "llmtel.usage.image.output_tokens"), 1290);
    // gemini-2.5-flash-image: 12 x $0.30/M in, 5 text x $2.50/M out, 1,290 image tokens x
    // $30/M (Google's $0.039 an image): 0.0000036 + 0.0000125 + 0.0387 = $0.0387161.
    assert_usd(f64_attr(&s, "llmtel.cost.image_output"), 0.0387);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.038_716_1);
}

/// A streamed gpt-5 answer served on the flex tier: the tier is in every chunk, the usage in
/// the `include_usage` chunk.
fn flex_stream() -> Vec<String> {
    let chunk = |choices: &str, usage: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-flex-s\",\"object\":\"chat.completion.chunk\",\"created\":1764700000,\"model\":\"gpt-5-2025-08-07\",\"service_tier\":\"flex\",\"choices\":[{choices}],\"usage\":{usage}}}\n\n"
        )
    };
    vec![
        chunk(
            r#"{"index":0,"delta":{"role":"assistant","content":"Done."},"finish_reason":null}"#,
            "null",
        ),
        chunk(r#"{"index":0,"delta":{},"finish_reason":"stop"}"#, "null"),
        chunk(
            "",
            r#"{"prompt_tokens":10000,"completion_tokens":2000,"total_tokens":12000,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}"#,
        ),
        "data: [DONE]\n\n".to_owned(),
    ]
}

#[test]
fn a_streamed_flex_response_is_priced_at_the_flex_rates() {
    const REQUEST: &str = r#"{"model":"gpt-5","service_tier":"flex","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Summarise the ticket"}]}"#;
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&flex_stream())]).await;
        let c = client(middleware(&server));
        let (status, _) = post(&c, &server.url("/openai/v1/chat/completions"), REQUEST).await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "openai.response.service_tier"), "flex");
    // As the non-streamed answer: $0.01625 at the flex rates.
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.01625);
}
