//! Request-controlled scope values (a user id of 1 MB) never grow the memory store: every
//! value is capped by `llmtel::cap_value` before it reaches a key or a map (counted in
//! `llmtel::health().values_truncated`), and each rule keeps a bounded number of distinct
//! values, evicting the least recently used (counted). Sizes are the store's own structure
//! (`MemoryStore::approx_bytes`), not the process's RSS.

use std::sync::Arc;

use llmtel::Usd;
use llmtel_budget::{Budgets, CallContext, Estimate, MemoryStore, Period, Rule, Scope};

const MB: usize = 1 << 20;

fn usd(s: &str) -> Usd {
    Usd::parse_decimal(s).expect("usd")
}

fn rule() -> Rule {
    Rule::new(
        "per-user",
        Scope::User,
        Period::Day(jiff::tz::TimeZone::UTC),
    )
    .with_limit_usd(usd("1"))
}

/// A distinct id of `len` bytes: the distinguishing part is at the end, past any prefix a
/// cap keeps, so only the hash of the whole value tells them apart.
fn long_id(base: &mut String, i: usize) -> &str {
    base.truncate(base.len() - 8);
    base.push_str(&format!("{i:08}"));
    base
}

/// 10,000 reservations with long user ids: 200 of 1 MB and the rest of 32 KiB. (All of
/// 1 MB would hash 10 GB through `cap_value`'s FNV, about 2 minutes in a debug build, over
/// the test time budget; the store's size does not depend on the length past the cap.)
#[test]
fn ten_thousand_reservations_with_huge_user_ids_keep_the_store_small() {
    let store = Arc::new(MemoryStore::new());
    let b = Budgets::builder()
        .with_store(store.clone())
        .with_rule(rule())
        .build();
    let truncated = llmtel::health().values_truncated;
    let mut huge = "u".repeat(MB);
    let mut long = "v".repeat(32 * 1024);
    for i in 0..10_000 {
        let id = if i < 200 {
            long_id(&mut huge, i)
        } else {
            long_id(&mut long, i)
        };
        let ctx = CallContext::new().with_user(id);
        let r = b
            .reserve(&ctx, Estimate::new(usd("0.001"), 10))
            .expect("within budget");
        r.settle(usd("0.001"), 10);
    }
    let moved = llmtel::health().values_truncated - truncated;
    assert!(moved >= 10_000, "values_truncated moved by {moved}");
    assert_eq!(store.meters(), 10_000, "distinct long values stay distinct");
    let bytes = store.approx_bytes();
    // Uncapped this would be over 700 MB (each id in a meter and a bucket key).
    assert!(bytes < 16 * MB, "store holds {bytes} bytes");
    // The same long value maps to the same meter: its spend is found again.
    let ctx = CallContext::new().with_user(long_id(&mut huge, 7));
    let s = &b.status_for(&ctx).expect("status")[0];
    assert_eq!(s.spent, usd("0.001"));
    assert!(s.scope.len() < 300, "{} bytes", s.scope.len());
}

#[test]
fn each_rule_keeps_a_bounded_number_of_values_evicting_the_least_recently_used() {
    let store = Arc::new(MemoryStore::new().with_max_values_per_rule(1_000));
    let b = Budgets::builder()
        .with_store(store.clone())
        .with_rule(rule())
        .build();
    let hot = CallContext::new().with_user("hot-user");
    for i in 0..10_000 {
        // The hot user is used all the time: never the least recently used.
        b.record(&hot, usd("0.00001"), 1);
        let ctx = CallContext::new().with_user(format!("cold-{i}"));
        let r = b
            .reserve(&ctx, Estimate::new(usd("0.001"), 10))
            .expect("within budget");
        r.settle(usd("0.001"), 10);
        assert!(store.meters() <= 1_000, "at {i}: {} meters", store.meters());
    }
    let evicted = b.stats().store_evicted;
    assert!(evicted >= 9_000, "evicted {evicted}");
    // The hot user's spend survived every eviction.
    let s = &b.status_for(&hot).expect("status")[0];
    assert_eq!(s.spent, usd("0.1"));
    // The most recent cold users are still there; the first ones were evicted.
    let last = CallContext::new().with_user("cold-9999");
    assert_eq!(b.status_for(&last).expect("status")[0].spent, usd("0.001"));
    let first = CallContext::new().with_user("cold-0");
    assert_eq!(b.status_for(&first).expect("status")[0].spent, usd("0"));
}
