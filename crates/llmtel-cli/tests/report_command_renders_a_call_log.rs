//! `llmtel report` end to end: a call log written by `CallLog` from real calls through
//! `LlmLayer`, rendered by the built binary as JSON, Markdown and HTML; a missing or empty
//! log exits 2 with what to do.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use llmtel::{Catalog, Usage, Usd};
use tracing_subscriber::prelude::*;

fn llmtel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(args)
        .output()
        .expect("run llmtel")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmtel-cli-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const CALLS: &[(&str, &str, u64, u64)] = &[
    ("gpt-4o", "alice", 1_000, 200),
    ("gpt-4o-mini", "bob", 50_000, 4_000),
    ("gpt-4o", "bob", 7_000, 900),
];

/// Writes the calls through the layer; returns the exact total from the catalog.
fn write_log(path: &Path) -> Usd {
    let log = llmtel_report::CallLog::builder(path).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(log_layer(&log));
    tracing::subscriber::with_default(subscriber, || {
        for (model, user, i, o) in CALLS {
            let span = llmtel::llm_span!("chat", "openai", model);
            span.record("user.id", *user);
            llmtel::record_usage(
                &span,
                &Usage {
                    input_tokens: *i,
                    output_tokens: *o,
                    ..Default::default()
                },
            );
        }
    });
    assert!(log.flush(Duration::from_secs(5)));
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    CALLS.iter().fold(Usd::ZERO, |a, (m, _, i, o)| {
        let u = Usage {
            input_tokens: *i,
            output_tokens: *o,
            ..Default::default()
        };
        a.saturating_add(
            Catalog::builtin()
                .price(m, None, &u, today)
                .unwrap()
                .breakdown
                .total,
        )
    })
}

fn log_layer(log: &llmtel_report::CallLog) -> llmtel::LlmLayer {
    llmtel::LlmLayer::new().with_sink(Arc::new(log.clone()))
}

#[test]
fn json_markdown_and_html_of_a_log() {
    let dir = temp_dir("ok");
    let path = dir.join("calls.jsonl");
    let total = write_log(&path);
    let log = path.to_str().unwrap();

    let o = llmtel(&["report", "--log", log, "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["requests"], 3);
    assert_eq!(
        v["totals"]["cost"],
        total.to_string().trim_start_matches('$')
    );
    assert_eq!(v["by_user"][0]["key"], "bob");
    assert_eq!(v["bucket"], "hour");

    let o = llmtel(&["report", "--log", log]);
    assert!(o.status.success());
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.starts_with("# LLM report"), "{md}");
    assert!(
        md.contains(&format!("({} calls unpriced)", 0)) && md.contains(&total.to_string()),
        "{md}"
    );

    let out = dir.join("report.html");
    let o = llmtel(&[
        "report",
        "--log",
        log,
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
        "--bucket",
        "day",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 calls"));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<svg").count(), 5);

    // A period with none of the calls: a report of nothing, not an error.
    let o = llmtel(&[
        "report",
        "--log",
        log,
        "--from",
        "2001-01-01",
        "--to",
        "2001-01-31",
        "--format",
        "json",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["requests"], 0);
    assert_eq!(v["log"]["outside_period"], 3);
}

#[test]
fn missing_or_empty_log_and_bad_dates_exit_2_with_what_to_do() {
    let dir = temp_dir("bad");
    let missing = dir.join("nope.jsonl");
    let o = llmtel(&["report", "--log", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no call log at") && err.contains("CallLog"),
        "{err}"
    );

    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    let o = llmtel(&["report", "--log", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("holds no record") && err.contains("make some LLM calls"),
        "{err}"
    );

    let o = llmtel(&[
        "report",
        "--log",
        empty.to_str().unwrap(),
        "--from",
        "tomorrow",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RFC 3339"));
}
