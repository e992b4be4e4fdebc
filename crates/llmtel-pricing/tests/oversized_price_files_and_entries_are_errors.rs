//! Memory and time bounded by the input: a price file over 32 MiB (or a device that never
//! ends, `LLMTEL_PRICES=/dev/zero`) is an error read no further than that, and an entry may
//! declare at most 64 aliases, a price at most 32 long-context tiers, in TOML or LiteLLM's
//! JSON (more is an error naming the field). Before, `Catalog::load` read any file whole,
//! and the duplicate checks of aliases and tier thresholds compared each with every other.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::collections::HashMap;
use std::path::Path;

use llmtel_pricing::{Catalog, PriceSources};

const LIMIT: u64 = 32 * 1024 * 1024;

fn entry(aliases: usize, tiers: &str) -> String {
    let names: Vec<String> = (0..aliases).map(|i| format!("\"m-{i}\"")).collect();
    format!(
        "[[model]]\nid = \"m\"\nprovider = \"openai\"\naliases = [{}]\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1.0\noutput = 2.0\n{tiers}",
        names.join(", ")
    )
}

fn tiers(table: &str, n: u64) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "[[{table}]]\nabove_input_tokens = {}\ninput = 2.0\noutput = 4.0\n",
                i * 1000
            )
        })
        .collect()
}

#[test]
fn a_price_file_over_32_mib_is_an_error_read_no_further() {
    let dir = std::env::temp_dir().join(format!("llmtel-oversized-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("prices.toml");
    // Sparse: one byte over the limit, without writing 32 MiB.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(LIMIT + 1)
        .unwrap();
    let e = Catalog::load(&path).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        e.contains("prices.toml") && e.contains("file too large (limit 33554432 bytes)"),
        "{e}"
    );
    assert!(e.contains("price file itself"), "{e}");
}

#[test]
fn llmtel_prices_naming_dev_zero_is_a_failure_and_the_builtin_prices_stay() {
    let zero = Path::new("/dev/zero");
    if !zero.exists() {
        return; // not a Unix system
    }
    let e = Catalog::load(zero).unwrap_err().to_string();
    assert!(e.contains("file too large (limit 33554432 bytes)"), "{e}");
    let env = HashMap::from([("LLMTEL_PRICES", "/dev/zero".to_string())]);
    let layered = PriceSources::from_lookup(|k| env.get(k).cloned()).load();
    assert_eq!(layered.failures.len(), 1);
    assert!(
        layered.failures[0].to_string().contains("file too large"),
        "{}",
        layered.failures[0]
    );
    assert!(layered.catalog.get("gpt-4o").is_some());
}

#[test]
fn more_than_64_aliases_is_an_error_naming_the_field() {
    let e = Catalog::from_toml_str(&entry(65, ""), "prices.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`aliases`") && e.contains("65 aliases") && e.contains("64"),
        "{e}"
    );
    let c = Catalog::from_toml_str(&entry(64, ""), "prices.toml").unwrap();
    assert_eq!(c.get("m").unwrap().aliases.len(), 64);
    assert_eq!(c.resolve("m-63", None).unwrap().key, "m");
    // A repeated alias is still found.
    let e = Catalog::from_toml_str(
        "[[model]]\nid = \"m\"\nprovider = \"openai\"\naliases = [\"a\", \"b\", \"a\"]\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1.0\noutput = 2.0\n",
        "prices.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("repeated") && e.contains("\"a\""), "{e}");
}

#[test]
fn more_than_32_long_context_tiers_is_an_error_naming_the_field() {
    let e = Catalog::from_toml_str(&entry(0, &tiers("model.price.tier", 33)), "prices.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`price.tier`") && e.contains("33 long-context tiers") && e.contains("32"),
        "{e}"
    );
    let e = Catalog::from_toml_str(
        &entry(
            0,
            &format!(
                "[model.price.service_tier.priority]\ninput = 2.0\n{}",
                tiers("model.price.service_tier.priority.tier", 33)
            ),
        ),
        "prices.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`price.service_tier.priority.tier`") && e.contains("33 long-context tiers"),
        "{e}"
    );
    let c =
        Catalog::from_toml_str(&entry(0, &tiers("model.price.tier", 32)), "prices.toml").unwrap();
    assert_eq!(c.get("m").unwrap().prices[0].tiers.len(), 32);
    // A repeated threshold is still found.
    let twice = format!(
        "{}{}",
        tiers("model.price.tier", 2),
        tiers("model.price.tier", 1)
    );
    let e = Catalog::from_toml_str(&entry(0, &twice), "prices.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("two tiers above 1000 input tokens"), "{e}");
}

#[test]
fn litellm_entries_with_more_than_32_tiers_are_errors() {
    let ranges: Vec<String> = (0..34)
        .map(|i| {
            format!(
                r#"{{"range": [{}, {}], "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}"#,
                i * 1000,
                (i + 1) * 1000
            )
        })
        .collect();
    let json = format!(
        r#"{{"m": {{"litellm_provider": "openai", "mode": "chat", "tiered_pricing": [{}]}}}}"#,
        ranges.join(", ")
    );
    let e = Catalog::from_litellm_json(&json, "prices.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`tiered_pricing`") && e.contains("33 long-context tiers"),
        "{e}"
    );
    let above: Vec<String> = (1..=33)
        .map(|i| format!(r#""input_cost_per_token_above_{i}k_tokens": 2e-06"#))
        .collect();
    let json = format!(
        r#"{{"m": {{"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, {}}}}}"#,
        above.join(", ")
    );
    let e = Catalog::from_litellm_json(&json, "prices.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("_above_") && e.contains("33 long-context tiers"),
        "{e}"
    );
}
