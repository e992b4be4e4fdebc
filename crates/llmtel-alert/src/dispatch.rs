//! Delivery off the request path: a bounded queue and one dispatcher thread, on llmtel's
//! background-worker primitive ([`llmtel::worker`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmtel::worker::{Job, Worker, WorkerError};

use crate::alert::{Alert, AlertState};
use crate::sink::AlertSink;

/// Largest number of alerts handed to a sink in one `send`.
const MAX_BATCH: usize = 64;

/// How long dropping the last dispatcher waits for queued alerts to be delivered.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`AlertDispatcher::shutdown`] waits: the sinks bound their own retries, this only
/// bounds a sink that hangs.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Counters of an [`AlertDispatcher`] (each alert counts once per sink for `delivered` and
/// `failed`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DispatchStats {
    /// Alerts accepted on the queue.
    pub queued: u64,
    /// Alerts dropped because the queue was full or the dispatcher had stopped (or could not
    /// start), and those still queued when a shutdown timed out.
    pub dropped: u64,
    /// Alert deliveries that succeeded (alert x sink).
    pub delivered: u64,
    /// Alert deliveries that failed after the sink's retries (alert x sink).
    pub failed: u64,
    /// Resolved alerts that found the queue full and were kept aside (at most 1,024 at a
    /// time) instead of dropped, with a sink that re-sends lasting alerts: each is delivered
    /// after the alerts queued before it, and the lasting alert it resolves stops being sent
    /// again. Not counted in `queued`.
    pub resolves_kept: u64,
    /// Lasting alerts ([`Alert::until_resolved`]) delivered once but not sent again, because
    /// 1,024 others were already kept for re-sending (logged once).
    pub lasting_untracked: u64,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    /// Alerts dropped because the thread could not start.
    unstarted: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    /// Lasting alerts not kept for re-sending ([`MAX_LASTING`] reached).
    lasting_untracked: AtomicU64,
    /// Resolved alerts kept aside ([`Aside::kept`]).
    resolves_kept: AtomicU64,
    /// Of those, the ones the worker had counted as dropped (another sender took the last
    /// place between the check and the send): taken off `dropped`.
    kept_after_drop: AtomicU64,
    /// Alerts the thread skipped after a timed-out shutdown that it had not counted then.
    abandoned: AtomicU64,
    /// A warning for the app's log is due (see [`Counters::warn_pending`]).
    warn_untracked: AtomicBool,
    /// Whether the untracked-lasting warning was raised already (it is raised once).
    warned_untracked: AtomicBool,
    /// Resolved alerts kept aside and what a timed-out shutdown left.
    aside: Mutex<Aside>,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    fn aside(&self) -> std::sync::MutexGuard<'_, Aside> {
        self.aside.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Emits the warnings the dispatcher thread raised, on the caller's thread: the
    /// dispatcher's own runs with tracing off (or without the app's subscriber, set after the
    /// sinks were built).
    fn warn_pending(&self) {
        if self.warn_untracked.load(Relaxed) && self.warn_untracked.swap(false, Relaxed) {
            tracing::warn!(
                target: "llmtel_alert",
                "llmtel-alert: {MAX_LASTING} lasting alerts are already kept for re-sending; \
                 further ones are delivered once and not sent again until resolved (counted \
                 in DispatchStats::lasting_untracked)"
            );
        }
    }
}

/// What the senders and the dispatcher thread share besides the queue, under one lock (taken
/// by the thread once a batch, by a sender only when the queue is full).
#[derive(Debug, Default)]
struct Aside {
    /// Resolved alerts that found the queue full, each with the number of alerts queued
    /// before it (the thread delivers it once it has taken as many) and whether the worker
    /// counted it as dropped already (a send that lost the last place), at most
    /// [`MAX_LASTING`].
    kept: Vec<(u64, Alert, bool)>,
    /// Alerts the thread has taken off the queue.
    seen: u64,
    /// A shutdown was asked for: nothing more is kept aside.
    closed: bool,
    /// A shutdown timed out: the thread skips what it had not taken then, already counted
    /// as dropped.
    abandoned: bool,
    /// Of the alerts skipped from now on, how many were counted as dropped at that time.
    prepaid: u64,
}

/// Builds an [`AlertDispatcher`].
#[derive(Debug)]
pub struct DispatcherBuilder {
    sinks: Vec<Arc<dyn AlertSink>>,
    capacity: usize,
}

impl DispatcherBuilder {
    /// Adds a sink; every alert goes to every sink.
    pub fn with_sink(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Queue capacity (default 1024, at least 1). Alerts beyond it are dropped and counted.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Starts the dispatcher thread. If the thread cannot be spawned, the dispatcher drops
    /// (and counts) every alert instead of failing; the error is its
    /// [`DispatchStats::last_error`], logged at the first alert dropped and returned by
    /// [`AlertDispatcher::shutdown`].
    pub fn build(self) -> AlertDispatcher {
        let counters = Arc::new(Counters::default());
        let resend = self.sinks.iter().filter_map(|s| s.resend_interval()).min();
        let logs_to_app = self.sinks.iter().any(|s| s.logs_to_app());
        let job = Deliver {
            // The subscriber current here, for the sinks that log to the app: a scoped one
            // (`with_default`) is only reachable this way. None yet (the global one is often
            // set after the sinks are built): the thread then uses the global default.
            app: {
                let current = tracing::dispatcher::get_default(Clone::clone);
                (!current.is::<tracing::subscriber::NoSubscriber>()).then_some(current)
            },
            sinks: self.sinks,
            counters: counters.clone(),
            lasting: std::collections::HashMap::new(),
            resend,
            last_resend: std::time::Instant::now(),
        };
        // Alerts go out as soon as they are raised: the thread wakes for each one. With a
        // sink that needs lasting alerts re-sent, it keeps ticking while idle.
        let mut builder = Worker::builder("alert")
            .with_capacity(self.capacity)
            .with_batch_size(MAX_BATCH)
            .with_wake_at(1)
            .with_drop_timeout(DROP_TIMEOUT)
            // With a sink that logs to the app and no subscriber current at build, its
            // events go to the global one (set after the sinks are built, as in the
            // examples); otherwise the thread runs with tracing off.
            .with_app_tracing(logs_to_app);
        if let Some(every) = resend {
            builder = builder
                .with_interval((every / 4).clamp(Duration::from_millis(25), Duration::from_secs(5)))
                .with_idle_sleep(None);
        }
        let (worker, start_error) =
            match builder.spawn(move || Ok::<_, std::convert::Infallible>(job)) {
                Ok(w) => (Some(w), None),
                Err(e) => {
                    // Shown in the stats' last error, in a warning at the first alert dropped
                    // and by `shutdown`.
                    *counters
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    (None, Some(e))
                }
            };
        AlertDispatcher {
            worker,
            start_error,
            keep_resolves: resend.is_some(),
            counters,
        }
    }
}

/// The dispatcher thread's job: every batch to every sink, and the lasting alerts again to
/// the sinks that need them re-sent.
struct Deliver {
    app: Option<tracing::Dispatch>,
    sinks: Vec<Arc<dyn AlertSink>>,
    counters: Arc<Counters>,
    /// The firing alerts marked `until_resolved`, by identity (name and labels), at most
    /// [`MAX_LASTING`]; a resolved alert removes its own.
    lasting: std::collections::HashMap<(String, std::collections::BTreeMap<String, String>), Alert>,
    /// The shortest re-send interval of the sinks, if any needs one.
    resend: Option<Duration>,
    last_resend: std::time::Instant,
}

/// Lasting alerts kept for re-sending (the budgets' and the monitor's: a handful); past it a
/// new one is delivered once, as before.
const MAX_LASTING: usize = 1024;

impl Deliver {
    /// Sends `batch` to `sink` (under the app's subscriber when it logs to it), a panic
    /// caught; a failure or panic is counted and kept as the last error, a success counted as
    /// delivered when `count_delivered` (a re-send was delivered already).
    fn send_to(&self, sink: &Arc<dyn AlertSink>, batch: &[Alert], count_delivered: bool) {
        let send = || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                match (&self.app, sink.logs_to_app()) {
                    (Some(app), true) => {
                        tracing::dispatcher::with_default(app, || sink.send(batch))
                    }
                    _ => sink.send(batch),
                }
            }))
        };
        let n = batch.len() as u64;
        let c = &self.counters;
        let error = match send() {
            Ok(Ok(())) => {
                if count_delivered {
                    c.delivered.fetch_add(n, Relaxed);
                }
                return;
            }
            Ok(Err(e)) => llmtel::redact::redact_string(e.to_string()),
            Err(_) => format!("{}: sink panicked", sink.name()),
        };
        c.failed.fetch_add(n, Relaxed);
        *c.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// Keeps the lasting alerts of `batch` up to date: a firing one replaces its identity's,
    /// a resolved one removes it and takes the severity it fired with. Returns the resolves
    /// of the lasting alerts replaced by one of another severity.
    ///
    /// Alertmanager's identity of an alert is all its labels, `severity` included: a resolve
    /// raised with another severity than its alert fired with (a monitor that re-rates the
    /// condition when it ends) ended an alert that never fired there, and the one that did
    /// stayed firing until its `resolve_timeout`; so did the first severity of an alert
    /// raised again with another (a warning become critical), no longer sent again.
    fn track(&mut self, batch: &mut [Alert]) -> Vec<Alert> {
        let mut replaced = Vec::new();
        if self.resend.is_none() {
            return replaced;
        }
        for a in batch {
            let id = (a.name.clone(), a.labels.clone());
            match a.state {
                AlertState::Resolved => {
                    if let Some(fired) = self.lasting.remove(&id) {
                        a.severity = fired.severity;
                    }
                }
                AlertState::Firing if a.until_resolved => {
                    if self.lasting.len() < MAX_LASTING || self.lasting.contains_key(&id) {
                        if let Some(old) = self.lasting.insert(id, a.clone()) {
                            if old.severity != a.severity {
                                replaced.push(old.resolved());
                            }
                        }
                    } else {
                        let c = &self.counters;
                        c.lasting_untracked.fetch_add(1, Relaxed);
                        if !c.warned_untracked.swap(true, Relaxed) {
                            c.warn_untracked.store(true, Relaxed);
                        }
                    }
                }
                AlertState::Firing => {}
            }
        }
        replaced
    }

    /// Takes a batch of `n` alerts off the queue: `None` when a timed-out shutdown gave them
    /// up (each counted as dropped, then or now), else the resolved alerts kept aside that go
    /// with this batch, each with the number of the batch's alerts that go before it.
    fn take(&mut self, n: u64) -> Option<Vec<(usize, Alert)>> {
        let mut aside = self.counters.aside();
        let before = aside.seen;
        aside.seen += n;
        if aside.abandoned {
            let prepaid = n.min(aside.prepaid);
            aside.prepaid -= prepaid;
            self.counters.abandoned.fetch_add(n - prepaid, Relaxed);
            return None;
        }
        Some(Self::ready(&mut aside, Some(before)))
    }

    /// The kept resolved alerts whose predecessors the thread has all taken (every one when
    /// `before` is `None`: the queue is drained for good), in order, each with its place
    /// after the `before`-th alert taken.
    fn ready(aside: &mut Aside, before: Option<u64>) -> Vec<(usize, Alert)> {
        if aside.kept.is_empty() {
            return Vec::new();
        }
        let seen = aside.seen;
        let (mut ready, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut aside.kept)
            .into_iter()
            .partition(|(after, _, _)| before.is_none() || *after <= seen);
        aside.kept = kept;
        ready.sort_by_key(|(after, _, _)| *after);
        let from = before.unwrap_or(seen);
        ready
            .into_iter()
            .map(|(after, a, _)| {
                let place = usize::try_from(after.saturating_sub(from)).unwrap_or(usize::MAX);
                (place, a)
            })
            .collect()
    }

    /// Delivers the kept resolved alerts that are due (all when `all`), unless a timed-out
    /// shutdown gave them up.
    fn deliver_kept(&mut self, all: bool) {
        let ready = {
            let mut aside = self.counters.aside();
            if aside.abandoned {
                return;
            }
            let seen = aside.seen;
            Self::ready(&mut aside, (!all).then_some(seen))
        };
        if !ready.is_empty() {
            self.deliver(ready.into_iter().map(|(_, a)| a.redacted()).collect());
        }
    }

    /// Tracks `batch`'s lasting alerts and hands it to every sink.
    fn deliver(&mut self, mut batch: Vec<Alert>) {
        let replaced = self.track(&mut batch);
        // A panicking sink must not keep the others from their alerts.
        for sink in &self.sinks {
            self.send_to(sink, &batch, true);
        }
        // The severity an alert fired with before it was raised again with another ends at
        // the sinks that expire alerts not re-sent (the others never held it); counted only
        // when it fails, as a re-send.
        if !replaced.is_empty() {
            for sink in self.sinks.iter().filter(|s| s.resend_interval().is_some()) {
                self.send_to(sink, &replaced, false);
            }
        }
    }
}

impl Job for Deliver {
    type Item = Box<Alert>;

    fn process(&mut self, batch: Vec<Box<Alert>>) -> Result<(), String> {
        let Some(kept) = self.take(batch.len() as u64) else {
            return Ok(());
        };
        // Redacted here, off the request path, before any sink sees it; a kept resolved
        // alert in its place, after the alerts queued before it (a firing alert of its
        // identity among them must not outlive it).
        let mut merged = Vec::with_capacity(batch.len() + kept.len());
        let mut kept = kept.into_iter().peekable();
        for (i, a) in batch.into_iter().enumerate() {
            while let Some((_, k)) = kept.next_if(|(place, _)| *place <= i) {
                merged.push(k.redacted());
            }
            merged.push(a.redacted());
        }
        merged.extend(kept.map(|(_, k)| k.redacted()));
        self.deliver(merged);
        Ok(())
    }

    fn tick(&mut self) {
        let Some(every) = self.resend else { return };
        self.deliver_kept(false);
        if self.counters.aside().abandoned {
            return;
        }
        if self.lasting.is_empty() || self.last_resend.elapsed() < every {
            return;
        }
        self.last_resend = std::time::Instant::now();
        let lasting: Vec<Alert> = self.lasting.values().cloned().collect();
        for sink in self.sinks.iter().filter(|s| s.resend_interval().is_some()) {
            // Counted only when it fails (or panics): these alerts were delivered already.
            self.send_to(sink, &lasting, false);
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        self.deliver_kept(false);
        for s in &self.sinks {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.flush()));
        }
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), String> {
        // The queue is drained: every kept resolved alert is due.
        self.deliver_kept(true);
        for s in &self.sinks {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.shutdown()));
        }
        Ok(())
    }
}

/// Delivers alerts to its sinks on a dispatcher thread. Cheap to clone (clones share the
/// queue); the thread stops, after delivering what is queued, when the last clone is dropped
/// or [`AlertDispatcher::shutdown`] is called.
#[derive(Clone, Debug)]
pub struct AlertDispatcher {
    worker: Option<Worker<Box<Alert>>>,
    /// Why the thread could not start, if it did not.
    start_error: Option<WorkerError>,
    /// A sink re-sends lasting alerts: a resolved alert that finds the queue full is kept
    /// aside, else the lasting alert it resolves would be sent again for good.
    keep_resolves: bool,
    counters: Arc<Counters>,
}

impl AlertDispatcher {
    /// A builder with no sinks and a queue of 1024.
    pub fn builder() -> DispatcherBuilder {
        DispatcherBuilder {
            sinks: Vec::new(),
            capacity: 1024,
        }
    }

    /// Queues an alert; never blocks. Returns `false` (and counts a drop) when the queue is
    /// full or the dispatcher has stopped.
    ///
    /// With a sink that re-sends lasting alerts (Alertmanager), a resolved alert that finds
    /// the queue full is kept aside instead (at most 1,024 at a time;
    /// [`DispatchStats::resolves_kept`]) and delivered after the alerts queued before it:
    /// losing it would have the alert it resolves sent again for good.
    pub fn send(&self, alert: Alert) -> bool {
        let c = &self.counters;
        c.warn_pending();
        let Some(w) = &self.worker else {
            if c.unstarted.fetch_add(1, Relaxed) == 0 {
                if let Some(e) = &self.start_error {
                    tracing::warn!(
                        target: "llmtel_alert",
                        "llmtel-alert: alerts are dropped (counted in DispatchStats::dropped): {e}"
                    );
                }
            }
            return false;
        };
        if !(self.keep_resolves && alert.state == AlertState::Resolved) {
            return w.send(Box::new(alert)).is_ok();
        }
        if w.is_full() {
            return self.keep_aside(w, alert, false);
        }
        match w.send(Box::new(alert)) {
            Ok(()) => true,
            // Another sender took the last place meanwhile (or the dispatcher stopped).
            Err(alert) => self.keep_aside(w, *alert, true),
        }
    }

    /// Keeps a resolved alert the queue has no room for, to be delivered after the alerts
    /// queued so far; `counted` when the worker counted it as dropped already.
    fn keep_aside(&self, w: &Worker<Box<Alert>>, alert: Alert, counted: bool) -> bool {
        let c = &self.counters;
        // Read before the lock: the thread takes it once a batch.
        let after = w.stats().queued;
        let mut aside = c.aside();
        if aside.closed || aside.kept.len() >= MAX_LASTING {
            drop(aside);
            if !counted {
                w.count_dropped();
            }
            return false;
        }
        aside.kept.push((after, alert, counted));
        // Under the lock: a timed-out shutdown's `give_up` takes this back under it.
        if counted {
            c.kept_after_drop.fetch_add(1, Relaxed);
        }
        drop(aside);
        c.resolves_kept.fetch_add(1, Relaxed);
        true
    }

    /// Waits up to `timeout` until every alert queued before this call has been handed to
    /// every sink and the sinks have flushed. Returns whether that happened in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.worker
            .as_ref()
            .is_some_and(|w| w.flush(timeout).is_ok())
    }

    /// Stops accepting alerts, delivers what is queued, shuts the sinks down and joins the
    /// dispatcher thread, waiting at most 60 s (the sinks bound their own timeouts and
    /// retries; this bounds a sink that hangs). See [`AlertDispatcher::shutdown_with_timeout`].
    ///
    /// # Errors
    /// As [`AlertDispatcher::shutdown_with_timeout`].
    pub fn shutdown(&self) -> Result<(), WorkerError> {
        self.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
    }

    /// [`AlertDispatcher::shutdown`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`WorkerError::Timeout`] when the thread did not finish in time (a sink hangs): the
    /// alerts still queued then are given up and counted in [`DispatchStats::dropped`] (and
    /// in `llmtel::health().background_dropped`), and the thread stops once the sink returns;
    /// a later call waits for it. [`WorkerError::Thread`] when the dispatcher never started
    /// (every alert was dropped and counted); the worker's other errors as
    /// [`Worker::shutdown`].
    pub fn shutdown_with_timeout(&self, timeout: Duration) -> Result<(), WorkerError> {
        let Some(w) = &self.worker else {
            return match &self.start_error {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            };
        };
        self.counters.aside().closed = true;
        let outcome = w.shutdown(timeout);
        match outcome {
            Err(WorkerError::Timeout { .. }) => self.give_up(w),
            // Not asked (too many requests waiting): still running.
            Err(WorkerError::Busy { .. }) => self.counters.aside().closed = false,
            _ => {}
        }
        outcome
    }

    /// After a timed-out shutdown: counts as dropped what the thread has not taken yet (it
    /// skips those when the hanging sink returns) and the resolved alerts kept aside.
    fn give_up(&self, w: &Worker<Box<Alert>>) {
        let left = {
            let mut aside = self.counters.aside();
            if aside.abandoned {
                return;
            }
            aside.abandoned = true;
            // Under the lock: the thread counts what it takes under it too.
            aside.prepaid = w.stats().queued.saturating_sub(aside.seen);
            // A kept alert the worker counted when its send lost the last place is not
            // counted again: its correction in the stats is taken back instead.
            let (counted, uncounted): (Vec<_>, Vec<_>) =
                aside.kept.drain(..).partition(|(_, _, counted)| *counted);
            self.counters
                .kept_after_drop
                .fetch_sub(counted.len() as u64, Relaxed);
            aside.prepaid + uncounted.len() as u64
        };
        for _ in 0..left {
            w.count_dropped();
        }
    }

    /// The counters.
    pub fn stats(&self) -> DispatchStats {
        let c = &self.counters;
        c.warn_pending();
        let w = self.worker.as_ref().map(Worker::stats).unwrap_or_default();
        DispatchStats {
            queued: w.queued,
            dropped: (w.dropped + c.unstarted.load(Relaxed) + c.abandoned.load(Relaxed))
                .saturating_sub(c.kept_after_drop.load(Relaxed)),
            delivered: c.delivered.load(Relaxed),
            failed: c.failed.load(Relaxed),
            resolves_kept: c.resolves_kept.load(Relaxed),
            lasting_untracked: c.lasting_untracked.load(Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
