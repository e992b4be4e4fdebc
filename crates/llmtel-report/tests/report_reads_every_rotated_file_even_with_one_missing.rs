//! A report reads every rotated file of the log (`calls.jsonl.N`, any number), oldest first:
//! a gap in the numbers (a rotation cut between its shift and its rename) hides no older
//! file, and a missing live file (a rotation that could not open the new one) is no error
//! while rotated files exist. A file that cannot be read is named in the error.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use llmtel_report::{Period, Report, ReportError, rotated};
use support::temp_log;

/// One call line on 2025-06-01 at `hour`.
fn call(hour: u32) -> String {
    format!(
        "{{\"kind\":\"call\",\"time\":\"2025-06-01T{hour:02}:00:00Z\",\"model\":\"gpt-4o\",\"cost_usd\":\"0.01\"}}\n"
    )
}

#[test]
fn a_gap_in_the_rotated_files_hides_no_older_file() {
    // calls.jsonl.1 is missing: the files after it were never read.
    let path = temp_log("rotated-gap");
    std::fs::write(rotated(&path, 10), format!("oldest\n{}", call(1))).unwrap();
    std::fs::write(rotated(&path, 3), call(2)).unwrap();
    std::fs::write(rotated(&path, 2), format!("older\n{}", call(3))).unwrap();
    std::fs::write(&path, format!("live\n{}", call(4))).unwrap();
    // Not rotated files of the log: not read.
    let dir = path.parent().unwrap();
    for other in [
        "calls.jsonl.01",
        "calls.jsonl.1.tmp",
        "calls.jsonl.x",
        "calls.jsonl.0",
    ] {
        std::fs::write(dir.join(other), "not a rotated file\n").unwrap();
    }

    let report = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(report.totals.requests, 4, "{:?}", report.log);
    assert_eq!(report.series.iter().map(|p| p.requests).sum::<u64>(), 4);
    assert_eq!(report.log.malformed, 3, "{:?}", report.log.malformed_lines);
    // Oldest first, by number (10 before 2).
    let files: Vec<String> = report
        .log
        .malformed_lines
        .iter()
        .map(|m| m.file.clone())
        .collect();
    assert_eq!(
        files,
        [rotated(&path, 10), rotated(&path, 2), path.clone()].map(|p| p.display().to_string())
    );
}

#[test]
fn rotated_files_are_read_when_the_live_file_is_missing() {
    let path = temp_log("rotated-no-live");
    std::fs::write(rotated(&path, 2), call(1)).unwrap();
    std::fs::write(rotated(&path, 1), call(2) + &call(3)).unwrap();
    let report = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(report.totals.requests, 3, "{:?}", report.log);

    // Neither the log nor a rotated file: still the clear error.
    let none = temp_log("rotated-none");
    let err = Report::from_log(&none, &Period::all()).unwrap_err();
    assert!(matches!(err, ReportError::NotFound { .. }), "{err}");
}

#[test]
fn a_rotated_file_that_cannot_be_read_is_named_in_the_error() {
    // The error of a line that could not be read named the live file, not the file read.
    let path = temp_log("rotated-unreadable");
    std::fs::write(&path, call(1)).unwrap();
    let bad = rotated(&path, 1);
    // A directory: opened (on Linux and macOS), then refused at the first read.
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("with-a-long-enough-name-for-a-non-empty-directory"),
        "x",
    )
    .unwrap();
    assert!(
        std::fs::metadata(&bad).unwrap().len() > 0,
        "a directory with a size"
    );
    let err = Report::from_log(&path, &Period::all()).unwrap_err();
    match &err {
        ReportError::Read { path: p, .. } => assert_eq!(p, &bad, "{err}"),
        other => panic!("not a read error: {other}"),
    }
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
}
