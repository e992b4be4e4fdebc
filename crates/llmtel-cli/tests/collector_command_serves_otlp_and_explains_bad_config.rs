//! `llmtel collector` starts the collector from a config file and flags, receives OTLP/HTTP
//! and serves `/metrics`; a missing or invalid config, or no downstream, is a clear error
//! (exit code 2).
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;
use support::{free_port, http};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn llmtel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llmtel"));
    c.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL");
    c
}

fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("llmtel-cli-collector-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let out = llmtel()
        .args(["collector", "--config", "/nonexistent/collector.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the collector config /nonexistent/collector.toml"),
        "{err}"
    );
    assert!(err.contains("--config"), "{err}");
}

#[test]
fn an_unknown_key_in_the_config_is_named() {
    let path = dir().join("bad.toml");
    std::fs::write(&path, "queue_sise = 10\n").unwrap();
    let out = llmtel()
        .args(["collector", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid collector config"), "{err}");
    assert!(err.contains("queue_sise"), "{err}");
}

#[test]
fn no_downstream_says_which_variable_to_set() {
    let out = llmtel()
        .args([
            "collector",
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{err}");
}

#[test]
fn the_collector_receives_otlp_json_and_counts_it_on_metrics() {
    let (grpc, otlp, metrics, downstream) = (free_port(), free_port(), free_port(), free_port());
    let path = dir().join("collector.toml");
    std::fs::write(
        &path,
        format!(
            "grpc_listen = \"{grpc}\"\nhttp_listen = \"{otlp}\"\nqueue_size = 100\n\n\
             [forward]\nendpoint = \"http://{downstream}\"\nprotocol = \"http/protobuf\"\n"
        ),
    )
    .unwrap();
    let mut child = llmtel()
        .args(["collector", "--config", path.to_str().unwrap()])
        .args(["--metrics-listen", &metrics.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let first = loop {
            match http(metrics, "GET /metrics HTTP/1.1", "") {
                Ok(r) => break r,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("the collector never served /metrics: {e}"),
            }
        };
        assert!(
            first.contains("llmtel_collector_queue_capacity 100"),
            "{first}"
        );
        let span = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"chat","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let r = http(
            otlp,
            "POST /v1/traces HTTP/1.1\r\nContent-Type: application/json",
            span,
        )
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let m = http(metrics, "GET /metrics HTTP/1.1", "").unwrap();
        assert!(
            m.contains("llmtel_collector_spans_received_total 1\n"),
            "{m}"
        );
    });
    child.kill().unwrap();
    child.wait().unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// Starts `llmtel collector` with `LLMTEL_PRICES=prices`, waits until it serves `/metrics`,
/// stops it and returns what it printed on stderr.
fn collector_with_prices(prices: &std::path::Path) -> String {
    let (grpc, otlp, metrics, downstream) = (free_port(), free_port(), free_port(), free_port());
    let mut child = llmtel()
        .env("LLMTEL_PRICES", prices)
        .env_remove("LLMTEL_PRICES_URL")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{downstream}"),
        )
        .args(["collector", "--grpc-listen", &grpc.to_string()])
        .args(["--http-listen", &otlp.to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let served = loop {
        match http(metrics, "GET /metrics HTTP/1.1", "") {
            Ok(r) => break Ok(r),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Err(e),
        }
    };
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(served.is_ok(), "the collector never served /metrics: {err}");
    err
}

#[test]
fn llmtel_prices_is_merged_over_the_builtin_catalog_and_a_bad_file_keeps_it_with_a_hint() {
    let good = dir().join("prices.toml");
    std::fs::write(
        &good,
        "[[model]]\nid = \"acme-1\"\nprovider = \"acme\"\n[[model.price]]\n\
         effective = \"2024-01-01\"\ninput = 1.00\noutput = 2.00\n",
    )
    .unwrap();
    let err = collector_with_prices(&good);
    assert!(
        err.contains("prices: the built-in catalog with") && err.contains(good.to_str().unwrap()),
        "{err}"
    );
    // A file that is not there: the collector still starts, with the built-in prices, and
    // says which file and what to do.
    let missing = dir().join("no-such-prices.toml");
    let err = collector_with_prices(&missing);
    assert!(err.contains("no-such-prices.toml"), "{err}");
    assert!(!err.contains("merged over it"), "{err}");
}
