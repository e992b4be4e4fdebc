//! Issue #13's soak, bounded for the test command: the load harness drives 300,000 LLM
//! spans flat out through the full stack (llmtel's layer and export, memory budgets,
//! quality, the call log, Prometheus) into its counting OTLP receiver, and this test checks
//! what the 10-million-span run in BENCHMARKS.md ("Soak") shows at scale:
//!
//! - RSS grows by less than 16 MiB from the middle third of the run to the last (medians:
//!   a busy machine fills the export queue for a moment, a leak stays), and no peak passes
//!   the middle third's level by 48 MiB;
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
    // A leak raises the level the process returns to; a queue filling while the machine is
    // busy (other tests run beside this one) raises only the peaks. So the test compares
    // the median of the last third of the run with the median of the middle third, and
    // bounds the peaks loosely.
    let median = |part: &[u64]| {
        let mut v = part.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let third = rss.len() / 3;
    let middle = median(&rss[third..2 * third]);
    let last = median(&rss[2 * third..]);
    let peak = *rss[third..].iter().max().unwrap();
    println!(
        "{} s, {:.0} spans/s; RSS median {} KiB in the middle third, {} KiB in the last, \
         peak {} KiB; descriptors {}",
        rss.len(),
        report["achieved_rate"].as_f64().unwrap(),
        middle,
        last,
        peak,
        report["open_fds"]
    );
    // 16 MiB between the centres of the two thirds (100,000 spans apart) would be a leak of
    // 168 bytes a span, 1.6 GB over the documented 10-million-span run. (Run alone, this
    // run's bounded caches still fill: ~6 MiB between the thirds.)
    assert!(
        last.saturating_sub(middle) < 16 * 1024,
        "RSS grew {} KiB from the middle third of the run to the last: {rss:?}",
        last.saturating_sub(middle)
    );
    assert!(
        peak.saturating_sub(middle) < 48 * 1024,
        "an RSS peak {} KiB over the middle third's level: {rss:?}",
        peak.saturating_sub(middle)
    );
    let fds = &report["open_fds"];
    let (first, max) = (fds["first"].as_u64().unwrap(), fds["max"].as_u64().unwrap());
    assert!(max <= first + 2, "open descriptors grew: {fds}");
}
