//! The receivers (OTLP/gRPC, OTLP/HTTP protobuf and JSON) and the `/metrics` endpoint.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codegen::{BoxFuture, Context, Poll, Service, http};

use crate::pipeline::{Admit, Queue};
use crate::stats::Refused;

/// The OTLP/gRPC trace service.
#[derive(Debug, Clone)]
pub(crate) struct GrpcReceiver {
    pub(crate) queue: Queue,
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let hops = request
            .metadata()
            .get_all(crate::hop::HEADER)
            .iter()
            .map(|v| v.as_bytes());
        let via = match crate::hop::check(hops, &self.queue.hop_id) {
            Ok(via) => via,
            Err(l) => {
                self.queue.counters.refused(Refused::Loop);
                // Not retried by OTLP senders (a loop does not end by itself).
                return Err(tonic::Status::failed_precondition(l.message()));
            }
        };
        let request = request.into_inner();
        let bytes = prost::Message::encoded_len(&request);
        match self.queue.submit(request, bytes, via) {
            Admit::Accepted { rejected } => Ok(tonic::Response::new(Admit::response(rejected))),
            // UNAVAILABLE, which every OTLP client retries (RESOURCE_EXHAUSTED is retried
            // only by those that read a RetryInfo), with a RetryInfo for those that do.
            Admit::Full => Err(crate::rpc::unavailable_retry_after(
                "llmtel collector: the forwarding queue is full; retry later",
                std::time::Duration::from_secs(1),
            )),
            Admit::Stopped => Err(crate::rpc::unavailable_retry_after(
                Admit::STOPPED,
                std::time::Duration::from_secs(1),
            )),
            Admit::TooLarge {
                amount,
                capacity,
                unit,
                setting,
            } => {
                // (Over HTTP, the listener counts the 413.)
                self.queue.counters.refused(Refused::TooLarge);
                Err(tonic::Status::invalid_argument(Admit::too_large(
                    amount, capacity, unit, setting,
                )))
            }
        }
    }
}

/// What a sender is told when its request, decompressed, is over `max_request_bytes`.
fn over_the_limit(max: usize) -> String {
    format!(
        "llmtel collector: the request is over max_request_bytes ({max} bytes, decompressed); \
         send smaller batches (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) or raise max_request_bytes"
    )
}

/// The OTLP/gRPC trace service with the answers tonic gives before the collector's code
/// runs made OTLP's and counted: a message over `max_request_bytes` is refused by tonic's
/// decoder with `OUT_OF_RANGE` (plain) or `RESOURCE_EXHAUSTED` (gzip inflating past it);
/// OTLP senders retry `OUT_OF_RANGE`, sending the same oversized batch again and again, so
/// both are answered `INVALID_ARGUMENT` (not retried), the same as over OTLP/HTTP.
#[derive(Debug, Clone)]
pub(crate) struct GrpcGate {
    pub(crate) inner: TraceServiceServer<GrpcReceiver>,
    pub(crate) counters: std::sync::Arc<crate::stats::Counters>,
    pub(crate) max_request_bytes: usize,
}

impl tonic::server::NamedService for GrpcGate {
    const NAME: &'static str =
        <TraceServiceServer<GrpcReceiver> as tonic::server::NamedService>::NAME;
}

impl Service<http::Request<tonic::body::Body>> for GrpcGate {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        // A compression tonic does not take is refused by it (`UNIMPLEMENTED`).
        let unsupported = req
            .headers()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|e| !matches!(e.trim(), "identity" | "gzip"));
        let mut inner = self.inner.clone();
        let (counters, max) = (self.counters.clone(), self.max_request_bytes);
        Box::pin(async move {
            let Ok(response) = inner.call(req).await;
            // An error tonic answered before the service ran is in the headers (a
            // trailers-only response).
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(tonic::Code::from_i32);
            Ok(match code {
                Some(tonic::Code::OutOfRange | tonic::Code::ResourceExhausted) => {
                    counters.refused(Refused::TooLarge);
                    tonic::Status::invalid_argument(over_the_limit(max)).into_http()
                }
                Some(tonic::Code::Internal) => {
                    counters.refused(Refused::BadRequest);
                    response
                }
                Some(tonic::Code::Unimplemented) if unsupported => {
                    counters.refused(Refused::Encoding);
                    response
                }
                _ => response,
            })
        })
    }
}

/// `POST /v1/traces`, protobuf or JSON.
pub(crate) fn http_router(queue: Queue) -> Router {
    Router::new()
        .route("/v1/traces", post(http_traces))
        .with_state(queue)
}

/// A plain-text error, for a request whose encoding is not OTLP's.
fn text(status: StatusCode, msg: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg + "\n",
    )
        .into_response()
}

/// An OTLP/HTTP error: a `google.rpc.Status` in the request's encoding, as the
/// specification requires, its message saying what to do.
fn status(status: StatusCode, json: bool, code: tonic::Code, msg: String) -> Response {
    let (ctype, body) = crate::rpc::error_body(json, code, &msg);
    (status, [(header::CONTENT_TYPE, ctype)], body).into_response()
}

async fn http_traces(State(queue): State<Queue>, headers: HeaderMap, body: Bytes) -> Response {
    let hops = headers
        .get_all(crate::hop::HEADER)
        .iter()
        .map(|v| v.as_bytes());
    let via = match crate::hop::check(hops, &queue.hop_id) {
        Ok(via) => via,
        Err(l) => {
            queue.counters.refused(Refused::Loop);
            // 508 Loop Detected: not one OTLP/HTTP senders retry.
            let json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"));
            return status(
                StatusCode::LOOP_DETECTED,
                json,
                tonic::Code::FailedPrecondition,
                l.message(),
            );
        }
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let json = ctype.starts_with("application/json");
    if !json
        && !ctype.starts_with("application/x-protobuf")
        && !ctype.starts_with("application/protobuf")
    {
        // Not OTLP: no encoding to answer in, so plain text.
        queue.counters.refused(Refused::Encoding);
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "llmtel collector: Content-Type {ctype:?} is not OTLP; use application/x-protobuf \
                 or application/json"
            ),
        );
    }
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| e != "identity")
    {
        None => body,
        Some(e) if e == "gzip" => match gunzip(&body, queue.max_request_bytes, json) {
            Ok(b) => b,
            Err(r) => {
                // A body inflating past the limit is answered 413, which the listener counts
                // with every other 413 and 431 (`too_large`); one that is not gzip is not.
                if r.status() != StatusCode::PAYLOAD_TOO_LARGE {
                    queue.counters.refused(Refused::Encoding);
                }
                return *r;
            }
        },
        Some(enc) => {
            queue.counters.refused(Refused::Encoding);
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json,
                tonic::Code::InvalidArgument,
                format!(
                    "llmtel collector: Content-Encoding {enc:?} is not supported; send gzip or \
                     uncompressed (OTEL_EXPORTER_OTLP_COMPRESSION=gzip or none)"
                ),
            );
        }
    };
    let req = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body)
            .map(|r| {
                let bytes = r.encoded_len();
                (r, bytes)
            })
            .map_err(|e| e.to_string())
    } else {
        let bytes = body.len();
        ExportTraceServiceRequest::decode(body)
            .map(|r| (r, bytes))
            .map_err(|e| e.to_string())
    };
    let (req, bytes) = match req {
        Ok(r) => r,
        Err(e) => {
            queue.counters.refused(Refused::BadRequest);
            return status(
                StatusCode::BAD_REQUEST,
                json,
                tonic::Code::InvalidArgument,
                format!("llmtel collector: the body is not an OTLP trace export request: {e}"),
            );
        }
    };
    match queue.submit(req, bytes, via) {
        Admit::Accepted { rejected } => {
            let response = Admit::response(rejected);
            if json {
                let body = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            } else {
                (
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    response.encode_to_vec(),
                )
                    .into_response()
            }
        }
        Admit::Full => {
            let mut r = status(
                StatusCode::TOO_MANY_REQUESTS,
                json,
                tonic::Code::Unavailable,
                "llmtel collector: the forwarding queue is full; retry later".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Admit::Stopped => {
            let mut r = status(
                StatusCode::SERVICE_UNAVAILABLE,
                json,
                tonic::Code::Unavailable,
                Admit::STOPPED.into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Admit::TooLarge {
            amount,
            capacity,
            unit,
            setting,
        } => status(
            StatusCode::PAYLOAD_TOO_LARGE,
            json,
            tonic::Code::InvalidArgument,
            Admit::too_large(amount, capacity, unit, setting),
        ),
    }
}

/// Decompresses a gzip body, refusing one that inflates past `max` bytes.
fn gunzip(body: &[u8], max: usize, json: bool) -> Result<Bytes, Box<Response>> {
    use std::io::Read;
    let mut out = Vec::new();
    let read = flate2::read::GzDecoder::new(body)
        .take(max as u64 + 1)
        .read_to_end(&mut out);
    match read {
        Err(e) => Err(Box::new(status(
            StatusCode::BAD_REQUEST,
            json,
            tonic::Code::InvalidArgument,
            format!("llmtel collector: the body is not valid gzip: {e}"),
        ))),
        Ok(n) if n > max => Err(Box::new(status(
            StatusCode::PAYLOAD_TOO_LARGE,
            json,
            tonic::Code::InvalidArgument,
            over_the_limit(max),
        ))),
        Ok(_) => Ok(Bytes::from(out)),
    }
}

/// `GET /metrics`: the health counters and the in-process stack's series (`llm_*`) of the
/// calls it priced, in Prometheus text.
pub(crate) fn metrics_router(queue: Queue) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(q): State<Queue>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    q.counters.snapshot().to_prometheus()
                        + &q.counters
                            .last_error()
                            .map(|e| format!("# llmtel_collector_last_error {e}\n"))
                            .unwrap_or_default()
                        + &q.series.encode_text(),
                )
            }),
        )
        .with_state(queue)
}
