//! The receivers (OTLP/gRPC, OTLP/HTTP protobuf and JSON) and the `/metrics` endpoint.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

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
            } => Err(tonic::Status::invalid_argument(Admit::too_large(
                amount, capacity, unit, setting,
            ))),
        }
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
            Err(r) => return *r,
        },
        Some(enc) => {
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
            format!(
                "llmtel collector: the request inflates past {max} bytes; send smaller batches \
                 or raise max_request_bytes"
            ),
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
