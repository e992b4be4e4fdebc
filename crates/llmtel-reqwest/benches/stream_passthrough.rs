//! What the middleware costs a streamed call, against the same client without it, in one run.
//!
//! - `throughput/*`: a 2,000-event OpenAI chat stream (≈0.5 MB of SSE, usage in the last
//!   chunk) from a local server, read to its end. Target: the middleware at most 5 % slower.
//! - `first_chunk/*`: request sent → first body chunk in hand, for a one-event stream. The
//!   difference is the time the middleware adds to the first chunk. Target: under 50 µs.
//!
//! The middleware runs under a real pipeline: tracing-opentelemetry with llmtel's export
//! queue and `GenAiExporter` pricing into a no-op exporter.
//!
//! ```sh
//! cargo bench -p llmtel-reqwest --bench stream_passthrough -- --measurement-time 3 --warm-up-time 1
//! ```
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct Noop;

impl SpanExporter for Noop {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

const EVENTS: usize = 2_000;

fn sse_body(events: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..events {
        body.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token{i}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    body.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":2000,\"total_tokens\":2020,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\ndata: [DONE]\n\n");
    // HTTP/1.1 chunked framing, one HTTP chunk per 4 KiB as a server flushing often would.
    let mut framed = Vec::new();
    for c in body.as_bytes().chunks(4096) {
        framed.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        framed.extend_from_slice(c);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    framed
}

async fn server(body: Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body: &'static [u8] = Box::leak(body.into_boxed_slice());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut have = Vec::new();
                // Keep-alive: answer every request on the connection.
                loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&have[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while have.len() < end + 4 + len {
                        let Ok(n) = sock.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        have.extend_from_slice(&buf[..n]);
                    }
                    have.drain(..end + 4 + len);
                    let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                    out.extend_from_slice(body);
                    if sock.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

const REQUEST: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Count to two thousand"}],"stream":true,"stream_options":{"include_usage":true}}"#;

fn clients(
    addr: SocketAddr,
) -> (
    reqwest_middleware::ClientWithMiddleware,
    reqwest_middleware::ClientWithMiddleware,
) {
    let plain = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();
    let mw = llmtel_reqwest::LlmMiddleware::new()
        .with_openai_compatible(&format!("http://{addr}/v1"), "openai")
        .unwrap();
    let instrumented = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(mw)
        .build();
    (plain, instrumented)
}

async fn read_all(c: &reqwest_middleware::ClientWithMiddleware, url: &str) -> usize {
    let mut resp = c.post(url).body(REQUEST).send().await.unwrap();
    let mut n = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        n += chunk.len();
    }
    n
}

async fn first_chunk(c: &reqwest_middleware::ClientWithMiddleware, url: &str) -> usize {
    let mut resp = c.post(url).body(REQUEST).send().await.unwrap();
    let n = resp.chunk().await.unwrap().map_or(0, |c| c.len());
    while resp.chunk().await.unwrap().is_some() {}
    n
}

fn benches(c: &mut Criterion) {
    let queue = llmtel::ExportQueue::spawn(
        || Ok::<_, std::convert::Infallible>(llmtel::GenAiExporter::new(Noop)),
        llmtel::QueueConfig::default(),
    )
    .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(queue)
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")))
        .init();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let big = sse_body(EVENTS);
    let small = sse_body(1);
    let (big_addr, small_addr) = rt.block_on(async { (server(big).await, server(small).await) });
    let big_url = format!("http://{big_addr}/v1/chat/completions");
    let small_url = format!("http://{small_addr}/v1/chat/completions");
    let (plain_big, mw_big) = clients(big_addr);
    let (plain_small, mw_small) = clients(small_addr);
    let bytes = rt.block_on(read_all(&plain_big, &big_url));

    let mut g = c.benchmark_group("throughput");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("plain_reqwest", |b| {
        b.to_async(&rt).iter(|| read_all(&plain_big, &big_url))
    });
    g.bench_function("llmtel_middleware", |b| {
        b.to_async(&rt).iter(|| read_all(&mw_big, &big_url))
    });
    g.finish();
    // Every byte must have been decoded (none skipped because the reader fell behind), or
    // the numbers above do not measure the middleware's work.
    assert!(llmtel::finish_pending_spans(std::time::Duration::from_secs(60)));
    let stats = llmtel_reqwest::reader_stats();
    eprintln!("body reader after the throughput runs: {stats:?}");
    assert_eq!(stats.bytes_skipped, 0, "the reader fell behind: {stats:?}");

    let mut g = c.benchmark_group("first_chunk");
    g.bench_function("plain_reqwest", |b| {
        b.to_async(&rt)
            .iter(|| first_chunk(&plain_small, &small_url))
    });
    g.bench_function("llmtel_middleware", |b| {
        b.to_async(&rt).iter(|| first_chunk(&mw_small, &small_url))
    });
    g.finish();
    drop(provider);
}

criterion_group!(stream, benches);
criterion_main!(stream);
