//! Redis over TLS (`rediss://`, feature `redis-tls`) against scripts/redis.sh's TLS port,
//! whose certificate is signed by a self-signed CA: the CA configured in the TOML `[store]`
//! table is trusted; the system's roots, another CA, or a plain `redis://` URL against the
//! TLS port are refused with an error that says what to do, and the budgets fail open (or
//! closed, as configured) instead of blocking requests.
#![cfg(feature = "redis-tls")]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmtel_budget::{
    BudgetStore, Budgets, CallContext, Config, Estimate, FailMode, Period, RedisStore,
    ReserveError, Rule, Scope,
};
use support::{redis_ca, rediss_url, unique_prefix, usd};

fn dollar() -> Rule {
    Rule::new("dollar", Scope::Global, Period::Lifetime).with_limit_usd(usd("1"))
}

/// A CA of our own (openssl), valid but not the one that signed the server's certificate.
fn other_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let (key, crt) = (dir.join("other-ca.key"), dir.join("other-ca.crt"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=llmtel other test CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl (scripts/redis.sh needs it for its TLS port too)");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    crt
}

/// What one store operation answers (the first one connects).
fn first_error(store: RedisStore) -> String {
    match store
        .with_timeout(Duration::from_secs(2))
        .fire_once("probe", 1_000, 0)
    {
        Ok(_) => panic!("connected, expected a TLS failure"),
        Err(e) => e.to_string(),
    }
}

/// `store` refuses to connect: a reserve through `Budgets` is admitted unenforced within
/// the timeout (fail-open) and counted; fail-closed refuses it.
fn fails_open_and_closed(store: RedisStore) {
    let store: Arc<dyn BudgetStore> = Arc::new(store.with_timeout(Duration::from_millis(300)));
    let b = Budgets::builder()
        .with_store(store.clone())
        .with_rule(dollar())
        .build();
    let t0 = Instant::now();
    let r = b
        .reserve(&CallContext::new(), Estimate::new(usd("0.01"), 0))
        .expect("fail-open admits");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(!r.is_enforced());
    let s = b.stats();
    assert_eq!((s.admitted_unenforced, s.admitted), (1, 0), "{s:?}");
    assert!(s.store_errors >= 1, "{s:?}");
    r.release();

    let closed = Budgets::builder()
        .with_store(store)
        .with_rule(dollar())
        .with_fail_mode(FailMode::Closed)
        .build();
    match closed.reserve(&CallContext::new(), Estimate::new(usd("0.01"), 0)) {
        Err(ReserveError::StoreUnavailable(e)) => assert_eq!(e.store, "redis"),
        other => panic!("expected StoreUnavailable, got {other:?}"),
    }
}

#[test]
fn the_ca_file_of_the_store_table_is_trusted_and_spend_is_exact_over_tls() {
    let prefix = unique_prefix("tls-config");
    let cfg = Config::from_toml_str(&format!(
        r#"
        [store]
        kind = "redis"
        url = "{}"
        ca_file = "{}"
        prefix = "{prefix}"
        on_store_error = "closed"

        [[rule]]
        name = "dollar"
        scope = "global"
        period = "lifetime"
        limit_usd = "1"
        "#,
        rediss_url(),
        redis_ca()
    ))
    .expect("config");
    assert_eq!(cfg.store.ca_file.as_deref(), Some(redis_ca().as_str()));
    let b = llmtel_budget::from_config(&cfg).expect("store").build();
    let ctx = CallContext::new();
    let mut held = Vec::new();
    let mut slow = 0;
    loop {
        match b.reserve(&ctx, Estimate::new(usd("0.07"), 0)) {
            Ok(r) => {
                assert!(r.is_enforced());
                held.push(r);
            }
            Err(ReserveError::Exceeded(_)) => break,
            // The default 100 ms reserve deadline covers the TLS handshake: on a loaded
            // machine a debug build may miss it; fail-closed refuses that call, the
            // handshake finishes in the background and serves the next. A few misses in a
            // row open the circuit breaker for its cool-down: wait it out.
            Err(ReserveError::StoreUnavailable(e)) => {
                // A reserve that timed out may have landed: its release is written first.
                assert!(b.flush(Duration::from_secs(10)));
                if e.message.contains("circuit breaker") {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                slow += 1;
                assert!(slow < 10, "Redis over TLS unreachable: {e}");
            }
            Err(e @ ReserveError::Unpriced { .. }) => panic!("an explicit estimate: {e}"),
        }
    }
    assert_eq!(held.len(), 14, "14 x $0.07 <= $1 < 15 x $0.07");
    for r in held {
        r.settle(usd("0.07"), 7);
    }
    assert!(b.flush(Duration::from_secs(10)));
    let s = &b.status_for(&ctx).expect("status over TLS")[0];
    assert_eq!(
        (s.spent, s.spent_tokens, s.reserved),
        (usd("0.98"), 98, usd("0"))
    );
    // Each slow reserve is a store error (the writer's own connection may add one more
    // when the handshake is slow for it too).
    assert!(b.stats().store_errors >= slow);
}

#[test]
fn system_roots_and_another_ca_are_refused_with_a_hint_and_budgets_fail_open() {
    // No CA given: the system's roots do not include scripts/redis.sh's private CA.
    let system = RedisStore::open(&rediss_url()).expect("url");
    let e = first_error(system);
    assert!(
        e.contains("certificate") && e.contains("ca_file"),
        "says the certificate is not trusted and how to trust it: {e}"
    );
    fails_open_and_closed(RedisStore::open(&rediss_url()).expect("url"));

    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = other_ca(dir.path());
    let store = RedisStore::open(&rediss_url())
        .expect("url")
        .with_ca_file(&wrong)
        .expect("a valid CA file");
    let e = first_error(store);
    assert!(e.contains("certificate") && e.contains("ca_file"), "{e}");
    fails_open_and_closed(
        RedisStore::open(&rediss_url())
            .expect("url")
            .with_ca_file(&wrong)
            .expect("CA"),
    );
}

#[test]
fn a_plain_redis_url_against_the_tls_port_fails_within_the_timeout_with_a_hint() {
    let plain = rediss_url().replacen("rediss://", "redis://", 1);
    let e = first_error(RedisStore::open(&plain).expect("url"));
    assert!(e.contains("rediss://"), "suggests TLS: {e}");
    assert!(!e.contains("llmtel-test"), "the password stays out: {e}");
    fails_open_and_closed(RedisStore::open(&plain).expect("url"));
}

#[test]
fn unusable_ca_settings_are_config_errors_that_say_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |url: &str, ca: &std::path::Path| {
        let cfg = Config::from_toml_str(&format!(
            "[store]\nkind = \"redis\"\nurl = \"{url}\"\nca_file = \"{}\"\n",
            ca.display()
        ))
        .expect("config");
        match llmtel_budget::from_config(&cfg) {
            Ok(_) => panic!("opened with ca_file {}", ca.display()),
            Err(e) => e.to_string(),
        }
    };
    let missing = dir.path().join("missing.crt");
    let e = open(&rediss_url(), &missing);
    assert!(
        e.contains("cannot read the CA file") && e.contains("missing.crt"),
        "{e}"
    );

    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let e = open(&rediss_url(), &empty);
    assert!(e.contains("no certificate found"), "{e}");

    let plain = rediss_url().replacen("rediss://", "redis://", 1);
    let e = open(&plain, std::path::Path::new(&redis_ca()));
    assert!(e.contains("only used with a rediss:// URL"), "{e}");
}
