//! Budget rules: what is limited, per what, over which period.

use std::sync::Arc;

use jiff::tz::TimeZone;
use llmtel_pricing::Usd;
use serde::Deserialize;

use crate::error::ConfigError;

/// Which dimension of a call a rule limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every call (one shared budget for the whole service).
    Global,
    /// `user.id`.
    User,
    /// `llmtel.tenant`.
    Tenant,
    /// `llmtel.feature`.
    Feature,
    /// `session.id`.
    Session,
    /// `llmtel.api_key_id`.
    ApiKey,
    /// The model the request names (`gen_ai.request.model`), for reservations and recorded
    /// calls alike (a recorded call whose request named none: its response model). A rule
    /// on `gpt-4o` counts the calls the provider answers as `gpt-4o-2024-08-06`.
    Model,
    /// `gen_ai.provider.name`.
    Provider,
    /// Any other span dimension by attribute name (a custom `llmtel.*` field).
    Attribute(String),
}

impl Scope {
    /// Parses `global`, `user`, `tenant`, `feature`, `session`, `api_key`, `model`,
    /// `provider`, or an attribute name (anything else, e.g. `llmtel.team`).
    pub fn parse(s: &str) -> Scope {
        match s {
            "global" | "service" => Scope::Global,
            "user" | "user.id" => Scope::User,
            "tenant" | "llmtel.tenant" => Scope::Tenant,
            "feature" | "llmtel.feature" => Scope::Feature,
            "session" | "session.id" => Scope::Session,
            "api_key" | "llmtel.api_key_id" => Scope::ApiKey,
            "model" | "gen_ai.request.model" => Scope::Model,
            "provider" | "gen_ai.provider.name" => Scope::Provider,
            other => Scope::Attribute(other.to_string()),
        }
    }

    /// The attribute name shown in status and alerts (`user.id`, ...; `*` for global).
    pub fn attribute(&self) -> &str {
        match self {
            Scope::Global => "*",
            Scope::User => "user.id",
            Scope::Tenant => "llmtel.tenant",
            Scope::Feature => "llmtel.feature",
            Scope::Session => "session.id",
            Scope::ApiKey => "llmtel.api_key_id",
            Scope::Model => "gen_ai.request.model",
            Scope::Provider => "gen_ai.provider.name",
            Scope::Attribute(a) => a,
        }
    }
}

/// Whether each value of the scope gets its own limit or all values share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// "every user $5 a day": one budget per value.
    #[default]
    PerValue,
    /// "all users together $100 a day": one budget for every call that has the dimension.
    Shared,
}

/// The period a budget covers before it resets.
#[derive(Clone, Debug, PartialEq)]
pub enum Period {
    /// Calendar day in the time zone (midnight to midnight, 23 or 25 hours across DST).
    Day(TimeZone),
    /// Calendar week (Monday 00:00) in the time zone.
    Week(TimeZone),
    /// Calendar month in the time zone.
    Month(TimeZone),
    /// The last N hours, in 60 buckets of N minutes each (spend leaves the window bucket by
    /// bucket).
    RollingHours(u32),
    /// Never resets.
    Lifetime,
}

impl Period {
    /// `day`, `week`, `month`, `rolling-Nh`, `lifetime`.
    pub fn name(&self) -> String {
        match self {
            Period::Day(_) => "day".into(),
            Period::Week(_) => "week".into(),
            Period::Month(_) => "month".into(),
            Period::RollingHours(h) => format!("rolling-{h}h"),
            Period::Lifetime => "lifetime".into(),
        }
    }
}

/// USD and/or token limits; a rule with neither never denies (thresholds still need one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Spend limit.
    pub usd: Option<Usd>,
    /// Token limit (input + output tokens).
    pub tokens: Option<u64>,
}

/// What a rule does with a call that has no price: its model is not in the price catalog
/// (a new model, a fine-tune, a client-chosen name), so its cost cannot be computed.
///
/// Only rules with a USD limit are concerned (a token limit counts tokens either way).
/// The default is [`Unpriced::Refuse`]: a USD budget that silently lets an unknown model
/// through as free is a budget any client can bypass by naming a model, and a fallback
/// price is a guess that may be far too low; refusing makes the gap visible at once, with
/// an error that says how to close it (add a price or choose a policy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unpriced {
    /// Refuse the reservation ([`crate::ReserveError::Unpriced`]). A call recorded without
    /// a reservation (it already happened) is charged nothing but counted and alerted.
    #[default]
    Refuse,
    /// Reserve and settle at this price per million input and output tokens.
    Fallback {
        /// USD per million input tokens.
        input_per_million: Usd,
        /// USD per million output tokens.
        output_per_million: Usd,
    },
    /// Let it through at $0, counted ([`crate::BudgetStats::unpriced_admitted`]), flagged on the
    /// span and alerted.
    Allow,
}

impl Unpriced {
    /// The fallback price of `input` and `output` tokens (`None` unless
    /// [`Unpriced::Fallback`]).
    pub fn fallback_cost(&self, input: u64, output: u64) -> Option<Usd> {
        match *self {
            Unpriced::Fallback {
                input_per_million,
                output_per_million,
            } => {
                let per =
                    |rate: Usd, n: u64| rate.picos().saturating_mul(u128::from(n)) / 1_000_000;
                Some(Usd::from_picos(
                    per(input_per_million, input).saturating_add(per(output_per_million, output)),
                ))
            }
            _ => None,
        }
    }

    /// `refuse`, `fallback` or `allow`.
    pub fn name(&self) -> &'static str {
        match self {
            Unpriced::Refuse => "refuse",
            Unpriced::Fallback { .. } => "fallback",
            Unpriced::Allow => "allow",
        }
    }
}

/// One budget rule.
///
/// ```
/// use llmtel_budget::{Rule, Scope, Period, Mode};
/// use llmtel::Usd;
/// let rule = Rule::new("per-user-daily", Scope::User, Period::Day(jiff::tz::TimeZone::UTC))
///     .with_limit_usd(Usd::parse_decimal("5").unwrap())
///     .with_thresholds(&[50, 80, 100]);
/// assert_eq!(rule.mode, Mode::PerValue);
/// ```
#[derive(Clone, PartialEq)]
pub struct Rule {
    /// Unique name (in status, alerts, `llmtel.budget.rule`, store keys): not empty, without
    /// the unit separator `\x1f` (store keys are `name\x1fvalue`). Two rules of one name would
    /// share their meters and charge every call twice, unless their values never meet (each
    /// limited to values the other is not); see [`crate::BudgetsBuilder::try_build`].
    pub name: Arc<str>,
    /// The dimension limited.
    pub scope: Scope,
    /// Per value or shared.
    pub mode: Mode,
    /// Only these values (empty: every value).
    pub values: Vec<String>,
    /// The period.
    pub period: Period,
    /// Limits.
    pub limits: Limits,
    /// Soft thresholds in percent of a limit, from 1 to 1000; each fires one alert per scope
    /// and period.
    pub thresholds: Vec<u32>,
    /// What a call with no price does under this rule (default: refuse).
    pub on_unpriced: Unpriced,
}

/// As derived, but an API-key rule's `values` (API keys) show as their fingerprints
/// ([`llmtel::redact::fingerprint`]): a rule or config printed with `{:?}` showed the keys.
impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values: Vec<std::borrow::Cow<'_, str>> = self
            .values
            .iter()
            .map(|v| match self.scope {
                Scope::ApiKey => std::borrow::Cow::Owned(llmtel::redact::fingerprint(v)),
                _ => std::borrow::Cow::Borrowed(v.as_str()),
            })
            .collect();
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("mode", &self.mode)
            .field("values", &values)
            .field("period", &self.period)
            .field("limits", &self.limits)
            .field("thresholds", &self.thresholds)
            .field("on_unpriced", &self.on_unpriced)
            .finish()
    }
}

impl Rule {
    /// A per-value rule with no limit and no threshold yet.
    pub fn new(name: &str, scope: Scope, period: Period) -> Self {
        Rule {
            name: name.into(),
            scope,
            mode: Mode::PerValue,
            values: Vec::new(),
            period,
            limits: Limits::default(),
            thresholds: Vec::new(),
            on_unpriced: Unpriced::default(),
        }
    }

    /// What a call whose model has no price does under this rule (default
    /// [`Unpriced::Refuse`]).
    pub fn with_on_unpriced(mut self, policy: Unpriced) -> Self {
        self.on_unpriced = policy;
        self
    }

    /// Sets the USD limit.
    pub fn with_limit_usd(mut self, usd: Usd) -> Self {
        self.limits.usd = Some(usd);
        self
    }

    /// Sets the token limit.
    pub fn with_limit_tokens(mut self, tokens: u64) -> Self {
        self.limits.tokens = Some(tokens);
        self
    }

    /// Sets the mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Limits the rule to these values of its scope.
    pub fn with_values(mut self, values: &[&str]) -> Self {
        self.values = values.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets the soft thresholds, in percent.
    pub fn with_thresholds(mut self, pct: &[u32]) -> Self {
        self.thresholds = pct.to_vec();
        self.thresholds.sort_unstable();
        self.thresholds.dedup();
        self
    }
}

/// Thresholds a rule may have, in percent of its limit.
pub(crate) const THRESHOLDS: std::ops::RangeInclusive<u32> = 1..=1000;

impl Rule {
    /// What is wrong with this rule's name, if anything.
    pub(crate) fn name_problem(&self) -> Option<&'static str> {
        if self.name.is_empty() {
            Some("a rule needs a name")
        } else if self.name.contains('\u{1f}') {
            Some(
                "a rule name cannot hold the unit separator \\x1f (it separates the parts of a store key)",
            )
        } else {
            None
        }
    }
}

impl Rule {
    /// What makes this rule's `values` unable to ever match a call, if anything: the field
    /// at fault and what to do. A global rule's value is always `*` (values would leave it
    /// never applied); a value longer than [`llmtel::MAX_VALUE_BYTES`] is never a call's
    /// (every call value is capped at that length before it is matched).
    pub(crate) fn values_problem(&self) -> Option<String> {
        if self.scope == Scope::Global && !self.values.is_empty() {
            return Some(
                "a global rule applies to every call and cannot be limited to values (it would never apply): remove `values`, or give the rule a per-value scope (user, tenant, feature, model, an attribute...) to limit those values"
                    .into(),
            );
        }
        self.values
            .iter()
            .enumerate()
            .find(|(_, v)| v.len() > llmtel::MAX_VALUE_BYTES)
            .map(|(i, v)| {
                format!(
                    "value #{} is {} bytes long: call values over {} bytes are capped (their first bytes and a hash) before they are matched, so it would never match; write the capped form, `llmtel::cap_value(value)`, or a value of at most {} bytes",
                    i + 1,
                    v.len(),
                    llmtel::MAX_VALUE_BYTES,
                    llmtel::MAX_VALUE_BYTES
                )
            })
    }

    /// The scope values this rule's meters are keyed by (`name\x1fvalue`): `None` for any
    /// value (a per-value rule on every value of its scope); `*` for a shared or global rule.
    pub(crate) fn key_values(&self) -> Option<Vec<&str>> {
        if self.mode == Mode::Shared || self.scope == Scope::Global {
            Some(vec!["*"])
        } else if self.values.is_empty() {
            None
        } else {
            Some(self.values.iter().map(String::as_str).collect())
        }
    }

    /// Whether a meter key of this rule can be one of `other`'s, were they of one name: what
    /// makes two rules of one name share their meters. Their scopes do not matter (a user
    /// and a tenant both named `acme` have one key), their values do: two per-value rules
    /// limited to values no other has, or a shared rule (`*`) and a per-value rule limited to
    /// values other than `*`, never meet.
    pub(crate) fn keys_can_collide(&self, other: &Rule) -> bool {
        match (self.key_values(), other.key_values()) {
            (Some(a), Some(b)) => a.iter().any(|v| b.contains(v)),
            _ => true,
        }
    }
}

/// Checks rules as [`crate::BudgetsBuilder::try_build`] and the rules file require: each
/// with a name that is not empty and holds no `\x1f`, not the name of an earlier rule whose
/// meter keys can be its own ([`Rule::keys_can_collide`]), values that can match a call
/// ([`Rule::values_problem`]), and thresholds from 1 to 1000 percent.
pub(crate) fn check_rules(rules: &[Rule]) -> Result<(), ConfigError> {
    let mut seen: Vec<&Rule> = Vec::new();
    for r in rules {
        let bad = |field: &str, message: String| ConfigError::Rule {
            rule: r.name.to_string(),
            field: field.to_string(),
            message,
        };
        if let Some(problem) = r.name_problem() {
            return Err(bad("name", problem.into()));
        }
        if seen
            .iter()
            .any(|s| s.name == r.name && s.keys_can_collide(r))
        {
            return Err(bad(
                "name",
                "duplicate rule name: each rule needs its own (its meters in the store are keyed by it and the scope value; two rules of one name whose values can meet would charge every call twice)".into(),
            ));
        }
        seen.push(r);
        if let Some(problem) = r.values_problem() {
            return Err(bad("values", problem));
        }
        if let Some(t) = r.thresholds.iter().find(|t| !THRESHOLDS.contains(t)) {
            return Err(bad(
                "thresholds",
                format!("{t}: percent values from 1 to 1000"),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UsdValue {
    Text(String),
    Float(f64),
    Int(u64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    scope: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    values: Vec<String>,
    period: String,
    hours: Option<u32>,
    time_zone: Option<String>,
    limit_usd: Option<UsdValue>,
    limit_tokens: Option<u64>,
    #[serde(default)]
    thresholds: Vec<u32>,
    on_unpriced: Option<String>,
    fallback_usd_per_million_input: Option<UsdValue>,
    fallback_usd_per_million_output: Option<UsdValue>,
}

/// Where the budgets live, as configured in the file's `[store]` table. Its `Debug` masks
/// the password of `url`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory` (default), `sqlite` or `redis`.
    pub kind: Option<String>,
    /// SQLite file.
    pub path: Option<String>,
    /// Redis URL (`redis://` or `rediss://`, with `:password@`).
    pub url: Option<String>,
    /// PEM file of the CA that signed the Redis server's certificate (`rediss://` with a
    /// private CA; feature `redis-tls`). Default: the system's roots.
    pub ca_file: Option<String>,
    /// Key prefix in Redis.
    pub prefix: Option<String>,
    /// `open` (default) or `closed`: what `reserve` does when the store is down.
    pub on_store_error: Option<String>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field(
                "url",
                &self
                    .url
                    .as_deref()
                    .map(crate::error::redact_url_credentials),
            )
            .field("ca_file", &self.ca_file)
            .field("prefix", &self.prefix)
            .field("on_store_error", &self.on_store_error)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: StoreConfig,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
    /// An application's API-key table (`"KEY" = "user"`, as `examples/budget-guard` reads
    /// it): accepted so one file serves the app and `llmtel budget status`, never read or
    /// kept here (no key can reach a `Debug` or an error through the library).
    #[serde(default, rename = "api_keys")]
    _api_keys: serde::de::IgnoredAny,
}

/// Rules and store settings read from a TOML file.
///
/// ```
/// let cfg = llmtel_budget::Config::from_toml_str(r#"
///     [[rule]]
///     name = "per-user-daily"
///     scope = "user"
///     period = "day"
///     time_zone = "Europe/Berlin"
///     limit_usd = "5.00"
///     thresholds = [50, 80, 100]
/// "#).unwrap();
/// assert_eq!(cfg.rules[0].name.as_ref(), "per-user-daily");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// The `[store]` table.
    pub store: StoreConfig,
}

impl Config {
    /// Parses a config.
    ///
    /// # Errors
    /// [`ConfigError`] naming the rule and field at fault.
    pub fn from_toml_str(src: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(src).map_err(|e| {
            let msg = crate::error::redact_url_credentials(e.message());
            // Where: the line and column, and the line's key (`limit_usd = ...`), so the
            // message names what to fix even when the parser's own does not.
            let at = e.span().map(|span| {
                let before = &src[..span.start.min(src.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                // Only a field's name: a bare key of letters, `_`, `-` and `.`, outside a
                // table of keys. A quoted key (`"3f9a..." = "alice"` in `[api_keys]`) or
                // one with digits may be a client's API key, never echoed.
                let in_key_table = src
                    .lines()
                    .take(line - 1)
                    .filter(|l| l.trim_start().starts_with('['))
                    .last()
                    .is_some_and(|h| h.to_ascii_lowercase().contains("key"));
                let key = src
                    .lines()
                    .nth(line - 1)
                    .and_then(|l| l.split_once('='))
                    .map(|(k, _)| k.trim())
                    .filter(|k| {
                        !in_key_table
                            && !k.is_empty()
                            && k.len() <= 32
                            && k.bytes()
                                .all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'-' | b'.'))
                    });
                match key {
                    Some(k) => format!("line {line}, column {column} ({k}): "),
                    None => format!("line {line}, column {column}: "),
                }
            });
            ConfigError::Parse(format!("{}{msg}", at.unwrap_or_default()))
        })?;
        let mut rules = Vec::new();
        for r in raw.rules {
            let bad = |field: &str, msg: String| ConfigError::Rule {
                rule: r.name.clone(),
                field: field.to_string(),
                message: msg,
            };
            let tz = match &r.time_zone {
                None => jiff::tz::TimeZone::UTC,
                Some(name) => jiff::tz::TimeZone::get(name)
                    .map_err(|e| bad("time_zone", format!("unknown time zone {name:?}: {e}")))?,
            };
            let period = match r.period.as_str() {
                "day" | "daily" => Period::Day(tz),
                "week" | "weekly" => Period::Week(tz),
                "month" | "monthly" => Period::Month(tz),
                "lifetime" => Period::Lifetime,
                "rolling" => match r.hours {
                    Some(h) if h > 0 => Period::RollingHours(h),
                    _ => return Err(bad("hours", "a rolling period needs hours >= 1".into())),
                },
                other => {
                    return Err(bad(
                        "period",
                        format!("{other:?}: expected day, week, month, rolling or lifetime"),
                    ));
                }
            };
            let amount = |field: &str, v: Option<UsdValue>| -> Result<Option<Usd>, ConfigError> {
                Ok(match v {
                    None => None,
                    Some(UsdValue::Text(s)) => Some(
                        Usd::parse_decimal(s.trim().trim_start_matches('$'))
                            .ok_or_else(|| bad(field, format!("not an amount: {s:?}")))?,
                    ),
                    Some(UsdValue::Float(f)) => Some(
                        Usd::from_f64(f)
                            .ok_or_else(|| bad(field, format!("not an amount: {f}")))?,
                    ),
                    Some(UsdValue::Int(i)) => {
                        Some(Usd::from_picos(u128::from(i) * 1_000_000_000_000))
                    }
                })
            };
            let usd = amount("limit_usd", r.limit_usd)?;
            let fb_in = amount(
                "fallback_usd_per_million_input",
                r.fallback_usd_per_million_input,
            )?;
            let fb_out = amount(
                "fallback_usd_per_million_output",
                r.fallback_usd_per_million_output,
            )?;
            let on_unpriced = match (r.on_unpriced.as_deref(), fb_in, fb_out) {
                (None | Some("refuse"), None, None) => Unpriced::Refuse,
                (None | Some("fallback"), Some(i), Some(o)) => Unpriced::Fallback {
                    input_per_million: i,
                    output_per_million: o,
                },
                (Some("allow"), None, None) => Unpriced::Allow,
                (None | Some("fallback"), _, _) => {
                    return Err(bad(
                        "on_unpriced",
                        "a fallback price needs both fallback_usd_per_million_input and fallback_usd_per_million_output (e.g. \"2.50\" and \"10\")".into(),
                    ));
                }
                (Some(p @ ("refuse" | "allow")), _, _) => {
                    return Err(bad(
                        "on_unpriced",
                        format!(
                            "{p:?} takes no fallback price: remove fallback_usd_per_million_* or set on_unpriced = \"fallback\""
                        ),
                    ));
                }
                (Some(other), _, _) => {
                    return Err(bad(
                        "on_unpriced",
                        format!(
                            "{other:?}: expected \"refuse\" (default), \"fallback\" (with fallback_usd_per_million_input and _output) or \"allow\""
                        ),
                    ));
                }
            };
            if r.thresholds.iter().any(|t| !THRESHOLDS.contains(t)) {
                return Err(bad("thresholds", "percent values from 1 to 1000".into()));
            }
            let mut rule = Rule::new(&r.name, Scope::parse(&r.scope), period)
                .with_mode(r.mode)
                .with_thresholds(&r.thresholds)
                .with_on_unpriced(on_unpriced);
            rule.values = r.values;
            rule.limits = Limits {
                usd,
                tokens: r.limit_tokens,
            };
            rules.push(rule);
        }
        check_rules(&rules)?;
        Ok(Config {
            rules,
            store: raw.store,
        })
    }

    /// Reads and parses a config file.
    ///
    /// # Errors
    /// [`ConfigError::Io`] or as [`Config::from_toml_str`].
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io(format!("{}: {e}", path.display())))?;
        Config::from_toml_str(&src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntax error on a line of `[api_keys]` named the line's key: a client's API key,
    /// printed by `llmtel budget status` and the collector's start.
    #[test]
    fn a_parse_error_never_echoes_a_key_of_the_api_keys_table() {
        let key = "3f9a0c7d5e1b2a4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a";
        for src in [
            format!("[api_keys]\n\"{key}\" = alice\n"),
            format!("[api_keys]\n{key} = alice\n"),
        ] {
            let e = Config::from_toml_str(&src).expect_err("not TOML");
            assert!(!e.to_string().contains("3f9a0c"), "{e}");
            assert!(e.to_string().contains("line 2"), "{e}");
        }
        // A field's name is still named.
        let e = Config::from_toml_str("[[rule]]\nname = \"x\"\nlimit_usd = five\n")
            .expect_err("not TOML");
        assert!(e.to_string().contains("(limit_usd)"), "{e}");
    }

    #[test]
    fn an_apps_api_key_table_is_accepted_and_never_kept() {
        let key = format!("demo-key-{}", "q".repeat(24));
        let cfg = Config::from_toml_str(&format!(
            "[api_keys]\n\"{key}\" = \"alice\"\n\n[[rule]]\nname = \"daily\"\nscope = \"user\"\nperiod = \"day\"\nlimit_usd = \"1\"\n"
        ))
        .expect("the [api_keys] table is accepted");
        assert_eq!(cfg.rules.len(), 1);
        assert!(!format!("{cfg:?}").contains(&key));
        // Any other unknown table is still a clear error.
        assert!(Config::from_toml_str("[apikeys]\nx = \"y\"\n").is_err());
    }
}
