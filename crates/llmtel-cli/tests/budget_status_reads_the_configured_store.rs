//! `llmtel budget status --config FILE` reads the store the config names and prints every
//! rule and scope with what it spent.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::process::Command;
use std::time::Duration;

use llmtel_budget::{Budgets, CallContext, Config};

#[test]
fn status_shows_the_spend_recorded_in_a_sqlite_store() {
    let dir = std::env::temp_dir().join(format!("llmtel-cli-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("budgets.sqlite");
    let _ = std::fs::remove_file(&db);
    let config = dir.join("budgets.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
kind = "sqlite"
path = "{}"

[[rule]]
name = "per-user-daily"
scope = "user"
period = "day"
limit_usd = "5"
"#,
            db.display()
        ),
    )
    .unwrap();

    // Spend $1.25 for alice through the library, as an app would.
    let cfg = Config::load(&config).unwrap();
    let budgets: Budgets = llmtel_budget::from_config(&cfg).unwrap().build();
    budgets.record(
        &CallContext::new().with_user("alice"),
        llmtel::Usd::parse_decimal("1.25").unwrap(),
        1_000,
    );
    assert!(
        budgets.flush(Duration::from_secs(10)),
        "spend written to SQLite"
    );
    drop(budgets);

    let out = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(["budget", "status", "--config"])
        .arg(&config)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = v
        .as_array()
        .unwrap_or_else(|| panic!("a JSON array: {text}"));
    let alice = rows
        .iter()
        .find(|r| r["scope"].as_str().is_some_and(|s| s.contains("alice")))
        .unwrap_or_else(|| panic!("alice's row in {text}"));
    assert_eq!(alice["rule"], "per-user-daily");
    assert!(
        (alice["spent"].as_f64().unwrap() - 1.25).abs() < 1e-9,
        "{alice}"
    );
    assert!(
        (alice["utilization"].as_f64().unwrap() - 0.25).abs() < 1e-9,
        "{alice}"
    );

    // The table form names the rule and the scope too.
    let out = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(["budget", "status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("per-user-daily") && table.contains("alice"),
        "{table}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_config_exits_2_with_the_file_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(["budget", "status", "--config", "/nonexistent/budgets.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/budgets.toml"), "{err}");
}
