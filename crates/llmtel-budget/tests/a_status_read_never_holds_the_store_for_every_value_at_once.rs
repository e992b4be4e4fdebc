//! A status read (each Prometheus scrape of the budget gauges) over many scope values reads
//! the store's totals a chunk at a time: the memory store's lock, which `reserve` on the
//! request threads takes too, is held for one chunk, not for every value of every rule. The
//! totals are the same as read one value at a time.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use llmtel_budget::store::{Amount, BudgetStore, Meter, MeterTotals, ReserveOutcome};
use llmtel_budget::{Budgets, CallContext, MemoryStore, Period, Rule, Scope, StoreError};

/// The memory store, noting the most meters it was asked to sum in one call.
#[derive(Debug, Default)]
struct Noting {
    store: MemoryStore,
    most: AtomicUsize,
    calls: AtomicUsize,
}

impl BudgetStore for Noting {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn is_remote(&self) -> bool {
        false
    }
    fn reserve(
        &self,
        id: &str,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<ReserveOutcome, StoreError> {
        self.store.reserve(id, charges, now_ms, expires_ms)
    }
    fn commit(
        &self,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError> {
        self.store.commit(release, charges, now_ms)
    }
    fn totals(&self, meters: &[&Meter], now_ms: i64) -> Result<Vec<MeterTotals>, StoreError> {
        self.most.fetch_max(meters.len(), Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.store.totals(meters, now_ms)
    }
    fn fire_once(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.store.fire_once(key, ttl_ms, now_ms)
    }
    fn values(&self, prefix: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        self.store.values(prefix, now_ms)
    }
}

#[test]
fn status_over_thousands_of_users_sums_them_a_chunk_at_a_time_and_exactly() {
    let store = Arc::new(Noting::default());
    let b = Budgets::builder()
        .with_store(store.clone())
        .with_rule(
            Rule::new("per-user", Scope::User, Period::Lifetime)
                .with_limit_usd(llmtel::Usd::parse_decimal("100").unwrap()),
        )
        .build();
    let users = 3_000;
    for i in 0..users {
        let cents = llmtel::Usd::parse_decimal(&format!("0.{:02}", i % 100)).unwrap();
        b.record(&CallContext::new().with_user(format!("u-{i}")), cents, i);
    }
    let status = b.status().unwrap();
    assert_eq!(status.len(), users as usize);
    for row in &status {
        let i: u64 = row
            .scope
            .strip_prefix("user.id=u-")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(row.spent_tokens, i, "{row:?}");
        let cents = llmtel::Usd::parse_decimal(&format!("0.{:02}", i % 100)).unwrap();
        assert_eq!(row.spent, cents, "{row:?}");
    }
    let most = store.most.load(Ordering::SeqCst);
    assert!(
        most <= 512,
        "one store call summed {most} of {users} meters"
    );
    assert!(store.calls.load(Ordering::SeqCst) >= 6);
}

#[test]
fn a_value_holding_only_a_reservation_is_in_the_status() {
    let b = Budgets::builder()
        .with_rule(
            Rule::new(
                "per-user",
                Scope::User,
                Period::Day(jiff::tz::TimeZone::UTC),
            )
            .with_limit_usd(llmtel::Usd::parse_decimal("10").unwrap()),
        )
        .build();
    let ctx = CallContext::new().with_user("first-call");
    let held = b
        .reserve(
            &ctx,
            llmtel_budget::Estimate::new(llmtel::Usd::parse_decimal("0.5").unwrap(), 100),
        )
        .unwrap();
    let status = b.status().unwrap();
    let row = status
        .iter()
        .find(|r| r.scope == "user.id=first-call")
        .unwrap_or_else(|| panic!("not listed: {status:?}"));
    assert_eq!(
        row.reserved,
        llmtel::Usd::parse_decimal("0.5").unwrap(),
        "{row:?}"
    );
    drop(held);
}
