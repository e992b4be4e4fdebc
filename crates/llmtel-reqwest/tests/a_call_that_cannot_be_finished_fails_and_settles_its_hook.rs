//! A call whose reading panics (a bug in llmtel-reqwest or in the application's code it
//! runs, such as a content redactor) still ends its span as failed and settles the
//! pre-flight hook, once: a budget's reservation is never leaked. The content capture policy
//! is process-wide, so this file runs in its own test process.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::fixtures::*;
use common::*;
use llmtel_reqwest::{PlannedCall, PreflightError, PreflightHook, SettledCall};

#[derive(Debug, Default)]
struct Budget {
    settled: Mutex<Vec<SettledCall>>,
}

impl PreflightHook for Budget {
    fn preflight(&self, _call: &PlannedCall) -> Result<(), PreflightError> {
        Ok(())
    }
    fn settle(&self, _call: &PlannedCall, outcome: &SettledCall) {
        self.settled.lock().unwrap().push(outcome.clone());
    }
}

#[test]
fn a_panic_while_finishing_a_call_fails_its_span_and_settles_its_hook_once() {
    // The redactor panics the first time it runs: when the reader records the captured
    // prompt, after the usage and before the hook is settled.
    static PANICKED: AtomicBool = AtomicBool::new(false);
    llmtel::set_content_capture(llmtel::ContentCapture::enabled().with_redactor(|s: &str| {
        assert!(PANICKED.swap(true, Ordering::SeqCst), "a redactor bug");
        s.to_owned()
    }));
    let before = llmtel_reqwest::reader_stats();
    let health_before = llmtel::health();
    let hook = Arc::new(Budget::default());
    let h2 = hook.clone();
    let p = run_async(|| async move {
        let server = Replay::start(vec![Reply::json(200, OPENAI_CHAT_RESPONSE)]).await;
        let c = client(middleware(&server).with_preflight_arc(h2));
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
            "the caller is unaffected"
        );
    });
    let s = llm_span(&p);
    llmtel::set_content_capture(llmtel::ContentCapture::disabled());
    assert!(PANICKED.load(Ordering::SeqCst));
    assert_eq!(str_attr(&s, "error.type"), "internal");
    assert!(matches!(
        s.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    let settled = hook.settled.lock().unwrap();
    assert_eq!(settled.len(), 1, "settled once: {settled:?}");
    assert_eq!(settled[0].error_type.as_deref(), Some("internal"));
    assert_eq!(
        llmtel_reqwest::reader_stats().decoder_panics,
        before.decoder_panics + 1
    );
    // And in `llmtel::health()`, which the Prometheus page shows (`reader_stats()` alone was
    // exported nowhere).
    assert_eq!(
        llmtel::health().body_decoder_panics,
        health_before.body_decoder_panics + 1
    );
}
