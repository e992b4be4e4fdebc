//! A failing transport to a Gemini-style `?key=` URL and a provider 400 that quotes the
//! prompt: neither the key nor the prompt reaches the exported span while content capture is
//! off; with capture on, the provider's message is kept under the app's redaction hook.
//! (The capture policy is process-wide, so the on/off cases run in one test, in order.)
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use opentelemetry::trace::Status;

const GEMINI_KEY: &str = "AIzaSyD-FAKEke72PouQMnMX-a7eZSW0jkFMBWY";
const PROMPT: &str = "my secret plan is to buy the purple elephant";

fn gemini_request() -> String {
    format!(r#"{{"contents":[{{"role":"user","parts":[{{"text":"{PROMPT}"}}]}}]}}"#)
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_refused_connection_to_a_key_url_leaves_no_key_on_the_span() {
    let port = closed_port();
    let p = run_async(|| async move {
        let base = format!("http://127.0.0.1:{port}");
        let mw = llmtel_reqwest::LlmMiddleware::new()
            .with_gemini_base_url(&base)
            .unwrap();
        let c = client(mw);
        let url = format!("{base}/v1beta/models/gemini-2.5-flash:generateContent?key={GEMINI_KEY}");
        let err = c
            .post(&url)
            .header("content-type", "application/json")
            .header("x-goog-api-key", GEMINI_KEY)
            .body(gemini_request())
            .send()
            .await
            .expect_err("nothing listens on the port");
        // The caller's own error keeps its URL: only telemetry is scrubbed.
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "error.type"), "connect");
    let Status::Error { description } = &s.status else {
        panic!("a failed call has the error status: {:?}", s.status)
    };
    assert!(description.contains("connection failed"), "{description}");
    let all = format!("{s:?}");
    assert!(!all.contains(GEMINI_KEY), "key in the exported span: {all}");
    assert!(
        !all.contains("AIzaSy"),
        "key prefix in the exported span: {all}"
    );
    assert!(!all.contains(PROMPT), "prompt in the exported span: {all}");
}

fn provider_400() -> opentelemetry_sdk::trace::SpanData {
    let body: &'static str = Box::leak(
        format!(
            r#"{{"error":{{"code":400,"message":"Invalid value at 'contents[0]' (\"{PROMPT}\"), key {GEMINI_KEY}","status":"INVALID_ARGUMENT"}}}}"#
        )
        .into_boxed_str(),
    );
    let p = run_async(|| async move {
        let server = Replay::start(vec![Reply::json(400, body)]).await;
        let c = client(middleware(&server));
        let (status, got) = post(
            &c,
            &server.url(&format!(
                "/gemini/v1beta/models/gemini-2.5-flash:generateContent?key={GEMINI_KEY}"
            )),
            &gemini_request(),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(got, body.as_bytes(), "the caller gets the body unchanged");
    });
    llm_span(&p)
}

#[test]
fn a_provider_error_quoting_the_prompt_keeps_it_only_on_opt_in() {
    // Capture off (the default): class and HTTP status only.
    let s = provider_400();
    assert_eq!(str_attr(&s, "error.type"), "invalid_request");
    assert_eq!(s.status, Status::error("HTTP 400: invalid_request"));
    let all = format!("{s:?}");
    assert!(!all.contains(PROMPT), "prompt in the exported span: {all}");
    assert!(!all.contains("purple elephant"), "{all}");
    assert!(!all.contains(GEMINI_KEY), "key in the exported span: {all}");

    // Capture on: the message, redacted by llmtel and by the app's hook.
    llmtel::set_content_capture(
        llmtel::ContentCapture::enabled().with_redactor(|s: &str| s.replace("elephant", "[E]")),
    );
    let s = provider_400();
    llmtel::set_content_capture(llmtel::ContentCapture::disabled());
    let Status::Error { description } = &s.status else {
        panic!("{:?}", s.status)
    };
    assert!(description.contains("buy the purple [E]"), "{description}");
    let all = format!("{s:?}");
    assert!(!all.contains("elephant"), "the hook ran: {all}");
    assert!(!all.contains(GEMINI_KEY), "key in the exported span: {all}");
}
