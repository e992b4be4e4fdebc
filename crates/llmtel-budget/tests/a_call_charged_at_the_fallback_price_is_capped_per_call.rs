//! A call with no price charged at a rule's fallback price is capped per call like every
//! other amount ($1,000,000 and `llmtel::MAX_TOKENS_PER_CALL` tokens, counted in
//! `BudgetStats::amounts_capped`): its tokens were capped but its fallback price was not,
//! so `record_unpriced`, `Estimate::unpriced` or `settle_unpriced` with an absurd token
//! count charged (or reserved) about $9.2 million (i64::MAX pico-dollars) in one call,
//! saturating the meter for its period, uncounted. Memory, SQLite and real Redis.

mod support;

use std::time::Duration;

use llmtel_budget::{Budgets, CallContext, Estimate, Period, Rule, Scope, Unpriced};
use support::{TestClock, store, usd};

fn capped_per_call(kind: &str) {
    let st = store(kind, "fallback-cap");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = Budgets::builder()
        .with_store(st)
        .with_clock(clock.clock())
        .with_rule(
            Rule::new("life", Scope::Global, Period::Lifetime)
                .with_limit_usd(usd("100000000"))
                .with_on_unpriced(Unpriced::Fallback {
                    input_per_million: usd("1000"),
                    output_per_million: usd("1000"),
                }),
        )
        .build();
    let ctx = CallContext::new();
    let status = || b.status_for(&ctx).expect("status").remove(0);

    // Tokens within the cap, their fallback price ($10 million) over it.
    b.record_unpriced(&ctx, llmtel::MAX_TOKENS_PER_CALL, 0);
    assert!(b.flush(Duration::from_secs(10)), "{kind}");
    let s = status();
    assert_eq!(
        (s.spent, s.spent_tokens),
        (usd("1000000"), llmtel::MAX_TOKENS_PER_CALL),
        "{kind}"
    );
    assert_eq!(b.stats().amounts_capped, 1, "{kind}");

    // A reservation's estimate, and its settle with an absurd count.
    let r = b
        .reserve(&ctx, Estimate::unpriced(u64::MAX, 0))
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    assert_eq!(status().reserved, usd("1000000"), "{kind}");
    assert_eq!(b.stats().amounts_capped, 2, "{kind}");
    r.settle_unpriced(0, u64::MAX);
    assert!(b.flush(Duration::from_secs(10)), "{kind}");
    let s = status();
    assert_eq!((s.spent, s.reserved), (usd("2000000"), usd("0")), "{kind}");
    assert_eq!(b.stats().amounts_capped, 3, "{kind}");

    // The meter goes on counting exactly.
    b.record(&ctx, usd("0.5"), 10);
    assert!(b.flush(Duration::from_secs(10)), "{kind}");
    let s = status();
    assert_eq!(
        (s.spent, s.spent_tokens),
        (usd("2000000.5"), 2 * llmtel::MAX_TOKENS_PER_CALL + 10),
        "{kind}"
    );
    assert_eq!(b.stats().rejected, 0, "{kind}");
}

#[test]
fn memory() {
    capped_per_call("memory");
}

#[test]
fn sqlite() {
    capped_per_call("sqlite");
}

#[test]
fn redis() {
    capped_per_call("redis");
}
