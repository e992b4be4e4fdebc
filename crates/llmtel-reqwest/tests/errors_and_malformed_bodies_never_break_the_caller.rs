//! Provider errors become `error.type`; malformed bodies reach the caller unchanged and are
//! recorded as parse errors; other requests pass untouched; a pre-flight refusal sends
//! nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fixtures::*;
use common::*;
use llmtel_reqwest::{PlannedCall, PreflightError, PreflightHook, SettledCall};
use opentelemetry::trace::Status;

fn error_case(path: &str, request: &str, status: u16, body: &'static str) -> (String, Status) {
    let path = path.to_owned();
    let request = request.to_owned();
    let p = run_async(|| async move {
        let server = Replay::start(vec![Reply::json(status, body)]).await;
        let c = client(middleware(&server));
        let (got_status, got) = post(&c, &server.url(&path), &request).await;
        assert_eq!(got_status, status);
        assert_eq!(
            got,
            body.as_bytes(),
            "the caller gets the error body unchanged"
        );
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "http.response.status_code"), i64::from(status));
    assert!(
        attr(&s, "gen_ai.usage.cost").is_none(),
        "a refused call costs nothing"
    );
    (str_attr(&s, "error.type"), s.status)
}

#[test]
fn provider_errors_map_to_error_type_with_error_status() {
    let cases = [
        (
            "/openai/v1/chat/completions",
            OPENAI_CHAT_REQUEST,
            429,
            OPENAI_429,
            "rate_limit",
        ),
        (
            "/openai/v1/chat/completions",
            OPENAI_CHAT_REQUEST,
            400,
            OPENAI_400_CONTEXT,
            "context_length_exceeded",
        ),
        (
            "/anthropic/v1/messages",
            ANTHROPIC_REQUEST,
            529,
            ANTHROPIC_529,
            "overloaded",
        ),
        (
            "/anthropic/v1/messages",
            ANTHROPIC_REQUEST,
            400,
            ANTHROPIC_400_TOO_LONG,
            "context_length_exceeded",
        ),
        (
            "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            GEMINI_REQUEST,
            429,
            GEMINI_429,
            "rate_limit",
        ),
        (
            "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            GEMINI_REQUEST,
            400,
            GEMINI_400_TOKENS,
            "context_length_exceeded",
        ),
        (
            "/openai/v1/chat/completions",
            OPENAI_CHAT_REQUEST,
            500,
            "<html>Internal Server Error</html>",
            "server_error",
        ),
    ];
    for (path, req, status, body, expected) in cases {
        let (ty, st) = error_case(path, req, status, body);
        assert_eq!(ty, expected, "{path} {status}");
        assert!(
            matches!(st, Status::Error { .. }),
            "{path} {status}: {st:?}"
        );
    }
}

#[test]
fn an_error_response_dropped_unread_keeps_its_status_class() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(429, OPENAI_429)]).await;
        let c = client(middleware(&server));
        let resp = c
            .post(server.url("/openai/v1/chat/completions"))
            .body(OPENAI_CHAT_REQUEST)
            .send()
            .await
            .unwrap();
        assert!(resp.error_for_status().is_err());
    });
    assert_eq!(str_attr(&llm_span(&p), "error.type"), "rate_limit");
}

#[test]
fn an_error_event_inside_a_stream_sets_error_type() {
    let mut chunks = anthropic_stream()[..4].to_vec();
    chunks.push(ANTHROPIC_STREAM_ERROR.to_owned());
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
    assert_eq!(str_attr(&s, "error.type"), "overloaded");
    // Capture is off: the provider's message (which can quote the prompt) is not kept.
    assert_eq!(s.status, Status::error("provider error: overloaded"));
}

#[test]
fn malformed_json_reaches_the_caller_unchanged_and_is_recorded() {
    const BROKEN: &str = r#"{"id":"chatcmpl-1","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"#;
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, BROKEN)]).await;
        let c = client(middleware(&server));
        let (status, got) = post(
            &c,
            &server.url("/openai/v1/chat/completions"),
            OPENAI_CHAT_REQUEST,
        )
        .await;
        assert_eq!((status, got.as_slice()), (200, BROKEN.as_bytes()));
    });
    let s = llm_span(&p);
    assert!(str_attr(&s, "llmtel.parse_error").starts_with("json: EOF while parsing"));
    // No usage in the body: the prompt is estimated, never priced at zero.
    assert_eq!(
        attr(&s, "llmtel.cost.estimated"),
        Some(&opentelemetry::Value::Bool(true))
    );
    assert!(
        attr(&s, "error.type").is_none(),
        "the call itself succeeded"
    );
}

#[test]
fn a_malformed_sse_line_reaches_the_caller_unchanged_and_the_rest_is_still_read() {
    let mut chunks = openai_stream(true);
    chunks.insert(
        2,
        "data: {\"id\":\"chatcmpl-stream1\",\"choices\":[{\"delta\":{\"content\":\"oops\n\n"
            .to_owned(),
    );
    chunks.insert(3, "data: \u{0}\u{1}binary garbage\n\n".to_owned());
    let p = run_async(|| async {
        let reply = Reply::sse(&chunks);
        let expected = reply.bytes();
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let (_, got) = post(
            &c,
            &server.url("/openai/v1/chat/completions"),
            OPENAI_STREAM_REQUEST,
        )
        .await;
        assert_eq!(got, expected);
    });
    let s = llm_span(&p);
    assert!(
        str_attr(&s, "llmtel.parse_error").starts_with("sse event 3:"),
        "{}",
        str_attr(&s, "llmtel.parse_error")
    );
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 20);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 5);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.000100);
}

#[test]
fn other_requests_pass_through_without_a_span() {
    let p = run_async(|| async {
        let server = Replay::start(vec![
            Reply::json(200, r#"{"object":"list","data":[]}"#),
            Reply::json(200, r#"{"ok":true}"#),
        ])
        .await;
        let c = client(middleware(&server));
        let r = c.get(server.url("/openai/v1/models")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), r#"{"object":"list","data":[]}"#);
        let (_, got) = post(&c, &server.url("/internal/v1/chat/completions"), "{}").await;
        assert_eq!(got, br#"{"ok":true}"#);
    });
    assert!(p.spans().is_empty());
}

#[derive(Debug, Default)]
struct Budget {
    refuse: bool,
    planned: Mutex<Vec<PlannedCall>>,
    settled: Mutex<Vec<SettledCall>>,
}

impl PreflightHook for Budget {
    fn preflight(&self, call: &PlannedCall) -> Result<(), PreflightError> {
        self.planned.lock().unwrap().push(call.clone());
        if self.refuse {
            return Err(PreflightError::new(
                "budget_exceeded",
                "daily budget of $5.00 spent",
            ));
        }
        Ok(())
    }
    fn settle(&self, _call: &PlannedCall, outcome: &SettledCall) {
        self.settled.lock().unwrap().push(outcome.clone());
    }
}

#[test]
fn a_preflight_refusal_sends_nothing_and_an_admitted_call_is_settled() {
    let refusing = Arc::new(Budget {
        refuse: true,
        ..Default::default()
    });
    let admitting = Arc::new(Budget::default());
    let (r2, a2) = (refusing.clone(), admitting.clone());
    let p = run_async(|| async move {
        let server = Replay::start(vec![Reply::json(200, OPENAI_CHAT_RESPONSE)]).await;
        let c = client(middleware(&server).with_preflight_arc(r2));
        let err = c
            .post(server.url("/openai/v1/chat/completions"))
            .body(OPENAI_CHAT_REQUEST)
            .send()
            .await
            .unwrap_err();
        let reqwest_middleware::Error::Middleware(e) = err else {
            panic!("expected the hook's error");
        };
        assert_eq!(
            e.downcast_ref::<PreflightError>().unwrap().error_type(),
            "budget_exceeded"
        );
        assert!(
            server.requests().is_empty(),
            "no network request for a refused call"
        );

        let c = client(middleware(&server).with_preflight_arc(a2));
        post(
            &c,
            &server.url("/openai/v1/chat/completions"),
            OPENAI_CHAT_REQUEST,
        )
        .await;
        assert_eq!(server.requests().len(), 1);
    });
    // The body reader settles the call when it ends the span.
    let spans = p.spans();
    let planned = refusing.planned.lock().unwrap();
    assert_eq!(planned[0].model, "gpt-4o");
    assert_eq!(planned[0].max_output_tokens, Some(512));
    assert!(refusing.settled.lock().unwrap().is_empty());
    let settled = admitting.settled.lock().unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].usage.unwrap().input_tokens, 1200);
    assert_eq!(
        settled[0].response_model.as_deref(),
        Some("gpt-4o-2024-08-06")
    );
    let refused = spans
        .iter()
        .find(|s| attr(s, "error.type").is_some())
        .unwrap();
    assert_eq!(str_attr(refused, "error.type"), "budget_exceeded");
}

#[test]
fn a_request_dropped_before_its_response_is_cancelled_and_settled() {
    // A caller's timeout drops the request future while the provider has not answered: the
    // span ended as a success and the hook's `settle` never ran.
    let hook = Arc::new(Budget::default());
    let h2 = hook.clone();
    let p = run_async(|| async move {
        // Takes the connection, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let mw = llmtel_reqwest::LlmMiddleware::new()
            .with_openai_compatible(&format!("http://{addr}/v1"), "openai")
            .unwrap()
            .with_preflight_arc(h2);
        let c = client(mw);
        let sent = c
            .post(format!("http://{addr}/v1/chat/completions"))
            .body(OPENAI_CHAT_REQUEST)
            .send();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), sent)
                .await
                .is_err()
        );
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "error.type"), "cancelled");
    let settled = hook.settled.lock().unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].error_type.as_deref(), Some("cancelled"));
}
