//! What a response says about the call, in each provider's shape: id, model, finish reasons,
//! usage (converted to llmtel's convention: input inclusive of cache, output inclusive of
//! reasoning), the streamed text, and errors.
//!
//! [`Decoder`] reads a whole JSON body ([`Decoder::json`]) or one SSE event at a time
//! ([`Decoder::event`]); a parse failure never stops it, it is kept in
//! [`Observed::parse_error`].
//!
//! ```
//! use llmtel_reqwest::{Api, decode::Decoder};
//!
//! let mut d = Decoder::new(Api::AnthropicMessages);
//! d.event("message_start", br#"{"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-4-20250514","usage":{"input_tokens":20,"cache_read_input_tokens":1000,"output_tokens":1}}}"#);
//! d.event("message_delta", br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}"#);
//! d.finish(); // folds message_start + message_delta
//! let usage = d.observed().usage.unwrap();
//! assert_eq!((usage.input_tokens, usage.cache_read_tokens, usage.output_tokens), (1020, 1000, 42));
//! ```

use std::borrow::Cow;

use llmtel::Usage;
use serde::Deserialize;

use crate::route::Api;

/// Most characters of streamed text kept (for estimates and opt-in capture).
pub const MAX_TEXT_CHARS: usize = 1 << 20;

/// What was seen of a response so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `gen_ai.response.id`.
    pub id: Option<String>,
    /// `gen_ai.response.model`.
    pub model: Option<String>,
    /// Finish reasons, one per choice/candidate, in order.
    pub finish_reasons: Vec<String>,
    /// Usage reported by the provider, in llmtel's convention.
    pub usage: Option<Usage>,
    /// The output text (capped at [`MAX_TEXT_CHARS`]).
    pub text: String,
    /// Whether `text` was cut at the cap.
    pub text_truncated: bool,
    /// Events that carried output (text, tool-call arguments, thinking).
    pub output_events: u64,
    /// The first parse error, if any.
    pub parse_error: Option<String>,
    /// An error the provider reported inside a 2xx body or stream: (class, message).
    pub provider_error: Option<(String, String)>,
    /// Whether a stream said it was done (`[DONE]`, `message_stop`, `response.completed`).
    pub done: bool,
    /// Modality and tool counts the response reported (OpenAI audio tokens), for the price
    /// dimensions (issue #14).
    pub details: llmtel::pricing::UsageDetails,
    /// The service tier that served the call, as the response says (OpenAI `service_tier`,
    /// Anthropic `usage.service_tier`).
    pub service_tier: Option<String>,
    /// Whether `service_tier` is OpenAI's (recorded as `openai.response.service_tier`).
    pub openai_tier: bool,
}

impl Observed {
    fn push_text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.output_events += 1;
        if self.text_truncated {
            return;
        }
        if self.text.len() + s.len() > MAX_TEXT_CHARS {
            let mut cut = MAX_TEXT_CHARS.saturating_sub(self.text.len());
            while cut > 0 && !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&s[..cut]);
            self.text_truncated = true;
        } else {
            self.text.push_str(s);
        }
    }

    /// Whether it changed anything.
    fn set_finish(&mut self, index: usize, reason: &str) -> bool {
        if index > 1024 || self.finish_reasons.get(index).map(String::as_str) == Some(reason) {
            return false;
        }
        if self.finish_reasons.len() <= index {
            self.finish_reasons.resize(index + 1, String::new());
        }
        self.finish_reasons[index] = reason.to_owned();
        true
    }

    fn parse_failed(&mut self, what: &str, e: impl std::fmt::Display) {
        if self.parse_error.is_none() {
            self.parse_error = Some(format!("{what}: {e}"));
        }
    }
}

/// A JSON error as its kind and position only: serde_json's own message can quote the
/// body (`invalid type: string "…"`), which can be response content.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Eof => "EOF while parsing",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected JSON shape",
        Category::Io => "I/O error",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// Decodes one response of one [`Api`].
#[derive(Debug)]
pub struct Decoder {
    api: Api,
    obs: Observed,
    anthropic: AnthropicUsage,
    events: u64,
    /// Bumped by every change to what was seen other than the streamed text.
    rev: u64,
    /// The last plain text-delta event, to recognise the next ones without parsing them.
    template: Option<Template>,
}

/// A decoded SSE event whose only effect was to append one string to the text: its event
/// name and its bytes before and after that string's raw token. An event with the same name,
/// prefix and suffix around another plain string (no escapes, no control characters, valid
/// UTF-8, non-empty) has the same JSON structure, so decoding it would only append that
/// string, which is then done without parsing.
#[derive(Debug)]
struct Template {
    event: String,
    /// Up to and including the opening quote of the string.
    prefix: Vec<u8>,
    /// From the closing quote of the string on.
    suffix: Vec<u8>,
}

impl Template {
    /// `data` was decoded into exactly `text` appended (and nothing else changed).
    fn new(event: &str, data: &[u8], text: &str) -> Option<Template> {
        if text.is_empty() || memchr::memchr(b'\\', data).is_some() {
            return None;
        }
        // Without escapes anywhere, the string's token is `"text"` verbatim; if those bytes
        // occur once, that occurrence is the token.
        let mut needle = Vec::with_capacity(text.len() + 2);
        needle.push(b'"');
        needle.extend_from_slice(text.as_bytes());
        needle.push(b'"');
        let at = memchr::memmem::find(data, &needle)?;
        if memchr::memmem::rfind(data, &needle) != Some(at) {
            return None;
        }
        Some(Template {
            event: event.to_owned(),
            prefix: data[..=at].to_vec(),
            suffix: data[at + needle.len() - 1..].to_vec(),
        })
    }

    /// The string this event carries in place of the template's, if it is the same event.
    fn text<'d>(&self, event: &str, data: &'d [u8]) -> Option<&'d str> {
        if data.len() <= self.prefix.len() + self.suffix.len()
            || !same_str(event, &self.event)
            || !data.starts_with(&self.prefix)
            || !data.ends_with(&self.suffix)
        {
            return None;
        }
        let s = &data[self.prefix.len()..data.len() - self.suffix.len()];
        if s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
            return None;
        }
        std::str::from_utf8(s).ok()
    }
}

/// `a == b`, without calling `memcmp` for two empty strings: an empty `String`'s pointer is
/// dangling, and glibc's AVX-512 `memcmp` does a masked load from it that the CPU completes
/// with a fault-suppression assist (measured: ~100 ns, most of the decoder's time, since SSE
/// events mostly have no `event:` name).
fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

impl Decoder {
    /// A decoder for a response of `api`.
    pub fn new(api: Api) -> Self {
        Decoder {
            api,
            obs: Observed::default(),
            anthropic: AnthropicUsage::default(),
            events: 0,
            rev: 0,
            template: None,
        }
    }

    /// What was seen so far.
    pub fn observed(&self) -> &Observed {
        &self.obs
    }

    /// Takes what was seen.
    pub fn into_observed(self) -> Observed {
        self.obs
    }

    /// Notes a parse error found outside the decoder (e.g. an oversized SSE line).
    pub fn note_parse_error(&mut self, msg: impl std::fmt::Display) {
        self.obs.parse_failed("sse", msg);
    }

    /// Notes `n` images generated that the decoder did not see (a body too large to keep).
    pub(crate) fn note_images(&mut self, n: u64) {
        self.obs.details.images = self.obs.details.images.max(n);
    }

    /// Reads a complete (non-streamed) JSON response body.
    pub fn json(&mut self, body: &[u8]) {
        let r = match self.api {
            Api::OpenAiChat | Api::OpenAiCompletions => {
                serde_json::from_slice::<ChatBody<'_>>(body).map(|b| self.openai_chat(b))
            }
            Api::OpenAiEmbeddings => {
                serde_json::from_slice::<ChatBody<'_>>(body).map(|b| self.openai_chat(b))
            }
            Api::OpenAiResponses => {
                serde_json::from_slice::<ResponsesObj<'_>>(body).map(|b| self.responses_obj(b))
            }
            Api::AnthropicMessages => {
                serde_json::from_slice::<AnthropicMessage<'_>>(body).map(|b| {
                    self.anthropic_message(b, true);
                    self.finish_anthropic();
                })
            }
            Api::GeminiGenerate => {
                serde_json::from_slice::<GeminiBody<'_>>(body).map(|b| self.gemini(b))
            }
            Api::OpenAiImages | Api::OpenAiSpeech | Api::OpenAiTranscription => {
                serde_json::from_slice::<MediaBody<'_>>(body).map(|b| self.media(b))
            }
            Api::GeminiStreamGenerate => {
                // Without `alt=sse` the stream is one JSON array of responses.
                serde_json::from_slice::<Vec<GeminiBody<'_>>>(body).map(|v| {
                    for b in v {
                        self.gemini(b);
                    }
                })
            }
        };
        if let Err(e) = r {
            self.obs.parse_failed("json", json_error(&e));
        }
    }

    /// Reads one SSE event (`event` is its `event:` field, `""` if none).
    ///
    /// An event shaped like the previous plain text delta (same bytes around a different
    /// plain string) is recognised without parsing: the answers are the same as a full
    /// decode's, at a fraction of the cost.
    pub fn event(&mut self, event: &str, data: &[u8]) {
        self.events += 1;
        let n = self.events;
        let trimmed = data.trim_ascii();
        if let Some(t) = self.template.as_ref().and_then(|t| t.text(event, trimmed)) {
            self.obs.push_text(t);
            return;
        }
        if trimmed == b"[DONE]" {
            if !self.obs.done {
                self.set_done();
                self.rev += 1;
            }
            return;
        }
        if trimmed.is_empty() {
            return;
        }
        let (rev, anthropic) = (self.rev, self.anthropic);
        let (events_before, text_before) = (self.obs.output_events, self.obs.text.len());
        let r = match self.api {
            Api::OpenAiChat | Api::OpenAiCompletions | Api::OpenAiEmbeddings => {
                serde_json::from_slice::<ChatBody<'_>>(trimmed).map(|b| self.openai_chat(b))
            }
            Api::OpenAiResponses => serde_json::from_slice::<ResponsesEvent<'_>>(trimmed)
                .map(|e| self.responses_event(e)),
            Api::AnthropicMessages => serde_json::from_slice::<AnthropicEvent<'_>>(trimmed)
                .map(|e| self.anthropic_event(event, e)),
            Api::GeminiGenerate | Api::GeminiStreamGenerate => {
                serde_json::from_slice::<GeminiBody<'_>>(trimmed).map(|b| self.gemini(b))
            }
            Api::OpenAiImages | Api::OpenAiSpeech | Api::OpenAiTranscription => {
                serde_json::from_slice::<MediaBody<'_>>(trimmed).map(|b| self.media(b))
            }
        };
        if let Err(e) = r {
            self.obs
                .parse_failed(&format!("sse event {n}"), json_error(&e));
            self.template = None;
            return;
        }
        if self.rev != rev || self.anthropic != anthropic {
            // Something besides the text changed: an event like the template would now
            // change it back, so it must be decoded.
            self.template = None;
        } else if self.obs.output_events == events_before + 1
            && !self.obs.text_truncated
            && self.template.is_none()
        {
            self.template = Template::new(event, trimmed, &self.obs.text[text_before..]);
        }
    }

    /// An SSE event longer than the parser keeps, of which `tail` is the end
    /// ([`crate::sse::SseEvent::truncated`]): the usage at its end is read as the whole
    /// event would have given it (OpenAI's `response.completed` repeating generated images,
    /// a streamed `image_generation.completed`), and nothing else of it.
    pub fn event_tail(&mut self, event: &str, tail: &[u8]) {
        let key = usage_key(self.api);
        let Some(usage) = tail_value(tail, key) else {
            return;
        };
        let body = match self.api {
            Api::OpenAiResponses => serde_json::json!({
                "type": if event.starts_with("response.") { event } else { "response.completed" },
                "response": { key: usage },
            }),
            Api::OpenAiImages | Api::OpenAiSpeech | Api::OpenAiTranscription => {
                serde_json::json!({ "type": event, key: usage })
            }
            _ => serde_json::json!({ key: usage }),
        };
        self.event(event, body.to_string().as_bytes());
    }

    /// Ends the response: folds provider-specific partial usage into [`Observed::usage`].
    pub fn finish(&mut self) {
        if self.api == Api::AnthropicMessages {
            self.finish_anthropic();
        }
    }

    fn set_id_model(&mut self, id: Option<Cow<'_, str>>, model: Option<Cow<'_, str>>) {
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            if self.obs.id.as_deref() != Some(&*id) {
                self.obs.id = Some(id.into_owned());
                self.rev += 1;
            }
        }
        if let Some(m) = model.filter(|s| !s.is_empty()) {
            if self.obs.model.as_deref() != Some(&*m) {
                self.obs.model = Some(m.into_owned());
                self.rev += 1;
            }
        }
    }

    fn set_finish(&mut self, index: usize, reason: &str) {
        if self.obs.set_finish(index, reason) {
            self.rev += 1;
        }
    }

    /// OpenAI's modality counts (`prompt_tokens_details.audio_tokens` / `image_tokens`,
    /// `completion_tokens_details.audio_tokens`).
    fn set_details(&mut self, input: Option<&PromptDetails>, output: Option<&CompletionDetails>) {
        let d = &mut self.obs.details;
        let before = *d;
        if let Some(i) = input {
            d.audio_input_tokens = i.audio_tokens.unwrap_or(0);
            d.image_input_tokens = i.image_tokens.unwrap_or(0);
        }
        if let Some(o) = output {
            d.audio_output_tokens = o.audio_tokens.unwrap_or(0);
        }
        if *d != before {
            self.rev += 1;
        }
    }

    fn set_service_tier(&mut self, tier: &str, openai: bool) {
        if self.obs.service_tier.as_deref() != Some(tier) {
            self.obs.service_tier = Some(llmtel::cap_value(tier).into_owned());
            self.obs.openai_tier = openai;
            self.rev += 1;
        }
    }

    fn set_usage(&mut self, u: Usage) {
        if self.obs.usage != Some(u) {
            self.obs.usage = Some(u);
            self.rev += 1;
        }
    }

    fn set_done(&mut self) {
        if !self.obs.done {
            self.obs.done = true;
            self.rev += 1;
        }
    }

    fn provider_error(&mut self, e: ErrorObj<'_>) {
        let class = crate::errors::classify(
            0,
            e.code_str().as_deref(),
            e.kind.as_deref().or(e.status.as_deref()),
            e.message.as_deref(),
        );
        let msg = e.message.as_deref().unwrap_or_default().to_owned();
        if self.obs.provider_error.is_none() {
            self.obs.provider_error = Some((class.to_owned(), msg));
            self.rev += 1;
        }
    }

    // ---- OpenAI images, speech, transcription ----
    /// A media response or stream event: images generated, audio seconds, the usage
    /// (`tokens` or `duration`) and a transcript's text.
    fn media(&mut self, b: MediaBody<'_>) {
        if let Some(e) = b.error {
            self.provider_error(e);
            return;
        }
        let kind = b.kind.as_deref().unwrap_or_default();
        let before = self.obs.details;
        match self.api {
            Api::OpenAiTranscription => {
                if kind.is_empty() {
                    if let Some(t) = &b.text {
                        self.obs.push_text(t);
                    }
                } else if kind.ends_with(".delta") {
                    if let Some(t) = &b.delta {
                        self.obs.push_text(t);
                    }
                }
                if kind.is_empty() || kind.ends_with(".done") {
                    self.set_finish(0, "stop");
                }
            }
            Api::OpenAiImages => {
                if let Some(data) = &b.data {
                    self.obs.details.images =
                        self.obs.details.images.saturating_add(data.len() as u64);
                    self.set_finish(0, "stop");
                } else if kind.ends_with(".completed") {
                    // A streamed image (`image_generation.completed`, `image_edit.completed`).
                    self.obs.details.images = self.obs.details.images.saturating_add(1);
                    self.set_finish(0, "stop");
                }
            }
            _ => {
                if kind.ends_with(".done") {
                    self.set_finish(0, "stop");
                }
            }
        }
        let seconds = |s: f64| -> u64 {
            if s.is_finite() && s > 0.0 {
                // Saturates at u64::MAX for absurd values (`as` from f64 saturates).
                (s * 1000.0).round() as u64
            } else {
                0
            }
        };
        if let Some(d) = b.duration {
            // verbose_json: the audio's duration in seconds.
            self.obs.details.input_audio_ms = seconds(d);
        }
        if let Some(u) = b.usage {
            let tokens = u.input_tokens.is_some() || u.output_tokens.is_some();
            if u.kind.as_deref() == Some("duration") || (!tokens && u.seconds.is_some()) {
                self.obs.details.input_audio_ms = seconds(u.seconds.unwrap_or(0.0));
            }
            if tokens {
                let input = u.input_tokens.unwrap_or(0);
                let output = u.output_tokens.unwrap_or(0);
                let din = u.input_tokens_details.as_ref();
                let dout = u.output_tokens_details.as_ref();
                let d = &mut self.obs.details;
                match self.api {
                    Api::OpenAiImages => {
                        d.image_input_tokens = din.and_then(|x| x.image_tokens).unwrap_or(0);
                        // Without a split, every output token of the images endpoint is
                        // an image token.
                        d.image_output_tokens = match dout {
                            Some(x) => x.image_tokens.unwrap_or(0),
                            None => output,
                        };
                    }
                    Api::OpenAiSpeech => {
                        d.audio_output_tokens = match dout {
                            Some(x) => x.audio_tokens.unwrap_or(0),
                            None => output,
                        };
                    }
                    _ => {
                        d.audio_input_tokens = din.and_then(|x| x.audio_tokens).unwrap_or(0);
                        // The audio is billed through the tokens, not by its seconds.
                        d.input_audio_ms = 0;
                    }
                }
                self.set_usage(Usage {
                    input_tokens: input,
                    output_tokens: output,
                    cache_read_tokens: din.and_then(|x| x.cached_tokens).unwrap_or(0),
                    ..Default::default()
                });
            }
        }
        if self.obs.details != before {
            self.rev += 1;
        }
    }

    // ---- OpenAI chat / completions / embeddings (same envelope) ----
    fn openai_chat(&mut self, b: ChatBody<'_>) {
        if let Some(e) = b.error {
            self.provider_error(e);
            return;
        }
        self.set_id_model(b.id, b.model);
        for c in b.choices.unwrap_or_default() {
            let idx = c.index.unwrap_or(0) as usize;
            if let Some(d) = c.delta.as_ref().or(c.message.as_ref()) {
                if let Some(c) = &d.content {
                    c.texts(&mut |t| self.obs.push_text(t));
                }
                if let Some(t) = d.reasoning_content.as_ref().or(d.reasoning.as_ref()) {
                    self.obs.push_text(t);
                }
                for tc in d.tool_calls.iter().flatten() {
                    if let Some(a) = tc.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                        self.obs.push_text(a);
                    }
                }
            }
            if let Some(t) = &c.text {
                self.obs.push_text(t);
            }
            if let Some(r) = c.finish_reason.as_deref() {
                self.set_finish(idx, r);
            }
        }
        if let Some(tier) = b.service_tier.as_deref() {
            self.set_service_tier(tier, true);
        }
        if let Some(u) = b.usage {
            self.set_details(
                u.prompt_tokens_details.as_ref(),
                u.completion_tokens_details.as_ref(),
            );
            let cache_read = u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .or(u.prompt_cache_hit_tokens)
                .unwrap_or(0);
            let (input, completion) = (
                u.prompt_tokens.unwrap_or(0),
                u.completion_tokens.unwrap_or(0),
            );
            let reasoning = u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0);
            // OpenAI counts reasoning inside `completion_tokens`; xAI outside it (its
            // `total_tokens` adds it on): then llmtel's output, which includes reasoning,
            // is the sum. Only a total that says so counts: without one (or with counts
            // too large to add), the sum is `None` on both sides, which compared equal and
            // then overflowed (a panic in debug builds, a wrapped count in release).
            let outside = reasoning > 0
                && u.total_tokens.is_some()
                && u.total_tokens
                    == input
                        .checked_add(completion)
                        .and_then(|n| n.checked_add(reasoning));
            self.set_usage(Usage {
                input_tokens: input,
                output_tokens: if outside {
                    completion.saturating_add(reasoning)
                } else {
                    completion
                },
                cache_read_tokens: cache_read,
                reasoning_tokens: reasoning,
                ..Default::default()
            });
        }
    }

    // ---- OpenAI Responses ----
    fn responses_obj(&mut self, r: ResponsesObj<'_>) {
        if let Some(e) = r.error {
            self.provider_error(e);
        }
        self.set_id_model(r.id, r.model);
        for item in r.output.unwrap_or_default() {
            for part in item.content.unwrap_or_default() {
                if let Some(t) = part.text {
                    self.obs.push_text(&t);
                }
            }
            if let Some(a) = item.arguments {
                self.obs.push_text(&a);
            }
        }
        if let Some(status) = r.status.as_deref() {
            let reason = r
                .incomplete_details
                .and_then(|d| d.reason)
                .map(Cow::into_owned)
                .unwrap_or_else(|| status.to_owned());
            if status != "in_progress" && status != "queued" {
                self.set_finish(0, &reason);
            }
        }
        if let Some(tier) = r.service_tier.as_deref() {
            self.set_service_tier(tier, true);
        }
        if let Some(u) = r.usage {
            self.set_details(
                u.input_tokens_details.as_ref(),
                u.output_tokens_details.as_ref(),
            );
            self.set_usage(Usage {
                input_tokens: u.input_tokens.unwrap_or(0),
                output_tokens: u.output_tokens.unwrap_or(0),
                cache_read_tokens: u
                    .input_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
                reasoning_tokens: u
                    .output_tokens_details
                    .and_then(|d| d.reasoning_tokens)
                    .unwrap_or(0),
                ..Default::default()
            });
        }
    }

    fn responses_event(&mut self, e: ResponsesEvent<'_>) {
        match e.kind.as_deref().unwrap_or_default() {
            "response.output_text.delta"
            | "response.refusal.delta"
            | "response.function_call_arguments.delta"
            | "response.reasoning_summary_text.delta" => {
                if let Some(d) = e.delta {
                    self.obs.push_text(&d);
                }
            }
            "response.created" | "response.in_progress" => {
                if let Some(r) = e.response {
                    self.set_id_model(r.id, r.model);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.set_done();
                if let Some(r) = e.response {
                    // The final response repeats the whole output: keep the streamed text.
                    let text = std::mem::take(&mut self.obs.text);
                    let events = self.obs.output_events;
                    self.responses_obj(ResponsesObj { output: None, ..r });
                    self.obs.text = text;
                    self.obs.output_events = events;
                }
            }
            "error" => self.provider_error(ErrorObj {
                code: e.code.map(CodeValue::Str),
                message: e.message,
                kind: None,
                status: None,
            }),
            _ => {}
        }
    }

    // ---- Anthropic ----
    fn anthropic_message(&mut self, m: AnthropicMessage<'_>, whole: bool) {
        if let Some(e) = m.error {
            self.provider_error(e);
            return;
        }
        self.set_id_model(m.id, m.model);
        if whole {
            for block in m.content.unwrap_or_default() {
                if let Some(t) = block.text.as_ref().or(block.thinking.as_ref()) {
                    self.obs.push_text(t);
                }
            }
        }
        if let Some(r) = m.stop_reason.as_deref() {
            self.set_finish(0, r);
        }
        if let Some(u) = m.usage {
            self.anthropic.merge(&u);
            self.anthropic_extras(&u);
        }
    }

    fn anthropic_event(&mut self, event: &str, e: AnthropicEvent<'_>) {
        let kind = e.kind.as_deref().unwrap_or(event);
        match kind {
            "message_start" => {
                if let Some(m) = e.message {
                    self.anthropic_message(m, false);
                }
            }
            "content_block_delta" => {
                if let Some(d) = e.delta {
                    for t in [&d.text, &d.thinking, &d.partial_json]
                        .into_iter()
                        .flatten()
                    {
                        self.obs.push_text(t);
                    }
                }
            }
            "message_delta" => {
                if let Some(r) = e.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    self.set_finish(0, r);
                }
                if let Some(u) = e.usage {
                    self.anthropic.merge(&u);
                    self.anthropic_extras(&u);
                }
            }
            "message_stop" => self.set_done(),
            "error" => {
                if let Some(err) = e.error {
                    self.provider_error(err);
                }
            }
            _ => {}
        }
    }

    /// Anthropic's service tier (`usage.service_tier`), 1-hour cache writes
    /// (`usage.cache_creation.ephemeral_1h_input_tokens`) and web searches
    /// (`usage.server_tool_use.web_search_requests`), cumulative in a stream.
    fn anthropic_extras(&mut self, u: &AnthropicUsageJson) {
        if let Some(t) = u.service_tier.as_deref() {
            self.set_service_tier(t, false);
        }
        let d = &mut self.obs.details;
        let before = *d;
        if let Some(n) = u
            .cache_creation
            .as_ref()
            .and_then(|c| c.ephemeral_1h_input_tokens)
        {
            d.cache_write_1h_tokens = n;
        }
        if let Some(n) = u
            .server_tool_use
            .as_ref()
            .and_then(|s| s.web_search_requests)
        {
            d.web_search_queries = n;
        }
        if *d != before {
            self.rev += 1;
        }
    }

    fn finish_anthropic(&mut self) {
        let a = &self.anthropic;
        if a.input.is_none() && a.output.is_none() {
            return;
        }
        let cache_read = a.cache_read.unwrap_or(0);
        let cache_write = a.cache_write.unwrap_or(0);
        // Anthropic's input_tokens exclude cache reads and writes; llmtel's include them.
        self.set_usage(Usage {
            input_tokens: a
                .input
                .unwrap_or(0)
                .saturating_add(cache_read)
                .saturating_add(cache_write),
            output_tokens: a.output.unwrap_or(0),
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            ..Default::default()
        });
    }

    // ---- Gemini ----
    fn gemini(&mut self, b: GeminiBody<'_>) {
        if let Some(e) = b.error {
            self.provider_error(e);
            return;
        }
        self.set_id_model(b.response_id, b.model_version);
        let candidates = b.candidates.unwrap_or_default();
        // Gemini's stream has no end marker: its last chunk is the one whose every candidate
        // has a finish reason (a consumer that stops there, dropping the response before the
        // transport's end, did not cancel the call).
        let last_chunk =
            !candidates.is_empty() && candidates.iter().all(|c| c.finish_reason.is_some());
        for (i, c) in candidates.into_iter().enumerate() {
            let idx = c.index.map(|i| i as usize).unwrap_or(i);
            for p in c.content.and_then(|c| c.parts).unwrap_or_default() {
                if let Some(t) = p.text {
                    self.obs.push_text(&t);
                }
            }
            if let Some(r) = c.finish_reason.as_deref() {
                self.set_finish(idx, r);
            }
        }
        if last_chunk {
            self.set_done();
        }
        if let Some(u) = b.usage_metadata {
            // Per-modality counts (`promptTokensDetails`, `candidatesTokensDetails`).
            let before = self.obs.details;
            let d = &mut self.obs.details;
            let prompt = u.prompt_tokens_details.as_ref();
            d.audio_input_tokens = GeminiModalityCount::of(prompt, "AUDIO");
            d.image_input_tokens = GeminiModalityCount::of(prompt, "IMAGE");
            d.video_input_tokens = GeminiModalityCount::of(prompt, "VIDEO");
            d.cache_read_audio_tokens =
                GeminiModalityCount::of(u.cache_tokens_details.as_ref(), "AUDIO");
            let candidates = u.candidates_tokens_details.as_ref();
            d.audio_output_tokens = GeminiModalityCount::of(candidates, "AUDIO");
            // Generated images (gemini-2.5-flash-image: 1,290 a 1024px image), priced at
            // the image output rate.
            d.image_output_tokens = GeminiModalityCount::of(candidates, "IMAGE");
            if *d != before {
                self.rev += 1;
            }
            let thoughts = u.thoughts_token_count.unwrap_or(0);
            // promptTokenCount includes cached content; candidates exclude thoughts.
            self.set_usage(Usage {
                input_tokens: u
                    .prompt_token_count
                    .unwrap_or(0)
                    .saturating_add(u.tool_use_prompt_token_count.unwrap_or(0)),
                output_tokens: u
                    .candidates_token_count
                    .unwrap_or(0)
                    .saturating_add(thoughts),
                cache_read_tokens: u.cached_content_token_count.unwrap_or(0),
                reasoning_tokens: thoughts,
                ..Default::default()
            });
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct AnthropicUsage {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
}

impl AnthropicUsage {
    fn merge(&mut self, u: &AnthropicUsageJson) {
        // message_delta counts are cumulative: the latest value wins.
        self.input = u.input_tokens.or(self.input);
        self.output = u.output_tokens.or(self.output);
        self.cache_read = u.cache_read_input_tokens.or(self.cache_read);
        self.cache_write = u.cache_creation_input_tokens.or(self.cache_write);
    }
}

/// The key a provider's usage object goes by: Gemini's `usageMetadata`, the others' `usage`.
pub(crate) fn usage_key(api: Api) -> &'static str {
    match api {
        Api::GeminiGenerate | Api::GeminiStreamGenerate => "usageMetadata",
        _ => "usage",
    }
}

/// The last `"key": {...}` object in `tail`, the end of a body or event too large to keep
/// whole (the providers put the usage after the output).
pub(crate) fn tail_value(tail: &[u8], key: &str) -> Option<serde_json::Value> {
    let quoted = format!("\"{key}\"");
    let pos = memchr::memmem::rfind(tail, quoted.as_bytes())?;
    let rest = &tail[pos + quoted.len()..];
    let start = memchr::memchr(b'{', rest)?;
    let mut de =
        serde_json::Deserializer::from_slice(&rest[start..]).into_iter::<serde_json::Value>();
    de.next()?.ok()
}

// ---- wire shapes (only the fields read; unknown fields are skipped) ----

#[derive(Deserialize)]
#[serde(untagged)]
enum CodeValue<'a> {
    Str(Cow<'a, str>),
    Num(i64),
}

#[derive(Deserialize)]
struct ErrorObj<'a> {
    code: Option<CodeValue<'a>>,
    message: Option<Cow<'a, str>>,
    #[serde(rename = "type")]
    kind: Option<Cow<'a, str>>,
    status: Option<Cow<'a, str>>,
}

impl ErrorObj<'_> {
    fn code_str(&self) -> Option<String> {
        match &self.code {
            Some(CodeValue::Str(s)) => Some(s.to_string()),
            Some(CodeValue::Num(n)) => Some(n.to_string()),
            None => None,
        }
    }
}

/// An OpenAI images / speech / transcription response, or one of their stream events.
#[derive(Deserialize)]
struct MediaBody<'a> {
    #[serde(rename = "type")]
    kind: Option<Cow<'a, str>>,
    data: Option<Vec<serde::de::IgnoredAny>>,
    usage: Option<MediaUsage>,
    duration: Option<f64>,
    text: Option<Cow<'a, str>>,
    delta: Option<Cow<'a, str>>,
    error: Option<ErrorObj<'a>>,
}

#[derive(Deserialize)]
struct MediaUsage {
    /// Transcription: `tokens` or `duration`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    /// Transcription spells it `input_token_details`.
    #[serde(default, alias = "input_token_details")]
    input_tokens_details: Option<MediaDetails>,
    #[serde(default, alias = "output_token_details")]
    output_tokens_details: Option<MediaDetails>,
    seconds: Option<f64>,
}

#[derive(Deserialize)]
struct MediaDetails {
    image_tokens: Option<u64>,
    audio_tokens: Option<u64>,
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ChatBody<'a> {
    id: Option<Cow<'a, str>>,
    model: Option<Cow<'a, str>>,
    service_tier: Option<Cow<'a, str>>,
    choices: Option<Vec<ChatChoice<'a>>>,
    usage: Option<ChatUsage>,
    error: Option<ErrorObj<'a>>,
}

#[derive(Deserialize)]
struct ChatChoice<'a> {
    index: Option<u64>,
    delta: Option<ChatMessage<'a>>,
    message: Option<ChatMessage<'a>>,
    text: Option<Cow<'a, str>>,
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChatMessage<'a> {
    content: Option<ChatContent<'a>>,
    reasoning_content: Option<Cow<'a, str>>,
    reasoning: Option<Cow<'a, str>>,
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

/// A chat message's `content`: a string (OpenAI), or an array of parts (Mistral's reasoning
/// models: `[{"type":"thinking","thinking":[{"type":"text","text":...}]},
/// {"type":"text","text":...}]`; some OpenAI-compatible servers). Any other shape is
/// skipped: it must never make the usage beside it unreadable.
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<ContentPart<'a>>),
    Other(serde::de::IgnoredAny),
}

/// One part of an array `content`: its text, and the parts of a `thinking` part.
#[derive(Deserialize)]
struct ContentPart<'a> {
    text: Option<Cow<'a, str>>,
    thinking: Option<Box<ChatContent<'a>>>,
}

impl ChatContent<'_> {
    /// Calls `f` with each text this content holds, in order.
    fn texts(&self, f: &mut impl FnMut(&str)) {
        match self {
            ChatContent::Text(t) => f(t),
            ChatContent::Parts(parts) => {
                for p in parts {
                    if let Some(t) = &p.thinking {
                        t.texts(f);
                    }
                    if let Some(t) = &p.text {
                        f(t);
                    }
                }
            }
            ChatContent::Other(_) => {}
        }
    }
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    function: Option<FunctionCall<'a>>,
}

#[derive(Deserialize)]
struct FunctionCall<'a> {
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChatUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
    total_tokens: Option<u64>,
    /// DeepSeek's spelling of cached input.
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
    audio_tokens: Option<u64>,
    image_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
    audio_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ResponsesObj<'a> {
    id: Option<Cow<'a, str>>,
    model: Option<Cow<'a, str>>,
    service_tier: Option<Cow<'a, str>>,
    status: Option<Cow<'a, str>>,
    incomplete_details: Option<IncompleteDetails<'a>>,
    output: Option<Vec<ResponsesItem<'a>>>,
    usage: Option<ResponsesUsage>,
    error: Option<ErrorObj<'a>>,
}

#[derive(Deserialize)]
struct IncompleteDetails<'a> {
    reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponsesItem<'a> {
    content: Option<Vec<ResponsesPart<'a>>>,
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponsesPart<'a> {
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponsesUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<PromptDetails>,
    output_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct ResponsesEvent<'a> {
    #[serde(rename = "type")]
    kind: Option<Cow<'a, str>>,
    delta: Option<Cow<'a, str>>,
    response: Option<ResponsesObj<'a>>,
    code: Option<Cow<'a, str>>,
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicMessage<'a> {
    id: Option<Cow<'a, str>>,
    model: Option<Cow<'a, str>>,
    content: Option<Vec<AnthropicBlock<'a>>>,
    stop_reason: Option<Cow<'a, str>>,
    usage: Option<AnthropicUsageJson>,
    error: Option<ErrorObj<'a>>,
}

#[derive(Deserialize)]
struct AnthropicBlock<'a> {
    text: Option<Cow<'a, str>>,
    thinking: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicUsageJson {
    service_tier: Option<String>,
    server_tool_use: Option<AnthropicServerToolUse>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<AnthropicCacheCreation>,
}

/// `usage.cache_creation`: the cache writes by time to live.
#[derive(Deserialize)]
struct AnthropicCacheCreation {
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct AnthropicServerToolUse {
    web_search_requests: Option<u64>,
}

#[derive(Deserialize)]
struct AnthropicEvent<'a> {
    #[serde(rename = "type")]
    kind: Option<Cow<'a, str>>,
    message: Option<AnthropicMessage<'a>>,
    delta: Option<AnthropicDelta<'a>>,
    usage: Option<AnthropicUsageJson>,
    error: Option<ErrorObj<'a>>,
}

#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    text: Option<Cow<'a, str>>,
    thinking: Option<Cow<'a, str>>,
    partial_json: Option<Cow<'a, str>>,
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiBody<'a> {
    candidates: Option<Vec<GeminiCandidate<'a>>>,
    usage_metadata: Option<GeminiUsage>,
    model_version: Option<Cow<'a, str>>,
    response_id: Option<Cow<'a, str>>,
    error: Option<ErrorObj<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiCandidate<'a> {
    content: Option<GeminiContent<'a>>,
    finish_reason: Option<Cow<'a, str>>,
    index: Option<u64>,
}

#[derive(Deserialize)]
struct GeminiContent<'a> {
    parts: Option<Vec<GeminiPart<'a>>>,
}

#[derive(Deserialize)]
struct GeminiPart<'a> {
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiUsage {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
    prompt_tokens_details: Option<Vec<GeminiModalityCount>>,
    cache_tokens_details: Option<Vec<GeminiModalityCount>>,
    candidates_tokens_details: Option<Vec<GeminiModalityCount>>,
}

/// One entry of Gemini's `promptTokensDetails` / `candidatesTokensDetails`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiModalityCount {
    modality: Option<String>,
    token_count: Option<u64>,
}

impl GeminiModalityCount {
    fn of(list: Option<&Vec<GeminiModalityCount>>, modality: &str) -> u64 {
        list.into_iter()
            .flatten()
            .filter(|m| m.modality.as_deref() == Some(modality))
            .filter_map(|m| m.token_count)
            .fold(0, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn huge_completion_counts_with_reasoning_and_no_total_do_not_overflow() {
        // No `total_tokens`: the reasoning is inside `completion_tokens` (OpenAI's way),
        // whatever the counts; `u64::MAX + 5` overflowed (a panic in debug builds).
        let body = format!(
            r#"{{"id":"c1","model":"grok-4","choices":[],"usage":{{"prompt_tokens":10,"completion_tokens":{},"completion_tokens_details":{{"reasoning_tokens":5}}}}}}"#,
            u64::MAX
        );
        let mut d = Decoder::new(Api::OpenAiChat);
        d.json(body.as_bytes());
        let u = d.observed().usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (10, u64::MAX));
        assert_eq!(u.reasoning_tokens, 5);
        // A total that overflows too is not xAI's sum either.
        let body = body.replace(
            r#""prompt_tokens":10"#,
            r#""prompt_tokens":10,"total_tokens":3"#,
        );
        let mut d = Decoder::new(Api::OpenAiChat);
        d.json(body.as_bytes());
        assert_eq!(d.observed().usage.unwrap().output_tokens, u64::MAX);
    }

    #[test]
    fn gemini_modality_counts_saturate() {
        let list = vec![
            GeminiModalityCount {
                modality: Some("AUDIO".into()),
                token_count: Some(u64::MAX),
            },
            GeminiModalityCount {
                modality: Some("AUDIO".into()),
                token_count: Some(1),
            },
        ];
        assert_eq!(GeminiModalityCount::of(Some(&list), "AUDIO"), u64::MAX);
    }
    use proptest::prelude::*;

    /// Decodes `events` twice: as streamed (recognising events like the last plain text
    /// delta without parsing them), and parsing every event in full.
    fn both(api: Api, events: &[(String, String)]) -> (Observed, Observed, usize) {
        let mut fast = Decoder::new(api);
        let mut full = Decoder::new(api);
        let mut shortcuts = 0;
        for (name, data) in events {
            full.template = None;
            full.event(name, data.as_bytes());
            let trimmed = data.as_bytes().trim_ascii();
            if let Some(t) = &fast.template {
                shortcuts += usize::from(t.text(name, trimmed).is_some());
            }
            fast.event(name, data.as_bytes());
        }
        fast.finish();
        full.finish();
        (fast.into_observed(), full.into_observed(), shortcuts)
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[ a-z]{1,8}",
            1 => Just(String::new()),
            1 => "[\"\\\\\n\t\u{1}é漢🙂a]{1,4}",
            1 => Just("gpt-4o".to_owned()),
        ]
    }

    fn openai_event() -> impl Strategy<Value = (String, String)> {
        let chunk = |model: &str, delta: String, finish: &str, usage: &str| {
            format!(
                r#"{{"id":"c1","object":"chat.completion.chunk","model":"{model}","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}],"usage":{usage}}}"#
            )
        };
        prop_oneof![
            6 => text().prop_map(move |t| (String::new(), chunk("gpt-4o", format!(r#"{{"content":{}}}"#, serde_json::to_string(&t).unwrap()), "null", "null"))),
            1 => text().prop_map(move |t| (String::new(), chunk("gpt-4o-mini", format!(r#"{{"content":{}}}"#, serde_json::to_string(&t).unwrap()), "null", "null"))),
            1 => (text(), text()).prop_map(move |(a, b)| (String::new(), chunk("gpt-4o", format!(r#"{{"content":{},"reasoning_content":{}}}"#, serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap()), "null", "null"))),
            1 => text().prop_map(move |t| (String::new(), chunk("gpt-4o", format!(r#"{{"content":{}}}"#, serde_json::to_string(&t).unwrap()), r#""stop""#, "null"))),
            1 => text().prop_map(move |t| (String::new(), chunk("gpt-4o", format!(r#"{{"content":{}}}"#, serde_json::to_string(&t).unwrap()), r#""length""#, "null"))),
            1 => (0u64..50).prop_map(move |n| (String::new(), chunk("gpt-4o", "{}".to_owned(), "null", &format!(r#"{{"prompt_tokens":{n},"completion_tokens":3}}"#)))),
            1 => text().prop_map(move |t| (String::new(), chunk("gpt-4o", format!(r#"{{"content":"{t}"}}"#), "null", "null"))),
            1 => Just((String::new(), "[DONE]".to_owned())),
            1 => Just((String::new(), r#"{"error":{"message":"boom","type":"server_error"}}"#.to_owned())),
        ]
    }

    fn anthropic_event() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            6 => text().prop_map(|t| ("content_block_delta".to_owned(), format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#, serde_json::to_string(&t).unwrap()))),
            1 => text().prop_map(|t| ("ping".to_owned(), format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#, serde_json::to_string(&t).unwrap()))),
            1 => text().prop_map(|t| (String::new(), format!(r#"{{"index":0,"delta":{{"type":"text_delta","text":{}}}}}"#, serde_json::to_string(&t).unwrap()))),
            1 => Just(("message_start".to_owned(), r#"{"type":"message_start","message":{"id":"m1","model":"claude","usage":{"input_tokens":9,"output_tokens":1}}}"#.to_owned())),
            1 => (0u64..50).prop_map(|n| ("message_delta".to_owned(), format!(r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn"}},"usage":{{"output_tokens":{n}}}}}"#))),
            1 => Just(("message_stop".to_owned(), r#"{"type":"message_stop"}"#.to_owned())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn recognised_events_give_the_same_answers_as_parsing_them(
            openai in proptest::collection::vec(openai_event(), 0..40),
            anthropic in proptest::collection::vec(anthropic_event(), 0..40),
        ) {
            let (fast, full, _) = both(Api::OpenAiChat, &openai);
            prop_assert_eq!(fast, full);
            let (fast, full, _) = both(Api::AnthropicMessages, &anthropic);
            prop_assert_eq!(fast, full);
        }
    }

    #[test]
    fn plain_text_deltas_are_recognised() {
        let events: Vec<(String, String)> = ["", "Hello", " there", "!", " é🙂", "a\"b", "c"]
            .iter()
            .map(|t| {
                (
                    String::new(),
                    format!(
                        r#"{{"id":"c1","model":"gpt-4o","choices":[{{"index":0,"delta":{{"content":{}}},"finish_reason":null}}],"usage":null}}"#,
                        serde_json::to_string(t).unwrap()
                    ),
                )
            })
            .collect();
        let (fast, full, shortcuts) = both(Api::OpenAiChat, &events);
        assert_eq!(fast, full);
        assert_eq!(fast.text, "Hello there! é🙂a\"bc");
        assert_eq!(fast.output_events, 6);
        // "Hello" (after id and model were set) is the template; " there", "!", " é🙂" and
        // "c" are recognised; "a\"b" has an escape and is parsed.
        assert_eq!(shortcuts, 4);
    }
}
