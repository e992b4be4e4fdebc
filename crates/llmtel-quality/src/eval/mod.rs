//! Evaluators: one trait, six built-in heuristics, each giving a score in `0..=1`, a label and
//! an explanation.
//!
//! Evaluators never run on the request thread: [`crate::Quality::evaluate`] queues the input
//! and the evaluation thread runs them, each with its own sampling rate and timeout.

mod fluency;
mod groundedness;
mod json;
mod pii;
mod refusal;
mod relevance;
pub(crate) mod text;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use opentelemetry::trace::{SpanId, TraceId};
use serde::Serialize;

pub use fluency::Fluency;
pub use groundedness::Groundedness;
pub use json::{JsonValidity, SCHEMA_KEYWORDS};
pub use pii::{PiiKind, PiiLeak, find_pii};
pub use refusal::{REFUSAL_PHRASES, Refusal};
pub use relevance::LexicalRelevance;

/// What an evaluator looks at: the content of one call, passed explicitly by the app (llmtel
/// captures no content by itself), and the call it belongs to.
///
/// ```
/// let input = llmtel_quality::EvalInput::new("Paris is the capital of France.")
///     .with_question("What is the capital of France?")
///     .with_response_id("chatcmpl-123");
/// assert_eq!(input.question.as_deref(), Some("What is the capital of France?"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalInput {
    /// The user's question (or the last user message).
    pub question: Option<String>,
    /// The model's answer.
    pub answer: String,
    /// Retrieved documents or other context the answer should be grounded in.
    pub context: Vec<String>,
    /// A JSON schema the answer must satisfy (for [`JsonValidity`]).
    pub schema: Option<serde_json::Value>,
    /// `gen_ai.response.id` of the evaluated call.
    pub response_id: Option<String>,
    /// Trace id of the evaluated call.
    pub trace_id: Option<TraceId>,
    /// Span id of the evaluated call.
    pub span_id: Option<SpanId>,
    /// Model of the evaluated call, when the call is not known to the monitor by its ids.
    pub model: Option<String>,
    /// Feature of the evaluated call, when the call is not known to the monitor by its ids.
    pub feature: Option<String>,
    /// When the evaluated call ended (default: when the input was built).
    pub at: Option<SystemTime>,
}

impl EvalInput {
    /// An input with this answer.
    pub fn new(answer: impl Into<String>) -> Self {
        EvalInput {
            answer: answer.into(),
            ..Default::default()
        }
    }

    /// Sets the question.
    pub fn with_question(mut self, q: impl Into<String>) -> Self {
        self.question = Some(q.into());
        self
    }

    /// Adds a context document.
    pub fn with_context(mut self, doc: impl Into<String>) -> Self {
        self.context.push(doc.into());
        self
    }

    /// Sets the JSON schema.
    pub fn with_schema(mut self, schema: serde_json::Value) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Identifies the evaluated call by its `gen_ai.response.id`.
    pub fn with_response_id(mut self, id: impl Into<String>) -> Self {
        self.response_id = Some(id.into());
        self
    }

    /// Identifies the evaluated call by its span context.
    pub fn with_span_context(mut self, trace_id: TraceId, span_id: SpanId) -> Self {
        self.trace_id = Some(trace_id);
        self.span_id = Some(span_id);
        self
    }

    /// Identifies the evaluated call by the OpenTelemetry context of a tracing span (needs
    /// `tracing-opentelemetry` in the stack; otherwise nothing is set).
    pub fn with_span(self, span: &tracing::Span) -> Self {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            self.with_span_context(sc.trace_id(), sc.span_id())
        } else {
            self
        }
    }

    /// Sets the model and feature, for calls the monitor does not know by id.
    pub fn with_series(mut self, model: impl Into<String>, feature: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self.feature = Some(feature.into());
        self
    }

    /// Sets when the evaluated call ended.
    pub fn with_time(mut self, at: SystemTime) -> Self {
        self.at = Some(at);
        self
    }
}

/// The result of one evaluator on one input.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// `gen_ai.evaluation.name` (`relevance`, `fluency`, ...).
    pub name: String,
    /// `gen_ai.evaluation.score.value`: `0..=1`, higher is better.
    pub score: f64,
    /// `gen_ai.evaluation.score.label` (low cardinality: `relevant`, `irrelevant`, ...).
    pub label: String,
    /// `gen_ai.evaluation.explanation`.
    pub explanation: String,
}

impl Evaluation {
    /// A result; the score is clamped to `0..=1` (NaN becomes 0).
    pub fn new(
        name: impl Into<String>,
        score: f64,
        label: impl Into<String>,
        explanation: impl Into<String>,
    ) -> Self {
        Evaluation {
            name: name.into(),
            score: if score.is_nan() {
                0.0
            } else {
                score.clamp(0.0, 1.0)
            },
            label: label.into(),
            explanation: explanation.into(),
        }
    }
}

/// The future an [`Evaluator`] returns.
pub type EvalFuture<'a> = Pin<Box<dyn Future<Output = Option<Evaluation>> + Send + 'a>>;

/// An evaluator: looks at one [`EvalInput`] and returns an [`Evaluation`], or `None` when it
/// does not apply (no question for relevance, no context for groundedness, ...).
///
/// The trait is async so that evaluators that call a model or an embeddings endpoint fit it;
/// they run on the evaluation thread's single-threaded Tokio runtime, each under its
/// timeout. Synchronous evaluators (all the built-in ones) return a ready future: the timeout
/// cannot interrupt synchronous code, so they must be bounded (the built-ins are linear in
/// the input, which is cut at [`crate::QualityBuilder::with_max_input_chars`]).
///
/// ```
/// use llmtel_quality::{EvalFuture, EvalInput, Evaluation, Evaluator};
/// #[derive(Debug)]
/// struct Short;
/// impl Evaluator for Short {
///     fn name(&self) -> &str { "short" }
///     fn evaluate<'a>(&'a self, input: &'a EvalInput) -> EvalFuture<'a> {
///         let ok = input.answer.len() < 500;
///         Box::pin(std::future::ready(Some(Evaluation::new(
///             "short", if ok { 1.0 } else { 0.0 }, if ok { "short" } else { "long" }, "",
///         ))))
///     }
/// }
/// ```
pub trait Evaluator: Send + Sync + Debug + 'static {
    /// The evaluation name (`gen_ai.evaluation.name`); also the key of its averages.
    fn name(&self) -> &str;
    /// Evaluates one input.
    fn evaluate<'a>(&'a self, input: &'a EvalInput) -> EvalFuture<'a>;
}

/// A synchronous evaluator; implement this and get [`Evaluator`] for free via [`SyncAdapter`].
pub trait SyncEvaluator: Send + Sync + Debug + 'static {
    /// The evaluation name.
    fn name(&self) -> &str;
    /// Evaluates one input.
    fn score(&self, input: &EvalInput) -> Option<Evaluation>;
}

/// Adapts a [`SyncEvaluator`] to [`Evaluator`].
#[derive(Debug)]
pub struct SyncAdapter<E>(pub E);

impl<E: SyncEvaluator> Evaluator for SyncAdapter<E> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn evaluate<'a>(&'a self, input: &'a EvalInput) -> EvalFuture<'a> {
        Box::pin(std::future::ready(self.0.score(input)))
    }
}

/// The six built-in evaluators with their default settings, ready for
/// [`crate::QualityBuilder::with_evaluator`].
pub fn builtin() -> Vec<std::sync::Arc<dyn Evaluator>> {
    vec![
        std::sync::Arc::new(SyncAdapter(LexicalRelevance::default())),
        std::sync::Arc::new(SyncAdapter(Fluency::default())),
        std::sync::Arc::new(SyncAdapter(Groundedness::default())),
        std::sync::Arc::new(SyncAdapter(Refusal)),
        std::sync::Arc::new(SyncAdapter(JsonValidity::default())),
        std::sync::Arc::new(SyncAdapter(PiiLeak)),
    ]
}
