//! Hostile values get a clear 413 or 400 (JSON, saying what to change), never a crash and never
//! a body held in memory: a 1 MB prompt or model name, a prompt over the prompt limit, an
//! absurd `max_tokens`, a body that is not JSON; and a flood of 1 MB bodies leaves the
//! process's memory where it was. After all of it the service still answers normal calls.
//!
//! Starts the built binary as a real process on a loopback port (SQLite store in a temp dir).
#![allow(clippy::unwrap_used)]

mod common;

use common::{ALICE_KEY, BOB_KEY, Service, write_config};
use serde_json::{Value, json};

const MB: usize = 1024 * 1024;

fn start(dir: &std::path::Path) -> Service {
    let config = write_config(dir, "1.00");
    let db = dir.join("budget.db").display().to_string();
    Service::start(&config, &[("BUDGET_DB", db)])
}

/// The status and the JSON error message of a response.
fn status_and_error(r: reqwest::blocking::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

#[test]
fn a_one_megabyte_prompt_or_model_name_gets_413() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = start(dir.path());

    let big = "a".repeat(MB);
    let (status, msg) = status_and_error(
        svc.post_chat(Some(ALICE_KEY), &json!({ "prompt": big, "max_tokens": 64 })),
    );
    assert_eq!(status, 413);
    assert!(msg.contains("larger than 65536 bytes"), "{msg}");

    let (status, msg) = status_and_error(svc.post_chat(
        Some(ALICE_KEY),
        &json!({ "prompt": "Hello!", "model": big }),
    ));
    assert_eq!(status, 413);
    assert!(msg.contains("send a shorter prompt"), "{msg}");

    assert!(svc.alive());
    assert_eq!(
        svc.settled_spend(ALICE_KEY),
        0,
        "a refused call was charged"
    );
    assert_eq!(
        svc.post_chat(Some(ALICE_KEY), &json!({ "prompt": "Hello!" }))
            .status(),
        200
    );
}

#[test]
fn values_within_the_body_limit_but_out_of_range_get_400() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = start(dir.path());

    let cases = [
        // (body, what the error must say)
        (
            json!({ "prompt": "x".repeat(40 * 1024) }),
            "longer than 32768 bytes",
        ),
        (
            json!({ "prompt": "Hello!", "model": "m".repeat(10 * 1024) }),
            "`model` must be \"gpt-4o-mini\"",
        ),
        (
            json!({ "prompt": "Hello!", "model": "gpt-5" }),
            "`model` must be \"gpt-4o-mini\"",
        ),
        (
            json!({ "prompt": "Hello!", "max_tokens": u64::MAX }),
            "max_tokens must be from 48",
        ),
        (
            json!({ "prompt": "Hello!", "max_tokens": 1_000_000 }),
            "to 16384",
        ),
        (json!({ "prompt": "Hello!", "max_tokens": 1 }), "from 48"),
        (json!({ "prompt": "   " }), "`prompt` must not be empty"),
    ];
    for (body, expected) in &cases {
        let (status, msg) = status_and_error(svc.post_chat(Some(ALICE_KEY), body));
        assert_eq!(status, 400, "{expected}");
        assert!(msg.contains(expected), "{msg:?} should say {expected:?}");
        // The answer does not echo a long hostile value back.
        assert!(msg.len() < 1024, "{} bytes", msg.len());
    }

    // Bodies that are not the expected JSON: an error saying what to send.
    let (status, msg) =
        status_and_error(svc.post_raw(ALICE_KEY, Some("application/json"), b"{not json".to_vec()));
    assert_eq!(status, 400);
    assert!(msg.contains("{\"prompt\": \"Hello!\""), "{msg}");
    let (status, msg) = status_and_error(svc.post_raw(
        ALICE_KEY,
        Some("application/json"),
        format!("{{\"prompt\": 7, \"x\": \"{}\"}}", "y".repeat(30_000)).into_bytes(),
    ));
    assert_eq!(status, 422);
    assert!(msg.len() < 1024, "{} bytes", msg.len());
    let (status, msg) = status_and_error(svc.post_raw(ALICE_KEY, None, b"{}".to_vec()));
    assert_eq!(status, 415);
    assert!(msg.contains("Content-Type: application/json"), "{msg}");

    // A long run of one character (the tokenizer's worst case) within the limits: answered.
    let r = svc.post_chat(
        Some(BOB_KEY),
        &json!({ "prompt": "a".repeat(30 * 1024), "max_tokens": 64 }),
    );
    assert_eq!(r.status(), 200);

    assert!(svc.alive());
    assert_eq!(
        svc.settled_spend(ALICE_KEY),
        0,
        "a refused call was charged"
    );
    assert_eq!(
        svc.post_chat(Some(ALICE_KEY), &json!({ "prompt": "Hello!" }))
            .status(),
        200
    );
}

/// Resident memory of a process, from /proc (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_flood_of_one_megabyte_bodies_does_not_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = start(dir.path());
    let pid = svc.child.id();
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/chat", svc.base);
    let big = format!(r#"{{"prompt": "{}"}}"#, "a".repeat(MB));
    let send = |key: &str| {
        client
            .post(&url)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .map(|r| r.status().as_u16())
    };
    // Every such body is refused before it is read, so the server may answer and close the
    // connection while the client is still sending: the client then sees the connection
    // closed instead of the status. Either is fine for one request; a 200 or a crash is not,
    // nor a service that answers few of them (closing connections unanswered).
    let (mut sent, mut answered) = (0usize, 0usize);
    let mut flood = |n: usize| {
        for i in 0..n {
            sent += 1;
            let key = if i % 2 == 0 {
                ALICE_KEY
            } else {
                "no-such-key-0123456789abcdef"
            };
            if let Ok(status) = send(key) {
                assert!(status == 413 || status == 401, "{status}");
                answered += 1;
            }
        }
    };
    // Steady state after a first round.
    flood(20);
    let before = rss_kib(pid);
    // 10,000 more requests of 1 MB each (issue #11: "10,000 requests with 1 MB user ids";
    // budget-guard takes the user from the API key, so the 1 MB a client controls is its body).
    flood(10_000);
    let after = rss_kib(pid);
    assert!(svc.alive());
    // Measured: 9,884 of 10,020 answered (2-core dev machine, debug build); the rest saw the
    // connection closed while still sending. Half leaves room for a loaded machine.
    assert!(
        answered >= sent / 2,
        "only {answered} of {sent} requests got a status (413 or 401)"
    );
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(
        svc.post_chat(Some(ALICE_KEY), &json!({ "prompt": "Hello!" }))
            .status(),
        200
    );
}

#[test]
fn huge_headers_and_paths_are_refused_without_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = start(dir.path());
    let client = reqwest::blocking::Client::new();

    // A 1 MB key: hyper refuses the header block (431) or closes the connection.
    let r = client
        .post(format!("{}/chat", svc.base))
        .bearer_auth("k".repeat(MB))
        .json(&json!({ "prompt": "Hello!" }))
        .send();
    if let Ok(r) = r {
        assert!(r.status() == 431 || r.status() == 401, "{}", r.status());
    }
    // A 20 KB key: past the listener's 16 KiB request-head limit, 431 before any handler.
    let r = svc.post_chat(Some(&"k".repeat(20 * 1024)), &json!({ "prompt": "Hello!" }));
    assert_eq!(r.status(), 431);
    // An 8 KB key within the head limit: an unknown key, 401.
    let r = svc.post_chat(Some(&"k".repeat(8 * 1024)), &json!({ "prompt": "Hello!" }));
    assert_eq!(r.status(), 401);
    // Someone else's budget by a long name: 403, not echoed.
    let r = svc.get(
        &format!("/budget/{}", "u".repeat(8 * 1024)),
        Some(ALICE_KEY),
    );
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().len() < 1024);

    assert!(svc.alive());
    assert_eq!(
        svc.post_chat(Some(ALICE_KEY), &json!({ "prompt": "Hello!" }))
            .status(),
        200
    );
}
