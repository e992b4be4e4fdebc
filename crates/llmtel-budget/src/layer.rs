//! `BudgetLayer`: records every closed LLM span's spend and writes `llmtel.budget.*`.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use llmtel::LlmCall;
use opentelemetry::KeyValue;
use tracing::dispatcher::WeakDispatch;
use tracing_core::span::Id;
use tracing_core::{Dispatch, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use llmtel::semconv::llmtel as sc;

use crate::budgets::{BoundReservation, Budgets};
use crate::context::{CallContext, UnpricedTokens};

/// A `tracing` layer that records the actual spend of every closed LLM span against the
/// budgets (once, settling the reservation bound to it or to an ancestor span, if any) and
/// writes `llmtel.budget.rule` and `llmtel.budget.utilization` (the most used rule after
/// the call) on the OpenTelemetry span. A call with no cost (its model has no price) under
/// a USD rule is charged by the rule's [`crate::Unpriced`] policy and flagged
/// `llmtel.budget.unpriced = true`.
///
/// **Any order**: add it before or after [`llmtel::layer()`] (whichever closes the span first
/// finishes its [`LlmCall`], [`llmtel::close_call`]) and before or after the OpenTelemetry
/// layer (its attributes go on the live span, or, when that layer has ended it, are added
/// by llmtel's exporter stage on the export thread, [`llmtel::set_span_attributes`]):
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let budgets = llmtel_budget::Budgets::builder().build();
/// let _subscriber = tracing_subscriber::registry()
///     .with(llmtel::layer())
///     .with(budgets.layer());
///     // .with(tracing_opentelemetry::layer().with_tracer(tracer))
/// ```
///
/// With a remote store (SQLite, Redis) the write happens on the budgets' writer thread and
/// the utilization written on the span is the one of the last write this process made.
#[derive(Debug)]
pub struct BudgetLayer {
    budgets: Budgets,
    dispatch: OnceLock<WeakDispatch>,
}

impl Budgets {
    /// The layer that records LLM spans against these budgets.
    pub fn layer(&self) -> BudgetLayer {
        // Its attributes may come after the OpenTelemetry span ended (when it is stacked
        // after that layer): llmtel's exporter stage adds them then.
        llmtel::expect_late_attributes();
        self.inner.layers.fetch_add(1, Ordering::AcqRel);
        BudgetLayer {
            budgets: self.clone(),
            dispatch: OnceLock::new(),
        }
    }
}

impl Drop for BudgetLayer {
    fn drop(&mut self) {
        self.budgets.inner.layers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S> Layer<S> for BudgetLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        // Stacked before llmtel's layer, this layer finishes the call itself.
        llmtel::close_call(&span);
        // What the call spends, read under the extensions' lock, recorded after it.
        let spend = span.extensions().get::<LlmCall>().map(Spend::of);
        let Some(spend) = spend else {
            // A span a reservation was bound to closed without an LLM call: release it.
            if let Some(r) = self.budgets.take_bound(id.into_u64()) {
                self.budgets.release_bound(r);
            }
            return;
        };
        let mut release = None;
        if self.budgets.inner.n_bound.load(Ordering::Relaxed) > 0 {
            for s in span.scope() {
                if let Some(r) = self.budgets.take_bound(s.id().into_u64()) {
                    release = Some(r);
                    break;
                }
            }
        }
        let attributes = self.budgets.record_spend(spend, release);
        if attributes.is_empty() {
            return;
        }
        // The registered dispatch, or (inside a `Vec` of layers, which does not forward the
        // registration) the one closing this span.
        let dispatch = self
            .dispatch
            .get()
            .and_then(WeakDispatch::upgrade)
            .unwrap_or_else(|| tracing::dispatcher::get_default(Clone::clone));
        // On the live span, or through llmtel's exporter stage when it has ended already.
        llmtel::set_span_attributes(&span, &dispatch, attributes);
    }
}

/// Budgets as a [`llmtel::CallSink`]: records the spend of every call handed to it and, on
/// llmtel's export stage, writes `llmtel.budget.rule`, `llmtel.budget.utilization` (and
/// `llmtel.budget.unpriced`) on the call's exported span, as [`BudgetLayer`] does. Added to
/// [`llmtel::builder`] (`with_sink(Arc::new(budgets.sink()))`), the spend is recorded off
/// the request path, from the price the export stage computes for the span anyway, up to
/// the export delay after the call ended (a pre-flight [`Budgets::reserve`] holds its
/// estimate until then, so a check in between still counts it).
///
/// A reservation bound to the call's own span ([`crate::Reservation::bind`], as
/// `BudgetPreflight` binds it) is settled with the call's spend, by the span's
/// OpenTelemetry id. The sink does not see tracing spans, so a reservation bound to an
/// ancestor (the request span) is settled by [`BudgetLayer`] only: use the layer for
/// those. While a [`BudgetLayer`] of the same budgets exists the sink records nothing (the
/// layer records every call), so adding both never counts a call twice.
///
/// ```
/// use std::sync::Arc;
/// let budgets = llmtel_budget::Budgets::builder().build();
/// let _builder = llmtel::builder().with_sink(Arc::new(budgets.sink()));
/// ```
#[derive(Clone, Debug)]
pub struct BudgetSink {
    budgets: Budgets,
}

impl Budgets {
    /// The sink that records LLM calls against these budgets ([`BudgetSink`]).
    pub fn sink(&self) -> BudgetSink {
        BudgetSink {
            budgets: self.clone(),
        }
    }

    /// Records `spend` (settling `release`, the reservation bound to its span, if any) and
    /// returns the `llmtel.budget.*` attributes for the call's span.
    pub(crate) fn record_spend(
        &self,
        spend: Spend,
        release: Option<BoundReservation>,
    ) -> Vec<KeyValue> {
        let Spend {
            cctx,
            cost,
            tokens,
            unpriced,
            priced_model,
        } = spend;
        // Each USD rule applies its `on_unpriced` policy (fallback price, or $0 counted and
        // alerted) to a call whose model has no price: `submit` decides on the meters the
        // call is charged to, the reservation's included (a USD rule may apply only through
        // the dimensions the pre-flight was given).
        let unpriced = unpriced.filter(|_| cost.is_none());
        let (util, unpriced) = self.submit(
            release,
            &cctx,
            cost.unwrap_or(llmtel::Usd::ZERO),
            tokens,
            unpriced,
            priced_model.as_deref(),
        );
        let top = util
            .into_iter()
            .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        let mut attributes = Vec::with_capacity(3);
        if let Some((rule, u)) = top {
            // (The rule's name is shared, not copied.)
            let name = opentelemetry::StringValue::from(self.rules()[rule].name.clone());
            attributes.push(KeyValue::new(sc::BUDGET_RULE, name));
            attributes.push(KeyValue::new(sc::BUDGET_UTILIZATION, u));
        }
        if unpriced {
            attributes.push(KeyValue::new(sc::BUDGET_UNPRICED, true));
        }
        attributes
    }
}

/// What one call spends, as budgets record it.
pub(crate) struct Spend {
    cctx: CallContext,
    cost: Option<llmtel::Usd>,
    tokens: u64,
    /// The call's tokens when its model has no price.
    unpriced: Option<UnpricedTokens>,
    /// The model the call was priced by (its response model), named in the alert when it
    /// has no price; `cctx.model` is the request model, which budget rules match.
    priced_model: Option<String>,
}

impl Spend {
    fn of(call: &LlmCall) -> Spend {
        Spend {
            cctx: CallContext::from_call(call),
            cost: call.cost_usd(),
            tokens: call
                .usage
                .input_tokens
                .saturating_add(call.usage.output_tokens),
            // Only a model with no price is "unpriced": a known model whose call recorded
            // no usage has no cost either, and nothing to charge.
            unpriced: call.unknown_model.then_some(UnpricedTokens {
                input: call.usage.input_tokens,
                output: call.usage.output_tokens,
            }),
            priced_model: call
                .unknown_model
                .then(|| call.model().map(|m| llmtel::cap_value(m).into_owned()))
                .flatten(),
        }
    }
}

impl BudgetSink {
    /// Whether a [`BudgetLayer`] of the same budgets exists: it records every call then.
    fn layer_records(&self) -> bool {
        self.budgets.inner.layers.load(Ordering::Acquire) > 0
    }

    /// Records `call`'s spend, settling the reservation bound to its own span
    /// ([`crate::Reservation::bind`]), unless a [`BudgetLayer`] records it; returns the
    /// `llmtel.budget.*` attributes for its span.
    fn record(&self, call: &LlmCall) -> Vec<KeyValue> {
        if self.layer_records() {
            return Vec::new();
        }
        let release = call.span_id.and_then(|s| self.budgets.take_bound_otel(s));
        self.budgets.record_spend(Spend::of(call), release)
    }
}

impl llmtel::CallSink for BudgetSink {
    fn on_call(&self, call: &LlmCall) {
        let _ = self.record(call);
    }

    fn on_exported_call(&self, call: &LlmCall, span_attributes: &mut Vec<KeyValue>) {
        span_attributes.extend(self.record(call));
    }
}

impl Budgets {
    /// Releases a bound reservation whose span closed without a call to settle it (sent
    /// to the store only when it may hold it).
    pub(crate) fn release_bound(&self, r: BoundReservation) {
        if let Some(release) = r.release() {
            self.release(release);
        }
    }
}
