//! A batch call's cache reads and writes cost the batch cache rate the price lists (LiteLLM
//! `cache_read_input_token_cost_batches` / `cache_creation_input_token_cost_batches`, TOML
//! `batch_cache_read` / `batch_cache_write`); only a price listing none discounts the cache
//! as the input. Before, the listed rate was ignored: Gemini 3.1 Pro lists batch cache reads
//! at the standard $0.20/M, and a million of them were billed $0.10.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Call, Catalog, Usage};

const SHIPPED: &str = include_str!("data/litellm_model_prices.json");

fn cached(c: &Catalog, model: &str, prompt: u64, read: u64, write: u64) -> String {
    let usage = Usage {
        input_tokens: prompt,
        cache_read_tokens: read,
        cache_write_tokens: write,
        ..Usage::default()
    };
    let call = Call::at("2026-11-24T12:00:00Z".parse().unwrap()).with_service_tier("batch");
    let p = c.price_call(model, None, &usage, &call).unwrap();
    assert_eq!(p.service_tier.as_deref(), Some("batch"), "{model}");
    p.breakdown.total.to_string()
}

#[test]
fn gemini_3_1_pro_batch_cache_reads_cost_the_listed_rate() {
    // Standard cache read $0.20/M, batch cache read listed at $0.20/M (batch input: half);
    // above 200k: $0.40/M, batch $0.40/M as listed (cache_read_..._above_200k_tokens_batches).
    let litellm = Catalog::from_litellm_json(SHIPPED, "litellm.json").unwrap();
    for c in [Catalog::builtin(), &litellm] {
        let m = "gemini/gemini-3.1-pro-preview";
        assert_eq!(cached(c, m, 1_000_000, 1_000_000, 0), "$0.400000"); // above 200k
        assert_eq!(cached(c, m, 200_000, 200_000, 0), "$0.040000"); // was $0.02
        assert_eq!(cached(c, m, 200_000, 0, 0), "$0.200000"); // batch input $1/M
    }
}

#[test]
fn azure_gpt_5_4_batch_cache_reads_cost_the_listed_13_cents() {
    // Batch input $1.25/M (half of $2.50), batch cached input listed at $0.13/M, not the
    // $0.125 half of the $0.25 cache read.
    let litellm = Catalog::from_litellm_json(SHIPPED, "litellm.json").unwrap();
    for c in [Catalog::builtin(), &litellm] {
        assert_eq!(cached(c, "azure/gpt-5.4", 100_000, 100_000, 0), "$0.013000");
    }
}

#[test]
fn a_price_file_lists_batch_cache_rates_and_without_them_the_cache_is_discounted() {
    let file = |batch_cache: &str| {
        Catalog::from_toml_str(
            &format!(
                "[[model]]\nid = \"m\"\nprovider = \"anthropic\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 3.0\noutput = 15.0\ncache_read = 0.3\ncache_write = 3.75\nbatch_input = 1.5\nbatch_output = 7.5\n{batch_cache}\n[[model.price.tier]]\nabove_input_tokens = 200000\ninput = 6.0\noutput = 22.5\ncache_read = 0.6\ncache_write = 7.5\n"
            ),
            "prices.toml",
        )
        .unwrap()
    };
    let listed = file("batch_cache_read = 0.2\nbatch_cache_write = 3.0");
    assert_eq!(cached(&listed, "m", 100_000, 100_000, 0), "$0.020000"); // listed $0.20/M
    assert_eq!(cached(&listed, "m", 100_000, 0, 100_000), "$0.300000"); // listed $3/M
    // Above the tier: the listed batch rate keeps its ratio to the tier's cache rate
    // (0.6 x 0.2 / 0.3 = $0.40/M; 7.5 x 3 / 3.75 = $6/M).
    assert_eq!(cached(&listed, "m", 300_000, 300_000, 0), "$0.120000");
    assert_eq!(cached(&listed, "m", 300_000, 0, 300_000), "$1.800000");
    let scaled = file("");
    assert_eq!(cached(&scaled, "m", 100_000, 100_000, 0), "$0.015000"); // 0.3 x 1.5/3
    assert_eq!(cached(&scaled, "m", 100_000, 0, 100_000), "$0.187500"); // 3.75 x 1.5/3
}
