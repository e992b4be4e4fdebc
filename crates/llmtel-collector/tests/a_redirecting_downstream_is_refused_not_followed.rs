//! An HTTP downstream that answers with a redirect is a refusal, never followed: a 301/302/303
//! would turn the POST into a GET without its body (and a 2xx answer to that GET counted the
//! spans as forwarded, though nobody received them); a 307/308 would post the spans, with the
//! forward headers (an API key), to whatever host the answer names. The spans are counted
//! as rejected and the last error says what to do (point the endpoint at the final URL).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use common::*;
use llmtel_collector::{Collector, Protocol};

/// Serves `app` on a free loopback port.
async fn serve(app: axum::Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_permanently_answer_counts_the_spans_rejected_not_forwarded() {
    // POST /v1/traces answers 301 to /x; a GET of /x answers 200 (what a redirect followed
    // as a GET, body dropped, would get).
    let gets: Arc<Mutex<usize>> = Arc::default();
    let seen = gets.clone();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            post(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/x")]) }),
        )
        .route(
            "/x",
            get(move || {
                *seen.lock().unwrap() += 1;
                async { StatusCode::OK }
            }),
        );
    let downstream = serve(app).await;
    let collector =
        Collector::start(config(downstream).with_forward_protocol(Protocol::HttpProtobuf))
            .await
            .unwrap();
    post_protobuf(
        &collector,
        request("svc", 1, vec![("a".into(), vec![]), ("b".into(), vec![])]),
    )
    .await;
    wait_until("the 2 spans are counted", || {
        let s = collector.stats();
        s.dropped_rejected + s.forwarded == 2
    })
    .await;
    let stats = collector.stats();
    assert_eq!(stats.forwarded, 0, "{stats:?}");
    assert_eq!(stats.dropped_rejected, 2, "{stats:?}");
    assert_eq!(*gets.lock().unwrap(), 0, "the redirect was followed");
    let why = collector.last_error().unwrap();
    assert!(
        why.contains("HTTP 301") && why.contains("\"/x\"") && why.contains("final URL"),
        "{why}"
    );
    let m = metrics(collector.metrics_addr()).await;
    assert!(m.contains("# llmtel_collector_last_error "), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_redirect_to_another_host_never_gets_the_spans_or_the_api_key() {
    // Another host that would take the spans, and keeps the headers of every request.
    let elsewhere: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let kept = elsewhere.clone();
    let other = serve(axum::Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap| {
            kept.lock().unwrap().push(headers);
            async { StatusCode::OK }
        }),
    ))
    .await;
    let target = format!("http://{other}/v1/traces");
    let downstream = serve(axum::Router::new().route(
        "/v1/traces",
        post(move || {
            let target = target.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]) }
        }),
    ))
    .await;
    let config = config(downstream)
        .with_forward_protocol(Protocol::HttpProtobuf)
        .with_forward_header("x-api-key", "sk-downstream-secret");
    let collector = Collector::start(config).await.unwrap();
    post_protobuf(&collector, request("svc", 2, vec![("a".into(), vec![])])).await;
    wait_until("the span is counted", || {
        let s = collector.stats();
        s.dropped_rejected + s.forwarded == 1
    })
    .await;
    assert_eq!(collector.stats().dropped_rejected, 1);
    assert!(
        elsewhere.lock().unwrap().is_empty(),
        "the spans and the api key went to the host the redirect named"
    );
    let why = collector.last_error().unwrap();
    assert!(why.contains("HTTP 307"), "{why}");
    assert!(!why.contains("sk-downstream-secret"), "{why}");
}
