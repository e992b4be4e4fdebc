//! Forwarding with `http/protobuf` (the OTLP default protocol): a real OTLP/HTTP receiver
//! (axum, decoding the protobuf body) gets the priced span at `<endpoint>/v1/traces`, with the
//! headers the config adds (an authorization header a backend asks for), which the config's
//! `Debug` never shows.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use llmtel_collector::{Collector, Protocol};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priced_span_reaches_an_otlp_http_receiver() {
    let got: Arc<Mutex<Vec<Span>>> = Arc::default();
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let (sink, headers_seen) = (got.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            headers_seen.lock().unwrap().push(headers);
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        sink.lock().unwrap().extend(ss.spans);
                    }
                }
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let downstream = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let config = config(downstream)
        .with_forward_protocol(Protocol::HttpProtobuf)
        .with_forward_header("authorization", "Bearer sk-downstream-secret")
        .with_forward_header("x-tenant", "acme");
    let shown = format!("{config:?}");
    assert!(
        shown.contains("authorization") && !shown.contains("sk-downstream-secret"),
        "{shown}"
    );
    let collector = Collector::start(config).await.unwrap();
    let attrs = vec![
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "gpt-4o"),
        i("gen_ai.usage.input_tokens", 1_000_000),
        i("gen_ai.usage.output_tokens", 0),
    ];
    let mut c = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(
        format!("http://{}", collector.grpc_addr()),
    )
    .await
    .unwrap();
    c.export(request("svc", 4, vec![("chat".into(), attrs)]))
        .await
        .unwrap();
    wait_until("the span reaches the HTTP receiver", || {
        !got.lock().unwrap().is_empty()
    })
    .await;
    let span = got.lock().unwrap()[0].clone();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let want = llmtel_pricing::Catalog::builtin()
        .price(
            "gpt-4o",
            Some("openai"),
            &llmtel_pricing::Usage::new(1_000_000, 0),
            today,
        )
        .unwrap()
        .breakdown
        .total
        .as_f64();
    assert!((f64_attr(&span, "gen_ai.usage.cost") - want).abs() < 1e-9);
    assert_eq!(int_attr(&span, "gen_ai.usage.input_tokens"), 1_000_000);
    let headers = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["authorization"], "Bearer sk-downstream-secret");
    assert_eq!(headers["x-tenant"], "acme");
    assert_eq!(headers["content-type"], "application/x-protobuf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_forwarding_compresses_the_request_over_http_and_grpc() {
    use std::io::Read as _;
    // HTTP/protobuf: `Content-Encoding: gzip` and a gzip body.
    let got: Arc<Mutex<Vec<(String, Span)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let encoding = headers
                    .get("content-encoding")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("identity")
                    .to_owned();
                let mut raw = Vec::new();
                if encoding == "gzip" {
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_end(&mut raw)
                        .unwrap();
                } else {
                    raw = body.to_vec();
                }
                let req = ExportTraceServiceRequest::decode(raw.as_slice()).unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            sink.lock().unwrap().push((encoding.clone(), span));
                        }
                    }
                }
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let downstream = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let collector = Collector::start(
        config(downstream)
            .with_forward_protocol(Protocol::HttpProtobuf)
            .with_forward_gzip(true),
    )
    .await
    .unwrap();
    let attrs = vec![
        s("gen_ai.request.model", "gpt-4o"),
        i("gen_ai.usage.input_tokens", 1_000),
        i("gen_ai.usage.output_tokens", 10),
    ];
    post_protobuf(
        &collector,
        request("svc", 8, vec![("gz-http".into(), attrs.clone())]),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some((enc, span)) = got
            .lock()
            .unwrap()
            .iter()
            .find(|(_, s)| s.name == "gz-http")
        {
            assert_eq!(enc, "gzip");
            assert!(
                attr(span, "gen_ai.usage.cost").is_some(),
                "priced: {span:?}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "nothing arrived");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // gRPC: `grpc-encoding: gzip`.
    let (receiver, downstream, _task) = Receiver::start().await;
    let collector = Collector::start(config(downstream).with_forward_gzip(true))
        .await
        .unwrap();
    post_protobuf(
        &collector,
        request("svc", 9, vec![("gz-grpc".into(), attrs)]),
    )
    .await;
    let (_, span) = receiver.wait_for("gz-grpc").await;
    assert!(attr(&span, "gen_ai.usage.cost").is_some());
    assert_eq!(*receiver.encodings.lock().unwrap(), ["gzip"]);
}

#[test]
fn an_unknown_compression_is_a_clear_config_error() {
    let err = llmtel_collector::Config::from_toml("[forward]\ncompression = \"brotli\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("brotli") && err.contains("gzip"), "{err}");
}
