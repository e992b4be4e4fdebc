//! In-test OTLP plumbing: a real gRPC OTLP receiver (tonic, opentelemetry-proto) the
//! collector forwards to, request builders, and attribute readers.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::type_complexity
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A downstream OTLP/gRPC receiver that keeps every span it is sent, with its resource
/// (gzip-compressed requests accepted; the `grpc-encoding` of each request kept).
#[derive(Clone, Default)]
pub struct Receiver {
    pub spans: Arc<Mutex<Vec<(Vec<KeyValue>, Span)>>>,
    /// The instrumentation scope of every scope's spans received, in order.
    pub scopes: Arc<Mutex<Vec<Option<InstrumentationScope>>>>,
    pub encodings: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let encoding = request
            .metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity")
            .to_owned();
        self.encodings.lock().unwrap().push(encoding);
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let res = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for ss in rs.scope_spans {
                self.scopes.lock().unwrap().push(ss.scope);
                for s in ss.spans {
                    spans.push((res.clone(), s));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves on `listener` until the returned task is aborted.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let svc = TraceServiceServer::new(self.clone())
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        })
    }

    /// Starts on a free loopback port.
    pub async fn start() -> (Receiver, SocketAddr, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let r = Receiver::default();
        let task = r.serve(l);
        (r, addr, task)
    }

    /// Waits (at most 15 s) for a span named `name`.
    pub async fn wait_for(&self, name: &str) -> (Vec<KeyValue>, Span) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .find(|(_, s)| s.name == name)
            {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "span {name:?} never reached the receiver"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn count(&self) -> usize {
        self.spans.lock().unwrap().len()
    }
}

pub fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

pub fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A chat call's attributes: `model` at OpenAI for the `support` feature, 1,000 input and
/// 500 output tokens, and `error.type` when it failed.
pub fn chat_call(model: &str, error: Option<&str>) -> Vec<KeyValue> {
    let mut kv = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", model),
        s("llmtel.feature", "support"),
        i("gen_ai.usage.input_tokens", 1_000),
        i("gen_ai.usage.output_tokens", 500),
    ];
    if let Some(e) = error {
        kv.push(s("error.type", e));
    }
    kv
}

/// A request with one resource (`service.name` = `service`) holding one span per
/// `(name, attributes)`; ids are derived from `seed`.
pub fn request(
    service: &str,
    seed: u8,
    spans: Vec<(String, Vec<KeyValue>)>,
) -> ExportTraceServiceRequest {
    let now = now_nanos();
    let spans = spans
        .into_iter()
        .enumerate()
        .map(|(n, (name, attributes))| Span {
            trace_id: vec![seed; 16],
            span_id: span_id(seed, n),
            name,
            kind: 3,
            start_time_unix_nano: now - 1_000_000,
            end_time_unix_nano: now,
            attributes,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![s("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `seed`, then span `n`'s number: unique within a request of any size.
fn span_id(seed: u8, n: usize) -> Vec<u8> {
    let mut id = (n as u64 + 1).to_be_bytes();
    id[0] = seed;
    id.to_vec()
}

pub fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
    span.attributes
        .iter()
        .rev()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

pub fn f64_attr(span: &Span, key: &str) -> f64 {
    match attr(span, key) {
        Some(any_value::Value::DoubleValue(v)) => *v,
        other => panic!("{key} on {:?}: expected a double, got {other:?}", span.name),
    }
}

pub fn int_attr(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(any_value::Value::IntValue(v)) => *v,
        other => panic!(
            "{key} on {:?}: expected an integer, got {other:?}",
            span.name
        ),
    }
}

/// A collector listening on free loopback ports, forwarding to `downstream` over gRPC.
pub fn config(downstream: SocketAddr) -> llmtel_collector::Config {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    llmtel_collector::Config::new()
        .with_grpc_listen(any)
        .with_http_listen(any)
        .with_metrics_listen(any)
        .with_forward_endpoint(format!("http://{downstream}"))
        .unwrap()
        .with_forward_protocol(llmtel_collector::Protocol::Grpc)
}

/// Reads `/metrics` as text.
pub async fn metrics(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (at most 15 s) until `cond` holds.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `req` to the collector over OTLP/HTTP protobuf; returns its answer.
pub async fn send_protobuf(
    collector: &llmtel_collector::Collector,
    req: &ExportTraceServiceRequest,
) -> reqwest::Response {
    use prost::Message as _;
    reqwest::Client::new()
        .post(format!("http://{}/v1/traces", collector.http_addr()))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap()
}

/// Sends `req` to the collector over OTLP/HTTP protobuf and checks it was accepted.
pub async fn post_protobuf(
    collector: &llmtel_collector::Collector,
    req: ExportTraceServiceRequest,
) {
    let r = send_protobuf(collector, &req).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
