//! What the downstream answers decides what the collector does with a request, as the OTLP
//! specification says: errors it must not retry (HTTP 400/401/403, gRPC INVALID_ARGUMENT,
//! UNAUTHENTICATED, RESOURCE_EXHAUSTED without a RetryInfo) drop the spans at once, counted
//! as `rejected`, instead of holding the queue's room for the whole retry time; retryable
//! ones (HTTP 429/503, gRPC UNAVAILABLE, RESOURCE_EXHAUSTED with a RetryInfo) are retried,
//! no sooner than the downstream's own delay; a partial success's rejected spans are counted
//! as rejected, the rest as forwarded.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;

/// What the scripted downstream answers one request with.
#[derive(Clone, Debug)]
enum Answer {
    Ok {
        rejected: i64,
    },
    /// A status, with these details (`grpc-status-details-bin`) when given.
    Grpc(tonic::Code, Option<bytes::Bytes>),
    Http(u16, Option<&'static str>),
}

/// A downstream that answers each request with the next planned answer (then `Ok`), and
/// keeps the time of every request and the spans it accepted.
#[derive(Clone, Default)]
struct Scripted {
    plan: Arc<Mutex<VecDeque<Answer>>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
    accepted: Arc<Mutex<usize>>,
}

impl Scripted {
    fn new(plan: impl IntoIterator<Item = Answer>) -> Self {
        Scripted {
            plan: Arc::new(Mutex::new(plan.into_iter().collect())),
            ..Default::default()
        }
    }

    fn next(&self, spans: usize) -> Answer {
        self.attempts.lock().unwrap().push(Instant::now());
        let a = self
            .plan
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Answer::Ok { rejected: 0 });
        if let Answer::Ok { rejected } = a {
            *self.accepted.lock().unwrap() += spans - rejected as usize;
        }
        a
    }

    fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }

    async fn serve_grpc(&self) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let svc = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l))
                .await
                .unwrap();
        });
        addr
    }

    async fn serve_http(&self) -> SocketAddr {
        use axum::response::IntoResponse;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let me = self.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    let req = ExportTraceServiceRequest::decode(body).unwrap();
                    match me.next(spans_of(&req)) {
                        Answer::Ok { rejected } => (
                            [("content-type", "application/x-protobuf")],
                            response(rejected).encode_to_vec(),
                        )
                            .into_response(),
                        Answer::Http(code, retry_after) => {
                            let mut r = (
                                axum::http::StatusCode::from_u16(code).unwrap(),
                                "refused by the test",
                            )
                                .into_response();
                            if let Some(v) = retry_after {
                                r.headers_mut().insert("retry-after", v.parse().unwrap());
                            }
                            r
                        }
                        Answer::Grpc(..) => unreachable!("a gRPC answer planned for HTTP"),
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr
    }
}

fn spans_of(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

fn response(rejected: i64) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: "too old".into(),
        }),
    }
}

#[tonic::async_trait]
impl TraceService for Scripted {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        match self.next(spans_of(request.get_ref())) {
            Answer::Ok { rejected } => Ok(tonic::Response::new(response(rejected))),
            Answer::Grpc(code, None) => Err(tonic::Status::new(code, "refused by the test")),
            Answer::Grpc(code, Some(details)) => Err(tonic::Status::with_details(
                code,
                "refused by the test",
                details,
            )),
            Answer::Http(..) => unreachable!("an HTTP answer planned for gRPC"),
        }
    }
}

/// The details of the status a full llmtel collector answers a gRPC sender with: a
/// `google.rpc.Status` carrying a `RetryInfo` of 1 s (a collector upstream of another one
/// gets exactly these).
async fn retry_info_of_a_full_collector() -> bytes::Bytes {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let full = Collector::start(
        config(closed)
            .with_queue_size(1)
            .unwrap()
            .with_retry_for(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    send(&full, 9, 1).await;
    let mut grpc = TraceServiceClient::connect(format!("http://{}", full.grpc_addr()))
        .await
        .unwrap();
    let err = grpc
        .export(request("svc", 10, vec![("x".into(), vec![])]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    err.details().to_vec().into()
}

/// A collector forwarding to `downstream` over `protocol`, retrying for a minute: a test
/// that sees its spans dropped sooner saw them dropped as not retryable.
async fn collector(downstream: SocketAddr, protocol: llmtel_collector::Protocol) -> Collector {
    let config = config(downstream)
        .with_forward_protocol(protocol)
        .with_retry_for(Duration::from_secs(60))
        .with_timeout(Duration::from_secs(5))
        .unwrap();
    Collector::start(config).await.unwrap()
}

async fn send(collector: &Collector, seed: u8, spans: usize) {
    let req = request(
        "svc",
        seed,
        (0..spans)
            .map(|n| (format!("s{seed}-{n}"), vec![]))
            .collect(),
    );
    post_protobuf(collector, req).await;
}

/// Waits until the queue is empty, then checks no further attempt comes.
async fn settled(collector: &Collector, downstream: &Scripted) -> usize {
    wait_until("the queue is empty", || collector.stats().queue_depth == 0).await;
    let n = downstream.attempts().len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(downstream.attempts().len(), n, "no attempt after the end");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_errors_that_must_not_be_retried_drop_the_request_at_once_counted() {
    for code in [
        tonic::Code::InvalidArgument,
        tonic::Code::Unauthenticated,
        tonic::Code::PermissionDenied,
        // Retryable only with a RetryInfo: without one, OTLP clients drop.
        tonic::Code::ResourceExhausted,
    ] {
        let downstream = Scripted::new([Answer::Grpc(code, None)]);
        let collector = collector(
            downstream.serve_grpc().await,
            llmtel_collector::Protocol::Grpc,
        )
        .await;
        let started = Instant::now();
        send(&collector, 1, 3).await;
        assert_eq!(settled(&collector, &downstream).await, 1, "{code:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{code:?}");
        let s = collector.stats();
        assert_eq!(
            (s.dropped_rejected, s.dropped_export_failed, s.forwarded),
            (3, 0, 0),
            "{code:?}"
        );
        assert_eq!(s.dropped(), 3);
        let m = metrics(collector.metrics_addr()).await;
        assert!(
            m.contains("llmtel_collector_spans_dropped_total{reason=\"rejected\"} 3\n"),
            "{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_errors_otlp_retries_are_retried_after_the_downstreams_delay() {
    let delay = Duration::from_secs(1);
    let retry_info = retry_info_of_a_full_collector().await;
    let downstream = Scripted::new([
        Answer::Grpc(tonic::Code::Unavailable, None),
        Answer::Grpc(tonic::Code::ResourceExhausted, Some(retry_info.clone())),
        Answer::Grpc(tonic::Code::Unavailable, Some(retry_info)),
    ]);
    let collector = collector(
        downstream.serve_grpc().await,
        llmtel_collector::Protocol::Grpc,
    )
    .await;
    send(&collector, 1, 2).await;
    assert_eq!(settled(&collector, &downstream).await, 4);
    let at = downstream.attempts();
    // After a RetryInfo (the one a full llmtel collector sends: 1 s), the next attempt waits
    // at least its delay (the backoff alone is 100 ms, then 200 ms).
    assert!(at[2] - at[1] >= delay, "{:?}", at[2] - at[1]);
    assert!(at[3] - at[2] >= delay, "{:?}", at[3] - at[2]);
    let s = collector.stats();
    assert_eq!((s.forwarded, s.dropped()), (2, 0));
    assert_eq!(*downstream.accepted.lock().unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_retried_or_dropped_as_otlp_http_says() {
    // 401 (a wrong API key header) and 400: dropped at once.
    for code in [401, 400, 403, 404] {
        let downstream = Scripted::new([Answer::Http(code, None)]);
        let collector = collector(
            downstream.serve_http().await,
            llmtel_collector::Protocol::HttpProtobuf,
        )
        .await;
        send(&collector, 1, 2).await;
        assert_eq!(settled(&collector, &downstream).await, 1, "HTTP {code}");
        let s = collector.stats();
        assert_eq!(
            (s.dropped_rejected, s.dropped_export_failed, s.forwarded),
            (2, 0, 0),
            "HTTP {code}"
        );
    }
    // 503 with Retry-After: 1 and 429: retried, the first no sooner than a second later.
    let downstream = Scripted::new([
        Answer::Http(503, Some("1")),
        Answer::Http(429, None),
        Answer::Http(502, None),
    ]);
    let collector = collector(
        downstream.serve_http().await,
        llmtel_collector::Protocol::HttpProtobuf,
    )
    .await;
    send(&collector, 1, 2).await;
    assert_eq!(settled(&collector, &downstream).await, 4);
    let at = downstream.attempts();
    assert!(
        at[1] - at[0] >= Duration::from_secs(1),
        "{:?}",
        at[1] - at[0]
    );
    let s = collector.stats();
    assert_eq!((s.forwarded, s.dropped()), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_a_partial_success_rejects_are_counted_as_rejected_not_forwarded() {
    for protocol in [
        llmtel_collector::Protocol::Grpc,
        llmtel_collector::Protocol::HttpProtobuf,
    ] {
        let downstream = Scripted::new([Answer::Ok { rejected: 2 }]);
        let addr = match protocol {
            llmtel_collector::Protocol::Grpc => downstream.serve_grpc().await,
            _ => downstream.serve_http().await,
        };
        let collector = collector(addr, protocol).await;
        send(&collector, 1, 5).await;
        assert_eq!(settled(&collector, &downstream).await, 1, "{protocol:?}");
        let s = collector.stats();
        assert_eq!(
            (s.forwarded, s.dropped_rejected, s.dropped()),
            (3, 2, 2),
            "{protocol:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_time_past_any_instant_retries_without_end_instead_of_panicking() {
    // Refused once (retryable), then taken.
    let downstream = Scripted::new([Answer::Grpc(tonic::Code::Unavailable, None)]);
    let addr = downstream.serve_grpc().await;
    let collector = Collector::start(config(addr).with_retry_for(Duration::MAX))
        .await
        .unwrap();
    send(&collector, 60, 1).await;
    wait_until("the span is forwarded after one retry", || {
        collector.stats().forwarded == 1
    })
    .await;
    assert_eq!(*downstream.accepted.lock().unwrap(), 1);
    assert_eq!(downstream.attempts().len(), 2);
}

#[test]
fn a_retry_time_in_the_config_file_past_a_day_is_a_clear_error() {
    let err =
        llmtel_collector::Config::from_toml("[forward]\nretry_for_secs = 18446744073709551615")
            .unwrap_err()
            .to_string();
    assert!(err.contains("retry_for_secs"), "{err}");
    assert!(err.contains("at most 86400"), "{err}");
    // A day is still taken.
    llmtel_collector::Config::from_toml("[forward]\nretry_for_secs = 86400").unwrap();
}
