//! A meter whose total reached the i64 bound (about $9.2 million, or 9.2e18 tokens) is
//! over any limit, the highest one a rule can have included (a limit past the bound is
//! kept as the bound): it refuses every call that would add to it. Redis compared the sums
//! in Lua doubles, where the bound plus a small amount rounds to the bound: a saturated
//! meter under such a limit admitted small calls. Memory, SQLite and real Redis.

mod support;

use std::time::Duration;

use llmtel_budget::store::{Amount, Meter, ReserveOutcome};
use llmtel_budget::{
    Budgets, CallContext, Estimate, ExceededCause, Period, ReserveError, Rule, Scope,
};
use support::{TestClock, store, usd};

/// Through the budgets: ten calls of the most one call may charge ($1,000,000) saturate
/// a rule limited at $100 million (past the bound); a call of one pico-dollar is refused.
fn through_the_budgets(kind: &str) {
    let st = store(kind, "saturated-budgets");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = Budgets::builder()
        .with_store(st)
        .with_clock(clock.clock())
        .with_rule(
            Rule::new("life", Scope::Global, Period::Lifetime)
                .with_limit_usd(usd("100000000"))
                .with_limit_tokens(u64::MAX),
        )
        .build();
    let ctx = CallContext::new();
    for _ in 0..10 {
        b.record(&ctx, usd("1000000"), 1);
    }
    assert!(b.flush(Duration::from_secs(10)), "{kind}");
    assert_eq!(b.stats().rejected, 0, "{kind}");
    let s = b.status_for(&ctx).expect("status").remove(0);
    assert_eq!(
        s.spent,
        llmtel::Usd::from_picos(i64::MAX as u128),
        "{kind}: saturated"
    );
    for picos in [1, 1000, 1_000_000] {
        match b.reserve(&ctx, Estimate::new(llmtel::Usd::from_picos(picos), 0)) {
            Err(ReserveError::Exceeded(e)) => assert_eq!(e.cause, ExceededCause::Spent, "{kind}"),
            Ok(_) => panic!("{kind}: a saturated meter admitted {picos} pico-dollars"),
            Err(e) => panic!("{kind}: {e}"),
        }
    }
}

/// Through the store: tokens and pico-dollars saturated in the current bucket, and in a
/// rolling meter's two buckets, refuse one more of either under a limit at the bound.
fn through_the_store(kind: &str) {
    let st = store(kind, "saturated-store");
    let now = 1_748_736_000_000;
    let meter = |id: &str, buckets: &[&str]| Meter {
        id: id.into(),
        buckets: buckets.iter().map(|b| format!("{id}\u{1f}{b}")).collect(),
        ttl_ms: 0,
        limit_usd: Some(i64::MAX),
        limit_tokens: Some(i64::MAX),
    };
    let one = meter("one\u{1f}*", &["0"]);
    let two = meter("two\u{1f}*", &["0", "1"]);
    let amt = |usd, tokens| Amount { usd, tokens };
    st.commit(None, &[(&one, amt(i64::MAX - 10, i64::MAX - 10))], now)
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    st.commit(None, &[(&one, amt(100, 100))], now)
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    // Two buckets, each a little over half the bound: their sum is past it.
    let older = Meter {
        buckets: vec![two.buckets[0].clone()],
        ..two.clone()
    };
    let half = i64::MAX / 2 + 10;
    st.commit(None, &[(&older, amt(half, half))], now)
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    st.commit(None, &[(&two, amt(half, half))], now)
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    for m in [&one, &two] {
        for (n, a) in [amt(1, 0), amt(0, 1), amt(1000, 1000)]
            .into_iter()
            .enumerate()
        {
            let out = st
                .reserve(&format!("r{n}"), &[(m, a)], now, now + 60_000)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(
                out,
                ReserveOutcome::Denied(0),
                "{kind}: {} admitted {a:?}",
                m.id
            );
        }
        // Nothing was held by the refusals.
        let t = st.totals(&[m], now).expect("totals");
        assert_eq!(t[0].reserved, Amount::default(), "{kind}: {}", m.id);
    }
}

macro_rules! suite {
    ($kind:ident) => {
        mod $kind {
            #[test]
            fn through_the_budgets() {
                super::through_the_budgets(stringify!($kind));
            }
            #[test]
            fn through_the_store() {
                super::through_the_store(stringify!($kind));
            }
        }
    };
}

suite!(memory);
suite!(sqlite);
suite!(redis);
