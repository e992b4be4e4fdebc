//! The service with the whole stack: a user past the daily budget gets 429 with Retry-After
//! while others are served, and the budget and quality gauges are on the metrics endpoint.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

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

#[test]
fn over_budget_user_gets_429_others_are_served_and_gauges_are_exposed() {
    let (port, metrics_port) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_axum-service"));
    // gpt-4o-mini: each call reserves (prompt + 8 tokens) x $0.15/M + 256 x $0.60/M
    // ~ $0.000156 and spends ~ $0.00003, so a $0.0002 daily budget admits two calls.
    cmd.env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("LLMTEL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("SIM_LATENCY_MS", "5")
        .env("USER_DAILY_BUDGET_USD", "0.0002")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let _service = Service(cmd.spawn().expect("start axum-service"));
    let app = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{app}/healthz")).send().is_err() {
        assert!(Instant::now() < deadline, "axum-service did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ask = |user: &str| {
        http.post(format!("{app}/chat"))
            .json(&json!({"user": user, "prompt": "Where is my order?"}))
            .send()
            .unwrap()
    };

    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..3 {
        let r = ask("alice");
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body: Value = r.json().unwrap();
            refused = Some((retry, body));
        }
        // Let the settle of the previous call land before the next reservation.
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(statuses, [200, 200, 429]);
    let (retry, body) = refused.unwrap();
    assert_eq!(body["rule"], "per-user-daily");
    // Resets at the next UTC midnight: within a day.
    assert!((1..=86_400).contains(&retry), "Retry-After {retry}");
    assert_eq!(ask("bob").status(), 200, "another user is not affected");

    // Gauges on the metrics endpoint (quality is evaluated off the request path: poll).
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = http.get(&metrics).send().unwrap().text().unwrap();
        let has = |p: &str| text.lines().any(|l| l.starts_with(p));
        if has("llm_budget_utilization_ratio{budget=\"per-user-daily\",scope=\"user.id=alice\"}")
            && has("llm_quality_score{evaluation=\"quality_score\"")
            && has("llm_quality_requests_total{model=\"gpt-4o-mini\",feature=\"chat\"} 3")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gauges missing from /metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
