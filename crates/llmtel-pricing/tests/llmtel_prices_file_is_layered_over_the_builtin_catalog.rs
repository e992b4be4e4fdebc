//! `LLMTEL_PRICES`: a price file layered over the built-in catalog at start-up; a bad file
//! leaves the built-in catalog and a counted failure naming the file and the fix.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use llmtel_pricing::{PriceSources, Usage, price_source_failures};

fn cost(sources: &PriceSources) -> (String, Vec<String>) {
    let layered = sources.load();
    let call = layered
        .catalog
        .price(
            "gpt-4o",
            None,
            &Usage::new(1_000_000, 1_000_000),
            jiff::civil::date(2026, 1, 1),
        )
        .unwrap();
    (
        call.breakdown.total.to_string(),
        layered.failures.iter().map(ToString::to_string).collect(),
    )
}

#[test]
fn a_price_file_in_llmtel_prices_changes_the_cost() {
    let file = std::env::temp_dir().join(format!("llmtel-prices-env-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        "[[model]]\nid = \"gpt-4o\"\nprovider = \"openai\"\n[[model.price]]\neffective = \"2024-10-02\"\ninput = 2.0\noutput = 8.0\n",
    )
    .unwrap();
    let env = HashMap::from([("LLMTEL_PRICES", file.display().to_string())]);
    let (total, failures) = cost(&PriceSources::from_lookup(|k| env.get(k).cloned()));
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(total, "$10.000000");
}

#[test]
fn a_bad_price_file_keeps_the_builtin_catalog_and_is_counted() {
    let file = std::env::temp_dir().join(format!("llmtel-prices-bad-{}.toml", std::process::id()));
    std::fs::write(&file, "[[model]]\nid = \"gpt-4o\"\nprovider = \"openai\"\n[[model.price]]\neffective = \"2024-10-02\"\ninput = -2.0\noutput = 8.0\n").unwrap();
    let before = price_source_failures();
    let (total, failures) = cost(&PriceSources::default().with_file(&file));
    assert_eq!(total, "$12.500000");
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains("negative price") && failures[0].contains("price.input"),
        "{}",
        failures[0]
    );
    assert!(price_source_failures() > before);
}

#[cfg(not(feature = "fetch"))]
#[test]
fn a_url_without_the_fetch_feature_says_to_enable_it() {
    let (total, failures) =
        cost(&PriceSources::default().with_url("https://127.0.0.1:9/p.toml?key=sk-1"));
    assert_eq!(total, "$12.500000");
    assert!(
        failures[0].contains("`fetch` feature") && !failures[0].contains("sk-1"),
        "{}",
        failures[0]
    );
}
