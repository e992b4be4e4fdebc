//! `BudgetLayer`: records every closed LLM span's spend and writes `llmtel.budget.*`.

use std::sync::OnceLock;

use llmtel::LlmCall;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
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
/// **Order**: add it after [`llmtel::layer()`] (it reads the [`LlmCall`] that layer leaves
/// in the span's extensions) and before `tracing_opentelemetry::layer()` (its attributes
/// go on the live OpenTelemetry span, which that layer ends when the span closes):
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
        drop(span);
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
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        if let Some(cx) = tracing_opentelemetry::get_otel_context(&id, &dispatch) {
            let s = cx.span();
            if let Some((rule, u)) = top {
                let name = self.budgets.rules()[rule].name.to_string();
                s.set_attribute(KeyValue::new(sc::BUDGET_RULE, name));
                s.set_attribute(KeyValue::new(sc::BUDGET_UTILIZATION, u));
            }
            if unpriced.is_some() {
                s.set_attribute(KeyValue::new(sc::BUDGET_UNPRICED, true));
            }
        }
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
