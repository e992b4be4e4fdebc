//! What the remote evaluators share: an OpenAI-compatible endpoint, its HTTP client, and the
//! traced call (a GenAI span marked `llmtel.evaluation`, priced under its own feature).

use std::fmt;
use std::time::Duration;

use llmtel::semconv::llmtel as lt;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use serde_json::Value;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{EvalError, EvalInput};

/// The largest response body read from an evaluator endpoint (8 MiB); a longer one is a
/// [`EvalError::MalformedResponse`].
const MAX_BODY: usize = 8 << 20;

/// Why a remote evaluator could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointConfigError {
    /// The base URL does not parse.
    #[error(
        "base URL {url:?} is not a valid URL ({reason}); give one like https://api.openai.com/v1 or http://localhost:8000"
    )]
    InvalidUrl {
        /// The URL given, with what looks like its user info, query and fragment replaced by
        /// `[REDACTED]` (they may hold credentials).
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The base URL is not `http` or `https`.
    #[error("base URL scheme {scheme:?} is not supported; use http or https")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// The model name is empty.
    #[error("the model name is empty; give the model to call, e.g. gpt-4o-mini")]
    EmptyModel,
    /// A threshold outside `0..=1`.
    #[error("threshold {0} is outside 0..=1; scores are normalised to 0..=1")]
    InvalidThreshold(f64),
    /// The HTTP client could not be created (TLS backend).
    #[error("the HTTP client could not be built ({0})")]
    Client(String),
    /// The CA file given with `with_ca_file` cannot be read or holds no PEM certificate.
    #[error(
        "the CA file {path:?} cannot be used ({reason}); give a readable PEM file with the CA certificate(s) of the evaluator endpoint"
    )]
    CaFile {
        /// The file given.
        path: std::path::PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
}

/// Settings shared by the remote evaluators' builders.
#[derive(Clone)]
pub(crate) struct EndpointConfig {
    pub(crate) base_url: String,
    pub(crate) model: String,
    pub(crate) api_key: Option<String>,
    pub(crate) provider: String,
    pub(crate) feature: String,
    pub(crate) http_timeout: Duration,
    pub(crate) ca_file: Option<std::path::PathBuf>,
}

impl EndpointConfig {
    pub(crate) fn new(base_url: String, model: String, feature: &str) -> Self {
        EndpointConfig {
            base_url,
            model,
            api_key: None,
            provider: "openai".into(),
            feature: feature.into(),
            http_timeout: Duration::from_secs(30),
            ca_file: None,
        }
    }

    /// `OPENAI_BASE_URL` (default `https://api.openai.com/v1`) and `OPENAI_API_KEY`.
    pub(crate) fn from_env(model: String, feature: &str) -> Self {
        let base = std::env::var("OPENAI_BASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "https://api.openai.com/v1".into());
        let mut cfg = EndpointConfig::new(base, model, feature);
        cfg.api_key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|v| !v.is_empty());
        cfg
    }
}

impl fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("base_url", &shown(&self.base_url))
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("provider", &self.provider)
            .field("feature", &self.feature)
            .field("http_timeout", &self.http_timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The builder setters shared by the remote evaluators (their builders hold an
/// `endpoint: EndpointConfig`).
macro_rules! endpoint_setters {
    () => {
        /// Sends `Authorization: Bearer <key>`. The key is never recorded: not on spans, not
        /// in errors, not in `Debug` output.
        pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
            self.endpoint.api_key = Some(key.into());
            self
        }

        /// `gen_ai.provider.name` of the evaluator's calls (default `openai`); with the model,
        /// it picks their price.
        pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
            self.endpoint.provider = provider.into();
            self
        }

        /// `llmtel.feature` of the evaluator's calls: their cost is counted under it, apart
        /// from the app's features.
        pub fn with_feature(mut self, feature: impl Into<String>) -> Self {
            self.endpoint.feature = feature.into();
            self
        }

        /// Timeout of one HTTP call (default 30 s); the evaluator's timeout in the pipeline
        /// (`llmtel_quality::QualityBuilder::with_evaluator_sampled`) applies as well.
        pub fn with_http_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.endpoint.http_timeout = timeout;
            self
        }

        /// Trusts the CA certificate(s) in this PEM file for an `https` endpoint, in addition
        /// to the platform's roots (a private gateway, a self-hosted model server). `build()`
        /// fails with [`crate::EndpointConfigError::CaFile`] if it cannot be read.
        pub fn with_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.endpoint.ca_file = Some(path.into());
            self
        }
    };
}
pub(crate) use endpoint_setters;

/// `url` without user, password, query or fragment (for messages).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<invalid URL>".into(),
    }
}

/// `url`, which does not parse, with its user info, query and fragment replaced by
/// `[REDACTED]` (for messages): with an `@` anywhere past the scheme, all of it; else the
/// query and fragment, and any secret [`llmtel::redact`] finds in the rest.
fn masked(url: &str) -> String {
    let url = url.trim();
    let auth = url.find("://").map_or(0, |i| i + 3);
    if url[auth..].contains('@') {
        // Where the user info ends cannot be told in a URL that does not parse (a password
        // may hold `/`, `?`, `#` or `@`, so may a query): all but the scheme is masked.
        return format!("{}{}", &url[..auth], llmtel::REDACTED);
    }
    // The query or fragment: from the first `?` or `#` after the scheme.
    let tail = url[auth..].find(['?', '#']).map(|i| auth + i);
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..tail.unwrap_or(url.len())]);
    if let Some(t) = tail {
        out.push_str(&url[t..=t]);
        out.push_str(llmtel::REDACTED);
    }
    llmtel::redact::redact_string(out)
}

/// The URL of `operation` (`chat/completions`, `embeddings`) under an OpenAI-style base URL:
/// a bare host gets `/v1`; any other path is kept as the SDKs keep it (`.../v1`,
/// `https://openrouter.ai/api/v1`); a URL that already ends with the operation is used as is.
pub(crate) fn operation_url(
    base: &str,
    operation: &str,
) -> Result<reqwest::Url, EndpointConfigError> {
    let mut url =
        reqwest::Url::parse(base.trim()).map_err(|e| EndpointConfigError::InvalidUrl {
            url: masked(base),
            reason: e.to_string(),
        })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EndpointConfigError::UnsupportedScheme {
            scheme: url.scheme().into(),
        });
    }
    let path = url.path().trim_end_matches('/').to_owned();
    let path = if path.ends_with(&format!("/{operation}")) {
        path
    } else if path.is_empty() {
        format!("/v1/{operation}")
    } else {
        format!("{path}/{operation}")
    };
    url.set_path(&path);
    Ok(url)
}

/// One OpenAI-compatible operation endpoint with its client.
pub(crate) struct Endpoint {
    url: reqwest::Url,
    shown: String,
    model: String,
    api_key: Option<String>,
    provider: String,
    feature: String,
    http_timeout: Duration,
    address: String,
    port: i64,
    client: reqwest::Client,
    operation: &'static str,
    expected: &'static str,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.shown)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("provider", &self.provider)
            .field("feature", &self.feature)
            .field("http_timeout", &self.http_timeout)
            .finish()
    }
}

impl Endpoint {
    /// `gen_ai_operation` is the span's operation (`chat`, `embeddings`), `path` the URL's
    /// last segment(s) and `expected` what the errors call the endpoint.
    pub(crate) fn build(
        cfg: EndpointConfig,
        gen_ai_operation: &'static str,
        path: &str,
        expected: &'static str,
    ) -> Result<Self, EndpointConfigError> {
        if cfg.model.trim().is_empty() {
            return Err(EndpointConfigError::EmptyModel);
        }
        let url = operation_url(&cfg.base_url, path)?;
        let mut client = reqwest::Client::builder().timeout(cfg.http_timeout);
        if let Some(path) = &cfg.ca_file {
            let bad = |reason: String| EndpointConfigError::CaFile {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(chain(&e)))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in it".into()));
            }
            for cert in certs {
                client = client.add_root_certificate(cert);
            }
        }
        let client = client
            .build()
            .map_err(|e| EndpointConfigError::Client(chain(&e)))?;
        Ok(Endpoint {
            shown: shown(url.as_str()),
            address: url.host_str().unwrap_or_default().to_owned(),
            port: url.port_or_known_default().map_or(0, i64::from),
            url,
            model: cfg.model,
            api_key: cfg.api_key,
            provider: cfg.provider,
            feature: cfg.feature,
            http_timeout: cfg.http_timeout,
            client,
            operation: gen_ai_operation,
            expected,
        })
    }

    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    pub(crate) fn url(&self) -> &str {
        &self.shown
    }

    pub(crate) fn malformed(&self, detail: impl Into<String>) -> EvalError {
        EvalError::MalformedResponse {
            endpoint: self.shown.clone(),
            expected: self.expected,
            detail: detail.into(),
        }
    }

    /// Opens the evaluator call's GenAI span (`{operation} {model}`): marked
    /// `llmtel.evaluation = "true"` ([`super::EVALUATION_MARKER`]), under the evaluator's
    /// feature, parented to the evaluated call's span when its ids are known. Content is never
    /// recorded on it.
    pub(crate) fn open_call(&self, input: &EvalInput) -> TracedCall {
        let span = llmtel::llm_span!(
            self.operation,
            self.provider.as_str(),
            self.model.as_str(),
            "llmtel.evaluation" = "true",
            "server.address" = self.address.as_str(),
            "server.port" = self.port,
        );
        span.record(lt::FEATURE, self.feature.as_str());
        if let (Some(t), Some(s)) = (input.trace_id, input.span_id) {
            let sc = SpanContext::new(t, s, TraceFlags::SAMPLED, true, TraceState::default());
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
        }
        TracedCall { span, done: false }
    }

    /// POSTs `body` as JSON and returns the JSON answer; every failure is recorded on the
    /// call's span and returned as an [`EvalError`].
    pub(crate) async fn post(
        &self,
        call: &mut TracedCall,
        body: &Value,
    ) -> Result<Value, EvalError> {
        let r = self.post_inner(body).await;
        match &r {
            Ok(v) => record_openai_response(&call.span, v),
            Err(e) => call.fail(e),
        }
        r
    }

    async fn post_inner(&self, body: &Value) -> Result<Value, EvalError> {
        let bytes = serde_json::to_vec(body).map_err(|e| EvalError::Other(e.to_string()))?;
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(bytes);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let mut resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(self.malformed(format!("body longer than {MAX_BODY} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        match status {
            200..=299 => {
                serde_json::from_slice(&body).map_err(|e| self.malformed(format!("not JSON: {e}")))
            }
            401 | 403 => Err(EvalError::Unauthorized {
                endpoint: self.shown.clone(),
                status,
            }),
            429 => Err(EvalError::RateLimited {
                endpoint: self.shown.clone(),
            }),
            _ => Err(EvalError::Http {
                endpoint: self.shown.clone(),
                status,
                detail: error_detail(&body),
            }),
        }
    }

    fn transport(&self, e: &reqwest::Error) -> EvalError {
        if e.is_timeout() {
            EvalError::Timeout {
                endpoint: self.shown.clone(),
                timeout_ms: u64::try_from(self.http_timeout.as_millis()).unwrap_or(u64::MAX),
            }
        } else {
            EvalError::Unreachable {
                endpoint: self.shown.clone(),
                detail: chain(e),
            }
        }
    }
}

/// An error and its sources, joined by `: ` (without the URL: the endpoint is named apart).
fn chain(e: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        // reqwest repeats the URL in its own message: keep credentials out.
        let s = match s.split_once(" for url (") {
            Some((head, _)) => head.to_owned(),
            None => s,
        };
        if !out.contains(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
        cur = err.source();
    }
    out
}

/// The message of an error body (`{"error": {"message": ...}}`, `{"message": ...}`, or the
/// text), cut to 200 characters.
fn error_detail(body: &[u8]) -> String {
    let msg = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if msg.is_empty() {
        return "empty body".into();
    }
    super::text::cut(&msg, 200).to_owned()
}

/// Records an OpenAI-shaped response on the span: id, model, finish reasons, and `usage`
/// (`prompt_tokens` with `prompt_tokens_details.cached_tokens`, `completion_tokens` with
/// `completion_tokens_details.reasoning_tokens`).
fn record_openai_response(span: &Span, v: &Value) {
    let reasons: Vec<&str> = v
        .get("choices")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("finish_reason").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    llmtel::record_response(span, s("id"), s("model"), &reasons);
    let Some(u) = v.get("usage").filter(|u| u.is_object()) else {
        return;
    };
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    llmtel::record_usage(
        span,
        &llmtel::Usage {
            input_tokens: n("/prompt_tokens"),
            output_tokens: n("/completion_tokens"),
            cache_read_tokens: n("/prompt_tokens_details/cached_tokens"),
            reasoning_tokens: n("/completion_tokens_details/reasoning_tokens"),
            ..Default::default()
        },
    );
}

/// An evaluator's model call in flight: its span, closed when this is dropped. Dropped before
/// [`TracedCall::finish`] or [`TracedCall::fail`] (the evaluator's timeout stopped it), the span
/// records `error.type = cancelled`.
pub(crate) struct TracedCall {
    span: Span,
    done: bool,
}

impl TracedCall {
    /// The call's span (to record request parameters).
    #[cfg(feature = "judge")]
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Marks the call done.
    pub(crate) fn finish(&mut self) {
        self.done = true;
    }

    /// Ends the call with `r`: a failure is recorded on the span.
    pub(crate) fn settle<T>(&mut self, r: Result<T, EvalError>) -> Result<T, EvalError> {
        match &r {
            Ok(_) => self.finish(),
            Err(e) => self.fail(e),
        }
        r
    }

    /// Records `e` on the span and marks the call done.
    pub(crate) fn fail(&mut self, e: &EvalError) {
        llmtel::record_error(&self.span, e.error_type(), &e.to_string());
        self.done = true;
    }
}

impl Drop for TracedCall {
    fn drop(&mut self) {
        if !self.done {
            llmtel::record_error_status(
                &self.span,
                "cancelled",
                "stopped by the evaluator's timeout before the endpoint answered",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str, op: &str) -> String {
        operation_url(base, op)
            .map(|u| u.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn base_urls_are_read_as_the_openai_sdks_read_them() {
        let chat = "chat/completions";
        assert_eq!(
            url("http://localhost:8000", chat),
            "http://localhost:8000/v1/chat/completions"
        );
        assert_eq!(
            url("http://localhost:8000/", chat),
            "http://localhost:8000/v1/chat/completions"
        );
        assert_eq!(
            url("https://api.openai.com/v1", chat),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            url("https://api.openai.com/v1/", "embeddings"),
            "https://api.openai.com/v1/embeddings"
        );
        assert_eq!(
            url("https://openrouter.ai/api/v1", chat),
            "https://openrouter.ai/api/v1/chat/completions"
        );
        assert_eq!(
            url("http://h:1/v1/chat/completions", chat),
            "http://h:1/v1/chat/completions"
        );
        assert!(
            url("localhost:8000", chat).contains("scheme"),
            "{}",
            url("localhost:8000", chat)
        );
        assert!(url("not a url", chat).contains("not a valid URL"));
        assert!(url("ftp://h/v1", chat).contains("use http or https"));
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            shown("https://user:pw@h/v1/chat/completions?key=s"),
            "https://h/v1/chat/completions"
        );
        let cfg = EndpointConfig {
            api_key: Some("sk-secret".into()),
            ..EndpointConfig::new("http://h".into(), "m".into(), "f")
        };
        assert!(!format!("{cfg:?}").contains("sk-secret"));
        let ep = Endpoint::build(cfg, "chat", "chat/completions", "chat completions").unwrap();
        assert!(!format!("{ep:?}").contains("sk-secret"));
        assert!(matches!(
            Endpoint::build(
                EndpointConfig::new("http://h".into(), " ".into(), "f"),
                "chat",
                "x",
                "x"
            ),
            Err(EndpointConfigError::EmptyModel)
        ));
    }
}
