//! Errors.

use std::borrow::Cow;

use jiff::Timestamp;
use llmtel_pricing::Usd;

/// A config file or rule that cannot be used. Messages never hold a URL's password.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read budget config: {0}")]
    Io(String),
    /// The TOML is invalid (URL credentials masked).
    #[error("invalid budget config: {0}")]
    Parse(String),
    /// One rule is invalid.
    #[error("budget rule {rule:?}: {field}: {message}")]
    Rule {
        /// Rule name.
        rule: String,
        /// Field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The configured store cannot be opened (URL credentials masked).
    #[error("budget store: {}", redact_url_credentials(.0))]
    Store(String),
}

/// Masks the credentials of every URL in `text`: `redis://user:pw@host` becomes
/// `redis://user:***@host`, `redis://:pw@host` becomes `redis://:***@host` and
/// `redis://token@host` becomes `redis://***@host`. Text without credentials is returned as
/// is.
pub fn redact_url_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str("***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The store could not be reached or answered an error. Its message never holds a URL's
/// password (see [`redact_url_credentials`]), in `Display` nor in `Debug`.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget store {store}: {}", redact_url_credentials(message))]
pub struct StoreError {
    /// Store kind (`memory`, `sqlite`, `redis`).
    pub store: &'static str,
    /// What went wrong.
    pub message: String,
    /// The store answered and refused this operation (a script or SQL error, bad data):
    /// writing the same thing again will not help. `false` when it could not be reached or
    /// was busy (worth retrying).
    pub rejected: bool,
}

impl std::fmt::Debug for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreError")
            .field("store", &self.store)
            .field("message", &redact_url_credentials(&self.message))
            .field("rejected", &self.rejected)
            .finish()
    }
}

impl StoreError {
    /// A store that could not be reached, timed out or was busy (worth retrying).
    pub fn unavailable(store: &'static str, message: impl Into<String>) -> Self {
        StoreError {
            store,
            message: redact_url_credentials(&message.into()).into_owned(),
            rejected: false,
        }
    }

    /// A store that answered and refused the operation (see [`StoreError::rejected`]).
    pub fn rejected(store: &'static str, message: impl Into<String>) -> Self {
        StoreError {
            store,
            message: redact_url_credentials(&message.into()).into_owned(),
            rejected: true,
        }
    }
}

/// A call refused because it would pass a limit.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("budget {rule:?} exceeded for {scope}: spent {spent} of {limit} this {period}; resets at {}", resets_at.map(|t| t.to_string()).unwrap_or_else(|| "never".into()))]
pub struct BudgetExceeded {
    /// The rule.
    pub rule: String,
    /// The scope and value, `user.id=u-1` (or `user.id=*` for a shared rule).
    pub scope: String,
    /// The period name (`day`, `rolling-24h`, ...).
    pub period: String,
    /// Settled plus reserved spend in the period.
    pub spent: Usd,
    /// The USD limit (zero when a token limit was hit).
    pub limit: Usd,
    /// Settled plus reserved tokens in the period.
    pub spent_tokens: u64,
    /// The token limit, when one was hit.
    pub limit_tokens: Option<u64>,
    /// When the period resets (`None` for lifetime budgets).
    pub resets_at: Option<Timestamp>,
}

impl BudgetExceeded {
    /// Seconds until the budget resets from `now`, at least 1, for a `Retry-After` header.
    pub fn retry_after_secs(&self, now: Timestamp) -> Option<u64> {
        let t = self.resets_at?;
        let s = t.as_second() - now.as_second();
        Some(s.max(1) as u64)
    }
}

/// Why `reserve` refused a call.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ReserveError {
    /// A limit would be passed.
    #[error(transparent)]
    Exceeded(Box<BudgetExceeded>),
    /// The store is down and the budgets are configured fail-closed.
    #[error("budget store unavailable (fail-closed): {0}")]
    StoreUnavailable(StoreError),
    /// The call's model has no price and a USD rule's policy is to refuse such calls
    /// ([`crate::Unpriced::Refuse`], the default).
    #[error(
        "budget {rule:?} refuses calls to model {model:?}: it has no price in the catalog, so its spend cannot be counted. Add a price for it (a price file, see `llmtel prices check`, or Catalog::insert), or set the rule's policy: on_unpriced = \"fallback\" with fallback_usd_per_million_input and fallback_usd_per_million_output, or on_unpriced = \"allow\" (let it through at $0, counted and alerted)"
    )]
    Unpriced {
        /// The rule that refused.
        rule: String,
        /// The model with no price (capped, see [`llmtel::cap_value`]).
        model: String,
    },
}

impl ReserveError {
    /// The exceeded budget, when that is the reason.
    pub fn exceeded(&self) -> Option<&BudgetExceeded> {
        match self {
            ReserveError::Exceeded(e) => Some(e.as_ref()),
            ReserveError::StoreUnavailable(_) | ReserveError::Unpriced { .. } => None,
        }
    }
}
