//! The helpers for clients the middleware cannot wrap, with the real async-openai client
//! (it takes a plain `reqwest::Client`) against the local replay server: a whole response
//! recorded with `record_response`, a stream observed with `ObservedStream` (usage from the
//! last chunk, timing, chunk count), a stream with no usage (estimated) and one dropped early
//! (cancelled).
#![allow(clippy::unwrap_used)]

mod common;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionStreamOptions, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
};
use futures_util::StreamExt as _;
use llmtel_reqwest::Api;
use llmtel_reqwest::record::{ObservedStream, record_response};

use common::fixtures::*;
use common::*;

fn openai(server: &Replay) -> Client<OpenAIConfig> {
    Client::with_config(
        OpenAIConfig::new()
            .with_api_base(server.url("/openai/v1"))
            .with_api_key("sk-test-SECRET-0123456789abcdef"),
    )
}

fn request(stream: bool, include_usage: bool) -> CreateChatCompletionRequest {
    let mut r = CreateChatCompletionRequestArgs::default();
    r.model("gpt-4o")
        .messages([
            async_openai::types::chat::ChatCompletionRequestUserMessageArgs::default()
                .content("Say hello")
                .build()
                .unwrap()
                .into(),
        ])
        .max_completion_tokens(64_u32);
    if stream {
        r.stream(true);
    }
    if include_usage {
        r.stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        });
    }
    r.build().unwrap()
}

#[test]
fn a_whole_response_is_recorded_with_its_usage_and_cost() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, OPENAI_CHAT_RESPONSE)]).await;
        let req = request(false, false);
        let span = llmtel::llm_span!("chat", "openai", &req.model);
        let resp = openai(&server).chat().create(req).await.unwrap();
        let seen = record_response(&span, Api::OpenAiChat, &resp);
        assert!(seen.parse_error.is_none(), "{:?}", seen.parse_error);
        drop(span);
        // The SDK really sent it to our server.
        assert_eq!(server.requests().len(), 1);
    });
    let s = llm_span(&p);
    assert_eq!(
        str_attr(&s, "gen_ai.response.id"),
        "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    );
    assert_eq!(str_attr(&s, "gen_ai.response.model"), "gpt-4o-2024-08-06");
    assert_eq!(string_array(&s, "gen_ai.response.finish_reasons"), ["stop"]);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 1200);
    assert_eq!(i64_attr(&s, "gen_ai.usage.cache_read.input_tokens"), 1024);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 300);
    // gpt-4o: 176 × $2.50/M + 1024 cached × $1.25/M + 300 × $10/M = $0.004720
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.004720);
}

#[test]
fn a_stream_is_observed_item_by_item_and_ends_the_span_with_usage() {
    let chunks = openai_stream(true);
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&chunks)]).await;
        let req = request(true, true);
        let span = llmtel::llm_span!("chat", "openai", &req.model);
        let started = std::time::Instant::now();
        let stream = openai(&server)
            .chat()
            .create_stream(req.clone())
            .await
            .unwrap();
        let mut stream = ObservedStream::new(span, Api::OpenAiChat, stream)
            .started_at(started)
            .with_request(&req);
        let mut text = String::new();
        let mut items = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            items += 1;
            for c in &chunk.choices {
                text.push_str(c.delta.content.as_deref().unwrap_or_default());
            }
        }
        // The caller got the SDK's own items, all of them.
        assert_eq!(text, "Hello there!");
        assert_eq!(items, 6);
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "gen_ai.response.id"), "chatcmpl-stream1");
    assert_eq!(string_array(&s, "gen_ai.response.finish_reasons"), ["stop"]);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 20);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 5);
    // 20 × $2.50/M + 5 × $10/M
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.000100);
    assert!(f64_attr(&s, "gen_ai.response.time_to_first_chunk") > 0.0);
    assert_eq!(i64_attr(&s, "llmtel.response.output_chunks"), 3);
    assert!(attr(&s, "error.type").is_none());
    for kv in &s.attributes {
        assert!(!kv.value.as_str().contains("SECRET"), "{kv:?}");
    }
}

#[test]
fn a_stream_without_usage_is_estimated_from_its_text_and_prompt() {
    let chunks = openai_stream(false);
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&chunks)]).await;
        let req = request(true, false);
        let span = llmtel::llm_span!("chat", "openai", &req.model);
        let stream = openai(&server)
            .chat()
            .create_stream(req.clone())
            .await
            .unwrap();
        let mut stream = ObservedStream::new(span, Api::OpenAiChat, stream).with_request(&req);
        while let Some(chunk) = stream.next().await {
            chunk.unwrap();
        }
    });
    let s = llm_span(&p);
    let expected_out = llmtel::estimate::count_tokens("gpt-4o-2024-08-06", "Hello there!").tokens;
    assert_eq!(
        i64_attr(&s, "gen_ai.usage.output_tokens"),
        i64::try_from(expected_out).unwrap()
    );
    assert!(i64_attr(&s, "gen_ai.usage.input_tokens") > 0);
    assert_eq!(
        attr(&s, "llmtel.cost.estimated"),
        Some(&opentelemetry::Value::Bool(true))
    );
}

#[test]
fn a_stream_dropped_early_ends_its_span_cancelled_with_what_was_seen() {
    let chunks = openai_stream(true);
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&chunks)]).await;
        let req = request(true, true);
        let span = llmtel::llm_span!("chat", "openai", &req.model);
        let stream = openai(&server)
            .chat()
            .create_stream(req.clone())
            .await
            .unwrap();
        let mut stream = ObservedStream::new(span, Api::OpenAiChat, stream).with_request(&req);
        stream.next().await.unwrap().unwrap();
        stream.next().await.unwrap().unwrap();
        drop(stream);
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "error.type"), "cancelled");
    assert_eq!(i64_attr(&s, "llmtel.response.output_chunks"), 1);
}

/// The items of an OpenAI chat stream (its SSE events' JSON), without `[DONE]`.
fn chunk_values() -> Vec<serde_json::Value> {
    openai_stream(true)
        .iter()
        .filter_map(|e| e.trim().strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[test]
fn an_error_item_the_stream_goes_on_after_neither_ends_the_call_nor_records_its_text() {
    // async-openai yields an error for a chunk it cannot parse (its text quotes the chunk)
    // and goes on: the span ended at the error, lost the usage after it, and its status
    // quoted the chunk with capture off.
    let p = run_async(|| async {
        let mut items: Vec<Result<serde_json::Value, String>> =
            chunk_values().into_iter().map(Ok).collect();
        items.insert(
            2,
            Err("failed to deserialize api response: content:{\"error\":{\"message\":\"PROMPT-SECRET\"}}".into()),
        );
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        let mut stream =
            ObservedStream::new(span, Api::OpenAiChat, futures_util::stream::iter(items));
        while stream.next().await.is_some() {}
    });
    let s = llm_span(&p);
    assert!(attr(&s, "error.type").is_none(), "{:?}", s.attributes);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 5);
    assert!(!format!("{s:?}").contains("PROMPT-SECRET"));
}

#[test]
fn a_stream_ending_on_an_error_fails_without_its_text_when_capture_is_off() {
    let p = run_async(|| async {
        let mut items: Vec<Result<serde_json::Value, String>> =
            chunk_values().into_iter().take(2).map(Ok).collect();
        items.push(Err(
            "stream error: {\"error\":{\"message\":\"PROMPT-SECRET\"}}".into(),
        ));
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        let mut stream =
            ObservedStream::new(span, Api::OpenAiChat, futures_util::stream::iter(items));
        while stream.next().await.is_some() {}
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "error.type"), "interrupted");
    assert!(!format!("{s:?}").contains("PROMPT-SECRET"));
}
