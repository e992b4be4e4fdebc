//! OpenTelemetry GenAI client metrics of LLM calls (feature `metrics`).
//!
//! [`OtelMetricsSink`] is a [`CallSink`](crate::CallSink) recording the GenAI client metrics
//! of semantic conventions v1.41.1 (`gen_ai.client.token.usage`,
//! `gen_ai.client.operation.duration`, `gen_ai.client.operation.time_to_first_chunk`,
//! `gen_ai.client.operation.time_per_output_chunk`, with the spec's bucket boundaries) plus
//! llmtel's `llmtel.client.cost` (USD) and `llmtel.client.requests` (by status), on any
//! OpenTelemetry `Meter`. [`crate::init`] exports them over OTLP next to the traces; see
//! [`Builder::with_metrics`](crate::Builder::with_metrics). Apps that compose their own
//! pipeline get the same OTLP meter provider from [`otlp_meter_provider`] (features
//! `otlp-grpc` / `otlp-http`).
//!
//! Attribute values go through a [`CardinalityGuard`]: user and session ids are never
//! attributes unless asked for ([`Dimension`]), and each attribute has a cap on distinct
//! values past which values become [`OVERFLOW_VALUE`] (counted).

mod cache;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) mod export;
mod guard;
mod otel;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
mod otlp;

pub use cache::{DEFAULT_LABEL_CACHE_CAPACITY, LabelCache};
pub use guard::{CardinalityGuard, OVERFLOW_VALUE};
pub use otel::{OtelMetricsSink, OtelMetricsSinkBuilder};
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub use otlp::{OtlpMetricsConfig, otlp_meter_provider};

use crate::LlmCall;

/// Names of the metrics and attributes llmtel adds to the GenAI conventions.
pub mod names {
    /// Counter of call cost, USD (exact sums, `f64` only at export).
    pub const CLIENT_COST: &str = "llmtel.client.cost";
    /// Counter of calls, with [`REQUEST_STATUS`].
    pub const CLIENT_REQUESTS: &str = "llmtel.client.requests";
    /// `ok` or `error`.
    pub const REQUEST_STATUS: &str = "llmtel.request.status";
    /// Unit of [`CLIENT_COST`].
    pub const UNIT_USD: &str = "USD";
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

    /// The call's value of this dimension as a metric label shows it: its value, or
    /// [`UNKNOWN_VALUE`]; `llmtel.api_key_id`'s as its fingerprint
    /// ([`crate::redact::fingerprint`]), never the key.
    pub fn label_value(self, call: &LlmCall) -> std::borrow::Cow<'_, str> {
        match self.value(call) {
            Some(v) => crate::redact::shown(self.attribute(), v),
            None => std::borrow::Cow::Borrowed(UNKNOWN_VALUE),
        }
    }
}

/// Value used for a label when the call has none (e.g. no model recorded).
pub const UNKNOWN_VALUE: &str = "unknown";
