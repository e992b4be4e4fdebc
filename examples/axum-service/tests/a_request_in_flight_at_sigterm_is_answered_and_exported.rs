//! SIGTERM stops the listener, but a request already being served still gets its answer, and
//! its span reaches the collector: the service waits for it before the llmtel guard flushes
//! and the process exits (it used to drop the guard and return at once, cutting the
//! connection and losing the span).
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
fn a_request_in_flight_at_sigterm_gets_its_answer_and_its_span_is_exported() {
    let (url, received) = otlp_http::receiver();
    let (port, metrics_port) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_axum-service"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    // The simulated model answers after 3 s: the call is still running when SIGTERM comes.
    cmd.env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("LLMTEL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("SIM_LATENCY_MS", "3000")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &url)
        .env("OTEL_METRICS_EXPORTER", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut service = Service(cmd.spawn().expect("start axum-service"));
    let app = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(format!("{app}/healthz")).is_err() {
        assert!(Instant::now() < deadline, "axum-service did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let ask = move |app: &str| {
        client
            .post(format!("{app}/chat"))
            .json(&json!({"user": "alice", "prompt": "Where is my order?"}))
            .send()
    };
    // A first call, so that alice has a row on the budget gauges (a scope with no settled
    // spend yet does not show its reservation there).
    assert_eq!(ask(&app).unwrap().status(), 200);
    let in_flight = {
        let app = app.clone();
        std::thread::spawn(move || ask(&app))
    };
    // The call is in its handler once its reservation shows on the budget gauge.
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let reserved = "llm_budget_reserved_usd{budget=\"per-user-daily\",scope=\"user.id=alice\"} ";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = reqwest::blocking::get(&metrics).unwrap().text().unwrap();
        let held = text
            .lines()
            .find_map(|l| l.strip_prefix(reserved))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .is_some_and(|v| v > 0.0);
        if held {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the call never reserved:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let pid = service.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let r = in_flight
        .join()
        .unwrap()
        .expect("the request in flight at SIGTERM is answered");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().unwrap();
    let trace_id = body["trace_id"].as_str().expect("a trace id").to_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = service.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "axum-service did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a clean exit: {status}");
    assert!(
        exported(&received, &trace_id, Duration::from_secs(10)),
        "the span of the request in flight at SIGTERM (trace {trace_id}) was not exported"
    );
}
