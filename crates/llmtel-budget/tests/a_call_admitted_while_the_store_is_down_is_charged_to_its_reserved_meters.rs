//! A reservation admitted while the store is down (fail-open: the circuit breaker open, or
//! a reserve the store refused) holds nothing in the store, but the meters it was reserved
//! on still take the call's spend when it is settled through its span: a dimension given
//! only to the pre-flight (`BudgetPreflight::with_context`'s tenant, not on the span) was
//! charged nothing, so an outage let every such call through uncounted.

use std::sync::Arc;
use std::time::Duration;

use llmtel_budget::store::{Amount, BudgetStore, Meter, MeterTotals, ReserveOutcome};
use llmtel_budget::{Budgets, CallContext, Estimate, MemoryStore, Period, Rule, Scope, StoreError};
use tracing_subscriber::prelude::*;

fn usd(s: &str) -> llmtel::Usd {
    llmtel::Usd::parse_decimal(s).expect("usd")
}

/// The memory store, except that every reserve fails: the store unreachable, or refusing.
#[derive(Debug)]
struct ReserveFails {
    inner: MemoryStore,
    rejected: bool,
}

impl BudgetStore for ReserveFails {
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
        Err(if self.rejected {
            StoreError::rejected("memory", "injected: reserve refused")
        } else {
            StoreError::unavailable("memory", "injected: store down")
        })
    }
    fn commit(
        &self,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError> {
        self.inner.commit(release, charges, now_ms)
    }
    fn totals(&self, meters: &[&Meter], now_ms: i64) -> Result<Vec<MeterTotals>, StoreError> {
        self.inner.totals(meters, now_ms)
    }
    fn values(&self, prefix: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        self.inner.values(prefix, now_ms)
    }
    fn fire_once(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.inner.fire_once(key, ttl_ms, now_ms)
    }
}

fn budgets(rejected: bool) -> Budgets {
    Budgets::builder()
        .with_store(Arc::new(ReserveFails {
            inner: MemoryStore::new(),
            rejected,
        }))
        // One failure opens the breaker, for longer than the test runs.
        .with_breaker(1, Duration::from_secs(3600))
        .with_rule(
            Rule::new("per-tenant", Scope::Tenant, Period::Lifetime).with_limit_usd(usd("1")),
        )
        .build()
}

/// Binds `r` to an LLM span that names the user but not the tenant and closes it after a
/// gpt-4o call of 1,000 in and 100 out ($0.0035).
fn settle_through_the_span(b: &Budgets, r: llmtel_budget::Reservation) {
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(b.layer());
    tracing::subscriber::with_default(subscriber, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o", user.id = "u-1");
        r.bind(&span);
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 1_000,
                output_tokens: 100,
                ..Default::default()
            },
        );
    });
}

fn tenant_spent(b: &Budgets) -> llmtel::Usd {
    assert!(b.flush(Duration::from_secs(10)));
    let rows = b
        .status_for(&CallContext::new().with_tenant("acme"))
        .expect("status");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].reserved, usd("0"), "{rows:?}");
    rows[0].spent
}

#[test]
fn a_call_admitted_by_the_open_breaker_is_charged_to_the_pre_flights_tenant() {
    let b = budgets(false);
    let ctx = CallContext::new().with_tenant("acme").with_user("u-1");
    // The store fails: admitted unenforced (this one may have landed: it will be released),
    // and the breaker opens.
    let first = b
        .reserve(&ctx, Estimate::new(usd("0.01"), 0))
        .expect("fail-open");
    assert!(!first.is_enforced());
    assert!(b.stats().breaker_open);
    // Answered by the open breaker, without the store: held nowhere.
    let r = b
        .reserve(&ctx, Estimate::new(usd("0.01"), 0))
        .expect("fail-open");
    assert!(!r.is_enforced());
    assert_eq!(b.stats().short_circuited, 1);
    settle_through_the_span(&b, r);
    drop(first);
    assert_eq!(b.stats().recorded, 1);
    assert_eq!(
        tenant_spent(&b),
        usd("0.0035"),
        "the tenant given only to the pre-flight is charged"
    );
}

#[test]
fn a_call_admitted_after_the_store_refused_its_reserve_is_charged_to_the_pre_flights_tenant() {
    let b = budgets(true);
    let ctx = CallContext::new().with_tenant("acme").with_user("u-1");
    let r = b
        .reserve(&ctx, Estimate::new(usd("0.01"), 0))
        .expect("fail-open");
    assert!(!r.is_enforced());
    settle_through_the_span(&b, r);
    assert_eq!(b.stats().recorded, 1);
    assert_eq!(tenant_spent(&b), usd("0.0035"));
}
