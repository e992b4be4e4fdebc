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
/// `redis://token@host` becomes `redis://***@host`; query parameters named like a
/// credential (`pass`, `password`, `token`, `key`, `secret`, `auth`...) are masked too:
/// `redis+unix:///run/redis.sock?pass=p@w` becomes `redis+unix:///run/redis.sock?pass=***`.
///
/// The query starts at the first `?` followed by a parameter (`name=`); the userinfo ends
/// at the last `@` before it, so a password holding a raw `#`, `/` or `?` is masked whole
/// and an `@` in a query value is not taken for the userinfo's. (A raw `?name=` in a
/// password makes the rest of it a query: only the credential parameters are masked.)
/// Text without credentials is returned as is.
pub fn redact_url_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !(text.contains('@') || text.contains('?')) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The URL runs to the first blank or quote (how messages delimit it); a `#`, `/` or
        // `?` may be part of its password.
        let end = tail
            .find(|c: char| matches!(c, '"' | '\'' | '`' | '>') || c.is_whitespace())
            .unwrap_or(tail.len());
        redact_one(&tail[..end], &mut out);
        rest = &tail[end..];
    }
    out.push_str(rest);
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

/// Query parameter names (lowercase) taken for credentials: any name containing one.
const CREDENTIAL_PARAMS: &[&str] = &["pass", "pwd", "secret", "token", "key", "auth", "cred"];

/// Appends `url` (what follows `scheme://`) to `out` with its userinfo's password and its
/// credential query parameters masked.
fn redact_one(url: &str, out: &mut String) {
    let q = query_start(url);
    if q.is_some_and(|q| url[q..].contains('@')) {
        // An `@` past what looks like a query: a password holding `?name=` or a query value
        // holding `@`, which cannot be told apart: nothing of it is shown.
        out.push_str("***");
        return;
    }
    let authority_and_path = &url[..q.unwrap_or(url.len())];
    match authority_and_path.rfind('@') {
        Some(at) => {
            let userinfo = &url[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..=colon]);
                    out.push_str("***");
                }
                None => out.push_str("***"),
            }
            out.push_str(&authority_and_path[at..]);
        }
        None => out.push_str(authority_and_path),
    }
    let Some(q) = q else {
        return;
    };
    out.push('?');
    let mut masking = false;
    for (n, param) in url[q + 1..].split('&').enumerate() {
        if n > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((name, value)) => {
                let lower = name.to_ascii_lowercase();
                masking = CREDENTIAL_PARAMS.iter().any(|c| lower.contains(c));
                out.push_str(name);
                out.push('=');
                out.push_str(if masking && !value.is_empty() {
                    "***"
                } else {
                    value
                });
            }
            // No `=`: the rest of a credential's value that held a `&`.
            None if masking => out.push_str("***"),
            None => out.push_str(param),
        }
    }
}

/// Where the query of `url` starts: its first `?` followed by a parameter, `name=` (a name
/// of letters, digits, `_`, `-`, `.`); a `?` followed by anything else is taken for part of
/// a password.
fn query_start(url: &str) -> Option<usize> {
    url.match_indices('?').map(|(i, _)| i).find(|&i| {
        let param = url[i + 1..].split('&').next().unwrap_or("");
        param.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
    })
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

/// A call refused because it would pass a limit. Its message names the limit that was hit:
/// `spent $X of $Y` for a USD limit, `used N of M tokens` for a token limit, and says so
/// when the spend could not be read after the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// The rule.
    pub rule: String,
    /// The scope and value, `user.id=u-1` (or `user.id=*` for a shared rule); a value that
    /// holds a secret as in [`crate::RuleStatus::scope`].
    pub scope: String,
    /// The period name (`day`, `rolling-24h`, ...).
    pub period: String,
    /// Settled plus reserved spend in the period (zero when `totals_unavailable`).
    pub spent: Usd,
    /// The USD limit (zero when the rule has none; when a token limit was hit, see
    /// `limit_tokens`).
    pub limit: Usd,
    /// Settled plus reserved tokens in the period (zero when `totals_unavailable`).
    pub spent_tokens: u64,
    /// The token limit, when one was hit (or may have been, when `totals_unavailable`).
    pub limit_tokens: Option<u64>,
    /// When the period resets (`None` for lifetime budgets). Not always when the call can
    /// be tried again: see `cause` and [`BudgetExceeded::retry_after_secs`].
    pub resets_at: Option<Timestamp>,
    /// The store refused the call but its spend could not be read back afterwards:
    /// `spent` and `spent_tokens` are unknown (zero), not the spend.
    pub totals_unavailable: bool,
    /// What leaves no room for the call, and so whether and when to try it again.
    pub cause: ExceededCause,
}

/// Why a [`BudgetExceeded`] refusal: when the same call may be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExceededCause {
    /// The spend already settled in the period (or, when it could not be read, possibly
    /// reservations too) leaves no room: the call may pass when the period resets
    /// (`resets_at`; never for a lifetime budget).
    Spent,
    /// The settled spend leaves room, but reservations of calls still in flight hold it:
    /// each frees what it did not use when its call settles (usually within seconds), so
    /// the call may pass shortly ([`IN_FLIGHT_RETRY_AFTER_SECS`]).
    InFlight,
    /// The call's estimate alone is over the limit: it can never be admitted, not even in
    /// an empty period (lower its `max_tokens` or prompt, or raise the limit). Not worth
    /// retrying: [`BudgetExceeded::retry_after_secs`] is `None`.
    EstimateOverLimit,
}

/// The retry hint, in seconds, of a refusal caused by reservations of calls in flight
/// ([`ExceededCause::InFlight`]): they settle within seconds, not at the period's reset.
pub const IN_FLIGHT_RETRY_AFTER_SECS: u64 = 5;

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "budget {:?} exceeded for {}: ", self.rule, self.scope)?;
        let usd_limit = self.limit > Usd::ZERO;
        match (self.totals_unavailable, self.limit_tokens) {
            (false, Some(l)) => write!(f, "used {} of {l} tokens", self.spent_tokens)?,
            (false, None) => write!(f, "spent {} of {}", self.spent, self.limit)?,
            (true, Some(l)) if usd_limit => write!(
                f,
                "its limit of {} or {l} tokens was reached (its spend could not be read)",
                self.limit
            )?,
            (true, Some(l)) => write!(
                f,
                "its limit of {l} tokens was reached (its spend could not be read)"
            )?,
            (true, None) => write!(
                f,
                "its limit of {} was reached (its spend could not be read)",
                self.limit
            )?,
        }
        write!(f, " this {}; ", self.period)?;
        match self.cause {
            ExceededCause::EstimateOverLimit => {
                return f.write_str(
                    "this call's estimate alone is over the limit: it can never be admitted (lower its max_tokens or prompt, or raise the limit)",
                );
            }
            ExceededCause::InFlight => f.write_str(
                "calls in flight hold the rest and free what they do not use when they settle: retry shortly; ",
            )?,
            ExceededCause::Spent => {}
        }
        f.write_str("resets at ")?;
        match self.resets_at {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("never"),
        }
    }
}

impl std::error::Error for BudgetExceeded {}

impl BudgetExceeded {
    /// Seconds from `now` until the call may be admitted, at least 1, for a `Retry-After`
    /// header: until the period resets ([`ExceededCause::Spent`]); a few seconds, at most
    /// until the reset, while calls in flight hold the room ([`ExceededCause::InFlight`],
    /// [`IN_FLIGHT_RETRY_AFTER_SECS`]). `None` when retrying cannot help: the estimate alone
    /// is over the limit ([`ExceededCause::EstimateOverLimit`]), or a lifetime budget is
    /// spent.
    pub fn retry_after_secs(&self, now: Timestamp) -> Option<u64> {
        let until_reset = self
            .resets_at
            .map(|t| (t.as_second() - now.as_second()).max(1) as u64);
        match self.cause {
            ExceededCause::EstimateOverLimit => None,
            ExceededCause::InFlight => Some(until_reset.map_or(IN_FLIGHT_RETRY_AFTER_SECS, |s| {
                s.min(IN_FLIGHT_RETRY_AFTER_SECS)
            })),
            ExceededCause::Spent => until_reset,
        }
    }

    /// When the call may be admitted ([`BudgetExceeded::retry_after_secs`] from `now`), for
    /// a `Retry-After` date; `None` when retrying cannot help.
    pub fn retry_at(&self, now: Timestamp) -> Option<Timestamp> {
        let secs = self.retry_after_secs(now)?;
        match self.cause {
            ExceededCause::Spent => self.resets_at,
            _ => now
                .checked_add(jiff::SignedDuration::from_secs(
                    i64::try_from(secs).unwrap_or(i64::MAX),
                ))
                .ok()
                .or(self.resets_at),
        }
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
