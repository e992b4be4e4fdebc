//! The embedded catalog parses (so `Catalog::builtin()` cannot panic), holds the current
//! models of OpenAI, Anthropic and Google, and its prices follow the providers' rules.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use jiff::civil::date;
use llmtel_pricing::{Catalog, ModelKind, Usage, rate_per_million};

const CATALOG: &str = include_str!("../data/catalog.toml");

#[test]
fn the_embedded_file_parses() {
    let c = Catalog::from_toml_str(CATALOG, "data/catalog.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.len(), Catalog::builtin().len());
    assert!(c.len() >= 40, "only {} entries", c.len());
}

#[test]
fn current_models_of_the_three_providers_are_listed() {
    let c = Catalog::builtin();
    let expected = [
        (
            "openai",
            &[
                "gpt-4o",
                "gpt-4o-mini",
                "gpt-4.1",
                "gpt-4.1-mini",
                "gpt-4.1-nano",
                "o1",
                "o1-mini",
                "o3",
                "o3-mini",
                "o4-mini",
                "gpt-5",
                "gpt-5-mini",
                "gpt-5-nano",
                "gpt-5.1",
                "gpt-5.2",
                "gpt-5.4",
                "gpt-5.4-mini",
                "gpt-5.4-nano",
                "gpt-4-turbo",
                "gpt-3.5-turbo",
                "text-embedding-3-small",
                "text-embedding-3-large",
            ][..],
        ),
        (
            "anthropic",
            &[
                "claude-3-haiku",
                "claude-3-5-haiku",
                "claude-3-5-sonnet",
                "claude-3-7-sonnet",
                "claude-sonnet-4",
                "claude-opus-4",
                "claude-opus-4-1",
                "claude-sonnet-4-5",
                "claude-haiku-4-5",
                "claude-opus-4-5",
                "claude-opus-4-6",
                "claude-sonnet-4-6",
            ][..],
        ),
        (
            "gcp.gemini",
            &[
                "gemini-1.5-flash",
                "gemini-1.5-pro",
                "gemini-2.0-flash",
                "gemini-2.0-flash-lite",
                "gemini-2.5-pro",
                "gemini-2.5-flash",
                "gemini-2.5-flash-lite",
                "gemini-3-pro-preview",
            ][..],
        ),
    ];
    for (provider, ids) in expected {
        for id in ids {
            let e = c.get(id).unwrap_or_else(|| panic!("`{id}` missing"));
            assert_eq!(e.provider, provider, "{id}");
        }
    }
}

fn is_curated(e: &llmtel_pricing::ModelEntry) -> bool {
    e.prices.iter().all(|p| {
        p.source
            .as_deref()
            .is_some_and(|s| s.starts_with("https://"))
    })
}

#[test]
fn every_entry_has_a_dated_sourced_price() {
    for e in Catalog::builtin().entries() {
        assert!(!e.prices.is_empty(), "{}", e.id);
        for p in &e.prices {
            let source = p.source.as_deref().unwrap_or_default();
            assert!(
                source.starts_with("https://")
                    || source.starts_with("LiteLLM 1.110.2 model_prices_and_context_window.json"),
                "{}: {source}",
                e.id
            );
            assert!(p.effective >= date(2022, 1, 1), "{}", e.id);
            if is_curated(e) && matches!(e.kind, ModelKind::Chat) {
                assert!(p.rates.output > 0, "{} has no output price", e.id);
            }
        }
    }
}

#[test]
fn at_least_300_entries_across_the_named_providers() {
    let c = Catalog::builtin();
    let mut by_provider: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut by_kind: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in c.entries() {
        *by_provider.entry(e.provider.as_str()).or_default() += 1;
        *by_kind.entry(e.kind.as_str()).or_default() += 1;
    }
    println!(
        "built-in catalog: {} entries, {} providers: {by_provider:?}; kinds: {by_kind:?}",
        c.len(),
        by_provider.len()
    );
    assert!(c.len() >= 300, "{} entries", c.len());
    assert!(by_provider.len() >= 10, "{by_provider:?}");
    // The figures the workspace README gives (its catalog table): regenerating the catalog
    // changes them, and the README with it.
    let readme = "update the catalog figures and table in the workspace README.md";
    assert_eq!((c.len(), by_provider.len()), (1_539, 14), "{readme}");
    let per_unit = ["image_generation", "audio_transcription", "audio_speech"]
        .map(|k| by_kind.get(k).copied().unwrap_or(0));
    assert_eq!(per_unit, [112, 45, 30], "{readme}: {by_kind:?}");
    let expected = [
        ("anthropic", 26),
        ("aws.bedrock", 320),
        ("azure.ai.openai", 129),
        ("cohere", 14),
        ("deepseek", 16),
        ("fireworks", 338),
        ("gcp.gemini", 73),
        ("gcp.vertex_ai", 163),
        ("groq", 10),
        ("mistral_ai", 74),
        ("openai", 169),
        ("perplexity", 82),
        ("together", 72),
        ("x_ai", 53),
    ];
    assert_eq!(
        by_provider
            .iter()
            .map(|(p, n)| (*p, *n))
            .collect::<Vec<_>>(),
        expected,
        "{readme}"
    );
    for p in [
        "openai",
        "anthropic",
        "gcp.gemini",
        "gcp.vertex_ai",
        "mistral_ai",
        "cohere",
        "deepseek",
        "x_ai",
        "aws.bedrock",
        "azure.ai.openai",
        "groq",
        "together",
        "fireworks",
    ] {
        assert!(by_provider.get(p).is_some_and(|n| *n > 0), "no {p} entry");
    }
    for k in ["chat", "embedding", "moderation"] {
        assert!(by_kind.get(k).is_some_and(|n| *n > 0), "no {k} entry");
    }
    // Amazon Nova and Bedrock-hosted Claude and Llama.
    for id in [
        "amazon.nova-pro-v1:0",
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "us.meta.llama3-3-70b-instruct-v1:0",
    ] {
        assert_eq!(
            c.get(id).map(|e| e.provider.as_str()),
            Some("aws.bedrock"),
            "{id}"
        );
    }
}

#[test]
fn curated_history_survives_generation() {
    let c = Catalog::builtin();
    let gpt4o = c.get("gpt-4o").unwrap();
    assert_eq!(gpt4o.prices.len(), 2);
    assert_eq!(gpt4o.prices[0].rates.input, rate_per_million("5").unwrap());
    assert_eq!(
        gpt4o.prices[1].rates.input,
        rate_per_million("2.50").unwrap()
    );
    let o3 = c.get("o3").unwrap();
    assert!(o3.prices.len() >= 2, "o3 keeps its price cut");
    assert!(o3.prices[1].rates.input < o3.prices[0].rates.input);
}

#[test]
fn generated_entries_carry_litellm_prices_limits_and_tiers() {
    let c = Catalog::builtin();
    // azure/gpt-4o in LiteLLM 1.110.2: 2.5e-06 in, 1e-05 out, 1.25e-06 cache read,
    // batch 1.25e-06 / 5e-06, 128,000 input tokens.
    let e = c.get("azure/gpt-4o").unwrap();
    let p = &e.prices[0];
    assert_eq!(e.provider, "azure.ai.openai");
    assert_eq!(p.effective, date(2026, 11, 20));
    assert_eq!((p.rates.input, p.rates.output), (2_500_000, 10_000_000));
    assert_eq!(p.rates.cache_read, Some(1_250_000));
    assert_eq!(
        (p.batch_input, p.batch_output),
        (Some(1_250_000), Some(5_000_000))
    );
    assert_eq!(e.context_window, Some(128_000));
    // A long-context tier (vertex_ai/gemini-2.5-pro: above 200k, $2.50 in / $15 out).
    let t = &c.get("vertex_ai/gemini-2.5-pro").unwrap().prices[0].tiers;
    assert_eq!(t[0].above_input_tokens, 200_000);
    assert_eq!((t[0].input, t[0].output), (2_500_000, 15_000_000));
    let emb = c.get("azure/text-embedding-3-small").unwrap();
    assert_eq!(emb.kind, ModelKind::Embedding);
}

#[test]
fn gpt_4o_is_2_50_in_and_10_out() {
    let e = Catalog::builtin().get("gpt-4o").expect("gpt-4o");
    let p = e.price_at(date(2026, 1, 1)).expect("price");
    assert_eq!(p.rates.input, rate_per_million("2.50").expect("rate"));
    assert_eq!(p.rates.output, rate_per_million("10").expect("rate"));
    assert_eq!(p.rates.cache_read, rate_per_million("1.25"));
}

#[test]
fn anthropic_cache_rates_follow_the_published_multipliers() {
    // 5-minute write = 1.25 × input, 1-hour write = 2 × input, read = 0.1 × input,
    // in integer pico-dollars: write × 4 == input × 5, read × 10 == input.
    // Claude 3 Haiku is published with rounded cache prices ($0.30 write, $0.03 read).
    // The curated entries (published prices with a https source); the generated ones are
    // checked against LiteLLM's file by llmtel-cli's cost_agrees_with_every_litellm_chat_price.
    for e in Catalog::builtin()
        .entries()
        .filter(|e| e.provider == "anthropic" && is_curated(e))
    {
        for p in &e.prices {
            let input = p.rates.input;
            if e.id == "claude-3-haiku" {
                assert_eq!(p.rates.cache_write, rate_per_million("0.30"));
                assert_eq!(p.rates.cache_read, rate_per_million("0.03"));
                continue;
            }
            assert_eq!(
                p.rates.cache_write.map(|w| w * 4),
                Some(input * 5),
                "{}",
                e.id
            );
            assert_eq!(p.cache_write_1h, Some(input * 2), "{}", e.id);
            assert_eq!(p.rates.cache_read.map(|r| r * 10), Some(input), "{}", e.id);
            for t in &p.tiers {
                assert_eq!(t.cache_write.map(|w| w * 4), Some(t.input * 5), "{}", e.id);
                assert_eq!(t.cache_read.map(|r| r * 10), Some(t.input), "{}", e.id);
            }
        }
    }
}

#[test]
fn builtin_is_parsed_once_and_prices_a_call() {
    assert!(std::ptr::eq(Catalog::builtin(), Catalog::builtin()));
    let call = Catalog::builtin()
        .price(
            "gpt-4o-mini",
            None,
            &Usage::new(1_000_000, 1_000_000),
            date(2025, 1, 1),
        )
        .expect("priced");
    // $0.15 + $0.60
    assert_eq!(call.breakdown.total.to_string(), "$0.750000");
}
