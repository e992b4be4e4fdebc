//! The pipeline: request-path sink and layer, a bounded queue, the monitor thread and the
//! evaluation thread.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use llmtel::{CallSink, LlmCall};
use llmtel_alert::AlertDispatcher;
use serde::Serialize;
use tracing_core::Subscriber;
use tracing_core::span::Id;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::emit::{EvaluationRecord, emit_evaluation};
use crate::eval::text::cut;
use crate::eval::{EVALUATION_MARKER, EvalInput, Evaluation, Evaluator};
use crate::feedback::Feedback;
use crate::monitor::{Monitor, MonitorConfig, Snapshot};
use crate::signals::{CallSignals, PackedCall};

/// What the monitor thread is told on its control channel. Calls travel on their own
/// channel ([`CallQueue`]), which the monitor does not wait on.
enum MonitorMsg {
    /// Drain the call queue now (it is filling up, or the monitor was parked).
    Drain,
    Eval(Box<(Arc<EvalInput>, Evaluation)>),
    Feedback(Box<Feedback>),
    Flush(mpsc::Sender<()>),
    Stop,
}

enum EvalMsg {
    Job(Box<EvalInput>),
    Flush(mpsc::Sender<()>),
    Stop,
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
    /// Evaluator runs stopped by their timeout.
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
    /// `gen_ai.evaluation.result` records emitted.
    pub events_emitted: u64,
    /// Alerts handed to the alert dispatcher.
    pub alerts_sent: u64,
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
    events_emitted: AtomicU64,
    alerts_sent: AtomicU64,
}

/// One evaluator with its sampling rate and timeout.
#[derive(Clone, Debug)]
struct EvaluatorSlot {
    evaluator: Arc<dyn Evaluator>,
    sampling: f64,
    timeout: Duration,
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
    /// `timeout`.
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
    /// of the global default.
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
        let (mtx, mrx) = mpsc::sync_channel::<MonitorMsg>(self.queue_capacity);
        let (ctx_, crx) = mpsc::sync_channel::<QueuedCall>(self.queue_capacity);
        let queue = Arc::new(CallQueue {
            calls: ctx_,
            control: mtx.clone(),
            pending: AtomicUsize::new(0),
            drain_requested: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            capacity: self.queue_capacity,
            wake_at: self.queue_capacity.div_ceil(2),
        });
        let (etx, erx) = mpsc::sync_channel::<EvalMsg>(self.eval_queue_capacity);
        let mut threads = Vec::new();
        let dispatch = Arc::new(Mutex::new(self.dispatch.as_ref().map(|d| d.downgrade())));
        {
            let worker = MonitorWorker {
                control: mrx,
                calls: crx,
                queue: queue.clone(),
                monitor: monitor.clone(),
                c: counters.clone(),
                alerts: self.alerts.clone(),
                dispatch: dispatch.clone(),
                emit: self.emit_events,
            };
            if let Ok(h) = std::thread::Builder::new()
                .name("llmtel-quality".into())
                .spawn(move || worker.run())
            {
                threads.push(h);
            }
        }
        let last_error = Arc::new(Mutex::new(None));
        {
            let to_monitor = mtx.clone();
            let ctx = EvalContext {
                slots: self.evaluators,
                counters: counters.clone(),
                max_chars: self.max_input_chars,
                dispatch: dispatch.clone(),
                last_error: last_error.clone(),
            };
            if let Ok(h) = std::thread::Builder::new()
                .name("llmtel-quality-eval".into())
                .spawn(move || run_evals(erx, to_monitor, ctx))
            {
                threads.push(h);
            }
        }
        Quality {
            inner: Arc::new(Inner {
                monitor,
                tx: mtx,
                queue,
                etx,
                counters,
                alerts: self.alerts,
                dispatch,
                last_error,
                threads: Mutex::new(threads),
            }),
        }
    }
}

struct Inner {
    monitor: Arc<Mutex<Monitor>>,
    tx: SyncSender<MonitorMsg>,
    queue: Arc<CallQueue>,
    etx: SyncSender<EvalMsg>,
    counters: Arc<Counters>,
    alerts: Option<AlertDispatcher>,
    dispatch: SharedDispatch,
    last_error: Arc<Mutex<Option<String>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

type SharedDispatch = Arc<Mutex<Option<tracing::dispatcher::WeakDispatch>>>;

impl Inner {
    fn stop(&self) {
        let threads: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if threads.is_empty() {
            return;
        }
        // The evaluation thread first: it forwards its last results to the monitor.
        let _ = self.etx.send(EvalMsg::Stop);
        let _ = self.tx.send(MonitorMsg::Stop);
        for h in threads {
            let _ = h.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
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
            queue: self.inner.queue.clone(),
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
            .etx
            .try_send(EvalMsg::Job(Box::new(input)))
            .is_ok();
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
            .tx
            .try_send(MonitorMsg::Feedback(Box::new(fb)))
            .is_ok();
        let c = &self.inner.counters;
        if ok {
            c.feedback_queued.fetch_add(1, Relaxed);
        } else {
            c.feedback_dropped.fetch_add(1, Relaxed);
        }
        ok
    }

    /// Waits up to `timeout` until everything queued before this call has been evaluated and
    /// recorded, and the alerts raised have been delivered. Returns whether it happened.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = mpsc::channel();
        let mut msg = EvalMsg::Flush(ack_tx);
        loop {
            match self.inner.etx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) => msg = m,
                Err(TrySendError::Disconnected(_)) => return false,
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_err()
        {
            return false;
        }
        match &self.inner.alerts {
            Some(a) => a.flush(deadline.saturating_duration_since(Instant::now())),
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
            events_emitted: c.events_emitted.load(Relaxed),
            alerts_sent: c.alerts_sent.load(Relaxed),
        }
    }

    /// Processes what is queued, then stops and joins both threads.
    pub fn shutdown(&self) {
        self.inner.stop();
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
/// Empty drains in a row (10 s without calls) after which the monitor parks until the next
/// call wakes it, so an idle pipeline does not tick forever.
const IDLE_DRAINS_BEFORE_PARKING: u32 = 100;
/// Most messages the monitor handles per hold of the monitor lock.
const MAX_PER_LOCK: usize = 256;

/// One call on its way to the monitor.
enum QueuedCall {
    /// From [`QualitySink::send_call`]: one allocation on the request thread.
    Packed(Box<PackedCall>),
    /// From [`QualitySink::send`], or a call whose strings do not fit a [`PackedCall`].
    Signals(Box<CallSignals>),
}

/// The queue from the request path to the monitor, shared by every sink of a pipeline.
struct CallQueue {
    calls: SyncSender<QueuedCall>,
    control: SyncSender<MonitorMsg>,
    /// Calls queued since the monitor last started draining (never more than the queue
    /// holds, so `>= capacity` means full).
    pending: AtomicUsize,
    /// A [`MonitorMsg::Drain`] is on its way.
    drain_requested: AtomicBool,
    /// The monitor is blocked on its control channel with no timeout: the next call wakes it.
    parked: AtomicBool,
    capacity: usize,
    /// `pending` at which a producer asks for a drain.
    wake_at: usize,
}

impl CallQueue {
    /// Queues `signals`; never blocks, wakes the monitor only when the queue is half full or
    /// the monitor is parked.
    fn push(&self, signals: QueuedCall) -> bool {
        if self.calls.try_send(signals).is_err() {
            return false;
        }
        let n = self.pending.fetch_add(1, Relaxed) + 1;
        // Pairs with the fence in `MonitorWorker::park`: either the monitor's last look at
        // the queue sees this call, or this load sees it parked.
        std::sync::atomic::fence(Ordering::SeqCst);
        let parked = self.parked.load(Relaxed) && self.parked.swap(false, Relaxed);
        if parked || (n >= self.wake_at && !self.drain_requested.swap(true, Relaxed)) {
            // Full control channel: the monitor is awake with messages to handle anyway.
            let _ = self.control.try_send(MonitorMsg::Drain);
        }
        true
    }

    /// Whether the queue is certainly full (no need to build the signals to drop them).
    fn full(&self) -> bool {
        self.pending.load(Relaxed) >= self.capacity
    }
}

/// The request-path [`CallSink`] of a [`Quality`] pipeline.
#[derive(Clone)]
pub struct QualitySink {
    queue: Arc<CallQueue>,
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
        if self.queue.full() {
            self.counters.calls_dropped.fetch_add(1, Relaxed);
            return false;
        }
        let queued = match PackedCall::new(call) {
            Some(p) => QueuedCall::Packed(p),
            None => QueuedCall::Signals(Box::new(CallSignals::from_call(call))),
        };
        self.count(self.queue.push(queued))
    }

    /// Queues one call's signals; never blocks.
    pub fn send(&self, signals: CallSignals) -> bool {
        self.count(self.queue.push(QueuedCall::Signals(Box::new(signals))))
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

/// The monitor thread: drains the call queue every [`DRAIN_INTERVAL`] (or when asked), and
/// handles evaluations, feedback, flushes and stop from its control channel, each after the
/// calls queued before it.
struct MonitorWorker {
    control: Receiver<MonitorMsg>,
    calls: Receiver<QueuedCall>,
    queue: Arc<CallQueue>,
    monitor: Arc<Mutex<Monitor>>,
    c: Arc<Counters>,
    alerts: Option<AlertDispatcher>,
    dispatch: SharedDispatch,
    emit: bool,
}

impl MonitorWorker {
    fn run(self) {
        let mut idle = 0;
        loop {
            let msg = if idle >= IDLE_DRAINS_BEFORE_PARKING {
                self.park()
            } else {
                match self.control.recv_timeout(DRAIN_INTERVAL) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let had_msg = msg.is_some();
            let (stop, calls) = self.handle(msg);
            if stop {
                break;
            }
            idle = if had_msg || calls > 0 { 0 } else { idle + 1 };
        }
    }

    /// Blocks until a message comes (the next call sends one); `None` if calls were queued
    /// while parking.
    fn park(&self) -> Option<MonitorMsg> {
        self.queue.parked.store(true, Relaxed);
        // Pairs with the fence in `CallQueue::push`.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.queue.pending.load(Relaxed) > 0 {
            self.queue.parked.store(false, Relaxed);
            return None;
        }
        let msg = self.control.recv().ok();
        self.queue.parked.store(false, Relaxed);
        // A disconnected control channel (every sender gone) stops the monitor.
        Some(msg.unwrap_or(MonitorMsg::Stop))
    }

    /// Drains the calls, then handles `first` and up to [`MAX_PER_LOCK`] more control
    /// messages. Returns whether to stop, and how many calls were recorded.
    fn handle(&self, first: Option<MonitorMsg>) -> (bool, usize) {
        let mut records: Vec<EvaluationRecord> = Vec::new();
        let mut acks = Vec::new();
        let mut stop = false;
        let mut calls = self.drain_calls();
        {
            let mut m = self.monitor.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = first;
            let mut n = 0;
            while let Some(msg) = next.take() {
                match msg {
                    MonitorMsg::Drain => {}
                    MonitorMsg::Eval(b) => records.push(m.record_evaluation(&b.0, &b.1)),
                    MonitorMsg::Feedback(f) => records.push(m.record_feedback(&f).0),
                    MonitorMsg::Flush(a) => acks.push(a),
                    MonitorMsg::Stop => {
                        stop = true;
                        break;
                    }
                }
                n += 1;
                if n < MAX_PER_LOCK {
                    next = self.control.try_recv().ok();
                }
            }
            let raised = m.take_alerts();
            if let Some(d) = &self.alerts {
                for a in raised {
                    if d.send(a) {
                        self.c.alerts_sent.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        if !acks.is_empty() || stop {
            // Calls queued after this drain began but before the flush or stop was asked for.
            calls += self.drain_calls();
        }
        // Outside the lock: emitting runs the app's subscriber.
        for r in &records {
            self.emit_record(r);
        }
        for a in acks {
            let _ = a.send(());
        }
        (stop, calls)
    }

    /// Records every queued call, [`MAX_PER_LOCK`] per hold of the monitor lock; returns how
    /// many.
    fn drain_calls(&self) -> usize {
        self.queue.drain_requested.store(false, Relaxed);
        self.queue.pending.store(0, Relaxed);
        let mut total = 0;
        loop {
            let mut m = self.monitor.lock().unwrap_or_else(|e| e.into_inner());
            let mut n = 0;
            while n < MAX_PER_LOCK {
                let Ok(call) = self.calls.try_recv() else {
                    break;
                };
                match call {
                    QueuedCall::Packed(p) => m.record_call(&p.unpack()),
                    QueuedCall::Signals(s) => m.record_call(&s),
                }
                n += 1;
            }
            total += n;
            if n < MAX_PER_LOCK {
                return total;
            }
        }
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

/// What the evaluation thread holds.
struct EvalContext {
    slots: Vec<EvaluatorSlot>,
    counters: Arc<Counters>,
    max_chars: usize,
    /// Where evaluators' own spans go (remote evaluators trace their model calls): the
    /// pipeline's dispatcher when set, else the global default.
    dispatch: SharedDispatch,
    last_error: Arc<Mutex<Option<String>>>,
}

fn run_evals(rx: Receiver<EvalMsg>, to_monitor: SyncSender<MonitorMsg>, ctx: EvalContext) {
    let EvalContext {
        slots,
        counters: c,
        max_chars,
        dispatch,
        last_error,
    } = ctx;
    // Time for the timeouts; I/O too when remote evaluators are compiled in.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok();
    while let Ok(msg) = rx.recv() {
        let mut input = match msg {
            EvalMsg::Job(i) => i,
            EvalMsg::Flush(ack) => {
                // Forwarded behind the results already sent, so the monitor acks after them.
                let _ = to_monitor.send(MonitorMsg::Flush(ack));
                continue;
            }
            EvalMsg::Stop => break,
        };
        let Some(rt) = rt.as_ref() else {
            c.evals_dropped.fetch_add(1, Relaxed);
            continue;
        };
        input.answer = cut(&input.answer, max_chars).to_owned();
        if let Some(q) = input.question.as_mut() {
            *q = cut(q, max_chars).to_owned();
        }
        for d in input.context.iter_mut() {
            *d = cut(d, max_chars).to_owned();
        }
        let input: Arc<EvalInput> = Arc::from(input);
        for slot in &slots {
            if !sampled(&input, slot.evaluator.name(), slot.sampling) {
                c.evals_sampled_out.fetch_add(1, Relaxed);
                continue;
            }
            let weak = dispatch.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let d = weak.and_then(|w| w.upgrade());
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // The timer is created inside the runtime (it needs its time driver).
                let run = || {
                    rt.block_on(async {
                        tokio::time::timeout(slot.timeout, slot.evaluator.try_evaluate(&input))
                            .await
                    })
                };
                within(d.as_ref(), run)
            }));
            match r {
                Ok(Ok(Err(e))) => {
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
                    *last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("{name}: {e}"));
                }
                Ok(Ok(Ok(Some(ev)))) => {
                    c.evals_run.fetch_add(1, Relaxed);
                    // Blocking send: the evaluation thread waits for the monitor, never the
                    // request path.
                    let _ = to_monitor.send(MonitorMsg::Eval(Box::new((input.clone(), ev))));
                }
                Ok(Ok(Ok(None))) => {
                    c.evals_not_applicable.fetch_add(1, Relaxed);
                }
                Ok(Err(_)) => {
                    c.evals_timed_out.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    c.evals_panicked.fetch_add(1, Relaxed);
                }
            }
        }
    }
}
