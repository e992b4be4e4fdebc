//! A refused call's message names the limit that refused it: `used N of M tokens` for a
//! token limit (a token-only rule read "spent $0.12 of $0"; a mixed rule showed the USD
//! figures that did not cause it), `spent $X of $Y` for a USD limit; and when the spend
//! could not be read after the refusal, it says so instead of "spent $0".

use std::sync::Arc;

use llmtel_budget::store::{Amount, BudgetStore, Meter, MeterTotals, ReserveOutcome};
use llmtel_budget::{
    Budgets, CallContext, Estimate, MemoryStore, Period, ReserveError, Rule, Scope, StoreError,
};

fn usd(s: &str) -> llmtel::Usd {
    llmtel::Usd::parse_decimal(s).expect("usd")
}

fn denial(b: &Budgets, ctx: &CallContext, e: Estimate) -> llmtel_budget::BudgetExceeded {
    match b.reserve(ctx, e) {
        Err(ReserveError::Exceeded(e)) => *e,
        Ok(_) => panic!("admitted, expected a denial"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_token_limit_says_tokens() {
    let b = Budgets::builder()
        .with_rule(Rule::new("tokens", Scope::User, Period::Lifetime).with_limit_tokens(1_000))
        .with_rule(
            Rule::new("mixed", Scope::Tenant, Period::Lifetime)
                .with_limit_usd(usd("10"))
                .with_limit_tokens(500),
        )
        .build();
    let user = CallContext::new().with_user("u-1");
    b.record(&user, usd("0.12"), 900);
    let e = denial(&b, &user, Estimate::new(usd("0.01"), 200));
    let text = e.to_string();
    assert!(text.contains("used 900 of 1000 tokens"), "{text}");
    assert!(!text.contains('$'), "no USD figure: {text}");
    assert!(!e.totals_unavailable);

    // A mixed rule refusing on tokens: the tokens, not the USD it is far from.
    let tenant = CallContext::new().with_tenant("acme");
    b.record(&tenant, usd("1"), 450);
    let text = denial(&b, &tenant, Estimate::new(usd("0.01"), 100)).to_string();
    assert!(text.contains("used 450 of 500 tokens"), "{text}");
    assert!(!text.contains("$1"), "{text}");
    // And on USD: the USD.
    b.record(&tenant, usd("9.5"), 0);
    let text = denial(&b, &tenant, Estimate::new(usd("1"), 0)).to_string();
    assert!(text.contains("spent $10.500000 of $10.000000"), "{text}");
}

/// The memory store, except that its totals cannot be read.
#[derive(Debug)]
struct NoTotals(MemoryStore);

impl BudgetStore for NoTotals {
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
        self.0.reserve(id, charges, now_ms, expires_ms)
    }
    fn commit(
        &self,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError> {
        self.0.commit(release, charges, now_ms)
    }
    fn totals(&self, _: &[&Meter], _: i64) -> Result<Vec<MeterTotals>, StoreError> {
        Err(StoreError::unavailable(
            "memory",
            "injected: totals unreadable",
        ))
    }
    fn fire_once(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.0.fire_once(key, ttl_ms, now_ms)
    }
}

#[test]
fn unreadable_totals_are_reported_as_such_not_as_zero_spend() {
    let b = Budgets::builder()
        .with_store(Arc::new(NoTotals(MemoryStore::new())))
        .with_rule(Rule::new("daily", Scope::User, Period::Lifetime).with_limit_usd(usd("1")))
        .build();
    let user = CallContext::new().with_user("u-1");
    b.record(&user, usd("0.9"), 0);
    let e = denial(&b, &user, Estimate::new(usd("0.2"), 0));
    assert!(e.totals_unavailable, "{e:?}");
    let text = e.to_string();
    assert!(!text.contains("spent $0"), "{text}");
    assert!(text.contains("could not be read"), "{text}");
    assert!(text.contains("limit of $1"), "{text}");
}
