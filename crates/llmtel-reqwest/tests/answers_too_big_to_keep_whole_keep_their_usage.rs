//! Answers too big for the body reader to keep whole are passed to the caller whole, and
//! their usage is still read from their end, under the key the provider uses: a JSON answer
//! over 16 MiB (inline images: a Gemini image model's `inlineData`, an Anthropic answer
//! quoting a large document), and a streamed event over 4 MiB (OpenAI's `response.completed`
//! repeating every generated image before its usage).
#![allow(clippy::unwrap_used)]

mod common;

use common::fixtures::*;
use common::*;

/// 17 MB of base64, as an inline image.
fn big_base64() -> String {
    "iVBORw0KGgo".repeat(17_000_000 / 11)
}

#[test]
fn a_gemini_answer_over_16_mib_is_priced_from_the_usage_metadata_in_its_tail() {
    let body = format!(
        r#"{{"candidates":[{{"content":{{"parts":[{{"text":"Here is your cat."}},{{"inlineData":{{"mimeType":"image/png","data":"{}"}}}}],"role":"model"}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":12,"candidatesTokenCount":1295,"totalTokenCount":1307,"promptTokensDetails":[{{"modality":"TEXT","tokenCount":12}}],"candidatesTokensDetails":[{{"modality":"TEXT","tokenCount":5}},{{"modality":"IMAGE","tokenCount":1290}}]}},"modelVersion":"gemini-2.5-flash-image","responseId":"gem-big-1"}}"#,
        big_base64()
    );
    assert!(body.len() > 16 * 1024 * 1024);
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, &body)]).await;
        let c = client(middleware(&server));
        let (status, got) = post(
            &c,
            &server.url("/gemini/v1beta/models/gemini-2.5-flash-image:generateContent"),
            GEMINI_REQUEST,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(got.len(), body.len(), "the caller gets the whole body");
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 12);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 1295);
    assert_eq!(i64_attr(&s, "llmtel.usage.image.output_tokens"), 1290);
    // 12 × $0.30/M + 5 × $2.50/M + 1,290 × $30/M, as for a small answer.
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.038_716_1);
    assert!(
        str_attr(&s, "llmtel.parse_error").contains("usage read from its tail"),
        "{s:?}"
    );
}

#[test]
fn a_gemini_json_array_stream_over_16_mib_is_priced_from_the_usage_metadata_in_its_tail() {
    // `streamGenerateContent` without `alt=sse`: one JSON array of responses, the usage in
    // the last.
    let body = format!(
        r#"[{{"candidates":[{{"content":{{"parts":[{{"text":"Here is your cat."}}],"role":"model"}},"index":0}}],"usageMetadata":{{"promptTokenCount":12,"candidatesTokenCount":5,"totalTokenCount":17}},"modelVersion":"gemini-2.5-flash-image","responseId":"gem-big-2"}},
{{"candidates":[{{"content":{{"parts":[{{"inlineData":{{"mimeType":"image/png","data":"{}"}}}}],"role":"model"}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":12,"candidatesTokenCount":1295,"totalTokenCount":1307,"promptTokensDetails":[{{"modality":"TEXT","tokenCount":12}}],"candidatesTokensDetails":[{{"modality":"TEXT","tokenCount":5}},{{"modality":"IMAGE","tokenCount":1290}}]}},"modelVersion":"gemini-2.5-flash-image","responseId":"gem-big-2"}}]"#,
        big_base64()
    );
    assert!(body.len() > 16 * 1024 * 1024);
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, &body)]).await;
        let c = client(middleware(&server));
        let (status, got) = post(
            &c,
            &server.url("/gemini/v1beta/models/gemini-2.5-flash-image:streamGenerateContent"),
            GEMINI_REQUEST,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(got.len(), body.len(), "the caller gets the whole body");
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 12);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 1295);
    assert_eq!(i64_attr(&s, "llmtel.usage.image.output_tokens"), 1290);
    // As the plain `generateContent` answer above: exact, not estimated.
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.038_716_1);
    assert!(
        attr(&s, "llmtel.cost.estimated").is_none_or(|v| *v == opentelemetry::Value::Bool(false)),
        "{s:?}"
    );
    assert!(
        str_attr(&s, "llmtel.parse_error").contains("usage read from its tail"),
        "{s:?}"
    );
}

#[test]
fn an_anthropic_answer_over_16_mib_is_priced_from_the_usage_in_its_tail() {
    let body = ANTHROPIC_RESPONSE.replace(
        "Refunds are accepted within 30 days.",
        &"Refunds are accepted within 30 days. ".repeat(17_000_000 / 37),
    );
    assert!(body.len() > 16 * 1024 * 1024);
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, &body)]).await;
        let c = client(middleware(&server));
        post(&c, &server.url("/anthropic/v1/messages"), ANTHROPIC_REQUEST).await;
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 3050);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 400);
    // As anthropic_plain_with_cache_reads_and_writes: $0.0105.
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.010500);
}

#[test]
fn a_streamed_response_whose_completed_event_repeats_5_mb_of_image_keeps_its_usage() {
    let image = big_base64()[..5_000_000].to_owned();
    let mut chunks = responses_stream();
    let done = chunks.pop().unwrap();
    // The image_generation_call item, done (its result, no usage)...
    chunks.push(format!(
        "event: response.output_item.done\ndata: {{\"type\":\"response.output_item.done\",\"sequence_number\":8,\"output_index\":0,\"item\":{{\"type\":\"image_generation_call\",\"id\":\"ig_1\",\"status\":\"completed\",\"result\":\"{image}\"}}}}\n\n"
    ));
    // ...and the final response repeating it before the usage.
    chunks.push(done.replace(
        "\"output\":[",
        &format!(
            "\"output\":[{{\"type\":\"image_generation_call\",\"id\":\"ig_1\",\"status\":\"completed\",\"result\":\"{image}\"}},"
        ),
    ));
    assert!(chunks.last().unwrap().len() > 4 * 1024 * 1024);
    let p = run_async(|| async {
        let reply = Reply::sse(&chunks);
        let expected = reply.bytes();
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let req = RESPONSES_REQUEST.replace("\"max_output_tokens\":2000", "\"stream\":true");
        let (_, body) = post(&c, &server.url("/openai/v1/responses"), &req).await;
        assert_eq!(body, expected, "the caller gets every byte");
    });
    let s = llm_span(&p);
    // As openai_responses_streamed, whose events are the same but for the image.
    assert_eq!(str_attr(&s, "gen_ai.response.id"), "resp_stream1");
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 1000);
    assert_eq!(i64_attr(&s, "gen_ai.usage.reasoning.output_tokens"), 320);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.003135);
    assert!(
        attr(&s, "llmtel.cost.estimated").is_none_or(|v| *v == opentelemetry::Value::Bool(false)),
        "{s:?}"
    );
    assert!(
        str_attr(&s, "llmtel.parse_error").contains("usage read from their last"),
        "{s:?}"
    );
}
