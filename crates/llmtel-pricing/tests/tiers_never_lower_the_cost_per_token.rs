//! Properties over every entry of the built-in catalog (and, for the sum, of the shipped
//! LiteLLM file): the total is the exact sum of the breakdown for any token counts, and
//! crossing a long-context tier never prices a request below what the lower tier would
//! charge. (LiteLLM's own file has tiers that lower the cache-write rate, Vertex Gemini
//! Pro above 200k; scripts/gen_catalog.py keeps the lower tier's rate there and lists
//! them in the catalog header, so the built-in catalog holds the property.)

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::OnceLock;

use jiff::civil::date;
use llmtel_pricing::{Catalog, ModelEntry, Rates, Usage};
use proptest::prelude::*;

fn entries() -> &'static Vec<ModelEntry> {
    static ALL: OnceLock<Vec<ModelEntry>> = OnceLock::new();
    ALL.get_or_init(|| {
        let litellm =
            Catalog::from_litellm_json(include_str!("data/litellm_model_prices.json"), "litellm")
                .unwrap();
        Catalog::builtin()
            .entries()
            .chain(litellm.entries())
            .cloned()
            .collect()
    })
}

/// (entry, price, tier) for every tier of every price of the built-in catalog
/// (its entries come first in `entries()`).
fn tiered() -> &'static Vec<(usize, usize, usize)> {
    static T: OnceLock<Vec<(usize, usize, usize)>> = OnceLock::new();
    T.get_or_init(|| {
        let mut out = Vec::new();
        for (e, entry) in entries().iter().enumerate().take(Catalog::builtin().len()) {
            for (p, price) in entry.prices.iter().enumerate() {
                for t in 0..price.tiers.len() {
                    out.push((e, p, t));
                }
            }
        }
        out
    })
}

fn usage() -> impl Strategy<Value = Usage> {
    (
        0u64..2_000_000,
        0u64..2_000_000,
        0u64..=100,
        0u64..=100,
        0u64..=100,
    )
        .prop_map(|(input, output, cr, cw, rs)| {
            let cache_read = input * cr / 100;
            let cache_write = (input - cache_read) * cw / 100;
            Usage {
                input_tokens: input,
                output_tokens: output,
                cache_read_tokens: cache_read,
                cache_write_tokens: cache_write,
                reasoning_tokens: output * rs / 100,
            }
        })
}

#[test]
fn there_are_entries_and_tiers_to_check() {
    println!("{} entries, {} tiers", entries().len(), tiered().len());
    assert!(entries().len() > 4000);
    assert!(tiered().len() > 100);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn total_is_the_sum_of_the_breakdown_for_any_entry(i in any::<prop::sample::Index>(), u in usage(), day in 0i32..4000) {
        let e = &entries()[i.index(entries().len())];
        let at = date(2015, 1, 1).checked_add(jiff::Span::new().days(day)).unwrap();
        let price = e.price_at(at).unwrap();
        let (rates, _) = price.rates_for(u.prompt_tokens());
        let (b, _) = rates.cost(&u).unwrap();
        let sum = b.input.picos() + b.output.picos() + b.cache_read.picos()
            + b.cache_write.picos() + b.reasoning.picos();
        prop_assert_eq!(b.total.picos(), sum, "{}", e.id);
    }

    #[test]
    fn crossing_a_tier_never_lowers_the_cost(i in any::<prop::sample::Index>(), u in usage()) {
        let (e, p, t) = tiered()[i.index(tiered().len())];
        let entry = &entries()[e];
        let price = &entry.prices[p];
        let tier = price.tiers[t];
        // The request just crossed this tier's threshold: compare with the rates just below.
        let (upper, applied) = price.rates_for(tier.above_input_tokens.saturating_add(1));
        let (lower, _) = price.rates_for(tier.above_input_tokens);
        prop_assert_eq!(applied, Some(tier.above_input_tokens));
        let cost = |r: &Rates| r.cost(&u).unwrap().0.total.picos();
        prop_assert!(
            cost(&upper) >= cost(&lower),
            "{} above {}: {} < {} for {:?}", entry.id, tier.above_input_tokens, cost(&upper), cost(&lower), u
        );
    }
}

/// Exhaustive over every tier: each effective rate above the threshold is at least the
/// rate just below it, so no usage can cost less per token after crossing.
#[test]
fn every_tier_rate_is_at_least_the_rate_below() {
    let mut bad = Vec::new();
    for &(e, p, t) in tiered() {
        let entry = &entries()[e];
        let price = &entry.prices[p];
        let above = price.tiers[t].above_input_tokens;
        let (u, _) = price.rates_for(above.saturating_add(1));
        let (l, _) = price.rates_for(above);
        let eff = |r: &Rates| {
            [
                r.input,
                r.output,
                r.cache_read.unwrap_or(r.input),
                r.cache_write.unwrap_or(r.input),
                r.reasoning.unwrap_or(r.output),
            ]
        };
        if eff(&u).iter().zip(eff(&l)).any(|(a, b)| *a < b) {
            bad.push(format!(
                "{} above {above}: {:?} < {:?}",
                entry.id,
                eff(&u),
                eff(&l)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} tiers cheaper than below:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
