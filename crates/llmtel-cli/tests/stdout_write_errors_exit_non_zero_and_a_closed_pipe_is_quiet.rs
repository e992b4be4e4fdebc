//! Standard output that cannot be written: a full device (`> /dev/full`, a full disk) is an
//! error on stderr with exit code 1, never a silent success with the output lost; a closed
//! pipe (`llmtel ... | head`) ends quietly, never with a panic. Runs the built binary.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::io::Write;
use std::process::{Command, Output, Stdio};

const COST: &[&str] = &[
    "cost",
    "--model",
    "gpt-4o",
    "--input-tokens",
    "1000",
    "--output-tokens",
    "100",
];

/// Runs llmtel with `stdout` as its standard output and `input` on stdin.
fn run_with_stdout(args: &[&str], stdout: impl Into<Stdio>, input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run llmtel");
    let mut stdin = child.stdin.take().unwrap();
    // The child may stop reading early: a failed write here is not the test's concern.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// A pipe whose reading end is already closed: every write gets EPIPE.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[cfg(target_os = "linux")]
fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_is_an_error_with_exit_code_1() {
    let o = run_with_stdout(COST, dev_full(), b"");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: writing stdout:") && err.contains("No space left"),
        "{err}"
    );

    // `cost --batch` writes as it goes: the same.
    let line = br#"{"model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100}
"#;
    let o = run_with_stdout(&["cost", "--batch"], dev_full(), line);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("error: writing stdout:"), "{err}");

    // `prices resolve` of an unknown model prints its steps, then the error: both failures
    // are said, and the exit code is not 0.
    let o = run_with_stdout(&["prices", "resolve", "no-such-model-xyz"], dev_full(), b"");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("error: writing stdout:"), "{err}");
    assert!(err.contains("unknown model `no-such-model-xyz`"), "{err}");
}

#[test]
fn a_closed_pipe_ends_quietly_without_a_panic() {
    let o = run_with_stdout(COST, closed_pipe(), b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");

    let line = br#"{"model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100}
"#;
    let o = run_with_stdout(&["cost", "--batch"], closed_pipe(), line);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");

    // The steps tried go to the closed pipe; the unknown model is still an error (exit 2),
    // and nothing panics.
    let o = run_with_stdout(
        &["prices", "resolve", "no-such-model-xyz"],
        closed_pipe(),
        b"",
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("unknown model `no-such-model-xyz`"), "{err}");
    assert!(!err.contains("writing stdout"), "{err}");
}
