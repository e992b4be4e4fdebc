//! The last error (`Collector::last_error`, `# llmtel_collector_last_error` on `/metrics`,
//! stderr at shutdown) says why spans were dropped, with what a downstream answered or what
//! a stage panicked with: text the collector does not write. A downstream echoing the API key
//! it was sent (in a URL's query, an `Authorization` header) or a sink panicking with a key
//! in its message must not put that key on `/metrics`: the text goes through llmtel's
//! redaction step before it is kept.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use llmtel_collector::{Collector, Protocol};

/// A provider-shaped key, made at run time (no key-shaped literal in the repository).
fn key() -> String {
    format!("sk-proj-{}", "Ab3dEf6hJ9".repeat(4))
}

/// A downstream refusing every request for good (401), echoing the credentials it was sent.
async fn echoing_downstream(key: String) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move || {
            let key = key.clone();
            async move {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    format!(
                        "invalid credentials for https://otlp.example.com/v1/traces?api_key={key} \
                         (Authorization: Bearer {key})"
                    ),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

async fn assert_redacted(collector: &Collector, key: &str) {
    let why = collector.last_error().unwrap();
    assert!(!why.contains(key), "the key reached last_error: {why}");
    assert!(why.contains("[REDACTED]"), "{why}");
    let m = metrics(collector.metrics_addr()).await;
    let line = m
        .lines()
        .find(|l| l.starts_with("# llmtel_collector_last_error "))
        .unwrap_or_else(|| panic!("no last error on /metrics:\n{m}"));
    assert!(!m.contains(key), "the key reached /metrics: {line}");
    assert!(line.contains("[REDACTED]"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_echoing_the_api_key_in_its_refusal_does_not_put_it_on_metrics() {
    let key = key();
    let downstream = echoing_downstream(key.clone()).await;
    let collector =
        Collector::start(config(downstream).with_forward_protocol(Protocol::HttpProtobuf))
            .await
            .unwrap();
    post_protobuf(
        &collector,
        request("svc", 1, vec![("chat".into(), chat_call("gpt-4o", None))]),
    )
    .await;
    wait_until("the refused span is dropped", || {
        collector.stats().dropped_rejected == 1
    })
    .await;
    let why = collector.last_error().unwrap();
    assert!(
        why.contains("401") && why.contains("invalid credentials"),
        "{why}"
    );
    assert_redacted(&collector, &key).await;
}

/// A downstream refusing every request for good (401) with `body`.
async fn refusing_downstream(body: String) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move || {
            let body = body.clone();
            async move { (axum::http::StatusCode::UNAUTHORIZED, body) }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_300_character_cut_of_a_refusal_falls_in_is_redacted_whole() {
    // What a downstream answers is kept to 300 characters. Cut first, a key the cut falls in
    // kept a head too short to be recognised as a key (`sk-proj-Ab3d`, `Bearer Ab3dEf6`),
    // which reached the last error as is.
    let key = key();
    let token = "Ab3dEf6hJ9".repeat(4);
    for (secret, head) in [
        (key.clone(), key[..12].to_owned()),
        (format!("Bearer {token}"), format!("Bearer {}", &token[..7])),
    ] {
        // `head` ends at the 300th character.
        let body = format!(
            "{}{secret} was refused",
            "x ".repeat((300 - head.len()) / 2)
        );
        assert_eq!(body.find(&secret), Some(300 - head.len()));
        let downstream = refusing_downstream(body).await;
        let collector =
            Collector::start(config(downstream).with_forward_protocol(Protocol::HttpProtobuf))
                .await
                .unwrap();
        post_protobuf(
            &collector,
            request("svc", 1, vec![("chat".into(), chat_call("gpt-4o", None))]),
        )
        .await;
        wait_until("the refused span is dropped", || {
            collector.stats().dropped_rejected == 1
        })
        .await;
        let why = collector.last_error().unwrap();
        assert!(why.contains("401"), "{why}");
        assert!(!why.contains(&head), "a cut key reached last_error: {why}");
        assert!(why.contains("[REDACTED]"), "{why}");
        let m = metrics(collector.metrics_addr()).await;
        assert!(!m.contains(&head), "a cut key reached /metrics:\n{m}");
        collector.shutdown(std::time::Duration::from_secs(2)).await;
    }
}

/// A sink with a bug whose panic message carries a key.
#[derive(Debug)]
struct Leaky(String);

impl llmtel::CallSink for Leaky {
    fn on_call(&self, _call: &llmtel::LlmCall) {
        panic!(
            "could not post to https://sink.example.com/ingest?key={}",
            self.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_panicking_with_a_key_in_its_message_does_not_put_it_on_metrics() {
    let key = key();
    let (_receiver, downstream, _task) = Receiver::start().await;
    let collector = Collector::start(config(downstream).with_sink(Arc::new(Leaky(key.clone()))))
        .await
        .unwrap();
    post_protobuf(
        &collector,
        request("svc", 1, vec![("chat".into(), chat_call("gpt-4o", None))]),
    )
    .await;
    wait_until("the request is failed by the stage", || {
        collector.stats().dropped_stage_failed == 1
    })
    .await;
    let why = collector.last_error().unwrap();
    assert!(
        why.contains("panicked") && why.contains("could not post"),
        "{why}"
    );
    assert_redacted(&collector, &key).await;
}

/// Set in the child process of
/// [`a_stage_panicking_with_a_key_in_its_message_prints_it_redacted_on_stderr`].
const CHILD: &str = "LLMTEL_TEST_PANIC_HOOK_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_panicking_with_a_key_in_its_message_prints_it_redacted_on_stderr() {
    // Rust's default panic hook prints a panic's message as it is on stderr, before the
    // stage catches the panic and keeps its message redacted: the key reached the logs. The
    // panic hook `llmtel collector` installs prints it redacted. Run in a child process (the
    // hook is the process's), which starts a collector with a sink panicking with a key.
    if std::env::var_os(CHILD).is_some() {
        llmtel_collector::redact_panic_messages();
        let key = std::env::var(CHILD).unwrap();
        let (_receiver, downstream, _task) = Receiver::start().await;
        let collector = Collector::start(config(downstream).with_sink(Arc::new(Leaky(key))))
            .await
            .unwrap();
        post_protobuf(
            &collector,
            request("svc", 1, vec![("chat".into(), chat_call("gpt-4o", None))]),
        )
        .await;
        wait_until("the request is failed by the stage", || {
            collector.stats().dropped_stage_failed == 1
        })
        .await;
        return;
    }
    let key = key();
    let child_key = key.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "a_stage_panicking_with_a_key_in_its_message_prints_it_redacted_on_stderr",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, child_key)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed: {stderr}");
    assert!(
        stderr.contains("panicked at") && stderr.contains("could not post"),
        "the panic is printed: {stderr}"
    );
    assert!(!stderr.contains(&key), "the key reached stderr: {stderr}");
    assert!(stderr.contains("[REDACTED]"), "{stderr}");
}
