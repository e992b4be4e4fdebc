//! Issue #13's soak, bounded for the test command: the load harness drives 300,000 LLM
//! spans flat out through the full stack (llmtel's layer and export, memory budgets,
//! quality, the call log, Prometheus) into its counting OTLP receiver, and this test checks
//! what the 10-million-span run in BENCHMARKS.md ("Soak") shows at scale:
//!
//! - RSS grows by less than 16 MiB from the first third of the run to its end;
//! - open file descriptors grow by at most 2 (the receiver's connection);
//! - every span is accounted for: created = exported + dropped + failed, and the receiver
//!   counted exactly what llmtel exported.
//!
//! It runs the debug build of the harness (the one the test command builds), so the rate is
//! lower than the release numbers; memory and descriptors do not depend on it.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::process::Command;

#[test]
fn rss_and_descriptors_stay_flat_and_every_span_is_accounted_for() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_load-harness"))
        .args([
            "drive",
            "--rate",
            "0",
            "--seconds",
            "240",
            "--spans",
            "300000",
        ])
        .args(["--threads", "1", "--receiver", &format!("127.0.0.1:{port}")])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "load-harness failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spans = &report["spans"];
    let n = |k: &str| {
        spans[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {spans}"))
    };
    assert_eq!(n("created"), 300_000, "{report}");
    assert_eq!(
        n("created"),
        n("exported") + n("dropped") + n("export_failed"),
        "every span is exported or counted: {spans}"
    );
    assert_eq!(
        n("received"),
        n("exported"),
        "the receiver counted what was exported"
    );

    let rss: Vec<u64> = report["rss_kib"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(rss.len() >= 6, "too short a run to tell: {rss:?}");
    let third = rss[rss.len() / 3];
    let later = *rss[rss.len() / 3..].iter().max().unwrap();
    println!(
        "{} s, {:.0} spans/s; RSS {} KiB at a third, {} KiB at most after; descriptors {}",
        rss.len(),
        report["achieved_rate"].as_f64().unwrap(),
        third,
        later,
        report["open_fds"]
    );
    assert!(
        later - third < 16 * 1024,
        "RSS grew {} KiB from a third of the run to its end: {rss:?}",
        later - third
    );
    let fds = &report["open_fds"];
    let (first, max) = (fds["first"].as_u64().unwrap(), fds["max"].as_u64().unwrap());
    assert!(max <= first + 2, "open descriptors grew: {fds}");
}
