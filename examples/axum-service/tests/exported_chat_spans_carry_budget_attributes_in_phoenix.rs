//! Issue #12: the service stacks its budget layer after llmtel's bundle (which ends the
//! OpenTelemetry span first), and exports over OTLP to a real Phoenix: every exported `chat`
//! span still carries `llmtel.budget.rule` and `llmtel.budget.utilization` next to its cost,
//! read back from Phoenix's REST API. Needs `scripts/peers.sh start` (scripts/test.sh does
//! it); fails, never skips, without Phoenix.
#![allow(clippy::unwrap_used)]

#[path = "../../../crates/llmtel/tests/support/mod.rs"]
mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::phoenix::*;

/// The service as a child process; killed (by its PID) on drop.
struct Service(Child);
impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn every_exported_chat_span_carries_its_budget_rule_and_utilization() {
    let peers = Peers::from_env();
    let project = unique_project("axum-budget-attrs");
    let (port, metrics_port) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_axum-service"));
    cmd.env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("LLMTEL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("SIM_LATENCY_MS", "5")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &peers.phoenix_otlp_http)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            format!("openinference.project.name={project}"),
        )
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut service = Service(cmd.spawn().expect("start axum-service"));
    let app = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{app}/healthz")).send().is_err() {
        assert!(Instant::now() < deadline, "axum-service did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    const CALLS: usize = 6;
    for i in 0..CALLS {
        let r = http
            .post(format!("{app}/chat"))
            .json(&json!({"user": format!("user-{}", i % 2), "prompt": "where is my order?"}))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    // Let the service flush on a clean exit (SIGTERM), then read Phoenix.
    let pid = service.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while service.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }

    let spans = wait_for_spans(
        &peers.phoenix_url,
        &project,
        |s| span_name(s).starts_with("chat "),
        CALLS,
        Duration::from_secs(40),
    );
    let chats: Vec<_> = spans
        .iter()
        .filter(|s| span_name(s).starts_with("chat "))
        .collect();
    assert_eq!(chats.len(), CALLS, "{chats:?}");
    for s in chats {
        assert!(
            attr_f64(s, "gen_ai.usage.cost").is_some_and(|c| c > 0.0),
            "priced: {s}"
        );
        assert!(
            attr_str(s, "llmtel.budget.rule").is_some_and(|r| !r.is_empty()),
            "llmtel.budget.rule on the exported span: {s}"
        );
        assert!(
            attr_f64(s, "llmtel.budget.utilization").is_some_and(|u| u > 0.0),
            "llmtel.budget.utilization on the exported span: {s}"
        );
    }
}
