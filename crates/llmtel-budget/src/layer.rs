//! `BudgetLayer`: records every closed LLM span's spend and writes `llmtel.budget.*`.

use std::sync::OnceLock;

use llmtel::LlmCall;
use opentelemetry::KeyValue;
use tracing::dispatcher::WeakDispatch;
use tracing_core::span::Id;
use tracing_core::{Dispatch, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use llmtel::semconv::llmtel as sc;

use crate::budgets::Budgets;
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
        BudgetLayer {
            budgets: self.clone(),
            dispatch: OnceLock::new(),
        }
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
        let call = {
            let ext = span.extensions();
            ext.get::<LlmCall>().map(|c| {
                (
                    CallContext::from_call(c),
                    c.cost_usd(),
                    c.usage.input_tokens.saturating_add(c.usage.output_tokens),
                    // Only a model with no price is "unpriced": a known model whose call
                    // recorded no usage has no cost either, and nothing to charge.
                    c.unknown_model.then_some(UnpricedTokens {
                        input: c.usage.input_tokens,
                        output: c.usage.output_tokens,
                    }),
                )
            })
        };
        let Some((cctx, cost, tokens, split)) = call else {
            // A span a reservation was bound to closed without an LLM call: release it.
            if let Some((rid, meters)) = self.budgets.take_bound(id.into_u64()) {
                self.budgets.release_bound(rid, meters);
            }
            return;
        };
        let mut release = None;
        if self
            .budgets
            .inner
            .n_bound
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            for s in span.scope() {
                if let Some(r) = self.budgets.take_bound(s.id().into_u64()) {
                    release = Some(r);
                    break;
                }
            }
        }
        // A call whose model has no price. Each USD rule applies its
        // `on_unpriced` policy (fallback price, or $0 counted and alerted).
        let unpriced = split.filter(|_| cost.is_none() && self.budgets.usd_rule_applies(&cctx));
        let util = self.budgets.submit(
            release,
            &cctx,
            cost.unwrap_or(llmtel::Usd::ZERO),
            tokens,
            unpriced,
        );
        let top = util
            .into_iter()
            .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        if top.is_none() && unpriced.is_none() {
            return;
        }
        // The registered dispatch, or (inside a `Vec` of layers, which does not forward the
        // registration) the one closing this span.
        let dispatch = self
            .dispatch
            .get()
            .and_then(WeakDispatch::upgrade)
            .unwrap_or_else(|| tracing::dispatcher::get_default(Clone::clone));
        let mut attributes = Vec::with_capacity(3);
        if let Some((rule, u)) = top {
            let name = self.budgets.rules()[rule].name.to_string();
            attributes.push(KeyValue::new(sc::BUDGET_RULE, name));
            attributes.push(KeyValue::new(sc::BUDGET_UTILIZATION, u));
        }
        if unpriced.is_some() {
            attributes.push(KeyValue::new(sc::BUDGET_UNPRICED, true));
        }
        // On the live span, or through llmtel's exporter stage when it has ended already.
        llmtel::set_span_attributes(&span, &dispatch, attributes);
    }
}

impl Budgets {
    pub(crate) fn release_bound(
        &self,
        id: String,
        meters: Vec<std::sync::Arc<crate::budgets::Metered>>,
    ) {
        if !meters.is_empty() {
            self.release((id, meters));
        }
    }
}
