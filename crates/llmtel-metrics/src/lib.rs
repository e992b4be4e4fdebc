//! Metrics for LLM calls, fed by llmtel's in-process [`LlmCall`](llmtel::LlmCall)s.
//!
//! Two [`CallSink`](llmtel::CallSink)s, each cheap on the request thread:
//!
//! - [`OtelMetricsSink`] (from `llmtel::metrics`; `llmtel::init()` already exports it over
//!   OTLP next to the traces): the OpenTelemetry GenAI client metrics of semantic conventions
//!   v1.41.1 (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`,
//!   `gen_ai.client.operation.time_to_first_chunk`, `gen_ai.client.operation.time_per_output_chunk`
//!   with the spec's bucket boundaries) plus llmtel's `llmtel.client.cost` (USD) and
//!   `llmtel.client.requests` (by status), on any OpenTelemetry `Meter`. Export them with your
//!   own `MeterProvider` or with [`otlp_meter_provider`] (feature `otlp`): the one OTLP
//!   metrics pipeline of `llmtel::metrics`, the same `init()` uses, re-exported here.
//! - [`PrometheusSink`] (feature `prometheus`): `llm_requests_total{model,status}`,
//!   `llm_latency_seconds{model}`, `llm_tokens_total{model,type}`, `llm_cost_usd_total{model}`
//!   and llmtel's health counters, in OpenMetrics with exemplars that link a latency or cost
//!   observation to its trace id; served by a built-in listener or mounted in an axum app.
//!
//! Every listener here is hardened ([`listener::Limits`]): concurrent connections up to a
//! limit (extra ones refused and counted), a header-read timeout (a slow client never delays
//! a scrape), an idle timeout, and head and body size limits. It binds where it is told: the
//! default is `127.0.0.1:9464`.
//!
//! Both keep counts and cost totals **exact**: cost is summed in pico-dollars (`u128`) and
//! converted to `f64` only when exported. Both go through a [`CardinalityGuard`]: user and
//! session ids are never labels unless asked for ([`Dimension`]), and each label has a cap on
//! distinct values past which values become [`OVERFLOW_VALUE`] (counted). [`PrometheusSink`]
//! also caps the combinations (at most [`prometheus::MAX_SERIES_PER_FAMILY`] series a family;
//! further calls are recorded, and counted, under one overflow label set).
//! [`PrometheusSink`] label values go through llmtel's redaction step first (`llmtel::redact`):
//! an API key used as a user id or key id is exported as `[REDACTED]`.
//!
//! ```no_run
//! # #[cfg(feature = "prometheus")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use llmtel_metrics::PrometheusSink;
//!
//! let prom = PrometheusSink::builder().build();
//! let _server = prom.serve_from_env()?;          // LLMTEL_METRICS_ADDR, default 127.0.0.1:9464
//! let _guard = llmtel::builder().with_sink(Arc::new(prom.clone())).install()?;
//! # Ok(()) }
//! # #[cfg(not(feature = "prometheus"))] fn main() {}
//! ```
//!
//! # Feature flags
//! - `prometheus` (default): [`PrometheusSink`], its OpenMetrics encoder and built-in listener.
//! - `axum`: [`prometheus::axum_router`] and [`prometheus::metrics_handler`] (and `serve`).
//! - `serve`: [`listener::serve_with_limits`], the hardened listener for any axum router
//!   (connection limit, header-read and idle timeouts, size limits).
//! - `otlp`: [`otlp_meter_provider`] and [`OtlpMetricsConfig`] (from `llmtel::metrics`), OTLP
//!   export of the OpenTelemetry metrics over gRPC or HTTP/protobuf.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod listener;
#[cfg(feature = "prometheus")]
pub mod prometheus;

/// The OpenTelemetry metrics and the cardinality guard live in `llmtel` (feature `metrics`),
/// so that `llmtel::init()` exports them next to the traces; re-exported here unchanged.
pub use llmtel::metrics::{
    CardinalityGuard, Dimension, OVERFLOW_VALUE, OtelMetricsSink, OtelMetricsSinkBuilder,
    UNKNOWN_VALUE,
};
/// llmtel's OTLP metrics pipeline (the one `llmtel::init()` exports with).
#[cfg(feature = "otlp")]
pub use llmtel::metrics::{OtlpMetricsConfig, otlp_meter_provider};
#[cfg(feature = "prometheus")]
pub use prometheus::{MetricsServer, PrometheusSink, PrometheusSinkBuilder};

/// Names of the metrics and attributes this crate adds to the GenAI conventions.
pub mod names {
    pub use llmtel::metrics::names::*;
    /// Prometheus buckets of `llm_latency_seconds`.
    pub const PROMETHEUS_LATENCY_BUCKETS: [f64; 7] = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];
}

/// Why metrics could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The metrics listener could not bind.
    #[error(
        "cannot listen for metrics on {addr}: {source}. Set LLMTEL_METRICS_ADDR to a free address"
    )]
    Bind {
        /// The address asked for.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `LLMTEL_METRICS_ADDR` (or the address given) is not a socket address.
    #[error("invalid metrics address `{0}`: expected HOST:PORT such as 127.0.0.1:9464")]
    Addr(String),
}
