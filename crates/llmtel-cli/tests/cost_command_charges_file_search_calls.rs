//! `llmtel cost --file-search-calls N` and `file_search_calls` in `--batch` input: the file
//! search calls are charged at the price file's per-call price, like web search queries.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::io::Write;
use std::process::{Command, Output, Stdio};

const PRICES: &str = r#"
[[model]]
id = "searcher-1"
provider = "openai"
[[model.price]]
effective = "2025-01-01"
input = 2.0
output = 8.0
[model.price.per_request]
file_search_call = 0.0025
"#;

fn prices_file(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "llmtel-cli-file-search-{name}-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, PRICES).unwrap();
    path
}

fn json_of(o: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn the_file_search_calls_flag_is_charged_per_call() {
    let prices = prices_file("flag");
    let out = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args([
            "cost",
            "--prices",
            prices.to_str().unwrap(),
            "--model",
            "searcher-1",
            "--input-tokens",
            "1000",
            "--output-tokens",
            "100",
            "--file-search-calls",
            "4",
            "--at",
            "2026-01-01",
            "--json",
        ])
        .output()
        .unwrap();
    let v = json_of(&out);
    // 4 × $0.0025; 1,000 × $2/M + 100 × $8/M = $0.0028
    assert_eq!(v["breakdown_exact"]["file_search"], "0.010000");
    assert_eq!(v["cost_usd_exact"], "0.012800");
    assert_eq!(v["usage"]["file_search_calls"], 4);
    assert_eq!(v["notes"], serde_json::json!([]));
}

#[test]
fn batch_lines_take_file_search_calls() {
    let prices = prices_file("batch");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args([
            "cost",
            "--batch",
            "--prices",
            prices.to_str().unwrap(),
            "--at",
            "2026-01-01",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            br#"{"model": "searcher-1", "input_tokens": 1000, "output_tokens": 100, "file_search_calls": 3}
"#,
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v = json_of(&out);
    // 3 × $0.0025 + $0.0028
    assert_eq!(v["breakdown_exact"]["file_search"], "0.007500");
    assert_eq!(v["cost_usd_exact"], "0.010300");
    assert_eq!(v["usage"]["file_search_calls"], 3);
}
