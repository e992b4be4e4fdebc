//! Per-call signals taken from an [`LlmCall`]: what the monitor needs, nothing more.

use std::time::{Duration, SystemTime};

use llmtel::LlmCall;
use opentelemetry::trace::{SpanId, TraceId};

/// The operational signals of one LLM call.
///
/// Built from an [`LlmCall`] by [`CallSignals::from_call`]. The sink does not build it on the
/// request thread: it queues the same values packed in one buffer, and the monitor's worker
/// thread makes the `CallSignals`.
#[derive(Clone, Debug, PartialEq)]
pub struct CallSignals {
    /// The model (response model, else request model); `None` when the span names none.
    pub model: Option<String>,
    /// `llmtel.feature`, inherited from ancestor spans.
    pub feature: Option<String>,
    /// `gen_ai.response.id`.
    pub response_id: Option<String>,
    /// OpenTelemetry trace id, when an OpenTelemetry layer is in the stack.
    pub trace_id: Option<TraceId>,
    /// OpenTelemetry span id, when an OpenTelemetry layer is in the stack.
    pub span_id: Option<SpanId>,
    /// When the call ended (`started_at + duration`): the time the monitor files it under.
    pub ended_at: SystemTime,
    /// Latency: how long the span was open.
    pub latency: Duration,
    /// `error.type`, when the call failed.
    pub error_type: Option<String>,
    /// A finish reason was `length` / `max_tokens` (the answer was cut).
    pub truncated: bool,
    /// A finish reason was `content_filter` / `safety`.
    pub content_filtered: bool,
    /// `gen_ai.usage.output_tokens`, when usage was recorded.
    pub output_tokens: Option<u64>,
    /// Output tokens per second of generation (after the first chunk when streamed).
    pub tokens_per_second: Option<f64>,
    /// `gen_ai.response.time_to_first_chunk`, seconds, when streamed.
    pub time_to_first_chunk: Option<f64>,
    /// The call's cost in USD, when known.
    pub cost_usd: Option<f64>,
}

use llmtel_score::{CONTENT_FILTER_REASONS, TRUNCATION_REASONS};

impl CallSignals {
    /// The signals of `call`.
    pub fn from_call(call: &LlmCall) -> Self {
        CallSignals {
            model: call.model().map(str::to_owned),
            feature: call.dimensions.feature.as_deref().map(str::to_owned),
            response_id: call.response_id.clone(),
            error_type: call.error_type.clone(),
            ..Self::numbers_of(call)
        }
    }

    /// The signals of `call` without its strings (`model`, `feature`, `response_id` and
    /// `error_type` are `None`): no allocation.
    pub(crate) fn numbers_of(call: &LlmCall) -> Self {
        let has = |set: &[&str]| {
            call.finish_reasons
                .iter()
                .any(|r| set.iter().any(|s| r.eq_ignore_ascii_case(s)))
        };
        let output_tokens = call.has_usage.then_some(call.usage.output_tokens);
        let gen_secs = call.duration.as_secs_f64() - call.time_to_first_chunk.unwrap_or(0.0);
        let tokens_per_second = match output_tokens {
            Some(t) if t > 0 && gen_secs > 1e-6 && call.error_type.is_none() => {
                Some(t as f64 / gen_secs)
            }
            _ => None,
        };
        CallSignals {
            model: None,
            feature: None,
            response_id: None,
            trace_id: call.trace_id,
            span_id: call.span_id,
            ended_at: call.started_at + call.duration,
            latency: call.duration,
            error_type: None,
            truncated: has(TRUNCATION_REASONS),
            content_filtered: has(CONTENT_FILTER_REASONS),
            output_tokens,
            tokens_per_second,
            time_to_first_chunk: call
                .time_to_first_chunk
                .filter(|t| t.is_finite() && *t >= 0.0),
            cost_usd: call.cost_usd().map(|c| c.as_f64()),
        }
    }
}

/// Room for a call's strings (model, feature, response id, error type) inside a
/// [`PackedCall`]; calls whose strings do not fit travel as a [`CallSignals`].
const PACKED_TEXT: usize = 160;

/// A call's signals as queued by the sink: the strings copied into one inline buffer, so the
/// request thread makes one allocation a call (the monitor thread makes the `String`s).
pub(crate) struct PackedCall {
    numbers: CallSignals,
    text: [u8; PACKED_TEXT],
    /// Length of each string in `text`, in order; `None` for an absent one.
    lens: [Option<u8>; 4],
}

impl PackedCall {
    /// `call`'s signals, or `None` when its strings do not fit.
    pub(crate) fn new(call: &LlmCall) -> Option<Box<Self>> {
        let strs = [
            call.model(),
            call.dimensions.feature.as_deref(),
            call.response_id.as_deref(),
            call.error_type.as_deref(),
        ];
        if strs.iter().flatten().map(|s| s.len()).sum::<usize>() > PACKED_TEXT {
            return None;
        }
        let mut p = Box::new(PackedCall {
            numbers: CallSignals::numbers_of(call),
            text: [0; PACKED_TEXT],
            lens: [None; 4],
        });
        let mut at = 0;
        for (len, s) in p.lens.iter_mut().zip(strs) {
            let Some(s) = s else { continue };
            p.text[at..at + s.len()].copy_from_slice(s.as_bytes());
            *len = u8::try_from(s.len()).ok();
            at += s.len();
        }
        Some(p)
    }

    /// The signals, with their strings.
    pub(crate) fn unpack(self) -> CallSignals {
        let mut at = 0;
        let mut strs = self.lens.map(|len| {
            let len = usize::from(len?);
            let bytes = &self.text[at..at + len];
            at += len;
            // Whole `&str`s were copied in, so this never fails.
            std::str::from_utf8(bytes).ok().map(str::to_owned)
        });
        CallSignals {
            model: strs[0].take(),
            feature: strs[1].take(),
            response_id: strs[2].take(),
            error_type: strs[3].take(),
            ..self.numbers
        }
    }
}
