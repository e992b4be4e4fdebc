//! The records of the call log: one JSON object per line, tagged by `kind`.

use std::time::SystemTime;

use jiff::Timestamp;
use llmtel::{LlmCall, Usd};
use llmtel_alert::{Alert, AlertState, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of the call log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// An LLM call.
    Call(Box<CallRecord>),
    /// An evaluator's result or a user's rating on a call.
    Evaluation(EvaluationEntry),
    /// An alert, firing or resolved.
    Alert(AlertEntry),
    /// Records the logger dropped (queue full, file full, write error) since the last such
    /// line: the report says it is incomplete.
    Dropped(DroppedEntry),
}

impl Record {
    /// The time the record is filed under in a report: a call's end, an evaluation's
    /// arrival, an alert's start (firing) or end (resolved).
    pub fn time(&self) -> Timestamp {
        match self {
            Record::Call(c) => c.time,
            Record::Evaluation(e) => e.time,
            Record::Alert(a) => a.event_time(),
            Record::Dropped(d) => d.time,
        }
    }
}

/// One LLM call as logged.
///
/// Content (`input_messages`, `output_messages`) is present only when the application
/// captured it (see [`llmtel::ContentCapture`]); the log applies the capture policy again
/// before writing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallRecord {
    /// When the call ended (`started_at` + latency): the time a report files it under.
    pub time: Timestamp,
    /// When the call started.
    pub started_at: Timestamp,
    /// How long the call took, seconds.
    pub latency_s: f64,
    /// OpenTelemetry trace id (32 hex digits), when an OpenTelemetry layer is installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// OpenTelemetry span id (16 hex digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// `gen_ai.response.id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// `gen_ai.operation.name`.
    pub operation: String,
    /// `gen_ai.provider.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model: the response model when recorded, else the request model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `user.id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `llmtel.tenant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `llmtel.feature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// `session.id` / `gen_ai.conversation.id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Input tokens (inclusive of cached ones).
    pub input_tokens: u64,
    /// Output tokens (inclusive of reasoning ones).
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// The exact cost in USD, written as a decimal string (`"0.004260"`); absent when the
    /// call could not be priced.
    #[serde(with = "usd_text", skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Usd>,
    /// `catalog`, `provider` or `app`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_source: Option<String>,
    /// The tokens behind the cost were estimated.
    pub cost_estimated: bool,
    /// The model has no price in the catalog.
    pub unknown_model: bool,
    /// `gen_ai.response.time_to_first_chunk`, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_chunk_s: Option<f64>,
    /// `error.type`, when the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// `gen_ai.response.finish_reasons`.
    pub finish_reasons: Vec<String>,
    /// `gen_ai.input.messages`, only when captured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_messages: Option<String>,
    /// `gen_ai.output.messages`, only when captured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_messages: Option<String>,
}

pub(crate) fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl CallRecord {
    /// The record of `call`, without content.
    pub fn from_call(call: &LlmCall) -> Self {
        let d = &call.dimensions;
        let u = &call.usage;
        CallRecord {
            time: timestamp(call.started_at + call.duration),
            started_at: timestamp(call.started_at),
            latency_s: call.duration.as_secs_f64(),
            trace_id: call.trace_id_hex(),
            span_id: call.span_id_hex(),
            response_id: call.response_id.clone(),
            operation: call.operation.clone(),
            provider: call.provider.clone(),
            model: call.model().map(str::to_owned),
            user: d.user.as_deref().map(str::to_owned),
            tenant: d.tenant.as_deref().map(str::to_owned),
            feature: d.feature.as_deref().map(str::to_owned),
            session: d.session.as_deref().map(str::to_owned),
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
            cost_usd: call.cost_usd(),
            cost_source: call.cost.as_ref().map(|c| c.source.as_str().to_owned()),
            cost_estimated: call.cost.as_ref().is_some_and(|c| c.estimated),
            unknown_model: call.unknown_model,
            time_to_first_chunk_s: call.time_to_first_chunk,
            error_type: call.error_type.clone(),
            finish_reasons: call.finish_reasons.clone(),
            input_messages: None,
            output_messages: None,
        }
    }
}

/// An evaluator's result, or a user's rating (`name` = `user_feedback`), as logged.
///
/// Reports join it to its call by `response_id`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluationEntry {
    /// When it was logged.
    pub time: Timestamp,
    /// `gen_ai.evaluation.name` (`relevance`, `groundedness`, `user_feedback`, ...).
    pub name: String,
    /// `gen_ai.evaluation.score.value`, `0..=1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// `gen_ai.evaluation.score.label`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `gen_ai.evaluation.explanation` (a user's comment for feedback): written only when
    /// content capture is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// `gen_ai.response.id` of the evaluated call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// Trace id of the evaluated call, when an OpenTelemetry layer is installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// `error.type`, when the evaluation itself failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
}

/// An alert as logged (the fields of [`llmtel_alert::Alert`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEntry {
    /// When it was logged.
    pub time: Timestamp,
    /// Alert name.
    pub name: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// Identifying labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations (`summary`, ...).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the condition started.
    pub starts_at: Timestamp,
    /// When it ended (resolved alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
}

impl AlertEntry {
    /// The entry of `alert`, logged at `time`.
    pub fn from_alert(alert: &Alert, time: Timestamp) -> Self {
        AlertEntry {
            time,
            name: alert.name.clone(),
            state: alert.state.as_str().to_owned(),
            severity: severity_str(alert.severity).to_owned(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at: alert.starts_at,
            ends_at: alert.ends_at,
        }
    }

    /// Whether the alert is resolved.
    pub fn is_resolved(&self) -> bool {
        self.state == AlertState::Resolved.as_str()
    }

    /// When it happened: its end when resolved, else its start.
    pub fn event_time(&self) -> Timestamp {
        match (self.is_resolved(), self.ends_at) {
            (true, Some(t)) => t,
            _ => self.starts_at,
        }
    }

    /// The `summary` annotation, or the name.
    pub fn summary(&self) -> &str {
        self.annotations
            .get("summary")
            .map(String::as_str)
            .unwrap_or(&self.name)
    }
}

fn severity_str(s: Severity) -> &'static str {
    s.as_str()
}

/// How many records the logger dropped since its previous such line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DroppedEntry {
    /// When it was written.
    pub time: Timestamp,
    /// Records dropped.
    pub records: u64,
    /// The log is full: it reached its maximum size with no rotated file kept
    /// (`with_max_files(0)`), and drops every record after this line, which is its last
    /// (`records` counts only the drops until then; [`crate::LogStats`] counts them all).
    #[serde(skip_serializing_if = "is_false")]
    pub log_full: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `Option<Usd>` as an exact decimal string without the `$`.
pub(crate) mod usd_text {
    use llmtel::Usd;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn to_text(v: Usd) -> String {
        v.to_string().trim_start_matches('$').to_owned()
    }

    pub(crate) fn serialize<S: Serializer>(v: &Option<Usd>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&to_text(*v)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Usd>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(None),
            Some(t) => Usd::parse_decimal(&t).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "cost_usd `{t}` is not a non-negative decimal USD amount"
                ))
            }),
        }
    }
}

/// `Usd` as an exact decimal string without the `$` (report figures).
pub(crate) mod usd_exact {
    use llmtel::Usd;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Usd, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::usd_text::to_text(*v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Usd, D::Error> {
        let t = String::deserialize(d)?;
        Usd::parse_decimal(&t)
            .ok_or_else(|| serde::de::Error::custom(format!("`{t}` is not a USD amount")))
    }
}
