//! Spend limits for LLM calls, enforced before the call and recorded after it.
//!
//! A [`Rule`] limits the spend (USD and/or tokens) of a scope — any span dimension: user,
//! tenant, feature, model, provider, API key or a custom `llmtel.*` attribute, per value or
//! shared — over a period: calendar day, week or month in an IANA time zone, rolling N
//! hours, or lifetime. [`Budgets::reserve`] holds the estimated cost against every rule
//! that applies, atomically, or refuses with [`BudgetExceeded`] (rule, scope, spent, limit,
//! reset time, and its [`ExceededCause`]: a 429 with `Retry-After` from
//! [`BudgetExceeded::retry_after_secs`], none when the estimate alone is over the limit). The [`BudgetLayer`] records the actual cost of
//! every LLM span when it closes and settles the reservation bound to it; [`BudgetSink`]
//! records it off the request path, on llmtel's export stage, and settles a reservation
//! bound to the call's own span. Soft thresholds you
//! configure (`thresholds = [50, 80, 100]`, in percent; none by default) each raise one alert
//! per rule, scope and period through `llmtel-alert`.
//!
//! ```
//! use llmtel_budget::{Budgets, CallContext, Config, Estimate};
//! use tracing_subscriber::prelude::*;
//!
//! let config = Config::from_toml_str(r#"
//!     [[rule]]
//!     name = "per-user-daily"
//!     scope = "user"
//!     period = "day"
//!     time_zone = "Europe/Berlin"
//!     limit_usd = "0.01"
//! "#).unwrap();
//! let budgets = Budgets::builder().with_rules(config.rules).build();
//! let subscriber = tracing_subscriber::registry().with(llmtel::layer()).with(budgets.layer());
//! tracing::subscriber::with_default(subscriber, || {
//!     let ctx = CallContext::new().with_user("u-1").with_model("gpt-4o-mini");
//!     let estimate = Estimate::for_model(llmtel::Catalog::builtin(), "gpt-4o-mini", None,
//!         1_000, 500, jiff::civil::date(2025, 6, 1)).unwrap();
//!     let reservation = budgets.reserve(&ctx, estimate).expect("within budget");
//!     let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini", user.id = "u-1");
//!     reservation.bind(&span); // settled with the actual cost when the span closes
//!     llmtel::record_usage(&span, &llmtel::Usage { input_tokens: 1_000, output_tokens: 200, ..Default::default() });
//! });
//! let status = budgets.status_for(&CallContext::new().with_user("u-1")).unwrap();
//! assert_eq!(status[0].spent_tokens, 1_200);
//! assert_eq!(status[0].reserved, llmtel::Usd::ZERO);
//! ```
//!
//! # Calls with no price
//! A model the price catalog does not know has no cost. Each rule with a USD limit applies
//! its [`Unpriced`] policy to such calls, on reserve and on settle: refuse (the default:
//! [`ReserveError::Unpriced`] names the model and says how to add a price), charge a
//! fallback price per million tokens, or allow at $0. Every such call is counted in
//! [`BudgetStats`], flagged `llmtel.budget.unpriced = true` on its span and alerted once per
//! model. A model priced at zero in the catalog is not "unpriced" and is never refused by a
//! USD limit.
//!
//! # Stores
//! [`MemoryStore`] (default; bounded: capped values, at most 100,000 values a rule, beyond
//! which values with nothing spent are evicted first and values at their limit last),
//! [`SqliteStore`] (feature `sqlite`: durable, survives `kill -9`),
//! [`RedisStore`] (feature `redis`: shared by every process). When the store is down,
//! reservations fail open (configurable fail-closed), spend is buffered (bounded) and
//! written when the store returns, errors are counted and an alert is raised.
//!
//! Faults are bounded: every Redis call has a deadline (a reserve 100 ms), a circuit
//! breaker answers at once by the fail mode after 3 failures in a row
//! ([`BudgetsBuilder::with_breaker`]), so [`Budgets::reserve`] — a synchronous call — never
//! holds an async worker longer than the deadline. Spend writes carry an operation id, so a
//! write replayed after a lost reply is counted once; a reserve that timed out after it may
//! have landed is released when the store answers again. Neither `Debug` nor errors show a
//! store URL's password.
//!
//! # Feature flags
//! - `sqlite` (default): [`SqliteStore`].
//! - `redis` (default): [`RedisStore`].
//! - `redis-tls`: `rediss://` URLs for [`RedisStore`] (rustls with aws-lc-rs, installed as
//!   the process's crypto provider unless one already is), trusting the system's roots or a
//!   private CA (`RedisStore::with_ca_file`, `ca_file` in the `[store]` table).
//! - `prometheus`: [`Budgets::register_metrics`], budget gauges
//!   (`llm_budget_utilization_ratio{budget,scope}`, spent, reserved and limit) on
//!   `llmtel-metrics`' Prometheus endpoint.
//! - `reqwest`: [`BudgetPreflight`], budgets enforced in llmtel-reqwest's middleware before
//!   a call is sent.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod budgets;
mod context;
mod error;
mod layer;
#[cfg(feature = "prometheus")]
mod metrics;
mod period;
#[cfg(feature = "reqwest")]
mod preflight;
mod rule;
mod status;
pub mod store;

pub use budgets::{BudgetStats, Budgets, BudgetsBuilder, Clock, FailMode, Reservation};
pub use context::{CallContext, Estimate, UnpricedTokens};
pub use error::{
    BudgetExceeded, ConfigError, ExceededCause, IN_FLIGHT_RETRY_AFTER_SECS, ReserveError,
    StoreError, redact_url_credentials,
};
pub use layer::{BudgetLayer, BudgetSink};
#[cfg(feature = "prometheus")]
pub use metrics::MAX_SERIES_PER_RULE;
#[cfg(feature = "reqwest")]
pub use preflight::BudgetPreflight;
pub use rule::{Config, Limits, Mode, Period, Rule, Scope, StoreConfig, Unpriced};
pub use status::{RuleStatus, render_json, render_table};
#[cfg(feature = "redis")]
pub use store::RedisStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{BudgetStore, MemoryStore};

use std::sync::Arc;

/// Opens the store a config's `[store]` table names (memory when none), with the
/// `REDIS_URL`-style override `url` when given.
///
/// # Errors
/// [`ConfigError::Store`] for an unknown kind, a missing path or URL, or a store that
/// cannot be opened.
pub fn open_store(cfg: &StoreConfig) -> Result<Arc<dyn BudgetStore>, ConfigError> {
    let bad = |m: String| ConfigError::Store(m);
    match cfg.kind.as_deref().unwrap_or("memory") {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let path = cfg
                .path
                .as_deref()
                .ok_or_else(|| bad("sqlite store needs `path`".into()))?;
            Ok(Arc::new(
                SqliteStore::open(path).map_err(|e| bad(e.to_string()))?,
            ))
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let url = cfg
                .url
                .as_deref()
                .ok_or_else(|| bad("redis store needs `url`".into()))?;
            let mut s = RedisStore::open(url).map_err(|e| bad(e.to_string()))?;
            if let Some(ca) = &cfg.ca_file {
                #[cfg(feature = "redis-tls")]
                {
                    s = s.with_ca_file(ca).map_err(|e| bad(e.to_string()))?;
                }
                #[cfg(not(feature = "redis-tls"))]
                return Err(bad(format!(
                    "ca_file = {ca:?} needs TLS support: enable llmtel-budget's feature `redis-tls`"
                )));
            }
            if let Some(p) = &cfg.prefix {
                s = s.with_prefix(p);
            }
            Ok(Arc::new(s))
        }
        other => Err(bad(format!(
            "unknown store kind {other:?} (memory, sqlite, redis; features sqlite and redis)"
        ))),
    }
}

/// Builds [`Budgets`] from a config file: its rules, its store and its failure mode.
///
/// # Errors
/// [`ConfigError`].
pub fn from_config(cfg: &Config) -> Result<BudgetsBuilder, ConfigError> {
    let store = open_store(&cfg.store)?;
    let fail = match cfg.store.on_store_error.as_deref() {
        None | Some("open") => FailMode::Open,
        Some("closed") => FailMode::Closed,
        Some(o) => {
            return Err(ConfigError::Store(format!(
                "on_store_error = {o:?}: expected \"open\" or \"closed\""
            )));
        }
    };
    Ok(Budgets::builder()
        .with_rules(cfg.rules.clone())
        .with_store(store)
        .with_fail_mode(fail))
}

/// `llmtel budget status --config FILE [--json]`: reads the configured store and renders
/// every rule's status as a table or JSON.
///
/// # Errors
/// [`ConfigError`] for a bad config or an unreachable store.
pub fn status_report(config: &std::path::Path, json: bool) -> Result<String, ConfigError> {
    let cfg = Config::load(config)?;
    let budgets = from_config(&cfg)?.try_build()?;
    let rows = budgets
        .status()
        .map_err(|e| ConfigError::Store(e.to_string()))?;
    Ok(if json {
        render_json(&rows)
    } else {
        render_table(&rows)
    })
}
