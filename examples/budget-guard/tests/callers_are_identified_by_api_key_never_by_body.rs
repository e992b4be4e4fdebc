//! budget-guard identifies the caller from `Authorization: Bearer KEY` (the `[api_keys]` table
//! of its budgets file), never from the body: a missing or unknown key gets 401 with a JSON
//! error saying what to send; one user's key can neither read nor spend another user's
//! budget; a `user` field in the body is ignored; the key never reaches the log.
//!
//! Every test starts the built binary as a real process on a loopback port (SQLite store in
//! a temp dir).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;

use common::{ALICE_KEY, BOB_KEY, Service, command, free_port, write_config};
use serde_json::{Value, json};

/// A budget large enough for every call of these tests.
const LIMIT_USD: &str = "1.00";

fn start(dir: &std::path::Path) -> Service {
    let config = write_config(dir, LIMIT_USD);
    let db = dir.join("budget.db").display().to_string();
    Service::start(&config, &[("BUDGET_DB", db)])
}

fn hello() -> Value {
    json!({ "prompt": "Hello!", "max_tokens": 64 })
}

/// A 401 whose JSON error tells the caller to send a Bearer key.
fn assert_401(r: reqwest::blocking::Response, what: &str) {
    assert_eq!(r.status(), 401, "{what}");
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer realm=\"budget-guard\""),
        "{what}"
    );
    let body: Value = r.json().unwrap();
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("Authorization: Bearer <API key>") && msg.contains("[api_keys]"),
        "{what}: {msg}"
    );
}

#[test]
fn a_request_without_an_api_key_gets_401_saying_what_to_send() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(dir.path());

    assert_401(svc.post_chat(None, &hello()), "POST /chat without a key");
    assert_401(svc.get("/budget", None), "GET /budget without a key");
    assert_401(
        svc.get("/budget/alice", None),
        "GET /budget/alice without a key",
    );
    // Another scheme, or `Bearer` without a key, is no key either.
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/chat", svc.base))
        .basic_auth("alice", Some(ALICE_KEY))
        .json(&hello())
        .send()
        .unwrap();
    assert_401(r, "Basic auth");
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/budget", svc.base))
        .header("authorization", "Bearer ")
        .send()
        .unwrap();
    assert_401(r, "empty Bearer");
    // Nothing was spent by anyone.
    assert_eq!(svc.settled_spend(ALICE_KEY), 0);
    // The health check stays open.
    assert_eq!(svc.get("/healthz", None).status(), 200);
}

#[test]
fn an_unknown_api_key_gets_401() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(dir.path());

    let unknown = [
        "test-key-mallory-0123456789abcdef".to_owned(),
        // Near misses of a real key: a prefix, an extension, a changed last byte, other case.
        ALICE_KEY[..ALICE_KEY.len() - 1].to_owned(),
        format!("{ALICE_KEY}0"),
        format!("{}g", &ALICE_KEY[..ALICE_KEY.len() - 1]),
        ALICE_KEY.to_uppercase(),
    ];
    for key in &unknown {
        assert_401(
            svc.post_chat(Some(key), &hello()),
            &format!("chat, key {key}"),
        );
        assert_401(svc.get("/budget", Some(key)), &format!("budget, key {key}"));
    }
    assert_eq!(svc.settled_spend(ALICE_KEY), 0);
    // The real key works, with the scheme in any case.
    assert_eq!(svc.post_chat(Some(ALICE_KEY), &hello()).status(), 200);
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/budget", svc.base))
        .header("authorization", format!("bearer {ALICE_KEY}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn the_key_of_alice_can_neither_read_nor_spend_bobs_budget() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(dir.path());

    // Alice asks to be charged as bob: the body's `user` is ignored, alice pays.
    let mut body = hello();
    body["user"] = json!("bob");
    let r = svc.post_chat(Some(ALICE_KEY), &body);
    assert_eq!(r.status(), 200);
    let cost = r.json::<Value>().unwrap()["cost_picousd"].as_u64().unwrap();
    assert!(cost > 0);
    assert_eq!(svc.settled_spend(ALICE_KEY), cost);
    assert_eq!(
        svc.settled_spend(BOB_KEY),
        0,
        "bob was charged for alice's call"
    );

    // GET /budget answers the caller's own row only.
    let alice: Value = svc.get("/budget", Some(ALICE_KEY)).json().unwrap();
    let rows = alice.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{alice}");
    assert_eq!(rows[0]["scope"], "user.id=alice");
    let bob: Value = svc.get("/budget", Some(BOB_KEY)).json().unwrap();
    assert_eq!(bob[0]["scope"], "user.id=bob");

    // Another user's budget by name: 403, and nothing of it in the answer.
    let r = svc.get("/budget/bob", Some(ALICE_KEY));
    assert_eq!(r.status(), 403);
    let text = r.text().unwrap();
    assert!(text.contains("GET /budget"), "{text}");
    assert!(!text.contains("spent"), "{text}");
    // One's own, by name, is the same as GET /budget.
    let r = svc.get("/budget/alice", Some(ALICE_KEY));
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()[0]["scope"], "user.id=alice");
}

#[test]
fn the_body_user_field_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(dir.path());

    // Bob sends calls naming alice, a made-up user and a hostile label: all charged to bob.
    for user in [
        json!("alice"),
        json!("mallory"),
        json!("<!channel>"),
        json!(42),
    ] {
        let mut body = hello();
        body["user"] = user.clone();
        let r = svc.post_chat(Some(BOB_KEY), &body);
        assert_eq!(r.status(), 200, "user {user}");
    }
    let one = svc
        .post_chat(Some(BOB_KEY), &hello())
        .json::<Value>()
        .unwrap()["cost_picousd"]
        .as_u64()
        .unwrap();
    assert_eq!(svc.settled_spend(BOB_KEY), 5 * one);
    assert_eq!(svc.settled_spend(ALICE_KEY), 0);
}

#[test]
fn the_api_key_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), LIMIT_USD);
    let log_path = dir.path().join("stderr.log");
    let port = free_port();
    let mut cmd = command(
        &config,
        port,
        &[
            ("BUDGET_DB", dir.path().join("b.db").display().to_string()),
            // Everything the service logs, at every level.
            ("RUST_LOG", "trace".to_owned()),
        ],
    );
    cmd.stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let svc = Service::spawn(cmd, port);

    let wrong = "test-key-wrong-0123456789abcdef";
    assert_eq!(svc.post_chat(Some(ALICE_KEY), &hello()).status(), 200);
    assert_eq!(svc.get("/budget", Some(BOB_KEY)).status(), 200);
    assert_eq!(svc.get("/budget/bob", Some(ALICE_KEY)).status(), 403);
    assert_eq!(svc.post_chat(Some(wrong), &hello()).status(), 401);
    svc.settled_spend(ALICE_KEY);
    drop(svc); // killed: everything it wrote is in the file

    let log = std::fs::read_to_string(&log_path).unwrap();
    // The log is there and names the callers...
    assert!(log.contains("caller authenticated"), "{log}");
    assert!(log.contains("alice") && log.contains("bob"), "{log}");
    assert!(log.contains("401: no valid API key"), "{log}");
    // ...but no key, valid or not (not even half of one).
    for key in [ALICE_KEY, BOB_KEY, wrong] {
        let half = &key[..key.len() / 2 + 1];
        assert!(
            !log.contains(half),
            "the log contains (part of) key {key}:\n{log}"
        );
    }
}

#[test]
fn a_budgets_file_without_api_keys_stops_the_service_with_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("budgets.toml");
    std::fs::write(
        &config,
        "[[rule]]\nname = \"d\"\nscope = \"user\"\nperiod = \"day\"\nlimit_usd = \"1\"\n",
    )
    .unwrap();
    let out = command(&config, free_port(), &[])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no [api_keys] table"), "{err}");
    assert!(err.contains("openssl rand -hex 24"), "{err}");

    // A key too short to be a secret is refused too, and the message does not print it.
    std::fs::write(
        &config,
        "[[rule]]\nname = \"d\"\nscope = \"user\"\nperiod = \"day\"\nlimit_usd = \"1\"\n\
         [api_keys]\n\"hunter2\" = \"alice\"\n",
    )
    .unwrap();
    let out = command(&config, free_port(), &[])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shorter than 16 characters"), "{err}");
    assert!(err.contains("\"alice\""), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
