//! The `reqwest-middleware` middleware.

use std::sync::Arc;
use std::time::Instant;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use serde_json::Value;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::body::{CallState, InstrumentedBody, MediaRequest};
use crate::budget::{BUDGET, KeptBytes};
use crate::preflight::{PlannedCall, PreflightHook};
use crate::request::RequestInfo;
use crate::route::{Api, BaseUrl, Flavor, Route, Router};

/// Largest request body parsed for parameters (larger bodies are sent unread).
const MAX_REQUEST_JSON: usize = 32 * 1024 * 1024;

/// Instruments LLM API calls made through a `reqwest_middleware::ClientWithMiddleware`.
///
/// Built-in hosts: `api.openai.com`, `*.openai.azure.com` (and the Azure AI Foundry hosts,
/// their `/models/…` inference API too), `api.anthropic.com`,
/// `generativelanguage.googleapis.com` and `*-aiplatform.googleapis.com` (Gemini, and their
/// OpenAI-compatible endpoints: `/v1beta/openai/…`, `/endpoints/openapi/…`),
/// `api.groq.com`, `api.together.xyz`, `openrouter.ai`, `api.deepseek.com`, `api.mistral.ai`.
/// When two base URLs match a request, the most specific one whose API has the endpoint
/// routes it (a gateway's `…/v1` OpenAI-compatible base and its Anthropic base).
/// Other servers (Ollama, vLLM, a proxy, a test server) are added with
/// [`with_openai_compatible`](Self::with_openai_compatible),
/// [`with_anthropic_base_url`](Self::with_anthropic_base_url) and
/// [`with_gemini_base_url`](Self::with_gemini_base_url). Requests that are not `POST`s to a
/// recognised endpoint pass through untouched, without a span.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(llmtel_reqwest::LlmMiddleware::new()
///         .with_openai_compatible("http://localhost:11434/v1", "ollama")?)
///     .build();
/// let body = r#"{"model":"llama3.2","messages":[{"role":"user","content":"Hi"}]}"#;
/// let response = client
///     .post("http://localhost:11434/v1/chat/completions")
///     .header("content-type", "application/json")
///     .body(body)
///     .send()
///     .await?;
/// let text = response.text().await?; // the span ends here, with usage and cost
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct LlmMiddleware {
    router: Router,
    stream_usage: bool,
    hook: Option<Arc<dyn PreflightHook>>,
}

/// A base URL given to the builder could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BaseUrlError(String);

impl LlmMiddleware {
    /// The middleware with the built-in hosts, no pre-flight hook, `include_usage` off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Recognises an OpenAI-compatible server at `base_url` (e.g. `http://localhost:11434/v1`
    /// for Ollama, a vLLM server, a proxy); `provider` becomes `gen_ai.provider.name`.
    /// Paths under it ending in `/chat/completions`, `/completions`, `/responses`,
    /// `/embeddings`, `/images/generations`, `/images/edits`, `/audio/speech`,
    /// `/audio/transcriptions` or `/audio/translations` are LLM calls.
    ///
    /// # Errors
    /// `base_url` is not an absolute URL with a host.
    pub fn with_openai_compatible(
        self,
        base_url: &str,
        provider: &str,
    ) -> Result<Self, BaseUrlError> {
        self.with_base_url(base_url, Flavor::OpenAi, provider)
    }

    /// Recognises an Anthropic Messages endpoint (`…/messages`) under `base_url`
    /// (`ANTHROPIC_BASE_URL`, a gateway), as provider `anthropic`.
    ///
    /// # Errors
    /// `base_url` is not an absolute URL with a host.
    pub fn with_anthropic_base_url(self, base_url: &str) -> Result<Self, BaseUrlError> {
        self.with_base_url(base_url, Flavor::Anthropic, "anthropic")
    }

    /// Recognises Gemini `models/{model}:generateContent` / `:streamGenerateContent` under
    /// `base_url`, as provider `gcp.gemini`.
    ///
    /// # Errors
    /// `base_url` is not an absolute URL with a host.
    pub fn with_gemini_base_url(self, base_url: &str) -> Result<Self, BaseUrlError> {
        self.with_base_url(base_url, Flavor::Gemini, "gcp.gemini")
    }

    /// Recognises endpoints of `flavor` under `base_url`, named `provider`.
    ///
    /// # Errors
    /// `base_url` is not an absolute URL with a host.
    pub fn with_base_url(
        mut self,
        base_url: &str,
        flavor: Flavor,
        provider: &str,
    ) -> Result<Self, BaseUrlError> {
        self.router
            .add(BaseUrl::parse(base_url, flavor, provider).map_err(BaseUrlError)?);
        Ok(self)
    }

    /// Adds `"stream_options": {"include_usage": true}` to streamed chat and completion
    /// requests to providers that accept it, so that the exact usage arrives in the
    /// last chunk (off by default: the caller then sees one extra chunk with empty
    /// `choices`, which some hand-written stream readers do not expect).
    ///
    /// - **Which providers**: every OpenAI-compatible chat or completions endpoint (OpenAI,
    ///   DeepSeek, Groq, Together, OpenRouter, Gemini's and Vertex AI's OpenAI-compatible
    ///   endpoints, and servers you add under your own name, such as vLLM, Ollama, LiteLLM or
    ///   llama.cpp), except those known to refuse the field: Mistral (HTTP 422
    ///   `extra_forbidden`; it sends the usage in its last chunk anyway), Azure AI Model
    ///   Inference (which refuses parameters its API does not define), and Azure OpenAI
    ///   before `api-version` 2024-09-01 (asked from that version on, or on its
    ///   `/openai/v1/` API). They are told apart by the request's host first, whatever name
    ///   the route was added under: `*.mistral.ai`; Azure's `*.openai.azure.com`,
    ///   `*.cognitiveservices.azure.com`, `*.services.ai.azure.com`, `*.models.ai.azure.com`
    ///   and `*.inference.ai.azure.com` (Azure OpenAI on a `/openai/…` path, by its
    ///   `api-version`; any other path is Azure AI Model Inference). On any other host (a
    ///   proxy), by the route's name: `mistral_ai`, `azure.ai.inference`, `azure.ai.openai`.
    ///   A server you add that refuses it: leave this off, or set `include_usage` in its
    ///   requests yourself.
    /// - **What the caller set is kept**: a request that has `stream_options.include_usage`
    ///   (`true` or `false`) is sent as it is, and so is one whose `stream_options` is not
    ///   an object or whose body cannot be read.
    /// - **How**: the field is inserted after the body's opening `{`, every other byte left
    ///   as it was (key order, spacing); a request with a `stream_options` object without
    ///   `include_usage` is re-serialised with `include_usage: true` added to it.
    pub fn with_stream_usage(mut self, on: bool) -> Self {
        self.stream_usage = on;
        self
    }

    /// Asks `hook` before each LLM call and tells it how the call ended (budgets; see
    /// [`crate::preflight`]).
    pub fn with_preflight(mut self, hook: impl PreflightHook) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Like [`with_preflight`](Self::with_preflight), for a shared hook.
    pub fn with_preflight_arc(mut self, hook: Arc<dyn PreflightHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Which LLM endpoint a request goes to, if any.
    pub fn route(&self, request: &Request) -> Option<Route> {
        self.router.route(request.method(), request.url())
    }
}

#[async_trait::async_trait]
impl Middleware for LlmMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(route) = self.route(&req) else {
            return next.run(req, extensions).await;
        };
        let started = Instant::now();
        let api = route.api;
        let capture = llmtel::content_capture().is_enabled();
        let mut out = Outgoing::read(&route, &mut req, capture);
        if self.stream_usage {
            out.ask_for_stream_usage(&route, &mut req);
        }
        let span = open_span(&route, &out, &req);

        let hook = self
            .hook
            .as_ref()
            .map(|h| (h.clone(), out.planned_call(&route)));
        if let Some((h, call)) = &hook {
            // In the call's span: a budget reads the app's dimensions from its ancestors
            // (`llmtel::current_dimensions`) and binds its reservation to it.
            if let Err(refusal) = span.in_scope(|| h.preflight(call)) {
                llmtel::record_error_status(&span, refusal.error_type(), refusal.message());
                return Err(reqwest_middleware::Error::middleware(refusal));
            }
        }

        let in_flight = InFlight {
            span: &span,
            hook: hook.as_ref(),
            answered: false,
        };
        let result = next.run(req, extensions).instrument(span.clone()).await;
        in_flight.answered();
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                transport_failure(&span, hook.as_ref(), &e);
                return Err(e);
            }
        };

        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let url = response.url().clone();
        let mut state = CallState::new(
            &crate::budget::BUDGET,
            span,
            api,
            out.model,
            status,
            content_type,
            started,
            out.request_body,
            capture,
            hook,
        );
        state.request_over_budget = out.request_over_budget;
        state.media = out.media;
        Ok(rewrap(response, url, state))
    }
}

/// What the middleware reads of an outgoing LLM request (never its headers).
struct Outgoing {
    info: RequestInfo,
    /// Capped: it is kept on the span, in the pre-flight call and at settle.
    model: String,
    /// A copy of the JSON body (reqwest does not share it), for the reader, which needs the
    /// prompt only for an estimate or opt-in content: not made when neither can happen,
    /// held against the budget for kept bytes.
    request_body: Option<KeptBytes>,
    /// The copy was wanted but the budget had no room for it.
    request_over_budget: bool,
    media: MediaRequest,
    request_bytes: usize,
}

impl Outgoing {
    fn read(route: &Route, req: &mut Request, capture: bool) -> Outgoing {
        let api = route.api;
        let raw = req.body().and_then(|b| b.as_bytes());
        let streamed = raw.is_none();
        let request_bytes = raw.map_or(0, <[u8]>::len);
        let body_bytes = raw.filter(|b| b.len() <= MAX_REQUEST_JSON);
        let multipart = matches!(api, Api::OpenAiImages | Api::OpenAiTranscription);
        let info = body_bytes
            .and_then(|b| crate::request::request_info(api, b))
            .or_else(|| {
                body_bytes
                    .filter(|_| multipart)
                    .and_then(crate::media::multipart_info)
            })
            .unwrap_or_else(|| RequestInfo {
                stream: api == Api::GeminiStreamGenerate,
                ..Default::default()
            });
        // The reader parses the request for an estimate (text endpoints whose response has
        // no usage) or for content capture; a transcription's body is the audio, never used.
        let estimable = api != Api::OpenAiEmbeddings && !api.is_media();
        let wanted =
            body_bytes.filter(|_| api != Api::OpenAiTranscription && (capture || estimable));
        let request_body = wanted.and_then(|b| KeptBytes::copy(&BUDGET, b));
        let request_over_budget = wanted.is_some() && request_body.is_none();
        let model = info
            .model
            .clone()
            .or_else(|| route.path_model.clone())
            .unwrap_or_else(|| "unknown".to_owned());
        let model = llmtel::cap_string(model);

        let mut media = MediaRequest::default();
        if api == Api::OpenAiSpeech {
            media.characters = body_bytes.and_then(crate::media::speech_characters);
        }
        if api == Api::OpenAiImages {
            // `n` comes from the caller: bounded like every request-controlled value (the
            // API allows 10).
            media.images = Some(
                info.choice_count
                    .map_or(1, |n| n.clamp(0, 128).unsigned_abs()),
            );
        }
        if multipart && streamed && info.model.is_none() {
            // A streamed body (`reqwest::multipart::Form`): its `model` field is read as the
            // body is sent, frames passing through unchanged.
            if let Some(body) = req.body_mut().take() {
                let (scan, found) = crate::media::ScanBody::new(body);
                *req.body_mut() = Some(reqwest::Body::wrap(scan));
                media.scanned_model = Some(found);
            }
        }
        Outgoing {
            info,
            model,
            request_body,
            request_over_budget,
            media,
            request_bytes,
        }
    }

    /// Asks a streamed chat or completions request to a provider that does not refuse it for
    /// its usage (`stream_options.include_usage`), unless the request says either way already.
    fn ask_for_stream_usage(&mut self, route: &Route, req: &mut Request) {
        if !self.info.stream
            || self.info.include_usage
            || !matches!(route.api, Api::OpenAiChat | Api::OpenAiCompletions)
            || !accepts_stream_options(&route.provider, req.url())
        {
            return;
        }
        let Some(bytes) = req
            .body()
            .and_then(|b| b.as_bytes())
            .filter(|b| b.len() <= MAX_REQUEST_JSON)
            .and_then(with_include_usage)
        else {
            return;
        };
        let bytes = bytes::Bytes::from(bytes);
        if self.request_body.take().is_some() {
            // The same prompt: the kept copy shares the new body instead of being a second.
            self.request_body = KeptBytes::keep(&BUDGET, bytes.clone());
            self.request_over_budget = self.request_body.is_none();
        }
        *req.body_mut() = Some(reqwest::Body::from(bytes));
        req.headers_mut().remove(http::header::CONTENT_LENGTH);
    }

    fn planned_call(&self, route: &Route) -> PlannedCall {
        PlannedCall {
            provider: route.provider.to_string(),
            operation: route.api.operation(),
            model: self.model.clone(),
            max_output_tokens: self.info.max_tokens.and_then(|m| u64::try_from(m).ok()),
            stream: self.info.stream,
            request_bytes: self.request_bytes,
        }
    }
}

/// The call's span, with what the request says.
fn open_span(route: &Route, out: &Outgoing, req: &Request) -> tracing::Span {
    let api = route.api;
    let span = llmtel::llm_span!(
        api.operation(),
        &*route.provider,
        &out.model,
        "server.address" = tracing::field::Empty,
        "server.port" = tracing::field::Empty,
        "gen_ai.input.messages" = tracing::field::Empty,
        "gen_ai.output.messages" = tracing::field::Empty,
    );
    record_request(&span, req, &out.info);
    if let Some(t) = api.output_type() {
        span.set_attribute("gen_ai.output.type", t);
    }
    span
}

/// A request that got no response: its error status, and the pre-flight hook settled.
/// A request on its way: if its future is dropped before the response comes (a caller's
/// timeout, a `select!`), the call ends as cancelled and its hook is settled, once; the span
/// ended as a success and the hook never heard of it.
struct InFlight<'a> {
    span: &'a tracing::Span,
    hook: Option<&'a (Arc<dyn PreflightHook>, PlannedCall)>,
    answered: bool,
}

impl InFlight<'_> {
    /// The response (or a transport error) came: the call goes on as usual.
    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        llmtel::record_error_status(
            self.span,
            "cancelled",
            "the request was dropped before its response came (a caller's timeout or select!)",
        );
        settle_failed(self.hook, "cancelled");
    }
}

/// Settles the hook of a call that failed before any response, with its `error.type`.
fn settle_failed(hook: Option<&(Arc<dyn PreflightHook>, PlannedCall)>, class: &str) {
    if let Some((h, call)) = hook {
        h.settle(
            call,
            &crate::SettledCall {
                usage: None,
                estimated: false,
                response_model: None,
                error_type: Some(class.to_owned()),
            },
        );
    }
}

fn transport_failure(
    span: &tracing::Span,
    hook: Option<&(Arc<dyn PreflightHook>, PlannedCall)>,
    e: &reqwest_middleware::Error,
) {
    let class = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    llmtel::record_error_status(span, class, &transport_message(e));
    settle_failed(hook, class);
}

/// Whether `stream_options.include_usage` may be asked of `provider` on a streamed chat
/// request to `url` (see [`LlmMiddleware::with_stream_usage`]): a deny-list. It is part of
/// OpenAI's chat API, which OpenAI-compatible servers follow (vLLM, Ollama, LiteLLM,
/// llama.cpp, ... under whatever name they were added), so every route is asked except
/// those of providers known to refuse it. The URL's host decides first, whatever name the
/// route was added under (`with_openai_compatible("https://api.mistral.ai/v1", "mistral")`
/// is Mistral's API all the same); the name decides for any other host (a proxy or a test
/// server added as `mistral_ai`).
fn accepts_stream_options(provider: &str, url: &reqwest::Url) -> bool {
    match host_accepts_stream_options(url) {
        Some(known) => known,
        None => name_accepts_stream_options(provider, url),
    }
}

/// The answer of a host known to refuse `stream_options` (or to take it from some version
/// on); `None` for any other host.
fn host_accepts_stream_options(url: &reqwest::Url) -> Option<bool> {
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let under = |domain: &str| {
        host == domain[1..]
            || host
                .strip_suffix(domain)
                .is_some_and(|label| !label.is_empty())
    };
    if under(".mistral.ai") {
        // `api.mistral.ai`, `codestral.mistral.ai`.
        return Some(false);
    }
    // Azure OpenAI resources (`/openai/…`) and Azure AI Foundry / serverless deployments
    // (Azure AI Model Inference: `/models/chat/completions`, `/chat/completions`).
    let azure = [
        ".openai.azure.com",
        ".cognitiveservices.azure.com",
        ".services.ai.azure.com",
        ".models.ai.azure.com",
        ".inference.ai.azure.com",
    ];
    if azure.iter().any(|d| under(d)) {
        return Some(url.path().starts_with("/openai/") && azure_openai_accepts(url));
    }
    None
}

fn name_accepts_stream_options(provider: &str, url: &reqwest::Url) -> bool {
    match provider {
        // HTTP 422 `extra_forbidden` (and its last chunk has the usage anyway).
        "mistral_ai" => false,
        // Azure AI Model Inference (`/models/chat/completions`): a parameter its API does not
        // define is an error unless the request says `extra-parameters: pass-through`.
        "azure.ai.inference" => false,
        "azure.ai.openai" => azure_openai_accepts(url),
        _ => true,
    }
}

/// Azure OpenAI: from api-version 2024-09-01(-preview) on; the v1 API (`/openai/v1/…`, no
/// dated version) is OpenAI's. Earlier versions answer 400 "Unrecognized request argument
/// supplied: stream_options"; a version that cannot be read is not asked.
fn azure_openai_accepts(url: &reqwest::Url) -> bool {
    url.path().starts_with("/openai/v1/")
        || url
            .query_pairs()
            .find(|(k, _)| k == "api-version")
            .is_some_and(|(_, v)| azure_version_has_stream_options(&v))
}

/// A dated Azure OpenAI `api-version` (`2024-10-21`, `2025-04-01-preview`) of 2024-09-01 or
/// later.
fn azure_version_has_stream_options(version: &str) -> bool {
    let Some(date) = version.get(..10) else {
        return false;
    };
    let dated = date.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        _ => b.is_ascii_digit(),
    });
    let suffix_ok = version.len() == 10 || version[10..].starts_with('-');
    dated && suffix_ok && date >= "2024-09-01"
}

/// The body with `"stream_options":{"include_usage":true}`, if it is a JSON object that says
/// nothing of `include_usage`: inserted after the opening `{` when the object has no
/// `stream_options` (every other byte kept), added to a `stream_options` object that has no
/// `include_usage` (re-serialised: rare). `None` (sent as it is) for anything else: the
/// caller's `include_usage` either way, a `stream_options` that is not an object (`null`
/// included), a body that is not one readable JSON object.
fn with_include_usage(body: &[u8]) -> Option<Vec<u8>> {
    /// A field present, even `null`, is `Some`.
    fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        serde::Deserialize::deserialize(d).map(Some)
    }
    #[derive(serde::Deserialize)]
    struct Top {
        #[serde(default, deserialize_with = "present")]
        stream_options: Option<Value>,
    }
    const WS: &[u8] = b" \t\r\n";
    let open = body.iter().position(|b| !WS.contains(b))?;
    // A struct also reads from an array: the body must open an object.
    if body[open] != b'{' {
        return None;
    }
    // Every other key is skipped, not built; a duplicate `stream_options` is an error.
    let top: Top = serde_json::from_slice(body).ok()?;
    match top.stream_options {
        None => {
            const FIELD: &[u8] = br#""stream_options":{"include_usage":true}"#;
            let rest = &body[open + 1..];
            let empty = rest.iter().find(|b| !WS.contains(b)) == Some(&b'}');
            let mut out = Vec::with_capacity(body.len() + FIELD.len() + 1);
            out.extend_from_slice(&body[..=open]);
            out.extend_from_slice(FIELD);
            if !empty {
                out.push(b',');
            }
            out.extend_from_slice(rest);
            Some(out)
        }
        Some(Value::Object(o)) if !o.contains_key("include_usage") => {
            let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
                return None;
            };
            if let Some(Value::Object(o)) = map.get_mut("stream_options") {
                o.insert("include_usage".to_owned(), Value::Bool(true));
            }
            serde_json::to_vec(&map).ok()
        }
        Some(_) => None,
    }
}

/// What a failed send is recorded as: reqwest's message names the URL (`error sending
/// request for url (…?key=…)`), so the description is built from its causes (without the
/// URL) and redacted anyway.
fn transport_message(e: &reqwest_middleware::Error) -> String {
    use std::error::Error as _;
    let mut msg = match e {
        reqwest_middleware::Error::Reqwest(re) => {
            if re.is_timeout() {
                "the request timed out".to_owned()
            } else if re.is_connect() {
                "the connection failed".to_owned()
            } else {
                "the request could not be sent".to_owned()
            }
        }
        reqwest_middleware::Error::Middleware(m) => m.to_string(),
    };
    let mut source = match e {
        reqwest_middleware::Error::Reqwest(re) => re.source(),
        reqwest_middleware::Error::Middleware(m) => m.source(),
    };
    let mut depth = 0;
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
        if depth >= 8 {
            break;
        }
    }
    llmtel::redact::redact_string(msg)
}

fn record_request(span: &tracing::Span, req: &Request, info: &RequestInfo) {
    if let Some(host) = req.url().host_str() {
        span.record("server.address", host);
    }
    if let Some(port) = req.url().port_or_known_default() {
        span.record("server.port", i64::from(port));
    }
    span.record("gen_ai.request.stream", info.stream);
    if let Some(t) = info.temperature {
        span.record("gen_ai.request.temperature", t);
    }
    if let Some(m) = info.max_tokens {
        span.record("gen_ai.request.max_tokens", m);
    }
    if let Some(v) = info.top_p {
        span.set_attribute("gen_ai.request.top_p", v);
    }
    if let Some(v) = info.top_k {
        span.set_attribute("gen_ai.request.top_k", v);
    }
    if let Some(v) = info.seed {
        span.set_attribute("gen_ai.request.seed", v);
    }
    if let Some(v) = info.choice_count {
        span.set_attribute("gen_ai.request.choice.count", v);
    }
    if let Some(v) = info.frequency_penalty {
        span.set_attribute("gen_ai.request.frequency_penalty", v);
    }
    if let Some(v) = info.presence_penalty {
        span.set_attribute("gen_ai.request.presence_penalty", v);
    }
    if !info.stop_sequences.is_empty() {
        let values: Vec<opentelemetry::StringValue> = info
            .stop_sequences
            .iter()
            .map(|s| s.clone().into())
            .collect();
        span.set_attribute(
            "gen_ai.request.stop_sequences",
            opentelemetry::Value::Array(values.into()),
        );
    }
}

/// Rebuilds the response with the instrumented body; status, headers, version, extensions
/// and URL are kept.
fn rewrap(response: Response, url: reqwest::Url, state: CallState) -> Response {
    let http_response: http::Response<reqwest::Body> = response.into();
    let (mut parts, body) = http_response.into_parts();
    // `Response -> http::Response` drops the URL; put it back where reqwest looks for it.
    if let Ok(carrier) = {
        use reqwest::ResponseBuilderExt as _;
        http::Response::builder().url(url).body(())
    } {
        let (carrier_parts, ()) = carrier.into_parts();
        parts.extensions.extend(carrier_parts.extensions);
    }
    let body = reqwest::Body::wrap(InstrumentedBody::new(body, state));
    Response::from(http::Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_copied_only_when_an_estimate_or_content_capture_can_use_it() {
        let copied = |api: Api, capture: bool| {
            let route = Route {
                api,
                provider: std::sync::Arc::from("openai"),
                path_model: None,
            };
            let mut req = Request::new(
                reqwest::Method::POST,
                reqwest::Url::parse("https://api.openai.com/v1/x").unwrap(),
            );
            *req.body_mut() = Some(reqwest::Body::from(
                r#"{"model":"m","input":"Hi","messages":[{"role":"user","content":"Hi"}]}"#,
            ));
            Outgoing::read(&route, &mut req, capture)
                .request_body
                .is_some()
        };
        // Text endpoints: an estimate needs the prompt when the response has no usage.
        for api in [
            Api::OpenAiChat,
            Api::OpenAiResponses,
            Api::OpenAiCompletions,
        ] {
            assert!(copied(api, false), "{api:?}");
        }
        // Never estimated from text: only content capture reads their request.
        for api in [Api::OpenAiEmbeddings, Api::OpenAiImages, Api::OpenAiSpeech] {
            assert!(!copied(api, false), "{api:?}");
            assert!(copied(api, true), "{api:?}");
        }
        assert!(
            !copied(Api::OpenAiTranscription, true),
            "the audio is never read"
        );
    }

    #[test]
    fn stream_options_are_asked_of_every_provider_but_those_that_refuse_them() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let chat = url("https://api.example.com/v1/chat/completions");
        for p in [
            "openai",
            "deepseek",
            "groq",
            "together_ai",
            "openrouter",
            "gcp.gemini",
            "gcp.vertex_ai",
            "ollama",
            "vllm",
            "litellm",
            "my-local-llm",
        ] {
            assert!(accepts_stream_options(p, &chat), "{p}");
        }
        for p in ["mistral_ai", "azure.ai.inference"] {
            assert!(!accepts_stream_options(p, &chat), "{p}");
        }
        let azure = |q: &str| {
            accepts_stream_options(
                "azure.ai.openai",
                &url(&format!(
                    "https://r.openai.azure.com/openai/deployments/d/chat/completions{q}"
                )),
            )
        };
        for q in [
            "?api-version=2024-09-01-preview",
            "?api-version=2024-10-21",
            "?api-version=2025-04-01-preview",
            "?x=1&api-version=2025-01-01-preview",
        ] {
            assert!(azure(q), "{q}");
        }
        for q in [
            "",
            "?api-version=2024-06-01",
            "?api-version=2024-08-01-preview",
            "?api-version=2023-05-15",
            "?api-version=preview",
            "?api-version=2024-10-21x",
            "?api-version=2024-1O-21",
        ] {
            assert!(!azure(q), "{q}");
        }
        assert!(accepts_stream_options(
            "azure.ai.openai",
            &url("https://r.openai.azure.com/openai/v1/chat/completions")
        ));
    }

    #[test]
    fn stream_options_are_decided_by_the_host_whatever_name_the_route_has() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        // Mistral, Azure AI Model Inference and Azure OpenAI before 2024-09-01 refuse the
        // field under any name a route was added with.
        for u in [
            "https://api.mistral.ai/v1/chat/completions",
            "https://API.Mistral.AI./v1/chat/completions",
            "https://codestral.mistral.ai/v1/chat/completions",
            "https://x.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview",
            "https://x.services.ai.azure.com/models/chat/completions?api-version=2025-04-01-preview",
            "https://mistral-large-abc.eastus2.models.ai.azure.com/chat/completions",
            "https://llama-abc.eastus2.models.ai.azure.com/v1/chat/completions",
            "https://llama-abc.eastus2.inference.ai.azure.com/v1/chat/completions",
            "https://acme.openai.azure.com/openai/deployments/x/chat/completions?api-version=2024-06-01",
            "https://acme.openai.azure.com/openai/deployments/x/chat/completions",
            "https://acme.cognitiveservices.azure.com/openai/deployments/x/chat/completions?api-version=2024-08-01-preview",
            "https://acme.services.ai.azure.com/openai/deployments/x/chat/completions?api-version=2024-02-01",
        ] {
            for name in ["openai", "mistral", "azure", "my-gateway", "mistral_ai"] {
                assert!(!accepts_stream_options(name, &url(u)), "{name} {u}");
            }
        }
        // Azure OpenAI from 2024-09-01 on, or its v1 API, accepts it under any name.
        for u in [
            "https://acme.openai.azure.com/openai/deployments/x/chat/completions?api-version=2024-10-21",
            "https://acme.cognitiveservices.azure.com/openai/deployments/x/chat/completions?api-version=2025-04-01-preview",
            "https://acme.services.ai.azure.com/openai/deployments/x/chat/completions?api-version=2024-09-01-preview",
            "https://acme.openai.azure.com/openai/v1/chat/completions",
        ] {
            for name in ["azure", "my-gateway", "azure.ai.inference", "mistral_ai"] {
                assert!(accepts_stream_options(name, &url(u)), "{name} {u}");
            }
        }
        // A host that only looks like one of theirs is decided by the name.
        for u in [
            "https://notmistral.ai/v1/chat/completions",
            "https://mistral.ai.example.com/v1/chat/completions",
            "https://openai.azure.com.example.com/models/chat/completions",
            "http://localhost:8000/v1/chat/completions",
        ] {
            assert!(accepts_stream_options("vllm", &url(u)), "{u}");
            assert!(!accepts_stream_options("mistral_ai", &url(u)), "{u}");
        }
    }

    #[test]
    fn include_usage_is_inserted_into_the_bytes_and_never_overrides_the_caller() {
        let with =
            |b: &str| with_include_usage(b.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            with(r#" {"model":"gpt-4o","stream":true}"#).as_deref(),
            Some(r#" {"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true}"#)
        );
        assert_eq!(
            with("{ }").as_deref(),
            Some(r#"{"stream_options":{"include_usage":true} }"#)
        );
        assert_eq!(
            with(r#"{"stream_options":{"include_usage":false},"stream":true}"#),
            None
        );
        assert_eq!(with(r#"{"stream_options":{"include_usage":true}}"#), None);
        assert_eq!(with(r#"{"stream_options":null,"stream":true}"#), None);
        assert_eq!(with(r#"{"stream_options":1}"#), None);
        assert_eq!(with(r#"{"stream_options":{},"stream_options":{}}"#), None);
        assert_eq!(with(r#"[{"stream_options":{}}]"#), None);
        assert_eq!(with(r#"{"a":"#), None);
        let v: Value = serde_json::from_str(
            &with(r#"{"stream":true,"stream_options":{"continuous_usage_stats":true}}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"continuous_usage_stats": true, "include_usage": true})
        );
    }
}
