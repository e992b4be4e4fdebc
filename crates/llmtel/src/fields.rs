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

/// Whether an interesting field ([`is_interesting_field`]) is only a dimension (`user.id`,
/// `session.id`, `llmtel.feature`, `llmtel.tenant`, a custom `llmtel.*` name): a span
/// declaring no other such field can never be an LLM call.
pub(crate) fn is_dimension_field(name: &str) -> bool {
    let class = classify(name);
    !class.gen_ai
        && matches!(
            class.slot,
            Slot::User | Slot::Session | Slot::Feature | Slot::Tenant | Slot::Custom
        )
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
                // Kept for the usage note, capped: the value is the caller's.
                _ => Count::Malformed(crate::bound::cap_value(s).into_owned()),
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
    /// Split and capped ([`finish_reasons`]): the same list whichever side read it.
    pub(crate) finish_reasons: Option<Vec<String>>,
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

    /// Whether the call's outcome was recorded (usage, the response, an error): its request
    /// went out, so nobody gives its span a parent any more.
    pub(crate) fn has_outcome(&self) -> bool {
        self.input.is_set()
            || self.output.is_set()
            || self.response_model.is_some()
            || self.response_id.is_some()
            || self.finish_reasons.is_some()
            || self.error_type.is_some()
            || self.status_error
    }

    pub(crate) fn has_usage(&self) -> bool {
        self.input.is_set()
            || self.output.is_set()
            || self.cache_read.is_set()
            || self.cache_write.is_set()
            || self.reasoning.is_set()
            || self.details != UsageDetails::default()
    }

    /// The modality, tool or per-unit count a slot records.
    fn detail_mut(&mut self, slot: Slot) -> Option<&mut u64> {
        let d = &mut self.details;
        Some(match slot {
            Slot::AudioInput => &mut d.audio_input_tokens,
            Slot::AudioCacheRead => &mut d.cache_read_audio_tokens,
            Slot::CacheWrite1h => &mut d.cache_write_1h_tokens,
            Slot::ImageInput => &mut d.image_input_tokens,
            Slot::VideoInput => &mut d.video_input_tokens,
            Slot::AudioOutput => &mut d.audio_output_tokens,
            Slot::ImageOutput => &mut d.image_output_tokens,
            Slot::WebSearch => &mut d.web_search_queries,
            Slot::CodeInterpreter => &mut d.code_interpreter_sessions,
            Slot::FileSearch => &mut d.file_search_calls,
            Slot::Images => &mut d.images,
            Slot::InputCharacters => &mut d.input_characters,
            Slot::InputAudioMs => &mut d.input_audio_ms,
            Slot::OutputAudioMs => &mut d.output_audio_ms,
            _ => return None,
        })
    }

    fn count_mut(&mut self, slot: Slot) -> Option<&mut Count> {
        Some(match slot {
            Slot::Input => &mut self.input,
            Slot::Output => &mut self.output,
            Slot::CacheRead => &mut self.cache_read,
            Slot::CacheWrite => &mut self.cache_write,
            Slot::Reasoning => &mut self.reasoning,
            _ => return None,
        })
    }

    fn string_mut(&mut self, slot: Slot) -> Option<&mut Option<String>> {
        Some(match slot {
            Slot::OtelName => &mut self.otel_name,
            Slot::System => &mut self.system,
            Slot::RequestModel => &mut self.request_model,
            Slot::ResponseModel => &mut self.response_model,
            Slot::ResponseId => &mut self.response_id,
            Slot::ErrorType => &mut self.error_type,
            Slot::CostSource => &mut self.cost_source,
            Slot::ServiceTier => &mut self.service_tier,
            Slot::SearchContextSize => &mut self.search_context_size,
            _ => return None,
        })
    }

    /// The dimension a slot records (shared values: a span's inherited dimensions and their
    /// attributes reuse them without a copy).
    fn dim_mut(&mut self, slot: Slot) -> Option<&mut Option<Arc<str>>> {
        Some(match slot {
            Slot::User => &mut self.dims.user,
            Slot::Session | Slot::Conversation => &mut self.dims.session,
            Slot::Feature => &mut self.dims.feature,
            Slot::Tenant => &mut self.dims.tenant,
            _ => return None,
        })
    }

    /// Records a string-valued field or attribute by name. Custom `llmtel.*` dimensions are
    /// not kept here (they need a `'static` name): see [`Visit`] and
    /// [`from_attributes`](Self::from_attributes).
    pub(crate) fn set_str(&mut self, name: &str, value: &str) {
        self.set_text(classify(name), Cow::Borrowed(value));
    }

    /// [`set_str`](Self::set_str) for a value that may be owned already (a formatted
    /// `%value`): kept without a second copy when it is.
    fn set_text(&mut self, class: Class, text: Cow<'_, str>) {
        let value: &str = &text;
        self.has_gen_ai |= class.gen_ai;
        let slot = class.slot;
        match slot {
            Slot::Operation => {
                self.operation = Some(well_known(value, &OPERATIONS));
                return;
            }
            Slot::Provider => {
                self.provider = Some(well_known(value, &PROVIDERS));
                return;
            }
            Slot::StatusCode => {
                self.status_error = value.eq_ignore_ascii_case("error");
                return;
            }
            _ => {}
        }
        if let Some(count) = self.count_mut(slot) {
            count.set_str(value);
            return;
        }
        if slot == Slot::FinishReasons {
            // Split before any cap: a capped JSON list was split into a corrupt last reason.
            self.finish_reasons = Some(split_finish_reasons(value));
            return;
        }
        if let Some(d) = self.detail_mut(slot) {
            // A count that is not a non-negative integer is ignored (the tokens stay priced).
            if let Ok(v) = value.trim().parse::<u64>() {
                *d = v;
            }
            return;
        }
        if let Some(out) = self.string_mut(slot) {
            // Values a request controls (ids, model names) are kept capped.
            *out = Some(match text {
                Cow::Borrowed(v) => crate::bound::cap_value(v).into_owned(),
                Cow::Owned(v) => crate::bound::cap_string(v),
            });
            return;
        }
        if let Some(out) = self.dim_mut(slot) {
            // `gen_ai.conversation.id` only fills the session when `session.id` did not.
            if slot != Slot::Conversation || out.is_none() {
                *out = Some(Arc::from(crate::bound::cap_value(value)));
            }
            return;
        }
        match slot {
            Slot::Cost => {
                if let Ok(v) = value.trim().parse::<f64>() {
                    self.reported_cost = Some(v);
                }
            }
            Slot::MaxTokens => self.max_tokens = value.trim().parse().ok(),
            Slot::TimeToFirstChunk => {
                if let Ok(v) = value.trim().parse::<f64>() {
                    self.set_time_to_first_chunk(v);
                }
            }
            Slot::Stream => self.stream = value.trim().parse().ok(),
            Slot::Estimated => self.estimated = value.trim().parse().ok(),
            _ => {}
        }
    }

    pub(crate) fn set_i64(&mut self, name: &str, value: i64) {
        self.put_i64(classify(name), value);
    }

    fn put_i64(&mut self, class: Class, value: i64) {
        self.has_gen_ai |= class.gen_ai;
        if let Some(count) = self.count_mut(class.slot) {
            count.set_i64(value);
            return;
        }
        if let Some(d) = self.detail_mut(class.slot) {
            *d = u64::try_from(value).unwrap_or(0);
            return;
        }
        match class.slot {
            Slot::MaxTokens => self.max_tokens = u64::try_from(value).ok(),
            Slot::Cost => self.reported_cost = Some(value as f64),
            Slot::TimeToFirstChunk => self.set_time_to_first_chunk(value as f64),
            Slot::None | Slot::Custom => {}
            _ => self.set_text(class, Cow::Owned(value.to_string())),
        }
    }

    pub(crate) fn set_u64(&mut self, name: &str, value: u64) {
        self.put_u64(classify(name), value);
    }

    fn put_u64(&mut self, class: Class, value: u64) {
        self.has_gen_ai |= class.gen_ai;
        if let Some(count) = self.count_mut(class.slot) {
            *count = Count::Value(value);
            return;
        }
        if let Some(d) = self.detail_mut(class.slot) {
            *d = value;
            return;
        }
        match class.slot {
            Slot::MaxTokens => self.max_tokens = Some(value),
            Slot::Cost => self.reported_cost = Some(value as f64),
            Slot::TimeToFirstChunk => self.set_time_to_first_chunk(value as f64),
            Slot::None | Slot::Custom => {}
            _ => self.set_text(class, Cow::Owned(value.to_string())),
        }
    }

    pub(crate) fn set_f64(&mut self, name: &str, value: f64) {
        self.put_f64(classify(name), value);
    }

    fn put_f64(&mut self, class: Class, value: f64) {
        self.has_gen_ai |= class.gen_ai;
        if let Some(count) = self.count_mut(class.slot) {
            count.set_f64(value);
            return;
        }
        if let Some(d) = self.detail_mut(class.slot) {
            if value.is_finite() && value >= 0.0 && value.fract() == 0.0 {
                *d = value as u64;
            }
            return;
        }
        match class.slot {
            Slot::Cost => self.reported_cost = Some(value),
            Slot::TimeToFirstChunk => self.set_time_to_first_chunk(value),
            _ => {}
        }
    }

    /// `gen_ai.response.time_to_first_chunk` in seconds, whatever type it was recorded as;
    /// a negative or non-finite value is ignored (it made the metrics' time per output
    /// chunk negative).
    fn set_time_to_first_chunk(&mut self, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            self.time_to_first_chunk = Some(seconds);
        }
    }

    pub(crate) fn set_bool(&mut self, name: &str, value: bool) {
        self.put_bool(classify(name), value);
    }

    fn put_bool(&mut self, class: Class, value: bool) {
        self.has_gen_ai |= class.gen_ai;
        match class.slot {
            Slot::Stream => self.stream = Some(value),
            Slot::Estimated => self.estimated = Some(value),
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
                Value::String(v) => {
                    let class = classify(k);
                    // A custom `llmtel.*` dimension (an app's `llmtel.api_key_id`, one a
                    // request span passed down): the export stage's call keeps it, as the
                    // layer's does, under an interned name.
                    if class.slot == Slot::Custom
                        && let Some(name) = intern_custom_name(k)
                    {
                        f.custom_dimension(class, name, v.as_str());
                    }
                    f.set_text(class, Cow::Borrowed(v.as_str()));
                }
                Value::I64(v) => f.set_i64(k, *v),
                Value::F64(v) => f.set_f64(k, *v),
                Value::Bool(v) => f.set_bool(k, *v),
                Value::Array(opentelemetry::Array::String(v))
                    if k == gen_ai::RESPONSE_FINISH_REASONS =>
                {
                    f.finish_reasons = Some(finish_reasons(v.iter().map(|s| s.as_str())));
                }
                _ => {}
            }
        }
        f
    }

    /// Sets the value of the custom dimension `name` the call already has (read from a span
    /// whose value the export policy rewrote) back to the value the app gave it.
    pub(crate) fn restore_custom(&mut self, name: &str, value: &str) {
        if let Some(slot) = self.dims.custom.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = Arc::from(crate::bound::cap_value(value));
        }
    }

    /// Keeps a custom `llmtel.*` dimension ([`Slot::Custom`]) under its `'static` name.
    fn custom_dimension(&mut self, class: Class, name: &'static str, value: &str) {
        if class.slot != Slot::Custom {
            return;
        }
        let value = Arc::from(crate::bound::cap_value(value));
        if let Some(slot) = self.dims.custom.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = value;
        } else {
            self.dims.custom.push((name, value));
        }
    }
}

impl Visit for SpanFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put_i64(classify(field.name()), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put_u64(classify(field.name()), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put_f64(classify(field.name()), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put_bool(classify(field.name()), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let class = classify(field.name());
        self.custom_dimension(class, field.name(), value);
        self.set_text(class, Cow::Borrowed(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let class = classify(field.name());
        if class.slot == Slot::OtelName && self.name_derived {
            return;
        }
        // A field llmtel does not read (a `gen_ai.*` one only marks the span) is not
        // formatted: `%value` and `?value` fields of the app's own cost a `format!` each.
        if class.slot == Slot::None {
            self.has_gen_ai |= class.gen_ai;
            return;
        }
        // `%value` and `?value` arrive here; Display-formatted strings carry no quotes.
        let s = format!("{value:?}");
        self.custom_dimension(class, field.name(), &s);
        self.set_text(class, Cow::Owned(s));
    }
}

/// The most distinct custom dimension names [`intern_custom_name`] keeps, process-wide.
pub(crate) const MAX_CUSTOM_NAMES: usize = 1_024;

/// The `'static` name [`Dimensions::custom`] keys a custom dimension read from an exported
/// attribute by. Attribute names are not `'static`, so each distinct name is leaked once, at
/// most [`MAX_CUSTOM_NAMES`] of them (each at most [`crate::MAX_VALUE_BYTES`] long):
/// memory stays bounded whatever names spans carry. A name past either bound is not kept
/// (the span keeps its attribute), counted in [`crate::Health::custom_dimensions_dropped`].
/// Only the export stage calls it (tracing's field names are `'static` already).
fn intern_custom_name(name: &str) -> Option<&'static str> {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    if name.len() > crate::MAX_VALUE_BYTES {
        crate::health::inc(&crate::health::COUNTERS.custom_dimensions_dropped);
        return None;
    }
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(kept) = names.get(name) {
        return Some(kept);
    }
    if names.len() >= MAX_CUSTOM_NAMES {
        crate::health::inc(&crate::health::COUNTERS.custom_dimensions_dropped);
        return None;
    }
    let leaked: &'static str = Box::leak(Box::from(name));
    names.insert(leaked);
    Some(leaked)
}

/// Where [`SpanFields`] keeps the value of a field or attribute name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Operation,
    Provider,
    /// `otel.status_code`.
    StatusCode,
    Input,
    Output,
    CacheRead,
    CacheWrite,
    Reasoning,
    AudioInput,
    AudioCacheRead,
    CacheWrite1h,
    ImageInput,
    VideoInput,
    AudioOutput,
    ImageOutput,
    WebSearch,
    CodeInterpreter,
    FileSearch,
    Images,
    InputCharacters,
    InputAudioMs,
    OutputAudioMs,
    /// `otel.name`.
    OtelName,
    System,
    RequestModel,
    ResponseModel,
    ResponseId,
    FinishReasons,
    ErrorType,
    CostSource,
    ServiceTier,
    SearchContextSize,
    User,
    Session,
    /// `gen_ai.conversation.id`: the session, unless `session.id` set it.
    Conversation,
    Feature,
    Tenant,
    /// `gen_ai.usage.cost`, `llmtel.cost.reported`.
    Cost,
    MaxTokens,
    Stream,
    Estimated,
    TimeToFirstChunk,
    /// Any other `llmtel.*` name outside `llmtel.cost.*` and `llmtel.usage.*`: a custom
    /// dimension when recorded as a string.
    Custom,
    /// Not read.
    None,
}

/// A name's [`Slot`], and whether it is a `gen_ai.*` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Class {
    slot: Slot,
    gen_ai: bool,
}

/// The slot of a field or attribute name: one comparison chain per recorded value (each
/// comparison checks the length first), where there were one per kind of slot.
fn classify(name: &str) -> Class {
    use llmtel_semconv::openai;
    let slot = match name {
        gen_ai::OPERATION_NAME => Slot::Operation,
        gen_ai::PROVIDER_NAME => Slot::Provider,
        "otel.status_code" => Slot::StatusCode,
        gen_ai::USAGE_INPUT_TOKENS => Slot::Input,
        gen_ai::USAGE_OUTPUT_TOKENS => Slot::Output,
        gen_ai::USAGE_CACHE_READ_INPUT_TOKENS => Slot::CacheRead,
        gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS | gen_ai::USAGE_CACHE_WRITE_INPUT_TOKENS => {
            Slot::CacheWrite
        }
        gen_ai::USAGE_REASONING_OUTPUT_TOKENS => Slot::Reasoning,
        lt::USAGE_AUDIO_INPUT_TOKENS => Slot::AudioInput,
        lt::USAGE_AUDIO_CACHE_READ_INPUT_TOKENS => Slot::AudioCacheRead,
        lt::USAGE_CACHE_CREATION_1H_INPUT_TOKENS => Slot::CacheWrite1h,
        lt::USAGE_IMAGE_INPUT_TOKENS => Slot::ImageInput,
        lt::USAGE_VIDEO_INPUT_TOKENS => Slot::VideoInput,
        lt::USAGE_AUDIO_OUTPUT_TOKENS => Slot::AudioOutput,
        lt::USAGE_IMAGE_OUTPUT_TOKENS => Slot::ImageOutput,
        lt::USAGE_WEB_SEARCH_REQUESTS => Slot::WebSearch,
        lt::USAGE_CODE_INTERPRETER_SESSIONS => Slot::CodeInterpreter,
        lt::USAGE_FILE_SEARCH_CALLS => Slot::FileSearch,
        lt::USAGE_IMAGES => Slot::Images,
        lt::USAGE_INPUT_CHARACTERS => Slot::InputCharacters,
        lt::USAGE_INPUT_AUDIO_MS => Slot::InputAudioMs,
        lt::USAGE_OUTPUT_AUDIO_MS => Slot::OutputAudioMs,
        "otel.name" => Slot::OtelName,
        gen_ai::SYSTEM => Slot::System,
        gen_ai::REQUEST_MODEL => Slot::RequestModel,
        gen_ai::RESPONSE_MODEL => Slot::ResponseModel,
        gen_ai::RESPONSE_ID => Slot::ResponseId,
        gen_ai::RESPONSE_FINISH_REASONS => Slot::FinishReasons,
        common::ERROR_TYPE => Slot::ErrorType,
        lt::COST_SOURCE => Slot::CostSource,
        lt::RESPONSE_SERVICE_TIER | openai::RESPONSE_SERVICE_TIER => Slot::ServiceTier,
        lt::REQUEST_SEARCH_CONTEXT_SIZE => Slot::SearchContextSize,
        lt::USER_ID => Slot::User,
        lt::SESSION_ID => Slot::Session,
        gen_ai::CONVERSATION_ID => Slot::Conversation,
        lt::FEATURE => Slot::Feature,
        lt::TENANT => Slot::Tenant,
        gen_ai::USAGE_COST | lt::COST_REPORTED => Slot::Cost,
        gen_ai::REQUEST_MAX_TOKENS => Slot::MaxTokens,
        gen_ai::REQUEST_STREAM => Slot::Stream,
        lt::COST_ESTIMATED => Slot::Estimated,
        gen_ai::RESPONSE_TIME_TO_FIRST_CHUNK => Slot::TimeToFirstChunk,
        _ if name.starts_with("llmtel.")
            && !name.starts_with("llmtel.cost.")
            && !name.starts_with("llmtel.usage.") =>
        {
            Slot::Custom
        }
        _ => Slot::None,
    };
    Class {
        slot,
        gen_ai: llmtel_semconv::is_gen_ai_field(name),
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

/// The most finish reasons kept for one call (one per choice; a response with more choices
/// keeps the first ones, counted in [`crate::Health::values_truncated`]).
pub const MAX_FINISH_REASONS: usize = 64;

/// Splits a recorded finish-reasons value (`stop`, `["stop","length"]`, `stop,length`), then
/// caps it as [`finish_reasons`] does.
pub(crate) fn split_finish_reasons(raw: &str) -> Vec<String> {
    finish_reasons(
        raw.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|s| s.trim().trim_matches('"')),
    )
}

/// The finish reasons kept of `reasons`: the non-empty ones, at most [`MAX_FINISH_REASONS`],
/// each capped by [`crate::cap_value`]; each cap counted in
/// [`crate::Health::values_truncated`]. The same on the layer's side (a recorded string) and
/// the export stage's (a string or an array attribute).
pub(crate) fn finish_reasons<'a>(reasons: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    for reason in reasons.into_iter().filter(|r| !r.is_empty()) {
        if out.len() == MAX_FINISH_REASONS {
            crate::health::inc(&crate::health::COUNTERS.values_truncated);
            break;
        }
        out.push(crate::bound::cap_value(reason).into_owned());
    }
    out
}

/// The `gen_ai.provider.name` spelling of a provider named the way the deprecated
/// `gen_ai.system` or other instrumentations name it (OpenInference's `llm.provider`:
/// `google`, `aws`, `azure`, `mistralai`, `xai`); a well-known name, or one it does not know,
/// is returned as it is.
///
/// ```
/// assert_eq!(llmtel::provider_from_system("vertex_ai"), "gcp.vertex_ai");
/// assert_eq!(llmtel::provider_from_system("mistralai"), "mistral_ai");
/// assert_eq!(llmtel::provider_from_system("openai"), "openai");
/// ```
pub fn provider_from_system(system: &str) -> &str {
    match system {
        "gemini" | "google" | "google_ai_studio" => "gcp.gemini",
        "vertex_ai" | "vertexai" => "gcp.vertex_ai",
        "az.ai.openai" | "azure" | "azure_openai" => "azure.ai.openai",
        "az.ai.inference" => "azure.ai.inference",
        "bedrock" | "aws_bedrock" | "aws" => "aws.bedrock",
        "mistral" | "mistralai" => "mistral_ai",
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
        // What is kept of a malformed value is capped (the caller chose its size).
        c.set_str(&"x".repeat(1 << 20));
        let Count::Malformed(kept) = &c else {
            panic!("{c:?}")
        };
        assert!(
            kept.len() <= crate::bound::MAX_VALUE_BYTES,
            "{}",
            kept.len()
        );
    }

    #[test]
    fn time_to_first_chunk_is_read_from_any_type_and_nonsense_is_ignored() {
        let name = gen_ai::RESPONSE_TIME_TO_FIRST_CHUNK;
        let read = |set: &dyn Fn(&mut SpanFields)| {
            let mut f = SpanFields::default();
            set(&mut f);
            f.time_to_first_chunk
        };
        assert_eq!(read(&|f| f.set_f64(name, 0.25)), Some(0.25));
        assert_eq!(read(&|f| f.set_i64(name, 2)), Some(2.0));
        assert_eq!(read(&|f| f.set_u64(name, 3)), Some(3.0));
        assert_eq!(read(&|f| f.set_str(name, "0.3")), Some(0.3));
        assert_eq!(read(&|f| f.set_f64(name, -1.0)), None);
        assert_eq!(read(&|f| f.set_f64(name, f64::NAN)), None);
        assert_eq!(read(&|f| f.set_i64(name, -5)), None);
    }

    /// Every name llmtel reads, and some it does not.
    const NAMES: &[&str] = &[
        gen_ai::OPERATION_NAME,
        gen_ai::PROVIDER_NAME,
        "otel.status_code",
        gen_ai::USAGE_INPUT_TOKENS,
        gen_ai::USAGE_OUTPUT_TOKENS,
        gen_ai::USAGE_CACHE_READ_INPUT_TOKENS,
        gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS,
        gen_ai::USAGE_CACHE_WRITE_INPUT_TOKENS,
        gen_ai::USAGE_REASONING_OUTPUT_TOKENS,
        lt::USAGE_AUDIO_INPUT_TOKENS,
        lt::USAGE_AUDIO_CACHE_READ_INPUT_TOKENS,
        lt::USAGE_CACHE_CREATION_1H_INPUT_TOKENS,
        lt::USAGE_IMAGE_INPUT_TOKENS,
        lt::USAGE_VIDEO_INPUT_TOKENS,
        lt::USAGE_AUDIO_OUTPUT_TOKENS,
        lt::USAGE_IMAGE_OUTPUT_TOKENS,
        lt::USAGE_WEB_SEARCH_REQUESTS,
        lt::USAGE_CODE_INTERPRETER_SESSIONS,
        lt::USAGE_FILE_SEARCH_CALLS,
        lt::USAGE_IMAGES,
        lt::USAGE_INPUT_CHARACTERS,
        lt::USAGE_INPUT_AUDIO_MS,
        lt::USAGE_OUTPUT_AUDIO_MS,
        "otel.name",
        gen_ai::SYSTEM,
        gen_ai::REQUEST_MODEL,
        gen_ai::RESPONSE_MODEL,
        gen_ai::RESPONSE_ID,
        gen_ai::RESPONSE_FINISH_REASONS,
        common::ERROR_TYPE,
        lt::COST_SOURCE,
        lt::RESPONSE_SERVICE_TIER,
        llmtel_semconv::openai::RESPONSE_SERVICE_TIER,
        lt::REQUEST_SEARCH_CONTEXT_SIZE,
        lt::USER_ID,
        lt::SESSION_ID,
        gen_ai::CONVERSATION_ID,
        lt::FEATURE,
        lt::TENANT,
        gen_ai::USAGE_COST,
        lt::COST_REPORTED,
        gen_ai::REQUEST_MAX_TOKENS,
        gen_ai::REQUEST_STREAM,
        lt::COST_ESTIMATED,
        gen_ai::RESPONSE_TIME_TO_FIRST_CHUNK,
        gen_ai::REQUEST_TEMPERATURE,
        gen_ai::REQUEST_TOP_P,
        gen_ai::REQUEST_SEED,
        lt::COST_INPUT,
        lt::USAGE_NOTE,
        "llmtel.team",
        "llmtel.region",
        "llmtel.experiment.arm",
        "http.request.method",
        "url.full",
        "message",
        "",
        "gen_ai",
        "gen_ai.",
        "llmtel.",
        "llmtel.cost",
        "user",
        "session.id.extra",
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
        "g",
        "h",
        "i",
        "j",
        "k",
        "l",
        "m",
        "n",
        "o",
        "p",
    ];

    #[test]
    fn every_name_read_has_its_own_slot() {
        // Each name llmtel reads lands in a slot no other name shares, but the aliases.
        let mut seen: Vec<(Slot, &str)> = Vec::new();
        for name in NAMES {
            let slot = classify(name).slot;
            if matches!(slot, Slot::None | Slot::Custom) {
                continue;
            }
            if let Some((_, other)) = seen.iter().find(|(s, _)| *s == slot) {
                let aliases = [
                    (
                        gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS,
                        gen_ai::USAGE_CACHE_WRITE_INPUT_TOKENS,
                    ),
                    (
                        lt::RESPONSE_SERVICE_TIER,
                        llmtel_semconv::openai::RESPONSE_SERVICE_TIER,
                    ),
                    (gen_ai::USAGE_COST, lt::COST_REPORTED),
                ];
                assert!(
                    aliases.contains(&(other, name)),
                    "{name} and {other} share {slot:?}"
                );
            }
            seen.push((slot, name));
        }
        assert_eq!(classify("llmtel.team").slot, Slot::Custom);
        assert_eq!(classify(lt::USAGE_NOTE).slot, Slot::None);
        assert_eq!(classify(lt::COST_INPUT).slot, Slot::None);
        assert!(classify(gen_ai::REQUEST_TOP_P).gen_ai);
        assert!(!classify("user").gen_ai);
    }

    /// The names of custom dimensions read from attributes are kept once each, and no more
    /// than the bound: a name past it (or too long) is not kept, and is counted.
    #[test]
    fn custom_names_from_attributes_are_bounded_and_counted() {
        let dropped = || crate::health().custom_dimensions_dropped;
        let a = intern_custom_name("llmtel.bound_test_a");
        assert_eq!(a, Some("llmtel.bound_test_a"));
        assert!(std::ptr::eq(
            a.unwrap_or_default(),
            intern_custom_name("llmtel.bound_test_a").unwrap_or_default()
        ));
        let before = dropped();
        assert_eq!(
            intern_custom_name(&"x".repeat(crate::MAX_VALUE_BYTES + 1)),
            None
        );
        assert_eq!(dropped(), before + 1);
        for i in 0..MAX_CUSTOM_NAMES {
            let _ = intern_custom_name(&format!("llmtel.bound_test_{i}"));
        }
        let before = dropped();
        assert_eq!(intern_custom_name("llmtel.one_too_many"), None);
        assert_eq!(dropped(), before + 1);
        // A name kept before the bound was reached is still found.
        assert_eq!(intern_custom_name("llmtel.bound_test_a"), a);
        let f = SpanFields::from_attributes(&[opentelemetry::KeyValue::new(
            "llmtel.one_too_many",
            "v",
        )]);
        assert!(f.dims.custom.is_empty());
    }

    /// A `%value` or `?value` field llmtel does not read is never formatted by its layer.
    #[test]
    fn fields_not_read_are_not_formatted() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        use tracing_subscriber::prelude::*;
        static FORMATTED: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl fmt::Debug for Counted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                FORMATTED.fetch_add(1, Relaxed);
                f.write_str("counted")
            }
        }
        let subscriber = tracing_subscriber::registry().with(crate::LlmLayer::new());
        tracing::subscriber::with_default(subscriber, || {
            let span = crate::llm_span!(
                "chat",
                "openai",
                "gpt-4o-mini",
                app.payload = ?Counted,
                gen_ai.request.temperature = ?Counted,
                later = tracing::field::Empty,
            );
            span.record("later", tracing::field::debug(Counted));
            // A field it reads is formatted, once.
            span.record("gen_ai.response.id", tracing::field::debug(Counted));
        });
        assert_eq!(FORMATTED.load(Relaxed), 1);
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
