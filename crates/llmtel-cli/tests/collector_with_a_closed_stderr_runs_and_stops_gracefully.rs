//! `llmtel collector` whose stderr is a closed pipe (`llmtel collector 2>&1 | head`, a log
//! reader that died) serves and stops gracefully on SIGTERM. It said what it does with
//! `eprintln!`, which panics when the write fails: the collector died as it started (or as
//! it stopped), with its queue.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;
use support::{free_port, http};

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `/metrics` answers on `addr`.
fn serves_metrics(addr: SocketAddr) -> bool {
    http(addr, "GET /metrics HTTP/1.1", "").is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
}

#[test]
fn a_collector_whose_stderr_is_closed_serves_and_exits_0_on_sigterm() {
    let (grpc, otlp, metrics) = (free_port(), free_port(), free_port());
    // A pipe whose reading end is closed: every write to stderr gets EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", free_port()),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env_remove("LLMTEL_PRICES")
        .env_remove("LLMTEL_PRICES_URL")
        .args(["collector", "--grpc-listen", &grpc.to_string()])
        .args(["--http-listen", &otlp.to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .args(["--shutdown-timeout", "2"])
        .stdout(Stdio::piped())
        .stderr(writer)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !serves_metrics(metrics) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            panic!("the collector exited as it started ({status}): {out}");
        }
        assert!(
            Instant::now() < deadline,
            "the collector never served /metrics"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Said on stderr as it stops ("SIGTERM: no longer receiving ...").
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(15) {
            child.kill().unwrap();
            panic!("the collector did not exit within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}", out.status);
    assert!(stdout.contains("stopped; received 0"), "{stdout}");
}
