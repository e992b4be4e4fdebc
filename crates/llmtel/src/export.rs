//! llmtel's export pipeline: [`GenAiExporter`] normalises GenAI spans and enforces the
//! content and secrets policy off the request path; [`ExportQueue`] is a bounded, batching
//! span processor on its own thread that counts every span it drops.

use std::borrow::Cow;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::sync::Arc;

use llmtel_pricing::Catalog;
use opentelemetry::trace::Status;
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::content::{self, ContentCapture};
use crate::enrich::{self, Pricer};
use crate::fields::SpanFields;
use crate::health::{COUNTERS, add, inc};
use crate::redact::redact;

/// Attributes that hold token counts and other integers in the GenAI conventions. Values
/// recorded as strings (tracing-opentelemetry exports `u64` fields as `"1234"`) are exported
/// as integers.
const INTEGER_KEYS: &[&str] = &[
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.request.max_tokens",
    "gen_ai.request.seed",
    "gen_ai.request.top_k",
    "gen_ai.request.choice.count",
    "server.port",
];

/// Attributes that carry prompt or response content, or free text that can quote it (an
/// evaluator's explanation, a user's feedback comment, a provider's error message).
const CONTENT_KEYS: &[&str] = &[
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "gen_ai.completion",
    "input.value",
    "output.value",
    "gen_ai.evaluation.explanation",
    "error.message",
];

/// Longest status description exported, in bytes (longer ones are cut with a marker).
const MAX_STATUS_BYTES: usize = 1024;

/// Whether an attribute carries content (see [`CONTENT_KEYS`]).
fn is_content_key(key: &str) -> bool {
    CONTENT_KEYS.contains(&key)
        || key.starts_with("llm.input_messages")
        || key.starts_with("llm.output_messages")
}

/// Applies the secrets and content rules to one attribute (of a span or an event): `false`
/// when it must be dropped. Every other string value goes through [`crate::redact()`].
fn police_attribute(kv: &mut KeyValue, policy: &ContentCapture) -> bool {
    let key = kv.key.as_str();
    if is_secret_key(key) {
        return false;
    }
    if is_content_key(key) {
        return match &kv.value {
            Value::String(s) => match policy.apply(s.as_str()) {
                Some(v) => {
                    kv.value = Value::String(v.into());
                    true
                }
                None => false,
            },
            Value::Array(Array::String(items)) => {
                let kept: Option<Vec<StringValue>> = items
                    .iter()
                    .map(|s| policy.apply(s.as_str()).map(StringValue::from))
                    .collect();
                match kept {
                    Some(v) => {
                        kv.value = Value::Array(Array::String(v));
                        true
                    }
                    None => false,
                }
            }
            _ => true,
        };
    }
    match &mut kv.value {
        Value::String(s) => {
            if let Cow::Owned(r) = redact(s.as_str()) {
                *s = StringValue::from(r);
            }
        }
        Value::Array(Array::String(items)) => {
            for s in items.iter_mut() {
                if let Cow::Owned(r) = redact(s.as_str()) {
                    *s = StringValue::from(r);
                }
            }
        }
        _ => {}
    }
    true
}

/// Redacts a span or event name in place.
fn redact_name(name: &mut Cow<'static, str>) {
    if let Cow::Owned(r) = redact(name) {
        *name = Cow::Owned(r);
    }
}

/// Redacts and caps the status description (it often carries an error's `Display`, which
/// can hold a URL with its key).
fn police_status(status: &mut Status) {
    if let Status::Error { description } = status {
        let redacted = redact(description);
        if redacted.len() <= MAX_STATUS_BYTES {
            if let Cow::Owned(r) = redacted {
                *description = Cow::Owned(r);
            }
            return;
        }
        let mut cut = MAX_STATUS_BYTES;
        while !redacted.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = redacted.len() - cut;
        *description = Cow::Owned(format!("{}…[truncated {dropped} bytes]", &redacted[..cut]));
    }
}

/// Whether an attribute name can carry a credential; such attributes are never exported.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let header = k
        .strip_prefix("http.request.header.")
        .or_else(|| k.strip_prefix("http.response.header."));
    if let Some(h) = header {
        return matches!(
            h,
            "authorization"
                | "proxy-authorization"
                | "x-api-key"
                | "api-key"
                | "x-goog-api-key"
                | "cookie"
                | "set-cookie"
                | "openai-organization"
        );
    }
    k.ends_with("api_key")
        || k.ends_with("api-key")
        || k.ends_with("apikey")
        || k.ends_with("authorization")
        || k.ends_with("secret_key")
        || k.ends_with("password")
}

/// Applies llmtel's export rules to one span, without pricing (see [`GenAiExporter`] for
/// the whole treatment).
///
/// - Every span: credential-bearing attributes are removed; content attributes (prompts,
///   responses, `gen_ai.evaluation.explanation`, `error.message`) are removed when content
///   capture is off, else redacted and truncated; every other string (the span name, the
///   status description, attribute values, event names and event attributes) goes through
///   [`crate::redact()`], and the status description is capped at 1 KiB.
/// - Spans with `gen_ai.*` attributes: integer attributes recorded as strings become integers,
///   a JSON-array finish-reasons string becomes a string array, and a key set twice keeps
///   its last value.
///
/// Returns whether the span has `gen_ai.*` attributes.
pub fn normalize_span(span: &mut SpanData, policy: &ContentCapture) -> bool {
    let is_gen_ai = span
        .attributes
        .iter()
        .any(|kv| llmtel_semconv::is_gen_ai_field(kv.key.as_str()));
    let mut dropped = 0u32;
    redact_name(&mut span.name);
    police_status(&mut span.status);
    for event in span.events.events.iter_mut() {
        redact_name(&mut event.name);
        let before = event.attributes.len();
        event
            .attributes
            .retain_mut(|kv| police_attribute(kv, policy));
        let gone = (before - event.attributes.len()) as u32;
        event.dropped_attributes_count = event.dropped_attributes_count.saturating_add(gone);
    }
    span.attributes.retain_mut(|kv| {
        if !police_attribute(kv, policy) {
            dropped += 1;
            return false;
        }
        let key = kv.key.as_str();
        if is_gen_ai {
            // Known integer keys, and every `gen_ai.usage.*` count whoever recorded it (rig's
            // `gen_ai.usage.reasoning_tokens` is a `u64`, which tracing-opentelemetry exports
            // as a string).
            if INTEGER_KEYS.contains(&key)
                || key.starts_with("gen_ai.usage.")
                || key.starts_with("llmtel.usage.")
            {
                if let Value::String(s) = &kv.value {
                    if let Ok(v) = s.as_str().trim().parse::<i64>() {
                        kv.value = Value::I64(v);
                    }
                }
            } else if key == "gen_ai.response.finish_reasons" {
                if let Value::String(s) = &kv.value {
                    let reasons = crate::fields::split_finish_reasons(s.as_str());
                    kv.value = Value::Array(Array::String(
                        reasons.into_iter().map(StringValue::from).collect(),
                    ));
                }
            }
        }
        true
    });
    if is_gen_ai {
        dedup_keep_last(&mut span.attributes);
    }
    span.dropped_attributes_count = span.dropped_attributes_count.saturating_add(dropped);
    is_gen_ai
}

fn dedup_keep_last(attrs: &mut Vec<KeyValue>) {
    let n = attrs.len();
    let mut keep = vec![true; n];
    let mut any = false;
    for i in 0..n {
        if attrs[i + 1..].iter().any(|later| later.key == attrs[i].key) {
            keep[i] = false;
            any = true;
        }
    }
    if any {
        let mut i = 0;
        attrs.retain(|_| {
            let k = keep[i];
            i += 1;
            k
        });
    }
}

/// llmtel's exporter stage: it prices every LLM-call span and writes the cost on it, then
/// hands the batch to the exporter it wraps. It runs on the export thread, never on the
/// request path, and it prices any span with `gen_ai.*` attributes, whoever created it and
/// whatever layers the subscriber has.
///
/// Per span: [`normalize_span`] (integer token counts, content policy, no credentials);
/// then, for a model call, the cost attributes (`gen_ai.usage.cost`, `llmtel.cost.*`,
/// `llmtel.pricing.*`, or `llmtel.cost.unknown_model`), the OpenInference aliases when
/// asked for, and the error status when `error.type` is set and the status is not.
///
/// [`crate::init`] installs it; wrap your own exporter in it when you build your own
/// pipeline:
///
/// ```
/// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
/// let exporter = llmtel::GenAiExporter::new(InMemorySpanExporter::default());
/// let provider = SdkTracerProvider::builder().with_simple_exporter(exporter).build();
/// # drop(provider);
/// ```
#[derive(Debug)]
pub struct GenAiExporter<E> {
    inner: E,
    policy: Option<ContentCapture>,
    pricer: Pricer,
    openinference: bool,
}

impl<E: SpanExporter> GenAiExporter<E> {
    /// Wraps `inner`: prices with the built-in catalog and applies the process-wide content
    /// policy at each export.
    pub fn new(inner: E) -> Self {
        GenAiExporter {
            inner,
            policy: None,
            pricer: Pricer::new(Arc::new(Catalog::builtin().clone()), true),
            openinference: false,
        }
    }

    /// Uses `policy` instead of the process-wide one.
    pub fn with_content_capture(mut self, policy: ContentCapture) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Prices with `catalog` (for example the built-in one merged with a user price file).
    pub fn with_catalog(mut self, catalog: impl Into<Arc<Catalog>>) -> Self {
        self.pricer = self.pricer.with_catalog(catalog.into());
        self
    }

    /// Also writes the OpenInference names Arize Phoenix reads (`llm.model_name`,
    /// `llm.token_count.*`, `llm.cost.*`, `openinference.span.kind`). Off by default.
    pub fn with_openinference(mut self, on: bool) -> Self {
        self.openinference = on;
        self
    }

    /// Normalises and, for an LLM call, prices one span.
    pub fn process(&self, span: &mut SpanData, policy: &ContentCapture) {
        if !normalize_span(span, policy) {
            return;
        }
        let f = SpanFields::from_attributes(&span.attributes);
        if !f.is_model_call() {
            return;
        }
        let priced = self.pricer.price(&f, span.start_time);
        let extra = enrich::attributes(&f, &priced, self.openinference);
        replace_attributes(&mut span.attributes, extra);
        if span.status == Status::Unset {
            if let Some(err) = &f.error_type {
                span.status = Status::error(err.clone());
            } else if f.status_error {
                span.status = Status::error("");
            }
        }
    }
}

/// Adds `extra` to `attributes`: a key the span already has (e.g. an OpenInference alias
/// recorded by the app, or one a layer set twice) is replaced, not doubled.
/// The later of two equal keys in `extra` wins too.
pub(crate) fn replace_attributes(attributes: &mut Vec<KeyValue>, extra: Vec<KeyValue>) {
    for kv in extra {
        attributes.retain(|a| a.key != kv.key);
        attributes.push(kv);
    }
}

impl<E: SpanExporter> SpanExporter for GenAiExporter<E> {
    fn export(
        &self,
        mut batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let policy = self.policy.clone().unwrap_or_else(content::content_capture);
        if crate::late::wanted() {
            crate::late::merge_into(&mut batch);
        }
        for span in &mut batch {
            self.process(span, &policy);
        }
        self.inner.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Settings of the [`ExportQueue`].
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// Spans held at most; past it new spans are dropped and counted. Default 8192
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// Spans per export call. Default 512 (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_export_batch_size: usize,
    /// Longest wait before a partial batch is exported. Default 2 s (`OTEL_BSP_SCHEDULE_DELAY`).
    pub scheduled_delay: Duration,
    /// Longest wait for a flush or shutdown to finish. Default 10 s.
    pub flush_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_queue_size: 8192,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(2),
            flush_timeout: Duration::from_secs(10),
        }
    }
}

impl QueueConfig {
    /// Defaults overridden by the standard `OTEL_BSP_*` variables where set and valid.
    pub fn from_env() -> Self {
        let mut c = QueueConfig::default();
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(v) = num("OTEL_BSP_MAX_QUEUE_SIZE").filter(|v| *v > 0) {
            c.max_queue_size = v as usize;
        }
        if let Some(v) = num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").filter(|v| *v > 0) {
            c.max_export_batch_size = v as usize;
        }
        if let Some(v) = num("OTEL_BSP_SCHEDULE_DELAY") {
            c.scheduled_delay = Duration::from_millis(v);
        }
        c.max_export_batch_size = c.max_export_batch_size.min(c.max_queue_size);
        c
    }
}

/// Control messages; spans travel on their own channel, which the worker never waits on.
enum Control {
    Resource(Box<Resource>),
    /// A full batch is waiting.
    ExportNow,
    Flush(SyncSender<OTelSdkResult>),
    Shutdown(SyncSender<OTelSdkResult>),
}

/// A batching [`SpanProcessor`] with a bounded queue and its own export thread.
///
/// `on_end` never blocks: a full queue drops the span and counts it
/// ([`crate::Health::spans_dropped`]). Spans go into a bounded channel that the export thread
/// does not wait on (so ending a span does not wake it); the thread wakes when a batch is
/// full, at the scheduled delay, or for a flush or shutdown. It owns a single-threaded tokio
/// runtime, so gRPC and HTTP exporters work whether or not the application runs tokio;
/// exporters are built on that thread by the closure given to [`ExportQueue::spawn`].
pub struct ExportQueue {
    spans: SyncSender<SpanData>,
    control: SyncSender<Control>,
    shared: Arc<Shared>,
    worker: Mutex<Lifecycle>,
    flush_timeout: Duration,
}

/// Where the export thread is in its life. A shutdown that times out keeps the thread's
/// handle and the answer it will send, so a later call waits for that answer instead of
/// claiming a success it never saw.
enum Lifecycle {
    Running(JoinHandle<()>),
    Stopping {
        worker: JoinHandle<()>,
        ack: Receiver<OTelSdkResult>,
    },
    /// Shut down; whether that shutdown exported everything.
    Stopped {
        ok: bool,
    },
}

/// State shared by the producers and the export thread.
#[derive(Debug)]
struct Shared {
    /// Spans sent since the worker last drained the channel.
    pending: AtomicUsize,
    /// Whether an `ExportNow` is already on its way.
    export_requested: AtomicBool,
    batch: usize,
}

impl fmt::Debug for ExportQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportQueue").finish_non_exhaustive()
    }
}

/// Why the export thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The OS would not start a thread.
    #[error("llmtel could not start its export thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The exporter could not be built.
    #[error("llmtel could not build the span exporter: {0}")]
    Exporter(String),
}

impl ExportQueue {
    /// Starts the export thread; `make_exporter` runs on it (inside its tokio runtime).
    ///
    /// # Errors
    /// [`QueueError`] when the thread or runtime cannot start or the exporter cannot be built.
    pub fn spawn<E, F, Err>(make_exporter: F, config: QueueConfig) -> Result<Self, QueueError>
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Result<E, Err> + Send + 'static,
        Err: fmt::Display,
    {
        let (span_tx, span_rx) = mpsc::sync_channel::<SpanData>(config.max_queue_size.max(1));
        let (control_tx, control_rx) = mpsc::sync_channel::<Control>(64);
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), String>>(1);
        let shared = Arc::new(Shared {
            pending: AtomicUsize::new(0),
            export_requested: AtomicBool::new(false),
            batch: config.max_export_batch_size.max(1),
        });
        let cfg = config.clone();
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("llmtel-export".into())
            .spawn(move || {
                // The exporter's own I/O (tonic, hyper, reqwest) must not be traced back into
                // the pipeline: nothing on this thread reaches the app's subscriber.
                let _no_tracing =
                    tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                        return;
                    }
                };
                let exporter = {
                    let _guard = rt.enter();
                    match make_exporter() {
                        Ok(e) => e,
                        Err(e) => {
                            // The exporter's error can name the endpoint with its key.
                            let msg = crate::redact::redact_string(e.to_string());
                            let _ = ready_tx.send(Err(msg));
                            return;
                        }
                    }
                };
                let _ = ready_tx.send(Ok(()));
                Worker {
                    rt: &rt,
                    exporter,
                    spans: span_rx,
                    shared: worker_shared,
                    cfg,
                }
                .run(control_rx);
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(ExportQueue {
                spans: span_tx,
                control: control_tx,
                shared,
                worker: Mutex::new(Lifecycle::Running(worker)),
                flush_timeout: config.flush_timeout,
            }),
            Ok(Err(e)) => Err(QueueError::Exporter(e)),
            Err(_) => Err(QueueError::Exporter("the export thread stopped".into())),
        }
    }

    fn control(
        &self,
        make: impl FnOnce(SyncSender<OTelSdkResult>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        let ack_rx = self.send_control(make, timeout, deadline)?;
        match ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(OTelSdkError::AlreadyShutdown),
        }
    }

    /// Sends a control message, retrying while the channel is full until `deadline`; returns
    /// the receiver of its answer.
    fn send_control(
        &self,
        make: impl FnOnce(SyncSender<OTelSdkResult>) -> Control,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<Receiver<OTelSdkResult>, OTelSdkError> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let mut msg = make(ack_tx);
        loop {
            match self.control.try_send(msg) {
                Ok(()) => return Ok(ack_rx),
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return Err(OTelSdkError::Timeout(timeout));
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(TrySendError::Disconnected(_)) => return Err(OTelSdkError::AlreadyShutdown),
            }
        }
    }
}

struct Worker<'rt, E> {
    rt: &'rt tokio::runtime::Runtime,
    exporter: E,
    spans: Receiver<SpanData>,
    shared: Arc<Shared>,
    cfg: QueueConfig,
}

impl<E: SpanExporter> Worker<'_, E> {
    fn run(mut self, control: Receiver<Control>) {
        let mut next_export = Instant::now() + self.cfg.scheduled_delay;
        loop {
            let wait = next_export.saturating_duration_since(Instant::now());
            match control.recv_timeout(wait) {
                Ok(Control::Resource(r)) => self.exporter.set_resource(&r),
                Ok(Control::ExportNow) => {
                    self.shared.export_requested.store(false, Ordering::Release);
                    let _ = self.drain_and_export();
                    next_export = Instant::now() + self.cfg.scheduled_delay;
                }
                Ok(Control::Flush(ack)) => {
                    let r = self
                        .drain_and_export()
                        .and_then(|()| self.exporter.force_flush());
                    let _ = ack.send(r);
                }
                Ok(Control::Shutdown(ack)) => {
                    let r = self.drain_and_export();
                    let s = self.exporter.shutdown_with_timeout(self.cfg.flush_timeout);
                    let _ = ack.send(r.and(s));
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.drain_and_export();
                    next_export = Instant::now() + self.cfg.scheduled_delay;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.drain_and_export();
                    let _ = self.exporter.shutdown_with_timeout(self.cfg.flush_timeout);
                    return;
                }
            }
        }
    }

    /// Exports everything queued so far, in batches.
    fn drain_and_export(&mut self) -> OTelSdkResult {
        let mut result = Ok(());
        loop {
            let mut batch = Vec::with_capacity(self.cfg.max_export_batch_size);
            while batch.len() < self.cfg.max_export_batch_size {
                match self.spans.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return result;
            }
            self.shared.pending.fetch_sub(batch.len(), Ordering::AcqRel);
            let full = batch.len() == self.cfg.max_export_batch_size;
            result = result.and(self.export(batch));
            if !full {
                return result;
            }
        }
    }

    fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let r = self.rt.block_on(self.exporter.export(batch));
        match &r {
            Ok(()) => add(&COUNTERS.spans_exported, n),
            Err(_) => {
                inc(&COUNTERS.export_errors);
                add(&COUNTERS.spans_export_failed, n);
            }
        }
        r
    }
}

impl SpanProcessor for ExportQueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.spans.try_send(span) {
            Ok(()) => {
                inc(&COUNTERS.spans_queued);
                let pending = self.shared.pending.fetch_add(1, Ordering::AcqRel) + 1;
                // Wake the worker once per full batch, not once per span.
                if pending >= self.shared.batch
                    && !self.shared.export_requested.swap(true, Ordering::AcqRel)
                    && self.control.try_send(Control::ExportNow).is_err()
                {
                    self.shared.export_requested.store(false, Ordering::Release);
                }
            }
            Err(_) => inc(&COUNTERS.spans_dropped),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.control(Control::Flush, self.flush_timeout)
    }

    /// Exports what is queued and shuts the exporter down, waiting at most `timeout`.
    ///
    /// A shutdown that times out says so ([`OTelSdkError::Timeout`]) and keeps waiting in the
    /// background; a later call waits again for the same answer (it never reports a success
    /// it did not see). Once shut down, further calls return the first shutdown's outcome.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        let mut state = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        let (worker, ack) = match std::mem::replace(&mut *state, Lifecycle::Stopped { ok: false }) {
            Lifecycle::Stopped { ok } => {
                *state = Lifecycle::Stopped { ok };
                return if ok {
                    Ok(())
                } else {
                    Err(OTelSdkError::InternalFailure(
                        "an earlier shutdown of llmtel's export queue failed".into(),
                    ))
                };
            }
            Lifecycle::Running(worker) => {
                match self.send_control(Control::Shutdown, timeout, deadline) {
                    Ok(ack) => (worker, ack),
                    Err(OTelSdkError::Timeout(t)) => {
                        *state = Lifecycle::Running(worker);
                        return Err(OTelSdkError::Timeout(t));
                    }
                    Err(e) => {
                        let _ = worker.join();
                        return Err(e);
                    }
                }
            }
            Lifecycle::Stopping { worker, ack } => (worker, ack),
        };
        match ack.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(r) => {
                let _ = worker.join();
                *state = Lifecycle::Stopped { ok: r.is_ok() };
                r
            }
            Err(RecvTimeoutError::Timeout) => {
                *state = Lifecycle::Stopping { worker, ack };
                Err(OTelSdkError::Timeout(timeout))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = worker.join();
                Err(OTelSdkError::InternalFailure(
                    "llmtel's export thread stopped before it finished".into(),
                ))
            }
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once when the provider is built, before any span: the exporter lives on the
        // export thread, so the resource travels to it as a control message.
        let _ = self
            .control
            .send(Control::Resource(Box::new(resource.clone())));
    }
}
