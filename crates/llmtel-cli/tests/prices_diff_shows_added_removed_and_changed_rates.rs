//! `llmtel prices diff OLD NEW`: added and removed models and each changed rate.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::process::{Command, Output};

fn llmtel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(args)
        .output()
        .expect("run llmtel")
}

const OLD: &str = r#"
[[model]]
id = "kept"
provider = "openai"
[[model.price]]
effective = "2025-01-01"
input = 2.5
output = 10.0
[model.price.service_tier.priority]
input = 4.25

[[model]]
id = "gone"
provider = "openai"
[[model.price]]
effective = "2025-01-01"
input = 1.0
output = 2.0
"#;

const NEW: &str = r#"
[[model]]
id = "kept"
provider = "openai"
[[model.price]]
effective = "2025-01-01"
input = 2.0
output = 10.0
[model.price.service_tier.priority]
input = 4.25
[model.price.per_request]
web_search = { low = 0.01, medium = 0.01, high = 0.01 }

[[model]]
id = "new-model"
provider = "anthropic"
[[model.price]]
effective = "2025-06-01"
input = 3.0
output = 15.0
"#;

fn files(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("llmtel-prices-diff-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = (dir.join("old.toml"), dir.join("new.toml"));
    std::fs::write(&old, OLD).unwrap();
    std::fs::write(&new, NEW).unwrap();
    (old, new)
}

#[test]
fn diff_lists_added_removed_and_changed_rates() {
    let (old, new) = files("text");
    let o = llmtel(&[
        "prices",
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("1 added, 1 removed, 1 changed"), "{out}");
    assert!(out.contains("+ new-model"), "{out}");
    assert!(out.contains("- gone"), "{out}");
    assert!(out.contains("~ kept"), "{out}");
    assert!(out.contains("input: 2.5 -> 2"), "{out}");
    assert!(
        out.contains("per_request.web_search.medium: (none) -> 0.010000"),
        "{out}"
    );
    assert!(
        !out.contains("service_tier.priority.input"),
        "unchanged rate listed: {out}"
    );
}

#[test]
fn diff_json_and_a_bad_file_error() {
    let (old, new) = files("json");
    let o = llmtel(&[
        "prices",
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["added"], serde_json::json!(["new-model"]));
    assert_eq!(v["removed"], serde_json::json!(["gone"]));
    assert_eq!(v["changed"][0]["id"], "kept");
    assert_eq!(v["changed"][0]["changes"][0]["field"], "input");
    assert_eq!(v["changed"][0]["changes"][0]["old"], "2.5");
    assert_eq!(v["changed"][0]["changes"][0]["new"], "2");
    let o = llmtel(&[
        "prices",
        "diff",
        old.to_str().unwrap(),
        "/nonexistent/prices.toml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/prices.toml"));
}
