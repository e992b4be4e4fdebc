//! LiteLLM's `model_prices_and_context_window.json` loads as is: the whole real file
//! (shipped in tests/data), every pricing field it uses for chat and embedding models,
//! non-token-priced entries skipped with a count, bad values rejected by name.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use jiff::civil::date;
use llmtel_pricing::{Catalog, ModelKind, SkipReason, Usage};

const FILE: &str = include_str!("data/litellm_model_prices.json");
const ORIGIN: &str = "tests/data/litellm_model_prices.json";

fn cost(c: &Catalog, model: &str, usage: Usage) -> String {
    c.price(model, None, &usage, date(2026, 11, 20))
        .unwrap()
        .breakdown
        .total
        .to_string()
}

#[test]
fn the_whole_real_file_parses_and_every_entry_is_loaded_or_skipped() {
    let import = Catalog::import_litellm_json(FILE, ORIGIN).unwrap();
    // Independent count from the JSON itself.
    let root: serde_json::Map<String, serde_json::Value> = serde_json::from_str(FILE).unwrap();
    let modes = [
        "chat",
        "responses",
        "completion",
        "embedding",
        "moderation",
        "image_generation",
        "audio_speech",
        "audio_transcription",
    ];
    let (mut want_loaded, mut want_other_mode, mut want_not_token) = (0, 0, 0);
    for (k, v) in &root {
        if k == "sample_spec" {
            continue;
        }
        let mode = v.get("mode").and_then(|m| m.as_str());
        let token_priced = v.get("input_cost_per_token").is_some_and(|x| !x.is_null())
            || v.get("tiered_pricing")
                .and_then(|t| t.as_array())
                .is_some_and(|t| t.iter().any(|t| t.get("input_cost_per_token").is_some()));
        // Image, speech and transcription entries priced per image, character or second.
        let has = |f: &str| v.get(f).is_some_and(|x| !x.is_null());
        let unit_priced = match mode {
            Some("image_generation") => {
                has("output_cost_per_image")
                    || has("input_cost_per_image")
                    || has("input_cost_per_character")
                    || has("input_cost_per_second")
                    || has("output_cost_per_second")
            }
            Some("audio_speech" | "audio_transcription") => {
                has("input_cost_per_character")
                    || has("input_cost_per_second")
                    || has("output_cost_per_second")
            }
            _ => false,
        };
        let token_priced = token_priced || unit_priced;
        if mode.is_some_and(|m| !modes.contains(&m)) {
            want_other_mode += 1;
        } else if token_priced {
            want_loaded += 1;
        } else {
            want_not_token += 1;
        }
    }
    let count = |r: SkipReason| import.skipped.iter().filter(|(_, x)| *x == r).count();
    println!(
        "LiteLLM file: {} keys, {} loaded, skipped: {} other mode, {} not token-priced",
        root.len(),
        import.catalog.len(),
        count(SkipReason::OtherMode),
        count(SkipReason::NotTokenPriced)
    );
    assert!(root.len() > 3000, "{} keys", root.len());
    assert_eq!(import.catalog.len(), want_loaded);
    assert_eq!(count(SkipReason::OtherMode), want_other_mode);
    assert_eq!(count(SkipReason::NotTokenPriced), want_not_token);
    assert_eq!(count(SkipReason::SampleSpec), 1);
    assert_eq!(import.catalog.len() + import.skipped.len(), root.len());
    // Catalog::load picks JSON by extension.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(ORIGIN);
    assert_eq!(Catalog::load(&path).unwrap().len(), want_loaded);
}

#[test]
fn per_token_prices_cache_and_1h_write_batch_and_limits() {
    let c = Catalog::from_litellm_json(FILE, ORIGIN).unwrap();
    let e = c.get("claude-sonnet-4-5").unwrap();
    assert_eq!(e.provider, "anthropic");
    assert_eq!(e.kind, ModelKind::Chat);
    assert_eq!(e.context_window, Some(200_000));
    let p = &e.prices[0];
    // 3e-06 $/token = 3,000,000 pico-dollars per token = $3 per million.
    assert_eq!(p.rates.input, 3_000_000);
    assert_eq!(p.rates.output, 15_000_000);
    assert_eq!(p.rates.cache_read, Some(300_000));
    assert_eq!(p.rates.cache_write, Some(3_750_000));
    assert_eq!(p.cache_write_1h, Some(6_000_000));
    assert_eq!(p.batch_input, Some(1_500_000));
    assert_eq!(p.batch_output, Some(7_500_000));
    // 10,000 in (6,000 cache read, 1,000 cache write) + 2,000 out:
    // 3,000×$3/M + 6,000×$0.30/M + 1,000×$3.75/M + 2,000×$15/M
    // = 0.009 + 0.0018 + 0.00375 + 0.03 = $0.04455
    let u = Usage {
        input_tokens: 10_000,
        output_tokens: 2_000,
        cache_read_tokens: 6_000,
        cache_write_tokens: 1_000,
        ..Usage::default()
    };
    assert_eq!(cost(&c, "claude-sonnet-4-5", u), "$0.044550");
    // Bedrock cross-region id, listed as is.
    let b = c
        .get("us.anthropic.claude-3-5-sonnet-20241022-v2:0")
        .unwrap();
    assert_eq!(b.provider, "aws.bedrock");
    assert_eq!(b.prices[0].rates.cache_write, Some(3_750_000));
    assert_eq!(c.get("azure/gpt-4o").unwrap().provider, "azure.ai.openai");
    assert_eq!(
        c.get("gemini/gemini-2.5-pro").unwrap().provider,
        "gcp.gemini"
    );
}

#[test]
fn above_200k_tier_prices_the_whole_request() {
    let c = Catalog::from_litellm_json(FILE, ORIGIN).unwrap();
    let t = &c.get("gemini/gemini-2.5-pro").unwrap().prices[0].tiers;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].above_input_tokens, 200_000);
    // At 200,000 prompt tokens: base. 100,000 cached at $0.125/M + 100,000 at $1.25/M
    // + 10,000 out at $10/M = 0.0125 + 0.125 + 0.1 = $0.2375
    let u = |input| Usage {
        input_tokens: input,
        output_tokens: 10_000,
        cache_read_tokens: 100_000,
        ..Usage::default()
    };
    assert_eq!(cost(&c, "gemini/gemini-2.5-pro", u(200_000)), "$0.237500");
    // At 200,001: tier. 100,000 cached at $0.25/M + 100,001 at $2.50/M + 10,000 at $15/M
    // = 0.025 + 0.2500025 + 0.15 = $0.4250025
    assert_eq!(cost(&c, "gemini/gemini-2.5-pro", u(200_001)), "$0.4250025");
}

#[test]
fn tiered_pricing_ranges_with_reasoning() {
    let c = Catalog::from_litellm_json(FILE, ORIGIN).unwrap();
    let id = "dashscope/qwen-plus-2025-07-28";
    let u = |input| Usage {
        input_tokens: input,
        output_tokens: 1_000,
        reasoning_tokens: 400,
        ..Usage::default()
    };
    // 256,000 in at $0.40/M + 600 out at $1.20/M + 400 reasoning at $4/M
    // = 0.1024 + 0.00072 + 0.0016 = $0.10472
    assert_eq!(cost(&c, id, u(256_000)), "$0.104720");
    // 256,001 in at $1.20/M + 600 at $3.60/M + 400 at $12/M
    // = 0.3072012 + 0.00216 + 0.0048 = $0.3141612
    assert_eq!(cost(&c, id, u(256_001)), "$0.3141612");
}

#[test]
fn tier_rates_carry_over_and_tiered_defaults_follow_litellm() {
    let json = r#"{
      "m": {"litellm_provider": "x", "mode": "chat",
            "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "cache_read_input_token_cost": 1e-07,
            "input_cost_per_token_above_128k_tokens": 2e-06,
            "output_cost_per_token_above_128k_tokens": 4e-06,
            "cache_read_input_token_cost_above_200k_tokens": 5e-07,
            "input_cost_per_token_above_200k_tokens_priority": 9e-06},
      "t": {"litellm_provider": "dashscope", "mode": "chat", "output_cost_per_token": 7e-06,
            "tiered_pricing": [
              {"input_cost_per_token": 1e-06, "range": [0, 32000]},
              {"input_cost_per_token": 3e-06, "output_cost_per_token": 9e-06, "range": [32000, 128000]}]},
      "e": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 2e-08},
      "img": {"litellm_provider": "openai", "mode": "rerank", "input_cost_per_token": 5e-06},
      "sec": {"litellm_provider": "x", "mode": "chat", "input_cost_per_second": 0.001}
    }"#;
    let import = Catalog::import_litellm_json(json, "x.json").unwrap();
    let c = &import.catalog;
    assert_eq!(c.len(), 3);
    assert_eq!(
        import.skipped,
        vec![
            ("img".to_string(), SkipReason::OtherMode),
            ("sec".to_string(), SkipReason::NotTokenPriced)
        ]
    );
    let t = &c.get("m").unwrap().prices[0].tiers;
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].above_input_tokens, t[0].input, t[0].output),
        (128_000, 2_000_000, 4_000_000)
    );
    assert_eq!(t[0].cache_read, Some(100_000));
    // the 200k tier lists only cache read: input and output carry over from 128k;
    // the `_priority` key is another service tier, ignored.
    assert_eq!(
        (t[1].above_input_tokens, t[1].input, t[1].output),
        (200_000, 2_000_000, 4_000_000)
    );
    assert_eq!(t[1].cache_read, Some(500_000));
    // tiered_pricing: base output from the model, tier cache rates = the tier's input.
    let p = &c.get("t").unwrap().prices[0];
    assert_eq!((p.rates.input, p.rates.output), (1_000_000, 7_000_000));
    assert_eq!(p.rates.cache_read, Some(1_000_000));
    assert_eq!(p.tiers[0].above_input_tokens, 32_000);
    assert_eq!(
        (p.tiers[0].input, p.tiers[0].output),
        (3_000_000, 9_000_000)
    );
    assert_eq!(p.tiers[0].cache_read, Some(3_000_000));
    assert_eq!(p.tiers[0].reasoning, Some(9_000_000));
    let e = c.get("e").unwrap();
    assert_eq!(
        (e.kind, e.prices[0].rates.input, e.prices[0].rates.output),
        (ModelKind::Embedding, 20_000, 0)
    );
}

#[test]
fn sub_pico_prices_round_half_to_even_at_the_pico() {
    let c = Catalog::from_litellm_json(FILE, ORIGIN).unwrap();
    let r = c.get("morph/morph-dsv4flash").unwrap().prices[0].rates;
    // 1.41953125e-07 $/token = 141,953.125 pico → 141,953; 3.99625e-07 = 399,625 exactly;
    // 3.59375e-08 = 35,937.5 pico → 35,938 (half to even).
    assert_eq!(
        (r.input, r.output, r.cache_read),
        (141_953, 399_625, Some(35_938))
    );
    let json = r#"{"a": {"input_cost_per_token": 2.5e-12, "output_cost_per_token": 1.5e-12}}"#;
    let r = Catalog::from_litellm_json(json, "x")
        .unwrap()
        .get("a")
        .unwrap()
        .prices[0]
        .rates;
    assert_eq!((r.input, r.output), (2, 2));
}

#[test]
fn bad_values_name_the_file_line_entry_and_field() {
    let json = "{\n  \"good\": {\"input_cost_per_token\": 1e-06},\n  \"my-model\": {\n    \"mode\": \"chat\",\n    \"input_cost_per_token\": -1e-06\n  }\n}";
    let e = Catalog::from_litellm_json(json, "prices.json").unwrap_err();
    assert_eq!(
        (e.entry(), e.field(), e.line()),
        (Some("my-model"), Some("input_cost_per_token"), Some(5))
    );
    assert!(
        e.to_string().starts_with(
            "prices.json:5: model `my-model`, field `input_cost_per_token`: negative price"
        ),
        "{e}"
    );
    let e = Catalog::from_litellm_json(r#"{"m": {"input_cost_per_token": "2.5e-06"}}"#, "p.json")
        .unwrap_err();
    assert_eq!(
        (e.entry(), e.field()),
        (Some("m"), Some("input_cost_per_token"))
    );
    assert!(
        e.to_string().contains("expected a number, found a string"),
        "{e}"
    );
    // A per-million price in a per-token file: a wrong unit.
    let e = Catalog::from_litellm_json(r#"{"m": {"input_cost_per_token": 2.5}}"#, "p.json")
        .unwrap_err();
    assert!(e.to_string().contains("wrong unit"), "{e}");
    let e = Catalog::from_litellm_json("{\n\"m\": {\"input_cost_per_token\": 1e-06,}\n}", "p.json")
        .unwrap_err();
    assert_eq!(e.line(), Some(2), "{e}");
    let e = Catalog::from_litellm_json(r#"{"m": [1]}"#, "p.json").unwrap_err();
    assert_eq!(e.entry(), Some("m"));
}
