//! Emitting `gen_ai.evaluation.result` through `tracing` (exported by tracing-opentelemetry).

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use serde::Serialize;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Target of the spans and events this crate emits (filter on it to route or silence them).
pub const TARGET: &str = llmtel_semconv::llmtel::QUALITY_TARGET;

/// One `gen_ai.evaluation.result`: an evaluator's result or a user's feedback on a call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvaluationRecord {
    /// `gen_ai.evaluation.name`.
    pub name: String,
    /// `gen_ai.evaluation.score.value`.
    pub score: Option<f64>,
    /// `gen_ai.evaluation.score.label`.
    pub label: Option<String>,
    /// `gen_ai.evaluation.explanation`.
    pub explanation: Option<String>,
    /// `gen_ai.response.id` of the evaluated call.
    pub response_id: Option<String>,
    /// Trace id of the evaluated call.
    #[serde(serialize_with = "ser_trace")]
    pub trace_id: Option<TraceId>,
    /// Span id of the evaluated call.
    #[serde(serialize_with = "ser_span")]
    pub span_id: Option<SpanId>,
    /// `error.type`, when the evaluation itself failed (`timeout`, `panic`).
    pub error_type: Option<String>,
}

fn ser_trace<S: serde::Serializer>(v: &Option<TraceId>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(t) => s.serialize_str(&t.to_string()),
        None => s.serialize_none(),
    }
}

fn ser_span<S: serde::Serializer>(v: &Option<SpanId>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(t) => s.serialize_str(&t.to_string()),
        None => s.serialize_none(),
    }
}

/// Emits `rec` in the current dispatcher as a span named `gen_ai.evaluation.result`
/// (`otel.name` = `evaluation <name>`), **parented to the evaluated span** when its trace and
/// span ids are known, carrying the `gen_ai.evaluation.*` attributes, with one event of the
/// same name and attributes inside it.
///
/// Why a span and not only an event: the evaluated span has ended and been exported long
/// before an evaluation or a rating arrives, so an event cannot be added to it; a child span
/// in the same trace is what OTLP backends (Phoenix, Jaeger, Tempo) show under the call.
pub fn emit_evaluation(rec: &EvaluationRecord) {
    let span = tracing::info_span!(
        target: TARGET,
        "gen_ai.evaluation.result",
        "otel.name" = %format_args!("evaluation {}", rec.name),
        "gen_ai.evaluation.name" = %rec.name,
        "gen_ai.evaluation.score.value" = tracing::field::Empty,
        "gen_ai.evaluation.score.label" = tracing::field::Empty,
        "gen_ai.evaluation.explanation" = tracing::field::Empty,
        "gen_ai.response.id" = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
    );
    if let (Some(t), Some(s)) = (rec.trace_id, rec.span_id) {
        let sc = SpanContext::new(t, s, TraceFlags::SAMPLED, true, TraceState::default());
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
    }
    if let Some(v) = rec.score {
        span.record("gen_ai.evaluation.score.value", v);
    }
    if let Some(v) = &rec.label {
        span.record("gen_ai.evaluation.score.label", v.as_str());
    }
    if let Some(v) = &rec.explanation {
        span.record("gen_ai.evaluation.explanation", v.as_str());
    }
    if let Some(v) = &rec.response_id {
        span.record("gen_ai.response.id", v.as_str());
    }
    if let Some(v) = &rec.error_type {
        span.record("error.type", v.as_str());
    }
    span.in_scope(|| {
        tracing::event!(
            name: "gen_ai.evaluation.result",
            target: TARGET,
            tracing::Level::INFO,
            "gen_ai.evaluation.name" = %rec.name,
            "gen_ai.evaluation.score.value" = rec.score,
            "gen_ai.evaluation.score.label" = rec.label.as_deref(),
            "gen_ai.evaluation.explanation" = rec.explanation.as_deref(),
            "gen_ai.evaluation.result"
        );
    });
}
