//! Evaluators: one trait, six built-in heuristics, each giving a score in `0..=1`, a label and
//! an explanation; with the `judge` and `embeddings` features, an LLM-as-judge
//! (`LlmJudge`) and relevance by embeddings (`EmbeddingRelevance`) against any
//! OpenAI-compatible endpoint.
//!
//! Evaluators never run on the request thread: `llmtel_quality::Quality::evaluate` queues the input
//! and the evaluation thread runs them, each with its own sampling rate and timeout.

#[cfg(feature = "embeddings")]
mod embeddings;
mod fluency;
mod groundedness;
mod json;
#[cfg(feature = "judge")]
mod judge;
mod pii;
mod refusal;
mod relevance;
#[cfg(any(feature = "judge", feature = "embeddings"))]
mod remote;
pub(crate) mod text;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use opentelemetry::trace::{SpanId, TraceId};
use serde::Serialize;

#[cfg(feature = "embeddings")]
pub use embeddings::{
    DEFAULT_EMBEDDING_THRESHOLD, EMBEDDINGS_FEATURE, EmbeddingRelevance, EmbeddingRelevanceBuilder,
};
pub use fluency::Fluency;
pub use groundedness::Groundedness;
pub use json::{JsonValidity, SCHEMA_KEYWORDS};
#[cfg(feature = "judge")]
pub use judge::{
    DEFAULT_JUDGE_THRESHOLD, DEFAULT_RUBRIC, JUDGE_FEATURE, JudgeScale, LlmJudge, LlmJudgeBuilder,
    Verdict, parse_verdict,
};
pub use pii::{PiiKind, PiiLeak, ROLE_MAILBOXES, find_pii};
pub use refusal::{REFUSAL_PHRASES, Refusal};
pub use relevance::LexicalRelevance;
#[cfg(any(feature = "judge", feature = "embeddings"))]
pub use remote::EndpointConfigError;
pub use text::{cut, words};

/// The attribute that marks a model call made by an evaluator (`LlmJudge`,
/// `EmbeddingRelevance`), value `"true"`: such calls are priced like any other (under
/// their own `llmtel.feature`) but never monitored or evaluated as app calls. A string, so
/// that it reaches [`llmtel::LlmCall`] as a custom dimension.
pub const EVALUATION_MARKER: &str = llmtel_semconv::llmtel::EVALUATION;

/// What an evaluator looks at: the content of one call, passed explicitly by the app (llmtel
/// captures no content by itself), and the call it belongs to.
///
/// ```
/// let input = llmtel_eval::EvalInput::new("Paris is the capital of France.")
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
    /// When the evaluated call ended. `None` (the default): the quality monitor files the
    /// result at its current time, which the result does not move.
    pub at: Option<SystemTime>,
    /// The answer was cut to an input limit (the quality pipeline's
    /// `with_max_input_chars`): evaluators that judge its end (JSON validity, truncation) do
    /// not judge what the cut removed.
    pub answer_cut: bool,
    /// A context document was cut to an input limit: a claim the visible context does not
    /// support may be supported past the cut.
    pub context_cut: bool,
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

/// The future of [`Evaluator::try_evaluate`]: a result, `None` when the evaluator does not
/// apply, or why it failed.
pub type TryEvalFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Evaluation>, EvalError>> + Send + 'a>>;

/// Why an evaluator could not give a result (the remote evaluators' endpoint failed or
/// answered something unusable). The pipeline counts these in
/// `llmtel_quality::QualityStats::evals_failed`; the app is never affected.
///
/// Messages name the endpoint (without credentials) and say what to do; they never carry the
/// API key or the evaluated content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The endpoint could not be reached (connection refused, DNS, TLS).
    #[error(
        "evaluator endpoint {endpoint} is unreachable ({detail}); check the base URL and that the server is up"
    )]
    Unreachable {
        /// The endpoint, without credentials.
        endpoint: String,
        /// What the HTTP client said.
        detail: String,
    },
    /// The endpoint did not answer in time.
    #[error(
        "evaluator endpoint {endpoint} did not answer within {timeout_ms} ms; raise the HTTP timeout (with_http_timeout) or the evaluator's timeout"
    )]
    Timeout {
        /// The endpoint, without credentials.
        endpoint: String,
        /// The HTTP timeout that expired, in milliseconds.
        timeout_ms: u64,
    },
    /// The endpoint refused the credentials (HTTP 401 or 403).
    #[error(
        "evaluator endpoint {endpoint} refused the request with HTTP {status}; set a valid API key with with_api_key"
    )]
    Unauthorized {
        /// The endpoint, without credentials.
        endpoint: String,
        /// 401 or 403.
        status: u16,
    },
    /// The endpoint is rate limiting (HTTP 429).
    #[error(
        "evaluator endpoint {endpoint} is rate limiting (HTTP 429); lower the evaluator's sampling rate or raise the account's limits"
    )]
    RateLimited {
        /// The endpoint, without credentials.
        endpoint: String,
    },
    /// Any other HTTP error status (5xx, 400, 404, ...).
    #[error("evaluator endpoint {endpoint} failed with HTTP {status}: {detail}")]
    Http {
        /// The endpoint, without credentials.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The error message of the body (OpenAI error shape), cut to 200 characters.
        detail: String,
    },
    /// The body was not the expected response (not JSON, or fields missing).
    #[error(
        "evaluator endpoint {endpoint} answered with an unexpected body ({detail}); check that it is an OpenAI-compatible {expected} endpoint"
    )]
    MalformedResponse {
        /// The endpoint, without credentials.
        endpoint: String,
        /// `chat completions` or `embeddings`.
        expected: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The judge's reply holds no usable score.
    #[error(
        "the judge's reply ({chars} characters) holds no usable score: {reason}; make the rubric ask for a JSON object with a numeric \"score\" (or use with_json_response_format)"
    )]
    UnparseableVerdict {
        /// Length of the reply.
        chars: usize,
        /// What was wrong.
        reason: String,
    },
    /// A custom evaluator's failure.
    #[error("{0}")]
    Other(String),
}

impl EvalError {
    /// A low-cardinality class for `error.type`: `unreachable`, `timeout`, `unauthorized`,
    /// `rate_limit`, `server_error` (5xx), `http_error` (other statuses),
    /// `malformed_response`, `unparseable_verdict`, `other`.
    pub fn error_type(&self) -> &'static str {
        match self {
            EvalError::Unreachable { .. } => "unreachable",
            EvalError::Timeout { .. } => "timeout",
            EvalError::Unauthorized { .. } => "unauthorized",
            EvalError::RateLimited { .. } => "rate_limit",
            EvalError::Http { status, .. } if *status >= 500 => "server_error",
            EvalError::Http { .. } => "http_error",
            EvalError::MalformedResponse { .. } => "malformed_response",
            EvalError::UnparseableVerdict { .. } => "unparseable_verdict",
            EvalError::Other(_) => "other",
        }
    }
}

/// An evaluator: looks at one [`EvalInput`] and returns an [`Evaluation`], or `None` when it
/// does not apply (no question for relevance, no context for groundedness, ...).
///
/// The trait is async so that evaluators that call a model or an embeddings endpoint fit it;
/// they run on the evaluation thread's single-threaded Tokio runtime, each under its
/// timeout. Synchronous evaluators (all the built-in ones) return a ready future: the timeout
/// cannot interrupt synchronous code, so they must be bounded (the built-ins are linear in
/// the input, which is cut at `llmtel_quality::QualityBuilder::with_max_input_chars`).
///
/// ```
/// use llmtel_eval::{EvalFuture, EvalInput, Evaluation, Evaluator};
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
    /// Evaluates one input and says why when it fails; the pipeline calls this one and counts
    /// failures (`llmtel_quality::QualityStats::evals_failed`). The default never fails: it is
    /// [`Evaluator::evaluate`]. Evaluators that can fail (remote ones) implement it and make
    /// `evaluate` its `Ok` value.
    fn try_evaluate<'a>(&'a self, input: &'a EvalInput) -> TryEvalFuture<'a> {
        let fut = self.evaluate(input);
        Box::pin(async move { Ok(fut.await) })
    }
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

/// The six built-in (local, heuristic) evaluators with their default settings, ready for
/// `llmtel_quality::QualityBuilder::with_evaluator`.
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
