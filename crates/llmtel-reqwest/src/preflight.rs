//! The budget pre-flight hook: asked before an LLM call leaves the process, told how it
//! ended afterwards.
//!
//! A budget (e.g. `llmtel-budget`) implements [`PreflightHook`] and is given to
//! [`crate::LlmMiddleware::with_preflight`]. For every recognised LLM call the middleware
//! calls [`PreflightHook::preflight`] **before** any network I/O, inside the call's span (so
//! `tracing::Span::current()` is the LLM span and `llmtel::current_dimensions()` gives the
//! app's `user.id`, feature, tenant from its ancestors): an `Err` aborts the call
//! (the caller gets `reqwest_middleware::Error::Middleware` wrapping the
//! [`PreflightError`], the span records `error.type` from [`PreflightError::error_type`]),
//! `Ok` lets it go. Once the call is over (response body read to its end, failed, or dropped)
//! [`PreflightHook::settle`] runs exactly once with what was seen: usage (reported or
//! estimated), the response model and the error class. `preflight` runs on the request path,
//! `settle` on llmtel-reqwest's body reader thread: keep both fast and non-blocking (an
//! in-memory check, a channel send).
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use llmtel_reqwest::{PlannedCall, PreflightError, PreflightHook, SettledCall};
//!
//! #[derive(Debug, Default)]
//! struct TokenBudget { used: AtomicU64, limit: u64 }
//!
//! impl PreflightHook for TokenBudget {
//!     fn preflight(&self, call: &PlannedCall) -> Result<(), PreflightError> {
//!         if self.used.load(Ordering::Relaxed) >= self.limit {
//!             return Err(PreflightError::new("budget_exceeded", format!("token budget spent ({} for {})", self.limit, call.model)));
//!         }
//!         Ok(())
//!     }
//!     fn settle(&self, _call: &PlannedCall, outcome: &SettledCall) {
//!         if let Some(u) = &outcome.usage {
//!             self.used.fetch_add(u.input_tokens + u.output_tokens, Ordering::Relaxed);
//!         }
//!     }
//! }
//! let budget = TokenBudget { limit: 1_000, ..Default::default() };
//! let mw = llmtel_reqwest::LlmMiddleware::new().with_preflight(budget);
//! ```

use std::fmt;

use llmtel::Usage;

/// An LLM call about to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCall {
    /// `gen_ai.provider.name`.
    pub provider: String,
    /// `gen_ai.operation.name`.
    pub operation: &'static str,
    /// The requested model.
    pub model: String,
    /// The output cap asked for, if any (`max_tokens` and its spellings).
    pub max_output_tokens: Option<u64>,
    /// Whether the response is streamed.
    pub stream: bool,
    /// Size of the request body in bytes (a cheap proxy for the prompt's size).
    pub request_bytes: usize,
}

/// How an LLM call ended, given to [`PreflightHook::settle`].
#[derive(Debug, Clone, PartialEq)]
pub struct SettledCall {
    /// Usage, reported by the provider or estimated (see `estimated`); `None` when unknown
    /// (the call failed before any output).
    pub usage: Option<Usage>,
    /// Whether `usage` was estimated from the text.
    pub estimated: bool,
    /// The model that answered, if the response said.
    pub response_model: Option<String>,
    /// The `error.type` of a failed, refused or cancelled call.
    pub error_type: Option<String>,
}

/// A refusal from [`PreflightHook::preflight`]; the request is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PreflightError {
    error_type: String,
    message: String,
    retry_at: Option<std::time::SystemTime>,
}

impl PreflightError {
    /// A refusal with its `error.type` (e.g. `budget_exceeded`) and a message for humans.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        PreflightError {
            error_type: error_type.into(),
            message: message.into(),
            retry_at: None,
        }
    }

    /// When the call may succeed again (a budget's reset), for an HTTP `Retry-After`.
    pub fn with_retry_at(mut self, at: std::time::SystemTime) -> Self {
        self.retry_at = Some(at);
        self
    }

    /// When the call may succeed again, if the refusal said.
    pub fn retry_at(&self) -> Option<std::time::SystemTime> {
        self.retry_at
    }

    /// The `error.type` recorded on the span.
    pub fn error_type(&self) -> &str {
        &self.error_type
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Asked before each LLM call leaves the process, told how it ended (see the module docs).
pub trait PreflightHook: Send + Sync + fmt::Debug + 'static {
    /// `Ok(())` lets the call go; `Err` refuses it with no network I/O.
    ///
    /// # Errors
    /// The refusal, returned to the caller of the HTTP client.
    fn preflight(&self, call: &PlannedCall) -> Result<(), PreflightError>;

    /// Called once when an admitted call is over. The default does nothing.
    fn settle(&self, call: &PlannedCall, outcome: &SettledCall) {
        let _ = (call, outcome);
    }
}
