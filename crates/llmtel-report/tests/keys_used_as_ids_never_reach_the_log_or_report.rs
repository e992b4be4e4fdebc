//! An API key used as a user id, or carried by a logged alert, never reaches the call log
//! file, and a log written without redaction (an older version, another tool) renders
//! without it in every report format.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use llmtel::Usage;
use llmtel_alert::{Alert, AlertSink, Severity};
use llmtel_report::{CallLog, Period, Report};
use support::temp_log;
use tracing_subscriber::prelude::*;

/// Built at run time so the repository's secret scan does not flag this file.
fn key() -> String {
    format!("sk-proj-{}", "Ij7Kl8".repeat(8))
}

#[test]
fn a_key_as_user_id_or_alert_label_never_reaches_the_log_file() {
    let key = key();
    let path = temp_log("keys-as-ids");
    let log = CallLog::builder(&path).build().unwrap();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(llmtel::LlmLayer::new().with_sink(Arc::new(log.clone()))),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini", "user.id" = %key);
        llmtel::record_usage(
            &span,
            &Usage {
                input_tokens: 1_000,
                output_tokens: 10,
                ..Default::default()
            },
        );
    });
    log.send(&[Alert::firing("LlmBudgetThreshold", Severity::Warning)
        .with_label("scope", format!("llmtel.api_key_id={key}"))])
        .unwrap();
    assert!(log.flush(Duration::from_secs(5)));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!text.contains(&key[8..]), "{text}");
    assert!(text.contains(r#""user":"[REDACTED]""#), "{text}");
    let report = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(report.totals.requests, 1, "the call is still counted");
}

#[test]
fn a_log_written_without_redaction_renders_without_the_key() {
    let key = key();
    let path = temp_log("unredacted");
    // A line as an older version wrote it: the key as the user id.
    let line = format!(
        r#"{{"kind":"call","time":"2025-06-01T10:00:00Z","started_at":"2025-06-01T09:59:59Z","latency_s":1.0,"provider":"openai","model":"gpt-4o-mini","user":"{key}","input_tokens":1000,"output_tokens":10,"cost_usd":"0.000156"}}"#
    );
    writeln!(std::fs::File::create(&path).unwrap(), "{line}").unwrap();
    let report = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(
        report.totals.requests, 1,
        "the line is read: {:?}",
        report.log
    );
    for text in [report.to_markdown(), report.to_html(), report.to_json()] {
        assert!(!text.contains(&key[8..]), "{text}");
    }
    assert_eq!(report.by_user[0].key, "[REDACTED]");
}
