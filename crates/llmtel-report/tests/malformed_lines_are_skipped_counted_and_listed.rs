//! Malformed lines in a log are skipped and counted, the first ones listed with their line
//! numbers; a missing or empty log and a bad period are clear errors, never a panic.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use llmtel::Usage;
use llmtel_report::{CallLog, MAX_MALFORMED_LISTED, Period, Report, ReportError};
use support::temp_log;
use tracing_subscriber::prelude::*;

fn write_calls(path: &std::path::Path, n: usize) {
    let log = CallLog::builder(path).build().unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::LlmLayer::new().with_sink(Arc::new(log.clone())));
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..n {
            let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
            llmtel::record_usage(
                &span,
                &Usage {
                    input_tokens: 100,
                    output_tokens: 10,
                    ..Default::default()
                },
            );
        }
    });
    assert!(log.flush(Duration::from_secs(5)));
}

#[test]
fn garbage_lines_are_counted_and_the_first_ones_listed() {
    let path = temp_log("malformed");
    write_calls(&path, 3);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let garbage = [
        "not json at all",
        "{\"kind\":\"call\",\"cost_usd\":\"-1\"}",
        "{\"kind\":\"nope\"}",
        "[1,2,3]",
        "{\"kind\":\"call\",\"time\":\"yesterday\"}",
    ];
    for _ in 0..3 {
        for g in garbage {
            writeln!(f, "{g}").unwrap();
        }
    }
    writeln!(f, "\u{0}\u{fffd}{{").unwrap();
    drop(f);
    write_calls(&path, 2);

    let report = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(report.totals.requests, 5);
    assert_eq!(report.log.malformed, 16);
    assert_eq!(report.log.records, 5);
    assert_eq!(report.log.lines, 21);
    let listed: Vec<u64> = report.log.malformed_lines.iter().map(|m| m.line).collect();
    assert_eq!(
        listed,
        (4..4 + MAX_MALFORMED_LISTED as u64).collect::<Vec<_>>()
    );
    assert!(
        report.log.malformed_lines[1].error.contains("USD amount"),
        "{:?}",
        report.log.malformed_lines[1]
    );
    assert!(report.to_markdown().contains("Malformed:"));
    assert!(report.to_markdown().contains("16 malformed (skipped)"));
}

#[test]
fn missing_empty_and_all_garbage_logs_are_clear_errors() {
    let path = temp_log("missing");
    let err = Report::from_log(&path, &Period::all()).unwrap_err();
    assert!(matches!(err, ReportError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("CallLog"), "{err}");

    std::fs::write(&path, "").unwrap();
    let err = Report::from_log(&path, &Period::all()).unwrap_err();
    assert!(matches!(err, ReportError::Empty { lines: 0, .. }), "{err}");
    assert!(err.to_string().contains("make some LLM calls"), "{err}");

    std::fs::write(&path, "hello\nworld\n").unwrap();
    let err = Report::from_log(&path, &Period::all()).unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Empty {
                lines: 2,
                malformed: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("line 1"), "{err}");

    let err = Report::from_reader(&b""[..], &Period::all()).unwrap_err();
    assert!(matches!(err, ReportError::Empty { .. }), "{err}");
}

#[test]
fn bad_periods_are_clear_errors() {
    let err = Period::parse(Some("2025-03-02"), Some("2025-03-01")).unwrap_err();
    assert!(err.to_string().contains("not after"), "{err}");
    let err = Period::parse(Some("last week"), None).unwrap_err();
    assert!(err.to_string().contains("RFC 3339"), "{err}");
    // A time without an offset is an error, not its whole day (a report of 09:00-17:00 was
    // one of the whole UTC day, three times the calls).
    let err = Period::parse(Some("2025-03-01T09:00:00"), Some("2025-03-01T17:00:00")).unwrap_err();
    assert!(err.to_string().contains("no UTC offset"), "{err}");
    assert!(err.to_string().contains("2025-03-01T12:00:00Z"), "{err}");
    let err = Period::parse(None, Some("2025-03-01 17:00")).unwrap_err();
    assert!(err.to_string().contains("no UTC offset"), "{err}");
    let hours = Period::parse(
        Some("2025-03-01T09:00:00Z"),
        Some("2025-03-01T17:00:00+01:00"),
    )
    .unwrap();
    assert!(hours.contains("2025-03-01T15:59:59Z".parse().unwrap()));
    assert!(!hours.contains("2025-03-01T16:00:00Z".parse().unwrap()));
    assert!(!hours.contains("2025-03-01T08:59:59Z".parse().unwrap()));
    let path = temp_log("buckets");
    write_calls(&path, 1);
    let err = Report::builder()
        .with_period(Period::parse(Some("2000-01-01"), Some("2025-01-01")).unwrap())
        .with_bucket(llmtel_report::Bucket::Hour)
        .from_log(&path)
        .unwrap_err();
    assert!(err.to_string().contains("--bucket day"), "{err}");
}

#[test]
fn a_call_dated_decades_back_gets_an_error_naming_the_span_and_from() {
    // The default period runs from the first call to the last: one call dated 1970 (a
    // device before NTP) makes 20,000 days. The error said "--bucket day" when the buckets
    // were days already.
    let log = "{\"kind\":\"call\",\"time\":\"1970-01-01T00:00:00Z\"}\n\
               {\"kind\":\"call\",\"time\":\"2025-06-01T00:00:00Z\"}\n";
    let err = Report::from_reader(log.as_bytes(), &Period::all()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("--from") && msg.contains("1970-01-01"),
        "{msg}"
    );
    assert!(!msg.contains("--bucket day"), "{msg}");
    // With the period given, the report is made.
    let period = Period::parse(Some("2025-01-01"), None).unwrap();
    let report = Report::from_reader(log.as_bytes(), &period).unwrap();
    assert_eq!(report.totals.requests, 1);
}

#[test]
fn a_line_that_is_not_utf8_in_a_reader_is_one_malformed_line() {
    // The reader was read as one string: one bad byte failed the whole report, where a
    // file is read line by line and the line counted malformed.
    let good = b"{\"kind\":\"call\",\"time\":\"2025-06-01T00:00:00Z\",\"model\":\"gpt-4o\"}\n";
    let mut log = good.to_vec();
    log.extend_from_slice(b"\xff\xfe not a record\n");
    log.extend_from_slice(good);
    let report = Report::from_reader(&log[..], &Period::all()).unwrap();
    assert_eq!(report.totals.requests, 2);
    assert_eq!(report.log.lines, 3);
    assert_eq!(report.log.malformed, 1);
    assert_eq!(report.log.malformed_lines[0].line, 2);
    assert_eq!(report.log.malformed_lines[0].file, "-");

    // As the same bytes in a file.
    let path = temp_log("not-utf8");
    std::fs::write(&path, &log).unwrap();
    let from_file = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(from_file.totals, report.totals);
    assert_eq!(from_file.log.malformed, 1);
}

#[test]
fn markdown_carries_no_html_or_headings_from_the_log() {
    // Markdown renderers pass HTML through, and a malformed line's error quotes the line.
    let log = "{\"kind\":\"call\",\"time\":\"2025-06-01T00:00:00Z\",\"user\":\"<img src=x onerror=alert(1)>\",\"model\":\"gpt-4o\"}\n\
               {\"kind\":\"x\\n# Injected\"}\n";
    let report = Report::from_reader(log.as_bytes(), &Period::all()).unwrap();
    let md = report.to_markdown();
    assert!(!md.contains("<img"), "{md}");
    assert!(md.contains("&lt;img src=x onerror=alert(1)&gt;"), "{md}");
    assert!(!md.contains("\n# Injected"), "{md}");
}

#[test]
fn absurd_token_counts_saturate_instead_of_panicking_or_wrapping() {
    let line = "{\"kind\":\"call\",\"time\":\"2025-06-01T00:00:00Z\",\"model\":\"gpt-4o\",\"input_tokens\":18446744073709551615}\n";
    let log = line.repeat(2);
    let report = Report::from_reader(log.as_bytes(), &Period::all()).unwrap();
    assert_eq!(report.totals.input_tokens, u64::MAX);
    let _ = report.to_markdown();
}
