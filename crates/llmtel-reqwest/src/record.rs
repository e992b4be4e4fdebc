//! Recording a response you already have on a span you opened — for clients the middleware
//! cannot wrap (async-openai builds its own `reqwest::Client`; any SDK whose response types
//! are `Serialize`).
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

use tracing::Span;

use crate::decode::{Decoder, Observed};
use crate::route::Api;

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
    if let Some(u) = &obs.usage {
        llmtel::record_usage(span, u);
    }
}
