//! `OTEL_TRACES_EXPORTER=none` means: do not export the traces. It turned llmtel's console
//! line per LLM call on (the default when nothing is exported), printing every call to
//! stderr in an app that had asked for no traces. `console` still prints it, as does the
//! default with no endpoint.
//!
//! The variables are process-wide and the workspace forbids `unsafe` (no `set_var`), so each
//! case runs in a child process of this test binary, and the parent reads its stderr.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use tracing_subscriber::prelude::*;

const CHILD: &str = "LLMTEL_ENV_TEST_CHILD";

/// Every variable these tests set, removed from the child's environment first.
const VARS: [&str; 6] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_SDK_DISABLED",
];

/// Runs the child with `env`; returns what it wrote on stderr.
fn child_stderr(env: &[(&str, &str)]) -> String {
    let out = support::child::run("child_makes_one_llm_call", CHILD, &VARS, env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("RESULT ok"),
        "the child failed:\n{stdout}\n{stderr}"
    );
    stderr
}

/// Builds llmtel from the environment (the console left to it) and makes one LLM call.
#[test]
#[ignore = "child process of the tests of this file"]
fn child_makes_one_llm_call() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let (layer, guard) = match llmtel::builder().build::<tracing_subscriber::Registry>() {
        Ok(built) => built,
        Err(e) => {
            println!("RESULT error: {e}");
            return;
        }
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        llmtel::record_usage(
            &call,
            &llmtel::Usage {
                input_tokens: 100,
                output_tokens: 20,
                ..Default::default()
            },
        );
    });
    drop(guard);
    println!("RESULT ok");
}

/// Whether `stderr` holds llmtel's console line for the child's call.
fn has_console_line(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|l| l.starts_with("llmtel  ") && l.contains("in 100"))
}

#[test]
fn otel_traces_exporter_none_prints_no_console_line() {
    let stderr = child_stderr(&[("OTEL_TRACES_EXPORTER", "none")]);
    assert!(!has_console_line(&stderr), "{stderr}");
    // With an endpoint (the metrics turned off: nothing on the network) too.
    let stderr = child_stderr(&[
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ]);
    assert!(!has_console_line(&stderr), "{stderr}");
}

#[test]
fn the_console_line_is_printed_when_asked_for_or_when_nothing_is_configured() {
    let stderr = child_stderr(&[("OTEL_TRACES_EXPORTER", "console")]);
    assert!(has_console_line(&stderr), "{stderr}");
    let stderr = child_stderr(&[]);
    assert!(has_console_line(&stderr), "{stderr}");
}
