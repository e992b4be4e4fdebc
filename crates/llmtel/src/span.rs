//! Opening LLM spans and recording usage, responses and errors on them.

use llmtel_pricing::Usage;
use llmtel_semconv::{common, gen_ai, llmtel as lt};
use tracing::Span;

use crate::content;
use crate::enrich::clamp_i64;

/// Opens an LLM-call span named `{operation} {model}` with every GenAI field declared.
///
/// Arguments: operation (`"chat"`, `"embeddings"`, ... see [`llmtel_semconv::operation`]),
/// provider (`gen_ai.provider.name`: `"openai"`, `"anthropic"`, `"gcp.gemini"`, ...), request
/// model, then any extra fields in `tracing`'s syntax (at most 4: a callsite holds 32 fields).
///
/// Declared and left empty, to record later with the helpers or `span.record(..)`:
/// request parameters (`gen_ai.request.temperature`, `max_tokens`, `stream`), the response
/// (`gen_ai.response.id`, `model`, `finish_reasons`, `time_to_first_chunk`), usage (input,
/// output, cache read, cache creation, reasoning), a reported cost (`gen_ai.usage.cost`,
/// `llmtel.cost.source`), estimate markers (`llmtel.cost.estimated`,
/// `llmtel.cost.estimate_method`, see [`crate::estimate`]), `error.type` with the OpenTelemetry status, the opt-in content
/// fields, and the app dimensions `user.id`, `gen_ai.conversation.id`, `llmtel.feature`,
/// `llmtel.tenant` (which also inherit from ancestor spans).
///
/// ```
/// use tracing_subscriber::prelude::*;
/// # let subscriber = tracing_subscriber::registry().with(llmtel::layer());
/// # tracing::subscriber::with_default(subscriber, || {
/// let span = llmtel::llm_span!("chat", "openai", "gpt-4o", attempt = 1);
/// span.record("gen_ai.request.max_tokens", 512);
/// span.record("user.id", "alice");
/// let _entered = span.enter();
/// // ... call the model ...
/// llmtel::record_response(&span, "chatcmpl-123", "gpt-4o-2024-08-06", &["stop"]);
/// llmtel::record_usage(&span, &llmtel::Usage { input_tokens: 1200, output_tokens: 300, cache_read_tokens: 1024, ..Default::default() });
/// # });
/// ```
#[macro_export]
macro_rules! llm_span {
    ($operation:expr, $provider:expr, $model:expr $(, $($fields:tt)*)?) => {{
        let __llmtel_op: &str = $operation;
        let __llmtel_model: &str = $model;
        // The model name can come from a request: capped (`llmtel::cap_value`).
        let __llmtel_model_capped = $crate::cap_value(__llmtel_model);
        let __llmtel_model: &str = &__llmtel_model_capped;
        $crate::__private::tracing::info_span!(
            target: "llmtel",
            "gen_ai",
            "otel.name" = %::core::format_args!("{} {}", __llmtel_op, __llmtel_model),
            "otel.kind" = "client",
            "otel.status_code" = $crate::__private::Empty,
            "otel.status_description" = $crate::__private::Empty,
            "gen_ai.operation.name" = __llmtel_op,
            "gen_ai.provider.name" = $provider,
            "gen_ai.request.model" = __llmtel_model,
            "gen_ai.request.temperature" = $crate::__private::Empty,
            "gen_ai.request.max_tokens" = $crate::__private::Empty,
            "gen_ai.request.stream" = $crate::__private::Empty,
            "gen_ai.response.id" = $crate::__private::Empty,
            "gen_ai.response.model" = $crate::__private::Empty,
            "gen_ai.response.finish_reasons" = $crate::__private::Empty,
            "gen_ai.response.time_to_first_chunk" = $crate::__private::Empty,
            "gen_ai.usage.input_tokens" = $crate::__private::Empty,
            "gen_ai.usage.output_tokens" = $crate::__private::Empty,
            "gen_ai.usage.cache_read.input_tokens" = $crate::__private::Empty,
            "gen_ai.usage.cache_creation.input_tokens" = $crate::__private::Empty,
            "gen_ai.usage.reasoning.output_tokens" = $crate::__private::Empty,
            "gen_ai.usage.cost" = $crate::__private::Empty,
            "llmtel.cost.source" = $crate::__private::Empty,
            "llmtel.cost.estimated" = $crate::__private::Empty,
            "llmtel.cost.estimate_method" = $crate::__private::Empty,
            "error.type" = $crate::__private::Empty,
            "user.id" = $crate::__private::Empty,
            "gen_ai.conversation.id" = $crate::__private::Empty,
            "llmtel.feature" = $crate::__private::Empty,
            "llmtel.tenant" = $crate::__private::Empty,
            $($($fields)*)?
        )
    }};
}

/// Whether a span was opened by [`llm_span!`] (its target and name), whose `otel.name` is
/// always `{operation} {request model}`.
pub(crate) fn is_llm_span(meta: &tracing::Metadata<'_>) -> bool {
    meta.name() == LLM_SPAN_NAME && meta.target() == LLM_SPAN_TARGET
}

/// The target and name of [`llm_span!`]'s spans.
const LLM_SPAN_TARGET: &str = "llmtel";
const LLM_SPAN_NAME: &str = "gen_ai";

/// Opens a span for an agent, tool, retrieval or workflow step, named per the GenAI
/// conventions (`invoke_agent support-bot`, `execute_tool search`, `retrieval docs`).
///
/// These spans are not priced; LLM calls nested in them share their trace and inherit their
/// app dimensions.
///
/// ```
/// let span = llmtel::gen_ai_span!("execute_tool", "lookup_order", "gen_ai.tool.name" = "lookup_order");
/// ```
#[macro_export]
macro_rules! gen_ai_span {
    ($operation:expr, $name:expr $(, $($fields:tt)*)?) => {{
        let __llmtel_op: &str = $operation;
        let __llmtel_name: &str = $name;
        $crate::__private::tracing::info_span!(
            target: "llmtel",
            "gen_ai.step",
            "otel.name" = %::core::format_args!("{} {}", __llmtel_op, __llmtel_name),
            "otel.kind" = "internal",
            "otel.status_code" = $crate::__private::Empty,
            "gen_ai.operation.name" = __llmtel_op,
            "error.type" = $crate::__private::Empty,
            "user.id" = $crate::__private::Empty,
            "llmtel.feature" = $crate::__private::Empty,
            $($($fields)*)?
        )
    }};
}

/// Records token usage on an LLM span as **integers** (`gen_ai.usage.*`).
///
/// `input_tokens` is inclusive of cached input tokens; `output_tokens` of reasoning tokens.
/// Cache and reasoning counts are recorded only when non-zero.
pub fn record_usage(span: &Span, usage: &Usage) {
    let counts = [
        clamp_i64(usage.input_tokens),
        clamp_i64(usage.output_tokens),
        clamp_i64(usage.cache_read_tokens),
        clamp_i64(usage.cache_write_tokens),
        clamp_i64(usage.reasoning_tokens),
    ];
    // One record (every layer visits the span once) when the span declares the usage fields
    // where `llm_span!` puts them; otherwise one record per field.
    if let Some((meta, f)) = span.metadata().and_then(|m| Some((m, usage_fields(m)?))) {
        let v = |i: usize| (i < 2 || counts[i] > 0).then_some(&counts[i] as &dyn tracing::Value);
        span.record_all(&meta.fields().value_set(&[
            (&f[0], v(0)),
            (&f[1], v(1)),
            (&f[2], v(2)),
            (&f[3], v(3)),
            (&f[4], v(4)),
        ]));
        return;
    }
    for (i, name) in USAGE_FIELDS.iter().enumerate() {
        if i < 2 || counts[i] > 0 {
            span.record(*name, counts[i]);
        }
    }
}

/// The usage fields, in the order of `llm_span!`'s declaration (from [`USAGE_AT`]).
const USAGE_FIELDS: [&str; 5] = [
    gen_ai::USAGE_INPUT_TOKENS,
    gen_ai::USAGE_OUTPUT_TOKENS,
    gen_ai::USAGE_CACHE_READ_INPUT_TOKENS,
    gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS,
    gen_ai::USAGE_REASONING_OUTPUT_TOKENS,
];

/// Where `llm_span!` declares the first usage field.
const USAGE_AT: usize = 14;

/// The span's usage fields when it declares them where `llm_span!` does (checked by name).
fn usage_fields(meta: &tracing::Metadata<'_>) -> Option<[tracing::field::Field; 5]> {
    let mut it = meta.fields().iter().skip(USAGE_AT);
    let f = [it.next()?, it.next()?, it.next()?, it.next()?, it.next()?];
    f.iter()
        .zip(USAGE_FIELDS)
        .all(|(f, name)| f.name() == name)
        .then_some(f)
}

/// Records the modality, tool and per-unit counts of an LLM call (audio and image tokens,
/// web searches, images, characters, audio seconds) as `llmtel.usage.*` integer attributes
/// of its exported span, where llmtel's exporter stage prices them, and for llmtel's layer,
/// which prices the call with them for its sinks (budgets, metrics, trace summaries). Zero
/// counts are not recorded.
///
/// ```
/// let span = llmtel::llm_span!("generate_content", "openai", "tts-1");
/// let details = llmtel::pricing::UsageDetails { input_characters: 50, ..Default::default() };
/// llmtel::record_usage_details(&span, &details);
/// ```
pub fn record_usage_details(span: &Span, details: &llmtel_pricing::UsageDetails) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let d = details;
    let counts = [
        (lt::USAGE_AUDIO_INPUT_TOKENS, d.audio_input_tokens),
        (
            lt::USAGE_AUDIO_CACHE_READ_INPUT_TOKENS,
            d.cache_read_audio_tokens,
        ),
        (lt::USAGE_IMAGE_INPUT_TOKENS, d.image_input_tokens),
        (lt::USAGE_VIDEO_INPUT_TOKENS, d.video_input_tokens),
        (
            lt::USAGE_CACHE_CREATION_1H_INPUT_TOKENS,
            d.cache_write_1h_tokens,
        ),
        (lt::USAGE_AUDIO_OUTPUT_TOKENS, d.audio_output_tokens),
        (lt::USAGE_IMAGE_OUTPUT_TOKENS, d.image_output_tokens),
        (lt::USAGE_WEB_SEARCH_REQUESTS, d.web_search_queries),
        (
            lt::USAGE_CODE_INTERPRETER_SESSIONS,
            d.code_interpreter_sessions,
        ),
        (lt::USAGE_FILE_SEARCH_CALLS, d.file_search_calls),
        (lt::USAGE_IMAGES, d.images),
        (lt::USAGE_INPUT_CHARACTERS, d.input_characters),
        (lt::USAGE_INPUT_AUDIO_MS, d.input_audio_ms),
        (lt::USAGE_OUTPUT_AUDIO_MS, d.output_audio_ms),
    ];
    if *d == llmtel_pricing::UsageDetails::default() {
        return;
    }
    for (name, n) in counts {
        if n > 0 {
            span.set_attribute(name, clamp_i64(n));
        }
    }
    crate::layer::with_span_fields(span, |f| {
        for (name, n) in counts {
            if n > 0 {
                f.set_u64(name, n);
            }
        }
    });
}

/// Records the service tier the provider says served the call under `attribute`
/// (`openai.response.service_tier` for OpenAI, `llmtel.response.service_tier` for the
/// others), for the exporter stage and for llmtel's layer, which both price the call at
/// the tier's rates.
pub fn record_service_tier(span: &Span, attribute: &'static str, tier: &str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let tier = crate::bound::cap_value(tier);
    span.set_attribute(attribute, tier.clone().into_owned());
    crate::layer::with_span_fields(span, |f| f.set_str(attribute, &tier));
}

/// Records the response id, the model that answered and the finish reasons.
///
/// Finish reasons are recorded as a JSON array string; llmtel's exporter turns it into a
/// string-array attribute.
pub fn record_response(span: &Span, id: &str, model: &str, finish_reasons: &[&str]) {
    if !id.is_empty() {
        span.record(gen_ai::RESPONSE_ID, &*crate::cap_value(id));
    }
    if !model.is_empty() {
        span.record(gen_ai::RESPONSE_MODEL, &*crate::cap_value(model));
    }
    if !finish_reasons.is_empty() {
        let json = serde_json::to_string(finish_reasons).unwrap_or_default();
        span.record(gen_ai::RESPONSE_FINISH_REASONS, json.as_str());
    }
}

/// Marks the call failed: `error.type` (a low-cardinality class such as `rate_limit`,
/// `timeout`, `context_length_exceeded`) and the error status with `message`.
///
/// `message` is treated as content: a provider's error message (and the `Display` of most
/// client errors, which carry it) can quote the prompt. So it is recorded only under the
/// content capture policy ([`crate::ContentCapture`]): with capture on, truncated and through
/// the redaction hook; with capture off the status description is the `error.type` alone.
/// For a description you know quotes nothing (an HTTP status line, your own wording), use
/// [`record_error_status`]. Either way the text goes through [`crate::redact()`] here already
/// (an error's `Display` often names a URL with its key), so log layers that print span
/// fields never see a key either; `error.type` is capped ([`crate::cap_value`]).
pub fn record_error(span: &Span, error_type: &str, message: &str) {
    match content::prepare(message) {
        Some(described) => record_error_status(span, error_type, &described),
        None => record_error_status(span, error_type, error_type),
    }
}

/// Marks the call failed like [`record_error`], with a description that carries no content
/// (an HTTP status line such as `429 Too Many Requests`, a transport error without its URL,
/// wording of your own): it is recorded whatever the content policy, capped
/// (to [`MAX_STATUS_BYTES`] at a character boundary) and through [`crate::redact()`].
pub fn record_error_status(span: &Span, error_type: &str, description: &str) {
    span.record(common::ERROR_TYPE, &*crate::cap_value(error_type));
    span.record("otel.status_code", "error");
    // Redacted before the cut (a key cut short at the limit escaped redaction), over a
    // bounded prefix: longer than any credential past the limit.
    let head = &description[..description.floor_char_boundary(MAX_STATUS_BYTES + 4096)];
    let redacted = crate::redact::redact(head);
    span.record(
        "otel.status_description",
        &redacted[..redacted.floor_char_boundary(MAX_STATUS_BYTES)],
    );
}

/// The longest status description [`record_error_status`] records, in bytes.
pub const MAX_STATUS_BYTES: usize = 1024;

/// Records a cost reported by the provider (e.g. OpenRouter's `usage.cost`) or computed by
/// the app, in USD. It wins over the catalog's price (`llmtel.cost.source`).
pub fn record_cost(span: &Span, usd: f64, source: ReportedBy) {
    span.record(gen_ai::USAGE_COST, usd);
    span.record(lt::COST_SOURCE, source.as_str());
}

/// Who reported a cost given to [`record_cost`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportedBy {
    /// The provider's response carried it.
    Provider,
    /// The application computed it.
    App,
}

impl ReportedBy {
    fn as_str(self) -> &'static str {
        match self {
            ReportedBy::Provider => "provider",
            ReportedBy::App => "app",
        }
    }
}

/// Records prompt messages (`gen_ai.input.messages`, JSON) **only if** content capture is on
/// ([`crate::ContentCapture`]), truncated and passed through the redaction hook. The span must
/// declare the field (add `"gen_ai.input.messages" = tracing::field::Empty` to `llm_span!`).
pub fn record_input_messages(span: &Span, messages_json: &str) {
    if let Some(v) = content::prepare(messages_json) {
        span.record(gen_ai::INPUT_MESSAGES, v.as_str());
    }
}

/// Records output messages (`gen_ai.output.messages`, JSON) under the same rules as
/// [`record_input_messages`].
pub fn record_output_messages(span: &Span, messages_json: &str) {
    if let Some(v) = content::prepare(messages_json) {
        span.record(gen_ai::OUTPUT_MESSAGES, v.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llm_span_declares_the_usage_fields_where_record_usage_looks_first() {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = crate::llm_span!("chat", "openai", "gpt-4o-mini", "user.id" = "u");
            let meta = span.metadata().expect("the registry enables the span");
            assert!(
                usage_fields(meta).is_some(),
                "llm_span!'s fields moved: update USAGE_AT"
            );
        });
    }
}
