//! The call log never blocks the caller: a full queue drops and counts, and the log then
//! says so in a `dropped` line that the report shows; the file rotates at its maximum size
//! keeping a bounded number of files, or stops and counts with no rotation.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::time::{Duration, Instant};

use llmtel::CallSink;
use llmtel_report::{CallLog, CallRecord, Period, Record, Report, rotated};
use support::temp_log;

fn record(n: u64) -> Record {
    Record::Call(Box::new(CallRecord {
        time: jiff::Timestamp::now(),
        started_at: jiff::Timestamp::now(),
        operation: "chat".into(),
        model: Some("gpt-4o".into()),
        response_id: Some(format!("resp-{n}")),
        input_tokens: n,
        cost_usd: llmtel::Usd::parse_decimal("0.000125"),
        ..Default::default()
    }))
}

#[test]
fn a_full_queue_drops_counts_and_the_report_says_so() {
    let path = temp_log("drops");
    let log = CallLog::builder(&path)
        .with_queue_capacity(4)
        .build()
        .unwrap();
    let start = Instant::now();
    let n = 20_000;
    let accepted = (0..n).filter(|i| log.append(record(*i))).count() as u64;
    let elapsed = start.elapsed();
    assert!(log.flush(Duration::from_secs(10)));
    let s = log.stats();
    assert_eq!(s.queued, accepted);
    assert_eq!(s.queued + s.dropped_queue_full, n);
    assert!(s.dropped_queue_full > 0, "{s:?}");
    assert_eq!(s.written, accepted);
    // 20,000 appends never waited for the disk (generous bound for a loaded CI machine).
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    let report = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(report.totals.requests, accepted);
    assert_eq!(report.log.dropped_by_logger, s.dropped());
    assert!(
        report
            .to_markdown()
            .contains(&format!("dropped {} records", s.dropped()))
    );
}

#[test]
fn the_file_rotates_at_its_maximum_size_and_keeps_n_files() {
    let path = temp_log("rotate");
    let log = CallLog::builder(&path)
        .with_max_file_bytes(4_000)
        .with_max_files(2)
        .build()
        .unwrap();
    for i in 0..200 {
        assert!(log.append(record(i)));
        if i % 50 == 0 {
            assert!(log.flush(Duration::from_secs(5)));
        }
    }
    assert!(log.flush(Duration::from_secs(5)));
    let s = log.stats();
    assert!(s.rotations >= 3, "{s:?}");
    assert_eq!(s.written, 200);
    for p in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 4_000, "{} is {len} bytes", p.display());
    }
    assert!(!rotated(&path, 3).exists());
    // The report reads the kept files: the newest calls, oldest dropped by rotation.
    let kept: usize = [rotated(&path, 2), rotated(&path, 1), path.clone()]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    let report = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(report.totals.requests, kept as u64);
    assert!(kept < 200);
    let last = Report::from_reader(std::fs::File::open(&path).unwrap(), &Period::all()).unwrap();
    assert!(last.totals.requests < report.totals.requests);
}

#[test]
fn without_rotation_the_log_stops_at_its_size_and_counts() {
    let path = temp_log("full");
    let log = CallLog::builder(&path)
        .with_max_file_bytes(2_000)
        .with_max_files(0)
        .build()
        .unwrap();
    let call = llmtel::LlmCall {
        name: "chat gpt-4o".into(),
        operation: "chat".into(),
        provider: Some("openai".into()),
        request_model: Some("gpt-4o".into()),
        response_model: None,
        response_id: None,
        finish_reasons: vec![],
        usage: Default::default(),
        has_usage: false,
        cost: None,
        unknown_model: false,
        usage_error: None,
        error_type: None,
        streamed: false,
        max_tokens: None,
        time_to_first_chunk: None,
        dimensions: Default::default(),
        started_at: std::time::SystemTime::now(),
        duration: Duration::from_millis(5),
        trace_id: None,
        span_id: None,
    };
    for _ in 0..100 {
        log.on_call(&call);
    }
    assert!(log.flush(Duration::from_secs(5)));
    let s = log.stats();
    assert_eq!(s.written + s.dropped_file_full, 100, "{s:?}");
    assert!(s.dropped_file_full > 0);
    assert!(std::fs::metadata(&path).unwrap().len() <= 2_000);
    assert_eq!(s.rotations, 0);
    log.shutdown();
    assert!(!log.append(record(0)), "after shutdown: dropped, counted");
    assert_eq!(log.stats().dropped_queue_full, 1);
}

#[test]
fn a_log_full_without_rotation_says_so_to_the_report() {
    // The `dropped` line went through the same size limit as the records and was refused
    // too: a log whose records filled it to the byte showed no drop in its report.
    let fixed = |n: u64| match record(n) {
        Record::Call(mut c) => {
            c.time = "2025-06-01T00:00:00Z".parse().unwrap();
            c.started_at = c.time;
            Record::Call(c)
        }
        other => other,
    };
    // Every line the same length: the file holds exactly three.
    let line = serde_json::to_string(&fixed(1)).unwrap().len() as u64 + 1;
    let path = temp_log("full-report");
    let log = CallLog::builder(&path)
        .with_max_file_bytes(3 * line)
        .with_max_files(0)
        .build()
        .unwrap();
    // 0..10: one digit each, lines of one length.
    for i in 0..10 {
        assert!(log.append(fixed(i)));
        // One batch per record: records dropped after the line saying the log is full too.
        assert!(log.flush(Duration::from_secs(5)));
    }
    let s = log.stats();
    assert_eq!(s.written + s.dropped_file_full, 10, "{s:?}");
    assert!(s.written > 0 && s.dropped_file_full > 0, "{s:?}");
    assert!(std::fs::metadata(&path).unwrap().len() <= 3 * line);

    let report = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(report.totals.requests, s.written);
    assert_eq!(report.log.malformed, 0);
    assert!(report.log.dropped_by_logger > 0, "{:?}", report.log);
    assert!(report.log.dropped_by_logger <= s.dropped_file_full);
    let since = report.log.log_full_since.expect("the log says it is full");
    let md = report.to_markdown();
    assert!(
        md.contains(&format!("The call log was full from {since}")),
        "{md}"
    );
    assert!(
        md.contains(&format!("dropped {} records", report.log.dropped_by_logger)),
        "{md}"
    );
    // The line saying so is the file's last.
    let text = std::fs::read_to_string(&path).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.contains("\"log_full\":true"), "{last}");
}

#[cfg(target_os = "linux")]
#[test]
fn records_a_full_disk_refuses_are_counted_as_dropped_not_written() {
    // /dev/full takes the open and fails every write (ENOSPC): the buffered records were
    // counted as written and their loss at the flush went unseen.
    let log = CallLog::builder("/dev/full").build().unwrap();
    for i in 0..3 {
        assert!(log.append(record(i)));
    }
    // Handled (dropped and counted), whatever the flush itself says.
    let _ = log.flush(Duration::from_secs(5));
    let s = log.stats();
    assert_eq!(s.written, 0, "{s:?}");
    assert_eq!(s.dropped_write_error, 3, "{s:?}");
    assert_eq!(s.dropped(), 3, "{s:?}");
}

#[test]
fn a_last_line_cut_by_a_crash_does_not_swallow_the_next_record() {
    // A kill between a record and its newline left the file without a final newline: the
    // next run's first record was appended to that line and both were unreadable.
    let path = temp_log("cut");
    std::fs::write(
        &path,
        "{\"kind\":\"dropped\",\"time\":\"2025-01-01T00:00:00Z\",\"records\":0}",
    )
    .unwrap();
    let log = CallLog::builder(&path).build().unwrap();
    assert!(log.append(record(7)));
    assert!(log.flush(Duration::from_secs(5)));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let report = Report::from_log(&path, &Period::all()).unwrap();
    assert_eq!(report.totals.requests, 1);
    assert_eq!(report.log.malformed, 0);
}
