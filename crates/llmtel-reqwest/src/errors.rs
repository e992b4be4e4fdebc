//! Provider errors as a low-cardinality `error.type`.
//!
//! | `error.type` | from |
//! |---|---|
//! | `context_length_exceeded` | OpenAI `code: context_length_exceeded`; Anthropic "prompt is too long", "… exceed context limit: …"; Gemini "input token count … exceeds the maximum" |
//! | `insufficient_quota` | OpenAI `code: insufficient_quota` |
//! | `rate_limit` | HTTP 429, `rate_limit_exceeded`, `rate_limit_error`, `RESOURCE_EXHAUSTED` |
//! | `authentication` | 401, `authentication_error`, `invalid_api_key`, `UNAUTHENTICATED` |
//! | `permission_denied` | 403, `permission_error`, `PERMISSION_DENIED` |
//! | `not_found` | 404, `not_found_error`, `model_not_found`, `NOT_FOUND` |
//! | `request_too_large` | 413, `request_too_large` |
//! | `overloaded` | 529, `overloaded_error`, 503, `UNAVAILABLE` |
//! | `timeout` | 408, 504, `DEADLINE_EXCEEDED` |
//! | `invalid_request` | other 400 and 422, `invalid_request_error`, `INVALID_ARGUMENT` |
//! | `server_error` | other 5xx, `api_error`, `server_error`, `INTERNAL` |
//! | the status code (`"409"`) | any other status |
//!
//! ```
//! use llmtel_reqwest::errors::classify;
//! assert_eq!(classify(400, Some("context_length_exceeded"), Some("invalid_request_error"), None), "context_length_exceeded");
//! assert_eq!(classify(429, None, Some("rate_limit_error"), None), "rate_limit");
//! assert_eq!(classify(400, None, Some("INVALID_ARGUMENT"), Some("The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).")), "context_length_exceeded");
//! assert_eq!(classify(400, None, Some("invalid_request_error"), Some("input length and `max_tokens` exceed context limit: 187254 + 20000 > 200000, decrease input length or `max_tokens` and try again")), "context_length_exceeded");
//! ```

/// Classifies a provider error from the HTTP status (0 inside a 2xx stream), the provider's
/// error `code`, its error `type`/`status` and message.
pub fn classify(
    status: u16,
    code: Option<&str>,
    kind: Option<&str>,
    message: Option<&str>,
) -> &'static str {
    let code = code.unwrap_or_default();
    let kind = kind.unwrap_or_default();
    let msg = message.unwrap_or_default().to_ascii_lowercase();
    let any = |s: &str| code.eq_ignore_ascii_case(s) || kind.eq_ignore_ascii_case(s);
    if code.contains("context_length")
        || kind.contains("context_length")
        || msg.contains("context length")
        || msg.contains("context_length_exceeded")
        || msg.contains("prompt is too long")
        || (msg.contains("input token count") && msg.contains("exceeds"))
        || msg.contains("maximum context")
        // Anthropic: "input length and `max_tokens` exceed context limit: 187254 + 20000 >
        // 200000".
        || msg.contains("exceed context limit")
    {
        return "context_length_exceeded";
    }
    if any("insufficient_quota") {
        return "insufficient_quota";
    }
    if status == 429
        || any("rate_limit_exceeded")
        || any("rate_limit_error")
        || any("RESOURCE_EXHAUSTED")
        || any("rate_limit")
        || any("requests")
        || any("tokens")
    {
        return "rate_limit";
    }
    if status == 401
        || any("authentication_error")
        || any("invalid_api_key")
        || any("UNAUTHENTICATED")
    {
        return "authentication";
    }
    if status == 403 || any("permission_error") || any("PERMISSION_DENIED") {
        return "permission_denied";
    }
    if status == 404 || any("not_found_error") || any("model_not_found") || any("NOT_FOUND") {
        return "not_found";
    }
    if status == 413 || any("request_too_large") {
        return "request_too_large";
    }
    if status == 529
        || status == 503
        || any("overloaded_error")
        || any("UNAVAILABLE")
        || any("overloaded")
    {
        return "overloaded";
    }
    if status == 408 || status == 504 || any("DEADLINE_EXCEEDED") || any("timeout") {
        return "timeout";
    }
    if status == 400
        || status == 422
        || any("invalid_request_error")
        || any("INVALID_ARGUMENT")
        || any("FAILED_PRECONDITION")
    {
        return "invalid_request";
    }
    if (500..600).contains(&status) || any("api_error") || any("server_error") || any("INTERNAL") {
        return "server_error";
    }
    match status {
        0 => "provider_error",
        _ => status_str(status),
    }
}

fn status_str(status: u16) -> &'static str {
    match status {
        402 => "402",
        405 => "405",
        409 => "409",
        410 => "410",
        415 => "415",
        _ if status >= 400 => "http_error",
        _ => "provider_error",
    }
}

/// The `(code, type-or-status, message)` of a provider error body, any provider's shape:
/// OpenAI `{"error":{"message","type","code"}}`, Anthropic
/// `{"type":"error","error":{"type","message"}}`, Gemini `{"error":{"code","message","status"}}`.
pub(crate) fn error_fields(body: &[u8]) -> Option<(Option<String>, Option<String>, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    if let Some(s) = e.as_str() {
        return Some((None, None, s.to_owned()));
    }
    let code = e.get("code").and_then(|c| match c {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let kind = e
        .get("type")
        .or_else(|| e.get("status"))
        .and_then(|t| t.as_str())
        .map(str::to_owned);
    let message = e
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    Some((code, kind, message))
}
