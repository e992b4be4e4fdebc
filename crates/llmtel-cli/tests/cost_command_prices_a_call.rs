//! `llmtel cost` end to end: runs the built binary.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::process::{Command, Output};

fn llmtel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(args)
        .output()
        .expect("run llmtel")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    let text = stdout(o);
    assert_eq!(text.trim().lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn gpt_4o_one_million_each_way_costs_12_50() {
    // gpt-4o: $2.50 in + $10.00 out per million tokens = $12.50
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-4o",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "1000000",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["cost_usd"], 12.5);
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["matched"], "gpt-4o");
    assert_eq!(v["match"], "exact");
    assert_eq!(v["provider"], "openai");
    assert_eq!(v["price_date"], "2024-10-02");
    assert_eq!(v["breakdown"]["input"], 2.5);
    assert_eq!(v["breakdown"]["output"], 10.0);
    assert_eq!(v["breakdown"]["cache_read"], 0.0);
    assert_eq!(v["breakdown"]["cache_write"], 0.0);
    assert_eq!(v["breakdown"]["reasoning"], 0.0);
}

#[test]
fn snapshot_name_cache_and_date_flags() {
    // gpt-4o-2024-08-06 → gpt-4o; 600_000 uncached × $2.50/M = $1.50,
    // 400_000 cached × $1.25/M = $0.50, 100_000 out × $10/M = $1.00 → $3.00
    let o = llmtel(&[
        "cost",
        "--model",
        "openai/gpt-4o-2024-08-06",
        "--input-tokens",
        "1000000",
        "--cache-read-tokens",
        "400000",
        "--output-tokens",
        "100000",
        "--at",
        "2025-01-01",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["model"], "openai/gpt-4o-2024-08-06");
    assert_eq!(v["matched"], "gpt-4o");
    assert_eq!(v["match"], "snapshot");
    assert_eq!(v["cost_usd"], 3.0);
    assert_eq!(v["breakdown"]["cache_read"], 0.5);
    // Before 2024-10-02 gpt-4o was $5 + $15.
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-4o",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "1000000",
        "--at",
        "2024-06-01",
        "--json",
    ]);
    assert_eq!(json(&o)["cost_usd"], 20.0);
}

#[test]
fn table_output_shows_total_and_breakdown() {
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-4o",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "1000000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        "gpt-4o",
        "openai",
        "$2.500000",
        "$10.000000",
        "$12.500000",
        "total",
        "cache read",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn unknown_model_exits_2_with_suggestions() {
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-4-o",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    let err = stderr(&o);
    assert!(err.contains("unknown model `gpt-4-o`"), "{err}");
    assert!(err.contains("gpt-4o"), "{err}");
}

#[test]
fn user_price_file_overrides_the_builtin_price() {
    let dir = std::env::temp_dir().join(format!("llmtel-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("prices.toml");
    std::fs::write(
        &file,
        r#"
[[model]]
id = "gpt-4o"
provider = "openai"
[[model.price]]
effective = "2020-01-01"
input = 1
output = 2

[[model]]
id = "in-house-llm"
provider = "acme"
[[model.price]]
effective = "2020-01-01"
input = "0.5"
output = "0.75"
"#,
    )
    .expect("write price file");
    let path = file.to_str().expect("utf-8 path");
    // $1 + $2 per million instead of $2.50 + $10
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-4o",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "1000000",
        "--prices",
        path,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["cost_usd"], 3.0);
    // a model only the user file knows: $0.50 + $0.75
    let o = llmtel(&[
        "cost",
        "--model",
        "in-house-llm",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "1000000",
        "--prices",
        path,
        "--json",
    ]);
    let v = json(&o);
    assert_eq!(v["cost_usd"], 1.25);
    assert_eq!(v["provider"], "acme");
    // builtin models are still there
    let o = llmtel(&[
        "cost",
        "--model",
        "claude-haiku-4-5",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "0",
        "--prices",
        path,
        "--json",
    ]);
    assert_eq!(json(&o)["cost_usd"], 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_price_file_exits_2_naming_file_entry_and_field() {
    let dir = std::env::temp_dir().join(format!("llmtel-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[[model]]\nid = \"broken\"\nprovider = \"acme\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = -3\noutput = 1\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8 path");
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-4o",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
        "--prices",
        path,
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains(&format!("{path}:6")), "{err}");
    assert!(err.contains("`broken`"), "{err}");
    assert!(err.contains("price.input"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_are_clap_errors() {
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-4o",
        "--input-tokens",
        "x",
        "--output-tokens",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-4o",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
        "--at",
        "yesterday",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("YYYY-MM-DD"), "{}", stderr(&o));
}

#[test]
fn batch_answers_a_line_that_is_not_utf8_and_prices_the_rest() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(["cost", "--batch", "--at", "2026-01-01"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input =
        b"{\"model\":\"gpt-4o\",\"input_tokens\":1000}\n{\"model\":\"gpt-4o\xff\"}\n".to_vec();
    input.extend_from_slice(b"{\"model\":\"gpt-4o\",\"output_tokens\":1000}\r\n");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", stdout(&o));
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].as_str().unwrap().contains("UTF-8"));
    assert!(lines[0].get("error").is_none() && lines[2].get("error").is_none());
}
