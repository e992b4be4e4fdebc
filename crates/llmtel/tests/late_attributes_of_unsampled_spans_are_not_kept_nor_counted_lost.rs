//! A layer that adds attributes after a span's OpenTelemetry span ended (budgets do) gets
//! them to the exporter through llmtel's table of late attributes. An unsampled span is never
//! exported: its entry waited in the table until pushed out, and was then counted in
//! `late_attributes_dropped`, a loss that never was (at 10 % sampling, nine in ten calls).
#![allow(clippy::unwrap_used)]

mod support;

use tracing_subscriber::prelude::*;

/// Sets an attribute on each closing span, after llmtel's layer and the OpenTelemetry layer
/// closed it (stacked outside them), as the budget layer does.
struct LateSetter(tracing::Dispatch);

impl<S> tracing_subscriber::Layer<S> for LateSetter
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            llmtel::set_span_attributes(
                &span,
                &self.0,
                vec![opentelemetry::KeyValue::new("llmtel.budget.checked", true)],
            );
        }
    }
}

#[test]
fn late_attributes_of_unsampled_spans_are_neither_kept_nor_counted_as_dropped() {
    llmtel::expect_late_attributes();
    let (url, _requests) = support::otlp_http::receiver();
    let (layer, guard) = llmtel::builder()
        .with_console(false)
        .with_metrics(false)
        .with_summaries_capacity(0)
        .with_endpoint(url)
        .with_protocol(llmtel::Protocol::HttpProtobuf)
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let dispatch = tracing::Dispatch::new(subscriber.with(LateSetter(tracing::Dispatch::none())));
    // (The setter needs the dispatch it runs in; `none` stands in: an unsampled span has no
    // live OpenTelemetry span to look up anyway.)
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..(llmtel::MAX_LATE_SPANS + 1_000) {
            let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
            llmtel::record_usage(&span, &llmtel::Usage::new(10, 1));
        }
    });
    drop(guard);
    assert_eq!(llmtel::health().late_attributes_dropped, 0);
}
