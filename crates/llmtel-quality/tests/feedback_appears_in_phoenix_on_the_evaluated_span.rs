//! Against the real Phoenix: feedback sent 5 minutes (simulated clock) after a call reaches
//! the monitor and is exported by llmtel's own OTLP pipeline as a `gen_ai.evaluation.result`
//! span (with its event) under that call's span, read back from Phoenix's REST API. Needs
//! `scripts/peers.sh start` (scripts/test.sh does it); fails, never skips, without Phoenix.
#![allow(clippy::unwrap_used)]

#[path = "../../llmtel/tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmtel::{CallSink, LlmCall, Preset, Usage};
use llmtel_quality::{CallRef, Feedback, Quality};
use serde_json::Value;
use support::phoenix::*;
use tracing_subscriber::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(40);

/// Keeps the last LLM call llmtel reported (its ids and end time).
#[derive(Debug, Default)]
struct LastCall(Mutex<Option<LlmCall>>);

impl CallSink for LastCall {
    fn on_call(&self, call: &LlmCall) {
        *self.0.lock().unwrap() = Some(call.clone());
    }
}

#[test]
fn a_rating_five_minutes_later_is_an_evaluation_under_the_call_in_phoenix() {
    let peers = Peers::from_env();
    let project = unique_project("quality-feedback");
    let quality = Quality::builder().build();
    let last = Arc::new(LastCall::default());
    let (layer, guard) = llmtel::builder()
        .with_preset(Preset::Phoenix {
            endpoint: peers.phoenix_url.clone(),
            project: project.clone(),
        })
        .with_console(false)
        // The feedback comment is content: it is exported only with capture on.
        .with_content_capture(llmtel::ContentCapture::enabled())
        .with_sink(Arc::new(quality.sink()))
        .with_sink(last.clone())
        .build::<tracing_subscriber::Registry>()
        .expect("llmtel builds");
    assert!(guard.is_exporting());
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    quality.emit_into(&dispatch);

    tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        llmtel::record_response(&span, "chatcmpl-phx-fb", "gpt-4o-mini", &["stop"]);
        llmtel::record_usage(
            &span,
            &Usage {
                input_tokens: 320,
                output_tokens: 45,
                ..Default::default()
            },
        );
    });
    // Exporting, the builder's sinks get each call on the export stage, priced once there.
    guard.flush().expect("the export stage ran");
    let call = last
        .0
        .lock()
        .unwrap()
        .clone()
        .expect("the layer saw the call");
    let (trace, call_span) = (call.trace_id.unwrap(), call.span_id.unwrap());
    let call_ended = call.started_at + call.duration;

    // The user's rating, 5 minutes after the call on the simulated clock.
    let fb = Feedback::rating(CallRef::ResponseId("chatcmpl-phx-fb".into()), 2.0, 1.0, 5.0)
        .unwrap()
        .with_label("unhelpful")
        .with_comment("did not answer my question")
        .at(call_ended + Duration::from_secs(300));
    assert!(quality.feedback(fb));
    assert!(quality.flush(Duration::from_secs(10)));

    // The monitor has it.
    let snap = quality.snapshot();
    assert_eq!(snap.overall.total.ratings, 1);
    assert_eq!(snap.overall.total.avg_rating, Some(0.25));
    assert_eq!(snap.stats.unmatched, 0);

    // Flush and shut down llmtel's export: both spans must reach Phoenix.
    drop(guard);
    let spans = wait_for_spans(
        &peers.phoenix_url,
        &project,
        in_trace(&trace.to_string()),
        2,
        TIMEOUT,
    );
    let names: Vec<&str> = spans.iter().map(span_name).collect();
    let chat = spans
        .iter()
        .find(|s| span_name(s) == "chat gpt-4o-mini")
        .unwrap_or_else(|| panic!("no call span in {names:?}"));
    assert_eq!(span_id(chat), call_span.to_string());
    let fb = spans
        .iter()
        .find(|s| span_name(s) == "evaluation user_feedback")
        .unwrap_or_else(|| panic!("no feedback span in {names:?}"));

    assert_eq!(trace_id(fb), trace.to_string(), "in the call's trace");
    assert_eq!(
        parent_id(fb),
        Some(call_span.to_string().as_str()),
        "under the call's span"
    );
    assert_eq!(
        attr_str(fb, "gen_ai.evaluation.name"),
        Some("user_feedback")
    );
    assert_eq!(attr_f64(fb, "gen_ai.evaluation.score.value"), Some(0.25));
    assert_eq!(
        attr_str(fb, "gen_ai.evaluation.score.label"),
        Some("unhelpful")
    );
    assert_eq!(
        attr_str(fb, "gen_ai.evaluation.explanation"),
        Some("did not answer my question")
    );
    assert_eq!(attr_str(fb, "gen_ai.response.id"), Some("chatcmpl-phx-fb"));

    // The event of the same name, with the rating, inside the evaluation span.
    let events = fb
        .get("events")
        .and_then(Value::as_array)
        .unwrap_or_else(|| {
            panic!("no events on the feedback span: {fb}");
        });
    let event = events
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some("gen_ai.evaluation.result"))
        .unwrap_or_else(|| panic!("no gen_ai.evaluation.result event in {events:?}"));
    let event_attr = |k: &str| event.get("attributes").and_then(|a| a.get(k));
    assert_eq!(
        event_attr("gen_ai.evaluation.score.value").and_then(Value::as_f64),
        Some(0.25),
        "{event}"
    );
    assert_eq!(
        event_attr("gen_ai.evaluation.name").and_then(Value::as_str),
        Some("user_feedback"),
        "{event}"
    );
}
