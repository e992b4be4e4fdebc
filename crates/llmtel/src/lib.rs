//! # llmtel
//!
//! OpenTelemetry-native observability for Rust services that call LLMs. Add one layer to
//! your `tracing` stack and every LLM call becomes an OpenTelemetry span with model, tokens,
//! latency, errors and **exact cost**, exported over OTLP to any collector or backend.
//!
//! - [`GenAiExporter`], llmtel's exporter stage, recognises any span with `gen_ai.*`
//!   attributes (OpenTelemetry GenAI semantic conventions v1.41.1), whoever created it:
//!   [`llm_span!`], `rig`, `genai`, hand-written. On the export thread, never on the request
//!   path, it prices the call with the built-in catalog ([`llmtel_pricing`]), writes
//!   `gen_ai.usage.cost`, `llmtel.cost.*` and `llmtel.pricing.*` on the span, exports token
//!   counts as integers and enforces the content and secrets policy.
//! - [`LlmLayer`] gives the process its LLM calls while the request runs ([`LlmCall`], with
//!   the same exact cost) for sinks and llmtel's other layers (trace summaries, budgets,
//!   quality), stacked in any order: [`close_call`] and [`set_span_attributes`] make the
//!   order irrelevant.
//! - [`init`] / [`builder`] install the stack with OTLP export (gRPC or HTTP/protobuf, the
//!   standard `OTEL_*` variables, presets for Langfuse, LangSmith and Phoenix) and return a
//!   [`Guard`] that flushes on drop. Their sinks (the GenAI metrics, [`Builder::with_sink`])
//!   get each exported call from the export stage, priced once there, off the request path.
//!   With no endpoint, nothing goes on the network: a console line per call and per-trace
//!   summaries.
//! - [`TraceSummaries`] answers "what did this request cost" in process, with bounded memory.
//! - [`health`] counts every drop and every problem (unknown models, malformed usage, full
//!   export queue, failed exports).
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! let summaries = llmtel::TraceSummaries::new(100);
//! let subscriber = tracing_subscriber::registry()
//!     .with(llmtel::layer())          // LLM calls in process, priced
//!     .with(summaries.layer());       // per-trace totals (reads what the layer above built)
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
//! - `tokenizer` (default): real tokenizers (tiktoken) for [`estimate`]; without it, the
//!   characters-per-token approximation.
//! - `metrics` (default): the OpenTelemetry GenAI client metrics ([`metrics::OtelMetricsSink`]),
//!   exported over OTLP by [`init`] next to the traces.
//! - `prices-url` (default): fetch `LLMTEL_PRICES_URL` over https at start-up
//!   (`Builder::with_price_sources`); without it a URL is reported as a failed source.
//! - `testing`: re-exports the SDK's in-memory exporter as `testing::InMemorySpanExporter`.
//! - `tls`: kept for compatibility (HTTPS is part of `otlp-http` and `otlp-grpc`).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bound;
mod call;
mod console;
mod content;
mod enrich;
pub mod estimate;
mod export;
mod fields;
mod headers;
mod health;
mod hold;
mod init;
mod late;
mod layer;
mod maybe;
#[cfg(feature = "metrics")]
pub mod metrics;
mod pending;
pub mod redact;
mod span;
mod summary;
pub mod tls;
pub mod worker;

pub use bound::{MAX_VALUE_BYTES, cap_string, cap_value};
pub use call::{Cost, CostSource, Dimensions, LlmCall};
pub use console::ConsoleSink;
pub use content::{
    ContentCapture, DEFAULT_MAX_CHARS, Redactor, content_capture, redact_secrets,
    set_content_capture,
};
pub use enrich::MAX_TOKENS_PER_CALL;
pub use export::{
    DEFAULT_MAX_EXPORT_BATCH_BYTES, ExportQueue, GenAiExporter, QueueConfig, QueueError,
    normalize_span, police_attributes,
};
pub use fields::{MAX_FINISH_REASONS, provider_from_system};
pub use health::{
    Health, count_body_bytes_skipped, count_body_decoder_panic, count_kept_over_budget, health,
};
pub use init::{Builder, Guard, InitError, Preset, Protocol, builder, init};
pub use late::{MAX_ENTRIES as MAX_LATE_SPANS, WAIT as LATE_ATTRIBUTES_WAIT};
pub use layer::{
    CallSink, LlmLayer, close_call, current_dimensions, expect_late_attributes, set_span_attributes,
};
pub use pending::{finish_pending_spans, register_span_finisher};
pub use redact::{REDACTED, redact};
pub use span::{
    MAX_STATUS_BYTES, ReportedBy, record_cost, record_error, record_error_status,
    record_input_messages, record_output_messages, record_response, record_service_tier,
    record_usage, record_usage_details,
};
pub use summary::{TraceSummaries, TraceSummary, TraceSummaryLayer, current_trace_summary};

pub use llmtel_pricing as pricing;
pub use llmtel_pricing::{Catalog, CostBreakdown, Usage, Usd};
pub use llmtel_semconv as semconv;

/// llmtel's in-process layer with the built-in catalog: LLM calls, priced, for the layers
/// and sinks of the application (see [`LlmLayer`]).
pub fn layer() -> LlmLayer {
    LlmLayer::new()
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
