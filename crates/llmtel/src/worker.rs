//! One background-worker primitive for every thread llmtel runs off the request path.
//!
//! A [`Worker`] owns one thread and a bounded queue of items. The request path only calls
//! [`Worker::send`], which never blocks, never allocates on its own and wakes nobody until
//! enough items are waiting: a full queue drops the item and counts it. The thread
//!
//! - **parks while idle** and wakes when [`WorkerBuilder::with_wake_at`] items are pending, at
//!   the [`interval`](WorkerBuilder::with_interval), or for a flush or shutdown; after a
//!   [long idle spell](WorkerBuilder::with_idle_sleep) it stops ticking and sleeps until the
//!   next item arrives;
//! - **polls while busy**: it drains the queue in batches of
//!   [`batch size`](WorkerBuilder::with_batch_size) and goes on without parking as long as
//!   full batches come out;
//! - hands each batch to its [`Job`], catching a panic so that a bad batch is counted
//!   ([`WorkerStats::panics`]) instead of killing the thread;
//! - answers [`Worker::flush`] once every item sent before the call has been processed and
//!   the job flushed (with a deadline, and whether every batch since the last flush
//!   succeeded), and [`Worker::shutdown`] once it has processed what is queued and shut the
//!   job down: a shutdown that times out says so, keeps waiting in the background, and a later
//!   call waits for the same answer instead of reporting a success it never saw; a flush that
//!   times out goes on in the background, and a failure it finds is reported by the next
//!   flush or the shutdown.
//!
//! Nothing the thread does reaches the application's `tracing` subscriber (the exporter's own
//! HTTP calls must not become spans of the pipeline that exports them), unless the worker is
//! built [`with_app_tracing`](WorkerBuilder::with_app_tracing). A timeout or interval of
//! `Duration::MAX` means none (no deadline, no tick). Every worker's
//! counters are listed by [`workers`], and the items they dropped are summed in
//! [`crate::Health::background_dropped`].
//!
//! ```
//! use std::time::Duration;
//! use llmtel::worker::{Job, Worker};
//!
//! /// Adds up what it is sent, on its own thread.
//! struct Sum(std::sync::Arc<std::sync::atomic::AtomicU64>);
//! impl Job for Sum {
//!     type Item = u64;
//!     fn process(&mut self, batch: Vec<u64>) -> Result<(), String> {
//!         self.0.fetch_add(batch.iter().sum(), std::sync::atomic::Ordering::Relaxed);
//!         Ok(())
//!     }
//! }
//!
//! let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
//! let sum = total.clone();
//! let worker = Worker::builder("doc-sum")
//!     .with_capacity(1024)
//!     .spawn(move || Ok::<_, String>(Sum(sum)))?;
//! for i in 1..=100 {
//!     worker.send(i).expect("the queue has room");
//! }
//! worker.flush(Duration::from_secs(5))?;
//! assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 5050);
//! assert_eq!(worker.stats().processed, 100);
//! worker.shutdown(Duration::from_secs(5))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crate::health::{COUNTERS, Padded, inc};

/// Flush and shutdown requests waiting for the thread at most; past it a request fails at
/// once with [`WorkerError::Busy`] (a thread stuck in its job cannot grow this queue).
const MAX_CONTROL: usize = 64;

/// What a [`Worker`]'s thread does with the items it is sent. Built on the thread itself
/// (see [`WorkerBuilder::spawn`]), so it need not be `Send`.
pub trait Job: 'static {
    /// What the request path sends.
    type Item: Send + 'static;

    /// Handles one batch, in the order the items were sent. An error is counted
    /// ([`WorkerStats::failed_batches`]) and reported by the next [`Worker::flush`].
    ///
    /// # Errors
    /// Whatever went wrong handling the batch, in words a user can act on.
    fn process(&mut self, batch: Vec<Self::Item>) -> Result<(), String>;

    /// Called at every interval, busy or idle, after the queue was drained (retry what
    /// failed, flush a file buffer, ...). Does nothing by default.
    fn tick(&mut self) {}

    /// Called by [`Worker::flush`] after every item sent before it was processed.
    ///
    /// # Errors
    /// What could not be flushed.
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Called once, after the last batch, when the worker shuts down. Flushes by default.
    ///
    /// # Errors
    /// What could not be finished.
    fn shutdown(&mut self) -> Result<(), String> {
        self.flush()
    }
}

/// A flush's or shutdown's answer: the job's own error (which can sum up every failed
/// batch), else the first failed batch's.
fn prefer_job(batches: Result<(), String>, job: Result<(), String>) -> Result<(), String> {
    job.and(batches)
}

/// `outcome`, with the failure of an earlier flush whose caller stopped waiting (`unread`)
/// joined to it: both messages (the spans one found unsent and those the next found) are
/// reported, neither replaces the other.
fn with_unread(unread: Option<Joined>, outcome: Result<(), String>) -> Result<(), Joined> {
    match (unread, outcome) {
        (None, outcome) => outcome.map_err(Joined::new),
        (Some(unread), Ok(())) => Err(unread),
        (Some(unread), Err(now)) => Err(join_capped(unread, &now)),
    }
}

/// Failure messages joined (`first; then second`), with the count of those joined after
/// them but not shown (past [`MAX_JOINED_FAILURE`]). The count is carried, not read back
/// from the text: a job's own message may end like the summary does.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Joined {
    shown: String,
    hidden: u64,
}

impl Joined {
    fn new(message: String) -> Self {
        Joined {
            shown: message,
            hidden: 0,
        }
    }

    /// The message a caller reads: what is shown, and how many later failures are not.
    fn render(self) -> String {
        match self.hidden {
            0 => self.shown,
            n => format!("{}; and {n} later failures not shown", self.shown),
        }
    }
}

/// `first; then second`, at most about [`MAX_JOINED_FAILURE`] bytes (flushes timing out one
/// after another against a black-holed collector would otherwise grow it without end): past
/// it, the earlier messages are kept and the later ones counted.
fn join_capped(first: Joined, second: &str) -> Joined {
    if first.hidden == 0 && first.shown.len() + second.len() + 7 <= MAX_JOINED_FAILURE {
        return Joined::new(format!("{}; then {second}", first.shown));
    }
    Joined {
        shown: first.shown,
        hidden: first.hidden.saturating_add(1),
    }
}

/// The longest failure message a worker keeps for a caller who stopped waiting.
const MAX_JOINED_FAILURE: usize = 4096;

/// Why a worker could not start, flush or shut down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// The OS would not start a thread.
    #[error("llmtel could not start its {name} thread: {reason}")]
    Thread {
        /// The worker's name.
        name: String,
        /// What the OS said.
        reason: String,
    },
    /// The job could not be built on the thread.
    #[error("llmtel's {name} thread could not start its work: {reason}")]
    Start {
        /// The worker's name.
        name: String,
        /// What went wrong (already redacted of credentials).
        reason: String,
    },
    /// The thread did not answer in time; the request stays with it and the thread goes on.
    #[error(
        "llmtel's {name} thread did not finish within {timeout:?}; it goes on in the background"
    )]
    Timeout {
        /// The worker's name.
        name: String,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// Too many flush or shutdown requests are already waiting for the thread.
    #[error("llmtel's {name} thread already has {MAX_CONTROL} requests waiting; retry later")]
    Busy {
        /// The worker's name.
        name: String,
    },
    /// The worker was shut down (or its thread ended).
    #[error("llmtel's {name} thread has stopped")]
    Stopped {
        /// The worker's name.
        name: String,
    },
    /// The job reported a failure (a batch, a flush or its shutdown).
    #[error("llmtel's {name} thread: {reason}")]
    Failed {
        /// The worker's name.
        name: String,
        /// What the job reported.
        reason: String,
    },
}

/// A snapshot of one worker's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkerStats {
    /// The worker's name (also its thread's name, prefixed with `llmtel-`).
    pub name: String,
    /// Items accepted on the queue.
    pub queued: u64,
    /// Items dropped because the queue was full or the worker had stopped.
    pub dropped: u64,
    /// Items handed to the job.
    pub processed: u64,
    /// Batches the job reported as failed.
    pub failed_batches: u64,
    /// Batches during which the job panicked (the thread carries on).
    pub panics: u64,
    /// Items waiting now.
    pub depth: u64,
}

#[derive(Debug)]
struct Counters {
    queued: Padded,
    dropped: Padded,
    processed: AtomicU64,
    failed_batches: AtomicU64,
    panics: AtomicU64,
}

enum Control {
    Flush(FlushAck),
    Shutdown(SyncSender<Result<(), String>>),
}

/// Where a flush's answer goes: the caller waits on it, the thread answers it. A caller that
/// stops waiting (its timeout) leaves it [`Abandoned`](FlushState::Abandoned), under the same
/// lock the thread answers under, so the thread knows for certain whether its answer was
/// read: one nobody read keeps its failure for the next flush or shutdown.
#[derive(Default)]
struct Flush {
    state: Mutex<FlushState>,
    answered: Condvar,
}

#[derive(Default)]
enum FlushState {
    #[default]
    Waiting,
    Answered(Result<(), String>),
    /// The caller stopped waiting.
    Abandoned,
    /// The thread ended without answering.
    Gone,
}

/// The thread's end of a [`Flush`]: dropped unanswered (the thread ended), the caller is told.
struct FlushAck(Arc<Flush>);

impl FlushAck {
    /// Answers the flush; gives the outcome back, its count of failures not shown included,
    /// when its caller stopped waiting.
    fn answer(self, outcome: Result<(), Joined>) -> Result<(), Result<(), Joined>> {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, FlushState::Abandoned) {
            return Err(outcome);
        }
        *state = FlushState::Answered(outcome.map_err(Joined::render));
        drop(state);
        self.0.answered.notify_all();
        Ok(())
    }
}

impl Drop for FlushAck {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, FlushState::Waiting) {
            *state = FlushState::Gone;
            drop(state);
            self.0.answered.notify_all();
        }
    }
}

impl Flush {
    /// Waits up to `timeout` for the thread's answer; past it, leaves the flush to the thread.
    fn wait(&self, shared: &Shared, timeout: Duration) -> Result<(), WorkerError> {
        // `None`: no deadline (`Duration::MAX` overflows `now + timeout`).
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match std::mem::take(&mut *state) {
                FlushState::Answered(Ok(())) => return Ok(()),
                FlushState::Answered(Err(reason)) => {
                    return Err(WorkerError::Failed {
                        name: shared.name.clone(),
                        reason,
                    });
                }
                FlushState::Gone | FlushState::Abandoned => {
                    return Err(WorkerError::Stopped {
                        name: shared.name.clone(),
                    });
                }
                FlushState::Waiting => {}
            }
            let now = Instant::now();
            state = match deadline {
                Some(d) if now >= d => {
                    // Under the lock the thread answers under: from here on its answer is
                    // kept for the next flush or shutdown.
                    *state = FlushState::Abandoned;
                    return Err(WorkerError::Timeout {
                        name: shared.name.clone(),
                        timeout,
                    });
                }
                Some(d) => {
                    self.answered
                        .wait_timeout(state, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.answered.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

/// State shared by the senders and the thread.
struct Shared {
    name: String,
    /// Items sent since the thread last took them off the queue.
    pending: Padded,
    /// Whether the thread was already woken for the pending items.
    woken: AtomicBool,
    /// Whether the thread sleeps without a timeout (idle), so the next item must wake it.
    asleep: AtomicBool,
    /// A shutdown began: [`Worker::send`] drops and counts. Once the thread has set it, it
    /// waits for the sends already under way (counted in `pending`) to settle before it
    /// ends, counting what they put in the queue as dropped.
    closing: AtomicBool,
    wake_at: usize,
    capacity: usize,
    has_control: AtomicBool,
    control: Mutex<VecDeque<Control>>,
    counters: Counters,
}

impl Shared {
    fn stats(&self) -> WorkerStats {
        let c = &self.counters;
        WorkerStats {
            name: self.name.clone(),
            queued: c.queued.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            processed: c.processed.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            panics: c.panics.load(Ordering::Relaxed),
            depth: self.pending.load(Ordering::Relaxed),
        }
    }
}

/// Every worker started in this process (live ones are listed by [`workers`]).
static REGISTRY: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// The counters of every worker alive in this process: the export queue, the call-log
/// writer, the budget writer, the alert dispatcher, the quality monitor, ...
pub fn workers() -> Vec<WorkerStats> {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.retain(|w| w.strong_count() > 0);
    reg.iter()
        .filter_map(Weak::upgrade)
        .map(|s| s.stats())
        .collect()
}

/// Settings of a [`Worker`]; [`WorkerBuilder::spawn`] starts it.
#[derive(Clone, Debug)]
pub struct WorkerBuilder {
    name: String,
    capacity: usize,
    batch_size: usize,
    wake_at: Option<usize>,
    interval: Duration,
    idle_sleep: Option<Duration>,
    idle_tick: Option<Duration>,
    linger: Duration,
    drop_timeout: Duration,
    app_tracing: bool,
}

impl WorkerBuilder {
    /// Items held at most (default 1024, at least 1); past it [`Worker::send`] drops and
    /// counts.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Items per batch handed to the job (default 512, at least 1, at most the capacity).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Pending items that wake the parked thread (default: the batch size). `1` wakes it for
    /// every item (alerts); a larger value lets items gather into batches between intervals.
    pub fn with_wake_at(mut self, wake_at: usize) -> Self {
        self.wake_at = Some(wake_at.max(1));
        self
    }

    /// Longest an item waits while fewer than the wake threshold are pending, and how often
    /// [`Job::tick`] runs (default 1 s).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Once woken for a partial batch, how long the thread waits for more items before it
    /// hands the batch over (default none): with a store one round trip away, many items per
    /// write are worth a millisecond or two of latency.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// How long without any item before the thread stops waking at each interval and sleeps
    /// until the next item (default 10 s); `None` keeps it ticking (a job whose
    /// [`Job::tick`] retries work, say).
    pub fn with_idle_sleep(mut self, after: Option<Duration>) -> Self {
        self.idle_sleep = after;
        self
    }

    /// While asleep after an idle spell, still wake this often to call [`Job::tick`] (and
    /// go back to sleep): a job whose tick follows the clock (the quality monitor closes
    /// its windows when no call comes). Default `None`: asleep, the thread waits for items.
    pub fn with_idle_tick(mut self, every: Option<Duration>) -> Self {
        self.idle_tick = every.map(|d| d.max(Duration::from_millis(1)));
        self
    }

    /// Lets the thread's spans and events reach the application's default subscriber (the
    /// quality pipeline emits evaluation results, and its evaluators trace their own model
    /// calls). Off by default: the thread runs under a subscriber that records nothing.
    pub fn with_app_tracing(mut self, on: bool) -> Self {
        self.app_tracing = on;
        self
    }

    /// How long dropping the last handle waits for the thread to finish what is queued
    /// (default 5 s); past it the thread finishes in the background.
    pub fn with_drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Starts the thread and builds the job on it with `make_job` (so a job can own a tokio
    /// runtime, a file or a connection made there). Returns once the job is built.
    ///
    /// # Errors
    /// [`WorkerError::Thread`] when the OS will not start a thread, [`WorkerError::Start`]
    /// with `make_job`'s error (redacted of credentials) when the job cannot be built.
    pub fn spawn<J, F, E>(self, make_job: F) -> Result<Worker<J::Item>, WorkerError>
    where
        J: Job,
        F: FnOnce() -> Result<J, E> + Send + 'static,
        E: fmt::Display,
    {
        let batch_size = self.batch_size.min(self.capacity);
        let (tx, rx) = mpsc::sync_channel::<J::Item>(self.capacity);
        let shared = Arc::new(Shared {
            name: self.name.clone(),
            pending: Padded(AtomicU64::new(0)),
            woken: AtomicBool::new(false),
            asleep: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            wake_at: self.wake_at.unwrap_or(batch_size),
            capacity: self.capacity,
            has_control: AtomicBool::new(false),
            control: Mutex::new(VecDeque::new()),
            counters: Counters {
                queued: Padded(AtomicU64::new(0)),
                dropped: Padded(AtomicU64::new(0)),
                processed: AtomicU64::new(0),
                failed_batches: AtomicU64::new(0),
                panics: AtomicU64::new(0),
            },
        });
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), String>>(1);
        let theirs = shared.clone();
        let interval = self.interval;
        let idle_sleep = self.idle_sleep;
        let idle_tick = self.idle_tick;
        let linger = self.linger;
        let app_tracing = self.app_tracing;
        let handle = std::thread::Builder::new()
            .name(format!("llmtel-{}", self.name))
            .spawn(move || {
                // Nothing on this thread reaches the app's subscriber, unless asked.
                let _quiet = (!app_tracing).then(|| {
                    tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default())
                });
                let job = match catch_unwind(AssertUnwindSafe(make_job)) {
                    Ok(Ok(job)) => job,
                    Ok(Err(e)) => {
                        let _ = ready_tx.send(Err(crate::redact::redact_string(e.to_string())));
                        return;
                    }
                    Err(_) => {
                        let _ = ready_tx.send(Err("building the job panicked".into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                Runner {
                    job,
                    rx,
                    shared: theirs,
                    batch_size,
                    interval,
                    idle_sleep,
                    idle_tick,
                    linger,
                    failure: None,
                    unread: None,
                }
                .run();
            })
            .map_err(|e| WorkerError::Thread {
                name: self.name.clone(),
                reason: e.to_string(),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                let _ = handle.join();
                return Err(WorkerError::Start {
                    name: self.name,
                    reason,
                });
            }
            Err(_) => {
                let _ = handle.join();
                return Err(WorkerError::Start {
                    name: self.name,
                    reason: "the thread ended before its job was built".into(),
                });
            }
        }
        {
            let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
            reg.retain(|w| w.strong_count() > 0);
            reg.push(Arc::downgrade(&shared));
        }
        Ok(Worker {
            inner: Arc::new(Inner {
                thread: handle.thread().clone(),
                items: tx,
                shared,
                lifecycle: Mutex::new(Lifecycle::Running(handle)),
                drop_timeout: self.drop_timeout,
            }),
        })
    }
}

/// Where the thread is in its life.
enum Lifecycle {
    Running(JoinHandle<()>),
    /// A shutdown was requested and has not answered yet.
    Stopping {
        handle: JoinHandle<()>,
        ack: Receiver<Result<(), String>>,
    },
    /// Shut down, with the first shutdown's outcome.
    Stopped(Result<(), String>),
}

struct Inner<T> {
    thread: Thread,
    items: SyncSender<T>,
    shared: Arc<Shared>,
    lifecycle: Mutex<Lifecycle>,
    drop_timeout: Duration,
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        let _ = shutdown(
            &self.shared,
            &self.thread,
            &self.lifecycle,
            self.drop_timeout,
        );
    }
}

/// A handle on a background thread with a bounded queue (see the [module docs](self)).
/// Cheap to clone; clones share the thread, which stops, after processing what is queued,
/// at [`Worker::shutdown`] or when the last clone is dropped.
pub struct Worker<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Worker<T> {
    fn clone(&self) -> Self {
        Worker {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("stats", &self.inner.shared.stats())
            .finish()
    }
}

impl Worker<()> {
    /// Settings for a worker called `name` (its thread is `llmtel-<name>`): capacity 1024,
    /// batches of 512, woken at a full batch, interval 1 s.
    pub fn builder(name: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            name: name.into(),
            capacity: 1024,
            batch_size: 512,
            wake_at: None,
            interval: Duration::from_secs(1),
            idle_sleep: Some(Duration::from_secs(10)),
            idle_tick: None,
            linger: Duration::ZERO,
            app_tracing: false,
            drop_timeout: Duration::from_secs(5),
        }
    }
}

impl<T: Send + 'static> Worker<T> {
    /// Queues an item without blocking. A full queue, or a stopped worker, gives the item back
    /// and counts it as dropped ([`WorkerStats::dropped`], [`crate::Health::background_dropped`]).
    ///
    /// # Errors
    /// The item, when it was dropped.
    #[inline]
    pub fn send(&self, item: T) -> Result<(), T> {
        let shared = &*self.inner.shared;
        if shared.closing.load(Ordering::SeqCst) {
            // Refused without touching `pending`: senders in a loop during a shutdown do not
            // keep the thread waiting for them.
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            inc(&COUNTERS.background_dropped);
            return Err(item);
        }
        // Counted before the item is in the queue, so the thread, which subtracts what it
        // takes, never subtracts an item not yet counted. SeqCst with the thread's `asleep`
        // store and `pending` load: either it sees this item before it sleeps, or this sees
        // that it sleeps.
        let pending = shared.pending.fetch_add(1, Ordering::SeqCst) + 1;
        let refuse = |item| {
            shared.pending.fetch_sub(1, Ordering::SeqCst);
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            inc(&COUNTERS.background_dropped);
            Err(item)
        };
        // Checked after `pending` counts this send (SeqCst with the thread's `closing` store
        // and `pending` load): either the thread waits for this send before it ends, or this
        // sees that a shutdown began. An item queued after the thread's last drain was never
        // processed nor counted.
        if shared.closing.load(Ordering::SeqCst) {
            return refuse(item);
        }
        match self.inner.items.try_send(item) {
            Ok(()) => {
                shared.counters.queued.fetch_add(1, Ordering::Relaxed);
                if (pending >= shared.wake_at as u64 || shared.asleep.load(Ordering::SeqCst))
                    && !shared.woken.swap(true, Ordering::AcqRel)
                {
                    self.inner.thread.unpark();
                }
                Ok(())
            }
            Err(TrySendError::Full(item) | TrySendError::Disconnected(item)) => refuse(item),
        }
    }

    /// Waits up to `timeout` until every item sent before this call has been processed and
    /// the job flushed.
    ///
    /// # Errors
    /// [`WorkerError::Failed`] when a batch since the last flush, or the job's flush, failed;
    /// [`WorkerError::Timeout`], [`WorkerError::Busy`] or [`WorkerError::Stopped`] when the
    /// thread did not answer. A flush that timed out goes on in the background, and the
    /// failure it finds (a failed batch, the job's flush) is reported by the next flush or by
    /// the shutdown, never lost: the job may have emptied what it reports (the export queue's
    /// count of spans not sent) for this answer.
    pub fn flush(&self, timeout: Duration) -> Result<(), WorkerError> {
        let shared = &self.inner.shared;
        if !matches!(
            &*self
                .inner
                .lifecycle
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            Lifecycle::Running(_)
        ) {
            return Err(WorkerError::Stopped {
                name: shared.name.clone(),
            });
        }
        let flush = Arc::new(Flush::default());
        request(
            shared,
            &self.inner.thread,
            Control::Flush(FlushAck(flush.clone())),
        )?;
        flush.wait(shared, timeout)
    }

    /// Processes what is queued, shuts the job down and joins the thread, waiting at most
    /// `timeout`. Items sent once the shutdown began are dropped and counted.
    ///
    /// # Errors
    /// As [`Worker::flush`]. A shutdown that timed out goes on in the background; calling
    /// again waits for its answer. Once shut down, every call returns the first outcome.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), WorkerError> {
        let i = &self.inner;
        shutdown(&i.shared, &i.thread, &i.lifecycle, timeout)
    }

    /// Whether the queue is full now, so a caller can skip building an item it would drop
    /// (and count that drop with [`Worker::count_dropped`]).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.inner.shared.pending.load(Ordering::Relaxed) >= self.inner.shared.capacity as u64
    }

    /// Counts an item the caller dropped without sending it (after [`Worker::is_full`]).
    pub fn count_dropped(&self) {
        self.inner
            .shared
            .counters
            .dropped
            .fetch_add(1, Ordering::Relaxed);
        inc(&COUNTERS.background_dropped);
    }

    /// This worker's counters.
    pub fn stats(&self) -> WorkerStats {
        self.inner.shared.stats()
    }
}

fn request(shared: &Shared, thread: &Thread, msg: Control) -> Result<(), WorkerError> {
    {
        let mut q = shared.control.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_CONTROL {
            return Err(WorkerError::Busy {
                name: shared.name.clone(),
            });
        }
        q.push_back(msg);
        shared.has_control.store(true, Ordering::Release);
    }
    thread.unpark();
    Ok(())
}

fn answer(
    shared: &Shared,
    ack: &Receiver<Result<(), String>>,
    timeout: Duration,
) -> Result<(), WorkerError> {
    match ack.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(WorkerError::Failed {
            name: shared.name.clone(),
            reason,
        }),
        Err(RecvTimeoutError::Timeout) => Err(WorkerError::Timeout {
            name: shared.name.clone(),
            timeout,
        }),
        Err(RecvTimeoutError::Disconnected) => Err(WorkerError::Stopped {
            name: shared.name.clone(),
        }),
    }
}

fn shutdown(
    shared: &Shared,
    thread: &Thread,
    lifecycle: &Mutex<Lifecycle>,
    timeout: Duration,
) -> Result<(), WorkerError> {
    // The thread cannot wait for itself (its job dropped the last handle): ask, and go on.
    let own_thread = std::thread::current().id() == thread.id();
    let timeout = if own_thread { Duration::ZERO } else { timeout };
    // `None`: no deadline (`Duration::MAX`, "as long as it takes", overflowed `now + timeout`:
    // a panic, in `Drop` too, where a panic while unwinding aborts).
    let deadline = Instant::now().checked_add(timeout);
    let mut state = lifecycle.lock().unwrap_or_else(|e| e.into_inner());
    let placeholder = Lifecycle::Stopped(Err("shutdown in progress".into()));
    let (handle, ack) = match std::mem::replace(&mut *state, placeholder) {
        Lifecycle::Stopped(outcome) => {
            *state = Lifecycle::Stopped(outcome.clone());
            return outcome.map_err(|reason| WorkerError::Failed {
                name: shared.name.clone(),
                reason: format!("an earlier shutdown failed: {reason}"),
            });
        }
        Lifecycle::Running(handle) => {
            let (ack_tx, ack_rx) = mpsc::sync_channel(1);
            // From now on items are dropped and counted, not queued behind the shutdown.
            shared.closing.store(true, Ordering::SeqCst);
            if let Err(e) = request(shared, thread, Control::Shutdown(ack_tx)) {
                // Still running: the items refused meanwhile were counted as dropped.
                shared.closing.store(false, Ordering::SeqCst);
                *state = Lifecycle::Running(handle);
                return Err(e);
            }
            (handle, ack_rx)
        }
        Lifecycle::Stopping { handle, ack } => (handle, ack),
    };
    let left = deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    });
    match answer(shared, &ack, left) {
        Err(WorkerError::Timeout { name, .. }) => {
            *state = Lifecycle::Stopping { handle, ack };
            Err(WorkerError::Timeout { name, timeout })
        }
        r => {
            let _ = handle.join();
            *state = Lifecycle::Stopped(match &r {
                Ok(()) => Ok(()),
                Err(e) => Err(e.to_string()),
            });
            r
        }
    }
}

/// What one [`Runner::drain`] did.
#[derive(Default)]
struct Drained {
    /// Items handed to the job.
    items: usize,
    /// Every sender is gone.
    disconnected: bool,
}

/// The thread's side.
struct Runner<J: Job> {
    job: J,
    rx: Receiver<J::Item>,
    shared: Arc<Shared>,
    batch_size: usize,
    interval: Duration,
    idle_sleep: Option<Duration>,
    idle_tick: Option<Duration>,
    linger: Duration,
    /// The first batch failure since the last flush.
    failure: Option<String>,
    /// The answer of a flush whose caller stopped waiting (the job's report, emptied for that
    /// answer, included): joined to the next flush's or the shutdown's answer.
    unread: Option<Joined>,
}

impl<J: Job> Runner<J> {
    fn run(mut self) {
        // `None`: never (an interval of `Duration::MAX` overflowed `now + interval`: a panic
        // outside the job's `catch_unwind`, which ended the thread and lost its queue).
        let after = |t: Instant, d: Duration| t.checked_add(d);
        let mut next_tick = after(Instant::now(), self.interval);
        let mut last_item = Instant::now();
        loop {
            if self.shared.has_control.swap(false, Ordering::AcqRel) {
                let requests: Vec<Control> = self
                    .shared
                    .control
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain(..)
                    .collect();
                for r in requests {
                    match r {
                        Control::Flush(ack) => {
                            self.drain(false);
                            let batches = self.failure.take().map_or(Ok(()), Err);
                            let flushed = self.guard(|j| j.flush());
                            let outcome =
                                with_unread(self.unread.take(), prefer_job(batches, flushed));
                            if let Err(Err(unread)) = ack.answer(outcome) {
                                // Its caller timed out: the next flush or the shutdown reports
                                // it (the job's report, such as the export queue's count of
                                // spans not sent, was emptied for this answer), joined to its
                                // own answer (kept with the batch failures, the job's own
                                // failure replaced it).
                                self.unread = Some(unread);
                            }
                        }
                        Control::Shutdown(ack) => {
                            // (`finish` refuses what is sent from here on.)
                            let outcome = self.finish();
                            let _ = ack.send(outcome);
                            return;
                        }
                    }
                }
            }
            self.shared.woken.store(false, Ordering::Release);
            let drained = self.drain(true);
            if drained.disconnected {
                // Every handle is gone without a shutdown request (cannot happen through
                // `Worker`, whose last drop asks for one): finish quietly.
                let _ = self.finish();
                return;
            }
            let now = Instant::now();
            if drained.items > 0 {
                last_item = now;
            }
            if next_tick.is_some_and(|t| now >= t) {
                let _ = self.guard(|j| {
                    j.tick();
                    Ok(())
                });
                next_tick = after(now, self.interval);
            }
            if self
                .idle_sleep
                .is_some_and(|after| now.duration_since(last_item) >= after)
            {
                self.shared.asleep.store(true, Ordering::SeqCst);
                let nothing_to_do = || {
                    self.shared.pending.load(Ordering::SeqCst) == 0
                        && !self.shared.has_control.load(Ordering::SeqCst)
                };
                if nothing_to_do() {
                    match self.idle_tick {
                        Some(every) => std::thread::park_timeout(every),
                        None => std::thread::park(),
                    }
                }
                self.shared.asleep.store(false, Ordering::SeqCst);
                if self.idle_tick.is_some() && nothing_to_do() {
                    // Woken by the clock: tick (once: the interval's tick is not due) and
                    // sleep again, still idle.
                    let _ = self.guard(|j| {
                        j.tick();
                        Ok(())
                    });
                    next_tick = after(Instant::now(), self.interval);
                    continue;
                }
                last_item = Instant::now();
                next_tick = after(last_item, self.interval);
                continue;
            }
            // Park unless woken meanwhile (an unpark before this park returns at once).
            match next_tick {
                Some(t) => std::thread::park_timeout(t.saturating_duration_since(Instant::now())),
                None => std::thread::park(),
            }
        }
    }

    /// The last drain: refuses further items, then processes every item a send accepted,
    /// those of sends under way included (each counted itself in `pending` before it could
    /// see `closing`, and queues its item or gives up within a few instructions), then shuts
    /// the job down.
    fn finish(&mut self) -> Result<(), String> {
        self.shared.closing.store(true, Ordering::SeqCst);
        loop {
            self.drain(false);
            if self.shared.pending.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::yield_now();
        }
        let batches = self.failure.take().map_or(Ok(()), Err);
        let done = self.guard(|j| j.shutdown());
        with_unread(self.unread.take(), prefer_job(batches, done)).map_err(Joined::render)
    }

    /// Runs a job hook, counting a panic as a failure.
    fn guard(&mut self, f: impl FnOnce(&mut J) -> Result<(), String>) -> Result<(), String> {
        match catch_unwind(AssertUnwindSafe(|| f(&mut self.job))) {
            Ok(r) => r,
            Err(_) => {
                self.shared.counters.panics.fetch_add(1, Ordering::Relaxed);
                Err("the job panicked".into())
            }
        }
    }

    /// Processes everything queued now, a batch at a time (lingering once for a partial
    /// batch when `linger`).
    fn drain(&mut self, linger: bool) -> Drained {
        let mut lingered = !linger || self.linger.is_zero();
        let mut drained = Drained::default();
        loop {
            let mut batch = Vec::with_capacity(self.batch_size.min(64));
            while batch.len() < self.batch_size {
                match self.rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(TryRecvError::Empty) if !lingered && !batch.is_empty() => {
                        // One sleep for the rest of the linger rather than a wake-up per
                        // item: senders then never wake this thread meanwhile.
                        lingered = true;
                        std::thread::sleep(self.linger);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        drained.disconnected = true;
                        break;
                    }
                }
            }
            if batch.is_empty() {
                return drained;
            }
            let n = batch.len();
            drained.items += n;
            self.shared.pending.fetch_sub(n as u64, Ordering::AcqRel);
            self.shared
                .counters
                .processed
                .fetch_add(n as u64, Ordering::Relaxed);
            if let Err(e) = self.guard(|j| j.process(batch)) {
                self.shared
                    .counters
                    .failed_batches
                    .fetch_add(1, Ordering::Relaxed);
                self.failure.get_or_insert(e);
            }
            if n < self.batch_size || drained.disconnected {
                return drained;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Joined, join_capped};

    /// Flushes timing out one after another join their failures, never past the cap, and
    /// count exactly those not shown.
    #[test]
    fn joined_unread_failures_stay_bounded() {
        let mut unread = Joined::new("first: 3 spans were not sent".to_owned());
        for i in 0..10_000 {
            unread = join_capped(unread, &format!("flush {i}: 2 spans were not sent"));
        }
        let shown = unread.shown.matches("; then ").count() as u64;
        assert_eq!(
            shown + unread.hidden,
            10_000,
            "every failure is shown or counted"
        );
        let unread = unread.render();
        assert!(
            unread.len() <= super::MAX_JOINED_FAILURE + 64,
            "{}",
            unread.len()
        );
        assert!(
            unread.starts_with("first: 3 spans were not sent; then flush 0"),
            "{unread}"
        );
        let n: u64 = unread
            .rsplit_once("; and ")
            .and_then(|(_, n)| n.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert_eq!(n, 10_000 - shown, "{unread}");
        // Two short ones are joined whole.
        assert_eq!(
            join_capped(Joined::new("a".into()), "b").render(),
            "a; then b"
        );
    }

    /// A job's message that ends like the summary of failures not shown is joined as any
    /// other: the count is carried, not read back from the text (a message ending
    /// `; and 7 later failures not shown` became `; and 8 ...`, the next failure lost).
    #[test]
    fn a_message_ending_like_the_summary_is_not_taken_for_it() {
        let first = Joined::new("sink said: x; and 7 later failures not shown".to_owned());
        assert_eq!(
            join_capped(first, "2 spans were not sent").render(),
            "sink said: x; and 7 later failures not shown; then 2 spans were not sent"
        );
    }
}
