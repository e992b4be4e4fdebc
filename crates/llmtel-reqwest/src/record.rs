//! Recording a response you already have on a span you opened — for clients the middleware
//! cannot wrap (async-openai takes a plain `reqwest::Client`, not a middleware client; any
//! SDK whose response types are `Serialize`).
//!
//! - a whole response: [`record_json_response`] (its bytes) or [`record_response`] (a
//!   `Serialize` value such as async-openai's `CreateChatCompletionResponse`);
//! - a stream: [`ObservedStream`] wraps any stream of `Result<T: Serialize, E>` (such as
//!   async-openai's `ChatCompletionResponseStream`), passes every item through unchanged and
//!   ends the span like the middleware does: usage from the last chunk (or estimated from the
//!   text, marked so), time to first chunk and per output chunk, `error.type = "interrupted"`
//!   when the stream fails, `"cancelled"` when the caller drops it early.
//!
//! ```no_run
//! # async fn run(client: async_openai::Client<async_openai::config::OpenAIConfig>,
//! #              request: async_openai::types::chat::CreateChatCompletionRequest)
//! #              -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt as _;
//! use llmtel_reqwest::{Api, record::ObservedStream};
//!
//! let span = llmtel::llm_span!("chat", "openai", &request.model);
//! let started = std::time::Instant::now();
//! let stream = client.chat().create_stream(request.clone()).await?;
//! let mut stream = ObservedStream::new(span, Api::OpenAiChat, stream)
//!     .started_at(started)
//!     .with_request(&request); // model and prompt for estimates, content if captured
//! while let Some(chunk) = stream.next().await {
//!     let chunk = chunk?; // the SDK's own type, untouched
//! }
//! // the span has ended: usage, cost, time to first chunk
//! # Ok(()) }
//! ```
//!
//! ```
//! use tracing_subscriber::prelude::*;
//! # let subscriber = tracing_subscriber::registry().with(llmtel::layer());
//! # tracing::subscriber::with_default(subscriber, || {
//! let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
//! // e.g. `serde_json::to_vec(&async_openai_response)?`
//! let body = br#"{"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":0}}}"#;
//! let seen = llmtel_reqwest::record::record_json_response(&span, llmtel_reqwest::Api::OpenAiChat, body);
//! assert_eq!(seen.usage.unwrap().input_tokens, 12);
//! # });
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use tracing::Span;

use crate::body::{CallState, End};
use crate::decode::{Decoder, Observed};
use crate::reader::Tap;
use crate::route::Api;

/// Like [`record_json_response`], for a response value (`serde_json` serialises it first).
pub fn record_response<T: Serialize + ?Sized>(span: &Span, api: Api, response: &T) -> Observed {
    match serde_json::to_vec(response) {
        Ok(body) => record_json_response(span, api, &body),
        Err(e) => {
            let mut d = Decoder::new(api);
            d.note_parse_error(format!("the response could not be serialised: {e}"));
            d.into_observed()
        }
    }
}

/// Parses a complete JSON response of `api` and records its id, model, finish reasons and
/// usage on `span` (an [`llmtel::llm_span!`]); a parse error is returned in
/// [`Observed::parse_error`] and nothing is recorded for what could not be read.
pub fn record_json_response(span: &Span, api: Api, body: &[u8]) -> Observed {
    let mut d = Decoder::new(api);
    d.json(body);
    d.finish();
    let obs = d.into_observed();
    record_observed(span, &obs);
    obs
}

/// Records what a [`Decoder`] saw (e.g. fed with the SSE events of a stream you read
/// yourself): response id, model, finish reasons, usage.
pub fn record_observed(span: &Span, obs: &Observed) {
    record_response_of(span, obs);
    if let Some(u) = &obs.usage {
        llmtel::record_usage(span, u);
    }
    record_dimensions(span, obs);
}

/// The response's id, model and finish reasons.
pub(crate) fn record_response_of(span: &Span, obs: &Observed) {
    let finish: Vec<&str> = obs
        .finish_reasons
        .iter()
        .filter(|s| !s.is_empty())
        .map(String::as_str)
        .collect();
    llmtel::record_response(
        span,
        obs.id.as_deref().unwrap_or_default(),
        obs.model.as_deref().unwrap_or_default(),
        &finish,
    );
}

/// The price dimensions the response reported (service tier, modality and per-unit
/// counts): as attributes of the exported span, where llmtel's exporter stage prices them,
/// and for llmtel's layer, whose sinks (budgets, metrics) price the call with them too.
pub(crate) fn record_dimensions(span: &Span, obs: &Observed) {
    use llmtel_semconv::{llmtel as lt, openai};
    if let Some(tier) = &obs.service_tier {
        // OpenAI's own name for OpenAI, llmtel's for the others (Anthropic).
        let name = if obs.openai_tier {
            openai::RESPONSE_SERVICE_TIER
        } else {
            lt::RESPONSE_SERVICE_TIER
        };
        llmtel::record_service_tier(span, name, tier);
    }
    llmtel::record_usage_details(span, &obs.details);
}

/// A stream of provider chunks (`Result<T, E>`, `T: Serialize`) observed for its span; items
/// pass through unchanged. See the [module docs](self).
///
/// The span ends when the stream ends or is dropped (failed when its last item was an error:
/// an error item followed by more chunks, as async-openai yields for a chunk it cannot
/// parse, does not end it); its bytes are decoded on
/// llmtel-reqwest's reader thread, like the middleware's.
#[must_use = "streams do nothing unless polled"]
pub struct ObservedStream<S> {
    inner: S,
    setup: Option<Setup>,
    tap: Option<Tap>,
    /// The error of the last item when it was an error: the call failed if the stream ends
    /// (or is dropped) right after it; an SDK that yields an error for one chunk it cannot
    /// parse and goes on (async-openai) does not end the call.
    failed: Option<String>,
}

struct Setup {
    span: Span,
    api: Api,
    started: Instant,
    request: Option<Bytes>,
    model: Option<String>,
}

impl<S> std::fmt::Debug for ObservedStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedStream")
            .field("started", &self.tap.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> ObservedStream<S> {
    /// Observes `stream`, the response of an `api` call, for `span` (an
    /// [`llmtel::llm_span!`]).
    pub fn new(span: Span, api: Api, stream: S) -> Self {
        ObservedStream {
            inner: stream,
            setup: Some(Setup {
                span,
                api,
                started: Instant::now(),
                request: None,
                model: None,
            }),
            tap: None,
            failed: None,
        }
    }

    /// When the request was sent (default: when the stream was wrapped), for the time to
    /// first chunk.
    pub fn started_at(mut self, at: Instant) -> Self {
        if let Some(s) = self.setup.as_mut() {
            s.started = at;
        }
        self
    }

    /// The request (any `Serialize` body of the provider's shape): its model is the fallback
    /// for an estimate, its prompt is counted when the stream carries no usage and recorded
    /// when content capture is on.
    pub fn with_request<R: Serialize + ?Sized>(mut self, request: &R) -> Self {
        if let (Some(s), Ok(body)) = (self.setup.as_mut(), serde_json::to_vec(request)) {
            s.model = crate::request::request_info(s.api, &body)
                .and_then(|i| i.model)
                .map(llmtel::cap_string);
            s.request = Some(Bytes::from(body));
        }
        self
    }

    fn tap(&mut self) -> Option<&mut Tap> {
        if let Some(s) = self.setup.take() {
            let wanted = s.request.is_some();
            let request = s
                .request
                .and_then(|b| crate::budget::KeptBytes::keep(&crate::budget::BUDGET, b));
            let mut state = CallState::new(
                &crate::budget::BUDGET,
                s.span,
                s.api,
                s.model.unwrap_or_else(|| "unknown".to_owned()),
                200,
                "text/event-stream",
                s.started,
                None,
                llmtel::content_capture().is_enabled(),
                None,
            );
            state.request_over_budget = wanted && request.is_none();
            state.request_body = request;
            self.tap = Some(Tap::new(state));
        }
        self.tap.as_mut()
    }
}

impl<S, T, E> Stream for ObservedStream<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    T: Serialize,
    E: std::fmt::Display,
{
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        let end = match &polled {
            Poll::Ready(Some(Ok(_))) => {
                this.failed = None;
                None
            }
            Poll::Ready(Some(Err(e))) => {
                // The SDK's error text can quote the chunk or a provider message (the
                // response's content): recorded only with content capture on.
                this.failed = Some(if llmtel::content_capture().is_enabled() {
                    e.to_string()
                } else {
                    "the stream yielded an error (its text is recorded with content capture \
                     on: it can quote the response)"
                        .to_owned()
                });
                None
            }
            Poll::Ready(None) => Some(this.failed.take().map_or(End::Complete, End::Failed)),
            Poll::Pending => None,
        };
        let Some(tap) = this.tap() else {
            return polled;
        };
        if let Poll::Ready(Some(Ok(item))) = &polled {
            // One SSE event per item, as the provider sent it.
            let mut event = b"data: ".to_vec();
            if serde_json::to_writer(&mut event, item).is_ok() {
                event.extend_from_slice(b"\n\n");
                tap.on_data(&Bytes::from(event));
            }
        }
        if let Some(end) = end {
            tap.end(end);
        }
        polled
    }
}

impl<S> Drop for ObservedStream<S> {
    fn drop(&mut self) {
        let failed = self.failed.take();
        if let Some(tap) = self.tap() {
            tap.end(failed.map_or(End::Dropped, End::Failed));
        }
    }
}
