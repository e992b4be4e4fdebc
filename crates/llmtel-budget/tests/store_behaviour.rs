//! One behaviour suite run against every budget store: memory, SQLite and real Redis
//! (scripts/redis.sh), plain and over TLS (`rediss://`, feature `redis-tls`). Period
//! boundaries (day / week / month in Europe/Berlin and America/New_York across DST
//! changes, rolling windows), per-value vs shared scopes,
//! several rules on one call, thresholds firing exactly once, reservations and expiry,
//! zero-priced calls, exact totals under concurrency, and no over-admission.

mod support;

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use llmtel_alert::{AlertDispatcher, MemorySink};
use llmtel_budget::{
    BudgetStore, Budgets, CallContext, Estimate, Mode, Period, ReserveError, Rule, Scope,
};
use support::{TestClock, store, usd};

fn est(s: &str) -> Estimate {
    Estimate::new(usd(s), 0)
}

fn budgets(st: &Arc<dyn BudgetStore>, clock: &TestClock, rules: Vec<Rule>) -> Budgets {
    Budgets::builder()
        .with_store(st.clone())
        .with_clock(clock.clock())
        .with_rules(rules)
        .with_reservation_ttl(Duration::from_secs(60))
        .build()
}

fn spend(b: &Budgets, ctx: &CallContext, s: &str) {
    b.record(ctx, usd(s), 10);
    assert!(b.flush(Duration::from_secs(10)));
}

fn denied(r: Result<llmtel_budget::Reservation, ReserveError>) -> llmtel_budget::BudgetExceeded {
    match r {
        Err(ReserveError::Exceeded(e)) => *e,
        Ok(_) => panic!("admitted, expected a denial"),
        Err(e) => panic!("{e}"),
    }
}

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").expect("tz")
}

fn day_resets_at_local_midnight_across_dst(kind: &str) {
    let st = store(kind, "day");
    // 2025-03-30 in Berlin has 23 hours (spring forward): 23:30 local = 21:30 UTC.
    let clock = TestClock::at("2025-03-30T21:30:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![Rule::new("daily", Scope::User, Period::Day(berlin())).with_limit_usd(usd("1"))],
    );
    let u = CallContext::new().with_user("u1");
    spend(&b, &u, "0.9");
    let e = denied(b.reserve(&u, est("0.2")));
    assert_eq!(e.rule, "daily");
    assert_eq!(e.scope, "user.id=u1");
    assert_eq!(e.period, "day");
    assert_eq!((e.spent, e.limit), (usd("0.9"), usd("1")));
    assert_eq!(
        e.resets_at,
        Some("2025-03-30T22:00:00Z".parse().expect("ts"))
    );
    assert_eq!(e.retry_after_secs(b.now()), Some(1800));
    clock.set("2025-03-30T22:00:00Z"); // local midnight: a new day
    assert!(b.reserve(&u, est("0.2")).is_ok(), "{kind}: new day");
    // Autumn: 2025-10-26 has 25 hours; 00:30 local on the 27th = 23:30 UTC on the 26th.
    clock.set("2025-10-26T22:30:00Z"); // 23:30 local, the 26th
    spend(&b, &u, "1");
    assert!(b.reserve(&u, est("0.01")).is_err());
    clock.set("2025-10-26T23:00:00Z"); // 00:00 local on the 27th
    assert!(
        b.reserve(&u, est("0.01")).is_ok(),
        "{kind}: 25-hour day ended"
    );
}

fn week_and_month_reset_in_zone(kind: &str) {
    let st = store(kind, "week");
    let ny = TimeZone::get("America/New_York").expect("tz");
    // Sunday 2025-11-02 (DST ends) 23:59 local = Monday 04:59 UTC.
    let clock = TestClock::at("2025-11-03T04:59:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![
            Rule::new("weekly", Scope::Tenant, Period::Week(ny)).with_limit_usd(usd("1")),
            Rule::new("monthly", Scope::Feature, Period::Month(berlin())).with_limit_usd(usd("1")),
        ],
    );
    let t = CallContext::new().with_tenant("acme");
    spend(&b, &t, "1");
    let e = denied(b.reserve(&t, est("0.01")));
    assert_eq!(
        e.resets_at,
        Some("2025-11-03T05:00:00Z".parse().expect("ts"))
    );
    clock.set("2025-11-03T05:00:00Z");
    assert!(
        b.reserve(&t, est("0.01")).is_ok(),
        "{kind}: Monday 00:00 New York"
    );

    let f = CallContext::new().with_feature("search");
    clock.set("2025-03-31T21:59:00Z"); // 23:59 CEST, March 31
    spend(&b, &f, "1");
    let e = denied(b.reserve(&f, est("0.01")));
    assert_eq!(e.period, "month");
    assert_eq!(
        e.resets_at,
        Some("2025-03-31T22:00:00Z".parse().expect("ts"))
    );
    clock.set("2025-03-31T22:00:00Z");
    assert!(b.reserve(&f, est("0.01")).is_ok(), "{kind}: April");
}

fn rolling_window_forgets_old_spend(kind: &str) {
    let st = store(kind, "rolling");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![Rule::new("hourly", Scope::Global, Period::RollingHours(1)).with_limit_usd(usd("1"))],
    );
    let any = CallContext::new();
    spend(&b, &any, "0.6");
    clock.advance_secs(30 * 60);
    spend(&b, &any, "0.3");
    assert!(
        b.reserve(&any, est("0.2")).is_err(),
        "{kind}: 0.9 in the last hour"
    );
    clock.advance_secs(31 * 60); // the first 0.6 left the window
    let s = b.status_for(&any).expect("status");
    assert_eq!(s[0].spent, usd("0.3"), "{kind}");
    assert!(b.reserve(&any, est("0.6")).is_ok(), "{kind}");
    clock.advance_secs(31 * 60);
    assert_eq!(
        b.status_for(&any).expect("status")[0].spent,
        usd("0"),
        "{kind}"
    );
}

fn per_value_and_shared_scopes(kind: &str) {
    let st = store(kind, "scopes");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![
            Rule::new("each-user", Scope::User, Period::Lifetime).with_limit_usd(usd("1")),
            Rule::new("all-users", Scope::User, Period::Lifetime)
                .with_mode(Mode::Shared)
                .with_limit_usd(usd("1.5")),
        ],
    );
    let u1 = CallContext::new().with_user("u1");
    let u2 = CallContext::new().with_user("u2");
    spend(&b, &u1, "0.9");
    assert!(
        b.reserve(&u2, est("0.5")).is_ok(),
        "{kind}: u2 has its own $1"
    );
    // The dropped reservation is released (on a remote store, by the writer thread).
    assert!(b.flush(Duration::from_secs(10)));
    let e = denied(b.reserve(&u2, est("0.7")));
    assert_eq!(
        (e.rule.as_str(), e.scope.as_str()),
        ("all-users", "user.id=*")
    );
    let e = denied(b.reserve(&u1, est("0.2")));
    assert_eq!(
        (e.rule.as_str(), e.scope.as_str()),
        ("each-user", "user.id=u1")
    );
    // No user: neither rule applies.
    assert!(b.reserve(&CallContext::new(), est("100")).is_ok());
}

fn several_rules_on_one_call(kind: &str) {
    let st = store(kind, "several");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![
            Rule::new("user", Scope::User, Period::Day(TimeZone::UTC)).with_limit_usd(usd("5")),
            Rule::new("tenant", Scope::Tenant, Period::Day(TimeZone::UTC)).with_limit_usd(usd("1")),
            Rule::new("model-tokens", Scope::Model, Period::Day(TimeZone::UTC))
                .with_limit_tokens(1000),
            Rule::new(
                "team",
                Scope::Attribute("llmtel.team".into()),
                Period::Lifetime,
            )
            .with_limit_usd(usd("10")),
        ],
    );
    let c = CallContext::new()
        .with_user("u1")
        .with_tenant("acme")
        .with_model("gpt-4o")
        .with_attribute("llmtel.team", "search");
    b.record(&c, usd("0.8"), 900);
    assert!(b.flush(Duration::from_secs(10)));
    let s = b.status_for(&c).expect("status");
    assert_eq!(s.len(), 4);
    assert!(
        s.iter()
            .all(|r| r.spent == usd("0.8") && r.spent_tokens == 900),
        "{s:#?}"
    );
    let e = denied(b.reserve(&c, est("0.3")));
    assert_eq!(e.rule, "tenant");
    let e = denied(b.reserve(&c, Estimate::new(usd("0.01"), 200)));
    assert_eq!(
        (e.rule.as_str(), e.limit_tokens),
        ("model-tokens", Some(1000))
    );
    // Atomic: a denied reservation held nothing on the other rules.
    let s = b.status_for(&c).expect("status");
    assert!(s.iter().all(|r| r.reserved == usd("0")), "{s:#?}");
}

fn thresholds_fire_exactly_once(kind: &str) {
    let st = store(kind, "thresholds");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let sink = MemorySink::new();
    let alerts = AlertDispatcher::builder()
        .with_sink(Arc::new(sink.clone()))
        .build();
    let rule = Rule::new("daily", Scope::User, Period::Day(TimeZone::UTC))
        .with_limit_usd(usd("1"))
        .with_thresholds(&[50, 80, 100]);
    let mk = || {
        Budgets::builder()
            .with_store(st.clone())
            .with_clock(clock.clock())
            .with_rule(rule.clone())
            .with_alerts(alerts.clone())
            .build()
    };
    // Two instances (two replicas) on one store: still once.
    let (a, b) = (mk(), mk());
    let u = CallContext::new().with_user("u1");
    for i in 0..12 {
        let x = if i % 2 == 0 { &a } else { &b };
        spend(x, &u, "0.1");
    }
    assert!(alerts.flush(Duration::from_secs(5)));
    let got = sink.alerts();
    let th: Vec<&str> = got.iter().map(|a| a.labels["threshold"].as_str()).collect();
    assert_eq!(th, ["50", "80", "100"], "{kind}: {got:#?}");
    assert_eq!(got[2].labels["scope"], "user.id=u1");
    assert_eq!(got[2].severity, llmtel_alert::Severity::Critical);
    // The next day the thresholds fire again, once.
    clock.set("2025-06-02T00:00:01Z");
    for _ in 0..6 {
        spend(&a, &u, "0.1");
    }
    assert!(alerts.flush(Duration::from_secs(5)));
    assert_eq!(sink.alerts().len(), 4, "{kind}: 50 % on day two");
}

fn rolling_thresholds_fire_once_per_window(kind: &str) {
    let st = store(kind, "rolling-thresholds");
    let clock = TestClock::at("2025-06-01T00:10:00Z");
    let sink = MemorySink::new();
    let alerts = AlertDispatcher::builder()
        .with_sink(Arc::new(sink.clone()))
        .build();
    let b = Budgets::builder()
        .with_store(st.clone())
        .with_clock(clock.clock())
        .with_rule(
            Rule::new("rolling", Scope::User, Period::RollingHours(24))
                .with_limit_usd(usd("1"))
                .with_thresholds(&[80]),
        )
        .with_alerts(alerts.clone())
        .build();
    let u = CallContext::new().with_user("u1");
    spend(&b, &u, "0.85");
    // Above 80 % for the next 20 hours (the window's start moves every 24 minutes): the
    // threshold was crossed once.
    for hour in 1..=20 {
        clock.set(&format!("2025-06-01T{:02}:10:00Z", hour.min(23)));
        spend(&b, &u, "0.001");
    }
    assert!(alerts.flush(Duration::from_secs(5)));
    assert_eq!(sink.alerts().len(), 1, "{kind}: {:#?}", sink.alerts());
}

fn reservations_hold_and_expire(kind: &str) {
    let st = store(kind, "reservations");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![Rule::new("life", Scope::User, Period::Lifetime).with_limit_usd(usd("1"))],
    );
    let u = CallContext::new().with_user("u1");
    let r1 = b.reserve(&u, est("0.6")).expect("first");
    let e = denied(b.reserve(&u, est("0.6")));
    assert_eq!(e.spent, usd("0.6"), "{kind}: settled + reserved");
    // Dropped: released.
    drop(r1);
    assert!(b.flush(Duration::from_secs(10)));
    let r2 = b.reserve(&u, est("0.6")).expect("after release");
    // Settled to the actual cost: the reservation becomes spend.
    r2.settle(usd("0.25"), 100);
    assert!(b.flush(Duration::from_secs(10)));
    let s = &b.status_for(&u).expect("status")[0];
    assert_eq!(
        (s.spent, s.reserved, s.spent_tokens),
        (usd("0.25"), usd("0"), 100)
    );
    assert_eq!(s.remaining, Some(usd("0.75")));
    // Never settled (a crash): it expires after the TTL.
    let r3 = b.reserve(&u, est("0.7")).expect("third");
    std::mem::forget(r3);
    assert!(b.reserve(&u, est("0.1")).is_err());
    clock.advance_secs(61);
    assert!(b.reserve(&u, est("0.7")).is_ok(), "{kind}: expired");
}

fn only_expired_reservations_are_dropped(kind: &str) {
    let st = store(kind, "expiry-order");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![Rule::new("life", Scope::Global, Period::Lifetime).with_limit_usd(usd("1"))],
    );
    let ctx = CallContext::new();
    let reserved = |b: &Budgets| b.status_for(&ctx).expect("status")[0].reserved;
    // Two crashed calls: A expires at +60 s, B at +90 s (TTL 60 s).
    std::mem::forget(b.reserve(&ctx, est("0.3")).expect("A"));
    clock.advance_secs(30);
    std::mem::forget(b.reserve(&ctx, est("0.3")).expect("B"));
    clock.advance_secs(31); // +61 s: A expired, B held
    let c = b.reserve(&ctx, est("0.5")).expect("C fits once A expired");
    assert_eq!(reserved(&b), usd("0.8"), "{kind}: B and C");
    assert!(b.reserve(&ctx, est("0.3")).is_err(), "{kind}: B still held");
    clock.advance_secs(30); // +91 s: B expired too
    assert_eq!(reserved(&b), usd("0.5"), "{kind}: C");
    let d = b.reserve(&ctx, est("0.3")).expect("D fits once B expired");
    assert!(b.reserve(&ctx, est("0.3")).is_err(), "{kind}: C and D held");
    c.settle(usd("0.4"), 4);
    d.release();
    assert!(b.flush(Duration::from_secs(10)));
    let s = &b.status_for(&ctx).expect("status")[0];
    assert_eq!((s.spent, s.reserved), (usd("0.4"), usd("0")), "{kind}");
}

/// Sums past 2^53 pico-dollars (about $9,007) stay exact to the pico-dollar, up to the
/// most one call may charge ($1,000,000) and beyond in total.
fn large_sums_stay_exact(kind: &str) {
    let st = store(kind, "large");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![Rule::new("big", Scope::Global, Period::Lifetime).with_limit_usd(usd("9000000"))],
    );
    let ctx = CallContext::new();
    for _ in 0..4 {
        spend(&b, &ctx, "1000000");
    }
    spend(&b, &ctx, "0.000000000003");
    let r = b
        .reserve(&ctx, est("999999.999999999995"))
        .expect("within $9M");
    let s = &b.status_for(&ctx).expect("status")[0];
    assert_eq!(
        (s.spent, s.reserved),
        (usd("4000000.000000000003"), usd("999999.999999999995")),
        "{kind}"
    );
    r.settle(usd("999999.999999999999"), 1);
    assert!(b.flush(Duration::from_secs(10)));
    let s = &b.status_for(&ctx).expect("status")[0];
    assert_eq!(
        (s.spent, s.reserved, s.spent_tokens),
        (usd("5000000.000000000002"), usd("0"), 51),
        "{kind}"
    );
    assert_eq!(b.stats().amounts_capped, 0, "{kind}");
}

/// `commit_batch` answers, for each commit in order, the spend right after it: here three
/// settles on one two-bucket meter (a rolling window) and one on another, in one batch.
fn a_batch_reports_the_spend_after_each_commit(kind: &str) {
    use llmtel_budget::store::{Amount, Commit, Meter, ReserveOutcome};
    let st = store(kind, "batch");
    let now = 1_748_736_000_000;
    let meter = |id: &str, buckets: &[&str]| Meter {
        id: id.into(),
        buckets: buckets.iter().map(|b| format!("{id}\u{1f}{b}")).collect(),
        ttl_ms: 3_600_000,
        limit_usd: None,
        limit_tokens: None,
    };
    let (a, b) = (meter("a\u{1f}*", &["1", "2"]), meter("b\u{1f}*", &["9"]));
    let amt = |usd, tokens| Amount { usd, tokens };
    // Spend in a's older bucket, then two reservations to release.
    let older = Meter {
        buckets: vec![a.buckets[0].clone()],
        ..a.clone()
    };
    st.commit(None, &[(&older, amt(7, 1))], now)
        .expect("older bucket");
    for id in ["r1", "r2"] {
        let held = st.reserve(id, &[(&a, amt(100, 10))], now, now + 60_000);
        assert_eq!(held, Ok(ReserveOutcome::Admitted), "{kind}");
    }
    let ops = [
        Commit {
            release: Some(("r1", &[&a])),
            charges: &[(&a, amt(10, 1))],
            op_id: None,
        },
        Commit {
            release: None,
            charges: &[(&b, amt(5, 5)), (&a, amt(20, 2))],
            op_id: None,
        },
        Commit {
            release: Some(("r2", &[&a])),
            charges: &[(&a, amt(30, 3))],
            op_id: None,
        },
    ];
    let out = st.commit_batch(&ops, now).expect("batch");
    assert_eq!(
        out,
        vec![
            vec![amt(17, 2)],
            vec![amt(5, 5), amt(37, 4)],
            vec![amt(67, 7)]
        ],
        "{kind}"
    );
    let t = st.totals(&[&a, &b], now).expect("totals");
    assert_eq!(
        (t[0].spent, t[0].reserved),
        (amt(67, 7), amt(0, 0)),
        "{kind}"
    );
    assert_eq!(t[1].spent, amt(5, 5), "{kind}");
}

/// A commit replayed with the same operation id (its reply was lost after it was applied)
/// is skipped: the spend counts once; a different id counts again.
fn a_replayed_commit_counts_once(kind: &str) {
    use llmtel_budget::store::{Amount, Commit, Meter};
    let st = store(kind, "replay");
    let now = 1_748_736_000_000;
    let m = Meter {
        id: "r\u{1f}*".into(),
        buckets: vec!["r\u{1f}*\u{1f}1".into()],
        ttl_ms: 3_600_000,
        limit_usd: None,
        limit_tokens: None,
    };
    let amt = Amount { usd: 10, tokens: 1 };
    let charge = [(&m, amt)];
    let with = |id: &'static str| Commit {
        release: None,
        charges: &charge,
        op_id: Some(id),
    };
    st.commit_batch(&[with("op-1")], now).expect("first");
    let again = st
        .commit_batch(&[with("op-1"), with("op-1")], now)
        .expect("replay");
    assert_eq!(
        again,
        vec![vec![amt], vec![amt]],
        "{kind}: skipped, spend as it stands"
    );
    st.commit_batch(&[with("op-2")], now).expect("another op");
    let t = st.totals(&[&m], now).expect("totals");
    assert_eq!(t[0].spent, Amount { usd: 20, tokens: 2 }, "{kind}");
}

fn zero_priced_calls_are_never_blocked(kind: &str) {
    let st = store(kind, "zero");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![Rule::new("life", Scope::User, Period::Lifetime).with_limit_usd(usd("1"))],
    );
    let u = CallContext::new().with_user("u1");
    spend(&b, &u, "5"); // far over
    assert!(b.reserve(&u, est("0.000001")).is_err());
    assert!(
        b.reserve(&u, Estimate::new(usd("0"), 5000)).is_ok(),
        "{kind}"
    );
}

fn exact_total_under_concurrency(kind: &str) {
    let st = store(kind, "exact");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![Rule::new("all", Scope::Global, Period::Day(TimeZone::UTC))],
    );
    let per = llmtel::Usd::from_picos(1_234_567); // $0.000001234567
    std::thread::scope(|s| {
        for _ in 0..8 {
            let b = b.clone();
            s.spawn(move || {
                for _ in 0..10_000 {
                    b.record(&CallContext::new(), per, 3);
                }
            });
        }
    });
    assert!(b.flush(Duration::from_secs(90)), "{kind}: flush");
    let s = &b.status_for(&CallContext::new()).expect("status")[0];
    assert_eq!(s.spent.picos(), 80_000 * 1_234_567, "{kind}");
    assert_eq!(s.spent_tokens, 240_000, "{kind}");
    assert_eq!(b.stats().dropped, 0);
}

fn concurrent_reservations_never_pass_the_limit(kind: &str) {
    let st = store(kind, "admission");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![Rule::new("dollar", Scope::Global, Period::Lifetime).with_limit_usd(usd("1"))],
    );
    let admitted = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..50 {
            s.spawn(|| {
                if let Ok(r) = b.reserve(&CallContext::new(), est("0.03")) {
                    admitted.lock().expect("lock").push(r);
                }
            });
        }
    });
    let admitted = admitted.into_inner().expect("lock");
    assert_eq!(admitted.len(), 33, "{kind}: 33 x $0.03 <= $1 < 34 x $0.03");
    for r in admitted {
        r.settle(usd("0.03"), 0);
    }
    assert!(b.flush(Duration::from_secs(10)));
    let s = &b.status_for(&CallContext::new()).expect("status")[0];
    assert_eq!((s.spent, s.reserved), (usd("0.99"), usd("0")), "{kind}");
}

/// An absurd amount through the public API (`u64::MAX` tokens, the largest cost) is capped
/// per call: the meter goes on counting (it overflowed Redis's `HINCRBY` and turned
/// SQLite's column to floating point, and later writes to it failed).
fn absurd_amounts_are_capped_and_the_meter_goes_on(kind: &str) {
    let st = store(kind, "absurd");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = budgets(
        &st,
        &clock,
        vec![Rule::new("life", Scope::Global, Period::Lifetime).with_limit_usd(usd("1"))],
    );
    let ctx = CallContext::new();
    for _ in 0..2 {
        b.record(&ctx, llmtel::Usd::from_picos(u128::MAX), u64::MAX);
    }
    b.record(&ctx, usd("0.5"), 10);
    assert!(b.flush(Duration::from_secs(10)));
    let s = &b.status_for(&ctx).expect("status")[0];
    assert_eq!(
        (s.spent, s.spent_tokens),
        (usd("2000000.5"), 2 * llmtel::MAX_TOKENS_PER_CALL + 10),
        "{kind}"
    );
    assert_eq!(b.stats().amounts_capped, 2, "{kind}");
}

/// A meter's total past i64 (about $9.2 million at the store's unit) saturates at
/// i64::MAX, as the memory store's does, and the meter takes later writes: Redis's
/// `HINCRBY` refused to overflow mid-script (the batch's op marks set, its writes not), and
/// SQLite turned the column into a REAL that no later read could take (every later write
/// of the meter refused and dropped).
fn totals_past_i64_saturate_and_the_meter_goes_on(kind: &str) {
    use llmtel_budget::store::{Amount, Commit, Meter};
    let st = store(kind, "saturate");
    let now = 1_748_736_000_000;
    let meter = |id: &str| Meter {
        id: id.into(),
        buckets: vec![format!("{id}\u{1f}0")],
        ttl_ms: 0,
        limit_usd: None,
        limit_tokens: None,
    };
    let (big, small) = (meter("big\u{1f}*"), meter("small\u{1f}*"));
    let amt = |usd, tokens| Amount { usd, tokens };
    let near = amt(i64::MAX - 10, i64::MAX - 10);
    let (c_near, c_over, c_small) = (
        [(&big, near)],
        [(&big, amt(100, 100))],
        [(&small, amt(7, 1))],
    );
    fn op<'a>(charges: &'a [(&'a Meter, Amount)], id: &'a str) -> Commit<'a> {
        Commit {
            release: None,
            charges,
            op_id: Some(id),
        }
    }
    st.commit_batch(&[op(&c_near, "near")], now)
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    // Past i64 in a batch with another meter's write: both are written.
    let out = st
        .commit_batch(&[op(&c_small, "s1"), op(&c_over, "over")], now)
        .unwrap_or_else(|e| panic!("{kind}: past i64: {e}"));
    assert_eq!(out[1], vec![amt(i64::MAX, i64::MAX)], "{kind}");
    // The meter goes on: a later write is taken (and stays at the bound), a replay skipped.
    st.commit_batch(&[op(&c_over, "over-2"), op(&c_small, "s1")], now)
        .unwrap_or_else(|e| panic!("{kind}: after saturating: {e}"));
    st.commit(None, &c_small, now)
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    let t = st.totals(&[&big, &small], now).expect("totals");
    assert_eq!(t[0].spent, amt(i64::MAX, i64::MAX), "{kind}");
    assert_eq!(t[1].spent, amt(14, 2), "{kind}: s1 once, plus the commit");
}

macro_rules! suite {
    ($kind:ident) => {
        mod $kind {
            #[test]
            fn totals_past_i64_saturate_and_the_meter_goes_on() {
                super::totals_past_i64_saturate_and_the_meter_goes_on(stringify!($kind));
            }
            #[test]
            fn absurd_amounts_are_capped_and_the_meter_goes_on() {
                super::absurd_amounts_are_capped_and_the_meter_goes_on(stringify!($kind));
            }
            #[test]
            fn day_resets_at_local_midnight_across_dst() {
                super::day_resets_at_local_midnight_across_dst(stringify!($kind));
            }
            #[test]
            fn week_and_month_reset_in_zone() {
                super::week_and_month_reset_in_zone(stringify!($kind));
            }
            #[test]
            fn rolling_window_forgets_old_spend() {
                super::rolling_window_forgets_old_spend(stringify!($kind));
            }
            #[test]
            fn per_value_and_shared_scopes() {
                super::per_value_and_shared_scopes(stringify!($kind));
            }
            #[test]
            fn several_rules_on_one_call() {
                super::several_rules_on_one_call(stringify!($kind));
            }
            #[test]
            fn thresholds_fire_exactly_once() {
                super::thresholds_fire_exactly_once(stringify!($kind));
            }
            #[test]
            fn rolling_thresholds_fire_once_per_window() {
                super::rolling_thresholds_fire_once_per_window(stringify!($kind));
            }
            #[test]
            fn reservations_hold_and_expire() {
                super::reservations_hold_and_expire(stringify!($kind));
            }
            #[test]
            fn only_expired_reservations_are_dropped() {
                super::only_expired_reservations_are_dropped(stringify!($kind));
            }
            #[test]
            fn large_sums_stay_exact() {
                super::large_sums_stay_exact(stringify!($kind));
            }
            #[test]
            fn a_batch_reports_the_spend_after_each_commit() {
                super::a_batch_reports_the_spend_after_each_commit(stringify!($kind));
            }
            #[test]
            fn a_replayed_commit_counts_once() {
                super::a_replayed_commit_counts_once(stringify!($kind));
            }
            #[test]
            fn zero_priced_calls_are_never_blocked() {
                super::zero_priced_calls_are_never_blocked(stringify!($kind));
            }
            #[test]
            fn exact_total_under_concurrency() {
                super::exact_total_under_concurrency(stringify!($kind));
            }
            #[test]
            fn concurrent_reservations_never_pass_the_limit() {
                super::concurrent_reservations_never_pass_the_limit(stringify!($kind));
            }
        }
    };
}

suite!(memory);
suite!(sqlite);
suite!(redis);
// The same Redis over TLS (rediss://, password, scripts/redis.sh's self-signed CA).
#[cfg(feature = "redis-tls")]
suite!(rediss);
