//! An unknown model gets no cost (never a silent zero), a flag, a counter and one warning.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry::Value;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

#[derive(Default)]
struct Warnings(AtomicUsize);

struct CountWarnings(Arc<Warnings>);

impl<S: tracing::Subscriber> Layer<S> for CountWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let m = event.metadata();
        if m.target() == "llmtel" && *m.level() == tracing::Level::WARN {
            self.0.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn unknown_model_has_no_cost_a_flag_a_counter_and_one_warning_per_model() {
    let before = llmtel::health().unknown_model_calls;
    let warnings = Arc::new(Warnings::default());
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    use opentelemetry::trace::TracerProvider as _;
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
        .with(CountWarnings(warnings.clone()));
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            let span = llmtel::llm_span!("chat", "acme", "acme-llm-9000");
            llmtel::record_usage(
                &span,
                &llmtel::Usage {
                    input_tokens: 10,
                    output_tokens: 10,
                    ..Default::default()
                },
            );
        }
        let span = llmtel::llm_span!("chat", "acme", "acme-llm-9001");
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 10,
                output_tokens: 10,
                ..Default::default()
            },
        );
    });
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 4);
    for s in &spans {
        assert!(
            attr(s, "gen_ai.usage.cost").is_none(),
            "no cost, not a zero"
        );
        assert_eq!(
            attr(s, "llmtel.cost.unknown_model"),
            Some(&Value::Bool(true))
        );
    }
    assert_eq!(
        warnings.0.load(Ordering::SeqCst),
        2,
        "one warning per model, not per call"
    );
    assert!(llmtel::health().unknown_model_calls >= before + 4);
}

#[test]
fn a_model_priced_at_zero_is_distinct_from_an_unknown_one() {
    let catalog = llmtel::Catalog::from_toml_str(
        r#"
[[model]]
id = "llama-3.1-8b-selfhosted"
provider = "self"
kind = "chat"
[[model.price]]
effective = "2024-07-23"
input = 0
output = 0
"#,
        "test prices",
    )
    .expect("valid price file");
    let merged = std::sync::Arc::new(llmtel::Catalog::builtin().merged_with(&catalog));
    let (layer, calls) = collecting_layer();
    let layer = layer.with_catalog(merged.clone());
    let p = run_exporting(
        layer,
        |e| e.with_catalog(merged),
        || {
            let span = llmtel::llm_span!("chat", "self", "llama-3.1-8b-selfhosted");
            llmtel::record_usage(
                &span,
                &llmtel::Usage {
                    input_tokens: 500,
                    output_tokens: 500,
                    ..Default::default()
                },
            );
        },
    );
    let s = p.span("chat llama-3.1-8b-selfhosted");
    assert_eq!(attr(&s, "gen_ai.usage.cost"), Some(&Value::F64(0.0)));
    assert!(attr(&s, "llmtel.cost.unknown_model").is_none());
    // In process too: a zero cost, not an unknown one.
    let calls = calls.0.lock().unwrap();
    assert_eq!(calls[0].cost_usd(), Some(llmtel::Usd::ZERO));
    assert!(!calls[0].unknown_model);
}
