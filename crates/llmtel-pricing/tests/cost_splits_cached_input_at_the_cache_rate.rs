//! Cached, cache-write and reasoning tokens are priced at their own rates, carved out of
//! the inclusive input and output counts.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use jiff::civil::date;
use llmtel_pricing::{
    Catalog, USAGE_NOTE_BOTH_EXCLUSIVE, USAGE_NOTE_INPUT_EXCLUSIVE_OF_CACHE,
    USAGE_NOTE_OUTPUT_EXCLUSIVE_OF_REASONING, Usage, Usd,
};

const PRICES: &str = r#"
[[model]]
id = "cached-model"
provider = "test"
[[model.price]]
effective = "2025-01-01"
input = 2.00        # 2_000_000 picos per token
output = 8.00       # 8_000_000
cache_read = 0.50   #   500_000
cache_write = 2.50  # 2_500_000

[[model]]
id = "plain-model"
provider = "test"
[[model.price]]
effective = "2025-01-01"
input = "1"         # 1_000_000 picos per token
output = "4"        # 4_000_000
"#;

fn catalog() -> Catalog {
    Catalog::from_toml_str(PRICES, "test.toml").expect("test catalog parses")
}

fn picos(p: u128) -> Usd {
    Usd::from_picos(p)
}

#[test]
fn inclusive_usage_is_split_by_token_class() {
    let usage = Usage {
        input_tokens: 10_000,
        output_tokens: 2_000,
        cache_read_tokens: 6_000,
        cache_write_tokens: 1_000,
        reasoning_tokens: 500,
    };
    let call = catalog()
        .price("cached-model", None, &usage, date(2025, 6, 1))
        .expect("priced");
    let b = call.breakdown;
    // uncached 10_000 - 6_000 - 1_000 = 3_000 × 2_000_000 = 6_000_000_000 ($0.006)
    assert_eq!(b.input, picos(6_000_000_000));
    // 6_000 × 500_000 = 3_000_000_000 ($0.003)
    assert_eq!(b.cache_read, picos(3_000_000_000));
    // 1_000 × 2_500_000 = 2_500_000_000 ($0.0025)
    assert_eq!(b.cache_write, picos(2_500_000_000));
    // reasoning defaults to the output rate: 500 × 8_000_000 = 4_000_000_000 ($0.004)
    assert_eq!(b.reasoning, picos(4_000_000_000));
    // rest of output 1_500 × 8_000_000 = 12_000_000_000 ($0.012)
    assert_eq!(b.output, picos(12_000_000_000));
    // 6 + 3 + 2.5 + 4 + 12 = 27.5e9 picos = $0.0275
    assert_eq!(b.total, picos(27_500_000_000));
    assert_eq!(b.total.to_string(), "$0.027500");
    assert_eq!(call.usage_note, None);
}

#[test]
fn missing_cache_rates_default_to_the_input_rate() {
    let usage = Usage {
        input_tokens: 1_000,
        cache_read_tokens: 400,
        cache_write_tokens: 100,
        ..Usage::default()
    };
    let b = catalog()
        .price("plain-model", None, &usage, date(2025, 6, 1))
        .expect("priced")
        .breakdown;
    // 500 × 1_000_000, 400 × 1_000_000, 100 × 1_000_000
    assert_eq!(b.input, picos(500_000_000));
    assert_eq!(b.cache_read, picos(400_000_000));
    assert_eq!(b.cache_write, picos(100_000_000));
    // = 1_000 tokens × $1/M = $0.001, the same as without cache
    assert_eq!(b.total, picos(1_000_000_000));
}

#[test]
fn cache_larger_than_input_is_read_as_exclusive_of_cache() {
    // Anthropic's raw shape: input_tokens excludes the cache tokens.
    let usage = Usage {
        input_tokens: 1_000,
        cache_read_tokens: 6_000,
        cache_write_tokens: 1_000,
        ..Usage::default()
    };
    let call = catalog()
        .price("cached-model", None, &usage, date(2025, 6, 1))
        .expect("priced");
    let b = call.breakdown;
    // all 1_000 input × 2_000_000 = 2_000_000_000
    assert_eq!(b.input, picos(2_000_000_000));
    assert_eq!(b.cache_read, picos(3_000_000_000));
    assert_eq!(b.cache_write, picos(2_500_000_000));
    // 2 + 3 + 2.5 = 7.5e9
    assert_eq!(b.total, picos(7_500_000_000));
    assert_eq!(call.usage_note, Some(USAGE_NOTE_INPUT_EXCLUSIVE_OF_CACHE));
    assert_eq!(call.usage_note, Some("input_tokens_exclusive_of_cache"));
}

#[test]
fn reasoning_larger_than_output_is_read_as_exclusive_of_reasoning() {
    let usage = Usage {
        output_tokens: 100,
        reasoning_tokens: 500,
        ..Usage::default()
    };
    let call = catalog()
        .price("cached-model", None, &usage, date(2025, 6, 1))
        .expect("priced");
    // 100 × 8_000_000 = 800_000_000 and 500 × 8_000_000 = 4_000_000_000
    assert_eq!(call.breakdown.output, picos(800_000_000));
    assert_eq!(call.breakdown.reasoning, picos(4_000_000_000));
    assert_eq!(call.breakdown.total, picos(4_800_000_000));
    assert_eq!(
        call.usage_note,
        Some(USAGE_NOTE_OUTPUT_EXCLUSIVE_OF_REASONING)
    );

    let both = Usage {
        input_tokens: 1,
        cache_read_tokens: 2,
        ..usage
    };
    let call = catalog()
        .price("cached-model", None, &both, date(2025, 6, 1))
        .expect("priced");
    assert_eq!(call.usage_note, Some(USAGE_NOTE_BOTH_EXCLUSIVE));
}

#[test]
fn builtin_gpt_4o_cached_input_costs_half() {
    // gpt-4o since 2024-10-02: $2.50 in, $1.25 cached, $10 out per million tokens.
    let usage = Usage {
        input_tokens: 1_000_000,
        output_tokens: 0,
        cache_read_tokens: 1_000_000,
        ..Usage::default()
    };
    let call = Catalog::builtin()
        .price("gpt-4o", Some("openai"), &usage, date(2025, 1, 1))
        .expect("priced");
    // 1M cached × $1.25/M = $1.25, nothing uncached
    assert_eq!(call.breakdown.input, Usd::ZERO);
    assert_eq!(call.breakdown.cache_read, picos(1_250_000_000_000));
    assert_eq!(call.breakdown.total.to_string(), "$1.250000");
}

#[test]
fn anthropic_one_hour_cache_writes_are_priced_at_the_one_hour_rate() {
    use llmtel_pricing::{Call, UsageDetails};
    let catalog = Catalog::builtin();
    let price = |usage: &Usage, hour: u64, day: jiff::civil::Date| {
        let details = UsageDetails {
            cache_write_1h_tokens: hour,
            ..UsageDetails::default()
        };
        catalog
            .price_call(
                "claude-sonnet-4-5",
                Some("anthropic"),
                usage,
                &Call::on_date(day).with_details(details),
            )
            .unwrap()
            .breakdown
    };
    let day = date(2025, 11, 1);
    // claude-sonnet-4-5: $3 in, $3.75 5-minute write, $6 1-hour write, $15 out per million.
    let usage = Usage {
        cache_write_tokens: 100_000,
        ..Usage::new(101_000, 500)
    };
    // 1,000 × $3 + 100,000 × $6 + 500 × $15 = 0.003 + 0.60 + 0.0075
    let all_hour = price(&usage, 100_000, day);
    assert_eq!(all_hour.cache_write.to_string(), "$0.600000");
    assert_eq!(all_hour.total.to_string(), "$0.610500");
    // 60,000 of them 1-hour, 40,000 5-minute: 0.36 + 0.15
    let mixed = price(&usage, 60_000, day);
    assert_eq!(mixed.cache_write.to_string(), "$0.510000");
    assert_eq!(mixed.total.to_string(), "$0.520500");
    // None reported: every write at the 5-minute rate, as before.
    assert_eq!(price(&usage, 0, day).total.to_string(), "$0.385500");
    // More 1-hour writes reported than writes: at most the writes.
    assert_eq!(price(&usage, 500_000, day), all_hour);

    // Above 200K input tokens (the long-context tier, $6 in, $22.50 out): the 1-hour write
    // keeps its 2x of the input rate, $12. 200,000 × $6 + 100,000 × $12 + 1,000 × $22.50
    let long = Usage {
        cache_write_tokens: 100_000,
        ..Usage::new(300_000, 1_000)
    };
    let b = price(&long, 100_000, day);
    assert_eq!(b.cache_write.to_string(), "$1.200000");
    assert_eq!(b.total.to_string(), "$2.422500");
}
