//! A refusal's retry hint follows its cause. It was always the period's reset: a call
//! refused only because reservations of calls in flight held the room was told to come
//! back at midnight (they settle within seconds), and a call whose estimate alone is over
//! the limit, which can never be admitted, was told the same (a client retried it forever).

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use llmtel_budget::{
    BudgetExceeded, Budgets, CallContext, Estimate, ExceededCause, IN_FLIGHT_RETRY_AFTER_SECS,
    Period, ReserveError, Rule, Scope,
};

fn usd(s: &str) -> llmtel::Usd {
    llmtel::Usd::parse_decimal(s).expect("usd")
}

const NOW: &str = "2025-06-01T23:00:00Z"; // an hour before the UTC day resets

fn budgets() -> Budgets {
    let now: Timestamp = NOW.parse().expect("ts");
    Budgets::builder()
        .with_clock(Arc::new(move || now))
        .with_rule(
            Rule::new("per-user", Scope::User, Period::Day(TimeZone::UTC))
                .with_limit_usd(usd("1"))
                .with_limit_tokens(10_000),
        )
        .with_rule(
            Rule::new("per-tenant", Scope::Tenant, Period::Day(TimeZone::UTC))
                .with_limit_usd(usd("0.5")),
        )
        .build()
}

fn denial(b: &Budgets, ctx: &CallContext, e: Estimate) -> BudgetExceeded {
    match b.reserve(ctx, e) {
        Err(ReserveError::Exceeded(e)) => *e,
        Ok(_) => panic!("admitted, expected a denial"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn spend_in_the_period_is_retried_when_it_resets() {
    let b = budgets();
    let now = b.now();
    let ctx = CallContext::new().with_user("u-1");
    b.record(&ctx, usd("0.9"), 0);
    let e = denial(&b, &ctx, Estimate::new(usd("0.2"), 0));
    assert_eq!(e.cause, ExceededCause::Spent, "{e}");
    assert_eq!(e.retry_after_secs(now), Some(3600));
    assert_eq!(e.retry_at(now), e.resets_at);
    assert!(e.to_string().contains("resets at"), "{e}");
}

#[test]
fn a_limit_held_by_calls_in_flight_is_retried_shortly() {
    let b = budgets();
    let now = b.now();
    let ctx = CallContext::new().with_user("u-1");
    b.record(&ctx, usd("0.1"), 0);
    let in_flight = b
        .reserve(&ctx, Estimate::new(usd("0.8"), 0))
        .expect("room for the first");
    let e = denial(&b, &ctx, Estimate::new(usd("0.3"), 0));
    assert_eq!(e.cause, ExceededCause::InFlight, "{e}");
    assert_eq!(e.retry_after_secs(now), Some(IN_FLIGHT_RETRY_AFTER_SECS));
    assert!(
        e.retry_at(now) < e.resets_at,
        "not the reset: {:?}",
        e.retry_at(now)
    );
    assert!(e.to_string().contains("retry shortly"), "{e}");
    // And indeed: once the call in flight settles, the retry is admitted.
    in_flight.settle(usd("0.2"), 0);
    b.reserve(&ctx, Estimate::new(usd("0.3"), 0))
        .expect("admitted once the call in flight settled");
}

#[test]
fn an_estimate_alone_over_the_limit_is_never_worth_retrying() {
    let b = budgets();
    let now = b.now();
    let user = CallContext::new().with_user("u-1");
    for estimate in [
        Estimate::new(usd("1.5"), 0),       // over $1
        Estimate::new(usd("0.01"), 20_000), // over 10,000 tokens
    ] {
        let e = denial(&b, &user, estimate);
        assert_eq!(e.cause, ExceededCause::EstimateOverLimit, "{e}");
        assert_eq!(e.retry_after_secs(now), None, "{e}");
        assert_eq!(e.retry_at(now), None, "{e}");
        assert!(e.to_string().contains("can never be admitted"), "{e}");
    }
    // Even when another meter (met first) is also spent: the call can never pass.
    let both = CallContext::new().with_user("u-2").with_tenant("acme");
    b.record(&both, usd("0.95"), 0);
    let e = denial(&b, &both, Estimate::new(usd("0.6"), 0));
    assert_eq!(e.rule, "per-tenant", "{e}");
    assert_eq!(e.cause, ExceededCause::EstimateOverLimit, "{e}");
    assert_eq!(e.retry_after_secs(now), None, "{e}");
}

/// Two rules refuse: the user's only because of a call in flight, the tenant's on its
/// settled spend. The refusal names the tenant's and its reset: "retry shortly" would have
/// the client retry every few seconds until the period ends.
#[test]
fn a_rule_refusing_on_settled_spend_wins_over_one_held_by_calls_in_flight() {
    let now: Timestamp = NOW.parse().expect("ts");
    let b = Budgets::builder()
        .with_clock(Arc::new(move || now))
        .with_rule(
            Rule::new("per-user", Scope::User, Period::Day(TimeZone::UTC)).with_limit_usd(usd("1")),
        )
        .with_rule(
            Rule::new("per-tenant", Scope::Tenant, Period::Day(TimeZone::UTC))
                .with_limit_usd(usd("5")),
        )
        .build();
    let other = CallContext::new().with_user("u-2").with_tenant("t-1");
    b.record(&other, usd("4.9"), 0);
    let ctx = CallContext::new().with_user("u-1").with_tenant("t-1");
    let _in_flight = b
        .reserve(&ctx, Estimate::new(usd("0.05"), 0))
        .expect("room for the first");
    let e = denial(&b, &ctx, Estimate::new(usd("0.98"), 0));
    assert_eq!(e.cause, ExceededCause::Spent, "{e}");
    assert_eq!(e.rule, "per-tenant", "{e}");
    assert_eq!(e.retry_after_secs(b.now()), Some(3600));
}
