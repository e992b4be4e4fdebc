//! Above a tier's input-token threshold, every token of the request is priced at the
//! tier's rates.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use jiff::civil::date;
use llmtel_pricing::{Catalog, Usage, Usd};

fn at() -> jiff::civil::Date {
    date(2025, 10, 1)
}

#[test]
fn claude_sonnet_4_above_200k_prices_input_cache_and_output_at_the_long_rates() {
    // claude-sonnet-4 > 200K: $6 in, $22.50 out, $0.60 cache read per million tokens.
    let usage = Usage {
        input_tokens: 250_000,
        output_tokens: 10_000,
        cache_read_tokens: 50_000,
        ..Usage::default()
    };
    let call = Catalog::builtin()
        .price("claude-sonnet-4-20250514", Some("anthropic"), &usage, at())
        .expect("priced");
    assert_eq!(call.model, "claude-sonnet-4");
    assert_eq!(call.tier_above_input_tokens, Some(200_000));
    // 200_000 uncached × 6_000_000 = 1_200_000_000_000 ($1.20)
    assert_eq!(call.breakdown.input, Usd::from_picos(1_200_000_000_000));
    // 50_000 × 600_000 = 30_000_000_000 ($0.03)
    assert_eq!(call.breakdown.cache_read, Usd::from_picos(30_000_000_000));
    // 10_000 × 22_500_000 = 225_000_000_000 ($0.225)
    assert_eq!(call.breakdown.output, Usd::from_picos(225_000_000_000));
    // $1.20 + $0.03 + $0.225 = $1.455
    assert_eq!(call.breakdown.total.to_string(), "$1.455000");
}

#[test]
fn at_the_threshold_the_base_price_applies() {
    // exactly 200_000 input tokens is not above 200_000: $3/M → $0.60
    let usage = Usage::new(200_000, 0);
    let call = Catalog::builtin()
        .price("claude-sonnet-4", None, &usage, at())
        .expect("priced");
    assert_eq!(call.tier_above_input_tokens, None);
    assert_eq!(call.breakdown.total, Usd::from_picos(600_000_000_000));
}

#[test]
fn exclusive_cache_counts_toward_the_threshold() {
    // Anthropic raw shape (cache > input, so input is exclusive of cache):
    // 50_000 input + 160_000 cache read = 210_000 prompt tokens > 200_000.
    let usage = Usage {
        input_tokens: 50_000,
        cache_read_tokens: 160_000,
        ..Usage::default()
    };
    let call = Catalog::builtin()
        .price("claude-sonnet-4", None, &usage, at())
        .expect("priced");
    assert_eq!(call.tier_above_input_tokens, Some(200_000));
    assert_eq!(call.usage_note, Some("input_tokens_exclusive_of_cache"));
    // 50_000 × 6_000_000 = 300_000_000_000 + 160_000 × 600_000 = 96_000_000_000
    assert_eq!(call.breakdown.total, Usd::from_picos(396_000_000_000));
}

#[test]
fn the_highest_exceeded_tier_wins_and_missing_rates_inherit_the_base() {
    let src = r#"
[[model]]
id = "tiered"
provider = "test"
[[model.price]]
effective = "2025-01-01"
input = 1
output = 2
cache_read = 0.1
[[model.price.tier]]          # listed out of order on purpose
above_input_tokens = 1000
input = 3
output = 6
[[model.price.tier]]
above_input_tokens = 100
input = 2
output = 4
"#;
    let catalog = Catalog::from_toml_str(src, "tiers.toml").expect("parses");
    let usage = Usage {
        input_tokens: 2_000,
        output_tokens: 10,
        cache_read_tokens: 1_000,
        ..Usage::default()
    };
    let call = catalog.price("tiered", None, &usage, at()).expect("priced");
    assert_eq!(call.tier_above_input_tokens, Some(1000));
    // 1_000 uncached × 3_000_000 = 3_000_000_000
    assert_eq!(call.breakdown.input, Usd::from_picos(3_000_000_000));
    // cache read inherits the base 0.1 → 100_000: 1_000 × 100_000 = 100_000_000
    assert_eq!(call.breakdown.cache_read, Usd::from_picos(100_000_000));
    // 10 × 6_000_000 = 60_000_000
    assert_eq!(call.breakdown.output, Usd::from_picos(60_000_000));

    let mid = catalog
        .price("tiered", None, &Usage::new(500, 0), at())
        .expect("priced");
    assert_eq!(mid.tier_above_input_tokens, Some(100));
    // 500 × 2_000_000
    assert_eq!(mid.breakdown.total, Usd::from_picos(1_000_000_000));
}

#[test]
fn gemini_2_5_pro_above_200k_doubles_input() {
    // gemini-2.5-pro: $1.25/M in up to 200K prompt tokens, $2.50/M above.
    let small = Catalog::builtin()
        .price("gemini-2.5-pro", None, &Usage::new(200_000, 0), at())
        .expect("priced");
    // 200_000 × 1_250_000 = 250_000_000_000 ($0.25)
    assert_eq!(small.breakdown.total, Usd::from_picos(250_000_000_000));
    let big = Catalog::builtin()
        .price("gemini-2.5-pro", None, &Usage::new(200_001, 0), at())
        .expect("priced");
    // 200_001 × 2_500_000 = 500_002_500_000
    assert_eq!(big.breakdown.total, Usd::from_picos(500_002_500_000));
}

#[test]
fn claude_4_6_models_lose_their_long_context_tier_from_2026_03_13() {
    // Anthropic made the 1M context of Opus 4.6 and Sonnet 4.6 generally available at
    // standard pricing on 2026-03-13: 300K input and 10K output tokens.
    let usage = Usage::new(300_000, 10_000);
    for (model, before, after) in [
        // 300K × $6 + 10K × $22.50 = $2.025; 300K × $3 + 10K × $15 = $1.05
        ("claude-sonnet-4-6", "$2.025000", "$1.050000"),
        // 300K × $10 + 10K × $37.50 = $3.375; 300K × $5 + 10K × $25 = $1.75
        ("claude-opus-4-6", "$3.375000", "$1.750000"),
    ] {
        let catalog = Catalog::builtin();
        let old = catalog
            .price(model, Some("anthropic"), &usage, date(2026, 3, 12))
            .unwrap();
        assert_eq!(old.tier_above_input_tokens, Some(200_000), "{model}");
        assert_eq!(old.breakdown.total.to_string(), before, "{model}");
        let new = catalog
            .price(model, Some("anthropic"), &usage, date(2026, 3, 13))
            .unwrap();
        assert_eq!(new.tier_above_input_tokens, None, "{model}");
        assert_eq!(new.breakdown.total.to_string(), after, "{model}");
    }
}

#[test]
fn above_a_tier_thinking_tokens_keep_their_ratio_to_the_output_rate() {
    // Base: output $10/M, thinking $5/M. Above 200K: output $15/M, no thinking rate listed
    // (LiteLLM lists none for tiers), so thinking $7.50/M; priority above 200K: output
    // $27/M, thinking $13.50/M. Both were billed at the base $5/M.
    let json = r#"{
        "thinker": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
            "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-05,
            "output_cost_per_reasoning_token": 5e-06,
            "input_cost_per_token_above_200k_tokens": 2e-06,
            "output_cost_per_token_above_200k_tokens": 1.5e-05,
            "input_cost_per_token_priority": 1.8e-06, "output_cost_per_token_priority": 1.8e-05,
            "input_cost_per_token_above_200k_tokens_priority": 3.6e-06,
            "output_cost_per_token_above_200k_tokens_priority": 2.7e-05}
    }"#;
    let toml = r#"
[[model]]
id = "thinker"
provider = "gcp.vertex_ai"
[[model.price]]
effective = "2025-01-01"
input = 1
output = 10
reasoning = 5
[[model.price.tier]]
above_input_tokens = 200000
input = 2
output = 15
"#;
    // 300,000 prompt tokens; 1,000,000 output tokens of which 400,000 thinking.
    let usage = Usage {
        reasoning_tokens: 400_000,
        ..Usage::new(300_000, 1_000_000)
    };
    let priced = |c: &Catalog, tier: &str| {
        let call = llmtel_pricing::Call::at("2025-10-01T08:00:00Z".parse().unwrap())
            .with_service_tier(tier);
        let p = c.price_call("thinker", None, &usage, &call).unwrap();
        assert_eq!(p.tier_above_input_tokens, Some(200_000), "{tier}");
        let b = p.breakdown;
        (
            b.output.to_string(),
            b.reasoning.to_string(),
            b.total.to_string(),
        )
    };
    let litellm = Catalog::from_litellm_json(json, "p.json").unwrap();
    let toml = Catalog::from_toml_str(toml, "p.toml").unwrap();
    // Standard above 200K: 300,000 × $2 + 600,000 × $15 + 400,000 × $7.50.
    let standard = (
        "$9.000000".to_string(),
        "$3.000000".to_string(), // was $2.00
        "$12.600000".to_string(),
    );
    assert_eq!(priced(&litellm, "default"), standard);
    assert_eq!(priced(&toml, "default"), standard);
    // Priority above 200K: 300,000 × $3.60 + 600,000 × $27 + 400,000 × $13.50.
    assert_eq!(
        priced(&litellm, "priority"),
        (
            "$16.200000".to_string(),
            "$5.400000".to_string(), // was $2.00
            "$22.680000".to_string(),
        )
    );
}
