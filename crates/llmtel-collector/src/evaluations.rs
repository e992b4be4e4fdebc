//! Evaluation results and user feedback read from collected spans, for the quality monitor:
//! what another service's evaluators and users said about its calls reaches the same
//! detectors (and `llm_quality_score` / `llm_quality_rating_avg`) as the calls themselves.
//!
//! Two shapes are read:
//! - a span carrying `gen_ai.evaluation.name` (what llmtel-quality emits, as a child of the
//!   evaluated call's span, because that span has ended by the time a result arrives): the
//!   result is about its **parent** span (or `gen_ai.response.id`);
//! - a `gen_ai.evaluation.result` event on any other span (the semantic conventions' event,
//!   parented to the evaluated span): the result is about the span holding it.
//!
//! A result named `user_feedback` is a user's rating (`0..=1`) or label and goes to the
//! monitor as feedback; any other name is an evaluator's score. Results without a score (and,
//! for feedback, without a label) carry nothing the monitor can average and are skipped.

use std::time::SystemTime;

use llmtel_quality::{CallRef, EvalInput, Evaluation, Feedback, Quality};
use llmtel_semconv::gen_ai;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

/// The event name of the semantic conventions (and llmtel-quality's emitter).
const EVENT: &str = "gen_ai.evaluation.result";
/// The name under which llmtel-quality emits a user's feedback.
const FEEDBACK: &str = "user_feedback";

/// One result as read from attributes.
struct Result<'a> {
    name: &'a str,
    score: Option<f64>,
    label: Option<&'a str>,
    explanation: Option<&'a str>,
    response_id: Option<&'a str>,
}

fn str_of<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    kvs.iter()
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .and_then(|kv| match &kv.value {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        })
}

fn f64_of(kvs: &[KeyValue], key: &str) -> Option<f64> {
    let v = kvs.iter().rev().find(|kv| kv.key.as_str() == key)?;
    let x = match &v.value {
        Value::F64(x) => *x,
        Value::I64(x) => *x as f64,
        Value::String(s) => s.as_str().trim().parse().ok()?,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

fn read(kvs: &[KeyValue]) -> Option<Result<'_>> {
    Some(Result {
        name: str_of(kvs, gen_ai::EVALUATION_NAME).filter(|n| !n.is_empty())?,
        score: f64_of(kvs, gen_ai::EVALUATION_SCORE_VALUE),
        label: str_of(kvs, gen_ai::EVALUATION_SCORE_LABEL).filter(|l| !l.is_empty()),
        explanation: str_of(kvs, gen_ai::EVALUATION_EXPLANATION),
        response_id: str_of(kvs, gen_ai::RESPONSE_ID).filter(|r| !r.is_empty()),
    })
}

/// Hands the evaluation results `span` carries to `quality`; returns how many were queued.
pub(crate) fn observe(quality: &Quality, span: &SpanData) -> u64 {
    let trace = span.span_context.trace_id();
    if let Some(r) = read(&span.attributes) {
        // A result span: about its parent (the evaluated call). Its own inner event repeats
        // the same result and is not read again.
        let parent = (span.parent_span_id != SpanId::INVALID).then_some(span.parent_span_id);
        return u64::from(record(quality, &r, trace, parent, span.end_time));
    }
    let own_response = str_of(&span.attributes, gen_ai::RESPONSE_ID);
    let mut n = 0;
    for ev in span.events.iter().filter(|e| e.name == EVENT) {
        if let Some(mut r) = read(&ev.attributes) {
            r.response_id = r.response_id.or(own_response);
            let own = Some(span.span_context.span_id());
            n += u64::from(record(quality, &r, trace, own, ev.timestamp));
        }
    }
    n
}

fn record(
    quality: &Quality,
    r: &Result<'_>,
    trace: TraceId,
    span: Option<SpanId>,
    at: SystemTime,
) -> bool {
    if r.name == FEEDBACK {
        let target = match (span, r.response_id) {
            (Some(s), _) => CallRef::Span(trace, s),
            (None, Some(id)) => CallRef::ResponseId(id.to_owned()),
            (None, None) => CallRef::TraceId(trace),
        };
        let fb = match (r.score, r.label) {
            (Some(score), label) => match Feedback::rating(target, score.clamp(0.0, 1.0), 0.0, 1.0)
            {
                Ok(fb) => match label {
                    Some(l) => fb.with_label(l),
                    None => fb,
                },
                Err(_) => return false,
            },
            (None, Some(label)) => Feedback::label(target, label),
            (None, None) => return false,
        };
        let fb = match r.explanation {
            Some(c) if !c.is_empty() => fb.with_comment(c),
            _ => fb,
        };
        return quality.feedback(fb.at(at));
    }
    let Some(score) = r.score else {
        return false;
    };
    let on = EvalInput {
        trace_id: Some(trace),
        span_id: span,
        response_id: r.response_id.map(str::to_owned),
        at: Some(at),
        ..EvalInput::new("")
    };
    let result = Evaluation::new(
        r.name,
        score,
        r.label.unwrap_or_default(),
        r.explanation.unwrap_or_default(),
    );
    quality.record_evaluation(on, result)
}
