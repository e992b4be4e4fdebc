//! The built `budget-guard` binary, started as a real process on a free loopback port with a
//! tiny per-user daily limit (in America/Los_Angeles): calls succeed and report their exact
//! cost; the call that would pass the limit gets a 429 whose `Retry-After` is the time to the
//! next local midnight of the rule's zone; other users are unaffected; and after the process
//! is killed (`kill -9`) and started again on the same store, the user is still refused and
//! the spend is there to the pico-dollar.
//!
//! Runs against the SQLite store (a temp file) and against a real Redis (`REDIS_URL`, from
//! `scripts/redis.sh start`; that test FAILS when Redis is not running).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Service, api_keys_toml, key_of, redis_url};
use jiff::{Timestamp, ToSpan, tz::TimeZone};
use llmtel::{Catalog, Usage};
use serde_json::{Value, json};

const ZONE: &str = "America/Los_Angeles";
const MODEL: &str = "gpt-4o-mini";
const PROMPT: &str = "How much does this call cost?";
const MAX_TOKENS: u64 = 64;

/// A call of `user` (named by their API key).
fn chat(svc: &Service, user: &str) -> reqwest::blocking::Response {
    svc.post_chat(
        Some(key_of(user)),
        &json!({ "prompt": PROMPT, "max_tokens": MAX_TOKENS }),
    )
}

fn picos_decimal(p: u128) -> String {
    format!("{}.{:012}", p / 1_000_000_000_000, p % 1_000_000_000_000)
}

/// (reserved estimate, actual cost) of one call, in pico-dollars, computed the way the
/// service does: the prompt's tokens plus max_tokens reserved; 48 output tokens spent.
fn estimate_and_cost() -> (u128, u128) {
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let p = llmtel::estimate::count_tokens(MODEL, PROMPT).tokens;
    let e = llmtel_budget::Estimate::for_model(
        Catalog::builtin(),
        MODEL,
        Some("openai"),
        p,
        MAX_TOKENS,
        today,
    )
    .unwrap();
    let c = Catalog::builtin()
        .price(MODEL, Some("openai"), &Usage::new(p, 48), today)
        .unwrap();
    (e.usd.picos(), c.breakdown.total.picos())
}

/// Seconds from now to the next midnight in `zone`.
fn secs_to_local_midnight(zone: &str) -> i64 {
    let tz = TimeZone::get(zone).unwrap();
    let now = Timestamp::now();
    let tomorrow = now
        .to_zoned(tz.clone())
        .date()
        .checked_add(1.day())
        .unwrap();
    let midnight = tomorrow.to_zoned(tz).unwrap().timestamp();
    midnight.as_second() - now.as_second()
}

fn run(dir: &Path, env: Vec<(&str, String)>) {
    let (e, c) = estimate_and_cost();
    // Two calls fit whether or not the first one is settled yet (e + e <= limit); a third
    // never does, even settled (c + c + e > limit, since the estimate is below 2c).
    assert!(e < 2 * c && c < e);
    let limit = 2 * e;
    let config: PathBuf = dir.join("budgets.toml");
    std::fs::write(
        &config,
        format!(
            "[[rule]]\nname = \"per-user-daily\"\nscope = \"user\"\nperiod = \"day\"\n\
             time_zone = \"{ZONE}\"\nlimit_usd = \"{}\"\n{}",
            picos_decimal(limit),
            api_keys_toml()
        ),
    )
    .unwrap();

    let svc = Service::start(&config, &env);
    for i in 0..2 {
        let r = chat(&svc, "alice");
        assert_eq!(r.status(), 200, "call {i}");
        let body: Value = r.json().unwrap();
        assert_eq!(body["cost_picousd"].as_u64(), Some(c as u64), "{body}");
        assert_eq!(body["simulated"], true);
        assert!(body["cost_usd"].as_f64().unwrap() > 0.0);
    }

    // Both calls settled: refused past the spend, not while their reservations are held
    // (which would be a retry in seconds, `ExceededCause::InFlight`).
    svc.settled_spend(key_of("alice"));
    let r = chat(&svc, "alice");
    assert_eq!(r.status(), 429);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = secs_to_local_midnight(ZONE);
    assert!(
        (retry - expected).abs() <= 3,
        "Retry-After {retry}, next midnight in {ZONE} is in {expected} s"
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["rule"], "per-user-daily");
    assert_eq!(body["scope"], "user.id=alice");
    assert_eq!(body["retry_after_secs"], retry);

    // Another user has a budget of their own.
    assert_eq!(chat(&svc, "bob").status(), 200);

    // Both calls of alice are written, exactly: the estimates were replaced by the costs.
    assert_eq!(svc.settled_spend(key_of("alice")), 2 * c as u64);
    assert_eq!(svc.settled_spend(key_of("bob")), c as u64);

    // kill -9 and start again on the same store: the spend survived, alice is refused.
    drop(svc);
    let svc = Service::start(&config, &env);
    let r = chat(&svc, "alice");
    assert_eq!(r.status(), 429, "after restart");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(svc.budget(key_of("alice"))["spent_picousd"], 2 * c as u64);
    assert_eq!(chat(&svc, "bob").status(), 200, "bob: c + e fits");
}

#[test]
fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("budget.db");
    run(dir.path(), vec![("BUDGET_DB", db.display().to_string())]);
}

#[test]
fn redis_store() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!(
        "llmtel:test:budget-guard:{}:{}:",
        std::process::id(),
        Timestamp::now().as_nanosecond()
    );
    run(
        dir.path(),
        vec![("REDIS_URL", redis_url()), ("BUDGET_REDIS_PREFIX", prefix)],
    );
}
