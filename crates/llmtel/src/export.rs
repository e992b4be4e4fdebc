//! llmtel's export pipeline: [`GenAiExporter`] normalises GenAI spans and enforces the
//! content and secrets policy off the request path; [`ExportQueue`] is a bounded, batching
//! span processor on its own thread that counts every span it drops.

use std::borrow::Cow;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::sync::Arc;

use llmtel_pricing::Catalog;
use opentelemetry::trace::Status;
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::call::LlmCall;
use crate::content::{self, ContentCapture};
use crate::enrich::{self, Priced, Pricer, WarnTo};
use crate::fields::SpanFields;
use crate::health::{COUNTERS, add, inc};
use crate::hold::Hold;
use crate::redact::{fingerprint, mark_last_bytes, redact};
use crate::worker::{Job, Worker, WorkerError};

/// Attributes that hold token counts and other integers in the GenAI conventions. Values
/// recorded as strings (tracing-opentelemetry exports `u64` fields as `"1234"`) are exported
/// as integers.
const INTEGER_KEYS: &[&str] = &[
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.request.max_tokens",
    "gen_ai.request.seed",
    "gen_ai.request.top_k",
    "gen_ai.request.choice.count",
    "server.port",
];

/// Attributes that carry prompt or response content, or free text that can quote it (an
/// evaluator's explanation, a user's feedback comment, a provider's error message).
const CONTENT_KEYS: &[&str] = &[
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "gen_ai.completion",
    "input.value",
    "output.value",
    "gen_ai.evaluation.explanation",
    "error.message",
    // Opt-in in the GenAI conventions ("may contain sensitive information"): a tool call's
    // arguments and result, the tool definitions, a retrieval's query and documents.
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.definitions",
    "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.documents",
    // OpenInference: prompt template variables, a reranker's query.
    "llm.prompt_template.variables",
    "reranker.query",
];

/// Prefixes of OpenInference attributes that carry content (messages, prompts, retrieved and
/// reranked documents, embedded text), flattened as `prefix.N.…`.
const CONTENT_PREFIXES: &[&str] = &[
    "llm.input_messages",
    "llm.output_messages",
    "llm.prompts",
    "retrieval.documents",
    "reranker.input_documents",
    "reranker.output_documents",
    "embedding.embeddings",
];

/// Longest status description exported, in bytes (longer ones are cut with a marker).
const MAX_STATUS_BYTES: usize = 1024;

/// Whether an attribute carries content (see [`CONTENT_KEYS`]).
fn is_content_key(key: &str) -> bool {
    (may_end(key, MAY_BE_CONTENT) && CONTENT_KEYS.contains(&key))
        || (matches!(key.as_bytes().first(), Some(b'l' | b'r' | b'e'))
            && CONTENT_PREFIXES.iter().any(|p| key.starts_with(p)))
}

/// Header names whose `http.{request,response}.header.*` attribute carries a credential.
const SECRET_HEADERS: [&str; 8] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
    "openai-organization",
];

/// Endings of attribute names that carry a credential: the names llmtel's text redaction
/// treats as credentials ([`crate::redact()`]).
const SECRET_SUFFIXES: &[&str] = crate::redact::SECRET_NAME_SUFFIXES;

/// Attribute names (whole, or their last `.` segment) that are a credential: an
/// `#[instrument]`ed function's `token`, `auth`, `pass` or `sig` argument (the whole names
/// text redaction takes for credentials; `key` is left out: `gen_ai.*` and app attributes
/// name lookup keys so).
const SECRET_NAMES: [&str; 5] = ["token", "pwd", "auth", "pass", "sig"];

/// [`KEY_ENDS`] bits: the key may be a credential's / a content attribute's.
const MAY_BE_SECRET: u8 = 1;
const MAY_BE_CONTENT: u8 = 2;

/// By a key's last byte, which of the lists above may hold it (built from the lists, both
/// cases): every attribute of every span is checked against them, and most keys end with a
/// byte none of them ends with.
const KEY_ENDS: [u8; 256] = {
    let mut t = [0u8; 256];
    mark_last_bytes(&mut t, &SECRET_HEADERS, MAY_BE_SECRET);
    mark_last_bytes(&mut t, SECRET_SUFFIXES, MAY_BE_SECRET);
    mark_last_bytes(&mut t, &SECRET_NAMES, MAY_BE_SECRET);
    mark_last_bytes(&mut t, CONTENT_KEYS, MAY_BE_CONTENT);
    t
};

/// Whether `key`'s last byte is one a name of the `bit` lists ends with.
fn may_end(key: &str, bit: u8) -> bool {
    key.as_bytes()
        .last()
        .is_some_and(|&b| KEY_ENDS[usize::from(b)] & bit != 0)
}

/// Applies the secrets and content rules to one attribute (of a span or an event): `false`
/// when it must be dropped. `llmtel.api_key_id` becomes its [`fingerprint`]; every other
/// string value goes through [`crate::redact()`].
fn police_attribute(kv: &mut KeyValue, policy: &ContentCapture) -> bool {
    let key = kv.key.as_str();
    if is_secret_key(key) {
        return false;
    }
    if is_content_key(key) {
        return match &kv.value {
            Value::String(s) => match policy.apply(s.as_str()) {
                Some(v) => {
                    kv.value = Value::String(v.into());
                    true
                }
                None => false,
            },
            Value::Array(Array::String(items)) => {
                let kept: Option<Vec<StringValue>> = items
                    .iter()
                    .map(|s| policy.apply(s.as_str()).map(StringValue::from))
                    .collect();
                match kept {
                    Some(v) => {
                        kv.value = Value::Array(Array::String(v));
                        true
                    }
                    None => false,
                }
            }
            _ => true,
        };
    }
    if key == crate::redact::API_KEY_ID {
        // An API key's id is the key itself in many apps, of any shape (a 32-hex Azure key
        // is not one `redact` recognises): always a fingerprint, never the value.
        match &mut kv.value {
            Value::String(s) => *s = StringValue::from(fingerprint(s.as_str())),
            Value::Array(Array::String(items)) => {
                for s in items.iter_mut() {
                    *s = StringValue::from(fingerprint(s.as_str()));
                }
            }
            _ => {}
        }
        return true;
    }
    match &mut kv.value {
        Value::String(s) => {
            if let Cow::Owned(r) = redact(s.as_str()) {
                *s = StringValue::from(r);
            }
        }
        Value::Array(Array::String(items)) => {
            for s in items.iter_mut() {
                if let Cow::Owned(r) = redact(s.as_str()) {
                    *s = StringValue::from(r);
                }
            }
        }
        _ => {}
    }
    true
}

/// Applies llmtel's secrets and content rules to a list of attributes (a span's, an event's,
/// a link's or a resource's) in place: credential-bearing attributes are removed, content
/// attributes are removed or kept per `policy` (redacted and truncated), every other string
/// goes through [`crate::redact()`]. Returns how many were removed. [`normalize_span`] applies
/// it to every list a span carries; the collector to the resources it forwards.
///
/// ```
/// use opentelemetry::KeyValue;
/// let mut attrs = vec![
///     KeyValue::new("service.name", "billing"),
///     KeyValue::new("deploy.api_key", "sk-live-0123456789abcdef"),
///     KeyValue::new("deploy.url", "https://u:hunter2@example.com"),
/// ];
/// let removed = llmtel::police_attributes(&mut attrs, &llmtel::ContentCapture::default());
/// assert_eq!(removed, 1);
/// assert_eq!(attrs.len(), 2);
/// assert!(!format!("{attrs:?}").contains("hunter2"));
/// ```
pub fn police_attributes(attributes: &mut Vec<KeyValue>, policy: &ContentCapture) -> u32 {
    let before = attributes.len();
    attributes.retain_mut(|kv| police_attribute(kv, policy));
    u32::try_from(before - attributes.len()).unwrap_or(u32::MAX)
}

/// Redacts a span or event name in place.
fn redact_name(name: &mut Cow<'static, str>) {
    if let Cow::Owned(r) = redact(name) {
        *name = Cow::Owned(r);
    }
}

/// Redacts and caps the status description (it often carries an error's `Display`, which
/// can hold a URL with its key).
fn police_status(status: &mut Status) {
    if let Status::Error { description } = status {
        let redacted = redact(description);
        if redacted.len() <= MAX_STATUS_BYTES {
            if let Cow::Owned(r) = redacted {
                *description = Cow::Owned(r);
            }
            return;
        }
        let cut = redacted.floor_char_boundary(MAX_STATUS_BYTES);
        let dropped = redacted.len() - cut;
        *description = Cow::Owned(format!("{}…[truncated {dropped} bytes]", &redacted[..cut]));
    }
}

/// Whether an attribute name can carry a credential; such attributes are never exported.
fn is_secret_key(key: &str) -> bool {
    // Compared without a lowercase copy: this runs for every attribute of every span.
    if !may_end(key, MAY_BE_SECRET) {
        return false;
    }
    let header = strip_prefix_ci(key, "http.request.header.")
        .or_else(|| strip_prefix_ci(key, "http.response.header."));
    // A header is named like any credential too (`x-portkey-api-key`, `x-auth-token`,
    // `ocp-apim-subscription-key`, `private-token`): the rules below, on its name.
    let name = match header {
        Some(h) if SECRET_HEADERS.iter().any(|n| h.eq_ignore_ascii_case(n)) => return true,
        Some(h) => h,
        None => key,
    };
    if SECRET_SUFFIXES
        .iter()
        .any(|suffix| ends_with_ci(name, suffix))
        || crate::redact::ends_with_credential_word(name.as_bytes())
    {
        return true;
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    SECRET_NAMES.iter().any(|n| last.eq_ignore_ascii_case(n))
}

/// `s` without `prefix` (ASCII, compared ignoring case).
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..prefix.len())?;
    // The prefix is ASCII, so a match ends on a character boundary.
    head.eq_ignore_ascii_case(prefix.as_bytes())
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Whether the name `s` ends with `suffix` (ASCII, compared ignoring case, `-` taken for
/// `_`: a header's `x-amz-secret-access-key` as an attribute's `secret_access_key`).
fn ends_with_ci(s: &str, suffix: &str) -> bool {
    let fold = |c: u8| {
        if c == b'-' {
            b'_'
        } else {
            c.to_ascii_lowercase()
        }
    };
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..]
            .iter()
            .zip(suffix.bytes())
            .all(|(&a, b)| fold(a) == fold(b))
}

/// Applies llmtel's export rules to one span, without pricing (see [`GenAiExporter`] for
/// the whole treatment).
///
/// - Every span: credential-bearing attributes are removed; content attributes (prompts,
///   responses, `gen_ai.evaluation.explanation`, `error.message`) are removed when content
///   capture is off, else redacted and truncated; every other string (the span name, the
///   status description, attribute values, event names, event and link attributes) goes through
///   [`crate::redact()`], and the status description is capped at 1 KiB.
/// - Spans with `gen_ai.*` attributes: integer attributes recorded as strings become integers,
///   a JSON-array finish-reasons string becomes a string array, and a key set twice keeps
///   its last value.
///
/// Returns whether the span has `gen_ai.*` attributes.
pub fn normalize_span(span: &mut SpanData, policy: &ContentCapture) -> bool {
    let is_gen_ai = span
        .attributes
        .iter()
        .any(|kv| llmtel_semconv::is_gen_ai_field(kv.key.as_str()));
    let mut dropped = 0u32;
    redact_name(&mut span.name);
    police_status(&mut span.status);
    for event in span.events.events.iter_mut() {
        redact_name(&mut event.name);
        let gone = police_attributes(&mut event.attributes, policy);
        event.dropped_attributes_count = event.dropped_attributes_count.saturating_add(gone);
    }
    for link in span.links.links.iter_mut() {
        let gone = police_attributes(&mut link.attributes, policy);
        link.dropped_attributes_count = link.dropped_attributes_count.saturating_add(gone);
    }
    span.attributes.retain_mut(|kv| {
        if !police_attribute(kv, policy) {
            dropped += 1;
            return false;
        }
        let key = kv.key.as_str();
        // (A finish-reasons array too: the guard let only strings through, so an array
        // attribute was never rewritten, whatever its length or entries.)
        if is_gen_ai && matches!(kv.value, Value::String(_) | Value::Array(Array::String(_))) {
            // Known integer keys, and every `gen_ai.usage.*` count whoever recorded it (rig's
            // `gen_ai.usage.reasoning_tokens` is a `u64`, which tracing-opentelemetry exports
            // as a string).
            if key.starts_with("gen_ai.usage.")
                || key.starts_with("llmtel.usage.")
                || INTEGER_KEYS.contains(&key)
            {
                if let Value::String(s) = &kv.value {
                    let t = s.as_str().trim();
                    if let Ok(v) = t.parse::<i64>() {
                        kv.value = Value::I64(v);
                    } else if let Ok(v) = t.parse::<u64>() {
                        // A `u64` past OTLP's signed integers (tracing-opentelemetry sends it
                        // as a string): the largest integer, as `record_usage` clamps.
                        kv.value = Value::I64(crate::enrich::clamp_i64(v));
                    }
                }
            } else if key == "gen_ai.response.finish_reasons" {
                // Split, then capped (count and length) as the call's are on every side.
                let reasons = match &kv.value {
                    Value::String(s) => Some(crate::fields::split_finish_reasons(s.as_str())),
                    Value::Array(Array::String(v))
                        if v.len() > crate::fields::MAX_FINISH_REASONS
                            || v.iter().any(|r| {
                                // An empty reason is dropped from the call: from the span too.
                                r.as_str().is_empty() || r.as_str().len() > crate::MAX_VALUE_BYTES
                            }) =>
                    {
                        Some(crate::fields::finish_reasons(v.iter().map(|r| r.as_str())))
                    }
                    _ => None,
                };
                if let Some(reasons) = reasons {
                    kv.value = Value::Array(Array::String(
                        reasons.into_iter().map(StringValue::from).collect(),
                    ));
                }
            }
        }
        true
    });
    if is_gen_ai {
        dedup_keep_last(&mut span.attributes);
    }
    span.dropped_attributes_count = span.dropped_attributes_count.saturating_add(dropped);
    is_gen_ai
}

/// Removes every attribute whose key appears again later (the last one wins); returns the
/// mask of the keys kept.
fn dedup_keep_last(attrs: &mut Vec<KeyValue>) -> KeyMask {
    let mut seen = KeyMask::default();
    // Allocated only when a key repeats (rare).
    let mut repeated: Option<Vec<bool>> = None;
    for i in (0..attrs.len()).rev() {
        let key = attrs[i].key.as_str();
        if seen.may_hold(key) && attrs[i + 1..].iter().any(|l| l.key.as_str() == key) {
            repeated.get_or_insert_with(|| vec![false; attrs.len()])[i] = true;
        } else {
            seen.add(key);
        }
    }
    if let Some(repeated) = repeated {
        let mut i = 0;
        attrs.retain(|_| {
            i += 1;
            !repeated[i - 1]
        });
    }
    seen
}

/// A 64-bit summary of a set of attribute keys: a key it does not hold is certainly not in
/// the set, so most keys are dismissed without a string comparison (the export stage
/// compares every attribute of every priced span with the ~15 it adds).
#[derive(Clone, Copy, Debug, Default)]
struct KeyMask(u64);

impl KeyMask {
    /// One of 64 bits, from the key's length, middle byte and last byte.
    fn bit(key: &str) -> u64 {
        let b = key.as_bytes();
        let (mid, last) = match b.last() {
            Some(&last) => (b[b.len() / 2], last),
            None => (0, 0),
        };
        let h = (b.len() as u32)
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add((u32::from(mid) << 8 | u32::from(last)).wrapping_mul(0x85EB_CA6B));
        1 << (h >> 26)
    }

    fn add(&mut self, key: &str) {
        self.0 |= Self::bit(key);
    }

    fn may_hold(self, key: &str) -> bool {
        self.0 & Self::bit(key) != 0
    }
}

/// llmtel's exporter stage: it prices every LLM-call span and writes the cost on it, then
/// hands the batch to the exporter it wraps. It runs on the export thread, never on the
/// request path, and it prices any span with `gen_ai.*` attributes, whoever created it and
/// whatever layers the subscriber has.
///
/// Per span: [`normalize_span`] (integer token counts, content policy, no credentials);
/// then, for a model call, the cost attributes (`gen_ai.usage.cost`, `llmtel.cost.*`,
/// `llmtel.pricing.*`, or `llmtel.cost.unknown_model`), the OpenInference aliases when
/// asked for, and the error status when `error.type` is set and the status is not.
///
/// [`crate::init`] installs it; wrap your own exporter in it when you build your own
/// pipeline:
///
/// ```
/// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
/// let exporter = llmtel::GenAiExporter::new(InMemorySpanExporter::default());
/// let provider = SdkTracerProvider::builder().with_simple_exporter(exporter).build();
/// # drop(provider);
/// ```
#[derive(Debug)]
pub struct GenAiExporter<E> {
    inner: E,
    policy: Option<ContentCapture>,
    pricer: Pricer,
    openinference: bool,
    sinks: Vec<Arc<dyn crate::CallSink>>,
}

impl<E: SpanExporter> GenAiExporter<E> {
    /// Wraps `inner`: prices with the built-in catalog and applies the process-wide content
    /// policy at each export.
    pub fn new(inner: E) -> Self {
        GenAiExporter {
            inner,
            policy: None,
            pricer: Pricer::new(Arc::new(Catalog::builtin().clone()), true),
            openinference: false,
            sinks: Vec::new(),
        }
    }

    /// Hands every exported LLM call to `sink`, on the export thread, priced once for the
    /// exported span and the sink ([`GenAiExporter::process_call`]). The sinks see the calls
    /// of the spans this exporter exports: a span the pipeline does not sample never gets
    /// here. [`crate::init`] runs its sinks here and falls back to the layer for the others.
    pub fn with_sink(mut self, sink: Arc<dyn crate::CallSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Counts priced and unknown-model calls in [`crate::health`] (on by default).
    pub(crate) fn with_health_counting(mut self, on: bool) -> Self {
        self.pricer = self.pricer.counting(on);
        self
    }

    /// Prices one span and hands its call, if it is one, to this exporter's sinks.
    pub(crate) fn process_for_sinks(&self, span: &mut SpanData, policy: &ContentCapture) {
        if self.sinks.is_empty() {
            self.process(span, policy);
            return;
        }
        let Some((f, priced, mut extra)) = self.stage_unapplied(span, policy) else {
            return;
        };
        let call = Self::call_of(span, f, priced);
        let mut from_sinks = Vec::new();
        for sink in &self.sinks {
            // A sink that panics loses its own call, not the batch of spans.
            let handed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sink.on_exported_call(&call, &mut from_sinks);
            }));
            if handed.is_err() {
                inc(&COUNTERS.sink_panics);
            }
        }
        if !from_sinks.is_empty() {
            police_attributes(&mut from_sinks, policy);
            // After the stage's own: a sink's value for the same key wins, as it would
            // replacing them on the span.
            extra.append(&mut from_sinks);
        }
        // The stage's attributes and the sinks' go onto the span in one pass.
        replace_attributes(&mut span.attributes, extra);
    }

    /// Uses `policy` instead of the process-wide one.
    pub fn with_content_capture(mut self, policy: ContentCapture) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Prices with `catalog` (for example the built-in one merged with a user price file).
    pub fn with_catalog(mut self, catalog: impl Into<Arc<Catalog>>) -> Self {
        self.pricer = self.pricer.with_catalog(catalog.into());
        self
    }

    /// Also writes the OpenInference names Arize Phoenix reads (`llm.model_name`,
    /// `llm.token_count.*`, `llm.cost.*`, `openinference.span.kind`). Off by default.
    pub fn with_openinference(mut self, on: bool) -> Self {
        self.openinference = on;
        self
    }

    /// Normalises and, for an LLM call, prices one span.
    pub fn process(&self, span: &mut SpanData, policy: &ContentCapture) {
        let _ = self.stage(span, policy);
    }

    /// As [`process`](Self::process), and returns the span's LLM call as llmtel's layer
    /// hands it to its sinks ([`crate::CallSink`]): priced once, here, for the exported
    /// span and every sink (a collector's budgets, metrics, quality monitor). `None` for a
    /// span that is not a model call.
    pub fn process_call(&self, span: &mut SpanData, policy: &ContentCapture) -> Option<LlmCall> {
        let (f, priced) = self.stage(span, policy)?;
        Some(Self::call_of(span, f, priced))
    }

    /// The call of a span the stage priced.
    fn call_of(span: &SpanData, f: SpanFields, priced: Priced) -> LlmCall {
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        let ids = (span.span_context.trace_id(), span.span_context.span_id());
        crate::layer::call_from_fields(f, priced, &span.name, span.start_time, duration, Some(ids))
    }

    fn stage(&self, span: &mut SpanData, policy: &ContentCapture) -> Option<(SpanFields, Priced)> {
        let (f, priced, extra) = self.stage_unapplied(span, policy)?;
        replace_attributes(&mut span.attributes, extra);
        Some((f, priced))
    }

    /// [`stage`](Self::stage), with the cost attributes handed back instead of set on the
    /// span (the sinks add theirs, and both go on in one pass).
    fn stage_unapplied(
        &self,
        span: &mut SpanData,
        policy: &ContentCapture,
    ) -> Option<(SpanFields, Priced, Vec<KeyValue>)> {
        // The API key id as the app set it, for the call the sinks get: the span's is
        // fingerprinted by the policy below, and the budget sink keys spend by the value
        // reservations were made with (it shows its own fingerprint of it).
        let api_key_id = span
            .attributes
            .iter()
            .rev()
            .find(|kv| kv.key.as_str() == crate::redact::API_KEY_ID)
            .and_then(|kv| match &kv.value {
                Value::String(s) => Some(s.as_str().to_owned()),
                _ => None,
            });
        if !normalize_span(span, policy) {
            return None;
        }
        let mut f = SpanFields::from_attributes(&span.attributes);
        if !f.is_model_call() {
            return None;
        }
        if let Some(v) = api_key_id {
            f.restore_custom(crate::redact::API_KEY_ID, &v);
        }
        // `otel.status_code = "error"` is the span's status here, not an attribute: the call
        // the sinks get fails as the one the layer builds for an unsampled span does.
        f.status_error |= matches!(span.status, Status::Error { .. });
        let priced = self.pricer.price(&f, span.start_time);
        let extra = enrich::attributes(&f, &priced, self.openinference);
        if span.status == Status::Unset {
            if let Some(err) = &f.error_type {
                span.status = Status::error(err.clone());
            } else if f.status_error {
                span.status = Status::error("");
            }
        }
        Some((f, priced, extra))
    }
}

/// Adds `extra` to `attributes`: a key the span already has (e.g. an OpenInference alias
/// recorded by the app, or one a layer set twice) is replaced, not doubled.
/// The later of two equal keys in `extra` wins too.
pub(crate) fn replace_attributes(attributes: &mut Vec<KeyValue>, mut extra: Vec<KeyValue>) {
    if extra.is_empty() {
        return;
    }
    // The later of two equal keys in `extra` wins.
    let added = dedup_keep_last(&mut extra);
    attributes.retain(|a| {
        let key = a.key.as_str();
        !added.may_hold(key) || !extra.iter().any(|e| e.key.as_str() == key)
    });
    attributes.append(&mut extra);
}

impl<E: SpanExporter> SpanExporter for GenAiExporter<E> {
    fn export(
        &self,
        mut batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let policy = self.policy.clone().unwrap_or_else(content::content_capture);
        if crate::late::in_use() {
            crate::late::merge_into(&mut batch);
        }
        for span in &mut batch {
            self.process_for_sinks(span, &policy);
        }
        // On an export queue's thread, a batch is held through a collector outage (after
        // this stage ran, so a retry neither prices again nor loses late attributes).
        let hold = Hold::current();
        let inner = &self.inner;
        async move {
            match hold {
                Some(hold) => hold.export(inner, batch).await,
                None => inner.export(batch).await,
            }
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The default of [`QueueConfig::max_export_batch_bytes`]: 3 MiB, under gRPC's default
/// 4 MiB message limit with room for the resource and the estimate's error.
pub const DEFAULT_MAX_EXPORT_BATCH_BYTES: usize = 3 * 1024 * 1024;

/// Settings of the [`ExportQueue`].
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// Spans held at most; past it new spans are dropped and counted. Default 16384
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// Spans per export call. Default 1024 (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`). The queue keeps
    /// two export calls in flight: at 512 per batch and one in flight it kept up with ~13,000
    /// LLM spans/s on two cores shared with a local collector; at 1024 and two in flight it
    /// keeps up with 20,000/s, also when the collector answers each call 60 ms late
    /// (BENCHMARKS.md, "Load"). With content capture on and long prompts, a smaller batch
    /// keeps fewer spans in each request; [`max_export_batch_bytes`](Self::max_export_batch_bytes)
    /// splits a batch that would still be too big.
    pub max_export_batch_size: usize,
    /// The encoded size an export request is kept under, estimated from its spans: a batch
    /// that would pass it goes out as several requests, each counted on its own. Default 3 MiB
    /// ([`DEFAULT_MAX_EXPORT_BATCH_BYTES`], `LLMTEL_EXPORT_MAX_BATCH_BYTES`), under the 4 MiB
    /// a gRPC receiver takes by default (the OpenTelemetry Collector's, Phoenix's, tonic's).
    /// With content capture on, 1,024 spans of long prompts are 8-16 MiB: sent whole, the
    /// collector refuses them, as `RESOURCE_EXHAUSTED` (which reads as "retry later") or
    /// `OUT_OF_RANGE`. Raise it with the collector's limit (`max_recv_msg_size_mib`); a span
    /// bigger than it on its own still goes out, alone.
    pub max_export_batch_bytes: usize,
    /// Longest wait before a partial batch is exported. Default 2 s (`OTEL_BSP_SCHEDULE_DELAY`).
    pub scheduled_delay: Duration,
    /// Longest wait for a flush or shutdown to finish. Default 10 s.
    pub flush_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_queue_size: 16384,
            max_export_batch_size: 1024,
            max_export_batch_bytes: DEFAULT_MAX_EXPORT_BATCH_BYTES,
            scheduled_delay: Duration::from_secs(2),
            flush_timeout: Duration::from_secs(10),
        }
    }
}

impl QueueConfig {
    /// Defaults overridden by the standard `OTEL_BSP_*` variables where set and valid (an
    /// invalid one is ignored, as `init()` and `builder()` do, which also warn about it on
    /// stderr; [`try_from_env`](Self::try_from_env) refuses it).
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env), each invalid variable warned about once on stderr,
    /// naming it, its value, the setting used instead and what to write: how `init()` and
    /// `builder()` read them (the OpenTelemetry specification's rule for a malformed value:
    /// warn and use the default; `OTEL_BSP_MAX_QUEUE_SIZE=64k` failed `init()`).
    pub(crate) fn warned_from_env() -> Self {
        let (c, warnings) = Self::read_vars(|k| std::env::var(k).ok());
        crate::init::warn_env_each(&warnings);
        c
    }

    /// [`from_env`](Self::from_env) with the variables read through `var`.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        Self::read_vars(var).0
    }

    /// [`from_env`](Self::from_env), or what is wrong with the first variable set to a value
    /// that is not a setting (an `OTEL_BSP_MAX_QUEUE_SIZE=64k` is an error, not silently the
    /// default). `init()` and `builder()` warn about such a value and use the default.
    ///
    /// # Errors
    /// [`InitError::Setting`](crate::InitError::Setting) naming the variable and what to
    /// write.
    pub fn try_from_env() -> Result<Self, crate::InitError> {
        Self::checked_from_vars(|k| std::env::var(k).ok()).map_err(crate::InitError::Setting)
    }

    fn checked_from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        match Self::read_vars(var) {
            (c, w) if w.is_empty() => Ok(c),
            (_, mut w) => Err(w.swap_remove(0)),
        }
    }

    /// The settings the variables give (the default where unset, empty or invalid) and, for
    /// each invalid one, what is wrong with it, the default used instead and what to write.
    fn read_vars(var: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let mut c = QueueConfig::default();
        let mut invalid = Vec::new();
        let mut num = |k: &str, zero_ok: bool, what: &str, default: String| {
            let v = var(k)?;
            let t = v.trim();
            if t.is_empty() {
                return None;
            }
            match t.parse::<u64>() {
                Ok(n) if n > 0 || zero_ok => Some(n),
                _ => {
                    invalid.push(format!(
                        "{k}={} is not {what}, ignored: using {default}; write a whole \
                         number{}",
                        crate::init::quoted(&v),
                        if zero_ok { "" } else { " above 0" }
                    ));
                    None
                }
            }
        };
        let d = QueueConfig::default();
        if let Some(v) = num(
            "OTEL_BSP_MAX_QUEUE_SIZE",
            false,
            "a span count",
            format!("{} (the default)", d.max_queue_size),
        ) {
            c.max_queue_size = usize::try_from(v).unwrap_or(usize::MAX);
        }
        // The batch is held to the queue size: the warning says the size used.
        let batch_default = match d.max_export_batch_size.min(c.max_queue_size) {
            n if n < d.max_export_batch_size => {
                format!("{n} (the default, held to OTEL_BSP_MAX_QUEUE_SIZE)")
            }
            n => format!("{n} (the default)"),
        };
        if let Some(v) = num(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            false,
            "a span count",
            batch_default,
        ) {
            c.max_export_batch_size = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = num(
            "LLMTEL_EXPORT_MAX_BATCH_BYTES",
            false,
            "a size in bytes",
            format!("{} (the default)", d.max_export_batch_bytes),
        ) {
            c.max_export_batch_bytes = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = num(
            "OTEL_BSP_SCHEDULE_DELAY",
            true,
            "a delay in milliseconds",
            format!("{} ms (the default)", d.scheduled_delay.as_millis()),
        ) {
            c.scheduled_delay = Duration::from_millis(v);
        }
        c.max_export_batch_size = c.max_export_batch_size.min(c.max_queue_size);
        (c, invalid)
    }
}

/// A batching [`SpanProcessor`] with a bounded queue and its own export thread, built on
/// llmtel's [`Worker`](crate::worker::Worker).
///
/// `on_end` never blocks: a full queue drops the span and counts it
/// ([`crate::Health::spans_dropped`]). Ending a span does not wake the export thread; it
/// wakes when a batch is full, at the scheduled delay, or for a flush or shutdown. It owns a
/// tokio runtime with one thread (`llmtel-export-io`), so gRPC and HTTP exporters work
/// whether or not the application runs tokio; exporters are built by the closure given to
/// [`ExportQueue::spawn`], inside that runtime. Each batch is priced and sent on the
/// runtime's thread; the queue's thread hands it a batch at a time and keeps at most two
/// export calls in flight, so the next batch goes out while the last one's answer is on its
/// way, and waits when both are out.
///
/// With llmtel's exporter stage ([`GenAiExporter`], which [`crate::init`] and
/// [`crate::builder`] always use) the thread holds a batch through a collector outage: while
/// the collector is unreachable or refuses for now, it retries the batch with backoff (1 s
/// doubling to 5 s) and this queue is the buffer; a shutdown stops waiting within its
/// timeout and says how many spans it could not send. See the README, "When the collector is
/// down, slow or refusing".
pub struct ExportQueue {
    worker: Worker<SpanData>,
    /// Through which a shutdown tells the thread to stop waiting for the collector.
    hold: Arc<Hold>,
    /// The resource, handed to the exporter on its thread before its next export.
    resource: Arc<Mutex<Option<Resource>>>,
    flush_timeout: Duration,
    /// Given each span the queue could not take (full or stopped), on the thread ending it.
    overflow: Option<Overflow>,
}

/// An exporter that sends nothing: the export stage run for its sinks alone.
#[derive(Debug)]
pub(crate) struct NoExport;

impl SpanExporter for NoExport {
    fn export(
        &self,
        _batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        std::future::ready(Ok(()))
    }
}

/// What the export queue does with a span it cannot take, besides counting it.
pub(crate) type Overflow = Arc<dyn Fn(SpanData) + Send + Sync>;

impl fmt::Debug for ExportQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportQueue")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// Why the export thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The OS would not start a thread.
    #[error("llmtel could not start its export thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The exporter could not be built.
    #[error("llmtel could not build the span exporter: {0}")]
    Exporter(String),
}

/// Export calls a queue keeps in flight at once. With one, the thread waited for the
/// collector's answer to each batch before it took the next, and at 20,000 LLM spans/s on
/// two cores shared with a local collector that wait was what filled the queue (BENCHMARKS.md,
/// "Load"). With two, the next batch is priced and sent while the last one's answer is on its
/// way; a slow or unreachable collector still holds the thread once both are out, so the
/// queue stays the buffer and its bound still counts every drop. Until the first export
/// succeeds, and from a failed one until the next that succeeds, one is in flight at a time:
/// a collector that asked for a pause (`Retry-After`, gRPC `RetryInfo`) or is down gets
/// nothing else meanwhile.
pub(crate) const EXPORTS_IN_FLIGHT: u32 = 2;

/// What went wrong since the last flush, written by the export tasks.
#[derive(Default)]
struct Unsent {
    /// Spans not sent since the last flush, and the first reason.
    spans: u64,
    first_error: Option<String>,
}

impl Unsent {
    /// Counts `n` spans that were not sent, for `why`.
    fn add(unsent: &Mutex<Unsent>, n: u64, why: &str) {
        inc(&COUNTERS.export_errors);
        add(&COUNTERS.spans_export_failed, n);
        let why = redact(why).into_owned();
        let mut u = unsent.lock().unwrap_or_else(|e| e.into_inner());
        u.spans += n;
        u.first_error.get_or_insert(why);
    }
}

/// The export thread's job: the exporter and the runtime its exports run on.
///
/// The queue's thread takes batches off the queue and hands each to the runtime's own thread
/// as a task, at most [`EXPORTS_IN_FLIGHT`] at once; the task prices the batch
/// ([`GenAiExporter`]), sends it, and counts the outcome.
struct ExportJob<E> {
    // Declared before the runtime, so it is dropped while the runtime still exists.
    exporter: Arc<E>,
    rt: tokio::runtime::Runtime,
    /// One permit per export in flight.
    slots: Arc<tokio::sync::Semaphore>,
    resource: Arc<Mutex<Option<Resource>>>,
    shutdown_timeout: Duration,
    unsent: Arc<Mutex<Unsent>>,
    /// Whether the last export that finished succeeded (false until one has).
    healthy: Arc<AtomicBool>,
    /// The estimated encoded size each export request is kept under.
    max_batch_bytes: usize,
    /// The collector's outage and size-refusal state (the size it refused, learned).
    hold: Arc<Hold>,
}

impl<E> ExportJob<E> {
    /// Waits until no export is in flight.
    fn settle(&self) {
        let slots = self.slots.clone();
        self.rt.block_on(async move {
            // The semaphore is never closed; the permits go back when this returns.
            let _all = slots.acquire_many(EXPORTS_IN_FLIGHT).await;
        });
    }

    /// What was not sent since the last flush, as an error a user can act on.
    fn report(&mut self) -> Result<(), String> {
        let Unsent {
            spans: n,
            first_error,
        } = std::mem::take(&mut *self.unsent.lock().unwrap_or_else(|e| e.into_inner()));
        match first_error {
            Some(e) if n > 0 => Err(format!(
                "{n} spans were not sent (counted in llmtel's spans_export_failed); first \
                 error: {e}. Check that the collector at the OTLP endpoint is up and accepts \
                 them"
            )),
            _ => Ok(()),
        }
    }
}

impl<E: SpanExporter + 'static> ExportJob<E> {
    /// Hands one export request's spans to the runtime, counted when its answer comes.
    fn send(&mut self, batch: Vec<SpanData>, bytes: usize) -> Result<(), String> {
        if !self.healthy.load(Ordering::Acquire) {
            // In doubt: one export at a time (see `EXPORTS_IN_FLIGHT`).
            self.settle();
        }
        let n = batch.len() as u64;
        let slots = self.slots.clone();
        let Ok(slot) = self.rt.block_on(async move { slots.acquire_owned().await }) else {
            // Not reached (the semaphore is never closed); the batch is counted if it is.
            Unsent::add(&self.unsent, n, "the export runtime stopped");
            return Err("the export runtime stopped".into());
        };
        let exporter = self.exporter.clone();
        let unsent = self.unsent.clone();
        let healthy = self.healthy.clone();
        // The export in a task of its own: an exporter that panics (pricing included) loses
        // its batch, counted here as a failed export, and the slot is given back.
        // The request's size goes with it, and the spans of it that went out come back (a
        // request halved after a refusal for its size can go out in part).
        let request = crate::hold::Request::default();
        request.bytes.set(bytes);
        let export = self
            .rt
            .spawn(crate::hold::REQUEST.scope(request, async move {
                let outcome = exporter.export(batch).await;
                drop(exporter);
                (outcome, crate::hold::REQUEST.with(|r| r.sent.get()))
            }));
        self.rt.spawn(async move {
            let (outcome, sent) = export.await.unwrap_or_else(|e| {
                let why = if e.is_panic() {
                    "the span exporter panicked"
                } else {
                    "the export was cancelled"
                };
                (Err(OTelSdkError::InternalFailure(why.to_owned())), 0)
            });
            healthy.store(outcome.is_ok(), Ordering::Release);
            match outcome {
                Ok(()) => add(&COUNTERS.spans_exported, n),
                Err(e) => {
                    let sent = sent.min(n);
                    add(&COUNTERS.spans_exported, sent);
                    Unsent::add(&unsent, n - sent, &e.to_string());
                }
            }
            drop(slot);
        });
        Ok(())
    }
}

/// Splits `batch` after its longest head whose estimated encoded size stays within
/// `max_bytes` (one span at least) and returns the rest (empty when the whole batch fits)
/// and the head's estimated size.
fn split_off_past(batch: &mut Vec<SpanData>, max_bytes: usize) -> (Vec<SpanData>, usize) {
    let mut total = 0usize;
    for (i, span) in batch.iter().enumerate() {
        let size = encoded_size_estimate(span);
        if i > 0 && total.saturating_add(size) > max_bytes {
            return (batch.split_off(i), total);
        }
        total = total.saturating_add(size);
    }
    (Vec::new(), total)
}

/// An upper estimate of a span's size in an OTLP protobuf request: its strings and numbers
/// with room for each field's tag and length, and an allowance for what the export stage
/// adds (the price, cost and inherited attributes). Content the stage truncates later is
/// counted at its length before.
pub(crate) fn encoded_size_estimate(span: &SpanData) -> usize {
    /// Ids, times, kind, flags, status code, the span's own tags and lengths.
    const SPAN: usize = 96;
    /// The attributes the export stage adds to an LLM span (price, cost, inherited ones).
    const STAGE: usize = 1024;
    const EVENT: usize = 32;
    const LINK: usize = 64;
    let mut n = SPAN + STAGE + span.name.len() + attributes_size(&span.attributes);
    if let Status::Error { description } = &span.status {
        n += description.len();
    }
    for e in span.events.iter() {
        n += EVENT + e.name.len() + attributes_size(&e.attributes);
    }
    for l in span.links.iter() {
        n += LINK + l.span_context.trace_state().header().len() + attributes_size(&l.attributes);
    }
    n + span.span_context.trace_state().header().len()
}

/// [`encoded_size_estimate`] of a list of attributes.
fn attributes_size(attributes: &[KeyValue]) -> usize {
    /// A key-value's and its value's tags and lengths.
    const ATTRIBUTE: usize = 12;
    attributes
        .iter()
        .map(|kv| ATTRIBUTE + kv.key.as_str().len() + value_size(&kv.value))
        .sum()
}

/// A value's size in its `AnyValue`, beyond the attribute's own framing: an array's element
/// is an `AnyValue` of its own (a tag and a length, then the value's tag and bytes).
fn value_size(value: &opentelemetry::Value) -> usize {
    use opentelemetry::{Array, Value};
    /// An array's and its elements' tags and lengths.
    const ARRAY: usize = 6;
    match value {
        Value::Bool(_) => 2,
        Value::I64(_) => 11,
        Value::F64(_) => 9,
        Value::String(s) => s.as_str().len(),
        Value::Array(Array::Bool(v)) => ARRAY + 4 * v.len(),
        Value::Array(Array::I64(v)) => ARRAY + 13 * v.len(),
        Value::Array(Array::F64(v)) => ARRAY + 11 * v.len(),
        Value::Array(Array::String(v)) => {
            ARRAY + v.iter().map(|s| 8 + s.as_str().len()).sum::<usize>()
        }
        // A kind added in a later release: sized as its text.
        other => other.as_str().len(),
    }
}

impl<E: SpanExporter + 'static> Job for ExportJob<E> {
    type Item = SpanData;

    fn process(&mut self, batch: Vec<SpanData>) -> Result<(), String> {
        if let Some(r) = self
            .resource
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // Set once, before the first export: no task holds the exporter then (else it
            // is kept for the next batch, and this one still goes out).
            self.settle();
            match Arc::get_mut(&mut self.exporter) {
                Some(e) => e.set_resource(&r),
                None => *self.resource.lock().unwrap_or_else(|e| e.into_inner()) = Some(r),
            }
        }
        // A batch that would be too big for one request goes out as several, each counted
        // on its own: under the configured size, and under half of any request the collector
        // refused for its size.
        let limit = self.max_batch_bytes.min(self.hold.size_limit());
        let mut batch = batch;
        let mut sent = Ok(());
        while !batch.is_empty() {
            let (rest, bytes) = split_off_past(&mut batch, limit);
            let r = self.send(batch, bytes);
            sent = sent.and(r);
            batch = rest;
        }
        // The outcome is counted by the task and reported by the next flush.
        sent
    }

    fn flush(&mut self) -> Result<(), String> {
        self.settle();
        let flushed = self.exporter.force_flush().map_err(|e| e.to_string());
        self.report().and(flushed)
    }

    fn shutdown(&mut self) -> Result<(), String> {
        // While the collector is unreachable, the exports in flight give up within the
        // shutdown's deadline (see `hold`).
        self.settle();
        let done = self
            .exporter
            .shutdown_with_timeout(self.shutdown_timeout)
            .map_err(|e| e.to_string());
        self.report().and(done)
    }
}

impl ExportQueue {
    /// Starts the export thread; `make_exporter` runs on it (inside its tokio runtime).
    ///
    /// # Errors
    /// [`QueueError`] when the thread or runtime cannot start or the exporter cannot be built.
    ///
    /// What the export stage warns about on the export thread (an unknown model) goes to the
    /// default dispatcher of the thread calling this (the export thread itself records
    /// nothing): spawn the queue after the application's subscriber is installed, or use
    /// [`crate::builder`], whose layer tells the queue which subscriber it was installed in.
    pub fn spawn<E, F, Err>(make_exporter: F, config: QueueConfig) -> Result<Self, QueueError>
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Result<E, Err> + Send + 'static,
        Err: fmt::Display,
    {
        Self::spawn_warning_to(make_exporter, config, WarnTo::from_default())
    }

    /// [`ExportQueue::spawn`], its threads' warnings going to `warn_to`.
    pub(crate) fn spawn_warning_to<E, F, Err>(
        make_exporter: F,
        config: QueueConfig,
        warn_to: WarnTo,
    ) -> Result<Self, QueueError>
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Result<E, Err> + Send + 'static,
        Err: fmt::Display,
    {
        let resource = Arc::new(Mutex::new(None));
        let theirs = resource.clone();
        let hold = Hold::new();
        let threads_hold = hold.clone();
        let job_hold = hold.clone();
        let shutdown_timeout = config.flush_timeout;
        let max_batch_bytes = config.max_export_batch_bytes.max(1);
        let batch = config.max_export_batch_size.max(1);
        let worker = Worker::builder("export")
            .with_capacity(config.max_queue_size)
            .with_batch_size(batch)
            .with_wake_at(batch)
            .with_interval(config.scheduled_delay)
            .with_drop_timeout(config.flush_timeout)
            .spawn(move || {
                warn_to.install();
                crate::late::exports_here();
                let io_warn_to = warn_to.clone();
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("llmtel-export-io")
                    .on_thread_start(move || {
                        // As on the queue's thread: the exporter's own HTTP/gRPC calls must
                        // not become spans of the pipeline that exports them, and its
                        // exports are held through an outage. What the stage warns about
                        // goes to the application's subscriber.
                        Hold::install(threads_hold.clone());
                        io_warn_to.install();
                        crate::late::exports_here();
                        std::mem::forget(tracing::subscriber::set_default(
                            tracing::subscriber::NoSubscriber::default(),
                        ));
                    })
                    .enable_all()
                    .build()
                    .map_err(|e| format!("tokio runtime: {e}"))?;
                let exporter = {
                    let _guard = rt.enter();
                    make_exporter().map_err(|e| e.to_string())?
                };
                Ok::<_, String>(ExportJob {
                    exporter: Arc::new(exporter),
                    rt,
                    slots: Arc::new(tokio::sync::Semaphore::new(EXPORTS_IN_FLIGHT as usize)),
                    resource: theirs,
                    shutdown_timeout,
                    unsent: Arc::default(),
                    healthy: Arc::default(),
                    max_batch_bytes,
                    hold: job_hold,
                })
            })
            .map_err(|e| match e {
                WorkerError::Thread { reason, .. } => {
                    QueueError::Thread(std::io::Error::other(reason))
                }
                WorkerError::Start { reason, .. } => QueueError::Exporter(reason),
                other => QueueError::Exporter(other.to_string()),
            })?;
        Ok(ExportQueue {
            worker,
            hold,
            resource,
            flush_timeout: config.flush_timeout,
            overflow: None,
        })
    }

    /// Hands each span the queue cannot take to `overflow` (counted as dropped all the same):
    /// [`crate::init`] runs the export stage's sinks on it, so that the calls of dropped spans
    /// still reach them.
    pub(crate) fn with_overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = Some(overflow);
        self
    }

    /// The export thread's counters (queued, dropped, exported batches that failed, depth).
    pub fn stats(&self) -> crate::worker::WorkerStats {
        self.worker.stats()
    }
}

impl Drop for ExportQueue {
    fn drop(&mut self) {
        // Dropping waits for the thread as a shutdown does: it stops waiting for an
        // unreachable collector within that time too.
        self.hold.give_up_within(self.flush_timeout.mul_f64(0.9));
    }
}

fn sdk_error(e: WorkerError) -> OTelSdkError {
    match e {
        WorkerError::Timeout { timeout, .. } => OTelSdkError::Timeout(timeout),
        WorkerError::Stopped { .. } => OTelSdkError::AlreadyShutdown,
        other => OTelSdkError::InternalFailure(other.to_string()),
    }
}

impl SpanProcessor for ExportQueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.worker.send(span) {
            Ok(()) => inc(&COUNTERS.spans_queued),
            Err(span) => {
                inc(&COUNTERS.spans_dropped);
                if let Some(overflow) = &self.overflow {
                    overflow(span);
                }
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.worker.flush(self.flush_timeout).map_err(sdk_error)
    }

    /// Exports what is queued and shuts the exporter down, waiting at most `timeout`.
    ///
    /// A shutdown that times out says so ([`OTelSdkError::Timeout`]) and keeps waiting in the
    /// background; a later call waits again for the same answer (it never reports a success
    /// it did not see). Once shut down, further calls return the first shutdown's outcome.
    ///
    /// While the collector is unreachable, the thread stops waiting for it at nine tenths of
    /// `timeout`, counts what it could not send, and the error says how many spans that was.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.hold.give_up_within(timeout.mul_f64(0.9));
        self.worker.shutdown(timeout).map_err(sdk_error)
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once when the provider is built, before any span: the exporter lives on the
        // export thread, which hands it the resource before its next export.
        *self.resource.lock().unwrap_or_else(|e| e.into_inner()) = Some(resource.clone());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{
        CONTENT_KEYS, KeyValue, SECRET_HEADERS, SECRET_SUFFIXES, SpanData, dedup_keep_last,
        encoded_size_estimate, is_content_key, is_secret_key, replace_attributes, split_off_past,
    };
    use proptest::prelude::*;

    /// `#[instrument] fn f(auth: &str)` or `info_span!("x", pass = %p)`: the value alone
    /// carries no name text redaction could catch, so the attribute's name must. They were
    /// exported as they were.
    #[test]
    fn attributes_named_auth_pass_or_sig_are_never_exported() {
        use crate::ContentCapture;
        let mut attrs = vec![
            KeyValue::new("auth", "c2VjcmV0OnZhbHVl"),
            KeyValue::new("login.pass", "hunter2hunter2"),
            KeyValue::new("SIG", "9a0f1e2d3c4b5a69"),
            KeyValue::new("auth_method", "oauth"),
            KeyValue::new("eval.passed", true),
        ];
        assert_eq!(
            super::police_attributes(&mut attrs, &ContentCapture::enabled()),
            3
        );
        let keys: Vec<_> = attrs.iter().map(|kv| kv.key.to_string()).collect();
        assert_eq!(keys, ["auth_method", "eval.passed"]);
    }

    /// Tool calls, tool definitions, retrievals and OpenInference documents are content (opt
    /// in), and attributes named like credentials (`token`, `client_secret`,
    /// `aws.secret_access_key`, `oauth.access_token`, a PEM `private_key`) are never
    /// exported; they were, unchanged, outside a handful of exact names.
    #[test]
    fn tool_calls_retrievals_and_credential_names_are_policed() {
        use crate::ContentCapture;
        let attrs = || {
            vec![
                KeyValue::new(
                    "gen_ai.tool.call.arguments",
                    "{\"email\":\"alice@example.com\"}",
                ),
                KeyValue::new("gen_ai.tool.call.result", "order 1234: shipped"),
                KeyValue::new("gen_ai.tool.definitions", "[{\"name\":\"lookup\"}]"),
                KeyValue::new("gen_ai.retrieval.query.text", "alice's orders"),
                KeyValue::new("retrieval.documents.0.document.content", "Alice ordered..."),
                KeyValue::new("llm.prompts", "Summarise: ..."),
                KeyValue::new("embedding.embeddings.0.embedding.text", "alice"),
                KeyValue::new("token", "5f3a9c1e7b2d4a6f8e0c"),
                KeyValue::new("oauth.access_token", "5f3a9c1e7b2d4a6f8e0c"),
                KeyValue::new("client_secret", "5f3a9c1e7b2d4a6f8e0c"),
                KeyValue::new(
                    "aws.secret_access_key",
                    "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
                ),
                KeyValue::new("tls.private_key", "FAKE-TEST-key-material"),
                KeyValue::new("gen_ai.usage.input_tokens", 10),
                KeyValue::new("gen_ai.request.max_tokens", 100),
                KeyValue::new("llmtel.feature", "faq"),
                KeyValue::new("gen_ai.tool.name", "lookup"),
            ]
        };
        let keys = |a: &[KeyValue]| a.iter().map(|kv| kv.key.to_string()).collect::<Vec<_>>();
        let mut off = attrs();
        assert_eq!(
            super::police_attributes(&mut off, &ContentCapture::disabled()),
            12
        );
        assert_eq!(
            keys(&off),
            [
                "gen_ai.usage.input_tokens",
                "gen_ai.request.max_tokens",
                "llmtel.feature",
                "gen_ai.tool.name"
            ]
        );
        // With capture on the content is kept; the credentials never are.
        let mut on = attrs();
        assert_eq!(
            super::police_attributes(&mut on, &ContentCapture::enabled()),
            5
        );
        assert!(keys(&on).contains(&"gen_ai.tool.call.arguments".to_owned()));
        assert!(!format!("{on:?}").contains("5f3a9c1e7b2d4a6f8e0c"));
    }

    /// A span with `attributes`, and an event carrying `event` (when there is one).
    pub(crate) fn span(
        name: &str,
        attributes: Vec<KeyValue>,
        event: Option<Vec<KeyValue>>,
        error: &str,
    ) -> SpanData {
        use opentelemetry::trace::{
            SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
        };
        let mut events = opentelemetry_sdk::trace::SpanEvents::default();
        if let Some(attributes) = event {
            events.events.push(opentelemetry::trace::Event::new(
                "gen_ai.content.prompt",
                std::time::SystemTime::now(),
                attributes,
                0,
            ));
        }
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::MAX - 7),
                SpanId::from(u64::MAX - 3),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(u64::MAX - 9),
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: name.to_owned().into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events,
            links: opentelemetry_sdk::trace::SpanLinks::default(),
            status: if error.is_empty() {
                Status::Unset
            } else {
                Status::error(error.to_owned())
            },
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("llmtel").build(),
        }
    }

    /// `otel.status_code = "error"` without `error.type` is the span's status, not an
    /// attribute, by the time it is exported: the call the sinks get fails (it did not, while
    /// the layer's call of the same span, unsampled, did).
    #[test]
    fn a_span_whose_status_is_error_is_a_failed_call_for_the_sinks() {
        let mut s = span(
            "chat gpt-4o",
            vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.provider.name", "openai"),
                KeyValue::new("gen_ai.request.model", "gpt-4o"),
                KeyValue::new("gen_ai.usage.input_tokens", 10),
                KeyValue::new("gen_ai.usage.output_tokens", 5),
            ],
            None,
            "boom",
        );
        let call = super::GenAiExporter::new(super::NoExport)
            .process_call(&mut s, &crate::ContentCapture::disabled())
            .unwrap();
        assert!(call.is_error(), "{call:?}");
    }

    /// A sink's attributes go onto the exported span with the stage's in one pass: a key
    /// both set carries the sink's value once, a credential a sink adds is policed away,
    /// and the stage's other attributes stay.
    #[test]
    fn a_sinks_attributes_join_the_stages_and_win_on_a_shared_key() {
        use llmtel_semconv::{gen_ai, llmtel as lt};
        use std::sync::Arc;
        #[derive(Debug)]
        struct Setter;
        impl crate::CallSink for Setter {
            fn on_call(&self, _call: &crate::LlmCall) {}
            fn on_exported_call(&self, call: &crate::LlmCall, attrs: &mut Vec<KeyValue>) {
                assert!(call.cost_usd().is_some(), "the sink sees the priced call");
                attrs.push(KeyValue::new(gen_ai::USAGE_COST, 42.0));
                attrs.push(KeyValue::new("llmtel.test.sink", "set"));
                attrs.push(KeyValue::new("llmtel.test.api_key", "sk-live-0123456789"));
            }
        }
        let usage = |k: &'static str, v: i64| KeyValue::new(k, v);
        let mut span = span(
            "chat gpt-4o-mini",
            vec![
                KeyValue::new(gen_ai::OPERATION_NAME, "chat"),
                KeyValue::new(gen_ai::PROVIDER_NAME, "openai"),
                KeyValue::new(gen_ai::REQUEST_MODEL, "gpt-4o-mini"),
                usage(gen_ai::USAGE_INPUT_TOKENS, 1000),
                usage(gen_ai::USAGE_OUTPUT_TOKENS, 100),
            ],
            None,
            "",
        );
        let stage = super::GenAiExporter::new(super::NoExport).with_sink(Arc::new(Setter));
        stage.process_for_sinks(&mut span, &crate::ContentCapture::default());
        let values = |key: &str| -> Vec<String> {
            span.attributes
                .iter()
                .filter(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
                .collect()
        };
        assert_eq!(values(gen_ai::USAGE_COST), ["42"]);
        assert_eq!(values("llmtel.test.sink"), ["set"]);
        assert!(values("llmtel.test.api_key").is_empty());
        assert_eq!(values(lt::COST_CURRENCY), ["USD"]);
        assert_eq!(values(lt::COST_ESTIMATED), ["false"]);
        assert_eq!(values(gen_ai::REQUEST_MODEL), ["gpt-4o-mini"]);
    }

    fn value() -> impl Strategy<Value = opentelemetry::Value> {
        use opentelemetry::{Array, StringValue, Value};
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            any::<f64>().prop_map(Value::F64),
            ".{0,300}".prop_map(|s| Value::String(s.into())),
            prop::collection::vec(any::<i64>(), 0..20).prop_map(|v| Value::Array(Array::I64(v))),
            prop::collection::vec(any::<bool>(), 0..20).prop_map(|v| Value::Array(Array::Bool(v))),
            prop::collection::vec(any::<f64>(), 0..20).prop_map(|v| Value::Array(Array::F64(v))),
            prop::collection::vec(".{0,40}", 0..20).prop_map(|v| Value::Array(Array::String(
                v.into_iter().map(StringValue::from).collect()
            ))),
        ]
    }

    fn attributes(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
        prop::collection::vec(("[a-z_.]{1,40}", value()), 0..max)
            .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
    }

    /// The obvious quadratic versions, which the key mask must agree with.
    fn replace_naive(attributes: &mut Vec<KeyValue>, extra: Vec<KeyValue>) {
        let kept: Vec<KeyValue> = (0..extra.len())
            .filter(|&i| !extra[i + 1..].iter().any(|l| l.key == extra[i].key))
            .map(|i| extra[i].clone())
            .collect();
        attributes.retain(|a| !kept.iter().any(|e| e.key == a.key));
        attributes.extend(kept);
    }

    fn dedup_naive(attrs: &mut Vec<KeyValue>) {
        let keep: Vec<bool> = (0..attrs.len())
            .map(|i| !attrs[i + 1..].iter().any(|l| l.key == attrs[i].key))
            .collect();
        let mut i = 0;
        attrs.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }

    fn attrs(keys: &[String], tag: &str) -> Vec<KeyValue> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| KeyValue::new(k.clone(), format!("{tag}{i}")))
            .collect()
    }

    proptest! {
        /// Keys from a small alphabet repeat often; up to 100 of them fill the 64-bit mask,
        /// so the exact comparison behind it is exercised too.
        #[test]
        fn replacing_and_deduplicating_keep_the_last_of_each_key(
            span in prop::collection::vec("[ab.]{0,4}|gen_ai\\.usage\\.[a-z_]{1,12}|llmtel\\.cost\\.[a-z]{1,8}", 0..100),
            extra in prop::collection::vec("[ab.]{0,4}|gen_ai\\.usage\\.[a-z_]{1,12}|llmtel\\.cost\\.[a-z]{1,8}", 0..40),
        ) {
            let (mut got, mut want) = (attrs(&span, "s"), attrs(&span, "s"));
            replace_attributes(&mut got, attrs(&extra, "e"));
            replace_naive(&mut want, attrs(&extra, "e"));
            prop_assert_eq!(&got, &want);
            let (mut got, mut want) = (attrs(&span, "s"), attrs(&span, "s"));
            dedup_keep_last(&mut got);
            dedup_naive(&mut want);
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        /// The estimate a batch is split by is never below the span's real OTLP encoding, less
        /// the allowance for what the export stage adds (so a request split by it stays under
        /// its limit).
        #[test]
        fn the_size_estimate_is_never_below_the_encoded_span(
            name in ".{0,100}",
            attributes in attributes(60),
            event in prop::option::of(attributes(10)),
            error in ".{0,200}",
        ) {
            use prost::Message;
            let span = span(&name, attributes, event, &error);
            let estimate = encoded_size_estimate(&span);
            let encoded = opentelemetry_proto::tonic::trace::v1::Span::from(span).encoded_len();
            prop_assert!(estimate >= encoded + 1024, "estimate {estimate}, encoded {encoded}");
        }

        /// Splitting keeps every span once and in order; each part but a lone span stays
        /// within the limit.
        #[test]
        fn a_split_batch_keeps_every_span_and_each_part_fits(
            sizes in prop::collection::vec(0usize..20_000, 0..80),
            limit in 1usize..60_000,
        ) {
            let mut batch: Vec<SpanData> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| span(&i.to_string(), vec![KeyValue::new("c", "x".repeat(*n))], None, ""))
                .collect();
            let mut seen = Vec::new();
            while !batch.is_empty() {
                let (rest, size) = split_off_past(&mut batch, limit);
                prop_assert_eq!(size, batch.iter().map(encoded_size_estimate).sum::<usize>());
                prop_assert!(batch.len() == 1 || size <= limit, "{} spans, {size} > {limit}", batch.len());
                // The part is the longest that fits: one more span would not.
                if let Some(next) = rest.first() {
                    prop_assert!(size + encoded_size_estimate(next) > limit);
                }
                seen.extend(batch.iter().map(|s| s.name.to_string()));
                batch = rest;
            }
            let want: Vec<String> = (0..sizes.len()).map(|i| i.to_string()).collect();
            prop_assert_eq!(seen, want);
        }
    }

    #[test]
    fn the_queue_settings_come_from_the_variables_when_set_and_valid() {
        use super::{DEFAULT_MAX_EXPORT_BATCH_BYTES, QueueConfig};
        let from = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            QueueConfig::from_vars(move |k| {
                vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
            })
        };
        let c = from(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", " 512 "),
            ("OTEL_BSP_SCHEDULE_DELAY", "500"),
            ("LLMTEL_EXPORT_MAX_BATCH_BYTES", "1048576"),
        ]);
        assert_eq!(
            (
                c.max_queue_size,
                c.max_export_batch_size,
                c.max_export_batch_bytes
            ),
            (4096, 512, 1_048_576)
        );
        assert_eq!(c.scheduled_delay, std::time::Duration::from_millis(500));
        for bad in ["0", "-1", "3MiB", ""] {
            let c = from(&[("LLMTEL_EXPORT_MAX_BATCH_BYTES", bad)]);
            assert_eq!(
                c.max_export_batch_bytes, DEFAULT_MAX_EXPORT_BATCH_BYTES,
                "{bad:?}"
            );
        }
        // A batch is never bigger than the queue.
        let c = from(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]);
        assert_eq!(c.max_export_batch_size, 100);
    }

    #[test]
    fn a_bad_queue_variable_is_refused_by_try_from_env_and_warned_about_by_init() {
        use super::QueueConfig;
        let checked = |k: &'static str, v: &'static str| {
            QueueConfig::checked_from_vars(move |n| (n == k).then(|| v.to_owned()))
        };
        for (k, v) in [
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64k"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
            ("LLMTEL_EXPORT_MAX_BATCH_BYTES", "3MiB"),
        ] {
            let e = checked(k, v).expect_err(v);
            assert!(
                e.contains(k)
                    && e.contains(v)
                    && e.contains("write a whole number")
                    && e.contains("(the default)"),
                "{e}"
            );
        }
        // `init()` reads them warning about each one that is wrong, using its default.
        let (c, warnings) = QueueConfig::read_vars(|k| match k {
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("abc".to_owned()),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("-1".to_owned()),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" => Some("100".to_owned()),
            _ => None,
        });
        let d = QueueConfig::default();
        assert_eq!(
            (c.max_queue_size, c.scheduled_delay, c.max_export_batch_size),
            (d.max_queue_size, d.scheduled_delay, 100)
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("OTEL_BSP_MAX_QUEUE_SIZE=\"abc\"")
                && warnings[0].contains("ignored: using 16384 (the default)"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("OTEL_BSP_SCHEDULE_DELAY=\"-1\"")
                && warnings[1].contains("using 2000 ms (the default)"),
            "{warnings:?}"
        );
        // A bad batch size beside a queue smaller than the default batch: the warning says
        // the size used (the queue's), not the default it was held below.
        let (c, warnings) = QueueConfig::read_vars(|k| match k {
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("512".to_owned()),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" => Some("lots".to_owned()),
            _ => None,
        });
        assert_eq!(c.max_export_batch_size, 512);
        assert!(
            warnings.len() == 1
                && warnings[0]
                    .contains("ignored: using 512 (the default, held to OTEL_BSP_MAX_QUEUE_SIZE)"),
            "{warnings:?}"
        );
        // Unset, empty and valid values are fine; a delay of 0 is one.
        assert!(checked("OTEL_BSP_MAX_QUEUE_SIZE", " ").is_ok());
        assert_eq!(
            checked("OTEL_BSP_SCHEDULE_DELAY", "0")
                .unwrap()
                .scheduled_delay,
            std::time::Duration::ZERO
        );
        assert_eq!(
            checked("OTEL_BSP_MAX_QUEUE_SIZE", "4096")
                .unwrap()
                .max_queue_size,
            4096
        );
    }

    /// Every listed name is found, in lower, upper and mixed case, whatever the table of last
    /// bytes in front of the lists says (it is built from them).
    #[test]
    fn every_listed_secret_and_content_key_is_found() {
        let cases = |s: &str| {
            let mixed: String = s
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            [s.to_owned(), s.to_ascii_uppercase(), mixed]
        };
        for name in SECRET_HEADERS {
            for h in cases(name) {
                for dir in ["request", "response"] {
                    let key = format!("http.{dir}.header.{h}");
                    assert!(is_secret_key(&key), "{key}");
                }
            }
        }
        for suffix in SECRET_SUFFIXES {
            for s in cases(suffix) {
                assert!(is_secret_key(&s), "{s}");
                assert!(is_secret_key(&format!("db.{s}")), "db.{s}");
            }
        }
        for key in CONTENT_KEYS {
            assert!(is_content_key(key), "{key}");
        }
        assert!(is_content_key("llm.input_messages.0.message.content"));
        assert!(!is_content_key("gen_ai.request.model"));
    }

    #[test]
    fn credential_names_are_found_whatever_their_case() {
        for key in [
            "http.request.header.authorization",
            "HTTP.Request.Header.Authorization",
            "http.response.header.Set-Cookie",
            "http.request.header.x-goog-api-key",
            "openai.api_key",
            "OPENAI_API_KEY",
            "service.ApiKey",
            "db.Password",
            "aws.secret_key",
            "proxy.authorization",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "gen_ai.request.model",
            "http.request.header.content-type",
            "http.request.header.",
            "key",
            "café.ключ",
            "",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
