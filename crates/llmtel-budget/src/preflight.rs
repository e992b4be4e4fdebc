//! Budgets enforced by llmtel-reqwest's middleware before a call leaves the process
//! (feature `reqwest`).
//!
//! [`BudgetPreflight`] is an [`llmtel_reqwest::PreflightHook`]: for every LLM call the
//! middleware recognises it reserves the call's worst case against every rule that applies
//! (the app's dimensions come from the spans around the call, [`llmtel::current_dimensions`],
//! or from [`BudgetPreflight::with_context`]) and refuses the call — no network request — with
//! `error.type = "budget_exceeded"` when a limit would be passed. The reservation is bound to
//! the call's span and settled with the call's actual cost by whichever records spend:
//! [`crate::BudgetSink`] on llmtel's export stage (priced once there, nothing more on the
//! request thread; `llmtel::builder().with_sink(Arc::new(budgets.sink()))`) or the
//! [`crate::BudgetLayer`] in the subscriber, when the span closes.
//!
//! The worst case is the request's size in bytes / 4 as prompt tokens (JSON overhead makes
//! this an over-estimate for most prompts) plus `max_tokens` (or
//! [`BudgetPreflight::with_default_max_tokens`], 4,096 by default) at the model's prices. A
//! model the catalog does not know gets a zero USD estimate, so only token limits can refuse
//! it; a zero-priced model is never refused by a USD limit.
//!
//! ```
//! use llmtel_budget::{BudgetPreflight, Budgets, Period, Rule, Scope};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let budgets = Budgets::builder()
//!     .with_rule(
//!         Rule::new("per-user-daily", Scope::User, Period::Day(jiff::tz::TimeZone::UTC))
//!             .with_limit_usd(llmtel::Usd::parse_decimal("5").ok_or("bad amount")?),
//!     )
//!     .build();
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(llmtel_reqwest::LlmMiddleware::new().with_preflight(BudgetPreflight::new(budgets.clone())))
//!     .build();
//! // and llmtel::builder().with_sink(Arc::new(budgets.sink())) (or budgets.layer() in the
//! // subscriber) to record the spend and settle the reservation
//! # let _ = client; Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use llmtel_pricing::Catalog;
use llmtel_reqwest::{PlannedCall, PreflightError, PreflightHook};

use crate::{Budgets, CallContext, Estimate, ReserveError};

type ContextFn = dyn Fn(&PlannedCall) -> CallContext + Send + Sync;

/// llmtel-budget's pre-flight hook for llmtel-reqwest's middleware (see the module docs).
#[derive(Clone)]
pub struct BudgetPreflight {
    budgets: Budgets,
    context: Option<Arc<ContextFn>>,
    catalog: Arc<Catalog>,
    default_max_tokens: u64,
}

impl fmt::Debug for BudgetPreflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetPreflight")
            .field("rules", &self.budgets.rules().len())
            .field("default_max_tokens", &self.default_max_tokens)
            .finish_non_exhaustive()
    }
}

impl BudgetPreflight {
    /// Enforces `budgets` with the built-in price catalog; dimensions from the spans around
    /// each call.
    pub fn new(budgets: Budgets) -> Self {
        BudgetPreflight {
            budgets,
            context: None,
            catalog: Arc::new(Catalog::builtin().clone()),
            default_max_tokens: 4096,
        }
    }

    /// Prices estimates with `catalog` (use the one given to `llmtel::layer()`).
    pub fn with_catalog(mut self, catalog: impl Into<Arc<Catalog>>) -> Self {
        self.catalog = catalog.into();
        self
    }

    /// The output tokens assumed for a request that sets no `max_tokens`.
    pub fn with_default_max_tokens(mut self, n: u64) -> Self {
        self.default_max_tokens = n;
        self
    }

    /// Builds each call's dimensions with `f` instead of reading them from the spans (the
    /// model and provider are filled in from the call when `f` leaves them unset).
    pub fn with_context(
        mut self,
        f: impl Fn(&PlannedCall) -> CallContext + Send + Sync + 'static,
    ) -> Self {
        self.context = Some(Arc::new(f));
        self
    }

    /// The worst case of `call`: request bytes / 4 in, `max_tokens` out.
    pub fn estimate(&self, call: &PlannedCall) -> Estimate {
        let prompt = (call.request_bytes as u64).div_ceil(4);
        let max_out = call.max_output_tokens.unwrap_or(self.default_max_tokens);
        let today = self.budgets.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        Estimate::for_model(
            &self.catalog,
            &call.model,
            Some(&call.provider),
            prompt,
            max_out,
            today,
        )
        // Only an overflow (absurd token counts) is left: price nothing, count the tokens as
        // a call with no price, so a USD rule's policy still applies.
        .unwrap_or_else(|_| Estimate::unpriced(prompt, max_out))
    }
}

impl PreflightHook for BudgetPreflight {
    fn preflight(&self, call: &PlannedCall) -> Result<(), PreflightError> {
        let mut ctx = match &self.context {
            Some(f) => f(call),
            None => CallContext {
                dimensions: llmtel::current_dimensions(),
                ..CallContext::default()
            },
        };
        ctx.model.get_or_insert_with(|| call.model.clone());
        ctx.provider.get_or_insert_with(|| call.provider.clone());
        match self.budgets.reserve(&ctx, self.estimate(call)) {
            Ok(reservation) => {
                // The middleware asks inside the call's span: the BudgetLayer settles the
                // reservation with the actual cost when that span closes.
                reservation.bind(&tracing::Span::current());
                Ok(())
            }
            Err(ReserveError::Exceeded(e)) => {
                let mut refusal = PreflightError::new("budget_exceeded", e.to_string());
                // None when retrying cannot help (the estimate alone is over the limit):
                // no retry time, so the caller does not retry.
                if let Some(t) = e.retry_at(self.budgets.now()) {
                    refusal = refusal.with_retry_at(std::time::SystemTime::from(t));
                }
                Err(refusal)
            }
            Err(e @ ReserveError::Unpriced { .. }) => {
                Err(PreflightError::new("budget_unpriced_model", e.to_string()))
            }
            Err(e @ ReserveError::StoreUnavailable(_)) => Err(PreflightError::new(
                "budget_store_unavailable",
                format!("{e}; the budgets fail closed: start the store or configure fail-open"),
            )),
        }
    }
}
