//! Feedback sent 5 minutes (simulated clock) after a call, by `gen_ai.response.id`, reaches
//! the monitor and is emitted as a `gen_ai.evaluation.result` span parented to the call's
//! span, exported by tracing-opentelemetry; evaluator results are emitted the same way.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use llmtel::LlmLayer;
use llmtel_quality::{CallRef, EvalInput, Feedback, Quality};
use opentelemetry::Value;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::prelude::*;

fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[test]
fn feedback_five_minutes_later_is_an_evaluation_span_on_the_call() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let quality = Quality::builder().with_builtin_evaluators().build();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            // llmtel's layer first (inner layers run first): it reads the span's OpenTelemetry
            // ids at close, before tracing-opentelemetry ends the span.
            .with(LlmLayer::new().with_sink(Arc::new(quality.sink())))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
    );
    quality.emit_into(&dispatch);

    tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        llmtel::record_response(&span, "chatcmpl-fb-1", "gpt-4o-mini", &["stop"]);
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 100,
                output_tokens: 40,
                ..Default::default()
            },
        );
    });
    assert!(quality.flush(Duration::from_secs(10)));
    let call = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "chat gpt-4o-mini")
        .unwrap();
    let call_ended = call.end_time;

    // An evaluation by response id, then the user's rating 5 minutes after the call.
    quality.evaluate(
        EvalInput::new("Contact me at jane.doe@gmail.com")
            .with_question("How do I reach support?")
            .with_response_id("chatcmpl-fb-1"),
    );
    let fb = Feedback::rating(CallRef::ResponseId("chatcmpl-fb-1".into()), 2.0, 1.0, 5.0)
        .unwrap()
        .with_label("unhelpful")
        .with_comment("did not answer my question")
        .at(call_ended + Duration::from_secs(300));
    assert!(quality.feedback(fb));
    assert!(quality.flush(Duration::from_secs(10)));

    // The monitor has it.
    let snap = quality.snapshot();
    let series = snap
        .series
        .iter()
        .find(|s| s.model == "gpt-4o-mini")
        .unwrap();
    assert_eq!(series.total.ratings, 1);
    assert_eq!(series.total.avg_rating, Some(0.25));
    assert_eq!(series.total.evaluators["pii"].avg, 0.0);
    assert_eq!(snap.stats.unmatched, 0);
    let q = quality
        .with_monitor(|m| m.call_quality(&CallRef::ResponseId("chatcmpl-fb-1".into())))
        .unwrap();
    assert!(
        q < 0.8,
        "rating 0.25 and a PII leak pull the call's score down: {q}"
    );

    // The evaluation spans, parented to the call's span.
    let spans = exporter.get_finished_spans().unwrap();
    let fb_span = spans
        .iter()
        .find(|s| s.name == "evaluation user_feedback")
        .unwrap_or_else(|| panic!("{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()));
    assert_eq!(
        fb_span.span_context.trace_id(),
        call.span_context.trace_id()
    );
    assert_eq!(fb_span.parent_span_id, call.span_context.span_id());
    assert_eq!(
        attr(fb_span, "gen_ai.evaluation.name").map(|v| v.as_str().into_owned()),
        Some("user_feedback".into())
    );
    assert_eq!(
        attr(fb_span, "gen_ai.evaluation.score.value"),
        Some(&Value::F64(0.25))
    );
    assert_eq!(
        attr(fb_span, "gen_ai.evaluation.score.label").map(|v| v.as_str().into_owned()),
        Some("unhelpful".into())
    );
    assert_eq!(
        attr(fb_span, "gen_ai.evaluation.explanation").map(|v| v.as_str().into_owned()),
        Some("did not answer my question".into())
    );
    assert_eq!(
        attr(fb_span, "gen_ai.response.id").map(|v| v.as_str().into_owned()),
        Some("chatcmpl-fb-1".into())
    );
    assert!(
        fb_span
            .events
            .iter()
            .any(|e| e.name == "gen_ai.evaluation.result"),
        "{:?}",
        fb_span.events
    );
    let pii = spans.iter().find(|s| s.name == "evaluation pii").unwrap();
    assert_eq!(pii.parent_span_id, call.span_context.span_id());
    assert_eq!(
        attr(pii, "gen_ai.evaluation.score.label").map(|v| v.as_str().into_owned()),
        Some("pii".into())
    );
    // The evaluation spans are not LLM calls: the monitor still counts one call.
    assert_eq!(quality.snapshot().overall.total.requests, 1);
}
