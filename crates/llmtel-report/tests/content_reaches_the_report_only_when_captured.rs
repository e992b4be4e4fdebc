//! Prompt and response content reach the log and the report only when the app turned
//! capture on; then redacted (API keys) and escaped in the HTML. One test: the capture
//! policy is process-wide.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmtel::{ContentCapture, Usage};
use llmtel_quality::{CallRef, Feedback, Quality};
use llmtel_report::{CallLog, Period, Report};
use support::temp_log;
use tracing_subscriber::prelude::*;

const PROMPT: &str =
    r#"[{"role":"user","content":"my key is sk-proj-abcdefghijklmnop1234, <b>help</b>"}]"#;
const ANSWER: &str =
    r#"[{"role":"assistant","content":"Never share keys. <script>alert(1)</script>"}]"#;

fn one_call(log: &CallLog, quality: &Quality, id: &str) {
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(llmtel::LlmLayer::new().with_sink(Arc::new(quality.sink())))
            .with(log.layer()),
    );
    quality.emit_into(&dispatch);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!(
            "chat",
            "openai",
            "gpt-4o-mini",
            "gen_ai.input.messages" = tracing::field::Empty,
            "gen_ai.output.messages" = tracing::field::Empty
        );
        llmtel::record_input_messages(&span, PROMPT);
        // Recorded by hand, not through the helper: the log applies the policy itself.
        span.record("gen_ai.output.messages", ANSWER);
        llmtel::record_response(&span, id, "gpt-4o-mini", &["stop"]);
        llmtel::record_usage(
            &span,
            &Usage {
                input_tokens: 40,
                output_tokens: 12,
                ..Default::default()
            },
        );
    });
    let fb = Feedback::thumbs(CallRef::ResponseId(id.into()), false)
        .with_comment("the user said: call me at +1 415 555 0100");
    assert!(quality.feedback(fb));
    assert!(quality.flush(Duration::from_secs(10)));
    assert!(log.flush(Duration::from_secs(10)));
}

#[test]
fn content_is_logged_and_reported_only_when_captured() {
    let quality = Quality::builder().build();

    // Capture off (the default): even content recorded on the span by hand is not logged.
    let off = temp_log("content-off");
    let log = CallLog::builder(&off).build().unwrap();
    one_call(&log, &quality, "resp-off");
    let report = Report::from_log(&off, &Period::all()).unwrap();
    assert_eq!(report.totals.requests, 1);
    let w = &report.worst_calls[0].call;
    assert_eq!((&w.input_messages, &w.output_messages), (&None, &None));
    let text = std::fs::read_to_string(&off).unwrap();
    assert!(!text.contains("sk-proj") && !text.contains("help") && !text.contains("555 0100"));
    assert!(text.contains("\"user_feedback\""), "{text}");
    assert!(!report.to_html().contains("<details>"));
    assert!(!report.to_markdown().contains("**#1 Prompt**"));

    // Capture on: content logged, API keys redacted, escaped in the HTML.
    llmtel::set_content_capture(ContentCapture::enabled());
    let on = temp_log("content-on");
    let log = CallLog::builder(&on).build().unwrap();
    one_call(&log, &quality, "resp-on");
    llmtel::set_content_capture(ContentCapture::disabled());
    let report = Report::from_log(&on, &Period::all()).unwrap();
    let w = &report.worst_calls[0];
    let input = w.call.input_messages.as_deref().unwrap();
    assert!(
        input.contains("[REDACTED]") && !input.contains("sk-proj"),
        "{input}"
    );
    assert!(input.contains("<b>help</b>"), "{input}");
    assert_eq!(w.call.output_messages.as_deref(), Some(ANSWER));
    assert_eq!(w.evaluations.get("user_feedback"), Some(&0.0));
    let text = std::fs::read_to_string(&on).unwrap();
    assert!(
        text.contains("415 555 0100"),
        "the comment is content: logged when captured"
    );

    let html = report.to_html();
    assert!(html.contains("&lt;b&gt;help&lt;/b&gt;"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !html.contains("<script"),
        "no script, not even from the log"
    );
    let md = report.to_markdown();
    assert!(
        md.contains("**#1 Prompt**") && md.contains("[REDACTED]"),
        "{md}"
    );

    // A policy set on the log wins over the process-wide one.
    let strict = temp_log("content-policy");
    let log = CallLog::builder(&strict)
        .with_content_capture(ContentCapture::disabled())
        .build()
        .unwrap();
    llmtel::set_content_capture(ContentCapture::enabled());
    one_call(&log, &quality, "resp-strict");
    llmtel::set_content_capture(ContentCapture::disabled());
    let text = std::fs::read_to_string(&strict).unwrap();
    assert!(
        !text.contains("_messages") && !text.contains("555 0100"),
        "{text}"
    );
}
