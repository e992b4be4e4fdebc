//! Issue #13's export faults, end to end through llmtel's own stack (`llmtel::builder()`:
//! layer, exporter stage, export queue, the OTLP exporters) against an OTLP receiver that
//! fails on cue: down at start, down mid-run, slow, refusing with gRPC `UNAVAILABLE` /
//! `RESOURCE_EXHAUSTED` or HTTP 429 (with `Retry-After`) / 503, and a shutdown with a full
//! queue while the collector is down.
//!
//! In every scenario:
//! - the request path is never held: each span's time on the emitting thread stays under
//!   2 ms at the 99th percentile in this debug build and under 100 ms at most (a blocked
//!   path would show the collector's seconds; BENCHMARKS.md has the release numbers);
//! - every span is accounted for: received downstream + counted as dropped by the queue +
//!   counted as failed exports = spans created, exactly;
//! - what was buffered while the collector could not take it goes out when it can, and the
//!   time that took is printed.
//!
//! The counters are process-wide: the scenarios run one at a time (`SERIAL`) and compare
//! deltas.
#![cfg(all(feature = "otlp-grpc", feature = "otlp-http"))]
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tracing_subscriber::prelude::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// How the receiver answers, switched while a scenario runs.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Accept,
    /// gRPC: this status code. HTTP: this status, with `Retry-After: 1` for 429.
    RefuseGrpc(tonic::Code),
    RefuseHttp(u16),
    /// Answer after this long.
    Delay(Duration),
    /// HTTP: take the request and never answer (hold the connection two minutes).
    Silent,
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    received: Arc<AtomicUsize>,
    /// When each export request arrived.
    attempts: Arc<Mutex<Vec<Instant>>>,
    /// gRPC exports being answered now, and the most at once.
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

impl Receiver {
    fn new() -> Receiver {
        Receiver {
            mode: Arc::new(Mutex::new(Mode::Accept)),
            received: Arc::new(AtomicUsize::new(0)),
            attempts: Arc::new(Mutex::new(Vec::new())),
            in_flight: Arc::new(AtomicUsize::new(0)),
            most_in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }

    fn count(&self, req: &ExportTraceServiceRequest) {
        let n: usize = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.received.fetch_add(n, Ordering::SeqCst);
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.attempts.lock().unwrap().push(Instant::now());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let outcome = match self.mode() {
            Mode::Accept | Mode::RefuseHttp(_) | Mode::Silent => Ok(()),
            Mode::RefuseGrpc(code) => Err(tonic::Status::new(code, "fault injected")),
            Mode::Delay(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        outcome?;
        self.count(request.get_ref());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A free port on 127.0.0.1 (nothing listens on it when this returns).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A gRPC OTLP receiver on `addr`, on its own thread, until the returned sender is dropped
/// (the collector goes down: its listener closes and its connections end).
fn serve_grpc(addr: SocketAddr, r: Receiver) -> tokio::sync::oneshot::Sender<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (up_tx, up_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let incoming = tonic::transport::server::TcpIncoming::bind(addr).unwrap();
            up_tx.send(()).unwrap();
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(r))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        // Dropping the runtime ends every connection the server still held.
    });
    up_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    stop_tx
}

/// An OTLP/HTTP receiver (protobuf bodies) on its own threads, answering as `r`'s mode says.
fn serve_http(r: Receiver) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let r = r.clone();
            std::thread::spawn(move || {
                let _ = http_connection(conn, &r);
            });
        }
    });
    addr
}

fn http_connection(mut conn: TcpStream, r: &Receiver) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // One request: headers, then a Content-Length body.
        let header_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < header_end + len {
            let mut chunk = [0u8; 64 * 1024];
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buf.drain(..header_end + len).skip(header_end).collect();
        r.attempts.lock().unwrap().push(Instant::now());
        if let Mode::Silent = r.mode() {
            std::thread::sleep(Duration::from_secs(120));
            return Ok(());
        }
        let response = match r.mode() {
            Mode::RefuseHttp(429) => {
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n"
                    .to_owned()
            }
            Mode::RefuseHttp(code) => {
                format!("HTTP/1.1 {code} Refused\r\ncontent-length: 0\r\n\r\n")
            }
            _ => {
                r.count(&ExportTraceServiceRequest::decode(body.as_slice()).unwrap());
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
                    .to_owned()
            }
        };
        conn.write_all(response.as_bytes())?;
    }
}

/// The queue the scenarios run with: small, so that a few thousand spans fill it.
fn queue(max_queue_size: usize) -> llmtel::QueueConfig {
    llmtel::QueueConfig {
        max_queue_size,
        max_export_batch_size: 256,
        scheduled_delay: Duration::from_millis(100),
        flush_timeout: Duration::from_secs(20),
        ..llmtel::QueueConfig::default()
    }
}

/// llmtel's stack exporting to `endpoint`.
fn stack(
    endpoint: &str,
    protocol: llmtel::Protocol,
    q: llmtel::QueueConfig,
) -> (impl tracing::Subscriber + Send + Sync, llmtel::Guard) {
    let (layer, guard) = llmtel::builder()
        .with_service_name("llmtel-fault-test")
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_queue(q)
        .with_metrics(false)
        .with_console(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    (tracing_subscriber::registry().with(layer), guard)
}

/// Emits `n` LLM spans at about `rate` per second; returns each span's time on the thread.
fn emit(n: usize, rate: f64) -> Vec<Duration> {
    let usage = llmtel::Usage {
        input_tokens: 1200,
        output_tokens: 300,
        cache_read_tokens: 400,
        ..Default::default()
    };
    let start = Instant::now();
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini", "user.id" = "u-1");
        llmtel::record_usage(&span, &usage);
        drop(span);
        held.push(t.elapsed());
    }
    held
}

/// The request path was never held: p99 under 10 ms, nothing over 100 ms, where every
/// scenario's collector holds a request 300 ms or more (a path that waited on it would show
/// that). A debug build next to other tests on two shared cores: p50 ~0.1 ms, and p99
/// was seen at 2.4 ms with builds running beside it, so the bound is the waiting it catches,
/// not the speed (BENCHMARKS.md gives the release numbers).
fn assert_never_blocked(scenario: &str, mut held: Vec<Duration>) {
    held.sort();
    let at = |q: f64| held[((held.len() as f64 * q) as usize).min(held.len() - 1)];
    let (p50, p99, p999, max) = (at(0.5), at(0.99), at(0.999), *held.last().unwrap());
    println!("{scenario}: request path p50 {p50:?} p99 {p99:?} p99.9 {p999:?} max {max:?}");
    assert!(
        p99 < Duration::from_millis(10) && max < Duration::from_millis(100),
        "{scenario}: the request path was held: p99 {p99:?}, max {max:?}"
    );
}

struct Counted {
    dropped: u64,
    failed: u64,
}

fn counted_since(before: &llmtel::Health) -> Counted {
    let now = llmtel::health();
    Counted {
        dropped: now.spans_dropped - before.spans_dropped,
        failed: now.spans_export_failed - before.spans_export_failed,
    }
}

/// Waits until the receiver holds `want` spans (or `within` passed); returns how long.
fn wait_received(r: &Receiver, want: usize, within: Duration) -> Duration {
    let start = Instant::now();
    while r.received() < want && start.elapsed() < within {
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Received + dropped + failed = created, exactly (waiting for the export thread to settle).
fn assert_every_span_accounted(
    scenario: &str,
    r: &Receiver,
    created: usize,
    before: &llmtel::Health,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = counted_since(before);
        let total = r.received() as u64 + c.dropped + c.failed;
        if total == created as u64 || Instant::now() > deadline {
            println!(
                "{scenario}: created {created}, received {}, dropped {}, failed exports {}",
                r.received(),
                c.dropped,
                c.failed
            );
            assert_eq!(
                total,
                created as u64,
                "{scenario}: received {} + dropped {} + failed {} != created {created}",
                r.received(),
                c.dropped,
                c.failed
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_collector_down_at_start_gets_every_buffered_span_when_it_comes_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = llmtel::health();
    let addr = free_addr();
    let r = Receiver::new();
    let (subscriber, guard) = stack(
        &format!("http://{addr}"),
        llmtel::Protocol::Grpc,
        queue(4096),
    );
    let held = tracing::subscriber::with_default(subscriber, || emit(2_000, 4_000.0));
    // The export thread has tried and is holding its first batch; the rest waits in the queue.
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(r.received(), 0);
    let up = Instant::now();
    let _server = serve_grpc(addr, r.clone());
    let took = wait_received(&r, 2_000, Duration::from_secs(20));
    println!(
        "down at start: recovered {:?} after the collector came up",
        up.elapsed().min(took)
    );
    assert_never_blocked("down at start", held);
    assert_eq!(
        r.received(),
        2_000,
        "every span buffered while the collector was down goes out"
    );
    assert_every_span_accounted("down at start", &r, 2_000, &before);
    let c = counted_since(&before);
    assert_eq!((c.dropped, c.failed), (0, 0));
    drop(guard);
}

#[test]
fn a_collector_that_goes_down_mid_run_loses_at_most_the_batches_in_flight_and_counts_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = llmtel::health();
    let addr = free_addr();
    let r = Receiver::new();
    let server = serve_grpc(addr, r.clone());
    let (subscriber, guard) = stack(
        &format!("http://{addr}"),
        llmtel::Protocol::Grpc,
        queue(4096),
    );
    let dispatch = tracing::Dispatch::new(subscriber);
    let mut held = tracing::dispatcher::with_default(&dispatch, || emit(1_000, 4_000.0));
    guard.flush().unwrap();
    assert_eq!(r.received(), 1_000);
    drop(server); // the collector goes down
    std::thread::sleep(Duration::from_millis(200));
    held.extend(tracing::dispatcher::with_default(&dispatch, || {
        emit(2_000, 2_000.0)
    }));
    std::thread::sleep(Duration::from_millis(1_000));
    let up = Instant::now();
    let _server = serve_grpc(addr, r.clone());
    let c = counted_since(&before);
    let want = 3_000 - (c.dropped + c.failed) as usize;
    wait_received(&r, want, Duration::from_secs(20));
    println!(
        "down mid-run: recovered {:?} after the collector came back",
        up.elapsed()
    );
    assert_never_blocked("down mid-run", held);
    assert_every_span_accounted("down mid-run", &r, 3_000, &before);
    let c = counted_since(&before);
    assert_eq!(
        c.dropped, 0,
        "the queue held every span ended during the outage"
    );
    // The queue keeps two exports of 256 spans in flight.
    assert!(
        c.failed <= 2 * 256,
        "at most the batches in flight when the collector went down are lost: {} failed",
        c.failed
    );
    drop(guard);
}

/// The receiver refuses (`refusal`, over gRPC or HTTP as the mode says) for `window`, then
/// accepts: everything held goes out after, every span is accounted for, the request path
/// is never held. Returns when each refused attempt arrived.
fn refused_then_accepted(refusal: Mode, window: Duration) -> Vec<Instant> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = llmtel::health();
    let r = Receiver::new();
    r.set(refusal);
    let (scenario, protocol, endpoint, _server) = match refusal {
        Mode::RefuseGrpc(code) => {
            let addr = free_addr();
            let server = serve_grpc(addr, r.clone());
            (
                format!("gRPC {code:?}"),
                llmtel::Protocol::Grpc,
                addr,
                Some(server),
            )
        }
        Mode::RefuseHttp(status) => {
            let addr = serve_http(r.clone());
            (
                format!("HTTP {status}"),
                llmtel::Protocol::HttpProtobuf,
                addr,
                None,
            )
        }
        other => panic!("not a refusal: {other:?}"),
    };
    let (subscriber, guard) = stack(&format!("http://{endpoint}"), protocol, queue(4096));
    let refusing = Instant::now();
    let held = tracing::subscriber::with_default(subscriber, || emit(2_000, 4_000.0));
    std::thread::sleep(window.saturating_sub(refusing.elapsed()));
    let attempts = r.attempts();
    r.set(Mode::Accept);
    let up = Instant::now();
    wait_received(&r, 2_000, Duration::from_secs(20));
    println!(
        "{scenario}: {} attempts refused in {window:?}; recovered {:?} after it accepted",
        attempts.len(),
        up.elapsed()
    );
    assert_never_blocked(&scenario, held);
    assert_eq!(
        r.received(),
        2_000,
        "{scenario}: everything held goes out after"
    );
    assert_every_span_accounted(&scenario, &r, 2_000, &before);
    drop(guard);
    attempts
}

/// Backoff honoured: a batch is retried a few times a second at first, then less often; a
/// client that did not back off would send hundreds of requests in the window.
fn assert_backed_off(attempts: &[Instant], window: Duration) {
    assert!(
        (2..=20).contains(&attempts.len()),
        "{} attempts in {window:?} of refusals",
        attempts.len()
    );
}

#[test]
fn grpc_unavailable_is_retried_with_backoff_and_nothing_is_lost() {
    let window = Duration::from_secs(2);
    let attempts = refused_then_accepted(Mode::RefuseGrpc(tonic::Code::Unavailable), window);
    assert_backed_off(&attempts, window);
}

#[test]
fn grpc_resource_exhausted_is_retried_with_backoff_and_nothing_is_lost() {
    let window = Duration::from_secs(2);
    let code = tonic::Code::ResourceExhausted;
    let attempts = refused_then_accepted(Mode::RefuseGrpc(code), window);
    assert_backed_off(&attempts, window);
}

#[test]
fn http_429_honours_retry_after_and_nothing_is_lost() {
    let attempts = refused_then_accepted(Mode::RefuseHttp(429), Duration::from_millis(2_500));
    assert!(attempts.len() >= 2, "{} attempts", attempts.len());
    // Every answer said `Retry-After: 1`: no two attempts are closer than that.
    for w in attempts.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(950),
            "a retry came {gap:?} after a 429 with Retry-After: 1"
        );
    }
}

#[test]
fn http_503_is_retried_with_backoff_and_nothing_is_lost() {
    let window = Duration::from_millis(2_500);
    let attempts = refused_then_accepted(Mode::RefuseHttp(503), window);
    assert_backed_off(&attempts, window);
}

#[test]
fn a_slow_collector_never_holds_the_request_path_and_drops_are_exact() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = llmtel::health();
    let addr = free_addr();
    let r = Receiver::new();
    r.set(Mode::Delay(Duration::from_secs(2)));
    let _server = serve_grpc(addr, r.clone());
    // A queue of 512 and 3,000 spans in 1 s against a collector answering in 2 s: the queue
    // fills, the rest is dropped and counted.
    let (subscriber, guard) = stack(
        &format!("http://{addr}"),
        llmtel::Protocol::Grpc,
        queue(512),
    );
    let held = tracing::subscriber::with_default(subscriber, || emit(3_000, 3_000.0));
    assert_never_blocked("slow collector", held);
    r.set(Mode::Accept);
    guard.flush().unwrap();
    assert_every_span_accounted("slow collector", &r, 3_000, &before);
    let c = counted_since(&before);
    assert!(
        c.dropped > 0,
        "a 512-span queue cannot hold 3,000 spans of a slow collector"
    );
    assert_eq!(c.failed, 0, "a slow answer is not a failure");
    drop(guard);
}

#[test]
fn an_http_collector_that_never_answers_holds_an_export_only_for_its_timeout() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = llmtel::health();
    let r = Receiver::new();
    r.set(Mode::Silent);
    let addr = serve_http(r.clone());
    let (layer, guard) = llmtel::builder()
        .with_service_name("llmtel-fault-test")
        .with_endpoint(format!("http://{addr}"))
        .with_protocol(llmtel::Protocol::HttpProtobuf)
        .with_queue(queue(4096))
        .with_export_timeout(Duration::from_millis(500))
        .with_metrics(false)
        .with_console(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let held = tracing::subscriber::with_default(subscriber, || emit(500, 1_000.0));
    assert_never_blocked("silent collector", held);
    // The collector takes the requests and never answers; each is abandoned after 500 ms
    // and sent again (a request without an answer is transient). Without a timeout both
    // export slots would wait for the two minutes the connections are held, and nothing
    // more would ever be sent.
    std::thread::sleep(Duration::from_secs(2));
    assert!(r.attempts().len() >= 2, "{} attempts", r.attempts().len());
    r.set(Mode::Accept);
    let recovered = wait_received(&r, 500, Duration::from_secs(20));
    println!("silent collector: everything received {recovered:?} after it answered");
    guard.flush().unwrap();
    assert_every_span_accounted("silent collector", &r, 500, &before);
    assert_eq!(
        r.received(),
        500,
        "every buffered span went out once it answered"
    );
    drop(guard);
}

#[test]
fn a_collector_a_round_trip_away_gets_two_exports_at_once_and_never_more() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = llmtel::health();
    let addr = free_addr();
    let r = Receiver::new();
    let _server = serve_grpc(addr, r.clone());
    let (subscriber, guard) = stack(
        &format!("http://{addr}"),
        llmtel::Protocol::Grpc,
        queue(4_096),
    );
    let dispatch = tracing::Dispatch::new(subscriber);
    // One export at a time until one has succeeded.
    let mut held = tracing::dispatcher::with_default(&dispatch, || emit(512, 4_000.0));
    guard.flush().unwrap();
    assert_eq!(r.received(), 512);
    assert_eq!(
        r.most_in_flight.load(Ordering::SeqCst),
        1,
        "one export at a time before the first succeeded"
    );
    // Then a collector that answers each export 300 ms late gets two at once: eight batches
    // of 256 go out in pairs, while the queue's thread waits for a free slot.
    r.set(Mode::Delay(Duration::from_millis(300)));
    held.extend(tracing::dispatcher::with_default(&dispatch, || {
        emit(2_048, 8_000.0)
    }));
    guard.flush().unwrap();
    assert_never_blocked("a collector 300 ms away", held);
    assert_every_span_accounted("a collector 300 ms away", &r, 2_560, &before);
    let c = counted_since(&before);
    assert_eq!((c.dropped, c.failed), (0, 0));
    assert_eq!(
        r.most_in_flight.load(Ordering::SeqCst),
        2,
        "two exports in flight at once, never more"
    );
    drop(guard);
}

#[test]
fn shutdown_with_a_full_queue_and_the_collector_down_ends_in_time_and_says_what_it_lost() {
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_otlp::WithExportConfig as _;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = llmtel::health();
    let addr = free_addr(); // nothing ever listens
    let endpoint = format!("http://{addr}");
    let queue = llmtel::ExportQueue::spawn(
        move || {
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(10))
                .build()
                .map(llmtel::GenAiExporter::new)
        },
        queue(1_024),
    )
    .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(queue)
        .build();
    let tracer = provider.tracer("t");
    for _ in 0..3_000 {
        tracer.start("chat").end();
    }
    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    let err = provider
        .shutdown_with_timeout(timeout)
        .unwrap_err()
        .to_string();
    let took = started.elapsed();
    println!("shutdown with the collector down: {took:?}: {err}");
    assert!(
        took < timeout + Duration::from_millis(500),
        "shutdown took {took:?}"
    );
    let c = counted_since(&before);
    assert_eq!(
        c.dropped + c.failed,
        3_000,
        "every span is counted as lost: {err}"
    );
    // What the queue held, plus the two batches of 256 the export thread had taken from it
    // (one in flight, one waiting for the first to be answered).
    assert!(
        c.failed > 0 && c.failed <= 1_024 + 2 * 256,
        "{} failed",
        c.failed
    );
    assert!(
        err.contains(&format!("{} spans were not sent", c.failed)),
        "the shutdown says how many spans it could not send: {err}"
    );
}

#[test]
fn dropping_the_guard_waits_the_queues_flush_timeout_for_a_collector_coming_back() {
    // The guard's drop shut the provider down with the SDK's own 5 s, whatever the queue's
    // `flush_timeout` said: a collector restarting for 7 s at exit lost every queued span.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let addr = free_addr();
    let r = Receiver::new();
    let (subscriber, guard) = stack(
        &format!("http://{addr}"),
        llmtel::Protocol::Grpc,
        queue(4096),
    );
    tracing::subscriber::with_default(subscriber, || emit(200, 2_000.0));
    let (r2, up_at) = (r.clone(), Instant::now() + Duration::from_secs(7));
    let server = std::thread::spawn(move || {
        std::thread::sleep(up_at.saturating_duration_since(Instant::now()));
        serve_grpc(addr, r2)
    });
    let start = Instant::now();
    drop(guard);
    let took = start.elapsed();
    let _server = server.join().unwrap();
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(r.received(), 200, "the drop returned after {took:?}");
}
