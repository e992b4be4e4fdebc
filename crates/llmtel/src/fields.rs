//! Reading `gen_ai.*` and dimension fields off tracing spans, whoever created them.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use llmtel_semconv::{common, gen_ai, llmtel as lt};
use tracing_core::field::{Field, Visit};

use llmtel_pricing::UsageDetails;

use crate::call::Dimensions;

/// Whether a callsite field makes a span interesting to llmtel: any `gen_ai.*` or `llmtel.*`
/// field, or an app dimension (`user.id`, `session.id`), so that dimensions set on a request
/// span reach the LLM calls nested in it.
pub(crate) fn is_interesting_field(name: &str) -> bool {
    llmtel_semconv::is_gen_ai_field(name)
        || name.starts_with("llmtel.")
        || name == lt::USER_ID
        || name == lt::SESSION_ID
}

/// A token count as recorded: fine, or malformed with what was seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Count {
    #[default]
    Unset,
    Value(u64),
    Malformed(String),
}

impl Count {
    fn set_i64(&mut self, v: i64) {
        *self = match u64::try_from(v) {
            Ok(v) => Count::Value(v),
            Err(_) => Count::Malformed(v.to_string()),
        };
    }
    fn set_f64(&mut self, v: f64) {
        *self = if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
            Count::Value(v as u64)
        } else {
            Count::Malformed(v.to_string())
        };
    }
    fn set_str(&mut self, s: &str) {
        let t = s.trim().trim_matches('"');
        *self = match t.parse::<u64>() {
            Ok(v) => Count::Value(v),
            Err(_) => match t.parse::<f64>() {
                Ok(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => {
                    Count::Value(f as u64)
                }
                _ => Count::Malformed(s.to_owned()),
            },
        };
    }
    pub(crate) fn get(&self) -> u64 {
        match self {
            Count::Value(v) => *v,
            _ => 0,
        }
    }
    pub(crate) fn is_set(&self) -> bool {
        !matches!(self, Count::Unset)
    }
}

/// Everything llmtel reads from one span's fields.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpanFields {
    pub(crate) otel_name: Option<String>,
    /// The span was opened by [`llm_span!`](crate::llm_span), whose `otel.name` is always
    /// `{operation} {request model}`: the name [`LlmCall`](crate::LlmCall) derives when
    /// `otel.name` is not captured, so it is not formatted and kept a second time.
    pub(crate) name_derived: bool,
    /// Well-known values (the GenAI operations and providers) are kept without a copy.
    pub(crate) operation: Option<Cow<'static, str>>,
    pub(crate) provider: Option<Cow<'static, str>>,
    pub(crate) system: Option<String>,
    pub(crate) request_model: Option<String>,
    pub(crate) response_model: Option<String>,
    pub(crate) response_id: Option<String>,
    pub(crate) finish_reasons: Option<String>,
    pub(crate) error_type: Option<String>,
    pub(crate) status_error: bool,
    pub(crate) input: Count,
    pub(crate) output: Count,
    pub(crate) cache_read: Count,
    pub(crate) cache_write: Count,
    pub(crate) reasoning: Count,
    pub(crate) max_tokens: Option<u64>,
    pub(crate) reported_cost: Option<f64>,
    pub(crate) cost_source: Option<String>,
    pub(crate) estimated: Option<bool>,
    pub(crate) stream: Option<bool>,
    pub(crate) time_to_first_chunk: Option<f64>,
    pub(crate) has_gen_ai: bool,
    pub(crate) dims: Dimensions,
    /// Modality, tool and per-unit counts (`llmtel.usage.*`), for the price dimensions.
    pub(crate) details: UsageDetails,
    /// The service tier the response reports (`llmtel.response.service_tier`,
    /// `openai.response.service_tier`).
    pub(crate) service_tier: Option<String>,
    /// `llmtel.request.search_context_size` (web search pricing).
    pub(crate) search_context_size: Option<String>,
}

impl SpanFields {
    /// Whether the span describes a model call that consumes tokens.
    pub(crate) fn is_model_call(&self) -> bool {
        match self.operation.as_deref() {
            Some(op) => llmtel_semconv::operation::is_model_call(op),
            // A span with a model or usage but no operation is taken as a chat call.
            None => {
                self.request_model.is_some()
                    || self.response_model.is_some()
                    || self.input.is_set()
                    || self.output.is_set()
            }
        }
    }

    pub(crate) fn has_usage(&self) -> bool {
        self.input.is_set()
            || self.output.is_set()
            || self.cache_read.is_set()
            || self.cache_write.is_set()
            || self.reasoning.is_set()
            || self.details != UsageDetails::default()
    }

    /// The modality, tool or per-unit count a `llmtel.usage.*` name records.
    fn detail_mut(&mut self, name: &str) -> Option<&mut u64> {
        let d = &mut self.details;
        Some(match name {
            lt::USAGE_AUDIO_INPUT_TOKENS => &mut d.audio_input_tokens,
            lt::USAGE_AUDIO_CACHE_READ_INPUT_TOKENS => &mut d.cache_read_audio_tokens,
            lt::USAGE_IMAGE_INPUT_TOKENS => &mut d.image_input_tokens,
            lt::USAGE_VIDEO_INPUT_TOKENS => &mut d.video_input_tokens,
            lt::USAGE_AUDIO_OUTPUT_TOKENS => &mut d.audio_output_tokens,
            lt::USAGE_IMAGE_OUTPUT_TOKENS => &mut d.image_output_tokens,
            lt::USAGE_WEB_SEARCH_REQUESTS => &mut d.web_search_queries,
            lt::USAGE_CODE_INTERPRETER_SESSIONS => &mut d.code_interpreter_sessions,
            lt::USAGE_FILE_SEARCH_CALLS => &mut d.file_search_calls,
            lt::USAGE_IMAGES => &mut d.images,
            lt::USAGE_INPUT_CHARACTERS => &mut d.input_characters,
            lt::USAGE_INPUT_AUDIO_MS => &mut d.input_audio_ms,
            lt::USAGE_OUTPUT_AUDIO_MS => &mut d.output_audio_ms,
            _ => return None,
        })
    }

    fn count_mut(&mut self, name: &str) -> Option<&mut Count> {
        Some(match name {
            gen_ai::USAGE_INPUT_TOKENS => &mut self.input,
            gen_ai::USAGE_OUTPUT_TOKENS => &mut self.output,
            gen_ai::USAGE_CACHE_READ_INPUT_TOKENS => &mut self.cache_read,
            gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS | gen_ai::USAGE_CACHE_WRITE_INPUT_TOKENS => {
                &mut self.cache_write
            }
            gen_ai::USAGE_REASONING_OUTPUT_TOKENS => &mut self.reasoning,
            _ => return None,
        })
    }

    fn string_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "otel.name" => &mut self.otel_name,
            gen_ai::SYSTEM => &mut self.system,
            gen_ai::REQUEST_MODEL => &mut self.request_model,
            gen_ai::RESPONSE_MODEL => &mut self.response_model,
            gen_ai::RESPONSE_ID => &mut self.response_id,
            gen_ai::RESPONSE_FINISH_REASONS => &mut self.finish_reasons,
            common::ERROR_TYPE => &mut self.error_type,
            lt::COST_SOURCE => &mut self.cost_source,
            lt::RESPONSE_SERVICE_TIER | llmtel_semconv::openai::RESPONSE_SERVICE_TIER => {
                &mut self.service_tier
            }
            lt::REQUEST_SEARCH_CONTEXT_SIZE => &mut self.search_context_size,
            _ => return None,
        })
    }

    /// The dimension a name records (shared values: a span's inherited dimensions and their
    /// attributes reuse them without a copy).
    fn dim_mut(&mut self, name: &str) -> Option<&mut Option<Arc<str>>> {
        Some(match name {
            lt::USER_ID => &mut self.dims.user,
            lt::SESSION_ID | gen_ai::CONVERSATION_ID => &mut self.dims.session,
            lt::FEATURE => &mut self.dims.feature,
            lt::TENANT => &mut self.dims.tenant,
            _ => return None,
        })
    }

    /// Records a string-valued field or attribute by name. Custom `llmtel.*` dimensions are
    /// kept only when the name is `'static` (tracing fields); see [`Visit`].
    pub(crate) fn set_str(&mut self, name: &str, value: &str) {
        self.set_text(name, Cow::Borrowed(value));
    }

    /// [`set_str`](Self::set_str) for a value that may be owned already (a formatted
    /// `%value`): kept without a second copy when it is.
    fn set_text(&mut self, name: &str, text: Cow<'_, str>) {
        let value: &str = &text;
        if llmtel_semconv::is_gen_ai_field(name) {
            self.has_gen_ai = true;
        }
        match name {
            gen_ai::OPERATION_NAME => {
                self.operation = Some(well_known(value, &OPERATIONS));
                return;
            }
            gen_ai::PROVIDER_NAME => {
                self.provider = Some(well_known(value, &PROVIDERS));
                return;
            }
            _ => {}
        }
        if name == "otel.status_code" {
            self.status_error = value.eq_ignore_ascii_case("error");
            return;
        }
        if let Some(count) = self.count_mut(name) {
            count.set_str(value);
            return;
        }
        if let Some(d) = self.detail_mut(name) {
            // A count that is not a non-negative integer is ignored (the tokens stay priced).
            if let Ok(v) = value.trim().parse::<u64>() {
                *d = v;
            }
            return;
        }
        if let Some(slot) = self.string_mut(name) {
            // Values a request controls (ids, model names) are kept capped.
            *slot = Some(match text {
                Cow::Borrowed(v) => crate::bound::cap_value(v).into_owned(),
                Cow::Owned(v) => crate::bound::cap_string(v),
            });
            return;
        }
        if let Some(slot) = self.dim_mut(name) {
            // `gen_ai.conversation.id` only fills the session when `session.id` did not.
            if name != gen_ai::CONVERSATION_ID || slot.is_none() {
                *slot = Some(Arc::from(crate::bound::cap_value(value)));
            }
            return;
        }
        match name {
            gen_ai::USAGE_COST | lt::COST_REPORTED => {
                if let Ok(v) = value.trim().parse::<f64>() {
                    self.reported_cost = Some(v);
                }
            }
            gen_ai::REQUEST_MAX_TOKENS => self.max_tokens = value.trim().parse().ok(),
            gen_ai::REQUEST_STREAM => self.stream = value.trim().parse().ok(),
            lt::COST_ESTIMATED => self.estimated = value.trim().parse().ok(),
            _ => {}
        }
    }

    pub(crate) fn set_i64(&mut self, name: &str, value: i64) {
        if llmtel_semconv::is_gen_ai_field(name) {
            self.has_gen_ai = true;
        }
        if let Some(count) = self.count_mut(name) {
            count.set_i64(value);
            return;
        }
        if let Some(d) = self.detail_mut(name) {
            *d = u64::try_from(value).unwrap_or(0);
            return;
        }
        match name {
            gen_ai::REQUEST_MAX_TOKENS => self.max_tokens = u64::try_from(value).ok(),
            gen_ai::USAGE_COST | lt::COST_REPORTED => self.reported_cost = Some(value as f64),
            _ => self.set_str(name, &value.to_string()),
        }
    }

    pub(crate) fn set_u64(&mut self, name: &str, value: u64) {
        if llmtel_semconv::is_gen_ai_field(name) {
            self.has_gen_ai = true;
        }
        if let Some(count) = self.count_mut(name) {
            *count = Count::Value(value);
            return;
        }
        if let Some(d) = self.detail_mut(name) {
            *d = value;
            return;
        }
        match name {
            gen_ai::REQUEST_MAX_TOKENS => self.max_tokens = Some(value),
            gen_ai::USAGE_COST | lt::COST_REPORTED => self.reported_cost = Some(value as f64),
            _ => self.set_str(name, &value.to_string()),
        }
    }

    pub(crate) fn set_f64(&mut self, name: &str, value: f64) {
        if llmtel_semconv::is_gen_ai_field(name) {
            self.has_gen_ai = true;
        }
        if let Some(count) = self.count_mut(name) {
            count.set_f64(value);
            return;
        }
        if let Some(d) = self.detail_mut(name) {
            if value.is_finite() && value >= 0.0 && value.fract() == 0.0 {
                *d = value as u64;
            }
            return;
        }
        match name {
            gen_ai::USAGE_COST | lt::COST_REPORTED => self.reported_cost = Some(value),
            gen_ai::RESPONSE_TIME_TO_FIRST_CHUNK => self.time_to_first_chunk = Some(value),
            _ => {}
        }
    }

    pub(crate) fn set_bool(&mut self, name: &str, value: bool) {
        if llmtel_semconv::is_gen_ai_field(name) {
            self.has_gen_ai = true;
        }
        match name {
            gen_ai::REQUEST_STREAM => self.stream = Some(value),
            lt::COST_ESTIMATED => self.estimated = Some(value),
            _ => {}
        }
    }

    /// Reads the exported attributes of a span (the exporter's side).
    pub(crate) fn from_attributes(attrs: &[opentelemetry::KeyValue]) -> SpanFields {
        use opentelemetry::Value;
        let mut f = SpanFields::default();
        for kv in attrs {
            let k = kv.key.as_str();
            match &kv.value {
                Value::String(v) => f.set_str(k, v.as_str()),
                Value::I64(v) => f.set_i64(k, *v),
                Value::F64(v) => f.set_f64(k, *v),
                Value::Bool(v) => f.set_bool(k, *v),
                Value::Array(opentelemetry::Array::String(v))
                    if k == gen_ai::RESPONSE_FINISH_REASONS =>
                {
                    let reasons: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
                    f.finish_reasons = serde_json::to_string(&reasons).ok();
                }
                _ => {}
            }
        }
        f
    }

    fn custom_dimension(&mut self, name: &'static str, value: &str) {
        if name.starts_with("llmtel.")
            && !name.starts_with("llmtel.cost.")
            && !name.starts_with("llmtel.usage.")
            && self.string_mut(name).is_none()
            && self.dim_mut(name).is_none()
        {
            let value = Arc::from(crate::bound::cap_value(value));
            if let Some(slot) = self.dims.custom.iter_mut().find(|(k, _)| *k == name) {
                slot.1 = value;
            } else {
                self.dims.custom.push((name, value));
            }
        }
    }
}

impl Visit for SpanFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set_i64(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set_u64(field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set_f64(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set_bool(field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set_str(field.name(), value);
        self.custom_dimension(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.name_derived && field.name() == "otel.name" {
            return;
        }
        // `%value` and `?value` arrive here; Display-formatted strings carry no quotes.
        let s = format!("{value:?}");
        self.custom_dimension(field.name(), &s);
        self.set_text(field.name(), Cow::Owned(s));
    }
}

/// The `gen_ai.operation.name` values of the GenAI conventions.
const OPERATIONS: [&str; 9] = {
    use llmtel_semconv::operation as op;
    [
        op::CHAT,
        op::GENERATE_CONTENT,
        op::TEXT_COMPLETION,
        op::EMBEDDINGS,
        op::RETRIEVAL,
        op::CREATE_AGENT,
        op::INVOKE_AGENT,
        op::EXECUTE_TOOL,
        op::INVOKE_WORKFLOW,
    ]
};

/// The `gen_ai.provider.name` values of the GenAI conventions, and the older `gen_ai.system`
/// spellings [`provider_from_system`] maps.
const PROVIDERS: [&str; 21] = [
    "openai",
    "anthropic",
    "gcp.gemini",
    "gcp.vertex_ai",
    "gcp.gen_ai",
    "azure.ai.openai",
    "azure.ai.inference",
    "aws.bedrock",
    "mistral_ai",
    "x_ai",
    "groq",
    "deepseek",
    "cohere",
    "perplexity",
    "ibm.watsonx.ai",
    "ollama",
    "gemini",
    "vertex_ai",
    "bedrock",
    "mistral",
    "xai",
];

/// `value` as one of `known` (no copy) when it is one, or a capped copy.
fn well_known(value: &str, known: &[&'static str]) -> Cow<'static, str> {
    match known.iter().find(|k| **k == value) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(crate::bound::cap_value(value).into_owned()),
    }
}

/// Splits a recorded finish-reasons value (`stop`, `["stop","length"]`, `stop,length`).
pub(crate) fn split_finish_reasons(raw: &str) -> Vec<String> {
    raw.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Maps a deprecated `gen_ai.system` value to its `gen_ai.provider.name` spelling.
pub(crate) fn provider_from_system(system: &str) -> &str {
    match system {
        "gemini" | "google" | "google_ai_studio" => "gcp.gemini",
        "vertex_ai" | "vertexai" => "gcp.vertex_ai",
        "az.ai.openai" | "azure" | "azure_openai" => "azure.ai.openai",
        "az.ai.inference" => "azure.ai.inference",
        "bedrock" | "aws_bedrock" => "aws.bedrock",
        "mistral" => "mistral_ai",
        "xai" => "x_ai",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_strings_and_reject_garbage() {
        let mut c = Count::default();
        c.set_str("1234");
        assert_eq!(c, Count::Value(1234));
        c.set_str("\"77\"");
        assert_eq!(c, Count::Value(77));
        c.set_str("lots");
        assert_eq!(c, Count::Malformed("lots".into()));
        c.set_i64(-3);
        assert_eq!(c, Count::Malformed("-3".into()));
        c.set_f64(12.0);
        assert_eq!(c, Count::Value(12));
        c.set_f64(1.5);
        assert!(matches!(c, Count::Malformed(_)));
    }

    #[test]
    fn finish_reasons_accept_json_lists_and_plain_strings() {
        assert_eq!(
            split_finish_reasons("[\"stop\", \"length\"]"),
            ["stop", "length"]
        );
        assert_eq!(split_finish_reasons("stop"), ["stop"]);
        assert_eq!(split_finish_reasons("stop,length"), ["stop", "length"]);
        assert!(split_finish_reasons("").is_empty());
    }
}
