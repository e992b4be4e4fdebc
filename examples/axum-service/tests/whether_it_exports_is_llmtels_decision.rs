//! The service asks llmtel's guard whether it exports, and adds its own local tracer only
//! when llmtel does not. With only `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set, llmtel exports:
//! a second OpenTelemetry layer next to llmtel's panicked on the first span (both store their
//! data in the span's extensions), so `/chat` got no answer. With an empty
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, llmtel does not export: the service thought it did, added
//! no local tracer, and answered `"trace_id": null`.
#![allow(clippy::unwrap_used)]

#[path = "../../../crates/llmtel/tests/support/otlp_http.rs"]
mod otlp_http;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service as a child process; killed (by its PID) on drop.
struct Service(Child);
impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the service with every `OTEL_*` variable of the test's environment removed and
/// `env` set, and waits for `/healthz`. Returns it and its base URL.
fn start(env: &[(&str, &str)]) -> (Service, String) {
    let (port, metrics_port) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_axum-service"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("LLMTEL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("SIM_LATENCY_MS", "5")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut service = Service(cmd.spawn().expect("start axum-service"));
    let app = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(format!("{app}/healthz")).is_err() {
        assert!(
            service.0.try_wait().unwrap().is_none(),
            "axum-service exited at start"
        );
        assert!(Instant::now() < deadline, "axum-service did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (service, app)
}

/// `POST /chat` for alice: the answer's JSON (the request must succeed with 200).
fn chat(app: &str) -> Value {
    let r = reqwest::blocking::Client::new()
        .post(format!("{app}/chat"))
        .json(&json!({"user": "alice", "prompt": "Where is my order?"}))
        .send()
        .expect("/chat answers (the service did not panic)");
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Whether an OTLP/HTTP trace export carrying `trace_id` (hex) reaches the receiver within
/// `limit` (a liveness bound: the service has exited by then, so every export it made is
/// sent or never will be).
fn exported(
    received: &std::sync::mpsc::Receiver<otlp_http::Request>,
    trace_id: &str,
    limit: Duration,
) -> bool {
    let id = hex_bytes(trace_id);
    let deadline = Instant::now() + limit;
    while let Ok(r) = received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if r.path == "/v1/traces" && r.body.windows(id.len()).any(|w| w == id) {
            return true;
        }
    }
    false
}

#[test]
fn with_only_the_traces_endpoint_set_chat_answers_and_its_span_is_exported() {
    let (url, received) = otlp_http::receiver();
    let traces = format!("{url}/v1/traces");
    let (mut service, app) = start(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces)]);
    let body = chat(&app);
    let trace_id = body["trace_id"].as_str().expect("a trace id").to_owned();
    assert_eq!(trace_id.len(), 32, "{body}");
    // Answered twice: the first span did not take the process down.
    chat(&app);

    // A clean exit flushes; the receiver then has the call's trace.
    let pid = service.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while service.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "axum-service did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        exported(&received, &trace_id, Duration::from_secs(10)),
        "trace {trace_id} never reached {traces}"
    );
}

#[test]
fn with_an_empty_endpoint_nothing_is_exported_and_chat_still_has_a_trace_id() {
    let (_service, app) = start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]);
    let body = chat(&app);
    assert!(
        body["trace_id"].as_str().is_some_and(|t| t.len() == 32),
        "the local tracer gives every call a trace id: {body}"
    );
}
