//! Quality monitoring for LLM calls, on top of `llmtel`.
//!
//! LLM failures rarely crash: answers get slower, longer, truncated, less relevant, less
//! grounded, and users rate them lower. This crate watches for that per (model, feature):
//!
//! - **signals** of every call ([`CallSignals`]: latency, `error.type`, truncation by
//!   `length`, `content_filter`, output length, tokens per second, time to first chunk,
//!   cost), taken on the request thread by a [`QualitySink`] (or [`QualityLayer`]) and queued
//!   without blocking to the monitor thread;
//! - **evaluators** ([`eval`], the llmtel-eval crate re-exported: lexical relevance,
//!   fluency, groundedness, refusal, JSON / JSON-schema validity, PII leaks; with features,
//!   an LLM-as-judge and relevance by embeddings against any OpenAI-compatible endpoint)
//!   run on their own thread with a
//!   sampling rate and a timeout each, on content the app passes explicitly
//!   ([`Quality::evaluate`]); failures are counted, never seen by the app;
//! - a **quality score** per call ([`QualityWeights`], from llmtel-score), a weighted
//!   composite that leaves missing signals out;
//! - **user feedback** ([`Feedback`]) attached to a past call by response id, trace id or
//!   span context;
//! - a **monitor** ([`Monitor`]) of per (model, feature) windows with detectors (error rate,
//!   p95 latency, rating, evaluator scores, truncation rate, cost per call) that judge blocks
//!   of enough values at any traffic, against thresholds users state ([`Thresholds`]:
//!   error rate above 20 %, p95 latency at 2× its baseline, rating below 0.6 by default) and
//!   learned baselines; EWMA trends and Page-Hinkley change points; alerts through
//!   `llmtel-alert` (firing and resolved with hysteresis, deduplicated, with a cooldown); a
//!   report of the series it lacks the data to judge; and bounded memory ([`Footprint`]);
//! - evaluation results and feedback emitted as **`gen_ai.evaluation.result`** spans
//!   parented to the evaluated call's span ([`emit_evaluation`]);
//! - **dashboard data** as one serde [`Snapshot`], served as JSON by the optional
//!   [`dashboard`] endpoint (feature `dashboard`);
//! - **offline evaluation** ([`Experiment`]): an app function run over a [`Dataset`] (JSONL),
//!   each example traced, scored by evaluators and against its expected output
//!   ([`ExpectedOutput`]), summarised with cost and latency ([`ExperimentSummary`]).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use llmtel_quality::{CallRef, EvalInput, Feedback, Quality};
//!
//! let quality = Quality::builder().with_builtin_evaluators().build();
//! let subscriber = tracing_subscriber::registry()
//!     .with(llmtel::LlmLayer::new().with_sink(Arc::new(quality.sink())));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
//!     llmtel::record_response(&span, "chatcmpl-1", "gpt-4o-mini", &["stop"]);
//!     llmtel::record_usage(&span, &llmtel::Usage { input_tokens: 50, output_tokens: 20, ..Default::default() });
//! });
//! quality.evaluate(
//!     EvalInput::new("You can reset your password from the login page.")
//!         .with_question("How do I reset my password?")
//!         .with_response_id("chatcmpl-1"),
//! );
//! quality.feedback(Feedback::thumbs(CallRef::ResponseId("chatcmpl-1".into()), true));
//! assert!(quality.flush(Duration::from_secs(5)));
//!
//! let snap = quality.snapshot();
//! assert_eq!(snap.overall.total.requests, 1);
//! assert_eq!(snap.overall.total.avg_rating, Some(1.0));
//! assert_eq!(snap.overall.total.evaluators["relevance"].avg, 1.0);
//! ```
//!
//! # Feature flags
//! - `prometheus`: quality gauges on `llmtel-metrics`' Prometheus endpoint.
//! - `dashboard`: the dashboard endpoint (`dashboard::router`, `dashboard::serve`, `GET
//!   /snapshot` as JSON), served with llmtel-metrics' hardened listener.
//! - `judge`: `eval::LlmJudge`, an LLM-as-judge with a rubric prompt against any
//!   OpenAI-compatible chat-completions endpoint.
//! - `embeddings`: `eval::EmbeddingRelevance`, relevance by the cosine similarity of
//!   embeddings from any OpenAI-compatible embeddings endpoint.
//!
//! The remote evaluators' own model calls are GenAI spans, priced under their own
//! `llmtel.feature` and marked [`EVALUATION_MARKER`] so the pipeline never monitors them.
//!
//! # Time
//! The monitor files every event under its own time (a call's end, a rating's `at`), never
//! the wall clock at processing, so tests drive it with a simulated clock. A call older than
//! the open window is counted in the open window; a rating counts in the window of the call
//! it rates, if it arrives within [`MonitorConfig::feedback_grace`] (later ones are counted
//! in [`MonitorStats::late_feedback`] and left out of detection).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "dashboard")]
pub mod dashboard;
mod detect;
mod emit;
/// The evaluators live in llmtel-eval; re-exported here as `eval` (and their items below).
pub use llmtel_eval as eval;
mod experiment;
mod feedback;
#[cfg(feature = "prometheus")]
mod metrics;
mod monitor;
mod pipeline;
mod signals;
mod thresholds;

pub use detect::{
    ChangePoint, DetectorConfig, DetectorKind, DetectorState, Direction, Trend, TrendDirection,
    TrendTracker,
};
pub use emit::{EvaluationRecord, TARGET, emit_evaluation};
#[cfg(feature = "embeddings")]
pub use eval::EmbeddingRelevance;
#[cfg(feature = "judge")]
pub use eval::LlmJudge;
pub use eval::{
    EVALUATION_MARKER, EvalError, EvalFuture, EvalInput, Evaluation, Evaluator, Fluency,
    Groundedness, JsonValidity, LexicalRelevance, PiiKind, PiiLeak, Refusal, SyncAdapter,
    SyncEvaluator, TryEvalFuture, find_pii,
};
pub use experiment::{
    Dataset, DatasetError, EvaluatorSummary, Example, ExampleResult, ExpectedOutput, Experiment,
    ExperimentSink, ExperimentSummary, ReferenceEvaluator, Score,
};
pub use feedback::{CallRef, Feedback, FeedbackError};
/// The score and the sketch live in llmtel-score (llmtel-report computes the same score from
/// the call log); re-exported unchanged.
pub use llmtel_score::{
    CONTENT_FILTER_REASONS, DdSketch, MAX_EVALUATIONS_PER_CALL, QualityInputs, QualityWeights,
    Quantiles, TRUNCATION_REASONS,
};
#[cfg(feature = "prometheus")]
pub use metrics::COMPOSITE_EVALUATION;
pub use monitor::{
    EvaluatorAverage, Footprint, InsufficientData, MAX_CLOCK_JUMP, MAX_PENDING_ALERTS, Monitor,
    MonitorConfig, MonitorStats, OTHER, SeriesSnapshot, Snapshot, UNKNOWN, WindowSummary,
};
pub use pipeline::{Quality, QualityBuilder, QualityLayer, QualitySink, QualityStats};
pub use signals::CallSignals;
pub use thresholds::{SeriesThresholds, ThresholdError, Thresholds, ThresholdsConfig};
