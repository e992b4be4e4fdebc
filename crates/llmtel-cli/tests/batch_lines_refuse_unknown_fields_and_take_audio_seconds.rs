//! `llmtel cost --batch`: a line with a field the command does not read (a typo, a flag's
//! name in another unit) is refused naming it, where it was ignored and the call priced
//! without it; `input_audio_seconds` / `output_audio_seconds` are read as the flags are.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::io::Write;
use std::process::{Command, Stdio};

fn batch(lines: &str) -> Vec<serde_json::Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(["cost", "--batch", "--at", "2026-11-20"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_unknown_field_is_refused_naming_it_and_the_other_lines_are_priced() {
    let out = batch(concat!(
        r#"{"model":"gpt-4o","input_tokens":1000000,"output_tokens":0,"cache_red_tokens":500000}"#,
        "\n",
        r#"{"model":"gpt-4o","input_tokens":1000000,"output_tokens":0}"#,
        "\n",
        r#"["gpt-4o"]"#,
        "\n",
    ));
    assert_eq!(out.len(), 3, "{out:?}");
    let err = out[0]["error"].as_str().unwrap();
    assert!(
        err.contains(r#"unknown field "cache_red_tokens""#) && err.contains("cache_read_tokens"),
        "{err}"
    );
    assert_eq!(out[1]["cost_usd_exact"], "2.500000", "{:?}", out[1]);
    assert!(
        out[2]["error"]
            .as_str()
            .unwrap()
            .contains("must be a JSON object"),
        "{:?}",
        out[2]
    );
}

#[test]
fn audio_seconds_are_read_as_the_flags_read_them() {
    // whisper-1: $0.006 a minute.
    let out = batch(concat!(
        r#"{"model":"whisper-1","input_tokens":0,"output_tokens":0,"input_audio_seconds":90.5}"#,
        "\n",
        r#"{"model":"whisper-1","input_tokens":0,"output_tokens":0,"input_audio_seconds":"90"}"#,
        "\n",
    ));
    assert_eq!(out[0]["usage"]["input_audio_ms"], 90_500, "{:?}", out[0]);
    assert_eq!(out[0]["cost_usd_exact"], "0.009050", "{:?}", out[0]);
    let err = out[1]["error"].as_str().unwrap();
    assert!(
        err.contains("`input_audio_seconds` must be a number of seconds"),
        "{err}"
    );
}
