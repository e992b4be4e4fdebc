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

    /// Truncates content to `max` characters (a marker `…[truncated N chars]` is appended,
    /// once: content this policy truncated already is left as it is).
    pub fn with_max_chars(mut self, max: usize) -> Self {
        self.max_chars = max;
        self
    }

    /// Runs `f` over content before it is recorded (after the built-in API-key redaction),
    /// the whole content: without `f`, content longer than the limit is redacted only as far
    /// as it can be kept (its first `max_chars` characters and a margin of a few thousand
    /// more, ending at a blank); with `f`, all of it is redacted and given to `f`, whatever
    /// its length, so `f` costs the recording thread in proportion.
    ///
    /// Content recorded through llmtel's helpers goes through it there and again in llmtel's
    /// exporter, which applies the policy to every span whoever recorded the content (it
    /// cannot tell the two apart: skipping what looks processed would let content made to
    /// look so skip `f`). Make `f` give the same result when run on its own output.
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
        // Only what can be kept is redacted and copied: a 10 MB prompt costs the thread
        // that records it (the request thread, through the helpers) a count of its
        // characters, not a scan for secrets and a copy. The app's redactor is given the
        // whole content, as it always was: one that parses it (JSON messages) would get a
        // cut it cannot parse.
        let (window, cut) = if self.redactor.is_some() {
            (content, 0)
        } else {
            keepable(content, self.max_chars)
        };
        let mut s = crate::redact::redact(window).into_owned();
        if let Some(r) = &self.redactor {
            s = r(&s);
        }
        Some(truncate(s, self.max_chars, cut))
    }
}

/// Characters past the limit that are redacted with the kept part, so that a secret that
/// starts before the cut is seen whole (or long enough to be recognised) by the redaction.
const REDACT_MARGIN_CHARS: usize = 4_096;

/// How far past the margin the part to redact reaches, at most, to end at a blank: a
/// token (a key, a quoted value without blanks) that starts before the cut is redacted
/// whole, whatever its length up to this.
const REDACT_MARGIN_MAX_BYTES: usize = 64 * 1024;

/// The part of `content` that may be kept, with the margin the redaction needs: its first
/// `max_chars` characters, [`REDACT_MARGIN_CHARS`] more, and on to the next blank (at most
/// [`REDACT_MARGIN_MAX_BYTES`] further); and how many characters follow it (dropped).
fn keepable(content: &str, max_chars: usize) -> (&str, usize) {
    let Some((at, _)) = content
        .char_indices()
        .nth(max_chars.saturating_add(REDACT_MARGIN_CHARS))
    else {
        return (content, 0);
    };
    let limit = content
        .len()
        .min(at.saturating_add(REDACT_MARGIN_MAX_BYTES));
    let end = content.as_bytes()[at..limit]
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .map_or(limit, |i| at + i);
    // A char boundary: at `limit` (not a blank) a character may continue.
    let end = (end..=content.len())
        .find(|&i| content.is_char_boundary(i))
        .unwrap_or(content.len());
    (&content[..end], content[end..].chars().count())
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

/// Starts the marker [`truncate`] appends: `…[truncated N chars]`.
const TRUNCATED: &str = "…[truncated ";

/// Cuts `s` to `max_chars` characters and appends the marker, counting the characters cut
/// here and the `cut` already left out of `s` ([`keepable`]).
fn truncate(mut s: String, max_chars: usize, cut: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((idx, _)) => {
            if cut == 0 && truncated_already(&s, max_chars) {
                return s;
            }
            let dropped = s[idx..].chars().count().saturating_add(cut);
            s.truncate(idx);
            s.push_str(&format!("{TRUNCATED}{dropped} chars]"));
        }
        // Redaction shortened the kept part below the limit: what was left out is still
        // marked.
        None if cut > 0 => s.push_str(&format!("{TRUNCATED}{cut} chars]")),
        None => {}
    }
    s
}

/// Whether `s` is content this policy truncated already: at most `max_chars` characters and
/// its marker. The policy is applied where content is recorded and again by the exporter;
/// cut again, the marker counted itself (`…[truncated 22 chars]` for 990 dropped). What
/// such a value can hold past `max_chars` is the marker, a few dozen bytes.
fn truncated_already(s: &str, max_chars: usize) -> bool {
    let Some(at) = s.rfind(TRUNCATED) else {
        return false;
    };
    let count = s[at + TRUNCATED.len()..].strip_suffix(" chars]");
    count.is_some_and(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()))
        && s[..at].chars().count() <= max_chars
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

    /// Content is truncated where it is recorded and the exporter applies the policy again:
    /// the second pass keeps it (it cut the marker and counted it: `…[truncated 22 chars]`
    /// for 990 characters dropped).
    #[test]
    fn content_truncated_once_is_not_truncated_again() {
        let p = ContentCapture::enabled().with_max_chars(10);
        let once = p.apply(&"a".repeat(1_000)).unwrap_or_default();
        assert_eq!(once, format!("{}…[truncated 990 chars]", "a".repeat(10)));
        assert_eq!(p.apply(&once).as_deref(), Some(once.as_str()));
        // A shorter limit than the one it was cut to still cuts it.
        let shorter = ContentCapture::enabled().with_max_chars(4);
        assert_eq!(
            shorter.apply(&once).as_deref(),
            Some("aaaa…[truncated 28 chars]")
        );
        // Something that only looks like the marker is cut as any content.
        let fake = format!("{}…[truncated x chars]", "b".repeat(20));
        assert_eq!(
            p.apply(&fake).as_deref(),
            Some("bbbbbbbbbb…[truncated 30 chars]")
        );
    }

    #[test]
    fn only_the_limit_a_margin_and_the_rest_of_a_token_are_kept_to_redact() {
        let long = format!("{} {} tail", "ab ".repeat(5_000), "k".repeat(100_000));
        let (window, cut) = keepable(&long, 100);
        assert!(
            window.len() < 100 + REDACT_MARGIN_CHARS + 8,
            "{}",
            window.len()
        );
        assert!(
            window.ends_with("ab") || window.ends_with("a"),
            "ends at a blank"
        );
        assert_eq!(window.chars().count() + cut, long.chars().count());
        // A token without blanks across the margin is kept whole up to the byte cap.
        let token = format!("{} {}", "x".repeat(200), "k".repeat(1_000_000));
        let (window, cut) = keepable(&token, 100);
        assert_eq!(
            window.len(),
            100 + REDACT_MARGIN_CHARS + REDACT_MARGIN_MAX_BYTES
        );
        assert_eq!(window.len() + cut, token.len());
        // Multi-byte characters: the window ends on a character boundary.
        let wide = "é".repeat(200_000);
        let (window, cut) = keepable(&wide, 10);
        assert_eq!(window.chars().count() + cut, 200_000);
        // Short content is all kept.
        assert_eq!(keepable("short", 100), ("short", 0));
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        let p = ContentCapture::enabled().with_max_chars(3);
        assert_eq!(p.apply("héllo").as_deref(), Some("hél…[truncated 2 chars]"));
        assert_eq!(p.apply("abc").as_deref(), Some("abc"));
    }
}
