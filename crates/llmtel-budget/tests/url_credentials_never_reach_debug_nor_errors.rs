//! A store URL's credentials never reach a `Debug` or an error message: the password of
//! the userinfo (found by the last `@` before the query, so a raw `#`, `/` or `?` in it is
//! masked whole, and an `@` in a query value is not taken for it) and credential query
//! parameters (`redis+unix:///run/redis.sock?pass=...`, which redis-rs accepts), in
//! `StoreConfig`'s and `Config`'s `Debug` and in store errors.

use llmtel_budget::{Config, ConfigError, StoreError, redact_url_credentials};

const SECRET: &str = "s3cret-Pw";

fn assert_masked(text: &str, secret: &str) {
    let masked = redact_url_credentials(text);
    assert!(!masked.contains(secret), "{text:?} -> {masked:?}");
    assert!(masked.contains("***"), "{text:?} -> {masked:?}");
}

#[test]
fn credential_query_parameters_are_masked() {
    for url in [
        format!("redis+unix:///run/redis.sock?pass={SECRET}"),
        format!("unix:///run/redis.sock?db=1&password={SECRET}"),
        format!("redis+unix:///run/redis.sock?pass={SECRET}&db=2"),
        format!("redis://host:6379/0?token={SECRET}"),
        format!("redis://host:6379/0?user=app&PASS={SECRET}"),
        format!("rediss://host/?api_key={SECRET}"),
        format!("redis://host/?secret={SECRET}"),
    ] {
        assert_masked(&url, SECRET);
    }
    // The rest stays readable.
    assert_eq!(
        redact_url_credentials(&format!("redis+unix:///run/redis.sock?db=2&pass={SECRET}")),
        "redis+unix:///run/redis.sock?db=2&pass=***"
    );
    // An `@` past what looks like a query: a query value holding `@`, or a password
    // holding `?name=`, cannot be told apart: nothing past the scheme is shown.
    for (url, shown) in [
        (
            "redis+unix:///run/redis.sock?pass=p@ssw0rd",
            "redis+unix://***",
        ),
        ("redis://h:6379/0?password=ab@cd", "redis://***"),
        (
            "redis://app:pw@h:6379/0?password=ab@cd&db=1 refused",
            "redis://*** refused",
        ),
        ("redis://default:Xy7?q=Z9@cache:6379", "redis://***"),
        ("redis://h:6379/0?client_name=me@corp", "redis://***"),
    ] {
        assert_eq!(redact_url_credentials(url), shown, "{url}");
    }
    // A value holding `&` is masked whole.
    assert_eq!(
        redact_url_credentials("redis+unix:///r.sock?pass=ab&cd&db=1"),
        "redis+unix:///r.sock?pass=***&***&db=1"
    );
}

#[test]
fn a_password_holding_hash_slash_or_question_mark_is_masked_whole() {
    for pw in [
        "pa#ss-s3cret",
        "pa/ss-s3cret",
        "pa?ss-s3cret",
        "p@ss-s3cret",
    ] {
        for url in [
            format!("redis://:{pw}@cache:6379/0"),
            format!("redis://app:{pw}@cache:6379"),
            format!("error connecting to redis://default:{pw}@cache:6379/0: refused"),
        ] {
            let masked = redact_url_credentials(&url);
            assert!(!masked.contains("s3cret"), "{url:?} -> {masked:?}");
            assert!(masked.contains("@cache:6379"), "{url:?} -> {masked:?}");
        }
    }
    assert_eq!(
        redact_url_credentials("redis://app:pa#s/s?w@cache:6379/0 (timeout)"),
        "redis://app:***@cache:6379/0 (timeout)"
    );
    // Nothing to mask: unchanged.
    for plain in [
        "redis://cache:6379/0",
        "no url here",
        "unix:///run/redis.sock?db=1",
    ] {
        assert_eq!(redact_url_credentials(plain), plain);
    }
}

#[test]
fn debug_and_errors_of_a_unix_socket_url_with_a_password_mask_it() {
    let cfg = Config::from_toml_str(&format!(
        "[store]\nkind = \"redis\"\nurl = \"redis+unix:///run/redis.sock?pass={SECRET}\"\n"
    ))
    .expect("config");
    for debug in [format!("{:?}", cfg.store), format!("{cfg:?}")] {
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(debug.contains("pass=***"), "{debug}");
    }
    let e = StoreError::unavailable(
        "redis",
        format!("cannot connect to redis+unix:///run/redis.sock?pass={SECRET}"),
    );
    assert!(!format!("{e}").contains(SECRET), "{e}");
    assert!(!format!("{e:?}").contains(SECRET), "{e:?}");
    let e = ConfigError::Store(format!("redis://:pa#{SECRET}@cache:6379 refused"));
    assert!(!e.to_string().contains(SECRET), "{e}");
}
