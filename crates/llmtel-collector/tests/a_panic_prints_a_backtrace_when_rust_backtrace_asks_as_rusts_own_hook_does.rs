//! The panic hook of `redact_panic_messages()` prints a backtrace when Rust's default hook
//! would: `RUST_BACKTRACE` decides (unset or `0`: none; `full`: every frame), and
//! `RUST_LIB_BACKTRACE`, the setting of the backtraces libraries capture in their errors, does
//! not. The hook used `Backtrace::capture()`, which reads `RUST_LIB_BACKTRACE` first: with
//! `RUST_LIB_BACKTRACE=0 RUST_BACKTRACE=1` (the usual way to keep error backtraces off and
//! panic ones on) a panic printed none, and with `RUST_LIB_BACKTRACE=1` alone every panic
//! printed one.
//!
//! The hook and the variables are the process's: each case runs in a child process of this
//! test binary.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

const CHILD: &str = "LLMTEL_TEST_PANIC_BACKTRACE_CHILD";

/// Installs the hook and panics (caught) with a key in the message.
#[test]
#[ignore = "child process of the tests of this file"]
fn child_panics_under_the_hook() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    llmtel_collector::redact_panic_messages();
    let r = std::panic::catch_unwind(|| {
        panic!("could not post with sk-proj-Ab3dEf6hJ9Ab3dEf6hJ9Ab3dEf6hJ9Ab3dEf6hJ9");
    });
    assert!(r.is_err());
}

/// What the child wrote on stderr, run with `set` (both backtrace variables removed first).
fn stderr_with(set: &[(&str, &str)]) -> String {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child_panics_under_the_hook",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(CHILD, "1")
    .env_remove("RUST_BACKTRACE")
    .env_remove("RUST_LIB_BACKTRACE");
    for (k, v) in set {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the child failed: {stderr}");
    assert!(
        stderr.contains("panicked at") && stderr.contains("could not post"),
        "the panic is printed: {stderr}"
    );
    assert!(
        !stderr.contains("Ab3dEf6hJ9Ab3dEf6hJ9"),
        "the key reached stderr: {stderr}"
    );
    stderr
}

#[test]
fn rust_backtrace_asks_for_a_backtrace_whatever_rust_lib_backtrace_says() {
    for set in [
        &[("RUST_BACKTRACE", "1")][..],
        &[("RUST_BACKTRACE", "1"), ("RUST_LIB_BACKTRACE", "0")],
        &[("RUST_BACKTRACE", "full"), ("RUST_LIB_BACKTRACE", "0")],
    ] {
        let stderr = stderr_with(set);
        assert!(stderr.contains("stack backtrace:"), "{set:?}: {stderr}");
    }
}

#[test]
fn without_rust_backtrace_no_backtrace_is_printed_whatever_rust_lib_backtrace_says() {
    for set in [
        &[][..],
        &[("RUST_LIB_BACKTRACE", "1")],
        &[("RUST_BACKTRACE", "0"), ("RUST_LIB_BACKTRACE", "1")],
    ] {
        let stderr = stderr_with(set);
        assert!(!stderr.contains("stack backtrace:"), "{set:?}: {stderr}");
    }
}
