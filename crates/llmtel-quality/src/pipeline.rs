//! The pipeline: request-path sink and layer, a bounded queue, the monitor thread and the
//! evaluation thread (both on llmtel's background-worker primitive, [`llmtel::worker`]).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmtel::worker::{Job, Worker};
use llmtel::{CallSink, LlmCall};
use llmtel_alert::{Alert, AlertDispatcher, AlertState};
use serde::Serialize;
use tracing_core::Subscriber;
use tracing_core::span::Id;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::emit::{EvaluationRecord, emit_evaluation};
use crate::eval::cut;
use crate::eval::{EVALUATION_MARKER, EvalInput, Evaluation, Evaluator};
use crate::feedback::Feedback;
use crate::monitor::{Monitor, MonitorConfig, Snapshot};
use crate::signals::{CallSignals, PackedCall};

/// What the monitor thread records, in the order it was sent.
enum MonitorItem {
    Call(QueuedCall),
    Eval(Box<(Arc<EvalInput>, Evaluation)>),
    Feedback(Box<Feedback>),
}

/// Counters of a [`Quality`] pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QualityStats {
    /// Calls queued for the monitor.
    pub calls_queued: u64,
    /// Calls dropped because the queue was full or the pipeline stopped.
    pub calls_dropped: u64,
    /// Evaluation inputs queued.
    pub evals_queued: u64,
    /// Evaluation inputs dropped (queue full).
    pub evals_dropped: u64,
    /// Evaluator runs skipped by sampling.
    pub evals_sampled_out: u64,
    /// Evaluator runs that returned a result.
    pub evals_run: u64,
    /// Evaluator runs that did not apply (`None`).
    pub evals_not_applicable: u64,
    /// Evaluator runs stopped by their timeout, or that returned past it (a synchronous
    /// evaluator cannot be stopped: its late result is dropped), or not started because the
    /// evaluator had two runs past their timeout still going.
    pub evals_timed_out: u64,
    /// Evaluator runs that panicked.
    pub evals_panicked: u64,
    /// Evaluator runs that failed ([`crate::eval::EvalError`]: endpoint down, HTTP errors,
    /// malformed replies); the last message is [`Quality::last_evaluator_error`].
    pub evals_failed: u64,
    /// Model calls made by evaluators themselves (marked `llmtel.evaluation`), left out of the
    /// monitor.
    pub evaluator_calls_skipped: u64,
    /// Feedback queued.
    pub feedback_queued: u64,
    /// Feedback dropped (queue full).
    pub feedback_dropped: u64,
    /// Evaluation results computed elsewhere, queued with [`Quality::record_evaluation`].
    pub results_queued: u64,
    /// Evaluation results computed elsewhere, dropped (queue full).
    pub results_dropped: u64,
    /// `gen_ai.evaluation.result` records emitted.
    pub events_emitted: u64,
    /// Alerts handed to the alert dispatcher.
    pub alerts_sent: u64,
    /// Alerts the alert dispatcher refused (its queue full, or stopped) that could not wait
    /// to be offered again: past 1,024 waiting (a firing one makes way for a resolution), or
    /// still waiting when the pipeline stopped. The others wait, in order, and are offered
    /// again a second later (each refusal also counts in the dispatcher's `dropped`): a
    /// resolution lost kept its alert firing downstream for good.
    pub alerts_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls_queued: AtomicU64,
    calls_dropped: AtomicU64,
    evals_queued: AtomicU64,
    evals_dropped: AtomicU64,
    evals_sampled_out: AtomicU64,
    evals_run: AtomicU64,
    evals_not_applicable: AtomicU64,
    evals_timed_out: AtomicU64,
    evals_panicked: AtomicU64,
    evals_failed: AtomicU64,
    evaluator_calls_skipped: AtomicU64,
    feedback_queued: AtomicU64,
    feedback_dropped: AtomicU64,
    results_queued: AtomicU64,
    results_dropped: AtomicU64,
    events_emitted: AtomicU64,
    alerts_sent: AtomicU64,
    alerts_dropped: AtomicU64,
}

/// One evaluator with its sampling rate and timeout.
#[derive(Clone, Debug)]
struct EvaluatorSlot {
    evaluator: Arc<dyn Evaluator>,
    sampling: f64,
    timeout: Duration,
    /// Its runs past their timeout still going (a synchronous evaluator cannot be stopped),
    /// at most [`MAX_OVERRUNS`].
    overruns: Arc<AtomicUsize>,
}

/// Builds a [`Quality`] pipeline.
#[derive(Debug)]
pub struct QualityBuilder {
    monitor: MonitorConfig,
    evaluators: Vec<EvaluatorSlot>,
    queue_capacity: usize,
    eval_queue_capacity: usize,
    alerts: Option<AlertDispatcher>,
    dispatch: Option<tracing::Dispatch>,
    emit_events: bool,
    max_input_chars: usize,
}

impl Default for QualityBuilder {
    fn default() -> Self {
        QualityBuilder {
            monitor: MonitorConfig::default(),
            evaluators: Vec::new(),
            queue_capacity: 8192,
            eval_queue_capacity: 1024,
            alerts: None,
            dispatch: None,
            emit_events: true,
            max_input_chars: 16_000,
        }
    }
}

impl QualityBuilder {
    /// Sets the monitor's settings.
    pub fn with_monitor(mut self, cfg: MonitorConfig) -> Self {
        self.monitor = cfg;
        self
    }

    /// Adds an evaluator run on every input (sampling 1.0), with a 5 s timeout.
    pub fn with_evaluator(self, e: Arc<dyn Evaluator>) -> Self {
        self.with_evaluator_sampled(e, 1.0, Duration::from_secs(5))
    }

    /// Adds an evaluator run on a share `sampling` (`0..=1`) of the inputs, chosen by a hash
    /// of the call's ids (deterministic: the same call is always in or out), stopped after
    /// `timeout`. Each run is on a thread of its own, so the timeout applies to synchronous
    /// evaluators too, which cannot be stopped: past it, the run is left to finish on its
    /// thread and its result dropped (counted in [`QualityStats::evals_timed_out`]); while
    /// two such runs of an evaluator are still going, its further runs are not started.
    pub fn with_evaluator_sampled(
        mut self,
        e: Arc<dyn Evaluator>,
        sampling: f64,
        timeout: Duration,
    ) -> Self {
        let sampling = if sampling.is_finite() {
            sampling.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.evaluators.push(EvaluatorSlot {
            evaluator: e,
            sampling,
            timeout,
            overruns: Arc::new(AtomicUsize::new(0)),
        });
        self
    }

    /// Adds the six built-in evaluators ([`crate::eval::builtin`]) with sampling 1.0.
    pub fn with_builtin_evaluators(mut self) -> Self {
        for e in crate::eval::builtin() {
            self = self.with_evaluator(e);
        }
        self
    }

    /// Capacity of the queue from the request path to the monitor (default 8192).
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Capacity of the evaluation queue (default 1024).
    pub fn with_eval_queue_capacity(mut self, n: usize) -> Self {
        self.eval_queue_capacity = n.max(1);
        self
    }

    /// Sends the monitor's alerts (firing and resolved) to this dispatcher.
    pub fn with_alerts(mut self, d: AlertDispatcher) -> Self {
        self.alerts = Some(d);
        self
    }

    /// Emits the `gen_ai.evaluation.result` spans into this dispatcher (held weakly) instead
    /// of the global default; the evaluators run in it too (their own model calls). Once it
    /// is dropped, neither goes anywhere.
    pub fn with_dispatch(mut self, d: tracing::Dispatch) -> Self {
        self.dispatch = Some(d);
        self
    }

    /// Whether to emit `gen_ai.evaluation.result` spans at all (default true).
    pub fn with_events(mut self, on: bool) -> Self {
        self.emit_events = on;
        self
    }

    /// Evaluators see at most this many characters of the question, the answer and each
    /// context document (default 16,000).
    pub fn with_max_input_chars(mut self, n: usize) -> Self {
        self.max_input_chars = n.max(1);
        self
    }

    /// Starts the monitor and evaluation threads. If a thread cannot be spawned, the pipeline
    /// drops (and counts) what would have gone to it.
    pub fn build(self) -> Quality {
        let counters = Arc::new(Counters::default());
        let monitor = Arc::new(Mutex::new(Monitor::new(self.monitor)));
        let dispatch = Arc::new(Mutex::new(self.dispatch.as_ref().map(|d| d.downgrade())));
        let job = MonitorJob {
            monitor: monitor.clone(),
            last_item: Instant::now(),
            c: counters.clone(),
            alerts: self.alerts.clone(),
            unsent: Vec::new(),
            retry_at: None,
            dispatch: dispatch.clone(),
            emit: self.emit_events,
        };
        // Calls never wake the monitor one by one: it drains every 100 ms, or as soon as the
        // queue is half full; after 10 s without calls it wakes only every 5 s, for its
        // windows to close on time (an alert resolves when traffic stops).
        let to_monitor = Worker::builder("quality")
            .with_capacity(self.queue_capacity)
            .with_batch_size(MAX_PER_LOCK)
            .with_wake_at(self.queue_capacity.div_ceil(2))
            .with_interval(DRAIN_INTERVAL)
            .with_idle_tick(Some(IDLE_TICK))
            .with_app_tracing(true)
            .with_drop_timeout(SHUTDOWN_TIMEOUT)
            .spawn(move || Ok::<_, std::convert::Infallible>(job))
            .ok();
        let last_error = Arc::new(Mutex::new(None));
        let evals = to_monitor.clone().and_then(|to_monitor| {
            let ctx = EvalJob {
                slots: self.evaluators,
                counters: counters.clone(),
                max_chars: self.max_input_chars,
                dispatch: dispatch.clone(),
                last_error: last_error.clone(),
                to_monitor,
                rt: None,
            };
            // Evaluations start as soon as they are asked for.
            Worker::builder("quality-eval")
                .with_capacity(self.eval_queue_capacity)
                .with_batch_size(16)
                .with_wake_at(1)
                .with_app_tracing(true)
                .with_drop_timeout(SHUTDOWN_TIMEOUT)
                .spawn(move || {
                    // Time for the timeouts; I/O too when remote evaluators are compiled in.
                    // Each run is on a blocking thread of its own (so the timeout applies to
                    // synchronous evaluators too): one, plus the runs past their timeout.
                    let runners = 1 + MAX_OVERRUNS * ctx.slots.len().max(1);
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .max_blocking_threads(runners)
                        .thread_name("llmtel-quality-eval")
                        .build()
                        .map_err(|e| format!("tokio runtime: {e}"))?;
                    let mut job = ctx;
                    job.rt = Some(rt);
                    Ok::<_, String>(job)
                })
                .ok()
        });
        Quality {
            inner: Arc::new(Inner {
                monitor,
                evals,
                to_monitor,
                counters,
                alerts: self.alerts,
                dispatch,
                last_error,
            }),
        }
    }
}

/// How long a shutdown (or dropping the last handle) waits for each thread: evaluators may
/// be remote, each with its own timeout.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

struct Inner {
    monitor: Arc<Mutex<Monitor>>,
    /// Declared first: dropped (and so shut down, forwarding its last results) before the
    /// monitor.
    evals: Option<Worker<Box<EvalInput>>>,
    to_monitor: Option<Worker<MonitorItem>>,
    counters: Arc<Counters>,
    alerts: Option<AlertDispatcher>,
    dispatch: SharedDispatch,
    last_error: Arc<Mutex<Option<String>>>,
}

type SharedDispatch = Arc<Mutex<Option<tracing::dispatcher::WeakDispatch>>>;

impl Inner {
    /// Whether both threads stopped in time (a thread that never started has nothing to
    /// finish).
    fn stop(&self) -> bool {
        // The evaluation thread first: it forwards its last results to the monitor.
        let evals = self
            .evals
            .as_ref()
            .is_none_or(|e| e.shutdown(SHUTDOWN_TIMEOUT).is_ok());
        let monitor = self
            .to_monitor
            .as_ref()
            .is_none_or(|m| m.shutdown(SHUTDOWN_TIMEOUT).is_ok());
        evals && monitor
    }
}

/// The quality pipeline: give its [`sink`](Quality::sink) (or [`layer`](Quality::layer)) the
/// LLM calls, [`evaluate`](Quality::evaluate) answers and send user
/// [`feedback`](Quality::feedback); read the dashboard with [`snapshot`](Quality::snapshot).
///
/// Cheap to clone (clones share the pipeline). The threads stop when the last clone is
/// dropped or at [`Quality::shutdown`]; sinks and layers outliving it drop (and count) what
/// they are given.
#[derive(Clone)]
pub struct Quality {
    inner: Arc<Inner>,
}

impl fmt::Debug for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quality")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Quality {
    /// A builder with the default monitor settings and no evaluator.
    pub fn builder() -> QualityBuilder {
        QualityBuilder::default()
    }

    /// The [`CallSink`] to add to [`llmtel::LlmLayer::with_sink`]: on the request thread it
    /// copies the call's signals into one buffer (one allocation) and queues them without
    /// blocking and without waking the monitor thread (which drains the queue every 100 ms,
    /// or as soon as it is half full).
    pub fn sink(&self) -> QualitySink {
        QualitySink {
            queue: self.inner.to_monitor.clone(),
            counters: self.inner.counters.clone(),
        }
    }

    /// The same as a tracing layer, to add **after** `llmtel::layer()` (it reads the
    /// [`LlmCall`] that layer leaves in the span's extensions at close). It looks every span
    /// up at close; the [`sink`](Quality::sink) is cheaper.
    pub fn layer(&self) -> QualityLayer {
        QualityLayer { sink: self.sink() }
    }

    /// Emits the `gen_ai.evaluation.result` spans into `d` from now on (held weakly), for a
    /// subscriber built after the pipeline (it holds the pipeline's sink) and not installed
    /// as the global default.
    pub fn emit_into(&self, d: &tracing::Dispatch) {
        *self
            .inner
            .dispatch
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(d.downgrade());
    }

    /// Queues `input` for the evaluators; never blocks. Returns `false` (and counts a drop)
    /// when the evaluation queue is full.
    pub fn evaluate(&self, input: EvalInput) -> bool {
        let ok = self
            .inner
            .evals
            .as_ref()
            .is_some_and(|w| w.send(Box::new(input)).is_ok());
        let c = &self.inner.counters;
        if ok {
            c.evals_queued.fetch_add(1, Relaxed);
        } else {
            c.evals_dropped.fetch_add(1, Relaxed);
        }
        ok
    }

    /// Queues a user's feedback; never blocks. Returns `false` (and counts a drop) when the
    /// queue is full.
    pub fn feedback(&self, fb: Feedback) -> bool {
        let ok = self
            .inner
            .to_monitor
            .as_ref()
            .is_some_and(|w| w.send(MonitorItem::Feedback(Box::new(fb))).is_ok());
        let c = &self.inner.counters;
        if ok {
            c.feedback_queued.fetch_add(1, Relaxed);
        } else {
            c.feedback_dropped.fetch_add(1, Relaxed);
        }
        ok
    }

    /// Queues an evaluation result computed elsewhere (another service's evaluator, a
    /// `gen_ai.evaluation.result` read from its spans) for the monitor, as if one of this
    /// pipeline's evaluators had returned it; never blocks. `on` names the evaluated call by
    /// its span, response id or trace id (its `answer` is not read); a call the monitor does
    /// not know is filed under `on`'s model and feature, else under all calls. Returns
    /// `false` (and counts a drop in [`QualityStats::results_dropped`]) when the queue is full.
    ///
    /// ```
    /// use std::time::Duration;
    /// use llmtel_quality::{EvalInput, Evaluation, Quality};
    /// let quality = Quality::builder().with_events(false).build();
    /// let on = EvalInput {
    ///     model: Some("gpt-4o".into()),
    ///     feature: Some("support".into()),
    ///     ..EvalInput::new("")
    /// };
    /// assert!(quality.record_evaluation(on, Evaluation::new("relevance", 0.25, "irrelevant", "")));
    /// assert!(quality.flush(Duration::from_secs(5)));
    /// let snap = quality.snapshot();
    /// let series = snap.series.iter().find(|s| s.feature == "support").unwrap();
    /// assert_eq!(series.total.evaluators["relevance"].avg, 0.25);
    /// ```
    pub fn record_evaluation(&self, on: EvalInput, result: Evaluation) -> bool {
        let item = MonitorItem::Eval(Box::new((Arc::new(on), result)));
        let ok = self
            .inner
            .to_monitor
            .as_ref()
            .is_some_and(|w| w.send(item).is_ok());
        let c = &self.inner.counters;
        if ok {
            c.results_queued.fetch_add(1, Relaxed);
        } else {
            c.results_dropped.fetch_add(1, Relaxed);
        }
        ok
    }

    /// Waits up to `timeout` until everything queued before this call has been evaluated and
    /// recorded, and the alerts raised have been delivered. Returns whether it happened
    /// (`false` while alerts the dispatcher refused wait to be offered again).
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = after(Instant::now(), timeout);
        let left = || deadline.saturating_duration_since(Instant::now());
        // Evaluations first: their results join the monitor's queue, which is flushed next.
        let (Some(evals), Some(monitor)) = (&self.inner.evals, &self.inner.to_monitor) else {
            return false;
        };
        if evals.flush(left()).is_err() || monitor.flush(left()).is_err() {
            return false;
        }
        match &self.inner.alerts {
            Some(a) => a.flush(left()),
            None => true,
        }
    }

    /// The dashboard data.
    pub fn snapshot(&self) -> Snapshot {
        self.inner
            .monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot()
    }

    /// The last evaluator failure, as `{evaluator}: {message}` (the messages say what to do;
    /// they never hold API keys or evaluated content).
    pub fn last_evaluator_error(&self) -> Option<String> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `f` on the monitor (for its footprint, call scores, active alerts).
    pub fn with_monitor<R>(&self, f: impl FnOnce(&Monitor) -> R) -> R {
        f(&self.inner.monitor.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The counters.
    pub fn stats(&self) -> QualityStats {
        let c = &self.inner.counters;
        QualityStats {
            calls_queued: c.calls_queued.load(Relaxed),
            calls_dropped: c.calls_dropped.load(Relaxed),
            evals_queued: c.evals_queued.load(Relaxed),
            evals_dropped: c.evals_dropped.load(Relaxed),
            evals_sampled_out: c.evals_sampled_out.load(Relaxed),
            evals_run: c.evals_run.load(Relaxed),
            evals_not_applicable: c.evals_not_applicable.load(Relaxed),
            evals_timed_out: c.evals_timed_out.load(Relaxed),
            evals_panicked: c.evals_panicked.load(Relaxed),
            evals_failed: c.evals_failed.load(Relaxed),
            evaluator_calls_skipped: c.evaluator_calls_skipped.load(Relaxed),
            feedback_queued: c.feedback_queued.load(Relaxed),
            feedback_dropped: c.feedback_dropped.load(Relaxed),
            results_queued: c.results_queued.load(Relaxed),
            results_dropped: c.results_dropped.load(Relaxed),
            events_emitted: c.events_emitted.load(Relaxed),
            alerts_sent: c.alerts_sent.load(Relaxed),
            alerts_dropped: c.alerts_dropped.load(Relaxed),
        }
    }

    /// Processes what is queued, then stops and joins both threads, waiting up to 30 s for
    /// each. Returns whether both stopped in time with everything delivered; `false` when one
    /// did not (the monitor's thread held up by the app's subscriber): it finishes in the
    /// background, and what it still holds may never reach the monitor or the alert
    /// dispatcher; `false` too when alerts the dispatcher refused were still waiting (counted
    /// in [`QualityStats::alerts_dropped`]).
    pub fn shutdown(&self) -> bool {
        self.inner.stop()
    }

    /// A handle that does not keep the pipeline alive (for scrape-time collectors).
    #[cfg(feature = "prometheus")]
    pub(crate) fn downgrade(&self) -> WeakQuality {
        WeakQuality(Arc::downgrade(&self.inner))
    }
}

/// A [`Quality`] held weakly.
#[cfg(feature = "prometheus")]
pub(crate) struct WeakQuality(std::sync::Weak<Inner>);

#[cfg(feature = "prometheus")]
impl WeakQuality {
    /// The pipeline, while a clone of it is alive.
    pub(crate) fn upgrade(&self) -> Option<Quality> {
        self.0.upgrade().map(|inner| Quality { inner })
    }
}

/// How often the monitor drains the call queue when nothing wakes it. Producers do not wake
/// it for each call: waking a parked thread costs the request thread microseconds (a futex
/// wake, often a reschedule), several times the rest of the sink.
const DRAIN_INTERVAL: Duration = Duration::from_millis(100);
/// How often the monitor's thread wakes, asleep after an idle spell, for the monitor's time
/// to run on ([`Monitor::advance_idle`]).
const IDLE_TICK: Duration = Duration::from_secs(5);
/// How long without any call before the monitor's time runs on, and how far behind the
/// time of its last event plus the idle time it then stays: calls that arrive a few
/// seconds late keep their windows.
const IDLE_GRACE: Duration = Duration::from_secs(10);
/// Most items the monitor records per hold of the monitor lock.
const MAX_PER_LOCK: usize = 256;

/// One call on its way to the monitor.
enum QueuedCall {
    /// From [`QualitySink::send_call`]: one allocation on the request thread.
    Packed(Box<PackedCall>),
    /// From [`QualitySink::send`], or a call whose strings do not fit a [`PackedCall`].
    Signals(Box<CallSignals>),
}

/// The request-path [`CallSink`] of a [`Quality`] pipeline.
#[derive(Clone)]
pub struct QualitySink {
    /// The monitor's queue (none if its thread could not start: every call is dropped).
    queue: Option<Worker<MonitorItem>>,
    counters: Arc<Counters>,
}

impl fmt::Debug for QualitySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QualitySink")
    }
}

impl QualitySink {
    /// Queues one call's signals unless an evaluator made the call (it carries
    /// `llmtel.evaluation`: counted in [`QualityStats::evaluator_calls_skipped`]); never
    /// blocks.
    pub fn send_call(&self, call: &LlmCall) -> bool {
        if call.dimensions.get(EVALUATION_MARKER).is_some() {
            self.counters.evaluator_calls_skipped.fetch_add(1, Relaxed);
            return false;
        }
        let Some(queue) = &self.queue else {
            return self.count(false);
        };
        if queue.is_full() {
            // Not worth building the signals to drop them.
            queue.count_dropped();
            return self.count(false);
        }
        let queued = match PackedCall::new(call) {
            Some(p) => QueuedCall::Packed(p),
            None => QueuedCall::Signals(Box::new(CallSignals::from_call(call))),
        };
        self.count(queue.send(MonitorItem::Call(queued)).is_ok())
    }

    /// Queues one call's signals; never blocks.
    pub fn send(&self, signals: CallSignals) -> bool {
        let item = MonitorItem::Call(QueuedCall::Signals(Box::new(signals)));
        self.count(self.queue.as_ref().is_some_and(|q| q.send(item).is_ok()))
    }

    fn count(&self, ok: bool) -> bool {
        if ok {
            self.counters.calls_queued.fetch_add(1, Relaxed);
        } else {
            self.counters.calls_dropped.fetch_add(1, Relaxed);
        }
        ok
    }
}

impl CallSink for QualitySink {
    fn on_call(&self, call: &LlmCall) {
        self.send_call(call);
    }
}

/// The tracing layer of a [`Quality`] pipeline (see [`Quality::layer`]).
#[derive(Clone, Debug)]
pub struct QualityLayer {
    sink: QualitySink,
}

impl<S> Layer<S> for QualityLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        // Finishes the call if llmtel's layer runs after this one: any order works.
        if !llmtel::close_call(&span) {
            return;
        }
        if let Some(call) = span.extensions().get::<LlmCall>() {
            self.sink.send_call(call);
        }
    }
}

/// The monitor thread's job: records calls, evaluations and feedback in the order they were
/// sent, [`MAX_PER_LOCK`] per hold of the monitor lock, then sends the alerts raised and emits
/// the evaluation records (outside the lock: emitting runs the app's subscriber).
struct MonitorJob {
    monitor: Arc<Mutex<Monitor>>,
    /// When the last item with a time of its own came (a call, feedback, a dated
    /// evaluation result): the monitor's time runs on from there while none comes.
    last_item: Instant,
    c: Arc<Counters>,
    alerts: Option<AlertDispatcher>,
    /// Alerts raised and not yet taken by the dispatcher (it refused them: its queue was
    /// full), in order, at most [`MAX_UNSENT_ALERTS`].
    unsent: Vec<Alert>,
    /// Not before then are they offered again (the dispatcher counts each refusal).
    retry_at: Option<Instant>,
    dispatch: SharedDispatch,
    emit: bool,
}

/// Alerts kept while the dispatcher refuses them ([`QualityStats::alerts_dropped`]).
const MAX_UNSENT_ALERTS: usize = 1024;
/// How long after a refusal the dispatcher is offered the waiting alerts again.
const ALERT_RETRY: Duration = Duration::from_secs(1);

impl Job for MonitorJob {
    type Item = MonitorItem;

    fn process(&mut self, batch: Vec<MonitorItem>) -> Result<(), String> {
        let mut records: Vec<EvaluationRecord> = Vec::new();
        // Only items with a time of their own hold the monitor's run-on: results without one
        // (`Quality::evaluate` leaves `at` unset) do not move its time, and a backlog of them
        // kept every window open and every firing alert unresolved after traffic stopped.
        let mut dated = false;
        // The monitor's own warnings go where its records go.
        let raised = within(self.app_dispatch().as_ref(), || {
            let mut m = self.monitor.lock().unwrap_or_else(|e| e.into_inner());
            for item in batch {
                match item {
                    MonitorItem::Call(QueuedCall::Packed(p)) => {
                        dated = true;
                        m.record_call(&p.unpack());
                    }
                    MonitorItem::Call(QueuedCall::Signals(s)) => {
                        dated = true;
                        m.record_call(&s);
                    }
                    MonitorItem::Eval(b) => {
                        dated |= b.0.at.is_some();
                        records.push(m.record_evaluation(&b.0, &b.1));
                    }
                    MonitorItem::Feedback(f) => {
                        dated = true;
                        records.push(m.record_feedback(&f).0);
                    }
                }
            }
            m.take_alerts()
        });
        self.send_alerts(raised, false);
        if dated {
            self.last_item = Instant::now();
        }
        for r in &records {
            self.emit_record(r);
        }
        Ok(())
    }

    fn tick(&mut self) {
        // No call for a while: the monitor's time runs on, so its windows close on time. Not
        // while calls come, late by a few seconds (the collector's batches): they keep their
        // windows.
        let raised = match self.last_item.elapsed().checked_sub(IDLE_GRACE) {
            Some(run_on) => within(self.app_dispatch().as_ref(), || {
                let mut m = self.monitor.lock().unwrap_or_else(|e| e.into_inner());
                m.advance_idle(run_on);
                m.take_alerts()
            }),
            None => Vec::new(),
        };
        // And the alerts the dispatcher refused are offered again.
        self.send_alerts(raised, false);
    }

    fn flush(&mut self) -> Result<(), String> {
        self.send_alerts(Vec::new(), true);
        match self.unsent.len() {
            0 => Ok(()),
            n => Err(format!(
                "the alert dispatcher refused {n} alerts (its queue is full, or it stopped); they wait to be offered again"
            )),
        }
    }

    fn shutdown(&mut self) -> Result<(), String> {
        let r = self.flush();
        let lost = std::mem::take(&mut self.unsent).len() as u64;
        self.c.alerts_dropped.fetch_add(lost, Relaxed);
        r
    }
}

impl MonitorJob {
    /// Sends what the monitor raised to the alert dispatcher (if any), after the alerts it
    /// refused before (unless they were refused less than [`ALERT_RETRY`] ago and not
    /// `now`). A refused alert waits: a resolution dropped left its alert firing downstream
    /// for good (the dispatcher re-sends lasting alerts until they resolve).
    fn send_alerts(&mut self, raised: Vec<Alert>, now: bool) {
        let Some(d) = &self.alerts else { return };
        for a in raised {
            if self.unsent.len() >= MAX_UNSENT_ALERTS {
                // A resolution takes the place of a fire, never the other way round.
                let fire = (a.state == AlertState::Resolved)
                    .then(|| {
                        self.unsent
                            .iter()
                            .position(|u| u.state == AlertState::Firing)
                    })
                    .flatten();
                self.c.alerts_dropped.fetch_add(1, Relaxed);
                match fire {
                    Some(i) => {
                        self.unsent.remove(i);
                    }
                    None => continue,
                }
            }
            self.unsent.push(a);
        }
        if self.unsent.is_empty() || (!now && self.retry_at.is_some_and(|t| Instant::now() < t)) {
            return;
        }
        let mut sent = 0;
        for a in &self.unsent {
            // A detector's alert lasts until it resolves it (hysteresis).
            if !d.send(a.clone().until_resolved()) {
                break;
            }
            sent += 1;
        }
        self.unsent.drain(..sent);
        self.c.alerts_sent.fetch_add(sent as u64, Relaxed);
        self.retry_at = (!self.unsent.is_empty()).then(|| Instant::now() + ALERT_RETRY);
    }

    /// Where the monitor's warnings go: the pipeline's dispatcher (none once it is gone), else
    /// the app's default.
    fn app_dispatch(&self) -> Option<tracing::Dispatch> {
        let weak = self
            .dispatch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        weak.map(|w| w.upgrade().unwrap_or_else(tracing::Dispatch::none))
    }

    fn emit_record(&self, rec: &EvaluationRecord) {
        if !self.emit {
            return;
        }
        let run = || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| emit_evaluation(rec)));
        };
        let weak = self
            .dispatch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match weak {
            Some(w) => match w.upgrade() {
                Some(d) => tracing::dispatcher::with_default(&d, run),
                None => return,
            },
            None => run(),
        }
        self.c.events_emitted.fetch_add(1, Relaxed);
    }
}

fn sampled(input: &EvalInput, name: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    match (&input.response_id, input.trace_id, input.span_id) {
        (Some(r), _, _) => r.hash(&mut h),
        (None, Some(t), s) => {
            t.to_bytes().hash(&mut h);
            s.map(|s| s.to_bytes()).hash(&mut h);
        }
        _ => input.answer.hash(&mut h),
    }
    (h.finish() as f64 / u64::MAX as f64) < rate
}

/// Runs `f` with `d` as the default dispatcher, if given.
fn within<R>(d: Option<&tracing::Dispatch>, f: impl FnOnce() -> R) -> R {
    match d {
        Some(d) => tracing::dispatcher::with_default(d, f),
        None => f(),
    }
}

/// The evaluation thread's job: runs each evaluator (sampled, with its timeout) on each
/// input, and hands the results to the monitor.
struct EvalJob {
    slots: Vec<EvaluatorSlot>,
    counters: Arc<Counters>,
    max_chars: usize,
    /// Where evaluators' own spans go (remote evaluators trace their model calls): the
    /// pipeline's dispatcher when set, else the app's default.
    dispatch: SharedDispatch,
    last_error: Arc<Mutex<Option<String>>>,
    to_monitor: Worker<MonitorItem>,
    rt: Option<tokio::runtime::Runtime>,
}

/// How long the evaluation thread waits for room in the monitor's queue before it drops a
/// result (and counts it in [`QualityStats::evals_dropped`]).
const RESULT_WAIT: Duration = Duration::from_secs(1);

impl Job for EvalJob {
    type Item = Box<EvalInput>;

    fn process(&mut self, batch: Vec<Box<EvalInput>>) -> Result<(), String> {
        for input in batch {
            self.evaluate(input);
        }
        Ok(())
    }
}

impl EvalJob {
    /// Hands a result to the monitor; this thread waits for room (never the request path).
    fn forward(&self, item: MonitorItem) {
        let deadline = Instant::now() + RESULT_WAIT;
        let mut item = item;
        loop {
            match self.to_monitor.send(item) {
                Ok(()) => return,
                Err(back) if Instant::now() < deadline => {
                    item = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => {
                    self.counters.evals_dropped.fetch_add(1, Relaxed);
                    return;
                }
            }
        }
    }

    fn evaluate(&self, mut input: Box<EvalInput>) {
        let c = &self.counters;
        let Some(rt) = self.rt.as_ref() else {
            c.evals_dropped.fetch_add(1, Relaxed);
            return;
        };
        let max_chars = self.max_chars;
        // Cut to bound the evaluators' work, and said: an evaluator that judges the end of a
        // text does not judge the cut (a long JSON answer cut was scored invalid, a long
        // answer "truncated").
        let answer = cut(&input.answer, max_chars);
        if answer.len() < input.answer.len() {
            input.answer = answer.to_owned();
            input.answer_cut = true;
        }
        if let Some(q) = input.question.as_mut() {
            *q = cut(q, max_chars).to_owned();
        }
        for d in input.context.iter_mut() {
            let kept = cut(d, max_chars);
            if kept.len() < d.len() {
                *d = kept.to_owned();
                input.context_cut = true;
            }
        }
        let input: Arc<EvalInput> = Arc::from(input);
        let mut chosen = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            if sampled(&input, slot.evaluator.name(), slot.sampling) {
                chosen.push(slot.clone());
            } else {
                c.evals_sampled_out.fetch_add(1, Relaxed);
            }
        }
        if chosen.is_empty() {
            return;
        }
        let weak = self
            .dispatch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // The pipeline's dispatcher, else the app's default; once the pipeline's is gone, no
        // dispatcher (its evaluation records are not emitted either): the evaluators' spans
        // went to the app's default.
        let d = weak.map(|w| w.upgrade().unwrap_or_else(tracing::Dispatch::none));
        let runs = run_all(rt, chosen, &input, d.as_ref());
        for (slot, r) in runs {
            match r {
                Run::Done(Err(e)) => {
                    c.evals_failed.fetch_add(1, Relaxed);
                    let name = slot.evaluator.name();
                    within(d.as_ref(), || {
                        tracing::warn!(
                            target: crate::emit::TARGET,
                            evaluator = name,
                            "error.type" = e.error_type(),
                            "evaluator failed: {e}"
                        )
                    });
                    *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("{name}: {e}"));
                }
                Run::Done(Ok(Some(ev))) => {
                    c.evals_run.fetch_add(1, Relaxed);
                    self.forward(MonitorItem::Eval(Box::new((input.clone(), ev))));
                }
                Run::Done(Ok(None)) => {
                    c.evals_not_applicable.fetch_add(1, Relaxed);
                }
                Run::TimedOut => {
                    c.evals_timed_out.fetch_add(1, Relaxed);
                }
                Run::Panicked => {
                    c.evals_panicked.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

impl Drop for EvalJob {
    fn drop(&mut self) {
        // Runs past their timeout may still be going (a synchronous evaluator cannot be
        // stopped): dropping the runtime would wait for them without a bound.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs past their timeout an evaluator may have going at once; past it, its runs are not
/// started (and counted as timed out) until one returns.
const MAX_OVERRUNS: usize = 2;
/// How long past an evaluator's timeout the evaluation thread waits for its run: a remote
/// evaluator's own timer (the same timeout) stops it first, and the next one starts.
const TIMEOUT_GRACE: Duration = Duration::from_millis(25);

/// `at + d`, or ten years on where that overflows (`Duration::MAX` for "no timeout").
fn after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(10 * 365 * 24 * 3600))
}

/// What one evaluator run gave.
enum Run {
    Done(Result<Option<Evaluation>, crate::eval::EvalError>),
    TimedOut,
    Panicked,
}

/// The evaluator runs of one input on a blocking thread, watched by the evaluation thread.
struct Runs {
    slots: Vec<EvaluatorSlot>,
    input: Arc<EvalInput>,
    dispatch: Option<tracing::Dispatch>,
    handle: tokio::runtime::Handle,
    progress: Mutex<Progress>,
}

struct Progress {
    /// The run going (an index into `slots`), and since when.
    current: usize,
    started: Instant,
    /// What the runs before it gave.
    done: Vec<Run>,
    /// The evaluation thread gave up on the run going (counted in its evaluator's
    /// `overruns`): the thread stops after it.
    abandoned: bool,
}

impl Runs {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// On the blocking thread: runs the evaluators from `progress.current` on, one after
    /// the other, until the last or until the evaluation thread gives up on one.
    fn run(&self) {
        within(self.dispatch.as_ref(), || {
            loop {
                let i = {
                    let p = self.progress();
                    if p.abandoned {
                        // Given up before it started: it is not running late.
                        if let Some(s) = self.slots.get(p.current) {
                            s.overruns.fetch_sub(1, Ordering::AcqRel);
                        }
                        return;
                    }
                    if p.current >= self.slots.len() {
                        return;
                    }
                    p.current
                };
                let run = self.run_one(&self.slots[i]);
                let mut p = self.progress();
                if p.abandoned {
                    // Returned past its timeout: its result is dropped.
                    self.slots[i].overruns.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
                p.done.push(run);
                p.current += 1;
                // The next run's clock starts now (the evaluation thread reads it to watch it).
                p.started = Instant::now();
            }
        });
    }

    fn run_one(&self, slot: &EvaluatorSlot) -> Run {
        if slot.overruns.load(Ordering::Acquire) >= MAX_OVERRUNS {
            return Run::TimedOut;
        }
        let started = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.handle.block_on(async {
                // A remote evaluator's own timer stops it on time (a synchronous one's work is
                // done before: nothing can stop it).
                tokio::time::timeout(slot.timeout, slot.evaluator.try_evaluate(&self.input)).await
            })
        }));
        match r {
            Ok(Ok(r)) if started.elapsed() <= slot.timeout => Run::Done(r),
            Ok(_) => Run::TimedOut,
            Err(_) => Run::Panicked,
        }
    }
}

/// Runs `slots`' evaluators on `input`, in order, each under its timeout, and returns what
/// each gave. They run on a blocking thread of `rt` (one hand-over per input), watched from
/// this one: a synchronous evaluator does its work in the first poll of its future, which a
/// timeout on this thread could never interrupt (a slow one held up every later input, and
/// its late result was taken as on time). This thread drives the runtime meanwhile (the
/// remote evaluators' I/O and timers). A run past its timeout (and a grace) is given up on:
/// left to finish on its thread, its result dropped, while the next evaluators run on
/// another.
fn run_all(
    rt: &tokio::runtime::Runtime,
    slots: Vec<EvaluatorSlot>,
    input: &Arc<EvalInput>,
    d: Option<&tracing::Dispatch>,
) -> Vec<(EvaluatorSlot, Run)> {
    let n = slots.len();
    let mut out: Vec<Run> = Vec::with_capacity(n);
    let mut runs = Arc::new(Runs {
        slots: slots.clone(),
        input: input.clone(),
        dispatch: d.cloned(),
        handle: rt.handle().clone(),
        progress: Mutex::new(Progress {
            current: 0,
            started: Instant::now(),
            done: Vec::with_capacity(n),
            abandoned: false,
        }),
    });
    // The timers are created inside the runtime (they need its time driver).
    within(d, || {
        rt.block_on(async {
            'thread: loop {
                let on = runs.clone();
                let mut task = tokio::task::spawn_blocking(move || on.run());
                loop {
                    let deadline = {
                        let p = runs.progress();
                        match slots.get(p.current) {
                            Some(s) => after(p.started, s.timeout.saturating_add(TIMEOUT_GRACE)),
                            None => Instant::now(),
                        }
                    };
                    let finished = tokio::time::timeout_at(deadline.into(), &mut task)
                        .await
                        .is_ok();
                    let mut p = runs.progress();
                    if finished || p.current >= n {
                        out.append(&mut p.done);
                        if finished && out.len() < n {
                            // The thread stopped early (it panicked outside a run).
                            out.push(Run::Panicked);
                        }
                        if out.len() >= n {
                            break 'thread;
                        }
                        break;
                    }
                    let late = slots[p.current].timeout.saturating_add(TIMEOUT_GRACE);
                    if p.started.elapsed() < late {
                        // It moved on meanwhile: watch the next run.
                        continue;
                    }
                    // Given up on: the next evaluators run on another thread.
                    p.abandoned = true;
                    slots[p.current].overruns.fetch_add(1, Ordering::AcqRel);
                    out.append(&mut p.done);
                    out.push(Run::TimedOut);
                    break;
                }
                let from = out.len();
                if from >= n {
                    break;
                }
                runs = Arc::new(Runs {
                    slots: runs.slots.clone(),
                    input: input.clone(),
                    dispatch: d.cloned(),
                    handle: rt.handle().clone(),
                    progress: Mutex::new(Progress {
                        current: from,
                        started: Instant::now(),
                        done: Vec::with_capacity(n - from),
                        abandoned: false,
                    }),
                });
            }
        });
    });
    slots.into_iter().zip(out).collect()
}
