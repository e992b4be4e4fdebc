//! Streams pass through chunk by chunk; cut, dropped and usage-less streams still end their
//! span with what was seen.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fixtures::*;
use common::*;
use tokio::sync::Notify;

#[test]
fn the_first_chunk_reaches_the_caller_before_the_server_sends_the_second() {
    let p = run_async(|| async {
        let go = Arc::new(Notify::new());
        let chunks = openai_stream(true);
        let reply = Reply {
            status: 200,
            content_type: "text/event-stream",
            steps: vec![
                Step::Bytes(chunks[0].clone().into_bytes()),
                Step::Wait(go.clone()),
                Step::Bytes(chunks[1..].concat().into_bytes()),
            ],
            chunked: true,
        };
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let mut resp = c
            .post(server.url("/openai/v1/chat/completions"))
            .body(OPENAI_STREAM_REQUEST)
            .send()
            .await
            .unwrap();
        // The server is blocked until we signal: a buffering middleware would hang here.
        let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("the first chunk must arrive while the server holds the second back")
            .unwrap()
            .unwrap();
        assert_eq!(first, chunks[0].as_bytes());
        go.notify_one();
        let mut rest = Vec::new();
        while let Some(c) = resp.chunk().await.unwrap() {
            rest.extend_from_slice(&c);
        }
        assert_eq!(rest, chunks[1..].concat().as_bytes());
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 5);
    assert!(attr(&s, "error.type").is_none());
}

#[test]
fn keep_alive_comments_before_the_first_event_do_not_stamp_the_time_to_first_chunk() {
    // OpenRouter sends `: OPENROUTER PROCESSING` comments while the model has not answered.
    let p = run_async(|| async {
        let go = Arc::new(Notify::new());
        let comment = ": OPENROUTER PROCESSING\n\n";
        let chunks = openai_stream(true);
        let reply = Reply {
            status: 200,
            content_type: "text/event-stream",
            steps: vec![
                Step::Bytes(comment.as_bytes().to_vec()),
                Step::Wait(go.clone()),
                Step::Bytes(chunks.concat().into_bytes()),
            ],
            chunked: true,
        };
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let mut resp = c
            .post(server.url("/openai/v1/chat/completions"))
            .body(OPENAI_STREAM_REQUEST)
            .send()
            .await
            .unwrap();
        let first = resp.chunk().await.unwrap().unwrap();
        assert_eq!(first, comment.as_bytes());
        // The model "thinks" for 300 ms after the comment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        go.notify_one();
        while resp.chunk().await.unwrap().is_some() {}
    });
    let s = llm_span(&p);
    let ttfc = f64_attr(&s, "gen_ai.response.time_to_first_chunk");
    assert!(ttfc >= 0.25, "stamped by the comment: {ttfc}");
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 5);
}

#[test]
fn a_stream_without_usage_is_estimated_from_its_text() {
    let chunks = openai_stream(false);
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
    let s = llm_span(&p);
    let input = llmtel::estimate::count_tokens("gpt-4o-2024-08-06", "Say hello");
    let output = llmtel::estimate::count_tokens("gpt-4o-2024-08-06", "Hello there!");
    assert_eq!((input.tokens, output.tokens), (2, 3), "o200k_base counts");
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 2);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 3);
    assert_eq!(
        attr(&s, "llmtel.cost.estimated"),
        Some(&opentelemetry::Value::Bool(true))
    );
    assert_eq!(
        str_attr(&s, "llmtel.cost.estimate_method"),
        "tiktoken:o200k_base"
    );
    // 2 × $2.50/M + 3 × $10/M = 0.000005 + 0.000030
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.000035);
}

#[test]
fn a_stream_cut_in_the_middle_ends_the_span_with_what_was_seen() {
    let chunks = anthropic_stream();
    let p = run_async(|| async {
        let mut reply = Reply::sse(&chunks[..4]);
        reply.steps.push(Step::Cut);
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let mut resp = c
            .post(server.url("/anthropic/v1/messages"))
            .body(ANTHROPIC_STREAM_REQUEST)
            .send()
            .await
            .unwrap();
        let mut got = Vec::new();
        let err = loop {
            match resp.chunk().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => panic!("a cut stream must not end cleanly"),
                Err(e) => break e,
            }
        };
        assert_eq!(got, chunks[..4].concat().as_bytes());
        drop(err);
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "error.type"), "interrupted");
    assert!(matches!(
        s.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    // message_start was seen: its input and cache counts, and its provisional output of 1.
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 1525);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 1);
}

#[test]
fn a_stream_cut_after_its_done_marker_is_complete() {
    // Every byte of the answer, `[DONE]` included, then the connection closes without the
    // chunked terminator (a proxy closing early): the caller's read fails, but the call
    // was answered whole and its usage is exact.
    let chunks = openai_stream(true);
    let p = run_async(|| async {
        let mut reply = Reply::sse(&chunks);
        reply.steps.push(Step::Cut);
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let mut resp = c
            .post(server.url("/openai/v1/chat/completions"))
            .body(OPENAI_STREAM_REQUEST)
            .send()
            .await
            .unwrap();
        let mut got = Vec::new();
        let err = loop {
            match resp.chunk().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => panic!("a stream without its terminator must not end cleanly"),
                Err(e) => break e,
            }
        };
        assert_eq!(got, chunks.concat().as_bytes());
        drop(err);
    });
    let s = llm_span(&p);
    assert!(attr(&s, "error.type").is_none(), "{:?}", s.attributes);
    assert!(!matches!(
        s.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 20);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 5);
    assert!(
        attr(&s, "llmtel.cost.estimated").is_none_or(|v| *v == opentelemetry::Value::Bool(false))
    );
}

#[test]
fn a_stream_dropped_by_the_caller_is_cancelled() {
    let p = run_async(|| async {
        let go = Arc::new(Notify::new());
        let chunks = gemini_stream();
        let reply = Reply {
            status: 200,
            content_type: "text/event-stream",
            steps: vec![
                Step::Bytes(chunks[0].clone().into_bytes()),
                Step::Wait(go.clone()),
                Step::Bytes(chunks[1].clone().into_bytes()),
            ],
            chunked: true,
        };
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let mut resp = c
            .post(
                server.url("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
            )
            .body(GEMINI_REQUEST)
            .send()
            .await
            .unwrap();
        resp.chunk().await.unwrap().unwrap();
        drop(resp); // the user closed the tab
        go.notify_one();
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "error.type"), "cancelled");
    assert!(matches!(
        s.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    // Usage seen so far (Gemini repeats it in every chunk): 10 in, 2 out.
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 10);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 2);
    assert_usd(
        f64_attr(&s, "gen_ai.usage.cost"),
        (10.0 * 0.30 + 2.0 * 2.50) / 1e6,
    );
}

#[test]
fn a_gemini_stream_read_to_its_last_chunk_then_dropped_is_complete() {
    // Gemini has no `[DONE]`: its last chunk carries the finish reason. A consumer that
    // stops there and drops the response before the transport's end did not cancel.
    let p = run_async(|| async {
        let go = Arc::new(Notify::new());
        let body = gemini_stream().concat();
        let reply = Reply {
            status: 200,
            content_type: "text/event-stream",
            steps: vec![Step::Bytes(body.into_bytes()), Step::Wait(go.clone())],
            chunked: true,
        };
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let mut resp = c
            .post(
                server.url("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
            )
            .body(GEMINI_REQUEST)
            .send()
            .await
            .unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("finishReason") {
            got.extend_from_slice(&resp.chunk().await.unwrap().unwrap());
        }
        drop(resp);
        go.notify_one();
    });
    // "As long as it takes" has no deadline (it overflowed one here: a panic).
    assert!(llmtel::finish_pending_spans(Duration::MAX));
    let s = llm_span(&p);
    assert!(attr(&s, "error.type").is_none(), "{:?}", s.attributes);
    assert!(!matches!(
        s.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 40);
}

#[test]
fn include_usage_is_added_only_when_enabled() {
    run_async(|| async {
        let chunks = openai_stream(true);
        let server = Replay::start(vec![Reply::sse(&chunks), Reply::sse(&chunks)]).await;
        let off = client(middleware(&server));
        post(
            &off,
            &server.url("/openai/v1/chat/completions"),
            OPENAI_STREAM_REQUEST_NO_USAGE,
        )
        .await;
        let on = client(middleware(&server).with_stream_usage(true));
        post(
            &on,
            &server.url("/openai/v1/chat/completions"),
            OPENAI_STREAM_REQUEST_NO_USAGE,
        )
        .await;
        let reqs = server.requests();
        assert_eq!(
            reqs[0].body,
            OPENAI_STREAM_REQUEST_NO_USAGE.as_bytes(),
            "untouched by default"
        );
        let sent: serde_json::Value = serde_json::from_slice(&reqs[1].body).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["messages"][0]["content"], "Say hello");
        assert!(
            reqs[1]
                .head
                .to_ascii_lowercase()
                .contains(&format!("content-length: {}", reqs[1].body.len()))
        );
    });
}

#[test]
fn include_usage_is_asked_of_openai_compatible_servers_under_any_name_but_not_of_mistral() {
    // vLLM, Ollama, LiteLLM and local servers accept `stream_options` like OpenAI: under the
    // name they were added with, their streams are asked for the usage chunk too. Mistral
    // refuses it (422 `extra_forbidden`): its request goes out as the caller wrote it.
    run_async(|| async {
        let chunks = openai_stream(true);
        let server = Replay::start(vec![Reply::sse(&chunks); 5]).await;
        let mw = middleware(&server)
            .with_openai_compatible(&format!("{}/vllm/v1", server.base()), "vllm")
            .unwrap()
            .with_openai_compatible(&format!("{}/litellm", server.base()), "litellm")
            .unwrap()
            .with_openai_compatible(&format!("{}/local/v1", server.base()), "my-local-llm")
            .unwrap()
            .with_openai_compatible(&format!("{}/mistral/v1", server.base()), "mistral_ai")
            .unwrap()
            .with_stream_usage(true);
        let c = client(mw);
        let body = OPENAI_STREAM_REQUEST_NO_USAGE;
        for path in [
            "/vllm/v1/chat/completions",
            "/ollama/v1/chat/completions",
            "/litellm/chat/completions",
            "/local/v1/chat/completions",
            "/mistral/v1/chat/completions",
        ] {
            let (status, got) = post(&c, &server.url(path), body).await;
            assert_eq!((status, got), (200, chunks.concat().into_bytes()), "{path}");
        }
        let reqs = server.requests();
        let asked = body.replacen('{', r#"{"stream_options":{"include_usage":true},"#, 1);
        for (i, r) in reqs.iter().enumerate().take(4) {
            assert_eq!(String::from_utf8_lossy(&r.body), asked, "{}", r.path);
            assert!(
                reqs[i]
                    .head
                    .to_ascii_lowercase()
                    .contains(&format!("content-length: {}", asked.len())),
                "{}",
                r.path
            );
        }
        assert_eq!(
            String::from_utf8_lossy(&reqs[4].body),
            body,
            "Mistral: as the caller wrote it"
        );
    });
}

#[test]
fn include_usage_is_asked_only_of_providers_that_accept_it_and_never_overrides_the_caller() {
    // Mistral answers 422 `extra_forbidden` to `stream_options` (and sends the usage in its
    // last chunk anyway): its request must go out as the caller wrote it.
    let p = run_async(|| async {
        let chunks = openai_stream(true);
        let server = Replay::start(vec![Reply::sse(&chunks); 6]).await;
        let mw = middleware(&server)
            .with_openai_compatible(&format!("{}/mistral/v1", server.base()), "mistral_ai")
            .unwrap()
            .with_openai_compatible(
                &format!("{}/azure/openai", server.base()),
                "azure.ai.openai",
            )
            .unwrap()
            .with_stream_usage(true);
        let c = client(mw);
        let no_usage = OPENAI_STREAM_REQUEST_NO_USAGE;
        let said_no = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"messages":[]}"#;
        for (path, body) in [
            ("/mistral/v1/chat/completions", no_usage),
            ("/openai/v1/chat/completions", no_usage),
            ("/openai/v1/chat/completions", said_no),
            (
                "/azure/openai/deployments/gpt4o/chat/completions?api-version=2024-06-01",
                no_usage,
            ),
            (
                "/azure/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
                no_usage,
            ),
        ] {
            let (status, got) = post(&c, &server.url(path), body).await;
            assert_eq!((status, got), (200, chunks.concat().into_bytes()), "{path}");
        }
        let reqs = server.requests();
        let sent = |i: usize| String::from_utf8(reqs[i].body.clone()).unwrap();
        assert_eq!(sent(0), no_usage, "Mistral: as the caller wrote it");
        // OpenAI: the field inserted, every other byte as it was (no re-sorted keys).
        let asked = no_usage.replacen('{', r#"{"stream_options":{"include_usage":true},"#, 1);
        assert_eq!(sent(1), asked);
        assert!(
            reqs[1]
                .head
                .to_ascii_lowercase()
                .contains(&format!("content-length: {}", asked.len()))
        );
        assert_eq!(sent(2), said_no, "the caller's include_usage:false is kept");
        assert_eq!(
            sent(3),
            no_usage,
            "Azure before 2024-09-01 refuses stream_options"
        );
        assert_eq!(sent(4), asked);
    });
    let spans: Vec<_> = p
        .spans()
        .into_iter()
        .filter(|s| attr(s, "gen_ai.operation.name").is_some())
        .collect();
    assert_eq!(spans.len(), 5);
    assert!(spans.iter().all(|s| attr(s, "error.type").is_none()));
}

#[test]
fn include_usage_is_not_asked_of_mistral_and_azure_hosts_added_under_another_name() {
    // The name a route was added with does not make Mistral's or Azure's API accept the
    // field: `with_openai_compatible("https://api.mistral.ai/v1", "mistral")` must not earn
    // a 422. The hosts resolve to the replay server.
    run_async(|| async {
        let chunks = openai_stream(true);
        let server = Replay::start(vec![Reply::sse(&chunks); 5]).await;
        let port = server.addr.port();
        let hosts = [
            "api.mistral.ai",
            "acme.openai.azure.com",
            "acme.services.ai.azure.com",
            "llama-abc.eastus2.models.ai.azure.com",
        ];
        let mut http = reqwest::Client::builder();
        for h in hosts {
            http = http.resolve(h, server.addr);
        }
        let mw = llmtel_reqwest::LlmMiddleware::new()
            .with_openai_compatible(&format!("http://api.mistral.ai:{port}/v1"), "mistral")
            .unwrap()
            .with_openai_compatible(
                &format!("http://acme.openai.azure.com:{port}/openai"),
                "azure",
            )
            .unwrap()
            .with_openai_compatible(
                &format!("http://acme.services.ai.azure.com:{port}/models"),
                "foundry",
            )
            .unwrap()
            .with_openai_compatible(
                &format!("http://llama-abc.eastus2.models.ai.azure.com:{port}"),
                "llama",
            )
            .unwrap()
            .with_stream_usage(true);
        let c = reqwest_middleware::ClientBuilder::new(http.build().unwrap())
            .with(mw)
            .build();
        let body = OPENAI_STREAM_REQUEST_NO_USAGE;
        let urls = [
            format!("http://api.mistral.ai:{port}/v1/chat/completions"),
            format!(
                "http://acme.openai.azure.com:{port}/openai/deployments/x/chat/completions?api-version=2024-06-01"
            ),
            format!(
                "http://acme.services.ai.azure.com:{port}/models/chat/completions?api-version=2024-05-01-preview"
            ),
            format!("http://llama-abc.eastus2.models.ai.azure.com:{port}/chat/completions"),
            format!(
                "http://acme.openai.azure.com:{port}/openai/deployments/x/chat/completions?api-version=2024-10-21"
            ),
        ];
        for u in &urls {
            let (status, got) = post(&c, u, body).await;
            assert_eq!((status, got), (200, chunks.concat().into_bytes()), "{u}");
        }
        let reqs = server.requests();
        assert_eq!(reqs.len(), urls.len());
        for (r, u) in reqs.iter().zip(&urls).take(4) {
            assert_eq!(
                String::from_utf8_lossy(&r.body),
                body,
                "as the caller wrote it: {u}"
            );
        }
        let asked = body.replacen('{', r#"{"stream_options":{"include_usage":true},"#, 1);
        assert_eq!(
            String::from_utf8_lossy(&reqs[4].body),
            asked,
            "Azure OpenAI from 2024-09-01 on is asked"
        );
    });
}

#[test]
fn the_body_reader_ends_the_span_on_its_own_soon_after_the_body() {
    let before = llmtel_reqwest::reader_stats();
    let p = run_async(|| async {
        let chunks = openai_stream(true);
        let server = Replay::start(vec![Reply::sse(&chunks)]).await;
        let c = client(middleware(&server));
        post(
            &c,
            &server.url("/openai/v1/chat/completions"),
            OPENAI_STREAM_REQUEST,
        )
        .await;
    });
    // No `finish_pending_spans`: the reader polls while bodies arrive and ends the span by
    // itself (within about a millisecond; 10 s is only the test's patience).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let span = loop {
        p.provider.force_flush().unwrap();
        let spans = p.exporter.get_finished_spans().unwrap();
        if let Some(s) = spans
            .into_iter()
            .find(|s| attr(s, "gen_ai.operation.name").is_some())
        {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reader never ended the span"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(i64_attr(&span, "gen_ai.usage.output_tokens"), 5);
    // The reader counts the call just after the span has ended (and been exported): a
    // loaded machine can preempt it in between.
    let after = loop {
        let after = llmtel_reqwest::reader_stats();
        if after.calls_finished > before.calls_finished || std::time::Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(after.calls_finished, before.calls_finished + 1);
    assert!(after.bytes_read > before.bytes_read);
    assert_eq!(after.bytes_skipped, 0);
    assert_eq!(after.inline_calls, 0);
    assert_eq!(after.decoder_panics, 0);
    // Nothing is kept for a call that has ended (its request copy, its body).
    assert_eq!(after.kept_bytes, 0);
    assert_eq!(after.over_budget, 0);
}

#[derive(Debug, Default)]
struct Calls(std::sync::Mutex<Vec<llmtel::LlmCall>>);

impl llmtel::CallSink for Calls {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

#[test]
fn in_process_calls_ended_by_the_reader_carry_the_exported_spans_ids() {
    // The subscriber is this thread's default only (as in tests and per-task dispatchers);
    // the reader thread ends the span, and the in-process call must still get its trace and
    // span id (sinks match feedback and evaluations by them).
    let calls = Arc::new(Calls::default());
    let p = run_with(
        llmtel::LlmLayer::new().with_sink(calls.clone()),
        true,
        || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let chunks = openai_stream(true);
                let server = Replay::start(vec![Reply::sse(&chunks)]).await;
                let c = client(middleware(&server));
                post(
                    &c,
                    &server.url("/openai/v1/chat/completions"),
                    OPENAI_STREAM_REQUEST,
                )
                .await;
            });
        },
    );
    let exported = llm_span(&p);
    let calls = calls.0.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].usage.output_tokens, 5);
    assert_eq!(
        calls[0].trace_id,
        Some(exported.span_context.trace_id()),
        "the in-process call names the exported span's trace"
    );
    assert_eq!(calls[0].span_id, Some(exported.span_context.span_id()));
}

#[test]
fn a_stream_read_to_its_done_marker_then_dropped_is_complete() {
    // async-openai (and most hand-written loops) stop at `[DONE]` and drop the response
    // before the transport's own end: that was recorded as `cancelled`, an error.
    let p = run_async(|| async {
        let go = Arc::new(Notify::new());
        let body = openai_stream(true).concat();
        let reply = Reply {
            status: 200,
            content_type: "text/event-stream",
            steps: vec![Step::Bytes(body.into_bytes()), Step::Wait(go.clone())],
            chunked: true,
        };
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let mut resp = c
            .post(server.url("/openai/v1/chat/completions"))
            .body(OPENAI_STREAM_REQUEST)
            .send()
            .await
            .unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("[DONE]") {
            got.extend_from_slice(&resp.chunk().await.unwrap().unwrap());
        }
        drop(resp);
        go.notify_one();
    });
    let s = llm_span(&p);
    assert!(
        s.attributes
            .iter()
            .all(|kv| kv.key.as_str() != "error.type"),
        "{:?}",
        s.attributes
    );
    assert!(!matches!(
        s.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    assert!(i64_attr(&s, "gen_ai.usage.output_tokens") > 0);
}
