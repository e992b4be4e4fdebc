//! SIGTERM stops the listener, but a call already being served still gets its answer and its
//! spend reaches the store: the service waits for it before it writes the queued spend and
//! exits (it used to flush at once and return, cutting the connection; the call's spend was
//! never settled).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ALICE_KEY, Service, write_config};
use serde_json::{Value, json};

#[test]
fn a_call_in_flight_at_sigterm_is_answered_and_its_spend_is_in_the_store_after_exit() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "100");
    let db = ("BUDGET_DB", dir.path().join("b.db").display().to_string());
    // The simulated model answers after 3 s: the call is still running when SIGTERM comes.
    let mut svc = Service::start(&config, &[db.clone(), ("SIM_LATENCY_MS", "3000".into())]);

    let in_flight = {
        let base = svc.base.clone();
        std::thread::spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap()
                .post(format!("{base}/chat"))
                .bearer_auth(ALICE_KEY)
                .json(&json!({ "prompt": "Where is my order?" }))
                .send()
        })
    };
    // The call is in its handler once its reservation shows.
    let deadline = Instant::now() + Duration::from_secs(20);
    while svc.budget(ALICE_KEY)["reserved_picousd"] == 0 {
        assert!(Instant::now() < deadline, "the call never reserved");
        std::thread::sleep(Duration::from_millis(20));
    }

    let pid = svc.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let r = in_flight
        .join()
        .unwrap()
        .expect("the call in flight at SIGTERM is answered");
    assert_eq!(r.status(), 200);
    let cost = r.json::<Value>().unwrap()["cost_picousd"].as_u64().unwrap();
    assert!(cost > 0);

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = svc.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "budget-guard did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a clean exit: {status}");
    drop(svc);

    // Started again on the same file: the call's spend is there, its reservation gone.
    let svc = Service::start(&config, &[db]);
    assert_eq!(svc.settled_spend(ALICE_KEY), cost);
}
