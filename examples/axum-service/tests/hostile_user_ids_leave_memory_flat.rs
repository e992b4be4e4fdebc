//! Hostile input: 10,000 requests whose user ids are 1 MiB each (every one distinct) leave the
//! running axum-service's resident memory within 64 MiB of its steady state. Everything llmtel
//! keeps per user (budget scopes, metric labels, quality series, span dimensions) is capped in
//! length (`llmtel::cap_value`) as well as in count.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
const ATTACK_REQUESTS: usize = 10_000;

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

/// Resident memory of a process, from /proc.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Sends `n` requests from 4 threads; `body(i)` makes the i-th body. Every one must be
/// answered 200 (the service survives, and serves).
fn send(app: &str, n: usize, body: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static) {
    let next = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(body);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (next, body, url) = (next.clone(), body.clone(), format!("{app}/chat"));
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body(i))
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), 200, "request {i}: {:?}", r.text());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn ten_thousand_one_mib_user_ids_leave_memory_flat() {
    let (port, metrics_port) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_axum-service"));
    cmd.env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("LLMTEL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("SIM_LATENCY_MS", "0")
        // A budget no test user reaches: every request is served.
        .env("USER_DAILY_BUDGET_USD", "1000")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let service = Service(cmd.spawn().expect("start axum-service"));
    let pid = service.0.id();
    let app = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(format!("{app}/healthz")).is_err() {
        assert!(Instant::now() < deadline, "axum-service did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Steady state: ordinary traffic from 1,000 distinct users.
    send(&app, 2_000, |i| {
        format!(
            r#"{{"user":"user-{}","prompt":"what is my balance?"}}"#,
            i % 1_000
        )
        .into_bytes()
    });
    let steady = rss(pid);

    // The attack: 10,000 distinct user ids of 1 MiB each.
    let filler = "u".repeat(MIB as usize - 16);
    send(&app, ATTACK_REQUESTS, move |i| {
        format!(r#"{{"user":"{i:08}{filler}","prompt":"what is my balance?"}}"#).into_bytes()
    });
    let after = rss(pid);
    let grown = after.saturating_sub(steady);
    eprintln!(
        "axum-service RSS: steady {} MiB, after 10,000 x 1 MiB user ids {} MiB (+{} MiB)",
        steady / MIB,
        after / MIB,
        grown / MIB
    );
    assert!(
        grown <= 64 * MIB,
        "RSS grew by {} MiB (steady {} MiB, after {} MiB)",
        grown / MIB,
        steady / MIB,
        after / MIB
    );

    // And the service still answers ordinary users.
    send(&app, 10, |i| {
        format!(r#"{{"user":"user-{i}","prompt":"still there?"}}"#).into_bytes()
    });
}
