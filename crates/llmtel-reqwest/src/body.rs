//! The response body wrapper: passes every frame through as it arrives, observes the bytes
//! on the side, and ends the span when the body ends, fails or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::Value;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::budget::{Budget, Held, KeptBytes};
use crate::decode::{Decoder, Observed};
use crate::preflight::{PlannedCall, PreflightHook, SettledCall};
use crate::reader::Tap;
use crate::route::Api;
use crate::sse::SseParser;

/// Largest non-streamed body parsed whole; past it only the tail is kept to find `usage`.
pub(crate) const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;
const TAIL_BYTES: usize = 16 * 1024;
/// The first allocation of a JSON body's buffer.
const FIRST_JSON_CAPACITY: usize = 8 * 1024;

#[derive(Debug)]
enum Mode {
    Sse(SseParser),
    /// A JSON body, kept whole (its capacity held against the budget, never past
    /// [`MAX_JSON_BYTES`]) until it outgrows that or the budget; then only its last
    /// [`TAIL_BYTES`] (a buffer of exactly that capacity, not held).
    Json {
        buf: Vec<u8>,
        held: Held,
        overflow: bool,
        /// It overflowed because the budget had no room (not for its size).
        over_budget: bool,
    },
    /// A body that is not JSON (speech audio, a plain-text transcript): passed through
    /// unread.
    Opaque,
}

/// What a media request (images, speech, transcription) said that its price depends on.
#[derive(Debug, Default)]
pub(crate) struct MediaRequest {
    /// Characters of a speech request's `input`.
    pub(crate) characters: Option<u64>,
    /// Images asked for (`n`, default 1), counted when the response is too large to read.
    pub(crate) images: Option<u64>,
    /// The model of a streamed multipart body, found as the body was sent.
    pub(crate) scanned_model: Option<crate::media::ScannedModel>,
}

/// How the body ended.
#[derive(Debug)]
pub(crate) enum End {
    Complete,
    Failed(String),
    Dropped,
}

pub(crate) struct CallState {
    pub(crate) span: Span,
    pub(crate) api: Api,
    pub(crate) request_model: String,
    pub(crate) status: u16,
    pub(crate) started: Instant,
    /// The request body as sent (parsed only for an estimate or content capture), held
    /// against the budget; dropped as soon as it cannot be needed.
    pub(crate) request_body: Option<KeptBytes>,
    /// The request body was wanted but not kept: the budget had no room.
    pub(crate) request_over_budget: bool,
    pub(crate) capture: bool,
    pub(crate) hook: Option<(Arc<dyn PreflightHook>, PlannedCall)>,
    pub(crate) media: MediaRequest,
    mode: Mode,
    decoder: Decoder,
    first_chunk: Option<Instant>,
    first_output: Option<Instant>,
    last_output: Option<Instant>,
    skipped: usize,
    finished: bool,
}

impl std::fmt::Debug for CallState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallState")
            .field("api", &self.api)
            .field("status", &self.status)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl CallState {
    /// The state of a call whose JSON bodies are held against `budget`
    /// ([`BUDGET`](crate::budget::BUDGET) outside tests).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        budget: &'static Budget,
        span: Span,
        api: Api,
        request_model: String,
        status: u16,
        content_type: &str,
        started: Instant,
        request_body: Option<KeptBytes>,
        capture: bool,
        hook: Option<(Arc<dyn PreflightHook>, PlannedCall)>,
    ) -> Self {
        let ct = content_type.trim_start();
        let sse = ct.starts_with("text/event-stream");
        let mode = if sse && status < 400 {
            Mode::Sse(SseParser::new())
        } else if api.is_media() && status < 400 && !ct.is_empty() && !ct.contains("json") {
            Mode::Opaque
        } else {
            Mode::Json {
                buf: Vec::new(),
                held: Held::new(budget),
                overflow: false,
                over_budget: false,
            }
        };
        // The request is parsed only for an estimate (of a call the provider served) or
        // content capture: an error status without capture needs neither.
        let request_body = request_body.filter(|_| capture || status < 400);
        CallState {
            span,
            api,
            request_model,
            status,
            started,
            request_body,
            request_over_budget: false,
            capture,
            hook,
            media: MediaRequest::default(),
            mode,
            decoder: Decoder::new(api),
            first_chunk: None,
            first_output: None,
            last_output: None,
            skipped: 0,
            finished: false,
        }
    }

    /// A frame of the body, received by the caller at `now`.
    pub(crate) fn on_data(&mut self, data: &[u8], now: Instant) {
        if data.is_empty() {
            return;
        }
        // Streams only (the convention: "time to the first chunk of a streamed response"):
        // a whole JSON body's first bytes come at about its full latency, which read as a
        // time to first chunk made the generation time ~0 and the tokens per second absurd.
        // (Gemini's `streamGenerateContent` without `alt=sse` streams a JSON array.) An SSE
        // stream's first chunk is its first event: comments (OpenRouter's
        // `: OPENROUTER PROCESSING` keep-alives, sent while the model has not answered yet)
        // dispatch nothing.
        if self.first_chunk.is_none()
            && self.api == Api::GeminiStreamGenerate
            && !matches!(self.mode, Mode::Sse(_))
        {
            self.first_chunk = Some(now);
        }
        match &mut self.mode {
            Mode::Sse(parser) => {
                let before = self.decoder.observed().output_events;
                let decoder = &mut self.decoder;
                let mut dispatched = false;
                parser.feed(data, |e| {
                    dispatched = true;
                    if e.truncated {
                        decoder.event_tail(e.event, e.data);
                    } else {
                        decoder.event(e.event, e.data);
                    }
                });
                if dispatched && self.first_chunk.is_none() {
                    self.first_chunk = Some(now);
                }
                if !self.capture
                    && self.request_body.is_some()
                    && self.decoder.observed().usage.is_some()
                {
                    // The usage came (it is never unset again): no estimate will need the
                    // prompt.
                    self.request_body = None;
                }
                if self.decoder.observed().output_events > before {
                    if self.first_output.is_none() {
                        self.first_output = Some(now);
                    }
                    self.last_output = Some(now);
                }
            }
            Mode::Json {
                buf,
                held,
                overflow,
                over_budget,
            } => {
                if !*overflow {
                    match reserve_json(buf, held, data.len()) {
                        Ok(()) => {
                            buf.extend_from_slice(data);
                            return;
                        }
                        Err(Over::Size) => {}
                        Err(Over::Budget) => {
                            *over_budget = true;
                            crate::budget::note_over();
                        }
                    }
                    *overflow = true;
                }
                keep_tail(buf, held, data);
            }
            Mode::Opaque => {}
        }
    }

    /// A frame of `n` bytes the reader never saw (it was too far behind).
    pub(crate) fn on_gap(&mut self, n: usize) {
        self.skipped += n;
        match &mut self.mode {
            // The event in progress lost bytes: start again at the next event.
            Mode::Sse(parser) => *parser = SseParser::new(),
            Mode::Json {
                buf,
                held,
                overflow,
                ..
            } => {
                *overflow = true;
                keep_tail(buf, held, &[]);
            }
            Mode::Opaque => {}
        }
    }

    /// Records everything seen on the span, settles the pre-flight hook and ends the span.
    pub(crate) fn finish(&mut self, end: End) {
        if self.finished {
            return;
        }
        self.finished = true;
        // A handle: the span stays in `self` until the end, so that if anything below panics
        // (a bug), [`abandon`](Self::abandon) still fails it, and settles the hook if it was
        // not settled yet.
        let span = self.span.clone();
        let status_body = self.decode_rest(&end);
        let mut obs = self.observed();

        crate::record::record_response_of(&span, &obs);
        self.record_timing(&span, &obs);
        let error = self.error_of(&span, status_body, &obs, &end);

        // The request's JSON tree, built only when the prompt is needed.
        // Media (images, audio) is not text: its usage is not estimated from text.
        let estimable = self.api != Api::OpenAiEmbeddings && !self.api.is_media();
        let needs_estimate = obs.usage.is_none() && self.status < 400 && estimable;
        let request_json: Option<Value> = if needs_estimate || self.capture {
            if self.request_over_budget && obs.parse_error.is_none() {
                obs.parse_error = Some(format!(
                    "request: not kept, llmtel-reqwest's budget for kept bytes ({} MiB over \
                     all calls) was in use (an estimate counts the output only)",
                    crate::budget::MAX_KEPT_BYTES >> 20
                ));
            }
            self.request_body
                .take()
                .and_then(|b| serde_json::from_slice::<Value>(b.as_bytes()).ok())
        } else {
            None
        };
        self.request_body = None;
        crate::record::record_dimensions(&span, &obs);
        let (usage, estimated) = self.record_usage(&span, &obs, request_json.as_ref(), estimable);

        if let Some(p) = &obs.parse_error {
            span.set_attribute("llmtel.parse_error", truncate(p, 512));
        }
        if let Some((class, msg)) = &error {
            let msg = llmtel::redact::redact_string(truncate(msg, 512));
            llmtel::record_error_status(&span, class, &msg);
        }
        if self.capture {
            record_content(&span, self.api, request_json.as_ref(), &obs);
        }

        if let Some((hook, call)) = self.hook.take() {
            hook.settle(
                &call,
                &SettledCall {
                    usage,
                    estimated,
                    response_model: obs.model.clone(),
                    error_type: error.map(|(c, _)| c),
                },
            );
        }
        let own = std::mem::replace(&mut self.span, Span::none());
        drop(span);
        drop(own);
    }

    /// Ends a call that could not be finished: its decoding panicked (a bug), or its state
    /// was dropped before its body ended. The span, if still open, ends failed with
    /// `error.type = internal`; the hook, if not settled yet, is settled with that class.
    /// Nothing is done twice: after [`finish`](Self::finish) this does nothing.
    pub(crate) fn abandon(&mut self) {
        self.finished = true;
        let span = std::mem::replace(&mut self.span, Span::none());
        if !span.is_none() {
            llmtel::record_error_status(
                &span,
                INTERNAL,
                "llmtel-reqwest could not finish reading the response (a bug: please report \
                 it); what it held is not recorded",
            );
        }
        if let Some((hook, call)) = self.hook.take() {
            hook.settle(
                &call,
                &SettledCall {
                    usage: None,
                    estimated: false,
                    response_model: None,
                    error_type: Some(INTERNAL.to_owned()),
                },
            );
        }
        drop(span);
    }

    /// Runs `f` with the span's own subscriber as this thread's default: the span may belong
    /// to a thread-local or per-task dispatcher, and the layers that run when it closes
    /// (llmtel's, looking up the OpenTelemetry ids) use the default one.
    pub(crate) fn in_own_dispatch<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let dispatch = self
            .span
            .with_subscriber(|(_, d)| d.clone())
            .unwrap_or_else(|| tracing::dispatcher::get_default(Clone::clone));
        tracing::dispatcher::with_default(&dispatch, || f(self))
    }

    /// Feeds the decoder what the body's mode still holds (a JSON body is read whole here)
    /// and notes what could not be read; returns the body of an HTTP error status.
    fn decode_rest(&mut self, end: &End) -> Option<Vec<u8>> {
        let mut status_body = None;
        match std::mem::replace(&mut self.mode, Mode::Opaque) {
            Mode::Sse(parser) => {
                if parser.oversized() > 0 {
                    self.decoder.note_parse_error(format!(
                        "{} event(s) or line(s) longer than {} bytes: usage read from their \
                         last {} bytes",
                        parser.oversized(),
                        crate::sse::MAX_EVENT_BYTES,
                        crate::sse::TAIL_BYTES
                    ));
                }
                if matches!(end, End::Complete) && parser.has_pending() {
                    self.decoder
                        .note_parse_error("the stream ended inside an event");
                }
            }
            Mode::Opaque => {}
            Mode::Json {
                buf,
                overflow,
                over_budget,
                held: _,
            } => {
                if self.status >= 400 {
                    status_body = Some(buf);
                } else if matches!(end, End::Complete) {
                    if overflow {
                        if self.api == Api::OpenAiImages {
                            // The images are in the part of the body that was not kept.
                            self.decoder.note_images(self.media.images.unwrap_or(1));
                        }
                        if over_budget {
                            self.decoder.note_parse_error(format!(
                                "body not kept whole: llmtel-reqwest's budget for kept bytes \
                                 ({} MiB over all calls) was in use; usage read from its tail",
                                crate::budget::MAX_KEPT_BYTES >> 20
                            ));
                        } else {
                            self.decoder.note_parse_error(format!(
                                "body larger than {MAX_JSON_BYTES} bytes: usage read from its \
                                 tail"
                            ));
                        }
                        if let Some(u) = tail_usage(&buf, self.api) {
                            self.decoder.json(u.as_bytes());
                        }
                    } else {
                        self.decoder.json(&buf);
                    }
                }
            }
        }
        if self.skipped > 0 {
            self.decoder.note_parse_error(format!(
                "{} body bytes not read: llmtel's body reader was more than {} MiB behind",
                self.skipped,
                crate::reader::MAX_QUEUED_BYTES >> 20
            ));
        }
        status_body
    }

    /// What the decoder saw, completed from the request (speech characters, a multipart
    /// request's model) and capped.
    fn observed(&mut self) -> Observed {
        self.decoder.finish();
        let decoder = std::mem::replace(&mut self.decoder, Decoder::new(self.api));
        let mut obs: Observed = decoder.into_observed();
        if obs.details.input_characters == 0 && self.status < 400 {
            // Speech: the characters of the request's input are what tts-1 bills (a call
            // the provider refused is not billed).
            obs.details.input_characters = self.media.characters.unwrap_or(0);
        }
        if obs.model.is_none() {
            // A streamed multipart request (transcription) names its model in the body,
            // read as it was sent.
            obs.model = self
                .media
                .scanned_model
                .as_ref()
                .and_then(|m| m.get().cloned());
        }
        // Taken from the response: capped before they are kept or recorded.
        obs.model = obs.model.take().map(llmtel::cap_string);
        obs.id = obs.id.take().map(llmtel::cap_string);
        obs
    }

    /// Time to the first chunk, and per output chunk of a stream.
    fn record_timing(&self, span: &Span, obs: &Observed) {
        if let Some(t) = self.first_chunk {
            span.record(
                "gen_ai.response.time_to_first_chunk",
                t.duration_since(self.started).as_secs_f64(),
            );
        }
        if let (Some(a), Some(b)) = (self.first_output, self.last_output) {
            if obs.output_events >= 2 {
                let per = b.duration_since(a).as_secs_f64() / (obs.output_events - 1) as f64;
                span.set_attribute("llmtel.response.time_per_output_chunk", per);
            }
            span.set_attribute(
                "llmtel.response.output_chunks",
                i64::try_from(obs.output_events).unwrap_or(i64::MAX),
            );
        }
    }

    /// The call's error class and status text, if it failed: an HTTP error status (whose
    /// code is recorded on the span), an error event in the body, or a body that did not
    /// reach its end.
    fn error_of(
        &self,
        span: &Span,
        status_body: Option<Vec<u8>>,
        obs: &Observed,
        end: &End,
    ) -> Option<(String, String)> {
        if let Some(body) = status_body {
            span.set_attribute("http.response.status_code", i64::from(self.status));
            let (code, kind, msg) = crate::errors::error_fields(&body).unwrap_or((
                None,
                None,
                format!("HTTP {}", self.status),
            ));
            let class =
                crate::errors::classify(self.status, code.as_deref(), kind.as_deref(), Some(&msg));
            if let Some(c) = code.as_deref().or(kind.as_deref()) {
                span.set_attribute("llmtel.error.code", llmtel::cap_value(c).into_owned());
            }
            return Some((
                class.to_owned(),
                provider_text(self.capture, class, self.status, &msg),
            ));
        }
        if let Some((class, msg)) = &obs.provider_error {
            let text = provider_text(self.capture, class, self.status, msg);
            return Some((class.clone(), text));
        }
        match end {
            End::Complete => None,
            // Read to its end marker (`[DONE]`, `message_stop`, `response.completed`) and
            // then failed or dropped before the transport's own end (a chunked terminator,
            // an HTTP/2 end of stream): complete, the answer and its usage were all there. A
            // consumer that stops at the marker, as async-openai does, is the usual drop; a
            // server or proxy closing the connection without the terminator, the failure.
            End::Failed(_) | End::Dropped if obs.done => None,
            End::Failed(e) => Some(("interrupted".to_owned(), e.clone())),
            End::Dropped => Some((
                "cancelled".to_owned(),
                "the caller dropped the response before its end".to_owned(),
            )),
        }
    }

    /// Usage: reported, else estimated for a call the provider served. Returns it and
    /// whether it was estimated.
    fn record_usage(
        &self,
        span: &Span,
        obs: &Observed,
        request_json: Option<&Value>,
        estimable: bool,
    ) -> (Option<llmtel::Usage>, bool) {
        if let Some(u) = obs.usage {
            llmtel::record_usage(span, &u);
            (Some(u), false)
        } else if self.status < 400 && estimable {
            let model = obs.model.as_deref().unwrap_or(&self.request_model);
            let prompt = request_json
                .map(|v| crate::request::prompt_text(self.api, v))
                .unwrap_or_default();
            let usage = llmtel::estimate::record_estimated_usage(span, model, &prompt, &obs.text);
            (Some(usage), true)
        } else {
            (None, false)
        }
    }
}

/// A call state dropped without being finished (never in the normal course: every body's
/// end finishes it) is abandoned: its span fails and its hook is settled, once, so that a
/// budget's reservation is never leaked.
impl Drop for CallState {
    fn drop(&mut self) {
        if self.span.is_none() && self.hook.is_none() {
            return;
        }
        // The hook is the application's code: a panic in it must not unwind out of a drop.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.in_own_dispatch(CallState::abandon);
        }));
    }
}

/// The `error.type` of a call llmtel-reqwest could not finish reading (a bug).
pub(crate) const INTERNAL: &str = "internal";

/// Opt-in content: the request's input messages and the response's text.
fn record_content(span: &Span, api: Api, request_json: Option<&Value>, obs: &Observed) {
    if let Some(json) = request_json.and_then(|v| crate::request::input_messages_json(api, v)) {
        llmtel::record_input_messages(span, &json);
    }
    if !obs.text.is_empty() {
        let out = serde_json::json!([{
            "role": "assistant",
            "parts": [{"type": "text", "content": obs.text}],
            "finish_reason": obs
                .finish_reasons
                .iter()
                .find(|s| !s.is_empty())
                .map(String::as_str)
                .unwrap_or_default(),
        }]);
        llmtel::record_output_messages(span, &out.to_string());
    }
}

/// The status description of a provider error. Its message can quote the prompt (a 400 that
/// repeats the offending input), so it is used only when the app opted in to content (under
/// its policy: redacted, hook applied, truncated); otherwise only the error class and the
/// HTTP status are kept.
fn provider_text(capture: bool, class: &str, status: u16, msg: &str) -> String {
    let policy = llmtel::content_capture();
    match (capture, policy.apply(msg)) {
        (true, Some(text)) if !text.is_empty() => text,
        _ if status >= 400 => format!("HTTP {status}: {class}"),
        _ => format!("provider error: {class}"),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Why a JSON body is not kept whole.
enum Over {
    /// It is larger than [`MAX_JSON_BYTES`].
    Size,
    /// The budget has no room for it.
    Budget,
}

/// Makes room in `buf` for `more` bytes, its capacity held against the budget and never past
/// [`MAX_JSON_BYTES`] (growth doubles, as a `Vec`'s does, up to that cap).
fn reserve_json(buf: &mut Vec<u8>, held: &mut Held, more: usize) -> Result<(), Over> {
    let needed = buf.len().saturating_add(more);
    if needed > MAX_JSON_BYTES {
        return Err(Over::Size);
    }
    if needed <= buf.capacity() {
        return Ok(());
    }
    let doubled = buf
        .capacity()
        .saturating_mul(2)
        .max(FIRST_JSON_CAPACITY)
        .clamp(needed, MAX_JSON_BYTES);
    for cap in [doubled, needed] {
        if held.resize(cap) {
            buf.reserve_exact(cap - buf.len());
            return Ok(());
        }
    }
    Err(Over::Budget)
}

/// Appends `data` to the tail of a body not kept whole: at most its last [`TAIL_BYTES`], in
/// a buffer of that capacity (the whole body's buffer is given back, with what it held).
fn keep_tail(buf: &mut Vec<u8>, held: &mut Held, data: &[u8]) {
    let data = &data[data.len().saturating_sub(TAIL_BYTES)..];
    let keep = TAIL_BYTES.saturating_sub(data.len()).min(buf.len());
    if buf.capacity() > TAIL_BYTES {
        let mut tail = Vec::with_capacity(TAIL_BYTES);
        tail.extend_from_slice(&buf[buf.len() - keep..]);
        *buf = tail;
    } else {
        buf.drain(..buf.len() - keep);
    }
    held.release();
    buf.extend_from_slice(data);
}

/// `{"usage": {...}}` (Gemini: `{"usageMetadata": {...}}`) built from the last such object
/// in the tail of a large body, in the shape the decoder reads for `api`: Gemini's
/// `streamGenerateContent` without `alt=sse` answers a JSON array of responses
/// (`[{"usageMetadata": {...}}]`).
fn tail_usage(tail: &[u8], api: Api) -> Option<String> {
    let key = crate::decode::usage_key(api);
    let usage = crate::decode::tail_value(tail, key)?;
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), usage);
    let body = Value::Object(body);
    Some(if api == Api::GeminiStreamGenerate {
        Value::Array(vec![body]).to_string()
    } else {
        body.to_string()
    })
}

/// The instrumented response body: frames pass through untouched as they arrive; the
/// [`Tap`] notes them for the reader.
pub(crate) struct InstrumentedBody {
    inner: reqwest::Body,
    tap: Tap,
}

impl InstrumentedBody {
    pub(crate) fn new(inner: reqwest::Body, state: CallState) -> Self {
        InstrumentedBody {
            inner,
            tap: Tap::new(state),
        }
    }
}

impl HttpBody for InstrumentedBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.tap.on_data(data);
                }
                if this.inner.is_end_stream() {
                    this.tap.end(End::Complete);
                }
            }
            Poll::Ready(Some(Err(e))) => this.tap.end(End::Failed(e.to_string())),
            Poll::Ready(None) => this.tap.end(End::Complete),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for InstrumentedBody {
    fn drop(&mut self) {
        self.tap.end(End::Dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;

    fn state(budget: &'static Budget, content_type: &str, status: u16) -> CallState {
        state_with(budget, content_type, status, None, false)
    }

    /// [`state`], with a kept request body and content capture on or off.
    fn state_with(
        budget: &'static Budget,
        content_type: &str,
        status: u16,
        request_body: Option<KeptBytes>,
        capture: bool,
    ) -> CallState {
        CallState::new(
            budget,
            Span::none(),
            Api::OpenAiChat,
            "gpt-4o".to_owned(),
            status,
            content_type,
            Instant::now(),
            request_body,
            capture,
            None,
        )
    }

    fn json_capacity(s: &CallState) -> usize {
        match &s.mode {
            Mode::Json { buf, .. } => buf.capacity(),
            _ => 0,
        }
    }

    /// A chat answer of about `text` bytes, its usage at the end.
    fn chat_body(text: usize) -> Vec<u8> {
        let mut body =
            br#"{"id":"c1","model":"gpt-4o","choices":[{"index":0,"message":{"content":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', text));
        body.extend_from_slice(
            br#""},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":9}}"#,
        );
        body
    }

    fn usage(s: &CallState) -> Option<(u64, u64)> {
        s.decoder
            .observed()
            .usage
            .map(|u| (u.input_tokens, u.output_tokens))
    }

    #[test]
    fn a_json_body_buffer_stays_within_its_cap_and_shrinks_to_the_tail_past_it() {
        static B: Budget = Budget::new(usize::MAX);
        let mut s = state(&B, "application/json", 200);
        let body = chat_body(MAX_JSON_BYTES + 1000);
        let mut max = 0;
        for frame in body.chunks(64 * 1024) {
            s.on_data(frame, Instant::now());
            max = max.max(json_capacity(&s));
            assert!(B.held() <= MAX_JSON_BYTES);
        }
        assert!(max <= MAX_JSON_BYTES, "grew to {max}");
        assert!(json_capacity(&s) <= TAIL_BYTES, "{}", json_capacity(&s));
        assert_eq!(B.held(), 0, "the tail is not held");
        s.decode_rest(&End::Complete);
        assert_eq!(usage(&s), Some((7, 9)));

        // Within the cap: the capacity held, given back when the body has been read.
        let mut s = state(&B, "application/json", 200);
        for frame in chat_body(300_000).chunks(10_000) {
            s.on_data(frame, Instant::now());
            assert_eq!(B.held(), json_capacity(&s));
        }
        s.decode_rest(&End::Complete);
        assert_eq!(B.held(), 0);
        assert_eq!(usage(&s), Some((7, 9)));
    }

    #[test]
    fn past_the_budget_a_json_body_is_read_from_its_tail_counted_and_noted() {
        static B: Budget = Budget::new(1 << 20);
        // A first call holds the whole budget (1 MiB of a larger body read so far).
        let mut first = state(&B, "application/json", 200);
        first.on_data(&chat_body(2 << 20)[..1 << 20], Instant::now());
        assert_eq!(B.held(), 1 << 20);
        let over = crate::budget::over_budget();
        let mut second = state(&B, "application/json", 200);
        for frame in chat_body(2_000).chunks(500) {
            second.on_data(frame, Instant::now());
        }
        assert_eq!(crate::budget::over_budget(), over + 1, "counted once");
        assert!(json_capacity(&second) <= TAIL_BYTES);
        second.decode_rest(&End::Complete);
        assert_eq!(usage(&second), Some((7, 9)), "read from the tail");
        let noted = second.decoder.observed().parse_error.clone().unwrap();
        assert!(noted.contains("budget for kept bytes"), "{noted}");
        drop(first);
        assert_eq!(B.held(), 0);
    }

    #[test]
    fn the_request_copy_is_given_back_as_soon_as_it_cannot_be_needed() {
        static B: Budget = Budget::new(usize::MAX);
        let request = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#;
        let kept = || KeptBytes::copy(&B, request);
        // An error status: no estimate, so only content capture needs the prompt.
        let s = state_with(&B, "application/json", 429, kept(), false);
        assert!(s.request_body.is_none());
        assert_eq!(B.held(), 0);
        let s = state_with(&B, "application/json", 429, kept(), true);
        assert!(s.request_body.is_some(), "captured");
        drop(s);
        // A stream: kept until its usage comes.
        let mut s = state_with(&B, "text/event-stream", 200, kept(), false);
        s.on_data(
            b"data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            Instant::now(),
        );
        assert_eq!(
            B.held(),
            request.len(),
            "no usage yet: an estimate may need it"
        );
        s.on_data(
            b"data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}}\n\n",
            Instant::now(),
        );
        assert!(s.request_body.is_none());
        assert_eq!(B.held(), 0);
    }
}
