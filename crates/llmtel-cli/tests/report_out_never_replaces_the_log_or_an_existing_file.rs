//! `llmtel report --out FILE` never destroys what it should not: the call log and its rotated
//! files are refused (also through a symlink or another spelling of the path), an existing
//! file is replaced only with `--force`, and the report is written whole (a temporary file
//! renamed, none left behind). Runs the built binary.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn llmtel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(args)
        .output()
        .expect("run llmtel")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llmtel-cli-report-out-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A call log of two call records, as `CallLog` writes them.
fn write_log(path: &Path) -> Vec<u8> {
    let now = jiff::Timestamp::now();
    let mut text = String::new();
    for model in ["gpt-4o", "gpt-4o-mini"] {
        let record = llmtel_report::Record::Call(Box::new(llmtel_report::CallRecord {
            time: now,
            started_at: now,
            operation: "chat".into(),
            model: Some(model.into()),
            ..Default::default()
        }));
        text.push_str(&serde_json::to_string(&record).unwrap());
        text.push('\n');
    }
    std::fs::write(path, &text).unwrap();
    text.into_bytes()
}

fn report_to(log: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "report",
        "--log",
        log.to_str().unwrap(),
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    llmtel(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The files of `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_call_log_and_its_rotated_files_are_refused_even_with_force() {
    let dir = temp_dir("log");
    let log = dir.join("calls.jsonl");
    let bytes = write_log(&log);
    let rotated = dir.join("calls.jsonl.1");
    std::fs::write(&rotated, &bytes).unwrap();
    // The log itself, another spelling of it, a rotated file (present or to come).
    let spelled = dir.join(".").join("calls.jsonl");
    for out in [
        log.clone(),
        spelled,
        rotated.clone(),
        dir.join("calls.jsonl.7"),
    ] {
        for extra in [&[][..], &["--force"][..]] {
            let o = report_to(&log, &out, extra);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{}: {err}", out.display());
            assert!(
                err.contains("is the call log") && err.contains("give another file"),
                "{}: {err}",
                out.display()
            );
        }
    }
    #[cfg(unix)]
    {
        let link = dir.join("report.json");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        let o = report_to(&log, &link, &["--force"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("is the call log"), "{}", stderr(&o));
        std::fs::remove_file(&link).unwrap();
    }
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "the log is untouched");
    assert_eq!(std::fs::read(&rotated).unwrap(), bytes);
    assert_eq!(files(&dir), ["calls.jsonl", "calls.jsonl.1"]);
    // A name that only starts like the log is not one of its files.
    let other = dir.join("calls.jsonl.html");
    let o = report_to(&log, &other, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_existing_file_is_replaced_only_with_force_and_written_whole() {
    let dir = temp_dir("force");
    let log = dir.join("calls.jsonl");
    write_log(&log);
    let out = dir.join("report.json");
    std::fs::write(&out, "keep me").unwrap();

    let o = report_to(&log, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");

    let o = report_to(&log, &out, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 calls"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["totals"]["requests"], 2);
    // No temporary file left next to it.
    assert_eq!(files(&dir), ["calls.jsonl", "report.json"]);

    // A directory that does not exist: said, nothing written.
    let o = report_to(&log, &dir.join("nope").join("r.json"), &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("create it first"), "{err}");
    // --force without --out is a usage error.
    let o = llmtel(&["report", "--log", log.to_str().unwrap(), "--force"]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
