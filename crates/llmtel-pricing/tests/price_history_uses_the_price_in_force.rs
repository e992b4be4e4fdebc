//! A call is priced with the price in force on its date.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use jiff::civil::date;
use llmtel_pricing::{Catalog, Usage, Usd};

const MILLION_EACH: Usage = Usage::new(1_000_000, 1_000_000);

#[test]
fn o3_before_and_after_the_june_2025_price_cut() {
    let c = Catalog::builtin();
    // 2025-04-16: $10 in + $40 out = $50
    let before = c
        .price("o3", None, &MILLION_EACH, date(2025, 6, 9))
        .expect("priced");
    assert_eq!(before.price_date, date(2025, 4, 16));
    assert_eq!(before.breakdown.total, Usd::from_picos(50_000_000_000_000));
    // 2025-06-10: $2 in + $8 out = $10, from the effective day itself
    let after = c
        .price("o3", None, &MILLION_EACH, date(2025, 6, 10))
        .expect("priced");
    assert_eq!(after.price_date, date(2025, 6, 10));
    assert_eq!(after.breakdown.total, Usd::from_picos(10_000_000_000_000));
}

#[test]
fn a_date_before_every_price_uses_the_earliest_price() {
    let call = Catalog::builtin()
        .price("o3", None, &MILLION_EACH, date(2020, 1, 1))
        .expect("priced");
    assert_eq!(call.price_date, date(2025, 4, 16));
    assert_eq!(call.breakdown.total.to_string(), "$50.000000");
}

#[test]
fn gpt_4o_launch_price_then_the_2024_08_06_snapshot_price() {
    let c = Catalog::builtin();
    // until 2024-10-01: $5 + $15 = $20
    let old = c
        .price("gpt-4o", None, &MILLION_EACH, date(2024, 10, 1))
        .expect("priced");
    assert_eq!(old.breakdown.total.to_string(), "$20.000000");
    // from 2024-10-02: $2.50 + $10 = $12.50
    let new = c
        .price("gpt-4o", None, &MILLION_EACH, date(2024, 10, 2))
        .expect("priced");
    assert_eq!(new.breakdown.total.to_string(), "$12.500000");
}

#[test]
fn prices_listed_out_of_order_are_sorted_by_date() {
    let src = r#"
[[model]]
id = "m"
provider = "test"
[[model.price]]
effective = 2025-03-01      # a bare TOML date
input = 3
output = 3
[[model.price]]
effective = "2025-01-01"
input = 1
output = 1
"#;
    let c = Catalog::from_toml_str(src, "history.toml").expect("parses");
    let u = Usage::new(1_000_000, 0);
    let jan = c.price("m", None, &u, date(2025, 2, 28)).expect("priced");
    assert_eq!(jan.breakdown.total, Usd::from_picos(1_000_000_000_000));
    let mar = c.price("m", None, &u, date(2025, 3, 1)).expect("priced");
    assert_eq!(mar.breakdown.total, Usd::from_picos(3_000_000_000_000));
}
