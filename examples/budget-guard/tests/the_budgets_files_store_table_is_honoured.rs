//! The budgets file's `[store]` table: the store it names is the one the service uses (when
//! neither `REDIS_URL` nor `BUDGET_DB` is set), with its `on_store_error`; and an
//! `on_store_error` that is neither "open" nor "closed" stops the service at startup, naming
//! both. The service used to ignore `kind`, `path`, `url` and `prefix`, and to read any value
//! but exactly "closed" as "open" (a typo turned enforcement off during outages).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ALICE_KEY, Service, api_keys_toml, command, free_port};
use serde_json::json;

/// A budgets file with `store` as its `[store]` table, a generous daily rule and the keys.
fn write_config(dir: &Path, store: &str) -> std::path::PathBuf {
    let path = dir.join("budgets.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\n{store}\n\n[[rule]]\nname = \"per-user-daily\"\nscope = \"user\"\n\
             period = \"day\"\ntime_zone = \"UTC\"\nlimit_usd = \"100\"\n{}",
            api_keys_toml()
        ),
    )
    .unwrap();
    path
}

/// The service's command with neither `REDIS_URL` nor `BUDGET_DB`, run in `dir` (where the
/// default SQLite file would land).
fn without_store_variables(config: &Path, dir: &Path, port: u16) -> Command {
    let mut cmd = command(config, port, &[]);
    cmd.env_remove("BUDGET_DB")
        .env_remove("BUDGET_REDIS_PREFIX")
        .current_dir(dir);
    cmd
}

/// A loopback address nothing listens on.
fn dead_redis_url() -> String {
    format!("redis://127.0.0.1:{}/", free_port())
}

#[test]
fn a_typo_in_on_store_error_stops_the_service_and_names_the_accepted_values() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "on_store_error = \"Closed\"");
    let mut child = without_store_variables(&config, dir.path(), free_port())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("budget-guard started with on_store_error = \"Closed\"");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{status}: {stderr}");
    for word in ["on_store_error", "\"Closed\"", "\"open\"", "\"closed\""] {
        assert!(stderr.contains(word), "{word} missing from: {stderr}");
    }
}

#[test]
fn the_store_the_file_names_is_used_with_its_failure_mode() {
    // Redis named by the file, down, fail-closed: /chat answers 503. (Ignoring the table,
    // the service used SQLite and answered 200.)
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "kind = \"redis\"\nurl = \"{}\"\nprefix = \"llmtel:test:budget-guard-file:\"\non_store_error = \"closed\"",
            dead_redis_url()
        ),
    );
    let port = free_port();
    let svc = Service::spawn(without_store_variables(&config, dir.path(), port), port);
    let r = svc.post_chat(Some(ALICE_KEY), &json!({ "prompt": "Hello!" }));
    assert_eq!(
        r.status(),
        503,
        "fail-closed on the file's (unreachable) Redis"
    );
    drop(svc);
    assert!(
        !dir.path().join("budget-guard.db").exists(),
        "the default SQLite file was used instead of the file's store"
    );

    // The same, fail-open: admitted.
    let config = write_config(
        dir.path(),
        &format!(
            "kind = \"redis\"\nurl = \"{}\"\non_store_error = \"open\"",
            dead_redis_url()
        ),
    );
    let port = free_port();
    let svc = Service::spawn(without_store_variables(&config, dir.path(), port), port);
    let r = svc.post_chat(Some(ALICE_KEY), &json!({ "prompt": "Hello!" }));
    assert_eq!(
        r.status(),
        200,
        "fail-open on the file's (unreachable) Redis"
    );
}

#[test]
fn the_sqlite_file_the_store_table_names_keeps_the_spend_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-the-file.db");
    let config = write_config(
        dir.path(),
        &format!("kind = \"sqlite\"\npath = {:?}", db.display().to_string()),
    );
    let port = free_port();
    let svc = Service::spawn(without_store_variables(&config, dir.path(), port), port);
    let r = svc.post_chat(Some(ALICE_KEY), &json!({ "prompt": "Hello!" }));
    assert_eq!(r.status(), 200);
    let cost = r.json::<serde_json::Value>().unwrap()["cost_picousd"]
        .as_u64()
        .unwrap();
    assert!(cost > 0);
    assert_eq!(svc.settled_spend(ALICE_KEY), cost);
    drop(svc); // killed: what it wrote is in the file

    assert!(db.exists(), "the [store] path was not used");
    assert!(!dir.path().join("budget-guard.db").exists());
    let port = free_port();
    let svc = Service::spawn(without_store_variables(&config, dir.path(), port), port);
    assert_eq!(
        svc.settled_spend(ALICE_KEY),
        cost,
        "spend read back from {db:?}"
    );
}
