//! Issue #14: a price file layered over the built-in catalog (`LLMTEL_PRICES`, or
//! `Builder::with_price_sources`) changes the cost llmtel computes at the next start; a
//! source that cannot be loaded leaves the built-in prices and is counted.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use tracing_subscriber::prelude::*;

#[derive(Debug, Default)]
struct Costs(Mutex<Vec<f64>>);

impl llmtel::CallSink for Costs {
    fn on_call(&self, call: &llmtel::LlmCall) {
        if let Some(c) = call.cost_usd() {
            self.0.lock().unwrap().push(c.as_f64());
        }
    }
}

fn cost_with(sources: llmtel::pricing::PriceSources) -> f64 {
    let costs = Arc::new(Costs::default());
    let (layer, _guard) = llmtel::builder()
        .with_console(false)
        .with_summaries_capacity(0)
        .with_price_sources(sources)
        .with_sink(costs.clone())
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 1_000_000,
                output_tokens: 0,
                ..Default::default()
            },
        );
    });
    let c = costs.0.lock().unwrap();
    assert_eq!(c.len(), 1, "{c:?}");
    c[0]
}

#[test]
fn a_price_file_changes_the_cost_and_a_missing_one_keeps_the_builtin_prices() {
    let dir = std::env::temp_dir().join(format!("llmtel-prices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prices.toml");
    std::fs::write(
        &file,
        r#"
[[model]]
id = "gpt-4o"
provider = "openai"
[[model.price]]
effective = "2024-01-01"
input = 1.00
output = 4.00
"#,
    )
    .unwrap();
    // Built in: $2.50 per million input tokens.
    let builtin = cost_with(llmtel::pricing::PriceSources::default());
    assert!((builtin - 2.5).abs() < 1e-9, "{builtin}");
    // The file's price wins.
    let changed = cost_with(llmtel::pricing::PriceSources::default().with_file(&file));
    assert!((changed - 1.0).abs() < 1e-9, "{changed}");
    // A file that is not there: the built-in price, and the failure counted.
    let before = llmtel::pricing::price_source_failures();
    let missing =
        cost_with(llmtel::pricing::PriceSources::default().with_file(dir.join("nope.toml")));
    assert!((missing - 2.5).abs() < 1e-9, "{missing}");
    assert_eq!(llmtel::pricing::price_source_failures(), before + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_price_file_whose_alias_names_a_builtin_model_still_loads_and_the_alias_is_counted() {
    // The alias is another model's id (the exact id wins): it is left out, said and
    // counted, and the rest of the file prices as written.
    let dir = std::env::temp_dir().join(format!("llmtel-prices-alias-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prices.toml");
    std::fs::write(
        &file,
        r#"
[[model]]
id = "gpt-4o"
provider = "openai"
aliases = ["gpt-4o-mini"]
[[model.price]]
effective = "2024-01-01"
input = 1.00
output = 4.00
"#,
    )
    .unwrap();
    let before = llmtel::pricing::price_source_warnings();
    let changed = cost_with(llmtel::pricing::PriceSources::default().with_file(&file));
    // The file's price: it loaded (it was left out whole for its alias).
    assert!((changed - 1.0).abs() < 1e-9, "{changed}");
    assert_eq!(llmtel::pricing::price_source_warnings(), before + 1);
    let _ = std::fs::remove_dir_all(&dir);
}
