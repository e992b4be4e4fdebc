//! The bounded queue between the receivers and the stage, the stage, and the forwarders.
//! Each accepted request is run through the stage as it comes, whatever the downstream does:
//! OTLP → `SpanData` (what the stage reads) → dialect mapping → priced once by
//! [`llmtel::GenAiExporter::process_call`] → sinks, quality, budgets → back into the OTLP
//! request (the attributes by [`encode::request`]), encoded once. The forwarders send the
//! encoded request downstream (a retry sends the same bytes, without pricing or counting
//! again); its room in the queue is held until it is sent or given up on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmtel_semconv::{gen_ai, llmtel as lt};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::mpsc;

use llmtel_budget::{Budgets, CallContext};

use crate::config::Config;
use crate::downstream::{Downstream, Refusal};
use crate::stats::Counters;
use crate::{CollectorError, convert, dialect, encode, evaluations};

/// What the queue answered a sender.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Queued (or nothing to queue), but for `rejected` spans left out for their invalid ids
    /// (counted in `dropped_invalid`; the sender is told in a partial success).
    Accepted { rejected: u64 },
    /// The queue has no room now: try again later.
    Full,
    /// The collector's stage no longer takes requests (it stopped): try again later, or
    /// elsewhere.
    Stopped,
    /// The request alone holds more than the queue can: `amount` `unit` where it holds
    /// `capacity`; the setting to raise.
    TooLarge {
        amount: usize,
        capacity: usize,
        unit: &'static str,
        setting: &'static str,
    },
}

impl Admit {
    /// The answer to a request whose `rejected` spans were left out: OTLP's partial success
    /// (none when every span was taken).
    pub(crate) fn response(rejected: u64) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: format!(
                    "llmtel collector: {rejected} spans dropped for an invalid trace or span id \
                     (a trace id is 16 bytes, a span id 8, neither all zero; a parent id is 8 \
                     bytes or empty): fix the instrumentation that made them"
                ),
            }),
        }
    }

    /// What a sender is told when the stage no longer takes requests.
    pub(crate) const STOPPED: &'static str =
        "llmtel collector: the collector is not taking spans now (stopping); retry later";

    /// What a sender is told when the request is bigger than the whole queue.
    pub(crate) fn too_large(amount: usize, capacity: usize, unit: &str, setting: &str) -> String {
        format!(
            "llmtel collector: the request has {amount} {unit}, more than the queue holds \
             ({capacity}); send smaller batches or raise {setting}"
        )
    }
}

struct Job {
    resource_spans: Vec<ResourceSpans>,
    /// How many spans it has (it holds at most the whole queue's of them: [`Held::spans`]).
    spans: usize,
    /// The llmtel collectors it went through ([`crate::hop`]), before this one.
    via: Vec<String>,
    /// Its room in the queue, released when the job is done with (dropped), however that
    /// happens: forwarded, given up on, or dropped by a panic.
    held: Held,
}

/// Room reserved in the queue for one request; released when dropped.
#[derive(Debug)]
struct Held {
    counters: Arc<Counters>,
    /// The request's spans, or the whole queue's when it has more.
    spans: usize,
    bytes: usize,
}

impl Held {
    /// Holds no more than `bytes` (what the request holds now), giving the rest back.
    fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.counters.release(0, self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counters.release(self.spans, self.bytes);
    }
}

/// The sending side of the queue, shared by the receivers.
#[derive(Clone, Debug)]
pub(crate) struct Queue {
    tx: mpsc::UnboundedSender<Job>,
    pub(crate) counters: Arc<Counters>,
    /// The in-process stack's Prometheus series, fed with every call the collector prices.
    pub(crate) series: llmtel_metrics::PrometheusSink,
    /// Largest request accepted (also after decompression).
    pub(crate) max_request_bytes: usize,
    /// Set by a shutdown: senders on connections still open are told to retry (they would
    /// be answered "accepted" for spans the stopping forwarders may never send).
    pub(crate) closing: Arc<std::sync::atomic::AtomicBool>,
    /// This collector's id in [`crate::hop::HEADER`].
    pub(crate) hop_id: Arc<str>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

/// How many spans a request holds (valid or not): what it takes of the queue.
fn span_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// An estimate of the memory a decoded request holds beyond its encoded bytes: the structs
/// of each resource, scope, span, event, link, attribute and array or map value. An
/// attribute of two bytes on the wire is a `KeyValue` of 100 or so once decoded: a request
/// of many small attributes holds several times its encoded size.
fn decoded_overhead(resource_spans: &[ResourceSpans]) -> usize {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span, span};
    use std::mem::size_of;
    fn value(v: &AnyValue) -> usize {
        match &v.value {
            Some(Value::ArrayValue(a)) => a
                .values
                .iter()
                .map(|v| size_of::<AnyValue>() + value(v))
                .sum(),
            Some(Value::KvlistValue(kv)) => attributes(&kv.values),
            _ => 0,
        }
    }
    fn attributes(kvs: &[KeyValue]) -> usize {
        kvs.iter()
            .map(|kv| size_of::<KeyValue>() + kv.value.as_ref().map_or(0, value))
            .sum()
    }
    resource_spans
        .iter()
        .map(|rs| {
            size_of::<ResourceSpans>()
                + rs.resource
                    .as_ref()
                    .map_or(0, |r| attributes(&r.attributes))
                + rs.scope_spans
                    .iter()
                    .map(|ss| {
                        size_of::<ScopeSpans>()
                            + ss.scope.as_ref().map_or(0, |s| attributes(&s.attributes))
                            + ss.spans
                                .iter()
                                .map(|s| {
                                    size_of::<Span>()
                                        + attributes(&s.attributes)
                                        + s.events
                                            .iter()
                                            .map(|e| {
                                                size_of::<span::Event>() + attributes(&e.attributes)
                                            })
                                            .sum::<usize>()
                                        + s.links
                                            .iter()
                                            .map(|l| {
                                                size_of::<span::Link>() + attributes(&l.attributes)
                                            })
                                            .sum::<usize>()
                                })
                                .sum::<usize>()
                    })
                    .sum::<usize>()
        })
        .sum()
}

impl Queue {
    /// Queues a request's spans if they fit (the channel is unbounded; room is reserved in
    /// `counters`, so the queue never holds more spans or bytes than its capacities).
    /// `bytes` is the request's encoded size (its body, decompressed), to which the memory
    /// of its decoded structures is added ([`decoded_overhead`]); `via` the collectors it
    /// went through ([`crate::hop::check`]).
    pub(crate) fn submit(
        &self,
        mut req: ExportTraceServiceRequest,
        bytes: usize,
        via: Vec<String>,
    ) -> Admit {
        // Spans no stage can take are left out here, so that the sender hears of them (OTLP's
        // partial success) instead of an acceptance of spans that were never forwarded.
        let rejected = convert::drop_invalid(&mut req.resource_spans);
        // Counted once the answer is final (accepted, or too large to ever be): a request
        // told to retry later (queue full, stopping) comes again with the same spans.
        let invalid = || {
            if rejected > 0 {
                self.counters
                    .dropped_invalid
                    .fetch_add(rejected, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let spans = span_count(&req.resource_spans);
        if spans == 0 {
            invalid();
            return Admit::Accepted { rejected };
        }
        // What the queue holds of it until it is staged: the decoded request, or the whole
        // queue when its structures alone take more; and its spans, or the whole queue when
        // there are more of them than it holds. Such a request waits for an empty queue and
        // then has it to itself: a request the receivers accept is never too large for good.
        let bytes = bytes
            .saturating_add(decoded_overhead(&req.resource_spans))
            .min(self.counters.bytes.capacity().max(bytes));
        let room = spans.min(self.counters.spans.capacity());
        // Told to retry: not a drop (the sender still has the spans), counted apart.
        let retry_later = |a: Admit| {
            use std::sync::atomic::Ordering::Relaxed;
            self.counters.refused_retryable.fetch_add(1, Relaxed);
            self.counters
                .refused_retryable_spans
                .fetch_add(spans as u64, Relaxed);
            a
        };
        // Only when `queue_bytes` is below `max_request_bytes`, which `Collector::start`
        // refuses: lost (senders do not retry a 413 / INVALID_ARGUMENT).
        if bytes > self.counters.bytes.capacity() {
            invalid();
            self.counters
                .dropped_queue_full
                .fetch_add(spans as u64, std::sync::atomic::Ordering::Relaxed);
            return Admit::TooLarge {
                amount: bytes,
                capacity: self.counters.bytes.capacity(),
                unit: "bytes",
                setting: "queue_bytes",
            };
        }
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return retry_later(Admit::Full);
        }
        // A request that needs more than half the queue fits only once most of what is
        // queued is forwarded, which steady smaller traffic would never let happen: when it
        // does not fit, the queue is kept for it for a while ([`crate::stats::Drain`]), new
        // smaller requests told to retry meanwhile.
        let big =
            room * 2 > self.counters.spans.capacity() || bytes * 2 > self.counters.bytes.capacity();
        let now = Instant::now();
        if !big && self.counters.drain.active(now) {
            return retry_later(Admit::Full);
        }
        if !self.counters.try_reserve(room, bytes) {
            if big {
                self.counters.drain.arm(now);
            }
            return retry_later(Admit::Full);
        }
        if big {
            self.counters.drain.clear(now);
        }
        let held = Held {
            counters: self.counters.clone(),
            spans: room,
            bytes,
        };
        let job = Job {
            resource_spans: req.resource_spans,
            spans,
            via,
            held,
        };
        // Counted before it can be staged (and taken back if it never will be).
        self.counters
            .unstaged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.tx.send(job).is_err() {
            // Nothing takes jobs any more: the sender is told to retry (the job, dropped
            // with the error, released its room).
            self.counters
                .unstaged
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return retry_later(Admit::Stopped);
        }
        self.counters
            .received
            .fetch_add(spans as u64, std::sync::atomic::Ordering::Relaxed);
        invalid();
        Admit::Accepted { rejected }
    }
}

fn has(span: &SpanData, key: &str) -> bool {
    span.attributes.iter().any(|kv| kv.key.as_str() == key)
}

/// How the exporter stage left the spans of one request, counted when the downstream takes
/// them.
#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    spans: u64,
    priced: u64,
    unknown: u64,
    unpriced: u64,
}

impl Outcome {
    /// How the stage left one span, priced as `call` (`None`: not a model call the stage
    /// priced; then read from its attributes).
    fn of(s: &SpanData, call: Option<&llmtel::LlmCall>) -> Self {
        let llm = [
            gen_ai::REQUEST_MODEL,
            gen_ai::RESPONSE_MODEL,
            gen_ai::USAGE_INPUT_TOKENS,
            gen_ai::USAGE_OUTPUT_TOKENS,
        ]
        .iter()
        .any(|k| has(s, k));
        // The priced call says whether it has a cost, whichever attribute it came from
        // (`gen_ai.usage.cost` as a double, a string or an integer, `llmtel.cost.reported`).
        let (cost, unknown) = match call {
            Some(c) => (c.cost.is_some(), c.unknown_model),
            None => (has(s, gen_ai::USAGE_COST), has(s, lt::COST_UNKNOWN_MODEL)),
        };
        Outcome {
            spans: 1,
            priced: u64::from(cost),
            unknown: u64::from(unknown),
            unpriced: u64::from(llm && !cost),
        }
    }

    /// The outcome of `spans` together.
    fn sum(spans: &[Outcome]) -> Self {
        spans.iter().fold(Outcome::default(), |a, b| Outcome {
            spans: a.spans + b.spans,
            priced: a.priced + b.priced,
            unknown: a.unknown + b.unknown,
            unpriced: a.unpriced + b.unpriced,
        })
    }

    /// Counts these spans as forwarded, but for the `rejected` the downstream's partial
    /// success names (which of them it does not say: the priced / unknown / unpriced counts
    /// are of the spans sent).
    fn forwarded(&self, c: &Counters, rejected: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let rejected = rejected.min(self.spans);
        c.forwarded.fetch_add(self.spans - rejected, Relaxed);
        c.dropped_rejected.fetch_add(rejected, Relaxed);
        c.priced.fetch_add(self.priced, Relaxed);
        c.unknown_model.fetch_add(self.unknown, Relaxed);
        c.unpriced.fetch_add(self.unpriced, Relaxed);
    }
}

/// The exporter behind the pricing stage: the collector calls the stage's `process` itself
/// (once per span, before any retry) and exports through the downstream exporter.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

fn str_attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .and_then(|kv| match &kv.value {
            opentelemetry::Value::String(s) => Some(s.as_str()),
            _ => None,
        })
}

/// Records a priced span's spend against the budgets, by the scopes its attributes give
/// (`user.id`, `session.id`, `llmtel.feature`, `llmtel.tenant`, `llmtel.api_key_id`, the
/// request model (else the response model), and the custom attributes the rules name) and
/// its `call`'s provider and tokens
/// (read as the stage read them to price it: the provider of a span that names only the
/// older `gen_ai.system`, counts sent as doubles or strings) and its cost (exact, as the stage
/// priced it: from the catalog, or reported by the app or provider however it was sent). A
/// span of a model with no price is charged by each rule's `on_unpriced` policy. Returns
/// whether it was recorded.
pub(crate) fn account(
    budgets: &Budgets,
    attributes: &[&'static str],
    span: &SpanData,
    call: &llmtel::LlmCall,
) -> bool {
    let cost = call.cost_usd();
    let unknown = call.unknown_model;
    if cost.is_none() && !unknown {
        return false; // not an LLM call, or nothing to charge
    }
    let mut ctx = CallContext::new();
    if let Some(v) = str_attr(span, lt::USER_ID) {
        ctx = ctx.with_user(v);
    }
    if let Some(v) = str_attr(span, lt::SESSION_ID).or(str_attr(span, gen_ai::CONVERSATION_ID)) {
        ctx = ctx.with_session(v);
    }
    if let Some(v) = str_attr(span, lt::FEATURE) {
        ctx = ctx.with_feature(v);
    }
    if let Some(v) = str_attr(span, lt::TENANT) {
        ctx = ctx.with_tenant(v);
    }
    // The model the request named, as `CallContext::from_call` takes it for the library's
    // layer and sink: what a per-model rule matches and a pre-flight reserves on (`gpt-4o`,
    // not the dated `gpt-4o-2024-08-06` the provider answers with). The response model, or
    // the one the span was priced by, only when the request named none.
    if let Some(v) = [
        call.request_model.as_deref(),
        str_attr(span, gen_ai::REQUEST_MODEL),
        call.response_model.as_deref(),
        str_attr(span, gen_ai::RESPONSE_MODEL),
        str_attr(span, lt::PRICING_MODEL),
    ]
    .into_iter()
    .flatten()
    .find(|m| !m.is_empty())
    {
        ctx = ctx.with_model(v);
    }
    if let Some(v) = &call.provider {
        ctx = ctx.with_provider(v);
    }
    for name in std::iter::once(&"llmtel.api_key_id").chain(attributes) {
        // The call's value first: the span's `llmtel.api_key_id` is a fingerprint by now (the
        // stage policed it), the call keeps the key the app's reservations were made with.
        if let Some(v) = call.dimensions.get(name).or_else(|| str_attr(span, name)) {
            ctx = ctx.with_attribute(name, v);
        }
    }
    let (input, output) = (call.usage.input_tokens, call.usage.output_tokens);
    match cost {
        Some(usd) => budgets.record(&ctx, usd, input.saturating_add(output)),
        // The alert names the model the catalog was asked for (the response model when
        // there is one), as the library's budget sink does; rules match the request model.
        None => {
            let priced = call
                .unknown_model
                .then(|| call.model())
                .flatten()
                .map(llmtel::cap_value);
            budgets.record_unpriced_model(&ctx, input, output, priced.as_deref())
        }
    };
    true
}

/// Forwarders taking staged requests from the queue, each with its own downstream
/// connection: one request's round trip to the downstream does not hold up the next (one
/// forwarder took 7,600 spans/s at most; BENCHMARKS.md, "Collector under load").
const FORWARDERS: usize = 4;

/// Stage tasks taking accepted requests: pricing, sinks, quality, budgets and encoding, as
/// requests arrive, whatever the downstream does.
const STAGES: usize = 4;

/// Starts the forwarder tasks; returns the queue the receivers submit to.
pub(crate) fn start(
    config: &Config,
) -> Result<(Queue, Vec<tokio::task::JoinHandle<()>>), CollectorError> {
    let (endpoint, protocol) = config.downstream()?;
    config.check_queue_room()?;
    // Read once, at start: a bad CA file is an error now, not a failed forward later.
    let tls = crate::downstream::tls(&endpoint, config.forward_ca_file.as_deref())?;
    let gzip = config.forward_gzip()?;
    let counters = Arc::new(Counters::new(config.queue_size, config.queue_bytes));
    let series = llmtel_metrics::PrometheusSink::builder().build();
    if let Some(q) = &config.quality {
        q.register_metrics(&series);
    }
    let mut sinks: Vec<Arc<dyn llmtel::CallSink>> = vec![Arc::new(series.clone())];
    sinks.extend(config.sinks.iter().cloned());
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    // Staged requests, bounded as the jobs are: by the room each holds until it is sent.
    let (staged_tx, staged_rx) = mpsc::unbounded_channel();
    let staged_rx = Arc::new(tokio::sync::Mutex::new(staged_rx));
    let mut tasks = Vec::with_capacity(STAGES + FORWARDERS);
    let attributes = config.budget_attributes();
    let hop_id: Arc<str> = crate::hop::new_id().into();
    let downstreams = (0..FORWARDERS)
        .map(|_| {
            Downstream::new(
                &endpoint,
                protocol,
                config.timeout,
                &config.forward_headers,
                &tls,
                gzip,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    for _ in 0..STAGES {
        let stage = Stage {
            pricing: match &config.catalog {
                Some(prices) => llmtel::GenAiExporter::new(Discard).with_catalog(prices.0.clone()),
                None => llmtel::GenAiExporter::new(Discard),
            },
            policy: config.content.clone(),
            budgets: config.budgets.clone(),
            attributes: attributes.clone(),
            sinks: sinks.clone(),
            quality: config.quality.clone(),
            forward_max: config.forward_max_request_bytes,
            hop_id: hop_id.clone(),
        };
        tasks.push(tokio::spawn(stage_jobs(
            rx.clone(),
            stage,
            staged_tx.clone(),
            counters.clone(),
        )));
    }
    for downstream in downstreams {
        tasks.push(tokio::spawn(forward(
            staged_rx.clone(),
            downstream,
            counters.clone(),
            config.retry_for,
        )));
    }
    Ok((
        Queue {
            tx,
            counters,
            series,
            max_request_bytes: config.max_request_bytes,
            closing: Arc::default(),
            hop_id,
        },
        tasks,
    ))
}

/// What happens to each span once, before it is forwarded (and retried).
struct Stage {
    pricing: llmtel::GenAiExporter<Discard>,
    policy: llmtel::ContentCapture,
    budgets: Option<Budgets>,
    /// The custom attributes the budget rules are scoped by.
    attributes: Vec<&'static str>,
    /// Every priced call goes to these, as llmtel's layer hands calls to its sinks: the
    /// Prometheus series first, then the ones given with `Config::with_sink`.
    sinks: Vec<Arc<dyn llmtel::CallSink>>,
    /// The quality pipeline: its sink is one of `sinks`; the evaluation results and feedback
    /// the spans carry are handed to it here. Held, it also keeps the pipeline's threads
    /// running as long as the stage (its `/metrics` collector holds it weakly).
    quality: Option<llmtel_quality::Quality>,
    /// The most bytes of one forwarded request (`[forward] max_request_bytes`).
    forward_max: usize,
    /// This collector's id in [`crate::hop::HEADER`].
    hop_id: Arc<str>,
}

/// A request the stage has run through: its encoded bodies, each with its outcome, sent in
/// order by one forwarder, and its room in the queue, released once they are sent or
/// given up on.
struct Staged {
    bodies: Vec<(Vec<u8>, Outcome)>,
    /// Its [`crate::hop::HEADER`].
    hops: String,
    held: Held,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("bodies", &self.bodies.len())
            .finish_non_exhaustive()
    }
}

/// Runs each accepted request through the stage as it comes (spend, sinks and quality are
/// recorded then, whether or not the downstream takes the spans, however long it is down)
/// and hands it to the forwarders.
async fn stage_jobs(
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    stage: Stage,
    forwarders: mpsc::UnboundedSender<Staged>,
    counters: Arc<Counters>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        // One stage task waits for the next job at a time; the others work on theirs.
        let next = rx.lock().await.recv().await;
        let Some(job) = next else { break };
        let declared = job.spans;
        // The stage runs code that is not the collector's (sinks given with
        // `Config::with_sink`, the budgets' store, the quality monitor): a panic there fails
        // this job, counted, not the task (the job's room is released as it is dropped).
        let staged =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stage.job(job, &counters)));
        counters.unstaged.fetch_sub(1, Relaxed);
        match staged {
            Ok(staged) if staged.bodies.is_empty() => {}
            Ok(staged) => {
                if let Err(e) = forwarders.send(staged) {
                    // Only when the forwarders are gone (the collector is being dropped).
                    let spans: u64 = e.0.bodies.iter().map(|(_, o)| o.spans).sum();
                    counters.dropped_export_failed.fetch_add(spans, Relaxed);
                }
            }
            Err(panic) => {
                counters
                    .dropped_stage_failed
                    .fetch_add(declared as u64, Relaxed);
                counters.note(format!(
                    "{declared} spans dropped: the stage panicked on their request ({}); a \
                     sink given with Config::with_sink, the budgets or the quality monitor has \
                     a bug: report it with this message",
                    panic_message(&*panic)
                ));
            }
        }
    }
}

/// Sends staged requests downstream, each retried as OTLP says for `retry_for`, counted
/// as forwarded, rejected or failed; its room released once it is done with.
async fn forward(
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Staged>>>,
    downstream: Downstream,
    counters: Arc<Counters>,
    retry_for: Duration,
) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        // One forwarder waits for the next request at a time; the others work on theirs.
        let next = rx.lock().await.recv().await;
        let Some(Staged { bodies, hops, held }) = next else {
            break;
        };
        let _held = held;
        // No deadline when `retry_for` is past any point in time (`Duration::MAX`).
        let deadline = Instant::now().checked_add(retry_for);
        for (body, outcome) in bodies {
            let body = downstream.body(bytes::Bytes::from(body));
            let mut backoff = Duration::from_millis(100);
            loop {
                let after = match downstream.send(body.clone(), &hops).await {
                    Ok(rejected) => {
                        outcome.forwarded(&counters, rejected);
                        break;
                    }
                    Err(Refusal::Final(why)) => {
                        // The reason first: whoever sees the drop counted sees why.
                        counters.note(format!("{} spans dropped: {why}", outcome.spans));
                        counters
                            .dropped_rejected
                            .fetch_add(outcome.spans, std::sync::atomic::Ordering::Release);
                        break;
                    }
                    Err(Refusal::Retry { after }) => after,
                };
                // The downstream's own delay when it gave one (at least 100 ms), else the
                // backoff.
                let wait = after.map_or(backoff, |a| a.max(Duration::from_millis(100)));
                if deadline.is_some_and(|d| Instant::now() + wait > d) {
                    counters
                        .dropped_export_failed
                        .fetch_add(outcome.spans, Relaxed);
                    break;
                }
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// What a panic says (its `&str` or `String` payload).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// The encoded request of `resource_spans` (with their `attributes` and the `outcomes` of
/// their spans, in order) and its outcome; or, when it is bigger than `max` bytes, its parts
/// under `max`, each with the outcome of its spans (counted in `requests_split`).
fn bodies(
    resource_spans: Vec<ResourceSpans>,
    attributes: encode::Attributes,
    outcomes: &[Outcome],
    max: usize,
    counters: &Counters,
) -> Vec<(Vec<u8>, Outcome)> {
    let whole = encode::request(&resource_spans, &attributes);
    if whole.len() <= max {
        return vec![(whole, Outcome::sum(outcomes))];
    }
    drop(whole);
    counters
        .requests_split
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut first = 0;
    encode::split(resource_spans, attributes, max)
        .into_iter()
        .map(|part| {
            let of_part = outcomes.get(first..first + part.spans).unwrap_or_default();
            first += part.spans;
            (
                encode::request(&part.resource_spans, &part.attributes),
                Outcome::sum(of_part),
            )
        })
        .collect()
}

impl Stage {
    /// Runs one request through the stage (the content policy on resources, scopes and links, then
    /// each scope's spans: [`Stage::run`]) and encodes it once, in parts under
    /// `forward_max` bytes when it is bigger: the bodies to send with their outcomes, and
    /// the job's room (held until they are sent or given up on). A retry sends the same bytes; while a slow
    /// or unreachable downstream is retried, only the encoded bodies are held, not the
    /// decoded spans.
    fn job(&self, mut job: Job, counters: &Counters) -> Staged {
        use std::sync::atomic::Ordering::Relaxed;
        // How the stage left each span, in the request's order.
        let mut outcomes = Vec::with_capacity(job.spans);
        let mut attributes: encode::Attributes = Vec::with_capacity(job.resource_spans.len());
        for rs in &mut job.resource_spans {
            if let Some(resource) = &mut rs.resource {
                let gone = crate::convert::police(&mut resource.attributes, &self.policy);
                resource.dropped_attributes_count =
                    resource.dropped_attributes_count.saturating_add(gone);
            }
            let mut of_resource = Vec::with_capacity(rs.scope_spans.len());
            for ss in &mut rs.scope_spans {
                // The instrumentation scope: its attributes as a span's, its name and
                // version redacted as a span's name is (they are the sender's to set, and
                // were forwarded as they came).
                if let Some(scope) = &mut ss.scope {
                    crate::convert::police_scope(scope, &self.policy);
                }
                for link in ss.spans.iter_mut().flat_map(|s| s.links.iter_mut()) {
                    let gone = crate::convert::police(&mut link.attributes, &self.policy);
                    link.dropped_attributes_count =
                        link.dropped_attributes_count.saturating_add(gone);
                }
                let (invalid, of_scope) = self.run(&mut ss.spans, counters, &mut outcomes);
                if invalid > 0 {
                    counters.dropped_invalid.fetch_add(invalid, Relaxed);
                }
                of_resource.push(of_scope);
            }
            attributes.push(of_resource);
        }
        let bodies = if outcomes.is_empty() {
            Vec::new()
        } else {
            bodies(
                std::mem::take(&mut job.resource_spans),
                attributes,
                &outcomes,
                self.forward_max,
                counters,
            )
        };
        // Only the encoded bodies are held from now on: the room of the decoded request
        // beyond them goes back to the queue (a request that grew as it was staged keeps
        // the room it was given).
        let mut held = job.held;
        held.shrink_to(bodies.iter().map(|(b, _)| b.len()).sum());
        Staged {
            bodies,
            hops: crate::hop::value(&job.via, &self.hop_id),
            held,
        }
    }

    /// Runs one scope's spans through the stage, in place: spans with invalid ids are left
    /// out (their number is returned); the others are priced, handed to the sinks, the
    /// quality monitor and the budgets, put back rewritten and their outcomes pushed to
    /// `outcomes`. Their attributes are returned, in order, for [`encode::request`].
    fn run(
        &self,
        spans: &mut Vec<opentelemetry_proto::tonic::trace::v1::Span>,
        counters: &Counters,
        outcomes: &mut Vec<Outcome>,
    ) -> (u64, Vec<Vec<opentelemetry::KeyValue>>) {
        use std::sync::atomic::Ordering::Relaxed;
        let before = spans.len();
        let mut data = Vec::with_capacity(before);
        let mut kept = Vec::with_capacity(before);
        spans.retain_mut(|s| match convert::take(s) {
            Some((d, k)) => {
                data.push(d);
                kept.push(k);
                true
            }
            None => false,
        });
        let invalid = (before - spans.len()) as u64;
        let mut calls = Vec::with_capacity(data.len());
        for span in &mut data {
            let moved = dialect::map(&mut span.attributes).moved_cost;
            // Priced once, here: a retry sends the same priced spans, and the sinks and
            // the budgets see the same call.
            let call = self.pricing.process_call(span, &self.policy);
            if moved && call.as_ref().and_then(|c| c.cost.as_ref()).is_none() {
                // Nothing replaces the instrumentation's own cost: it stays as it came.
                dialect::put_back_instrumentation_cost(&mut span.attributes);
            }
            if let Some(call) = &call {
                for sink in &self.sinks {
                    sink.on_call(call);
                }
            }
            calls.push(call);
        }
        if let Some(quality) = &self.quality {
            // After the calls of the same request went to the monitor, so that a result
            // sent with its call finds it.
            let read: u64 = data.iter().map(|s| evaluations::observe(quality, s)).sum();
            counters.evaluations.fetch_add(read, Relaxed);
        }
        if let Some(budgets) = &self.budgets {
            // Spend counts whether or not the downstream takes the spans.
            let recorded = data
                .iter()
                .zip(&calls)
                .filter_map(|(s, c)| Some((s, c.as_ref()?)))
                .filter(|(s, c)| account(budgets, &self.attributes, s, c))
                .count();
            counters.budgeted.fetch_add(recorded as u64, Relaxed);
        }
        let attributes = spans
            .iter_mut()
            .zip(data.into_iter().zip(kept))
            .zip(&calls)
            .map(|((s, (d, k)), c)| {
                outcomes.push(Outcome::of(&d, c.as_ref()));
                convert::restore(s, d, k)
            })
            .collect();
        (invalid, attributes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    fn queue() -> (Queue, mpsc::UnboundedReceiver<Job>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Queue {
            tx,
            counters: Arc::new(Counters::new(10, 1 << 20)),
            series: llmtel_metrics::PrometheusSink::builder().build(),
            max_request_bytes: 1 << 20,
            closing: Arc::default(),
            hop_id: "00000000000000aa".into(),
        };
        (queue, rx)
    }

    fn two_spans() -> ExportTraceServiceRequest {
        let span = |n: u8| Span {
            trace_id: vec![1; 16],
            span_id: vec![n; 8],
            name: format!("s{n}"),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1), span(2)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// A request of one span with `n` attributes of a few bytes each, and its encoded size.
    fn tiny_attributes(n: usize) -> (ExportTraceServiceRequest, usize) {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        let mut req = two_spans();
        let spans = &mut req.resource_spans[0].scope_spans[0].spans;
        spans.truncate(1);
        spans[0].attributes = (0..n)
            .map(|i| KeyValue {
                key: format!("{}", i % 10),
                value: Some(AnyValue {
                    value: Some(Value::IntValue(1)),
                }),
                ..Default::default()
            })
            .collect();
        let bytes = prost::Message::encoded_len(&req);
        (req, bytes)
    }

    #[test]
    fn the_queue_counts_the_decoded_size_of_small_attributes_not_only_their_wire_bytes() {
        use opentelemetry_proto::tonic::common::v1::KeyValue;
        let (req, wire) = tiny_attributes(100);
        assert!(wire < 100 * 10, "{wire}");
        let (queue, _rx) = queue();
        assert_eq!(
            queue.submit(req, wire, Vec::new()),
            Admit::Accepted { rejected: 0 }
        );
        let held = queue.counters.snapshot().queue_bytes as usize;
        assert!(
            held >= wire + 100 * std::mem::size_of::<KeyValue>(),
            "{held} for {wire} bytes on the wire"
        );
        // 64 KiB of queue: 2,000 attributes are ~14 KB on the wire, far more decoded. Such
        // a request is queued once the queue is empty, holding all of it until it is staged.
        let (req, wire) = tiny_attributes(2_000);
        assert!(wire < 32 * 1024, "{wire}");
        let (tx, _rx) = mpsc::unbounded_channel();
        let small = Queue {
            tx,
            counters: Arc::new(Counters::new(10, 64 * 1024)),
            ..queue
        };
        assert_eq!(
            small.submit(req, wire, Vec::new()),
            Admit::Accepted { rejected: 0 }
        );
        assert_eq!(small.counters.snapshot().queue_bytes, 64 * 1024);
        assert_eq!(small.submit(two_spans(), 100, Vec::new()), Admit::Full);
    }

    #[test]
    fn a_request_of_most_of_the_queue_that_does_not_fit_has_the_queue_kept_for_it() {
        let (queue, mut rx) = queue();
        let accepted = Admit::Accepted { rejected: 0 };
        let mut big = two_spans();
        let spans = &mut big.resource_spans[0].scope_spans[0].spans;
        *spans = (1..=9u8)
            .map(|n| Span {
                trace_id: vec![1; 16],
                span_id: vec![n; 8],
                ..Default::default()
            })
            .collect();
        assert_eq!(queue.submit(two_spans(), 100, Vec::new()), accepted);
        // 9 of 10 spans do not fit beside 2: the queue is kept for it...
        assert_eq!(queue.submit(big.clone(), 100, Vec::new()), Admit::Full);
        // ...so a small request that fits is told to retry.
        assert_eq!(queue.submit(two_spans(), 100, Vec::new()), Admit::Full);
        drop(rx.try_recv().unwrap());
        assert_eq!(queue.submit(big, 100, Vec::new()), accepted);
        drop(rx.try_recv().unwrap());
        // Admitted: the drain is over.
        assert_eq!(queue.submit(two_spans(), 100, Vec::new()), accepted);
        let s = queue.counters.snapshot();
        assert_eq!((s.refused_retryable, s.refused_retryable_spans), (2, 11));
        assert_eq!(s.dropped(), 0);
    }

    #[test]
    fn a_request_nothing_will_take_is_told_to_retry_and_holds_no_room() {
        let (queue, rx) = queue();
        drop(rx); // the stage stopped
        assert_eq!(queue.submit(two_spans(), 100, Vec::new()), Admit::Stopped);
        let s = queue.counters.snapshot();
        assert_eq!((s.queue_depth, s.queue_bytes, s.received), (0, 0, 0));
        assert_eq!(s.dropped_queue_full, 0, "told to retry: not a drop");
        assert_eq!((s.refused_retryable, s.refused_retryable_spans), (1, 2));
    }

    #[test]
    fn a_jobs_room_comes_back_when_it_is_dropped_however_that_happens() {
        let (queue, mut rx) = queue();
        assert_eq!(
            queue.submit(two_spans(), 100, Vec::new()),
            Admit::Accepted { rejected: 0 }
        );
        let s = queue.counters.snapshot();
        assert_eq!((s.queue_depth, s.received), (2, 2));
        assert!(s.queue_bytes > 100, "{s:?}");
        drop(rx.try_recv().unwrap());
        let s = queue.counters.snapshot();
        assert_eq!((s.queue_depth, s.queue_bytes), (0, 0));
    }
}
