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

#[test]
fn every_entry_has_a_dated_sourced_price() {
    for e in Catalog::builtin().entries() {
        assert!(!e.prices.is_empty(), "{}", e.id);
        for p in &e.prices {
            assert!(
                p.source
                    .as_deref()
                    .is_some_and(|s| s.starts_with("https://")),
                "{}",
                e.id
            );
            assert!(p.effective >= date(2022, 1, 1), "{}", e.id);
            if matches!(e.kind, ModelKind::Chat) {
                assert!(p.rates.output > 0, "{} has no output price", e.id);
            }
        }
        assert!(
            ["openai", "anthropic", "gcp.gemini"].contains(&e.provider.as_str()),
            "{}: {}",
            e.id,
            e.provider
        );
    }
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
    for e in Catalog::builtin()
        .entries()
        .filter(|e| e.provider == "anthropic")
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
