//! # llmtel
//!
//! OpenTelemetry-native observability for Rust services that call LLMs. Add one layer to
//! your `tracing` stack and every LLM call becomes an OpenTelemetry span with model, tokens,
//! latency, errors and **exact cost**, exported over OTLP to any collector or backend.
//!
//! - [`LlmLayer`] recognises any span with `gen_ai.*` fields (OpenTelemetry GenAI semantic
//!   conventions v1.41.1), whoever created it: [`llm_span!`], `rig`, `genai`, hand-written.
//!   It prices the call with the built-in catalog ([`llmtel_pricing`]) when the span closes
//!   and writes `gen_ai.usage.cost`, `llmtel.cost.*` and `llmtel.pricing.*` on the span.
//! - [`init`] / [`builder`] install the stack with OTLP export (gRPC or HTTP/protobuf, the
//!   standard `OTEL_*` variables, presets for Langfuse, LangSmith and Phoenix) and return a
//!   [`Guard`] that flushes on drop. With no endpoint, nothing goes on the network: a console
//!   line per call and per-trace summaries.
//! - [`TraceSummaries`] answers "what did this request cost" in process, with bounded memory.
//! - [`health`] counts every drop and every problem (unknown models, malformed usage, full
//!   export queue, failed exports).
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! let summaries = llmtel::TraceSummaries::new(100);
//! let subscriber = tracing_subscriber::registry()
//!     .with(llmtel::layer())          // prices LLM spans; add it before the OpenTelemetry layer
//!     .with(summaries.layer());       // per-trace totals
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
//!     llmtel::record_usage(&span, &llmtel::Usage {
//!         input_tokens: 1_000_000,
//!         output_tokens: 1_000_000,
//!         ..Default::default()
//!     });
//! });
//! // gpt-4o: $2.50 per million input tokens, $10.00 per million output tokens.
//! assert_eq!(summaries.recent(1)[0].cost.to_string(), "$12.500000");
//! ```
//!
//! # Feature flags
//! - `otlp-grpc` (default): OTLP over gRPC (tonic).
//! - `otlp-http` (default): OTLP over HTTP/protobuf (reqwest).
//! - `testing`: re-exports the SDK's in-memory exporter as [`testing::InMemorySpanExporter`].
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod call;
mod console;
mod content;
mod enrich;
mod export;
mod fields;
mod health;
mod init;
mod layer;
mod span;
mod summary;

pub use call::{Cost, CostSource, Dimensions, LlmCall, PricingInfo};
pub use console::ConsoleSink;
pub use content::{
    ContentCapture, DEFAULT_MAX_CHARS, Redactor, content_capture, redact_secrets,
    set_content_capture,
};
pub use export::{ExportQueue, GenAiExporter, QueueConfig, QueueError, normalize_span};
pub use health::{Health, health};
pub use init::{Builder, Guard, InitError, Preset, Protocol, builder, init};
pub use layer::{CallSink, GenAiCallsites, LlmLayer};
pub use span::{
    ReportedBy, record_cost, record_error, record_input_messages, record_output_messages,
    record_response, record_usage,
};
pub use summary::{TraceSummaries, TraceSummary, TraceSummaryLayer, current_trace_summary};

pub use llmtel_pricing as pricing;
pub use llmtel_pricing::{Catalog, CostBreakdown, Usage, Usd};
pub use llmtel_semconv as semconv;

/// llmtel's layer with the built-in catalog, filtered to the callsites it reads.
///
/// Add it **before** `tracing_opentelemetry::layer()` so the cost is written on the span
/// before it is exported (see [`LlmLayer`]).
pub fn layer<S>() -> tracing_subscriber::filter::Filtered<LlmLayer, GenAiCallsites, S>
where
    S: tracing_core::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    LlmLayer::new().filtered()
}

/// Test helpers: assert on what was exported.
#[cfg(feature = "testing")]
pub mod testing {
    pub use opentelemetry_sdk::trace::InMemorySpanExporter;
}

#[doc(hidden)]
pub mod __private {
    pub use tracing;
    pub use tracing::field::Empty;
}
