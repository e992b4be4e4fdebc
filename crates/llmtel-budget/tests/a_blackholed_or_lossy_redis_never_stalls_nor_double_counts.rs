//! The Redis store under faults, with a local TCP proxy (tokio, 127.0.0.1) in front of the
//! real Redis of scripts/redis.sh:
//! (a) a proxy that accepts and never answers: every reserve returns within 250 ms, fails
//!     open or closed as configured, and the circuit breaker shows in the stats;
//! (b) a proxy that runs the commit script but drops its reply: once the proxy forwards
//!     again, the buffered spend is counted exactly once;
//! (c) a reserve whose reply was dropped holds nothing once the store answers again.
//!
//! Also: neither `Debug` of the store and its config nor its errors show the password.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmtel_budget::{
    BudgetStore, Budgets, CallContext, Estimate, FailMode, Period, RedisStore, ReserveError, Rule,
    Scope, StoreConfig,
};
use support::proxy::{BLACKHOLE, DROP_REPLIES, Proxy, STRAIGHT};
use support::{addr_of, redis_url, unique_prefix, usd, via};

fn dollar() -> Rule {
    Rule::new("dollar", Scope::Global, Period::Lifetime).with_limit_usd(usd("1"))
}

/// Budgets on Redis through `proxy`, under `prefix`.
fn through(proxy: &Proxy, prefix: &str, fail: FailMode) -> Budgets {
    let store = RedisStore::open(&via(&redis_url(), proxy.addr))
        .expect("url")
        .with_prefix(prefix);
    Budgets::builder()
        .with_store(Arc::new(store))
        .with_rule(dollar())
        .with_fail_mode(fail)
        .build()
}

/// Budgets on the same keys, straight to Redis: what the store really holds.
fn direct(prefix: &str) -> Budgets {
    let store = RedisStore::open(&redis_url())
        .expect("url")
        .with_prefix(prefix)
        .with_timeout(Duration::from_secs(2));
    Budgets::builder()
        .with_store(Arc::new(store))
        .with_rule(dollar())
        .build()
}

/// (spent, reserved) as Redis holds them.
fn held(prefix: &str) -> (llmtel::Usd, llmtel::Usd) {
    let s = &direct(prefix)
        .status_for(&CallContext::new())
        .expect("status")[0];
    (s.spent, s.reserved)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn blackholed_reserves_answer_within_250ms(fail: FailMode) {
    let proxy = Proxy::start(addr_of(&redis_url()), BLACKHOLE);
    let b = through(&proxy, &unique_prefix("blackhole"), fail);
    let ctx = CallContext::new();
    let mut slowest = Duration::ZERO;
    for i in 0..200 {
        let t0 = Instant::now();
        let r = b.reserve(&ctx, Estimate::new(usd("0.01"), 0));
        let took = t0.elapsed();
        slowest = slowest.max(took);
        match (fail, r) {
            (FailMode::Open, Ok(r)) => assert!(!r.is_enforced(), "call {i}"),
            (FailMode::Closed, Err(ReserveError::StoreUnavailable(e))) => {
                assert_eq!(e.store, "redis")
            }
            (_, other) => panic!("call {i}: {fail:?} answered {other:?}"),
        }
        // Spread over more than the breaker's cool-down, so that it probes (and fails) again.
        std::thread::sleep(Duration::from_millis(15));
    }
    assert!(
        slowest < Duration::from_millis(250),
        "{fail:?}: slowest reserve {slowest:?}"
    );
    let s = b.stats();
    assert!(s.breaker_open, "{s:?}");
    assert!(s.breaker_trips >= 1, "{s:?}");
    assert!(s.short_circuited >= 150, "{s:?}");
    match fail {
        FailMode::Open => assert_eq!(s.admitted_unenforced, 200, "{s:?}"),
        FailMode::Closed => assert_eq!(s.refused_store_down, 200, "{s:?}"),
    }
}

#[test]
fn a_blackholed_redis_answers_every_reserve_within_250ms_fail_open() {
    blackholed_reserves_answer_within_250ms(FailMode::Open);
}

#[test]
fn a_blackholed_redis_answers_every_reserve_within_250ms_fail_closed() {
    blackholed_reserves_answer_within_250ms(FailMode::Closed);
}

#[test]
fn a_commit_whose_reply_was_dropped_is_counted_exactly_once() {
    let proxy = Proxy::start(addr_of(&redis_url()), STRAIGHT);
    let prefix = unique_prefix("dropped-commit");
    let b = through(&proxy, &prefix, FailMode::Open);
    let ctx = CallContext::new();
    // Straight: the scripts are loaded on the server (a replay must not depend on it).
    b.reserve(&ctx, Estimate::new(usd("0.01"), 0))
        .expect("reserve")
        .settle(usd("0.01"), 1);
    assert!(b.flush(Duration::from_secs(5)));
    assert_eq!(held(&prefix).0, usd("0.01"));

    proxy.set_mode(DROP_REPLIES);
    b.record(&ctx, usd("0.05"), 5);
    wait_until("the write is buffered", || b.stats().buffered == 1);
    // The script ran on the server: the spend is there although the writer never heard.
    wait_until("the commit landed", || held(&prefix).0 == usd("0.06"));
    // Retries while replies are still dropped run the script again: skipped each time.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(held(&prefix).0, usd("0.06"));

    proxy.set_mode(STRAIGHT);
    wait_until("the buffer is replayed", || b.stats().buffered == 0);
    assert!(b.flush(Duration::from_secs(5)));
    assert_eq!(held(&prefix).0, usd("0.06"), "counted exactly once");
    let s = b.stats();
    assert_eq!(s.replayed, 1, "{s:?}");
    assert_eq!(s.dropped, 0, "{s:?}");
}

fn a_dropped_reserve_holds_nothing_after_recovery(fail: FailMode) {
    let proxy = Proxy::start(addr_of(&redis_url()), STRAIGHT);
    let prefix = unique_prefix("dropped-reserve");
    let b = through(&proxy, &prefix, fail);
    let ctx = CallContext::new();
    b.reserve(&ctx, Estimate::new(usd("0.01"), 0))
        .expect("reserve")
        .release();
    assert!(b.flush(Duration::from_secs(5)));

    proxy.set_mode(DROP_REPLIES);
    let t0 = Instant::now();
    let r = b.reserve(&ctx, Estimate::new(usd("0.9"), 0));
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    match (fail, r) {
        // The call goes on unenforced; when it ends its reservation is released.
        (FailMode::Open, Ok(r)) => {
            assert!(!r.is_enforced());
            drop(r);
        }
        (FailMode::Closed, Err(ReserveError::StoreUnavailable(_))) => {}
        (_, other) => panic!("{fail:?}: {other:?}"),
    }
    // The reserve script ran: Redis holds $0.90 the client never heard of.
    wait_until("the reservation landed", || held(&prefix).1 == usd("0.9"));
    assert_eq!(b.stats().released_after_timeout, 1);

    proxy.set_mode(STRAIGHT);
    wait_until("the release is written", || b.stats().buffered == 0);
    assert!(b.flush(Duration::from_secs(5)));
    assert_eq!(
        held(&prefix),
        (usd("0"), usd("0")),
        "{fail:?}: nothing held"
    );
    // No spurious 429: the whole dollar is available again.
    wait_until("the breaker closes", || !b.stats().breaker_open);
    let r = b
        .reserve(&ctx, Estimate::new(usd("0.95"), 0))
        .expect("within budget after recovery");
    assert!(r.is_enforced());
}

#[test]
fn a_reserve_whose_reply_was_dropped_holds_nothing_after_recovery_fail_open() {
    a_dropped_reserve_holds_nothing_after_recovery(FailMode::Open);
}

#[test]
fn a_reserve_whose_reply_was_dropped_holds_nothing_after_recovery_fail_closed() {
    a_dropped_reserve_holds_nothing_after_recovery(FailMode::Closed);
}

#[test]
fn the_redis_password_never_shows_in_debug_or_errors() {
    const PW: &str = "s3cret-Pa55word";
    for url in [
        format!("redis://:{PW}@127.0.0.1:1/"),
        format!("redis://app-user:{PW}@127.0.0.1:1/0"),
    ] {
        let store = RedisStore::open(&url)
            .expect("url")
            .with_timeout(Duration::from_millis(50))
            .with_reserve_timeout(Duration::from_millis(50));
        let debug = format!("{store:?}");
        assert!(!debug.contains(PW), "{debug}");
        assert!(debug.contains("127.0.0.1:1"), "{debug}");
        // Port 1: nothing listens; the error names the store, never the password.
        let err = store.fire_once("k", 1000, 0).expect_err("nothing listens");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(PW), "{text}");
        }
        let cfg = StoreConfig {
            kind: Some("redis".into()),
            url: Some(url.clone()),
            ..StoreConfig::default()
        };
        let debug = format!("{cfg:?}");
        assert!(!debug.contains(PW), "{debug}");
        assert!(debug.contains(":***@"), "{debug}");
        // A StoreError built from a message that quotes the URL is masked too.
        let e = llmtel_budget::StoreError::unavailable("redis", format!("cannot use {url}"));
        assert!(!e.to_string().contains(PW) && !format!("{e:?}").contains(PW));
        let b = Budgets::builder().with_store(Arc::new(store)).build();
        assert!(!format!("{b:?}").contains(PW));
    }
    // A bad URL in the config file: the parse error does not quote the password either.
    let err = llmtel_budget::Config::from_toml_str(&format!(
        "[store]\nkind = \"redis\"\nurl = \"redis://:{PW}@h:1/\"\nbogus = 1\n"
    ))
    .expect_err("unknown field");
    assert!(!err.to_string().contains(PW), "{err}");
}
