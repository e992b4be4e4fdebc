//! What a call is for: its dimensions, model and provider, and the estimate of its cost.

use std::sync::Arc;

use llmtel::{Dimensions, LlmCall};
use llmtel_pricing::{Call, Catalog, PricingError, Usage, Usd};

use crate::rule::Scope;

/// The dimensions a budget rule can scope on, for one call.
///
/// Every value set through the `with_*` setters or [`CallContext::from_call`] is capped at
/// [`llmtel::MAX_VALUE_BYTES`] by [`llmtel::cap_value`] (a stable hash keeps long values
/// distinct; counted in `llmtel::health().values_truncated`), so a request-controlled
/// value never grows a store key or a map beyond that.
///
/// ```
/// let ctx = llmtel_budget::CallContext::new().with_user("u-1").with_model("gpt-4o-mini");
/// assert_eq!(ctx.dimensions.user.as_deref(), Some("u-1"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallContext {
    /// `user.id`, `llmtel.tenant`, `llmtel.feature`, `session.id`, custom `llmtel.*`.
    pub dimensions: Dimensions,
    /// The model: the one the request names (`gen_ai.request.model`; a recorded call's
    /// response model when its request named none), the value of a [`Scope::Model`] rule.
    pub model: Option<String>,
    /// `gen_ai.provider.name`.
    pub provider: Option<String>,
}

impl CallContext {
    /// No dimension set.
    pub fn new() -> Self {
        CallContext::default()
    }

    /// The context of a closed call (its dimensions, model and provider), every value
    /// capped by [`llmtel::cap_value`].
    ///
    /// The model is the one the request named (`gen_ai.request.model`), else the one the
    /// response names: what a [`Scope::Model`] rule matches, and what a pre-flight
    /// reserves on, so that spend recorded without a reservation lands on the meter the
    /// pre-flight checks (`gpt-4o`, not the dated `gpt-4o-2024-08-06` the provider
    /// answers). The call's price is computed from the response model regardless.
    pub fn from_call(call: &LlmCall) -> Self {
        let mut dimensions = call.dimensions.clone();
        cap_dimensions(&mut dimensions);
        let model = call
            .request_model
            .as_deref()
            .filter(|m| !m.is_empty())
            .or(call.response_model.as_deref());
        CallContext {
            dimensions,
            model: model.map(|m| llmtel::cap_value(m).into_owned()),
            provider: call
                .provider
                .as_deref()
                .map(|p| llmtel::cap_value(p).into_owned()),
        }
    }

    /// This context with every value capped by [`llmtel::cap_value`] (what
    /// [`crate::Budgets`] does before a value reaches a store key or a map; the `with_*`
    /// setters and [`CallContext::from_call`] already do it).
    pub fn capped(mut self) -> Self {
        cap_dimensions(&mut self.dimensions);
        cap_opt(&mut self.model);
        cap_opt(&mut self.provider);
        self
    }

    /// Sets `user.id`.
    pub fn with_user(mut self, v: impl Into<String>) -> Self {
        self.dimensions.user = Some(capped(v.into()));
        self
    }

    /// Sets `llmtel.tenant`.
    pub fn with_tenant(mut self, v: impl Into<String>) -> Self {
        self.dimensions.tenant = Some(capped(v.into()));
        self
    }

    /// Sets `llmtel.feature`.
    pub fn with_feature(mut self, v: impl Into<String>) -> Self {
        self.dimensions.feature = Some(capped(v.into()));
        self
    }

    /// Sets `session.id`.
    pub fn with_session(mut self, v: impl Into<String>) -> Self {
        self.dimensions.session = Some(capped(v.into()));
        self
    }

    /// Sets the model.
    pub fn with_model(mut self, v: impl Into<String>) -> Self {
        self.model = Some(llmtel::cap_string(v.into()));
        self
    }

    /// Sets the provider.
    pub fn with_provider(mut self, v: impl Into<String>) -> Self {
        self.provider = Some(llmtel::cap_string(v.into()));
        self
    }

    /// Sets a custom `llmtel.*` attribute (e.g. `llmtel.api_key_id`).
    pub fn with_attribute(mut self, name: &'static str, v: impl Into<String>) -> Self {
        self.dimensions.custom.retain(|(k, _)| *k != name);
        self.dimensions.custom.push((name, capped(v.into())));
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

fn cap_in_place(v: &mut String) {
    if v.len() > llmtel::MAX_VALUE_BYTES {
        *v = llmtel::cap_string(std::mem::take(v));
    }
}

fn cap_opt(v: &mut Option<String>) {
    if let Some(v) = v {
        cap_in_place(v);
    }
}

/// A dimension's value, capped.
fn capped(v: String) -> Arc<str> {
    Arc::from(llmtel::cap_string(v))
}

/// Caps every dimension value (shared values are replaced, not changed in place).
fn cap_dimensions(d: &mut Dimensions) {
    fn cap(v: &mut Arc<str>) {
        if v.len() > llmtel::MAX_VALUE_BYTES {
            *v = Arc::from(llmtel::cap_value(v));
        }
    }
    for v in [&mut d.user, &mut d.tenant, &mut d.feature, &mut d.session]
        .into_iter()
        .flatten()
    {
        cap(v);
    }
    for (_, v) in &mut d.custom {
        cap(v);
    }
}

/// The token counts of a call that has no price (its model is not in the catalog): each
/// rule prices them by its [`crate::Unpriced`] policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpricedTokens {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output tokens (the worst case, `max_tokens`, for a reservation).
    pub output: u64,
}

/// What a call is expected to cost, reserved before it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Expected cost.
    pub usd: Usd,
    /// Expected tokens (input + output).
    pub tokens: u64,
    /// `Some` when the call has no price (unknown model): `usd` is zero and each rule with
    /// a USD limit applies its [`crate::Unpriced`] policy to these tokens.
    pub unpriced: Option<UnpricedTokens>,
}

impl Estimate {
    /// An explicit estimate.
    pub fn new(usd: Usd, tokens: u64) -> Self {
        Estimate {
            usd,
            tokens,
            unpriced: None,
        }
    }

    /// The estimate of a call with no price: `input` and `output` tokens, priced by each
    /// rule's [`crate::Unpriced`] policy (refused by default under a USD limit).
    pub fn unpriced(input: u64, output: u64) -> Self {
        Estimate {
            usd: Usd::ZERO,
            tokens: input.saturating_add(output),
            unpriced: Some(UnpricedTokens { input, output }),
        }
    }

    /// The worst case of a call: `prompt_tokens` in and `max_tokens` out at the model's
    /// prices on `date` (count the prompt with the model's tokenizer, or estimate it, e.g.
    /// bytes / 4). A model priced at zero in the catalog gives a zero USD estimate, which no
    /// USD limit blocks. A model the catalog does not know gives [`Estimate::unpriced`]:
    /// each USD rule then applies its [`crate::Unpriced`] policy (refuse by default).
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
    /// [`PricingError::Overflow`] for absurd token counts.
    pub fn for_model(
        catalog: &Catalog,
        model: &str,
        provider: Option<&str>,
        prompt_tokens: u64,
        max_tokens: u64,
        date: jiff::civil::Date,
    ) -> Result<Estimate, PricingError> {
        let usage = Usage::new(prompt_tokens, max_tokens);
        // Runs on every pre-flight, with a model name the client chose: an unknown name
        // must not cost the name suggestions `Catalog::price` computes for its error (an
        // edit distance against every catalog name: seconds for a name of a few KB).
        let call = Call::on_date(date);
        match catalog.price_call_if_known(model, provider, &usage, &call) {
            Some(Ok(priced)) => Ok(Estimate {
                usd: priced.breakdown.total,
                tokens: prompt_tokens.saturating_add(max_tokens),
                unpriced: None,
            }),
            None | Some(Err(PricingError::UnknownModel { .. })) => {
                Ok(Estimate::unpriced(prompt_tokens, max_tokens))
            }
            Some(Err(e)) => Err(e),
        }
    }
}
