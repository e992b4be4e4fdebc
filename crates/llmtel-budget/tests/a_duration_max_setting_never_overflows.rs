//! Durations a caller chooses (`Duration::MAX` for "never" or "no deadline") never
//! overflow: a reservation TTL of `Duration::MAX` holds the reservation (it was taken as
//! -1 ms: every reservation expired at once and every call was admitted), `flush` with
//! `Duration::MAX` waits with no deadline (it panicked computing one), a breaker cool-down
//! of `Duration::MAX` keeps the breaker open (it overflowed on the request thread), and the
//! Redis store's timeouts and replay window of `Duration::MAX` work.

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmtel_budget::store::{Amount, BudgetStore, Meter, MeterTotals, ReserveOutcome};
use llmtel_budget::{
    Budgets, CallContext, Estimate, MemoryStore, Period, RedisStore, ReserveError, Rule, Scope,
    StoreError,
};
use support::{TestClock, usd};

fn per_user(limit: &str) -> Rule {
    Rule::new("per-user", Scope::User, Period::Lifetime).with_limit_usd(usd(limit))
}

#[test]
fn a_reservation_ttl_of_duration_max_holds_the_reservation() {
    for kind in ["memory", "sqlite", "redis"] {
        let clock = TestClock::at("2026-06-01T00:00:00Z");
        let b = Budgets::builder()
            .with_store(support::store(kind, "ttl-max"))
            .with_clock(clock.clock())
            .with_reservation_ttl(Duration::MAX)
            .with_rule(per_user("1"))
            .build();
        let ctx = CallContext::new().with_user("u-1");
        // Held, never settled.
        let first = b
            .reserve(&ctx, Estimate::new(usd("0.6"), 0))
            .expect("within budget");
        assert!(first.is_enforced(), "{kind}");
        // $0.60 held + $0.60 > $1.
        match b.reserve(&ctx, Estimate::new(usd("0.6"), 0)) {
            Err(ReserveError::Exceeded(e)) => assert_eq!(e.spent, usd("0.6"), "{kind}: {e:?}"),
            other => panic!("{kind}: expected a refusal, got {other:?}"),
        }
        // Still held a year later.
        clock.advance_secs(365 * 24 * 3600);
        assert!(
            b.reserve(&ctx, Estimate::new(usd("0.6"), 0)).is_err(),
            "{kind}: still held"
        );
        let s = &b.status_for(&ctx).expect("status")[0];
        assert_eq!(s.reserved, usd("0.6"), "{kind}");
        // Settled: the hold goes, the spend stays.
        first.settle(usd("0.5"), 0);
        assert!(b.flush(Duration::from_secs(10)), "{kind}");
        let s = &b.status_for(&ctx).expect("status")[0];
        assert_eq!((s.spent, s.reserved), (usd("0.5"), usd("0")), "{kind}");
    }
}

#[test]
fn flush_with_duration_max_waits_without_a_deadline() {
    for kind in ["memory", "sqlite", "redis"] {
        let b = Budgets::builder()
            .with_store(support::store(kind, "flush-max"))
            .with_rule(per_user("1"))
            .build();
        let ctx = CallContext::new().with_user("u-1");
        b.record(&ctx, usd("0.25"), 10);
        assert!(b.flush(Duration::MAX), "{kind}");
        let s = &b.status_for(&ctx).expect("status")[0];
        assert_eq!(s.spent, usd("0.25"), "{kind}");
    }
}

/// The memory store, except that every reserve fails as if the store were unreachable.
#[derive(Debug)]
struct ReserveDown(MemoryStore);

impl BudgetStore for ReserveDown {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn is_remote(&self) -> bool {
        false
    }
    fn reserve(
        &self,
        _: &str,
        _: &[(&Meter, Amount)],
        _: i64,
        _: i64,
    ) -> Result<ReserveOutcome, StoreError> {
        Err(StoreError::unavailable("memory", "injected: store down"))
    }
    fn commit(
        &self,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError> {
        self.0.commit(release, charges, now_ms)
    }
    fn totals(&self, meters: &[&Meter], now_ms: i64) -> Result<Vec<MeterTotals>, StoreError> {
        self.0.totals(meters, now_ms)
    }
    fn fire_once(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.0.fire_once(key, ttl_ms, now_ms)
    }
}

#[test]
fn a_breaker_cool_down_of_duration_max_keeps_it_open_without_overflowing() {
    let b = Budgets::builder()
        .with_store(Arc::new(ReserveDown(MemoryStore::new())))
        .with_breaker(1, Duration::MAX)
        .with_rule(per_user("1"))
        .build();
    let ctx = CallContext::new().with_user("u-1");
    let first = b
        .reserve(&ctx, Estimate::new(usd("0.1"), 0))
        .expect("fail-open");
    assert!(!first.is_enforced());
    let st = b.stats();
    assert!(st.breaker_open, "{st:?}");
    assert_eq!(st.breaker_trips, 1);
    // Answered by the open breaker, without the store.
    let second = b
        .reserve(&ctx, Estimate::new(usd("0.1"), 0))
        .expect("fail-open");
    assert!(!second.is_enforced());
    assert_eq!(b.stats().short_circuited, 1);
}

#[test]
fn redis_timeouts_and_replay_window_of_duration_max_work() {
    let store = RedisStore::open(&support::redis_url())
        .expect("redis url")
        .with_prefix(&support::unique_prefix("redis-max"))
        .with_timeout(Duration::MAX)
        .with_reserve_timeout(Duration::MAX)
        .with_replay_window(Duration::MAX);
    let b = Budgets::builder()
        .with_store(Arc::new(store))
        .with_reservation_ttl(Duration::MAX)
        .with_rule(per_user("1"))
        .build();
    let ctx = CallContext::new().with_user("u-1");
    let r = b
        .reserve(&ctx, Estimate::new(usd("0.6"), 0))
        .expect("within budget");
    assert!(r.is_enforced());
    r.settle(usd("0.4"), 0);
    assert!(b.flush(Duration::MAX));
    let s = &b.status_for(&ctx).expect("status")[0];
    assert_eq!((s.spent, s.reserved), (usd("0.4"), usd("0")), "{s:?}");
    let st = b.stats();
    assert_eq!(
        (st.store_errors, st.rejected, st.dropped),
        (0, 0, 0),
        "{st:?}"
    );
}
