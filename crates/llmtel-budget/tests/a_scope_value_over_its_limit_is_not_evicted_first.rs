//! The memory store keeps a bounded number of scope values a rule and evicts some, with
//! their spend, when a new one comes. It evicted the least recently used, and a refused
//! reservation did not count as a use: a user over the limit who kept retrying became the
//! least recently used, was evicted, and was let in again at $0. A refused call now counts
//! as a use, and values with no spend go first, those at their limit last.

use std::sync::Arc;

use llmtel::Usd;
use llmtel_budget::{Budgets, CallContext, Estimate, MemoryStore, Period, Rule, Scope};

fn usd(s: &str) -> Usd {
    Usd::parse_decimal(s).expect("usd")
}

/// $1 per user, in a memory store that keeps 10 users.
fn budgets() -> Budgets {
    Budgets::builder()
        .with_store(Arc::new(MemoryStore::new().with_max_values_per_rule(10)))
        .with_rule(Rule::new("per-user", Scope::User, Period::Lifetime).with_limit_usd(usd("1")))
        .build()
}

fn user(u: &str) -> CallContext {
    CallContext::new().with_user(u)
}

fn refused(b: &Budgets, u: &str) -> bool {
    match b.reserve(&user(u), Estimate::new(usd("0.01"), 0)) {
        Err(e) => e.exceeded().is_some(),
        Ok(_) => false,
    }
}

/// Spends $0.01 for `u` through a reservation.
fn small_call(b: &Budgets, u: &str) {
    b.reserve(&user(u), Estimate::new(usd("0.01"), 0))
        .expect("a new user is within budget")
        .settle(usd("0.01"), 0);
}

#[test]
fn a_user_over_the_limit_who_keeps_retrying_stays_refused() {
    let b = budgets();
    b.record(&user("over"), usd("1"), 0);
    for i in 0..20 {
        assert!(refused(&b, "over"), "round {i}: let in again");
        small_call(&b, &format!("u-{i}"));
    }
    assert!(refused(&b, "over"));
    assert_eq!(
        b.status_for(&user("over")).expect("status")[0].spent,
        usd("1")
    );
    assert!(
        b.stats().store_evicted > 0,
        "the bound held: others were evicted"
    );
}

#[test]
fn among_users_at_their_limit_the_one_retrying_is_kept() {
    // Every value at its limit: the least recently used goes, and a refused call is a use.
    let b = budgets();
    b.record(&user("over"), usd("1"), 0);
    for i in 0..20 {
        assert!(refused(&b, "over"), "round {i}: let in again");
        b.record(&user(&format!("u-{i}")), usd("1"), 0);
    }
    assert!(refused(&b, "over"));
    assert_eq!(
        b.status_for(&user("over")).expect("status")[0].spent,
        usd("1")
    );
}

#[test]
fn a_user_at_the_limit_outlives_users_under_it() {
    // Not retrying: the least recently used, yet users under their limit go first.
    let b = budgets();
    b.record(&user("over"), usd("1"), 0);
    for i in 0..20 {
        small_call(&b, &format!("u-{i}"));
    }
    assert!(b.stats().store_evicted > 0);
    assert!(refused(&b, "over"), "evicted and let in again at $0");
    assert_eq!(
        b.status_for(&user("over")).expect("status")[0].spent,
        usd("1")
    );
}

#[test]
fn users_with_nothing_spent_go_before_users_with_spend() {
    // Refused before spending anything (an estimate over the limit): nothing to forget.
    let b = budgets();
    b.record(&user("spender"), usd("0.5"), 0);
    for i in 0..20 {
        assert!(
            b.reserve(&user(&format!("big-{i}")), Estimate::new(usd("2"), 0))
                .is_err()
        );
    }
    assert!(b.stats().store_evicted > 0);
    assert_eq!(
        b.status_for(&user("spender")).expect("status")[0].spent,
        usd("0.5")
    );
}
