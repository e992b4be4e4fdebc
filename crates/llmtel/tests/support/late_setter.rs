//! A layer that adds an attribute to each LLM span at its close, as the budget layer does:
//! `llmtel::close_call`, then `llmtel::set_span_attributes` in the dispatcher it is registered
//! with. Stacked after the OpenTelemetry layer, its attribute reaches the exported span as a
//! late attribute.

// Items of a private module of a test crate are never reachable from outside.
#![allow(unreachable_pub)]

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use tracing::dispatcher::WeakDispatch;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The attribute [`LateSetter`] adds.
pub const KEY: &str = "llmtel.budget.rule";
/// Its value.
pub const VALUE: &str = "per-user-daily";

#[derive(Debug, Default)]
pub struct LateSetter {
    dispatch: OnceLock<WeakDispatch>,
}

impl LateSetter {
    /// Tells llmtel a layer will set late attributes, as `Budgets::layer()` does.
    pub fn new() -> Self {
        llmtel::expect_late_attributes();
        LateSetter::default()
    }
}

impl<S> Layer<S> for LateSetter
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if !llmtel::close_call(&span) {
            return;
        }
        // The registered dispatch, or (inside a `Vec` of layers) the closing thread's.
        let dispatch = self
            .dispatch
            .get()
            .and_then(WeakDispatch::upgrade)
            .unwrap_or_else(|| tracing::dispatcher::get_default(Clone::clone));
        llmtel::set_span_attributes(&span, &dispatch, vec![KeyValue::new(KEY, VALUE)]);
    }
}
