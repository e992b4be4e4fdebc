//! `llmtel collector`: OTLP traces in from services in any language, priced by llmtel's own
//! exporter stage, OTLP out.
//!
//! The collector
//! - **receives** OTLP traces over gRPC (`127.0.0.1:4317`) and HTTP (`POST /v1/traces` on
//!   `127.0.0.1:4318`, `application/x-protobuf` or `application/json`), uncompressed or
//!   gzip (the OpenTelemetry Collector's default), each listener serving at most
//!   `max_connections` (256) connections within the limits
//!   [`Config::with_max_connections`] lists (request size, head and request timeouts, idle
//!   connections, gRPC streams and keepalive);
//! - moves what the stage reads of each span (name, attributes, events, status) into the
//!   OpenTelemetry SDK's `SpanData`, maps the GenAI [dialects](#dialects) onto the current
//!   `gen_ai.*` names, and runs it through [`llmtel::GenAiExporter::process_call`], the stage
//!   an instrumented Rust process exports through: the same `gen_ai.usage.cost`, `llmtel.cost.*`, `llmtel.pricing.*`,
//!   integer token counts and credential removal, and the content policy: prompt and
//!   response attributes are dropped unless [`Config::with_content_capture`]
//!   (`capture_content = true`) keeps them, truncated. The resource's, each instrumentation
//!   scope's and each link's attributes get the same policy, a scope's name and version the
//!   redaction a span's name gets; a bytes value is read as its UTF-8 text;
//! - **forwards** them to `OTEL_EXPORTER_OTLP_ENDPOINT` over `OTEL_EXPORTER_OTLP_PROTOCOL`
//!   (`http/protobuf` or `grpc`), with the headers of `OTEL_EXPORTER_OTLP_HEADERS` /
//!   `OTEL_EXPORTER_OTLP_TRACES_HEADERS` and [`Config::with_forward_header`] (`[forward]
//!   headers`), through a bounded queue. Each request is put back together with its resource,
//!   scopes and links as they came (each span's attributes written straight from the
//!   stage's values), encoded once, and sent again as is on a retry. The queue is bounded
//!   in spans (`queue_size`, 8,192) and in bytes of requests (`queue_bytes`, 64 MiB, each
//!   request's encoded size plus an estimate of its decoded structures until the stage has
//!   run it, its encoded size after: the bound when spans are big, with captured prompts,
//!   or have many small attributes; at least `max_request_bytes`). A request accepted at
//!   the door is never too large for the queue: one of more spans than `queue_size`, or
//!   bigger decoded than `queue_bytes`, waits for an empty queue and then has it to itself
//!   (alone, it can take more than `queue_bytes` until it is staged); while a request of
//!   more than half the queue waits, the queue is kept for it (5 s at a time: smaller
//!   requests are told to retry meanwhile), so that steady traffic does not keep it out.
//!   When the queue is full, senders are answered `429 Too Many Requests` with `Retry-After: 1`
//!   (HTTP, the body a `google.rpc.Status` as OTLP/HTTP requires) or `UNAVAILABLE` with a
//!   `RetryInfo` of 1 s (gRPC), which every OTLP exporter retries: counted as refused for now
//!   ([`Stats::refused_retryable`]), not as dropped, since the sender still has the spans; nothing
//!   is dropped silently. A batch the downstream refuses for now (unreachable, timed out, HTTP
//!   429/502/503/504, gRPC `UNAVAILABLE`, `DEADLINE_EXCEEDED`, ..., `RESOURCE_EXHAUSTED` with a
//!   `RetryInfo`) is retried with backoff (or after the downstream's `Retry-After` / `RetryInfo`)
//!   for `retry_for` (30 s) while its spans hold their place in the queue, then dropped and counted
//!   (`export_failed`); one it refuses for good (the errors OTLP says must not be retried: HTTP
//!   400/401/403/413, gRPC `INVALID_ARGUMENT`, `UNAUTHENTICATED`, ...) is dropped at once and
//!   counted (`rejected`), as are the spans a partial success rejects, and a request an HTTP
//!   downstream answers with a redirect (3xx: never followed, as a followed 301/302/303 turns the
//!   POST into a GET without its body and a 307/308 sends the spans and the forward headers to
//!   another address; set the endpoint to the final URL). [`Collector::last_error`] says why spans
//!   were last dropped, with what to do. A downstream that is one of the collector's own listeners
//!   (the same port on loopback, `localhost`, an unspecified address or the listener's own) stops
//!   the start ([`ConfigError::ForwardsToItself`]); every forward carries an `x-llmtel-collector`
//!   header with the ids of the llmtel collectors the request went through, and a request that went
//!   through this one already (a loop through a proxy or a name) or through more than 16 is refused
//!   (HTTP `508 Loop Detected`, gRPC `FAILED_PRECONDITION`: not retried) and counted
//!   (`refused_loop`); collectors chained on purpose each add their id;
//! - **accounts budgets** (with [`Config::with_budgets`] or `budgets = "FILE"` in its config,
//!   the library's rules file and stores: memory, SQLite, Redis): each priced span's spend is
//!   recorded once, by the scopes its attributes give (`user.id`, `session.id`,
//!   `llmtel.feature`, `llmtel.tenant`, `llmtel.api_key_id`, model, provider, and the custom
//!   attributes the rules name), whether or not the downstream takes the span; spend from
//!   every service is in one place;
//! - serves its health on `/metrics` (`127.0.0.1:9466`): spans received, priced, of an
//!   unknown model, unpriced, budgeted, forwarded, dropped by reason, refused for now
//!   (requests and spans, retried by their senders), queue depth, and the
//!   requests refused as they arrived, by reason: too large (over `max_request_bytes`
//!   decompressed: HTTP `413`, gRPC `INVALID_ARGUMENT`, which OTLP senders do not retry,
//!   where tonic's own `OUT_OF_RANGE` they retry), not OTLP, an encoding it does not take,
//!   a forwarding loop (see [`Stats`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), llmtel_collector::CollectorError> {
//! let config = llmtel_collector::Config::from_file("collector.toml")?;
//! let collector = llmtel_collector::Collector::start(config).await?;
//! println!("OTLP/HTTP on {}", collector.http_addr());
//! # Ok(()) }
//! ```
//!
//! # Dialects
//!
//! Before pricing, each key on the left fills the current key on the right when the span
//! does not have it already (the first one found wins; the original key is kept):
//!
//! | Dialect | Key it writes | Read as |
//! |---|---|---|
//! | OpenTelemetry GenAI < 1.27 | `gen_ai.usage.prompt_tokens` | `gen_ai.usage.input_tokens` |
//! | OpenTelemetry GenAI < 1.27 | `gen_ai.usage.completion_tokens` | `gen_ai.usage.output_tokens` |
//! | OpenInference | `llm.token_count.prompt` | `gen_ai.usage.input_tokens` |
//! | OpenInference | `llm.token_count.completion` | `gen_ai.usage.output_tokens` |
//! | OpenInference | `llm.token_count.prompt_details.cache_read` | `gen_ai.usage.cache_read.input_tokens` |
//! | OpenInference | `llm.token_count.prompt_details.cache_write` | `gen_ai.usage.cache_creation.input_tokens` |
//! | OpenInference | `llm.token_count.completion_details.reasoning` | `gen_ai.usage.reasoning.output_tokens` |
//! | OpenInference | `llm.model_name` | `gen_ai.request.model` |
//! | OpenInference | `llm.provider` | `gen_ai.provider.name` |
//! | OpenInference | `llm.system` | `gen_ai.system` |
//! | OpenLLMetry | `gen_ai.usage.cache_read_input_tokens` | `gen_ai.usage.cache_read.input_tokens` |
//! | OpenLLMetry | `gen_ai.usage.cache_creation_input_tokens` | `gen_ai.usage.cache_creation.input_tokens` |
//! | OpenLLMetry, OpenLIT | `gen_ai.usage.reasoning_tokens` | `gen_ai.usage.reasoning.output_tokens` |
//! | OpenLLMetry | `llm.usage.total_tokens` | `gen_ai.usage.output_tokens` = total − input, when only the total is known |
//! | OpenLIT | `gen_ai.usage.prompt_tokens_details.cache_read` | `gen_ai.usage.cache_read.input_tokens` |
//! | OpenLIT | `gen_ai.usage.prompt_tokens_details.cache_write` | `gen_ai.usage.cache_creation.input_tokens` |
//! | OpenLIT | `gen_ai.usage.completion_tokens_details.reasoning` | `gen_ai.usage.reasoning.output_tokens` |
//!
//! A token count is written as an integer, from the first key whose value is a count (one
//! that is not, such as `"n/a"`, leaves the key to the next); `llm.provider` is written as
//! its GenAI provider name (`google` as `gcp.gemini`, `aws` as `aws.bedrock`, `azure` as
//! `azure.ai.openai`, `mistralai` as `mistral_ai`, `xai` as `x_ai`).
//! `gen_ai.system` (deprecated) is read by the exporter stage itself. A cost an
//! instrumentation estimated (OpenLIT's `gen_ai.usage.cost`: a `gen_ai.usage.cost` on a span
//! without `llmtel.cost.source`) is moved to `llmtel.cost.instrumentation` when llmtel prices
//! the span from its usage, and left as it came when llmtel writes no cost (a model not in
//! the catalog, a span that is not a model call); a cost llmtel wrote upstream (with
//! `llmtel.cost.source`: a catalog price, a provider-reported one) is kept with its source,
//! as in process. Attributes the stage does not write or normalise are forwarded as they
//! came (maps, byte strings, mixed arrays and empty values included). Spans
//! with a model or token usage that still cannot be priced (unknown model, no usage) are
//! counted as `unpriced` (and `unknown_model`) on `/metrics`.

#![cfg_attr(docsrs, feature(doc_cfg))]
mod config;
mod convert;
pub mod dialect;
mod downstream;
mod encode;
mod evaluations;
mod hop;
mod incoming;
mod pipeline;
mod rpc;
mod server;
mod stats;

use std::net::SocketAddr;
use std::time::Duration;

use llmtel_metrics::listener::{Limits, serve_with_limits};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{Config, Protocol};
pub use stats::Stats;

/// Replaces the process's panic hook with one that prints a panic's thread, location and
/// message on stderr with the message redacted by llmtel's redaction step
/// ([`llmtel::redact()`]), and a backtrace when `RUST_BACKTRACE` asks for one, as Rust's
/// default hook does (`full` for every frame; `RUST_LIB_BACKTRACE`, which is for the
/// backtraces libraries capture in their errors, is not read).
///
/// The collector runs code that is not its own in its stage (sinks given with
/// [`Config::with_sink`], the budgets' store, the quality monitor); a panic there fails its
/// request, and the message kept as [`Collector::last_error`] is redacted, but Rust's
/// default hook prints the message as it is on stderr first: an API key a sink panics with
/// reached the logs. `llmtel collector` calls this as it starts; a program embedding the
/// collector calls it once, before [`Collector::start`], unless it has a panic hook of its
/// own (this one replaces it, and does not call it).
pub fn redact_panic_messages() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("Box<dyn Any>");
        let thread = std::thread::current();
        let location = info
            .location()
            .map_or_else(String::new, |l| format!(" at {l}"));
        let backtrace = match panic_backtrace_style() {
            PanicBacktrace::Off => String::new(),
            style => {
                let backtrace = std::backtrace::Backtrace::force_capture();
                match (backtrace.status(), style) {
                    (std::backtrace::BacktraceStatus::Captured, PanicBacktrace::Full) => {
                        format!("\nstack backtrace:\n{backtrace:#}")
                    }
                    (std::backtrace::BacktraceStatus::Captured, _) => {
                        format!("\nstack backtrace:\n{backtrace}")
                    }
                    _ => String::new(),
                }
            }
        };
        // One write under the lock: lines of panics in several threads are not interleaved.
        // Not `eprintln!`: a panic in a panic hook (stderr closed, EPIPE) aborts the process.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "thread '{}' panicked{location}:\n{}{backtrace}",
            thread.name().unwrap_or("<unnamed>"),
            llmtel::redact::redact(message)
        );
    }));
}

/// The backtrace a panic hook prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PanicBacktrace {
    Off,
    Short,
    Full,
}

/// The backtrace Rust's default panic hook prints (`std::panic::get_backtrace_style`, not
/// stable): `RUST_BACKTRACE` unset or `0`, none; `full`, every frame; else the short one.
/// Not `Backtrace::capture()`'s rule, which reads `RUST_LIB_BACKTRACE` first: with
/// `RUST_LIB_BACKTRACE=0 RUST_BACKTRACE=1` (no backtraces captured in errors, a backtrace on
/// a panic) a panic printed none.
fn panic_backtrace_style() -> PanicBacktrace {
    match std::env::var_os("RUST_BACKTRACE") {
        None => PanicBacktrace::Off,
        Some(v) if v == "0" => PanicBacktrace::Off,
        Some(v) if v == "full" => PanicBacktrace::Full,
        Some(_) => PanicBacktrace::Short,
    }
}

/// A bad configuration: what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file cannot be read.
    #[error("cannot read the collector config {path}: {source} (check the --config path)")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The budgets file cannot be used.
    #[error(
        "cannot use the budgets file {path}: {message} (fix it, or remove `budgets` from the collector config)"
    )]
    Budgets {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The configuration file is not valid.
    #[error("invalid collector config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, and where.
        message: String,
    },
    /// An unsupported forwarding protocol.
    #[error(
        "unsupported OTLP protocol {0:?}: use \"grpc\" or \"http/protobuf\" \
         (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL or [forward] protocol)"
    )]
    Protocol(String),
    /// A value out of range.
    #[error("invalid collector setting: {0}")]
    Invalid(String),
    /// The downstream is one of the collector's own listeners: it would forward every span
    /// to itself, pricing and budgeting it again each time, without end.
    #[error(
        "the forward endpoint {endpoint} is this collector's own {listener} listener ({addr}): \
         it would forward every span back to itself, pricing and budgeting it again, without \
         end; point the forward endpoint ([forward] endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
         or OTEL_EXPORTER_OTLP_ENDPOINT) at the downstream collector or backend, or move the \
         listener ({flag})"
    )]
    ForwardsToItself {
        /// The endpoint, credentials hidden.
        endpoint: String,
        /// Which listener.
        listener: &'static str,
        /// Where it listens.
        addr: SocketAddr,
        /// The flag or config key that moves it.
        flag: &'static str,
    },
    /// No downstream to forward to.
    #[error(
        "no downstream to forward traces to: set OTEL_EXPORTER_OTLP_ENDPOINT \
         (e.g. http://otel-collector:4318), OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
         (e.g. http://otel-collector:4318/v1/traces) or `endpoint` under [forward] in the config \
         file (not the collector's own listener: 127.0.0.1:4317 and 4318 by default)"
    )]
    NoDownstream,
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectorError {
    /// A bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An address cannot be listened on.
    #[error(
        "cannot listen for {what} on {addr}: {source} (is another process using it? set {flag})"
    )]
    Listen {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The flag or config key that sets it.
        flag: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA certificates for an `https://` downstream cannot be used (the message says
    /// which file and setting, and what to do).
    #[error("{0}")]
    Certificate(String),
    /// The OTLP client to the downstream cannot be built.
    #[error(
        "cannot build the OTLP client to {endpoint}: check the forward endpoint, protocol and headers"
    )]
    Exporter {
        /// The endpoint, credentials hidden.
        endpoint: String,
    },
}

/// A running collector. Dropping it stops the listeners and the forwarder.
#[derive(Debug)]
pub struct Collector {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    metrics_addr: SocketAddr,
    queue: pipeline::Queue,
    /// The forwarders, then the `/metrics` server: stopped last by a shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// The OTLP receivers (gRPC, HTTP): stopped first by a shutdown.
    receivers: Vec<JoinHandle<()>>,
    /// Flushed by a shutdown once the queue is forwarded.
    budgets: Option<llmtel_budget::Budgets>,
    quality: Option<llmtel_quality::Quality>,
}

async fn bind(
    what: &'static str,
    addr: SocketAddr,
    flag: &'static str,
) -> Result<(TcpListener, SocketAddr), CollectorError> {
    let err = |source| CollectorError::Listen {
        what,
        addr,
        flag,
        source,
    };
    let l = TcpListener::bind(addr).await.map_err(err)?;
    let local = l.local_addr().map_err(err)?;
    Ok((l, local))
}

impl Collector {
    /// Binds the listeners and starts forwarding (call it inside a Tokio runtime).
    ///
    /// # Errors
    /// [`CollectorError::Config`] (no downstream, bad protocol), [`CollectorError::Listen`],
    /// [`CollectorError::Exporter`].
    pub async fn start(config: Config) -> Result<Collector, CollectorError> {
        let (grpc, grpc_addr) = bind("OTLP/gRPC", config.grpc_listen, "--grpc-listen").await?;
        let (http, http_addr) = bind("OTLP/HTTP", config.http_listen, "--http-listen").await?;
        let (metrics, metrics_addr) =
            bind("/metrics", config.metrics_listen, "--metrics-listen").await?;
        let (endpoint, _) = config.downstream()?;
        hop::check_not_self(
            &endpoint,
            &[
                ("OTLP/gRPC", grpc_addr, "--grpc-listen / grpc_listen"),
                ("OTLP/HTTP", http_addr, "--http-listen / http_listen"),
            ],
        )?;
        let (queue, mut tasks) = pipeline::start(&config)?;
        let mut receivers = Vec::with_capacity(2);

        let svc = server::GrpcGate {
            inner: TraceServiceServer::new(server::GrpcReceiver {
                queue: queue.clone(),
            })
            // Decompressed too: a gzip message inflating past it is refused as a plain one.
            .max_decoding_message_size(config.max_request_bytes)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            counters: queue.counters.clone(),
            max_request_bytes: config.max_request_bytes,
        };
        // Limits as the HTTP listener's (see `Config::with_max_connections`).
        let incoming = incoming::Incoming::new(
            grpc,
            config.max_connections,
            incoming::IDLE,
            queue.counters.clone(),
        );
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(incoming::MAX_STREAMS)
            .concurrency_limit_per_connection(incoming::CONCURRENCY_PER_CONNECTION)
            .timeout(incoming::REQUEST_TIMEOUT)
            .http2_keepalive_interval(Some(incoming::KEEPALIVE))
            .http2_keepalive_timeout(Some(incoming::KEEPALIVE_TIMEOUT));
        receivers.push(tokio::spawn(async move {
            let mut server = server;
            let _ = server.add_service(svc).serve_with_incoming(incoming).await;
        }));
        let limits = Limits::default()
            .with_max_connections(config.max_connections)
            .with_max_body_bytes(config.max_request_bytes);
        // Its counters (shared by clones) count the requests it refuses for their size.
        let _ = queue.counters.http_listener.set(limits.clone());
        let router = server::http_router(queue.clone());
        receivers.push(tokio::spawn(async move {
            let _ = serve_with_limits(http, router, limits).await;
        }));
        let router = server::metrics_router(queue.clone());
        tasks.push(tokio::spawn(async move {
            let _ = serve_with_limits(metrics, router, Limits::default()).await;
        }));
        Ok(Collector {
            grpc_addr,
            http_addr,
            metrics_addr,
            queue,
            tasks,
            receivers,
            budgets: config.budgets.clone(),
            quality: config.quality.clone(),
        })
    }

    /// Where OTLP/gRPC is received.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where OTLP/HTTP is received (`POST /v1/traces`).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The health counters now.
    pub fn stats(&self) -> Stats {
        self.queue.counters.snapshot()
    }

    /// Why spans were last dropped after they were accepted, and what to do: the downstream
    /// refused them for good (with its answer: a wrong header, a redirect, a forwarding
    /// loop, a span over its limit), or the stage panicked on their request (with the
    /// panic's message). `None` while nothing was. Also on `/metrics`, as a comment line
    /// (`# llmtel_collector_last_error ...`).
    pub fn last_error(&self) -> Option<String> {
        self.queue.counters.last_error()
    }

    /// Stops gracefully, within `timeout`: stops receiving (senders are refused and retry
    /// elsewhere or later, as OTLP exporters do), runs what was accepted through the stage
    /// (its spend, calls and quality results are recorded whether or not it is sent),
    /// forwards what is queued (retrying a downstream that refuses for now, as while
    /// running), then flushes the budgets' spend and the quality monitor, then stops. With
    /// budgets or a quality monitor, forwarding stops a quarter of `timeout` before the
    /// deadline at the latest, so that the flushes have that time (all that is left when the
    /// queue empties sooner); a flush that does not finish in it is counted
    /// ([`Stats::flushes_failed`]) and said on stderr, with what to do.
    /// Returns the counters then: spans still queued (`queue_depth`) were not sent.
    /// `llmtel collector` calls this on Ctrl-C and SIGTERM; dropping a `Collector` stops it
    /// at once, losing what is queued.
    pub async fn shutdown(mut self, timeout: Duration) -> Stats {
        use std::sync::atomic::Ordering::{Relaxed, Release};
        let now = tokio::time::Instant::now;
        // (A year is as good as forever here, and is still a point in time.)
        let timeout = timeout.min(Duration::from_secs(365 * 24 * 3600));
        let deadline = now() + timeout;
        let budgets = self.budgets.take();
        let quality = self.quality.take();
        // The flushes' own share: a queue the downstream does not take is not forwarded
        // into it.
        let forward_until = if budgets.is_some() || quality.is_some() {
            deadline - timeout / 4
        } else {
            deadline
        };
        // Connections already open stay open until their own timeouts: their requests are
        // refused from now on (429 / UNAVAILABLE, which OTLP exporters retry elsewhere or
        // later), not taken into a queue that is being emptied.
        self.queue.closing.store(true, Release);
        for r in self.receivers.drain(..) {
            r.abort();
            let _ = r.await;
        }
        let counters = self.queue.counters.clone();
        // Everything accepted goes through the stage (fast: no network), so that its spend
        // is in the budgets before they are flushed.
        while counters.unstaged.load(Relaxed) > 0 && now() < forward_until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The forwarders release a request's room once it is sent or given up on.
        while counters.snapshot().queue_depth > 0 && now() < forward_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = deadline.saturating_duration_since(now());
        // Both flushes block (they wait for the stores' and the monitor's threads).
        let failed = tokio::task::spawn_blocking(move || {
            let start = std::time::Instant::now();
            let mut failed = Vec::new();
            if let Some(b) = &budgets {
                // Half for each when both flush; what the budgets leave goes to the monitor.
                let share = if quality.is_some() { left / 2 } else { left };
                if !b.flush(share) {
                    failed.push(format!(
                        "the budgets' spend did not all reach their store within the shutdown \
                         time ({share:?}): spend may be lost; check the store (Redis, SQLite) \
                         or give the shutdown more time (--shutdown-timeout)"
                    ));
                }
            }
            if let Some(q) = &quality {
                let share = left.saturating_sub(start.elapsed());
                if !q.flush(share) {
                    failed.push(format!(
                        "the quality monitor did not finish its evaluations and alerts within \
                         the shutdown time ({share:?}): results or alerts may be lost; check \
                         the alert sinks or give the shutdown more time (--shutdown-timeout)"
                    ));
                }
            }
            failed
        })
        .await
        .unwrap_or_else(|_| vec!["a budgets or quality flush panicked".to_owned()]);
        if !failed.is_empty() {
            counters
                .flushes_failed
                .fetch_add(failed.len() as u64, Relaxed);
            let message = format!("shutdown: {}", failed.join("; "));
            // Said once, as the collector stops: nothing can read `last_error` after.
            // Not `eprintln!`: it panics on a closed stderr (a shutdown ending in a panic).
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "llmtel collector: {message}");
            counters.note(message);
        }
        self.stats()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        for t in self.receivers.iter().chain(&self.tasks) {
            t.abort();
        }
    }
}
