//! For each provider and mode (plain, streamed), the exported span carries the provider's
//! usage in llmtel's convention and the exact cost, checked against hand-computed values.
#![allow(clippy::unwrap_used)]

mod common;

use common::fixtures::*;
use common::*;

#[test]
fn openai_chat_plain_with_cached_input() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, OPENAI_CHAT_RESPONSE)]).await;
        let c = client(middleware(&server));
        let (status, body) = post(
            &c,
            &server.url("/openai/v1/chat/completions"),
            OPENAI_CHAT_REQUEST,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            OPENAI_CHAT_RESPONSE.as_bytes(),
            "the caller gets the bytes unchanged"
        );
    });
    let s = llm_span(&p);
    assert_eq!(s.name, "chat gpt-4o");
    assert_eq!(str_attr(&s, "gen_ai.provider.name"), "openai");
    assert_eq!(
        str_attr(&s, "gen_ai.response.id"),
        "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    );
    assert_eq!(str_attr(&s, "gen_ai.response.model"), "gpt-4o-2024-08-06");
    assert_eq!(string_array(&s, "gen_ai.response.finish_reasons"), ["stop"]);
    assert_eq!(f64_attr(&s, "gen_ai.request.temperature"), 0.2);
    assert_eq!(f64_attr(&s, "gen_ai.request.top_p"), 0.9);
    assert_eq!(i64_attr(&s, "gen_ai.request.max_tokens"), 512);
    assert_eq!(i64_attr(&s, "gen_ai.request.seed"), 7);
    assert_eq!(
        attr(&s, "gen_ai.request.stream"),
        Some(&opentelemetry::Value::Bool(false))
    );
    assert_eq!(str_attr(&s, "server.address"), "127.0.0.1");
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 1200);
    assert_eq!(i64_attr(&s, "gen_ai.usage.cache_read.input_tokens"), 1024);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 300);
    // gpt-4o: 176 uncached × $2.50/M + 1024 cached × $1.25/M + 300 × $10/M
    //       = 0.000440 + 0.001280 + 0.003000 = $0.004720
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.004720);
    assert!(
        attr(&s, "llmtel.cost.estimated").is_none_or(|v| *v == opentelemetry::Value::Bool(false))
    );
    assert!(attr(&s, "error.type").is_none());
    // Not a stream: no time to first chunk (its whole latency read as one made the
    // generation time ~0 and the tokens per second absurd).
    assert!(attr(&s, "gen_ai.response.time_to_first_chunk").is_none());
    // Request headers never reach the span.
    for kv in &s.attributes {
        assert!(!kv.value.as_str().contains("SECRET"), "{kv:?}");
    }
}

#[test]
fn openai_chat_streamed_with_include_usage() {
    let chunks = openai_stream(true);
    let p = run_async(|| async {
        let reply = Reply::sse(&chunks);
        let expected = reply.bytes();
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let (_, body) = post(
            &c,
            &server.url("/openai/v1/chat/completions"),
            OPENAI_STREAM_REQUEST,
        )
        .await;
        assert_eq!(body, expected);
    });
    let s = llm_span(&p);
    assert_eq!(
        attr(&s, "gen_ai.request.stream"),
        Some(&opentelemetry::Value::Bool(true))
    );
    assert_eq!(str_attr(&s, "gen_ai.response.id"), "chatcmpl-stream1");
    assert_eq!(string_array(&s, "gen_ai.response.finish_reasons"), ["stop"]);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 20);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 5);
    // 20 × $2.50/M + 5 × $10/M = 0.000050 + 0.000050
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.000100);
    assert!(f64_attr(&s, "gen_ai.response.time_to_first_chunk") > 0.0);
    assert_eq!(i64_attr(&s, "llmtel.response.output_chunks"), 3);
    assert!(f64_attr(&s, "llmtel.response.time_per_output_chunk") >= 0.0);
}

#[test]
fn openai_responses_plain_with_cached_and_reasoning_tokens() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, RESPONSES_RESPONSE)]).await;
        let c = client(middleware(&server));
        post(&c, &server.url("/openai/v1/responses"), RESPONSES_REQUEST).await;
    });
    let s = llm_span(&p);
    assert_eq!(s.name, "chat o4-mini");
    assert_eq!(i64_attr(&s, "gen_ai.request.max_tokens"), 2000);
    assert_eq!(str_attr(&s, "gen_ai.response.model"), "o4-mini-2025-04-16");
    assert_eq!(
        string_array(&s, "gen_ai.response.finish_reasons"),
        ["completed"]
    );
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 1000);
    assert_eq!(i64_attr(&s, "gen_ai.usage.cache_read.input_tokens"), 200);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 500);
    assert_eq!(i64_attr(&s, "gen_ai.usage.reasoning.output_tokens"), 320);
    // o4-mini: 800 × $1.10/M + 200 × $0.275/M + 500 × $4.40/M (reasoning at the output rate)
    //        = 0.000880 + 0.000055 + 0.002200 = $0.003135
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.003135);
}

#[test]
fn openai_responses_streamed() {
    let chunks = responses_stream();
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&chunks)]).await;
        let c = client(middleware(&server));
        let req = RESPONSES_REQUEST.replace("\"max_output_tokens\":2000", "\"stream\":true");
        post(&c, &server.url("/openai/v1/responses"), &req).await;
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "gen_ai.response.id"), "resp_stream1");
    assert_eq!(i64_attr(&s, "gen_ai.usage.reasoning.output_tokens"), 320);
    assert_eq!(i64_attr(&s, "llmtel.response.output_chunks"), 2);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.003135);
}

#[test]
fn openai_embeddings() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, EMBEDDINGS_RESPONSE)]).await;
        let c = client(middleware(&server));
        post(&c, &server.url("/openai/v1/embeddings"), EMBEDDINGS_REQUEST).await;
    });
    let s = llm_span(&p);
    assert_eq!(s.name, "embeddings text-embedding-3-small");
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 8);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 0);
    // 8 × $0.02/M
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.000_000_16);
}

#[test]
fn anthropic_plain_with_cache_reads_and_writes() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, ANTHROPIC_RESPONSE)]).await;
        let c = client(middleware(&server));
        let (_, body) = post(&c, &server.url("/anthropic/v1/messages"), ANTHROPIC_REQUEST).await;
        assert_eq!(body, ANTHROPIC_RESPONSE.as_bytes());
    });
    let s = llm_span(&p);
    assert_eq!(s.name, "chat claude-sonnet-4-20250514");
    assert_eq!(str_attr(&s, "gen_ai.provider.name"), "anthropic");
    assert_eq!(
        str_attr(&s, "gen_ai.response.id"),
        "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    );
    assert_eq!(
        string_array(&s, "gen_ai.response.finish_reasons"),
        ["end_turn"]
    );
    assert_eq!(f64_attr(&s, "gen_ai.request.top_k"), 40.0);
    // Anthropic's input_tokens exclude the cache; llmtel's include it: 50 + 1000 + 2000.
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 3050);
    assert_eq!(i64_attr(&s, "gen_ai.usage.cache_read.input_tokens"), 2000);
    assert_eq!(
        i64_attr(&s, "gen_ai.usage.cache_creation.input_tokens"),
        1000
    );
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 400);
    // claude-sonnet-4: 50 × $3/M + 1000 × $3.75/M + 2000 × $0.30/M + 400 × $15/M
    //                = 0.000150 + 0.003750 + 0.000600 + 0.006000 = $0.010500
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.010500);
    assert!(
        attr(&s, "llmtel.usage.note").is_none(),
        "no cache > input flag"
    );
}

#[test]
fn anthropic_one_hour_cache_writes_are_recorded_and_priced_at_their_rate() {
    // The same answer, its 1,000 cache writes split by time to live as Anthropic reports
    // them: 400 to the 5-minute cache, 600 to the 1-hour one.
    let body = ANTHROPIC_RESPONSE.replace(
        r#""cache_read_input_tokens": 2000,"#,
        r#""cache_read_input_tokens": 2000,
    "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600},"#,
    );
    let stream: Vec<String> = anthropic_stream()
        .into_iter()
        .map(|c| {
            c.replace(
                r#""cache_creation_input_tokens":0,"#,
                r#""cache_creation_input_tokens":1000,"cache_creation":{"ephemeral_5m_input_tokens":400,"ephemeral_1h_input_tokens":600},"#,
            )
        })
        .collect();
    assert!(stream[0].contains("ephemeral_1h"), "{}", stream[0]);
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, &body), Reply::sse(&stream)]).await;
        let c = client(middleware(&server));
        post(&c, &server.url("/anthropic/v1/messages"), ANTHROPIC_REQUEST).await;
        post(
            &c,
            &server.url("/anthropic/v1/messages"),
            ANTHROPIC_STREAM_REQUEST,
        )
        .await;
    });
    let spans = p.spans();
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|s| attr(s, "gen_ai.response.id").is_some_and(|v| v.as_str() == id))
            .unwrap_or_else(|| panic!("no span answered {id}"))
    };
    let (plain, streamed) = (
        by_id("msg_013Zva2CMHLNnXjNJJKqJ2EF"),
        by_id("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"),
    );
    for s in [plain, streamed] {
        assert_eq!(
            i64_attr(s, "llmtel.usage.cache_creation_1h.input_tokens"),
            600
        );
    }
    // claude-sonnet-4: 50 × $3/M + 400 × $3.75/M + 600 × $6/M (the 1-hour write)
    //   + 2000 × $0.30/M + 400 × $15/M = 0.00015 + 0.0015 + 0.0036 + 0.0006 + 0.006
    assert_usd(f64_attr(plain, "gen_ai.usage.cost"), 0.011850);
    // Streamed: 25 × $3/M + 400 × $3.75/M + 600 × $6/M + 1500 × $0.30/M + 120 × $15/M
    //   = 0.000075 + 0.0015 + 0.0036 + 0.00045 + 0.0018
    assert_usd(f64_attr(streamed, "gen_ai.usage.cost"), 0.007425);
}

#[test]
fn anthropic_streamed_usage_from_message_start_and_message_delta() {
    let chunks = anthropic_stream();
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&chunks)]).await;
        let c = client(middleware(&server));
        post(
            &c,
            &server.url("/anthropic/v1/messages"),
            ANTHROPIC_STREAM_REQUEST,
        )
        .await;
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 1525);
    assert_eq!(i64_attr(&s, "gen_ai.usage.cache_read.input_tokens"), 1500);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 120);
    assert_eq!(
        string_array(&s, "gen_ai.response.finish_reasons"),
        ["end_turn"]
    );
    // 25 × $3/M + 1500 × $0.30/M + 120 × $15/M = 0.000075 + 0.000450 + 0.001800
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.002325);
    assert_eq!(i64_attr(&s, "llmtel.response.output_chunks"), 2);
}

#[test]
fn gemini_plain_with_cached_and_thinking_tokens() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, GEMINI_RESPONSE)]).await;
        let c = client(middleware(&server));
        post(
            &c,
            &server.url("/gemini/v1beta/models/gemini-2.5-flash:generateContent"),
            GEMINI_REQUEST,
        )
        .await;
    });
    let s = llm_span(&p);
    assert_eq!(s.name, "generate_content gemini-2.5-flash");
    assert_eq!(str_attr(&s, "gen_ai.provider.name"), "gcp.gemini");
    assert_eq!(
        str_attr(&s, "gen_ai.response.id"),
        "mAitaLmkHPPlz7IPvtfUqQ4"
    );
    assert_eq!(string_array(&s, "gen_ai.response.finish_reasons"), ["STOP"]);
    assert_eq!(i64_attr(&s, "gen_ai.request.max_tokens"), 1024);
    assert_eq!(f64_attr(&s, "gen_ai.request.top_p"), 0.95);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 1000);
    assert_eq!(i64_attr(&s, "gen_ai.usage.cache_read.input_tokens"), 600);
    // candidates exclude thoughts; llmtel's output includes them: 200 + 300.
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 500);
    assert_eq!(i64_attr(&s, "gen_ai.usage.reasoning.output_tokens"), 300);
    // gemini-2.5-flash: 400 × $0.30/M + 600 × $0.03/M + 500 × $2.50/M
    //                 = 0.000120 + 0.000018 + 0.001250 = $0.001388
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.001388);
}

#[test]
fn gemini_streamed_over_sse() {
    let chunks = gemini_stream();
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&chunks)]).await;
        let c = client(middleware(&server));
        post(
            &c,
            &server.url("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
            GEMINI_REQUEST,
        )
        .await;
    });
    let s = llm_span(&p);
    assert_eq!(
        attr(&s, "gen_ai.request.stream"),
        Some(&opentelemetry::Value::Bool(true))
    );
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 10);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 40);
    // 10 × $0.30/M + 40 × $2.50/M = 0.000003 + 0.000100
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.000103);
}

#[test]
fn gemini_streamed_as_a_json_array_has_its_usage_and_time_to_first_chunk() {
    // Without `alt=sse`, `streamGenerateContent` streams a JSON array of the same chunks.
    let items: Vec<String> = gemini_stream()
        .iter()
        .filter_map(|e| e.trim().strip_prefix("data: ").map(str::to_owned))
        .collect();
    let body = format!("[{}]", items.join(",\r\n"));
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, &body)]).await;
        let c = client(middleware(&server));
        post(
            &c,
            &server.url("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            GEMINI_REQUEST,
        )
        .await;
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 10);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 40);
    assert!(f64_attr(&s, "gen_ai.response.time_to_first_chunk") > 0.0);
}

#[test]
fn ollama_at_a_configured_base_url_is_recognised_and_never_priced_at_zero() {
    let p = run_async(|| async {
        let body = OPENAI_CHAT_RESPONSE.replace("gpt-4o-2024-08-06", "llama3.2:3b");
        let server = Replay::start(vec![Reply::json(200, &body)]).await;
        let c = client(middleware(&server));
        let req = OPENAI_CHAT_REQUEST.replace("gpt-4o", "llama3.2:3b");
        post(&c, &server.url("/ollama/v1/chat/completions"), &req).await;
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "gen_ai.provider.name"), "ollama");
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 1200);
    assert!(attr(&s, "gen_ai.usage.cost").is_none());
    assert_eq!(
        attr(&s, "llmtel.cost.unknown_model"),
        Some(&opentelemetry::Value::Bool(true))
    );
}

/// Mistral's reasoning models (Magistral) answer with `content` an array of parts, the
/// thinking first; the usage beside it must still be read, plain and streamed.
const MISTRAL_REASONING_RESPONSE: &str = r#"{"id":"cmpl-mistral-1","object":"chat.completion","created":1764700000,"model":"magistral-medium-latest","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"The user asks for the answer. It is 42."}]},{"type":"text","text":"42"}],"tool_calls":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":900,"total_tokens":920}}"#;

const MISTRAL_REQUEST: &str = r#"{"model":"magistral-medium-latest","messages":[{"role":"user","content":"What is the answer?"}]}"#;

fn mistral_middleware(server: &Replay) -> llmtel_reqwest::LlmMiddleware {
    middleware(server)
        .with_openai_compatible(&format!("{}/mistral/v1", server.base()), "mistral_ai")
        .unwrap()
}

#[test]
fn mistral_reasoning_content_parts_keep_the_usage_beside_them() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, MISTRAL_REASONING_RESPONSE)]).await;
        let c = client(mistral_middleware(&server));
        let (status, _) = post(
            &c,
            &server.url("/mistral/v1/chat/completions"),
            MISTRAL_REQUEST,
        )
        .await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "gen_ai.provider.name"), "mistral_ai");
    assert_eq!(str_attr(&s, "gen_ai.response.id"), "cmpl-mistral-1");
    assert_eq!(string_array(&s, "gen_ai.response.finish_reasons"), ["stop"]);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 20);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 900);
    // magistral-medium: 20 × $1.50/M + 900 × $7.50/M = 0.00003 + 0.00675
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.00678);
    assert!(
        attr(&s, "llmtel.cost.estimated").is_none_or(|v| *v == opentelemetry::Value::Bool(false))
    );
    assert!(attr(&s, "llmtel.parse_error").is_none(), "{s:?}");
}

#[test]
fn mistral_streamed_thinking_chunks_keep_the_usage_of_the_last() {
    let chunk = |delta: &str, finish: &str, usage: &str| {
        format!(
            "data: {{\"id\":\"cmpl-mistral-s\",\"object\":\"chat.completion.chunk\",\"created\":1764700000,\"model\":\"magistral-medium-latest\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]{usage}}}\n\n"
        )
    };
    let chunks = vec![
        chunk(
            r#"{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"Thinking it over."}]}]}"#,
            "null",
            "",
        ),
        chunk(r#"{"content":"42"}"#, "null", ""),
        chunk(
            r#"{"content":""}"#,
            r#""stop""#,
            r#","usage":{"prompt_tokens":20,"completion_tokens":900,"total_tokens":920}"#,
        ),
        "data: [DONE]\n\n".to_owned(),
    ];
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&chunks)]).await;
        let c = client(mistral_middleware(&server));
        let req = MISTRAL_REQUEST.replace("}]}", "}],\"stream\":true}");
        post(&c, &server.url("/mistral/v1/chat/completions"), &req).await;
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 900);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.00678);
    assert!(
        attr(&s, "llmtel.parse_error").is_none(),
        "no chunk failed to parse: {s:?}"
    );
}

#[test]
fn xai_reasoning_tokens_counted_outside_completion_tokens_join_the_output() {
    // xAI's chat usage counts reasoning apart from `completion_tokens` (its `total_tokens`
    // adds them on); OpenAI's counts them inside.
    let answer = |completion: u64, reasoning: u64| {
        format!(
            r#"{{"id":"xai-1","object":"chat.completion","created":1764700000,"model":"grok-4.20","choices":[{{"index":0,"message":{{"role":"assistant","content":"42"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":10000,"completion_tokens":{completion},"total_tokens":{},"completion_tokens_details":{{"reasoning_tokens":{reasoning}}}}}}}"#,
            10_000 + completion + reasoning
        )
    };
    for (completion, reasoning, cost) in [
        // 10,000 × $1.25/M + (3,000 + 1,000) × $2.50/M = 0.0125 + 0.01
        (3_000, 1_000, 0.0225),
        // 10,000 × $1.25/M + (1,500 + 2,800) × $2.50/M = 0.0125 + 0.01075
        (1_500, 2_800, 0.02325),
    ] {
        let body = answer(completion, reasoning);
        let p = run_async(|| async {
            let server = Replay::start(vec![Reply::json(200, &body)]).await;
            let c = client(
                middleware(&server)
                    .with_openai_compatible(&format!("{}/xai/v1", server.base()), "x_ai")
                    .unwrap(),
            );
            let req = OPENAI_CHAT_REQUEST.replace("gpt-4o", "grok-4.20");
            post(&c, &server.url("/xai/v1/chat/completions"), &req).await;
        });
        let s = llm_span(&p);
        assert_eq!(
            i64_attr(&s, "gen_ai.usage.output_tokens"),
            (completion + reasoning) as i64
        );
        assert_eq!(
            i64_attr(&s, "gen_ai.usage.reasoning.output_tokens"),
            reasoning as i64
        );
        assert_usd(f64_attr(&s, "gen_ai.usage.cost"), cost);
        assert!(attr(&s, "llmtel.usage.note").is_none(), "{s:?}");
    }
}
