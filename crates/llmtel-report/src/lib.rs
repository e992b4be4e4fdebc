//! Reports for llmtel: what did a period of LLM calls cost, how good were they, what fired.
//!
//! - [`CallLog`]: a durable record of the calls, as JSON lines ([`Record`]): one line per
//!   LLM call (time, trace and span ids, response id, provider, model, user, tenant,
//!   feature, tokens, exact cost, latency, time to first chunk, `error.type`, finish
//!   reasons; prompt and response only when the app captured them), per evaluation result
//!   and user rating (`llmtel-quality`'s `gen_ai.evaluation.result` spans, through
//!   [`CallLog::layer`]) and per alert ([`CallLog`] is an [`llmtel_alert::AlertSink`]).
//!   The request thread only queues (bounded, drops counted); a writer thread appends,
//!   rotating the file at a maximum size.
//! - [`Report`]: a [`Period`] of that log, aggregated: totals; cost by model, user and
//!   feature (exact sums); per-hour or per-day series of cost, requests, error rate,
//!   latency p50/p95 and quality score; evaluator averages; alerts fired and resolved; the
//!   worst calls by quality score (with their content when captured). Malformed lines are
//!   skipped and counted, the first ones listed.
//! - Renderers: [`Report::to_markdown`], [`Report::to_html`] (one self-contained file,
//!   charts as inline SVG) and [`Report::to_json`]. The `llmtel report` command wraps them.
//! - Security: every line written and every line a report reads goes through llmtel's
//!   redaction step (`llmtel::redact`): API keys (a key used as a user id, quoted in an
//!   alert or in captured content) never reach the file or the report. Content (prompts, responses,
//!   feedback comments) is written only under the content policy (`llmtel::ContentCapture`).
//!
//! ```
//! use std::sync::Arc;
//! use tracing_subscriber::prelude::*;
//! use llmtel_report::{CallLog, Period, Report};
//!
//! let path = std::env::temp_dir().join(format!("llmtel-lib-doc-{}.jsonl", std::process::id()));
//! # let _ = std::fs::remove_file(&path);
//! let log = CallLog::builder(&path).build()?;
//! let subscriber = tracing_subscriber::registry()
//!     .with(llmtel::LlmLayer::new().with_sink(Arc::new(log.clone()))); // calls, no content
//! tracing::subscriber::with_default(subscriber, || {
//!     for user in ["alice", "bob", "alice"] {
//!         let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini", "user.id" = user);
//!         llmtel::record_usage(&span, &llmtel::Usage { input_tokens: 1_000_000, output_tokens: 0, ..Default::default() });
//!     }
//! });
//! log.flush(std::time::Duration::from_secs(5));
//!
//! let report = Report::from_log(&path, &Period::all())?;
//! // gpt-4o-mini: $0.15 per million input tokens.
//! assert_eq!(report.by_user[0].key, "alice");
//! assert_eq!(report.by_user[0].cost.to_string(), "$0.300000");
//! assert!(report.to_html().contains("<svg"));
//! assert!(report.to_markdown().contains("## Cost by user"));
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod layer;
mod log;
mod period;
mod record;
mod render;
mod report;

pub use error::{LogError, ReportError};
pub use layer::CallLogLayer;
pub use log::{
    CallLog, CallLogBuilder, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES, DEFAULT_QUEUE_CAPACITY,
    LogStats, rotated,
};
pub use period::Period;
pub use record::{AlertEntry, CallRecord, DroppedEntry, EvaluationEntry, Record};
pub use render::MAX_ROWS;
pub use report::{
    AlertsSummary, Bucket, CostRow, EvaluatorSummary, Latency, LogHealth, MAX_BUCKETS,
    MAX_MALFORMED_LISTED, MalformedLine, NONE, Report, ReportBuilder, SeriesPoint, Totals,
    USER_FEEDBACK, WorstCall,
};
