//! What a call is for: its dimensions, model and provider, and the estimate of its cost.

use llmtel::{Dimensions, LlmCall};
use llmtel_pricing::{Catalog, PricingError, Usage, Usd};

use crate::rule::Scope;

/// The dimensions a budget rule can scope on, for one call.
///
/// ```
/// let ctx = llmtel_budget::CallContext::new().with_user("u-1").with_model("gpt-4o-mini");
/// assert_eq!(ctx.dimensions.user.as_deref(), Some("u-1"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallContext {
    /// `user.id`, `llmtel.tenant`, `llmtel.feature`, `session.id`, custom `llmtel.*`.
    pub dimensions: Dimensions,
    /// The model.
    pub model: Option<String>,
    /// `gen_ai.provider.name`.
    pub provider: Option<String>,
}

impl CallContext {
    /// No dimension set.
    pub fn new() -> Self {
        CallContext::default()
    }

    /// The context of a closed call (its dimensions, priced model and provider).
    pub fn from_call(call: &LlmCall) -> Self {
        CallContext {
            dimensions: call.dimensions.clone(),
            model: call.model().map(str::to_string),
            provider: call.provider.clone(),
        }
    }

    /// Sets `user.id`.
    pub fn with_user(mut self, v: impl Into<String>) -> Self {
        self.dimensions.user = Some(v.into());
        self
    }

    /// Sets `llmtel.tenant`.
    pub fn with_tenant(mut self, v: impl Into<String>) -> Self {
        self.dimensions.tenant = Some(v.into());
        self
    }

    /// Sets `llmtel.feature`.
    pub fn with_feature(mut self, v: impl Into<String>) -> Self {
        self.dimensions.feature = Some(v.into());
        self
    }

    /// Sets `session.id`.
    pub fn with_session(mut self, v: impl Into<String>) -> Self {
        self.dimensions.session = Some(v.into());
        self
    }

    /// Sets the model.
    pub fn with_model(mut self, v: impl Into<String>) -> Self {
        self.model = Some(v.into());
        self
    }

    /// Sets the provider.
    pub fn with_provider(mut self, v: impl Into<String>) -> Self {
        self.provider = Some(v.into());
        self
    }

    /// Sets a custom `llmtel.*` attribute (e.g. `llmtel.api_key_id`).
    pub fn with_attribute(mut self, name: &'static str, v: impl Into<String>) -> Self {
        self.dimensions.custom.retain(|(k, _)| *k != name);
        self.dimensions.custom.push((name, v.into()));
        self
    }

    /// The value of a scope for this call (`*` for [`Scope::Global`]).
    pub fn value(&self, scope: &Scope) -> Option<&str> {
        match scope {
            Scope::Global => Some("*"),
            Scope::User => self.dimensions.user.as_deref(),
            Scope::Tenant => self.dimensions.tenant.as_deref(),
            Scope::Feature => self.dimensions.feature.as_deref(),
            Scope::Session => self.dimensions.session.as_deref(),
            Scope::ApiKey => self.dimensions.get("llmtel.api_key_id"),
            Scope::Model => self.model.as_deref(),
            Scope::Provider => self.provider.as_deref(),
            Scope::Attribute(a) => self.dimensions.get(a),
        }
    }
}

/// What a call is expected to cost, reserved before it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Expected cost.
    pub usd: Usd,
    /// Expected tokens (input + output).
    pub tokens: u64,
}

impl Estimate {
    /// An explicit estimate.
    pub fn new(usd: Usd, tokens: u64) -> Self {
        Estimate { usd, tokens }
    }

    /// The worst case of a call: `prompt_tokens` in and `max_tokens` out at the model's
    /// prices on `date` (count the prompt with the model's tokenizer, or estimate it, e.g.
    /// bytes / 4). A zero-priced model gives a zero USD estimate, which no USD limit blocks.
    ///
    /// ```
    /// let e = llmtel_budget::Estimate::for_model(
    ///     llmtel::Catalog::builtin(), "gpt-4o", None, 1_000_000, 1_000_000,
    ///     jiff::civil::date(2025, 6, 1)).unwrap();
    /// assert_eq!(e.usd, llmtel::Usd::parse_decimal("12.5").unwrap());
    /// assert_eq!(e.tokens, 2_000_000);
    /// ```
    ///
    /// # Errors
    /// [`PricingError::UnknownModel`] when the catalog does not know the model.
    pub fn for_model(
        catalog: &Catalog,
        model: &str,
        provider: Option<&str>,
        prompt_tokens: u64,
        max_tokens: u64,
        date: jiff::civil::Date,
    ) -> Result<Estimate, PricingError> {
        let usage = Usage::new(prompt_tokens, max_tokens);
        let priced = catalog.price(model, provider, &usage, date)?;
        Ok(Estimate {
            usd: priced.breakdown.total,
            tokens: prompt_tokens.saturating_add(max_tokens),
        })
    }
}
