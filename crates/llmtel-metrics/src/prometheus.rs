//! Prometheus/OpenMetrics exposition of LLM calls (feature `prometheus`).

use std::collections::HashSet;
use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use llmtel::{CallSink, LlmCall, Usd};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, text};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::exemplar::{CounterWithExemplar, HistogramWithExemplars};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::CardinalityGuard;
use crate::listener::{Limits, ListenerStats, REFUSED_RESPONSE};
use crate::names::PROMETHEUS_LATENCY_BUCKETS;
use crate::{Dimension, MetricsError, UNKNOWN_VALUE};
use llmtel::metrics::{LabelCache, OVERFLOW_VALUE};

/// Content type of the OpenMetrics text format (with exemplars).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format (no exemplars).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Environment variable of the built-in listener's address.
pub const ADDR_ENV: &str = "LLMTEL_METRICS_ADDR";
/// Default address of the built-in listener.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

type Labels = Vec<(&'static str, String)>;

/// The most series a family of [`PrometheusSink`] holds: `llm_requests_total` and
/// `llm_tokens_total` have two per label set (`status`, `type`), so at most
/// [`MAX_LABEL_SETS`] label sets (`model` and the dimensions) are kept, plus the overflow set.
/// Each label's values are capped by the [`CardinalityGuard`], but not their combinations
/// (model x user x session ...).
pub const MAX_SERIES_PER_FAMILY: usize = 2000;

/// The most label sets (`model` and the dimensions) kept before new ones are folded into the
/// overflow set (every label [`OVERFLOW_VALUE`]): with it, [`MAX_SERIES_PER_FAMILY`] series
/// in the families with two series per set.
pub const MAX_LABEL_SETS: usize = MAX_SERIES_PER_FAMILY / 2 - 1;
/// An exemplar's label set: its `trace_id`, on the stack (each call's observations take a
/// copy of it, with no allocation).
type TraceLabels = [(&'static str, TraceIdHex); 1];

/// A trace id's 32 hex digits, as an exemplar's label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TraceIdHex([u8; 32]);

impl prometheus_client::encoding::EncodeLabelValue for TraceIdHex {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
    ) -> Result<(), fmt::Error> {
        use fmt::Write as _;
        // (ASCII hex digits: always UTF-8.)
        encoder.write_str(std::str::from_utf8(&self.0).unwrap_or_default())
    }
}
type LatencyHistogram = HistogramWithExemplars<TraceLabels>;

fn latency_histogram() -> LatencyHistogram {
    HistogramWithExemplars::new(PROMETHEUS_LATENCY_BUCKETS.into_iter())
}

/// A counter of USD summed exactly in pico-dollars, exported as `f64`, with an exemplar (the
/// last observation and its trace id).
#[derive(Clone, Debug, Default)]
struct ExactUsdCounter {
    // Shared by clones, as prometheus-client's own metrics are.
    picos: Arc<Mutex<u128>>,
    // Holds the exemplar only (prometheus-client's exemplar type cannot be built outside it).
    exemplar: CounterWithExemplar<TraceLabels, f64, std::sync::atomic::AtomicU64>,
}

impl ExactUsdCounter {
    fn add(&self, usd: Usd, trace: Option<TraceLabels>) {
        {
            let mut p = self.picos.lock().unwrap_or_else(|e| e.into_inner());
            *p = p.saturating_add(usd.picos());
        }
        if trace.is_some() {
            self.exemplar.inc_by(usd.as_f64(), trace, None);
        }
    }
    fn total(&self) -> Usd {
        Usd::from_picos(*self.picos.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl TypedMetric for ExactUsdCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ExactUsdCounter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        let total = self.total().as_f64();
        let (_, exemplar) = self.exemplar.get();
        encoder.encode_counter(&total, exemplar.as_ref())
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// llmtel's health counters, read from [`llmtel::health()`] at scrape time, and the guard's
/// overflow counter.
/// The built-in listeners of a sink and their counters, by address.
type Listeners = Arc<Mutex<Vec<(String, Limits)>>>;

#[derive(Debug)]
struct HealthCollector {
    guard: Arc<CardinalityGuard>,
    /// Calls folded into the overflow label set ([`MAX_LABEL_SETS`] reached).
    series_overflows: Arc<AtomicU64>,
    health: bool,
    listeners: Listeners,
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        if self.health {
            let h = llmtel::health();
            for (name, help, v) in h.counters() {
                let c = ConstCounter::new(v);
                let name = format!("llmtel_{name}");
                let me = encoder.encode_descriptor(&name, help, None, c.metric_type())?;
                c.encode(me)?;
            }
        }
        let mut me = encoder.encode_descriptor(
            "llmtel_metrics_label_overflow",
            "Label values replaced by __overflow__ because the label reached its cap of distinct values; label=\"series\": calls whose whole label set became __overflow__ because the series reached their cap",
            None,
            MetricType::Counter,
        )?;
        let mut overflows = self.guard.overflows();
        let series = self.series_overflows.load(Ordering::Relaxed);
        if series > 0 {
            overflows.push(("series", series));
            overflows.sort_unstable();
        }
        for (label, n) in overflows {
            let ls = [("label", label)];
            let fe = me.encode_family(&ls)?;
            ConstCounter::new(n).encode(fe)?;
        }
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !listeners.is_empty() {
            let mut me = encoder.encode_descriptor(
                "llmtel_metrics_listener_connections",
                "Connections of the built-in metrics listener by outcome: accepted, refused (over the connection limit), timed_out (slow head or idle), too_large (head or body)",
                None,
                MetricType::Counter,
            )?;
            for (addr, limits) in &listeners {
                let st = limits.stats();
                for (outcome, n) in [
                    ("accepted", st.accepted),
                    ("refused", st.refused),
                    ("timed_out", st.timed_out),
                    ("too_large", st.too_large),
                ] {
                    let ls = [("listener", addr.as_str()), ("outcome", outcome)];
                    let fe = me.encode_family(&ls)?;
                    ConstCounter::new(n).encode(fe)?;
                }
            }
        }
        Ok(())
    }
}

struct Inner {
    registry: RwLock<Registry>,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, LatencyHistogram, fn() -> LatencyHistogram>,
    tokens: Family<Labels, Counter>,
    cost: Family<Labels, ExactUsdCounter>,
    guard: Arc<CardinalityGuard>,
    dims: Vec<Dimension>,
    listeners: Listeners,
    /// The series of each value combination seen, so a call like an earlier one goes
    /// straight to its handles.
    series: LabelCache<Series>,
    /// The label sets kept, at most [`MAX_LABEL_SETS`] (the overflow set is not counted).
    label_sets: Mutex<HashSet<Labels>>,
    /// Calls recorded into the overflow label set because `label_sets` was full.
    series_overflows: Arc<AtomicU64>,
}

/// The handles of the series one value combination (model, status, dimensions) records
/// into. prometheus-client's metrics share their state with their clones.
struct Series {
    /// `model` and the dimensions' labels, guarded (every one `__overflow__` when the label
    /// set was folded).
    labels: Labels,
    /// Whether the call's own label set was folded into the overflow set (counted per call).
    folded: bool,
    latency: LatencyHistogram,
    requests: Counter,
    /// Created by the first priced call (an unpriced model gets no cost series).
    cost: OnceLock<ExactUsdCounter>,
    /// Input and output, created by the first call with usage.
    tokens: OnceLock<(Counter, Counter)>,
}

impl Inner {
    /// `labels` if its set is kept (or there is room to keep it), else the overflow set
    /// (every value `__overflow__`) and `true`.
    fn admit_label_set(&self, labels: Labels) -> (Labels, bool) {
        // The overflow set is always there to record into; it takes no room.
        if labels.iter().all(|(_, v)| v == OVERFLOW_VALUE) {
            return (labels, false);
        }
        let mut sets = self.label_sets.lock().unwrap_or_else(|e| e.into_inner());
        if sets.contains(&labels) {
            return (labels, false);
        }
        if sets.len() < MAX_LABEL_SETS {
            sets.insert(labels.clone());
            return (labels, false);
        }
        let folded = labels
            .iter()
            .map(|(k, _)| (*k, OVERFLOW_VALUE.to_owned()))
            .collect();
        (folded, true)
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusSink")
            .field("dims", &self.dims)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

/// A [`CallSink`] keeping the classic LLM series for Prometheus, in OpenMetrics with
/// exemplars:
///
/// | series | labels | notes |
/// |---|---|---|
/// | `llm_requests_total` | `model`, `status` (`ok`/`error`) | every call |
/// | `llm_latency_seconds` | `model` | histogram, buckets 0.1, 0.5, 1, 2, 5, 10, 30; exemplar `trace_id` |
/// | `llm_tokens_total` | `model`, `type` (`input`/`output`) | input includes cached input |
/// | `llm_cost_usd_total` | `model` | exact pico-dollar sum; exemplar `trace_id` |
/// | `llmtel_*_total` | | llmtel's health counters, read at scrape time |
/// | `llmtel_metrics_label_overflow_total` | `label` | values replaced by `__overflow__`; `label="series"`: calls folded into the overflow label set |
///
/// The [`Dimension`]s asked for are added as labels to `llm_requests_total`,
/// `llm_tokens_total` and `llm_cost_usd_total` (not to the histogram). `model` is the response
/// model, else the request model, else `unknown`. Every label value passes the
/// [`CardinalityGuard`], and their combinations are capped too: past [`MAX_LABEL_SETS`]
/// label sets, a call with a new one is recorded under the overflow set (every label
/// `__overflow__`, counted in `llmtel_metrics_label_overflow_total{label="series"}`), so no
/// family holds more than [`MAX_SERIES_PER_FAMILY`] series and the totals stay whole.
///
/// Other parts of the app register their own series next to these ([`PrometheusSink::register`],
/// [`PrometheusSink::register_collector`]), e.g. budget utilization or quality scores.
///
/// Cloning is cheap: clones share the same series.
#[derive(Clone, Debug)]
pub struct PrometheusSink {
    inner: Arc<Inner>,
}

/// Builds a [`PrometheusSink`].
#[derive(Debug)]
pub struct PrometheusSinkBuilder {
    dims: Vec<Dimension>,
    guard: Option<Arc<CardinalityGuard>>,
    health: bool,
}

impl Default for PrometheusSinkBuilder {
    fn default() -> Self {
        PrometheusSinkBuilder {
            dims: Vec::new(),
            guard: None,
            health: true,
        }
    }
}

impl PrometheusSinkBuilder {
    /// Adds a dimension as a label of the counters (none by default).
    pub fn with_dimension(mut self, d: Dimension) -> Self {
        if !self.dims.contains(&d) {
            self.dims.push(d);
        }
        self
    }
    /// The cardinality guard (default: 100 distinct values per label).
    pub fn with_guard(mut self, guard: Arc<CardinalityGuard>) -> Self {
        self.guard = Some(guard);
        self
    }
    /// Whether llmtel's health counters are exposed (default: yes).
    pub fn with_health(mut self, on: bool) -> Self {
        self.health = on;
        self
    }
    /// Creates the series and their registry.
    pub fn build(self) -> PrometheusSink {
        let guard = self.guard.unwrap_or_default();
        let requests = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, LatencyHistogram, fn() -> LatencyHistogram>::new_with_constructor(
                latency_histogram as fn() -> LatencyHistogram,
            );
        let tokens = Family::<Labels, Counter>::default();
        let cost = Family::<Labels, ExactUsdCounter>::default();
        let mut registry = Registry::default();
        registry.register(
            "llm_requests",
            "LLM calls by model and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "llm_latency",
            "LLM call latency by model",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register("llm_tokens", "LLM tokens by model and type", tokens.clone());
        registry.register("llm_cost_usd", "LLM spend in USD by model", cost.clone());
        let listeners = Listeners::default();
        let series_overflows = Arc::new(AtomicU64::new(0));
        registry.register_collector(Box::new(HealthCollector {
            guard: guard.clone(),
            series_overflows: series_overflows.clone(),
            health: self.health,
            listeners: listeners.clone(),
        }));
        PrometheusSink {
            inner: Arc::new(Inner {
                registry: RwLock::new(registry),
                requests,
                latency,
                tokens,
                cost,
                guard,
                dims: self.dims,
                series: LabelCache::default(),
                label_sets: Mutex::new(HashSet::new()),
                series_overflows,
                listeners,
            }),
        }
    }
}

impl Default for PrometheusSink {
    fn default() -> Self {
        PrometheusSink::builder().build()
    }
}

impl PrometheusSink {
    /// A builder.
    pub fn builder() -> PrometheusSinkBuilder {
        PrometheusSinkBuilder::default()
    }

    /// The guard its label values pass.
    pub fn guard(&self) -> &Arc<CardinalityGuard> {
        &self.inner.guard
    }

    /// Registers another series (e.g. a budget utilization gauge) on the same endpoint.
    ///
    /// ```
    /// use prometheus_client::metrics::gauge::Gauge;
    /// let sink = llmtel_metrics::PrometheusSink::default();
    /// let g: Gauge = Gauge::default();
    /// sink.register("llm_budget_utilization_ratio", "Share of the budget spent", g.clone());
    /// g.set(1);
    /// assert!(sink.encode_openmetrics().contains("llm_budget_utilization_ratio 1"));
    /// ```
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        let mut r = self
            .inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner());
        r.register(name, help, metric);
    }

    /// Registers another series with a unit.
    pub fn register_with_unit(&self, name: &str, help: &str, unit: Unit, metric: impl Metric) {
        let mut r = self
            .inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner());
        r.register_with_unit(name, help, unit, metric);
    }

    /// Registers a collector read at every scrape (e.g. health counters of another crate).
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        let mut r = self
            .inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner());
        r.register_collector(collector);
    }

    /// All series in the OpenMetrics text format (with exemplars).
    pub fn encode_openmetrics(&self) -> String {
        self.encode_with(text::encode)
    }

    /// All series in the classic Prometheus text format (no exemplars).
    pub fn encode_text(&self) -> String {
        self.encode_with(prometheus_client::encoding::prometheus_text::encode)
    }

    fn encode_with(
        &self,
        encode: fn(&mut String, &Registry) -> Result<(), std::fmt::Error>,
    ) -> String {
        let r = self
            .inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail; an encoder error would leave a partial body.
        let _ = encode(&mut out, &r);
        out
    }

    /// The body and content type for a scrape with this `Accept` header: OpenMetrics when the
    /// scraper asks for it (Prometheus does), else the classic text format.
    pub fn encode_for(&self, accept: Option<&str>) -> (String, &'static str) {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            (self.encode_openmetrics(), OPENMETRICS_CONTENT_TYPE)
        } else {
            (self.encode_text(), TEXT_CONTENT_TYPE)
        }
    }

    /// Serves `GET /metrics` on `addr` from threads of its own (no async runtime needed),
    /// within the default [`Limits`]: connections are served concurrently (a slow client never
    /// delays a scrape), at most 64 at a time, a request head must arrive within 5 s, an idle
    /// kept-alive connection is closed after 30 s.
    ///
    /// # Errors
    /// [`MetricsError::Addr`] or [`MetricsError::Bind`].
    pub fn serve(&self, addr: &str) -> Result<MetricsServer, MetricsError> {
        self.serve_with_limits(addr, Limits::default())
    }

    /// As [`PrometheusSink::serve`], within `limits`; [`MetricsServer::stats`] counts what
    /// was accepted and refused, and so does the series
    /// `llmtel_metrics_listener_connections_total{listener, outcome}` of this sink.
    ///
    /// # Errors
    /// [`MetricsError::Addr`] or [`MetricsError::Bind`].
    pub fn serve_with_limits(
        &self,
        addr: &str,
        limits: Limits,
    ) -> Result<MetricsServer, MetricsError> {
        let sa: SocketAddr = addr
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| MetricsError::Addr(addr.to_owned()))?;
        let bind_err = |source| MetricsError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = TcpListener::bind(sa).map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let sink = self.clone();
        let stop2 = stop.clone();
        let l = limits.clone();
        {
            let mut listeners = self
                .inner
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // One series per address: a stopped listener's entry goes with its server.
            let key = local.to_string();
            listeners.retain(|(a, _)| *a != key);
            listeners.push((key, limits.clone()));
        }
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("llmtel-metrics".into())
            .spawn(move || {
                // Dropped when the loop ends: tells `MetricsServer::drop` it can join.
                let _done = done_tx;
                for conn in listener.incoming() {
                    if stop2.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = conn else {
                        // Out of descriptors or similar: do not spin.
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    let Some(slot) = l.counters().try_admit(l.max_connections()) else {
                        refuse(stream);
                        continue;
                    };
                    let (sink, l) = (sink.clone(), l.clone());
                    // A failed spawn drops the closure, hence the slot and the stream.
                    let _ = std::thread::Builder::new()
                        .name("llmtel-metrics-conn".into())
                        .spawn(move || {
                            serve_connection(&sink, stream, &l);
                            drop(slot);
                        });
                }
            })
            .map_err(bind_err)?;
        Ok(MetricsServer {
            addr: local,
            stop,
            limits,
            thread: Some(thread),
            done: Mutex::new(done),
            listeners: self.inner.listeners.clone(),
        })
    }

    /// Serves on `LLMTEL_METRICS_ADDR`, default `127.0.0.1:9464`.
    ///
    /// # Errors
    /// As [`PrometheusSink::serve`].
    pub fn serve_from_env(&self) -> Result<MetricsServer, MetricsError> {
        let addr = std::env::var(ADDR_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        self.serve(addr.trim())
    }

    /// A label value past the guard, which redacts it first (an API key used as a user id
    /// or key id never becomes a label) and caps it.
    fn label(&self, name: &'static str, value: &str) -> (&'static str, String) {
        (name, self.inner.guard.admit(name, value))
    }

    /// The series `call` records into, with the labels the guard refused a value of.
    fn build_series(&self, call: &LlmCall, status: &'static str) -> (Series, Vec<&'static str>) {
        let inner = &*self.inner;
        let mut labels: Labels = Vec::with_capacity(1 + inner.dims.len());
        labels.push(self.label("model", call.model().unwrap_or(UNKNOWN_VALUE)));
        for d in &inner.dims {
            labels.push(self.label(d.label(), &d.label_value(call)));
        }
        let overflowed = labels
            .iter()
            .filter(|(_, v)| v == OVERFLOW_VALUE)
            .map(|(k, _)| *k)
            .collect();
        let (labels, folded) = inner.admit_label_set(labels);
        let latency = inner.latency.get_or_create(&labels[..1].to_vec()).clone();
        let requests = inner
            .requests
            .get_or_create(&with(&labels, ("status", status)))
            .clone();
        let series = Series {
            labels,
            folded,
            latency,
            requests,
            cost: OnceLock::new(),
            tokens: OnceLock::new(),
        };
        (series, overflowed)
    }
}

/// Tells a connection over the limit to come back later, without ever blocking the accept
/// loop, and closes it.
fn refuse(stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let mut w = &stream;
    let _ = w.write(REFUSED_RESPONSE);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Why a request could not be read.
enum ReadError {
    /// The peer closed, or the connection failed.
    Closed,
    /// Too slow (head) or idle too long.
    TimedOut,
    /// The head is over the limit.
    TooLarge,
}

/// Reads into `buf` until it holds a whole request head; returns the head's length.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limits: &Limits,
    first: bool,
) -> Result<usize, ReadError> {
    let mut chunk = [0u8; 4096];
    if buf.is_empty() && !first {
        // Kept alive: wait for the next request at most the idle timeout.
        let _ = stream.set_read_timeout(Some(limits.idle_timeout()));
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => return Err(ReadError::TimedOut),
            Err(_) => return Err(ReadError::Closed),
        }
    }
    // The whole head within the header-read timeout, however the bytes trickle in.
    let deadline = Deadline::after(limits.header_read_timeout());
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if i + 4 > limits.max_header_bytes() {
                return Err(ReadError::TooLarge);
            }
            return Ok(i + 4);
        }
        if buf.len() > limits.max_header_bytes() {
            return Err(ReadError::TooLarge);
        }
        let left = deadline.left();
        if left.is_zero() {
            return Err(ReadError::TimedOut);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => return Err(ReadError::TimedOut),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadError::Closed),
        }
    }
}

/// A point `timeout` from now, or none when it is beyond what an [`Instant`] can hold
/// (`Duration::MAX` as a limit means no limit, never a panic in the connection thread).
struct Deadline {
    at: Option<Instant>,
    timeout: Duration,
}

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Deadline {
            at: Instant::now().checked_add(timeout),
            timeout,
        }
    }

    /// Time left before the deadline (the whole timeout when there is none).
    fn left(&self) -> Duration {
        match self.at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => self.timeout,
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
    keep_alive: bool,
) -> bool {
    respond_to(stream, status, ctype, body, keep_alive, false)
}

/// [`respond`], to a `HEAD` request when `head`.
fn respond_to(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
    keep_alive: bool,
    head: bool,
) -> bool {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    // The answer to a HEAD carries no body (RFC 9110, 9.3.2): a client keeping the
    // connection would read it as the start of its next response.
    let sent_body = if head { "" } else { body };
    // One buffer, one write: no response split over many small segments.
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{sent_body}",
        body.len()
    );
    stream
        .write_all(response.as_bytes())
        .and_then(|()| stream.flush())
        .is_ok()
}

/// Serves the requests of one connection (kept alive while the client wants it and stays
/// within the limits).
fn serve_connection(sink: &PrometheusSink, mut stream: TcpStream, limits: &Limits) {
    let _ = stream.set_write_timeout(Some(
        limits.header_read_timeout().max(Duration::from_secs(5)),
    ));
    let counters = limits.counters();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        let head_len = match read_head(&mut stream, &mut buf, limits, first) {
            Ok(n) => n,
            Err(ReadError::Closed) => return,
            Err(ReadError::TimedOut) => {
                counters.timed_out();
                if !buf.is_empty() {
                    respond(
                        &mut stream,
                        "408 Request Timeout",
                        "text/plain",
                        "request head too slow\n",
                        false,
                    );
                }
                return;
            }
            Err(ReadError::TooLarge) => {
                counters.too_large();
                respond(
                    &mut stream,
                    "431 Request Header Fields Too Large",
                    "text/plain",
                    "request head too large\n",
                    false,
                );
                return;
            }
        };
        first = false;
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        buf.drain(..head_len);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split_whitespace();
        let (method, path, version) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut keep_alive = version == "HTTP/1.1"
            && !header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if header("transfer-encoding").is_some() {
            // No chunked bodies on a scrape endpoint.
            counters.too_large();
            respond(
                &mut stream,
                "411 Length Required",
                "text/plain",
                "chunked bodies are not accepted\n",
                false,
            );
            return;
        }
        let body_len = match header("content-length").map(|v| v.parse::<u64>()) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                respond(
                    &mut stream,
                    "400 Bad Request",
                    "text/plain",
                    "invalid content-length\n",
                    false,
                );
                return;
            }
        };
        if body_len > limits.max_body_bytes() as u64 {
            counters.too_large();
            respond(
                &mut stream,
                "413 Payload Too Large",
                "text/plain",
                "request body too large\n",
                false,
            );
            return;
        }
        // Read and drop the (small) body, within the header-read timeout.
        let deadline = Deadline::after(limits.header_read_timeout());
        let mut chunk = [0u8; 4096];
        while (buf.len() as u64) < body_len {
            let left = deadline.left();
            if left.is_zero() {
                counters.timed_out();
                return;
            }
            let _ = stream.set_read_timeout(Some(left));
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {
                    counters.timed_out();
                    return;
                }
                Err(_) => return,
            }
        }
        buf.drain(..body_len as usize);
        let path = path.split('?').next().unwrap_or("");
        let head = method == "HEAD";
        let sent = if (method == "GET" || head) && (path == "/metrics" || path == "/") {
            let (b, c) = sink.encode_for(header("accept"));
            respond_to(&mut stream, "200 OK", c, &b, keep_alive, head)
        } else {
            keep_alive &= method == "GET" || head;
            respond_to(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "not found: GET /metrics\n",
                keep_alive,
                head,
            )
        };
        if !sent || !keep_alive {
            return;
        }
    }
}

/// The built-in metrics listener; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    limits: Limits,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the accept loop ends (a bounded wait for it when dropped).
    done: Mutex<std::sync::mpsc::Receiver<()>>,
    /// The sink's listeners: this one's connection series leaves with it (a stopped
    /// listener's stayed, and serving on its address again exported the series twice).
    listeners: Listeners,
}

impl MetricsServer {
    /// The address it listens on (the actual port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the listener accepted, refused (over `max_connections`), timed out and found too
    /// large.
    pub fn stats(&self) -> ListenerStats {
        self.limits.stats()
    }
}

/// How long dropping a [`MetricsServer`] waits for its accept loop to end.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// Where to connect to reach a listener bound to `addr`: an unspecified address
/// (`0.0.0.0`, `[::]`) is not one to connect to (Windows refuses it), its family's loopback
/// is.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut to = addr;
    if addr.ip().is_unspecified() {
        to.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    to
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop, which sees `stop` on its next connection.
        let _ = TcpStream::connect_timeout(&wake_addr(self.addr), Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            // Never forever: if the wake-up did not get through, the loop ends on the next
            // connection it accepts, on its own.
            let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            // The loop's sender goes when it ends: disconnected, never a message.
            if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) =
                done.recv_timeout(STOP_WAIT)
            {
                let _ = t.join();
            }
        }
        let key = self.addr.to_string();
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(a, _)| *a != key);
    }
}

impl CallSink for PrometheusSink {
    fn on_call(&self, call: &LlmCall) {
        let inner = &*self.inner;
        let status = if call.is_error() { "error" } else { "ok" };
        let values = [Some(call.model().unwrap_or(UNKNOWN_VALUE)), Some(status)]
            .into_iter()
            .chain(inner.dims.iter().map(|d| d.value(call)));
        let series = inner
            .series
            .get_or_build(values, &inner.guard, || self.build_series(call, status));
        if series.folded {
            inner.series_overflows.fetch_add(1, Ordering::Relaxed);
        }
        let trace = call.trace_id_ascii().map(|t| [("trace_id", TraceIdHex(t))]);
        series
            .latency
            .observe(call.duration.as_secs_f64(), trace, None);
        if let Some(cost) = call.cost_usd() {
            series
                .cost
                .get_or_init(|| inner.cost.get_or_create(&series.labels).clone())
                .add(cost, trace);
        }
        series.requests.inc();
        if call.has_usage {
            let (input, output) = series.tokens.get_or_init(|| {
                let of = |t| {
                    inner
                        .tokens
                        .get_or_create(&with(&series.labels, ("type", t)))
                        .clone()
                };
                (of("input"), of("output"))
            });
            input.inc_by(call.usage.input_tokens);
            output.inc_by(call.usage.output_tokens);
        }
    }
}

/// `labels` and one more.
fn with(labels: &Labels, extra: (&'static str, &str)) -> Labels {
    let mut v = Vec::with_capacity(labels.len() + 1);
    v.extend(labels.iter().cloned());
    v.push((extra.0, extra.1.to_owned()));
    v
}

#[cfg(feature = "axum")]
mod axum_support {
    use super::PrometheusSink;
    use axum::extract::State;
    use axum::http::{HeaderMap, header};
    use axum::response::IntoResponse;

    /// An axum handler answering a scrape (OpenMetrics when asked for, else text).
    ///
    /// ```
    /// let sink = llmtel_metrics::PrometheusSink::default();
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/metrics", axum::routing::get(llmtel_metrics::prometheus::metrics_handler))
    ///     .with_state(sink);
    /// ```
    pub async fn metrics_handler(
        State(sink): State<PrometheusSink>,
        headers: HeaderMap,
    ) -> impl IntoResponse {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        let (body, ctype) = sink.encode_for(accept);
        ([(header::CONTENT_TYPE, ctype)], body)
    }

    /// A router serving `GET /metrics`, to merge into an app or serve on its own address.
    pub fn axum_router<S>(sink: PrometheusSink) -> axum::Router<S> {
        axum::Router::new()
            .route("/metrics", axum::routing::get(metrics_handler))
            .with_state(sink)
    }
}

#[cfg(feature = "axum")]
pub use axum_support::{axum_router, metrics_handler};
