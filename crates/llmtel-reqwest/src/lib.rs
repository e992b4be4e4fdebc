//! # llmtel-reqwest
//!
//! Zero-code instrumentation of LLM HTTP APIs: add [`LlmMiddleware`] to a
//! [`reqwest_middleware`] client once, and every call to OpenAI (chat completions,
//! responses, completions, embeddings), Azure OpenAI, Anthropic Messages, Google Gemini
//! (`generateContent`, `streamGenerateContent`) or an OpenAI-compatible server (Ollama, vLLM,
//! Groq, Together, OpenRouter, DeepSeek, Mistral) becomes an llmtel GenAI span
//! ([`llmtel::llm_span!`]) with:
//!
//! - the request parameters (`gen_ai.request.model`, `temperature`, `max_tokens`, `top_p`,
//!   `top_k`, `seed`, `stop_sequences`, `stream`, …) and `server.address` / `server.port`;
//! - the response id, model and finish reasons;
//! - usage in llmtel's convention (input inclusive of cache reads and writes, output inclusive
//!   of reasoning) from each provider's shape, so llmtel's exporter prices it exactly;
//!   estimated from the text ([`llmtel::estimate`], marked `llmtel.cost.estimated`) when the
//!   response has none;
//! - for streams (SSE), `gen_ai.response.time_to_first_chunk` (to the first event: a
//!   keep-alive comment such as OpenRouter's `: OPENROUTER PROCESSING` is not a chunk),
//!   `llmtel.response.time_per_output_chunk` and `llmtel.response.output_chunks`; the body
//!   passes through frame by frame, never buffered;
//! - provider errors as `error.type` ([`errors`]) with the span's error status, a stream the
//!   caller drops early as `error.type = "cancelled"`, a body that could not be parsed as
//!   `llmtel.parse_error` (the caller still gets the provider's bytes unchanged).
//!
//! Request headers are never recorded; prompts and completions only under llmtel's content
//! capture policy ([`llmtel::ContentCapture`]), and so is a provider's error message (it can
//! quote the prompt): with capture off the status says `HTTP <status>: <error.type>`. A
//! transport error is recorded without the URL (which can carry `?key=`), and every message
//! goes through [`llmtel::redact()`]; a parse error gives the position and kind, never the body.
//! Requests to other hosts and paths pass through untouched.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let _guard = llmtel::init()?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(llmtel_reqwest::LlmMiddleware::new().with_stream_usage(true))
//!     .build();
//! let answer = client
//!     .post("https://api.openai.com/v1/chat/completions")
//!     .bearer_auth(std::env::var("OPENAI_API_KEY")?)
//!     .header("content-type", "application/json")
//!     .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}"#)
//!     .send()
//!     .await?
//!     .text()
//!     .await?; // the span closes when the body has been read: usage and cost are on it
//! # Ok(()) }
//! ```
//!
//! The span ends when the response body ends (read to its end, failed, or dropped), so a
//! streamed call's span covers the whole stream. The body's bytes are decoded, and the span
//! ended, on llmtel-reqwest's reader thread, so the caller's stream runs at the speed of
//! plain reqwest; the caller's thread only notes when each frame arrived ([`reader_stats`]
//! counts what the reader did; `llmtel::finish_pending_spans`, which llmtel's guard calls,
//! waits for it). Memory is bounded over all calls: at most [`MAX_QUEUED_BYTES`] wait for
//! the reader (past it bytes are skipped, counted in `llmtel::health().body_bytes_skipped`
//! and noted on the span), and at most [`MAX_KEPT_BYTES`] are kept until calls end (JSON
//! bodies read whole, request copies for estimates and content capture; past it a body is
//! read from its tail and a request is not kept, counted in
//! `llmtel::health().kept_over_budget` and noted on the span). A budget can refuse calls before they are sent with a [`PreflightHook`].
//!
//! For SDKs that take a plain `reqwest::Client` (async-openai), [`record`] records a
//! response or observes a stream on a span you open.
//!
//! # Feature flags
//! None yet.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod budget;
pub mod decode;
pub mod errors;
mod media;
mod middleware;
pub mod preflight;
mod reader;
pub mod record;
pub mod request;
mod route;
pub mod sse;

pub use budget::MAX_KEPT_BYTES;
pub use middleware::{BaseUrlError, LlmMiddleware};
pub use preflight::{PlannedCall, PreflightError, PreflightHook, SettledCall};
pub use reader::{MAX_QUEUED_BYTES, ReaderStats, reader_stats};
pub use route::{Api, Flavor, Route};
