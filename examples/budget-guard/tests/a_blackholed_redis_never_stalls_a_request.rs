//! budget-guard on Redis, with the Redis connection going through a local TCP proxy that
//! accepts and never answers (a blackholed store): every request is still answered within
//! 250 ms (reserves fail open at the store's 100 ms deadline, then the circuit breaker answers
//! at once), and once the proxy forwards again the spend buffered during the outage is
//! counted exactly once.
//!
//! Needs the real Redis of `scripts/redis.sh start` (the test FAILS when it is not running).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../../crates/llmtel-budget/tests/support/proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use common::{ALICE_KEY, Service, redis_url, write_config};
use proxy::{BLACKHOLE, Proxy, STRAIGHT, addr_of, via};
use serde_json::json;

#[test]
fn a_blackholed_redis_never_stalls_a_request_and_its_spend_is_counted_once() {
    let url = redis_url();
    let proxy = Proxy::start(addr_of(&url), STRAIGHT);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "100");
    let prefix = format!("llmtel:test:budget-guard-blackhole:{}:", std::process::id());
    let svc = Service::start(
        &config,
        &[
            ("REDIS_URL", via(&url, proxy.addr)),
            ("BUDGET_REDIS_PREFIX", prefix),
        ],
    );
    let chat = || {
        let t = Instant::now();
        let r = svc.post_chat(Some(ALICE_KEY), &json!({ "prompt": "Where is my order?" }));
        let took = t.elapsed();
        assert_eq!(r.status(), 200, "fail-open: the call is served");
        let body: serde_json::Value = r.json().unwrap();
        (took, body["cost_picousd"].as_u64().unwrap())
    };
    // One call with Redis reachable: the store is up and the service warm.
    let (_, first) = chat();
    assert_eq!(svc.settled_spend(ALICE_KEY), first);

    // Redis blackholed: 40 calls, each answered within 250 ms.
    proxy.set_mode(BLACKHOLE);
    let mut spent = u128::from(first);
    let mut took = Vec::with_capacity(40);
    for _ in 0..40 {
        let (t, cost) = chat();
        took.push(t);
        spent += u128::from(cost);
    }
    took.sort();
    let (median, slowest) = (took[took.len() / 2], took[took.len() - 1]);
    eprintln!("requests with Redis blackholed: median {median:?}, slowest {slowest:?}");
    // A reserve waits at most its 100 ms deadline, and after a few such failures the circuit
    // breaker answers at once; a blackhole without those bounds holds a request for seconds
    // (TCP retransmits). The slowest bound leaves room for a loaded 2-core CI machine.
    assert!(
        median < Duration::from_millis(150),
        "the median request took {median:?} with Redis blackholed: {took:?}"
    );
    assert!(
        slowest < Duration::from_millis(600),
        "a request took {slowest:?} with Redis blackholed: {took:?}"
    );

    // Redis back: the buffered spend is written, each call exactly once.
    proxy.set_mode(STRAIGHT);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = svc.get("/budget", Some(ALICE_KEY));
        if r.status() == 200 {
            let b: serde_json::Value = r.json().unwrap();
            let got = u128::from(b[0]["spent_picousd"].as_u64().unwrap_or(0));
            let reserved = b[0]["reserved_picousd"].as_u64().unwrap_or(1);
            if got == spent && reserved == 0 {
                break;
            }
            assert!(got <= spent, "spend counted twice: {got} > {spent}");
        }
        assert!(
            Instant::now() < deadline,
            "the buffered spend never reached Redis exactly ({spent} expected)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
