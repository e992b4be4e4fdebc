//! Properties of the cost arithmetic: additive, monotone, exact, never panicking.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use jiff::civil::date;
use llmtel_pricing::{Catalog, CostBreakdown, PricingError, Rates, Usage, Usd};
use proptest::prelude::*;

/// Consistent usage (parts within their wholes) with counts small enough to add.
fn consistent_usage() -> impl Strategy<Value = Usage> {
    (
        0u64..1 << 40,
        0u64..1 << 40,
        0u64..1 << 40,
        0u64..1 << 40,
        0u64..1 << 40,
    )
        .prop_map(
            |(uncached, cache_read, cache_write, plain_out, reasoning)| Usage {
                input_tokens: uncached + cache_read + cache_write,
                output_tokens: plain_out + reasoning,
                cache_read_tokens: cache_read,
                cache_write_tokens: cache_write,
                reasoning_tokens: reasoning,
            },
        )
}

fn rates() -> impl Strategy<Value = Rates> {
    let rate = 0u64..1_000_000_000; // up to $1000 per million tokens
    (
        rate.clone(),
        rate.clone(),
        proptest::option::of(rate.clone()),
        proptest::option::of(rate.clone()),
        proptest::option::of(rate),
    )
        .prop_map(
            |(input, output, cache_read, cache_write, reasoning)| Rates {
                input,
                output,
                cache_read,
                cache_write,
                reasoning,
            },
        )
}

fn add(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens + b.input_tokens,
        output_tokens: a.output_tokens + b.output_tokens,
        cache_read_tokens: a.cache_read_tokens + b.cache_read_tokens,
        cache_write_tokens: a.cache_write_tokens + b.cache_write_tokens,
        reasoning_tokens: a.reasoning_tokens + b.reasoning_tokens,
    }
}

fn sum(b: &CostBreakdown) -> u128 {
    b.input.picos()
        + b.output.picos()
        + b.cache_read.picos()
        + b.cache_write.picos()
        + b.reasoning.picos()
}

fn cost(r: &Rates, u: &Usage) -> CostBreakdown {
    r.cost(u).expect("small counts do not overflow").0
}

proptest! {
    #[test]
    fn cost_is_additive(r in rates(), a in consistent_usage(), b in consistent_usage()) {
        let (ca, cb, cab) = (cost(&r, &a), cost(&r, &b), cost(&r, &add(a, b)));
        prop_assert_eq!(ca.input.picos() + cb.input.picos(), cab.input.picos());
        prop_assert_eq!(ca.output.picos() + cb.output.picos(), cab.output.picos());
        prop_assert_eq!(ca.cache_read.picos() + cb.cache_read.picos(), cab.cache_read.picos());
        prop_assert_eq!(ca.cache_write.picos() + cb.cache_write.picos(), cab.cache_write.picos());
        prop_assert_eq!(ca.reasoning.picos() + cb.reasoning.picos(), cab.reasoning.picos());
        prop_assert_eq!(ca.total.picos() + cb.total.picos(), cab.total.picos());
    }

    #[test]
    fn total_is_the_sum_of_the_breakdown(r in rates(), u in consistent_usage()) {
        let b = cost(&r, &u);
        prop_assert_eq!(b.total.picos(), sum(&b));
    }

    #[test]
    fn cost_is_monotone_in_every_token_count(
        r in rates(),
        u in consistent_usage(),
        k in 0u64..1 << 20,
        which in 0usize..5,
    ) {
        // One more token of any class (its whole grows with it, keeping usage consistent)
        // never lowers the cost.
        let mut more = u;
        match which {
            0 => more.input_tokens += k,
            1 => more.output_tokens += k,
            2 => { more.cache_read_tokens += k; more.input_tokens += k; }
            3 => { more.cache_write_tokens += k; more.input_tokens += k; }
            _ => { more.reasoning_tokens += k; more.output_tokens += k; }
        }
        prop_assert!(cost(&r, &more).total >= cost(&r, &u).total);
    }

    #[test]
    fn any_usage_prices_or_overflows_without_panicking(
        r in any::<(u64, u64, Option<u64>, Option<u64>, Option<u64>)>(),
        u in any::<(u64, u64, u64, u64, u64)>(),
    ) {
        let rates = Rates { input: r.0, output: r.1, cache_read: r.2, cache_write: r.3, reasoning: r.4 };
        let usage = Usage {
            input_tokens: u.0,
            output_tokens: u.1,
            cache_read_tokens: u.2,
            cache_write_tokens: u.3,
            reasoning_tokens: u.4,
        };
        match rates.cost(&usage) {
            Ok((b, _)) => prop_assert_eq!(b.total.picos(), sum(&b)),
            Err(e) => prop_assert_eq!(e, PricingError::Overflow(usage)),
        }
    }

    #[test]
    fn builtin_models_never_panic_on_huge_counts(
        idx in 0usize..1000,
        u in any::<(u64, u64, u64, u64, u64)>(),
    ) {
        let c = Catalog::builtin();
        let entry = c.entries().nth(idx % c.len()).expect("entry");
        let usage = Usage {
            input_tokens: u.0,
            output_tokens: u.1,
            cache_read_tokens: u.2,
            cache_write_tokens: u.3,
            reasoning_tokens: u.4,
        };
        match c.price(&entry.id, None, &usage, date(2026, 1, 1)) {
            Ok(call) => prop_assert_eq!(call.breakdown.total.picos(), sum(&call.breakdown)),
            Err(e) => prop_assert_eq!(e, PricingError::Overflow(usage)),
        }
    }

    #[test]
    fn decimal_round_trips_through_display(p in any::<u128>()) {
        let text = Usd::from_picos(p).to_string();
        prop_assert_eq!(Usd::parse_decimal(&text), Some(Usd::from_picos(p)));
    }
}

#[test]
fn u64_max_everywhere() {
    let max = Usage {
        input_tokens: u64::MAX,
        output_tokens: u64::MAX,
        cache_read_tokens: u64::MAX,
        cache_write_tokens: u64::MAX,
        reasoning_tokens: u64::MAX,
    };
    let huge = Rates {
        input: u64::MAX,
        output: u64::MAX,
        cache_read: None,
        cache_write: None,
        reasoning: None,
    };
    // Five products of (2^64-1)^2 each: does not fit in u128.
    assert_eq!(huge.cost(&max), Err(PricingError::Overflow(max)));
    // At real rates, u64::MAX tokens still fit: gpt-4o prices without overflow.
    let call = Catalog::builtin()
        .price("gpt-4o", None, &max, date(2025, 1, 1))
        .expect("fits in u128");
    assert_eq!(call.breakdown.total.picos(), sum(&call.breakdown));
}
