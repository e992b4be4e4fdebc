//! README: an unknown model gets "one warning per model". Exporting, `builder()` prices each
//! call on its export thread, which runs under a subscriber that records nothing (its own
//! HTTP calls must not become spans): the warning went nowhere, and its model, marked as
//! warned, was never warned again. It goes to the application's subscriber, the one the
//! builder's layer is installed in.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;

/// The `llmtel` warnings the application's subscriber received, as text.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let m = event.metadata();
        if m.target() == "llmtel" && *m.level() == tracing::Level::WARN {
            let mut text = String::new();
            event.record(&mut Message(&mut text));
            self.0.lock().unwrap().push(text);
        }
    }
}

#[test]
fn an_unknown_model_priced_on_the_export_thread_is_warned_once_to_the_apps_subscriber() {
    const MODEL: &str = "acme-unlisted-export-thread-9";
    let (url, _requests) = support::otlp_http::receiver();
    let (layer, guard) = llmtel::builder()
        .with_endpoint(url)
        .with_protocol(llmtel::Protocol::HttpProtobuf)
        .with_console(false)
        .with_metrics(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    let warnings = Warnings::default();
    // Held while the export thread prices the calls (the app's subscriber lives on).
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(layer)
            .with(warnings.clone()),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..3 {
            let span = llmtel::llm_span!("chat", "acme", MODEL);
            llmtel::record_usage(&span, &llmtel::Usage::new(10, 10));
        }
    });
    // The calls are priced on the export thread, at the latest when they are flushed.
    guard.flush().unwrap();
    let got = warnings.0.lock().unwrap().clone();
    let about_it: Vec<_> = got.iter().filter(|w| w.contains(MODEL)).collect();
    assert_eq!(
        about_it.len(),
        1,
        "one warning for the model, in the app's subscriber: {got:?}"
    );
    assert!(about_it[0].contains("no price for model"), "{about_it:?}");
    drop(guard);
}
