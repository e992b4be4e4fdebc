//! Opt-in capture of prompt and response content: off by default, truncated, redacted.
//!
//! Content reaches telemetry only when the app turns capture on. The same policy is applied
//! twice: by the recording helpers ([`crate::record_input_messages`]) and by llmtel's exporter
//! on every span and span event, whoever recorded the content (`gen_ai.input.messages`,
//! `gen_ai.output.messages`, `gen_ai.system_instructions`, `input.value`, `output.value`,
//! `gen_ai.evaluation.explanation`, `error.message`): dropped when capture is off, truncated
//! and redacted when it is on. Every other exported string goes through [`crate::redact()`].

use std::fmt;
use std::sync::{Arc, RwLock};

/// A redaction hook: gets the content, returns what may be recorded.
pub type Redactor = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The content capture policy.
///
/// ```
/// let policy = llmtel::ContentCapture::enabled()
///     .with_max_chars(2_000)
///     .with_redactor(|s: &str| s.replace("secret", "[REDACTED]"));
/// assert_eq!(policy.apply("my secret").as_deref(), Some("my [REDACTED]"));
/// assert_eq!(llmtel::ContentCapture::disabled().apply("anything"), None);
/// ```
#[derive(Clone)]
pub struct ContentCapture {
    enabled: bool,
    max_chars: usize,
    redactor: Option<Redactor>,
}

impl fmt::Debug for ContentCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentCapture")
            .field("enabled", &self.enabled)
            .field("max_chars", &self.max_chars)
            .field("redactor", &self.redactor.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl Default for ContentCapture {
    fn default() -> Self {
        Self::disabled()
    }
}

/// Default limit on recorded content, in characters.
pub const DEFAULT_MAX_CHARS: usize = 4_096;

impl ContentCapture {
    /// No content is recorded (the default).
    pub fn disabled() -> Self {
        ContentCapture {
            enabled: false,
            max_chars: DEFAULT_MAX_CHARS,
            redactor: None,
        }
    }

    /// Content is recorded, truncated to [`DEFAULT_MAX_CHARS`], with API-key shapes redacted.
    pub fn enabled() -> Self {
        ContentCapture {
            enabled: true,
            ..Self::disabled()
        }
    }

    /// Truncates content to `max` characters (a marker `…[truncated N chars]` is appended).
    pub fn with_max_chars(mut self, max: usize) -> Self {
        self.max_chars = max;
        self
    }

    /// Runs `f` over content before it is recorded (after the built-in API-key redaction).
    pub fn with_redactor(mut self, f: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.redactor = Some(Arc::new(f));
        self
    }

    /// Whether content is recorded at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// What may be recorded of `content` under this policy; `None` when capture is off.
    pub fn apply(&self, content: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let mut s = crate::redact::redact(content).into_owned();
        if let Some(r) = &self.redactor {
            s = r(&s);
        }
        Some(truncate(s, self.max_chars))
    }
}

static POLICY: RwLock<Option<ContentCapture>> = RwLock::new(None);

/// Sets the process-wide content capture policy ([`crate::Builder::with_content_capture`]
/// calls it).
pub fn set_content_capture(policy: ContentCapture) {
    *POLICY.write().unwrap_or_else(|e| e.into_inner()) = Some(policy);
}

/// The process-wide content capture policy (disabled unless set).
pub fn content_capture() -> ContentCapture {
    POLICY
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

pub(crate) fn prepare(content: &str) -> Option<String> {
    let guard = POLICY.read().unwrap_or_else(|e| e.into_inner());
    guard.as_ref()?.apply(content)
}

fn truncate(mut s: String, max_chars: usize) -> String {
    if let Some((idx, _)) = s.char_indices().nth(max_chars) {
        let dropped = s[idx..].chars().count();
        s.truncate(idx);
        s.push_str(&format!("…[truncated {dropped} chars]"));
    }
    s
}

/// Replaces API keys and credentials with `[REDACTED]`: [`crate::redact()`] as an owned string
/// (kept for callers that want a `String`; prefer [`crate::redact()`], which does not allocate
/// when there is nothing to redact).
pub fn redact_secrets(s: &str) -> String {
    crate::redact::redact(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_and_bearer_tokens_are_redacted() {
        let s = "key sk-proj-abcdefghijklmnop1234 and Authorization: Bearer abc.def.ghi ok";
        let r = redact_secrets(s);
        assert!(!r.contains("sk-proj"), "{r}");
        assert!(!r.contains("abc.def.ghi"), "{r}");
        assert!(r.contains("ok"));
        assert_eq!(redact_secrets("sk-short"), "sk-short");
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        let p = ContentCapture::enabled().with_max_chars(3);
        assert_eq!(p.apply("héllo").as_deref(), Some("hél…[truncated 2 chars]"));
        assert_eq!(p.apply("abc").as_deref(), Some("abc"));
    }
}
