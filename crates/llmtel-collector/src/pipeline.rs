//! The bounded queue between the receivers and the forwarder, and the forwarder: OTLP →
//! `SpanData` → dialect mapping → [`llmtel::GenAiExporter`] → OTLP exporter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmtel_semconv::{gen_ai, llmtel as lt};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::mpsc;

use crate::config::{Config, Endpoint, Protocol};
use crate::stats::Counters;
use crate::{CollectorError, convert, dialect};

/// What the queue answered a sender.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Queued (or nothing to queue).
    Accepted,
    /// The queue has no room now: try again later.
    Full,
    /// The request alone holds more spans than the queue can.
    TooLarge { spans: usize, capacity: usize },
}

struct Job {
    resource_spans: Vec<ResourceSpans>,
}

/// The sending side of the queue, shared by the receivers.
#[derive(Clone, Debug)]
pub(crate) struct Queue {
    tx: mpsc::UnboundedSender<Job>,
    pub(crate) counters: Arc<Counters>,
    /// Largest request accepted (also after decompression).
    pub(crate) max_request_bytes: usize,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl Queue {
    /// Queues a request's spans if they fit (the channel is unbounded; room is reserved in
    /// `counters`, so the queue never holds more than its capacity).
    pub(crate) fn submit(&self, req: ExportTraceServiceRequest) -> Admit {
        let spans: usize = req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        if spans == 0 {
            return Admit::Accepted;
        }
        let refuse = |a: Admit| {
            self.counters
                .dropped_queue_full
                .fetch_add(spans as u64, std::sync::atomic::Ordering::Relaxed);
            a
        };
        if spans > self.counters.capacity() {
            return refuse(Admit::TooLarge {
                spans,
                capacity: self.counters.capacity(),
            });
        }
        if !self.counters.try_reserve(spans) {
            return refuse(Admit::Full);
        }
        self.counters
            .received
            .fetch_add(spans as u64, std::sync::atomic::Ordering::Relaxed);
        if self
            .tx
            .send(Job {
                resource_spans: req.resource_spans,
            })
            .is_err()
        {
            // The forwarder has stopped (shutdown): nothing will send these.
            self.counters.release(spans);
            self.counters
                .dropped_export_failed
                .fetch_add(spans as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Admit::Accepted
    }
}

/// Counts what the exporter stage wrote on the spans the downstream accepted.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    counters: Arc<Counters>,
}

fn has(span: &SpanData, key: &str) -> bool {
    span.attributes.iter().any(|kv| kv.key.as_str() == key)
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let (mut priced, mut unknown, mut unpriced) = (0u64, 0u64, 0u64);
        for s in &batch {
            let cost = has(s, gen_ai::USAGE_COST);
            priced += u64::from(cost);
            unknown += u64::from(has(s, lt::COST_UNKNOWN_MODEL));
            let llm = [
                gen_ai::REQUEST_MODEL,
                gen_ai::RESPONSE_MODEL,
                gen_ai::USAGE_INPUT_TOKENS,
                gen_ai::USAGE_OUTPUT_TOKENS,
            ]
            .iter()
            .any(|k| has(s, k));
            unpriced += u64::from(llm && !cost);
        }
        let counters = self.counters.clone();
        let fut = self.inner.export(batch);
        async move {
            let r = fut.await;
            if r.is_ok() {
                use std::sync::atomic::Ordering::Relaxed;
                counters.priced.fetch_add(priced, Relaxed);
                counters.unknown_model.fetch_add(unknown, Relaxed);
                counters.unpriced.fetch_add(unpriced, Relaxed);
            }
            r
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Builds the OTLP exporter to the downstream (inside a Tokio runtime).
fn otlp_exporter(
    endpoint: &Endpoint,
    protocol: Protocol,
    timeout: Duration,
) -> Result<opentelemetry_otlp::SpanExporter, CollectorError> {
    let built = match protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.0.clone())
            .with_timeout(timeout)
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(reqwest::Client::new())
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", endpoint.0.trim_end_matches('/')))
            .with_timeout(timeout)
            .build(),
    };
    // The builder's error may quote the endpoint, which may carry credentials: say which
    // setting to fix instead.
    built.map_err(|_| CollectorError::Exporter {
        endpoint: format!("{endpoint:?}"),
    })
}

/// Starts the forwarder task; returns the queue the receivers submit to.
pub(crate) fn start(
    config: &Config,
) -> Result<(Queue, tokio::task::JoinHandle<()>), CollectorError> {
    let (endpoint, protocol) = config.downstream()?;
    let counters = Arc::new(Counters::new(config.queue_size));
    let exporter = llmtel::GenAiExporter::new(Counting {
        inner: otlp_exporter(&endpoint, protocol, config.timeout)?,
        counters: counters.clone(),
    })
    .with_content_capture(config.content.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(forward(rx, exporter, counters.clone(), config.retry_for));
    Ok((
        Queue {
            tx,
            counters,
            max_request_bytes: config.max_request_bytes,
        },
        task,
    ))
}

async fn forward<E: SpanExporter>(
    mut rx: mpsc::UnboundedReceiver<Job>,
    mut exporter: E,
    counters: Arc<Counters>,
    retry_for: Duration,
) {
    use std::sync::atomic::Ordering::Relaxed;
    while let Some(job) = rx.recv().await {
        for rs in job.resource_spans {
            let declared: usize = rs.scope_spans.iter().map(|ss| ss.spans.len()).sum();
            let (mut batch, invalid) = convert::resource_spans(rs);
            if invalid > 0 {
                counters.dropped_invalid.fetch_add(invalid, Relaxed);
            }
            let n = batch.spans.len();
            for span in &mut batch.spans {
                dialect::map_dialects(&mut span.attributes);
            }
            if n > 0 {
                // One resource per export: the exporter stage and the OTLP exporter see the
                // sender's resource, as in process.
                exporter.set_resource(&batch.resource);
                let deadline = Instant::now() + retry_for;
                let mut backoff = Duration::from_millis(100);
                loop {
                    if exporter.export(batch.spans.clone()).await.is_ok() {
                        counters.forwarded.fetch_add(n as u64, Relaxed);
                        break;
                    }
                    if Instant::now() + backoff > deadline {
                        counters.dropped_export_failed.fetch_add(n as u64, Relaxed);
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            counters.release(declared);
        }
    }
}
