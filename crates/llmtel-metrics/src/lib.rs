//! Metrics for LLM calls, fed by llmtel's in-process [`LlmCall`]s.
//!
//! Two [`CallSink`](llmtel::CallSink)s, each cheap on the request thread:
//!
//! - [`OtelMetricsSink`]: the OpenTelemetry GenAI client metrics of semantic conventions
//!   v1.41.1 (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`,
//!   `gen_ai.client.operation.time_to_first_chunk`, `gen_ai.client.operation.time_per_output_chunk`
//!   with the spec's bucket boundaries) plus llmtel's `llmtel.client.cost` (USD) and
//!   `llmtel.client.requests` (by status), on any OpenTelemetry `Meter`. Export them with your
//!   own `MeterProvider` or with [`otlp_meter_provider`] (feature `otlp`).
//! - [`PrometheusSink`] (feature `prometheus`): `llm_requests_total{model,status}`,
//!   `llm_latency_seconds{model}`, `llm_tokens_total{model,type}`, `llm_cost_usd_total{model}`
//!   and llmtel's health counters, in OpenMetrics with exemplars that link a latency or cost
//!   observation to its trace id; served by a built-in listener or mounted in an axum app.
//!
//! Both keep counts and cost totals **exact**: cost is summed in pico-dollars (`u128`) and
//! converted to `f64` only when exported. Both go through a [`CardinalityGuard`]: user and
//! session ids are never labels unless asked for ([`Dimension`]), and each label has a cap on
//! distinct values past which values become [`OVERFLOW_VALUE`] (counted).
//!
//! ```no_run
//! use std::sync::Arc;
//! use llmtel_metrics::PrometheusSink;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let prom = PrometheusSink::builder().build();
//! let _server = prom.serve_from_env()?;          // LLMTEL_METRICS_ADDR, default 127.0.0.1:9464
//! let _guard = llmtel::builder().with_sink(Arc::new(prom.clone())).install()?;
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//! - `prometheus` (default): [`PrometheusSink`], its OpenMetrics encoder and built-in listener.
//! - `axum`: [`prometheus::axum_router`] and [`prometheus::metrics_handler`].
//! - `otlp`: [`otlp_meter_provider`], OTLP/HTTP (protobuf) export of the OpenTelemetry metrics.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod guard;
mod otel;
#[cfg(feature = "otlp")]
mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;

pub use guard::{CardinalityGuard, OVERFLOW_VALUE};
pub use otel::{OtelMetricsSink, OtelMetricsSinkBuilder};
#[cfg(feature = "otlp")]
pub use otlp::{OtlpMetricsConfig, otlp_meter_provider};
#[cfg(feature = "prometheus")]
pub use prometheus::{MetricsServer, PrometheusSink, PrometheusSinkBuilder};

use llmtel::LlmCall;

/// Names of the metrics and attributes this crate adds to the GenAI conventions.
pub mod names {
    /// Counter of call cost, USD (exact sums, `f64` only at export).
    pub const CLIENT_COST: &str = "llmtel.client.cost";
    /// Counter of calls, with [`REQUEST_STATUS`].
    pub const CLIENT_REQUESTS: &str = "llmtel.client.requests";
    /// `ok` or `error`.
    pub const REQUEST_STATUS: &str = "llmtel.request.status";
    /// Unit of [`CLIENT_COST`].
    pub const UNIT_USD: &str = "USD";
    /// Prometheus buckets of `llm_latency_seconds`.
    pub const PROMETHEUS_LATENCY_BUCKETS: [f64; 7] = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];
}

/// An app dimension of a call that may be added as a metric label, only when asked for.
///
/// User and session ids are unbounded: add them only with a cap ([`CardinalityGuard`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// `user.id` (Prometheus label `user`).
    User,
    /// `session.id` (Prometheus label `session`).
    Session,
    /// `llmtel.feature` (Prometheus label `feature`).
    Feature,
    /// `llmtel.tenant` (Prometheus label `tenant`).
    Tenant,
    /// Any other `llmtel.*` dimension by attribute name, with its Prometheus label name.
    Custom {
        /// Attribute name, e.g. `llmtel.api_key_id`.
        attribute: &'static str,
        /// Prometheus label name, e.g. `api_key_id`.
        label: &'static str,
    },
}

impl Dimension {
    /// The OpenTelemetry attribute name.
    pub fn attribute(self) -> &'static str {
        match self {
            Dimension::User => "user.id",
            Dimension::Session => "session.id",
            Dimension::Feature => "llmtel.feature",
            Dimension::Tenant => "llmtel.tenant",
            Dimension::Custom { attribute, .. } => attribute,
        }
    }

    /// The Prometheus label name.
    pub fn label(self) -> &'static str {
        match self {
            Dimension::User => "user",
            Dimension::Session => "session",
            Dimension::Feature => "feature",
            Dimension::Tenant => "tenant",
            Dimension::Custom { label, .. } => label,
        }
    }

    /// The call's value of this dimension, if set.
    pub fn value(self, call: &LlmCall) -> Option<&str> {
        call.dimensions.get(self.attribute())
    }
}

/// Value used for a label when the call has none (e.g. no model recorded).
pub const UNKNOWN_VALUE: &str = "unknown";

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
    /// The OTLP metrics exporter could not be built.
    #[error("OTLP metrics exporter: {0}")]
    Otlp(String),
    /// A protocol this crate does not export metrics with.
    #[error(
        "OTLP metrics protocol `{0}` is not supported here: use http/protobuf, or pass your own MeterProvider"
    )]
    Protocol(String),
}
