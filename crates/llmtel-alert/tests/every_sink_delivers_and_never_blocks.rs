//! One behaviour suite run against every HTTP sink (webhook, Slack, Alertmanager body
//! shape) plus the log sink: firing and resolved alerts are delivered in the sink's format;
//! a failing receiver is retried with backoff, then counted; an unreachable one is counted;
//! `send` never blocks the caller.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use llmtel_alert::{
    Alert, AlertDispatcher, AlertSink, AlertmanagerSink, HttpConfig, LogSink, Severity, SlackSink,
    WebhookSink,
};
use serde_json::Value;
use support::Listener;

type Make = fn(&str, HttpConfig) -> Arc<dyn AlertSink>;
type Matches = fn(&Value, &str, &str) -> bool;

fn fast() -> HttpConfig {
    HttpConfig {
        timeout: Duration::from_secs(2),
        retries: 2,
        backoff: Duration::from_millis(20),
        ..HttpConfig::default()
    }
}

/// (name, constructor, does this body carry a firing/resolved alert called NAME?)
fn sinks() -> Vec<(&'static str, Make, Matches)> {
    vec![
        (
            "webhook",
            |u, c| Arc::new(WebhookSink::with_config(u, c).expect("sink")),
            |b, name, state| b["alerts"][0]["name"] == name && b["alerts"][0]["state"] == state,
        ),
        (
            "slack",
            |u, c| Arc::new(SlackSink::with_config(u, c).expect("sink")),
            |b, name, state| {
                let t = b["text"].as_str().unwrap_or("");
                t.contains(name) && t.contains(&state.to_uppercase())
            },
        ),
        (
            "alertmanager",
            |u, c| Arc::new(AlertmanagerSink::with_config(u, c).expect("sink")),
            |b, name, state| {
                let a = &b[0];
                a["labels"]["alertname"] == name
                    && a["labels"]["severity"] == "critical"
                    && a["annotations"]["summary"] == "over budget"
                    && a["endsAt"].is_string() == (state == "resolved")
            },
        ),
    ]
}

fn alert(name: &str) -> Alert {
    Alert::firing(name, Severity::Critical)
        .with_label("rule", "r1")
        .with_annotation("summary", "over budget")
}

#[test]
fn every_http_sink_delivers_firing_then_resolved() {
    for (kind, make, matches) in sinks() {
        let l = Listener::start("127.0.0.1:0");
        let d = AlertDispatcher::builder()
            .with_sink(make(&l.url(""), fast()))
            .build();
        let name = format!("Suite{kind}");
        d.send(alert(&name));
        d.send(alert(&name).resolved());
        assert!(d.flush(Duration::from_secs(20)), "{kind}: flush");
        let got = l.received();
        let bodies: Vec<&Value> = got.iter().map(|r| &r.body).collect();
        assert!(
            bodies.iter().any(|b| matches(b, &name, "firing"))
                || bodies
                    .iter()
                    .any(|b| b.to_string().contains("firing") && matches(b, &name, "firing")),
            "{kind}: no firing alert in {bodies:#?}"
        );
        // Firing and resolved may arrive in one batch: check each alert of each body.
        let flat: Vec<Value> = bodies.iter().flat_map(|b| split(kind, b)).collect();
        assert_eq!(flat.len(), 2, "{kind}: {flat:#?}");
        assert!(matches(&flat[0], &name, "firing"), "{kind}: {flat:#?}");
        assert!(matches(&flat[1], &name, "resolved"), "{kind}: {flat:#?}");
        assert_eq!(d.stats().delivered, 2, "{kind}");
        assert_eq!(d.stats().failed, 0, "{kind}");
        if kind == "alertmanager" {
            assert!(
                got.iter()
                    .all(|r| r.path == "/api/v2/alerts" && r.method == "POST")
            );
        }
    }
}

/// Splits a batch body into one body per alert, in the sink's own format.
fn split(kind: &str, b: &Value) -> Vec<Value> {
    match kind {
        "webhook" => b["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| serde_json::json!({ "alerts": [a] }))
            .collect(),
        "slack" => b["text"]
            .as_str()
            .expect("text")
            .lines()
            .map(|l| serde_json::json!({ "text": l }))
            .collect(),
        _ => b
            .as_array()
            .expect("array")
            .iter()
            .map(|a| Value::Array(vec![a.clone()]))
            .collect(),
    }
}

#[test]
fn every_http_sink_retries_a_failing_receiver_then_succeeds() {
    for (kind, make, matches) in sinks() {
        let l = Listener::start("127.0.0.1:0");
        l.fail_first(2); // two 503s, then 200: within 2 retries
        let d = AlertDispatcher::builder()
            .with_sink(make(&l.url(""), fast()))
            .build();
        d.send(alert("Retried"));
        assert!(d.flush(Duration::from_secs(20)));
        assert_eq!(l.hits.load(Ordering::SeqCst), 3, "{kind}");
        assert!(
            matches(&l.received()[0].body, "Retried", "firing"),
            "{kind}"
        );
        assert_eq!(d.stats().delivered, 1, "{kind}");
    }
}

#[test]
fn every_http_sink_counts_a_failure_and_never_blocks_the_caller() {
    for (kind, make, _) in sinks() {
        // A receiver that always fails: 1 try + 2 retries, then counted.
        let l = Listener::start("127.0.0.1:0");
        l.set_status(500);
        // And one that is not there at all.
        let gone = {
            let t = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            t.local_addr().expect("addr").to_string()
        };
        let d = AlertDispatcher::builder()
            .with_sink(make(&l.url(""), fast()))
            .with_sink(make(&format!("http://{gone}"), fast()))
            .with_sink(Arc::new(LogSink::new()))
            .build();
        let t0 = Instant::now();
        for i in 0..10 {
            d.send(alert(&format!("Failing{i}")));
        }
        assert!(
            t0.elapsed() < Duration::from_millis(50),
            "{kind}: send blocked {:?}",
            t0.elapsed()
        );
        assert!(d.flush(Duration::from_secs(20)), "{kind}: flush");
        let s = d.stats();
        assert_eq!(s.queued, 10, "{kind}");
        assert_eq!(s.failed, 20, "{kind}: two failing sinks x 10 alerts: {s:?}");
        assert_eq!(s.delivered, 10, "{kind}: the log sink got them all: {s:?}");
        assert!(s.last_error.is_some());
        assert_eq!(
            l.hits.load(Ordering::SeqCst) % 3,
            0,
            "{kind}: 1 try + 2 retries per batch"
        );
    }
}

#[derive(Debug)]
struct Stuck;
impl AlertSink for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn send(&self, _: &[Alert]) -> Result<(), llmtel_alert::AlertError> {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }
}

#[derive(Debug)]
struct Panics;
impl AlertSink for Panics {
    fn name(&self) -> &str {
        "panics"
    }
    fn send(&self, _: &[Alert]) -> Result<(), llmtel_alert::AlertError> {
        panic!("a broken sink")
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let d = AlertDispatcher::builder()
        .with_sink(Arc::new(Stuck))
        .with_capacity(4)
        .build();
    let t0 = Instant::now();
    let accepted = (0..1000)
        .filter(|i| d.send(alert(&format!("A{i}"))))
        .count() as u64;
    assert!(
        t0.elapsed() < Duration::from_millis(100),
        "{:?}",
        t0.elapsed()
    );
    let s = d.stats();
    assert_eq!(s.queued, accepted);
    assert_eq!(s.queued + s.dropped, 1000);
    assert!(s.dropped >= 990, "{s:?}");
}

#[test]
fn a_panicking_sink_is_counted_and_the_others_still_deliver() {
    let l = Listener::start("127.0.0.1:0");
    let d = AlertDispatcher::builder()
        .with_sink(Arc::new(Panics))
        .with_sink(Arc::new(
            WebhookSink::with_config(&l.url("/h"), fast()).expect("sink"),
        ))
        .build();
    d.send(alert("P1"));
    assert!(d.flush(Duration::from_secs(20)));
    d.send(alert("P2"));
    assert!(d.flush(Duration::from_secs(20)));
    let s = d.stats();
    assert_eq!((s.delivered, s.failed), (2, 2), "{s:?}");
    assert_eq!(l.received().len(), 2);
}

/// A receiver that answers 429 with `Retry-After: 2` until two seconds after its first
/// request, then 200 (Slack's rate limit); returns its URL and the requests it answered 200.
fn rate_limited_receiver() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ok2 = ok.clone();
    std::thread::spawn(move || {
        let mut first: Option<Instant> = None;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let first = *first.get_or_insert_with(Instant::now);
            let reply: &[u8] = if first.elapsed() < Duration::from_secs(2) {
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                ok2.fetch_add(1, Ordering::SeqCst);
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            };
            let _ = conn.write_all(reply);
        }
    });
    (format!("http://{addr}/hook"), ok)
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    // The default backoff (200 ms doubling, three retries) gave up within 1.4 s of a
    // receiver asking for 2: the alert was lost.
    let (url, ok) = rate_limited_receiver();
    let d = AlertDispatcher::builder()
        .with_sink(Arc::new(SlackSink::new(&url).expect("sink")))
        .build();
    d.send(alert("RateLimited"));
    assert!(d.flush(Duration::from_secs(20)));
    let s = d.stats();
    assert_eq!((s.delivered, s.failed), (1, 0), "{s:?}");
    assert_eq!(ok.load(Ordering::SeqCst), 1);
}

#[test]
fn a_header_that_is_not_valid_http_is_a_clear_error_when_the_sink_is_built() {
    // It failed every request, each retried with backoff on the dispatcher's one thread.
    let err = WebhookSink::with_config(
        "http://127.0.0.1:9/hook",
        HttpConfig::default().with_header("X-Token", "a\nb"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("X-Token") && err.contains("not a valid HTTP header"),
        "{err}"
    );
    // The value never reaches the message.
    assert!(!err.contains("a\nb"), "{err}");
}
