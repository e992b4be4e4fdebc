//! `llmtel collector` stops on SIGTERM (what Docker, Kubernetes and systemd send) as on
//! Ctrl-C: it stops receiving, forwards what is queued within `--shutdown-timeout`, says what
//! it could not send, and exits 0. (It used to die on SIGTERM's default action with its
//! queue, or, as a container's process 1, ignore it until killed.)
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;
use support::{free_port, http};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// An OTLP/HTTP downstream that takes each request and answers `200` after `delay` (or never,
/// with `None`); counts the requests it answered.
fn downstream(delay: Option<Duration>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let Some(delay) = delay else {
                        std::thread::sleep(Duration::from_secs(120));
                        return;
                    };
                    std::thread::sleep(delay);
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
                    );
                    count.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, answered)
}

/// Starts the collector forwarding to `downstream`, waits until it serves `/metrics` and
/// sends it one span over OTLP/HTTP JSON.
fn collector_with_one_span(downstream: SocketAddr, shutdown_timeout: &str) -> Child {
    let (grpc, otlp, metrics) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{downstream}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env_remove("LLMTEL_PRICES")
        .env_remove("LLMTEL_PRICES_URL")
        .args(["collector", "--grpc-listen", &grpc.to_string()])
        .args(["--http-listen", &otlp.to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .args(["--shutdown-timeout", shutdown_timeout])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(metrics, "GET /metrics HTTP/1.1", "").is_err() {
        assert!(
            Instant::now() < deadline,
            "the collector never served /metrics"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let span = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"chat gpt-4o","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}}]}]}]}]}"#;
    let r = http(
        otlp,
        "POST /v1/traces HTTP/1.1\r\nContent-Type: application/json",
        span,
    )
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    child
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child to exit (at most `limit`), returning its status, stdout and stderr.
fn wait(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String, String) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the collector did not exit within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sigterm_forwards_the_queued_span_to_a_slow_downstream_then_exits_0() {
    // The downstream takes 1.5 s to answer: the span is still queued when SIGTERM comes.
    let (addr, answered) = downstream(Some(Duration::from_millis(1500)));
    let child = collector_with_one_span(addr, "10");
    sigterm(&child);
    let (status, out, err) = wait(child, Duration::from_secs(15));
    assert!(status.success(), "{status}: {out}\n{err}");
    assert_eq!(answered.load(Ordering::SeqCst), 1, "{out}\n{err}");
    assert!(err.contains("SIGTERM: no longer receiving"), "{err}");
    assert!(
        out.contains("stopped; received 1, forwarded 1, dropped 0"),
        "{out}"
    );
    assert!(!out.contains("not sent"), "{out}");
}

#[test]
fn a_downstream_that_never_answers_is_given_up_at_the_shutdown_timeout_and_said() {
    let (addr, answered) = downstream(None);
    let child = collector_with_one_span(addr, "1");
    // The forwarder has the span on its way.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    sigterm(&child);
    let (status, out, err) = wait(child, Duration::from_secs(10));
    assert!(status.success(), "{status}: {out}\n{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(answered.load(Ordering::SeqCst), 0);
    assert!(
        out.contains("forwarded 0")
            && out.contains("not sent 1")
            && out.contains("--shutdown-timeout"),
        "{out}"
    );
}
