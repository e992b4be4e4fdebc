//! llmtel's one background-worker primitive (`llmtel::worker`): every item is processed or
//! counted as dropped (one sent while a shutdown is under way included), a panicking job does
//! not stop the thread, flush reports failed batches, and a shutdown that times out is never
//! reported as a success later.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmtel::worker::{Job, Worker, WorkerError};

/// An item whose batch panics, and one whose batch fails.
const PANICS: u32 = 1_000_666;
const FAILS: u32 = 1_000_013;

/// Records what it processes; blocks while `gate` holds a receiver and until it gets a message.
struct Recorder {
    seen: Arc<Mutex<Vec<u32>>>,
    gate: Option<mpsc::Receiver<()>>,
    shut: Arc<AtomicU64>,
}

impl Job for Recorder {
    type Item = u32;
    fn process(&mut self, batch: Vec<u32>) -> Result<(), String> {
        if let Some(g) = self.gate.take() {
            let _ = g.recv();
        }
        if batch.contains(&PANICS) {
            panic!("a bad item");
        }
        let failed = batch.contains(&FAILS);
        self.seen.lock().unwrap().extend(batch);
        if failed {
            return Err("the sink refused item FAILS".into());
        }
        Ok(())
    }
    fn shutdown(&mut self) -> Result<(), String> {
        self.shut.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn recorder(gate: Option<mpsc::Receiver<()>>) -> (Recorder, Arc<Mutex<Vec<u32>>>, Arc<AtomicU64>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shut = Arc::new(AtomicU64::new(0));
    (
        Recorder {
            seen: seen.clone(),
            gate,
            shut: shut.clone(),
        },
        seen,
        shut,
    )
}

#[test]
fn a_full_queue_drops_and_counts_exactly_and_the_rest_arrives_in_order() {
    let (open, gate) = mpsc::channel();
    let (job, seen, _) = recorder(Some(gate));
    let worker = Worker::builder("test-drops")
        .with_capacity(100)
        .with_batch_size(10)
        .with_wake_at(1)
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    let before = llmtel::health().background_dropped;
    // The first item wakes the thread, which blocks in `process` on the gate: the queue
    // then holds at most 100 items.
    worker.send(0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while worker.stats().depth != 0 {
        assert!(Instant::now() < deadline, "the worker never took item 0");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut accepted = vec![0];
    let mut dropped = 0;
    for i in 1..=1000u32 {
        match worker.send(i) {
            Ok(()) => accepted.push(i),
            Err(back) => {
                assert_eq!(back, i, "a dropped item is handed back");
                dropped += 1;
            }
        }
    }
    assert_eq!(accepted.len(), 101, "capacity 100 plus the item in process");
    assert_eq!(dropped, 900);
    open.send(()).unwrap();
    worker.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        accepted,
        "every accepted item, in order"
    );
    let stats = worker.stats();
    assert_eq!(stats.queued, 101);
    assert_eq!(stats.dropped, 900);
    assert_eq!(stats.processed, 101);
    assert_eq!(stats.depth, 0);
    assert_eq!(llmtel::health().background_dropped - before, 900);
    assert!(
        llmtel::worker::workers()
            .iter()
            .any(|w| w.name == "test-drops" && w.dropped == 900),
        "the worker is listed with its counters: {:?}",
        llmtel::worker::workers()
    );
    worker.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(worker.send(7), Err(7), "a stopped worker drops and counts");
    assert_eq!(worker.stats().dropped, 901);
}

#[test]
fn a_panicking_batch_is_counted_and_the_thread_goes_on() {
    let (job, seen, _) = recorder(None);
    let worker = Worker::builder("test-panic")
        .with_batch_size(1)
        .with_wake_at(1)
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    worker.send(1).unwrap();
    worker.send(PANICS).unwrap();
    worker.send(2).unwrap();
    let err = worker.flush(Duration::from_secs(5)).unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    assert_eq!(worker.stats().panics, 1);
    assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
    // The failure was reported once; the next flush is clean.
    worker.send(3).unwrap();
    worker.flush(Duration::from_secs(5)).unwrap();
}

#[test]
fn flush_reports_a_failed_batch_since_the_last_flush() {
    let (job, _, _) = recorder(None);
    let worker = Worker::builder("test-failed")
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    worker.send(FAILS).unwrap();
    match worker.flush(Duration::from_secs(5)) {
        Err(WorkerError::Failed { reason, .. }) => {
            assert!(reason.contains("item FAILS"), "{reason}")
        }
        other => panic!("expected the batch failure, got {other:?}"),
    }
    assert_eq!(worker.stats().failed_batches, 1);
    worker.flush(Duration::from_secs(5)).unwrap();
}

/// A job whose first flush waits for `gate`, then fails, as the export queue's does when
/// spans were not sent (it empties its count of them for that answer).
struct SlowFailingFlush {
    gate: Option<mpsc::Receiver<()>>,
}

impl Job for SlowFailingFlush {
    type Item = u32;
    fn process(&mut self, _: Vec<u32>) -> Result<(), String> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), String> {
        match self.gate.take() {
            Some(gate) => {
                let _ = gate.recv();
                Err("3 spans were not sent".into())
            }
            None => Ok(()),
        }
    }
}

/// A worker whose first flush has timed out on the caller's side, and the gate that lets that
/// flush finish (and fail) on the thread.
fn flush_timed_out(name: &str) -> (Worker<u32>, mpsc::Sender<()>) {
    let (open, gate) = mpsc::channel();
    let worker = Worker::builder(name)
        .spawn(move || Ok::<_, String>(SlowFailingFlush { gate: Some(gate) }))
        .unwrap();
    worker.send(1).unwrap();
    match worker.flush(Duration::from_millis(50)) {
        Err(WorkerError::Timeout { .. }) => {}
        other => panic!("the job's flush is blocked: expected a timeout, got {other:?}"),
    }
    (worker, open)
}

#[test]
fn a_failure_found_by_a_flush_that_timed_out_is_reported_by_the_shutdown() {
    let (worker, open) = flush_timed_out("test-late-flush-shutdown");
    // The flush finishes on the thread, failing, after its caller stopped waiting.
    open.send(()).unwrap();
    match worker.shutdown(Duration::from_secs(10)) {
        Err(WorkerError::Failed { reason, .. }) => {
            assert!(reason.contains("3 spans were not sent"), "{reason}")
        }
        other => panic!("the spans the timed-out flush found unsent were lost: {other:?}"),
    }
}

#[test]
fn a_failure_found_by_a_flush_that_timed_out_is_reported_by_the_next_flush() {
    let (worker, open) = flush_timed_out("test-late-flush-flush");
    open.send(()).unwrap();
    match worker.flush(Duration::from_secs(10)) {
        Err(WorkerError::Failed { reason, .. }) => {
            assert!(reason.contains("3 spans were not sent"), "{reason}")
        }
        other => panic!("the spans the timed-out flush found unsent were lost: {other:?}"),
    }
    // Reported once.
    worker.flush(Duration::from_secs(10)).unwrap();
    worker.shutdown(Duration::from_secs(10)).unwrap();
}

/// A job whose first flush waits for `gate`, then fails, and whose every later flush and
/// shutdown fails too (spans found unsent each time).
struct SlowThenFailingAgain {
    gate: Option<mpsc::Receiver<()>>,
}

impl Job for SlowThenFailingAgain {
    type Item = u32;
    fn process(&mut self, _: Vec<u32>) -> Result<(), String> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), String> {
        match self.gate.take() {
            Some(gate) => {
                let _ = gate.recv();
                Err("3 spans were not sent".into())
            }
            None => Err("2 spans were not sent".into()),
        }
    }
    fn shutdown(&mut self) -> Result<(), String> {
        Err("5 spans were not sent".into())
    }
}

/// A flush (or the shutdown) after one that timed out, that fails itself too: both failures,
/// the earlier one's count included, are reported (the job's own used to replace the earlier).
fn after_a_timed_out_flush(shutdown: bool) -> String {
    let (open, gate) = mpsc::channel();
    let worker = Worker::builder("test-late-flush-and-own-failure")
        .spawn(move || Ok::<_, String>(SlowThenFailingAgain { gate: Some(gate) }))
        .unwrap();
    worker.send(1).unwrap();
    match worker.flush(Duration::from_millis(50)) {
        Err(WorkerError::Timeout { .. }) => {}
        other => panic!("the job's flush is blocked: expected a timeout, got {other:?}"),
    }
    open.send(()).unwrap();
    let outcome = if shutdown {
        worker.shutdown(Duration::from_secs(10))
    } else {
        worker.flush(Duration::from_secs(10))
    };
    match outcome {
        Err(WorkerError::Failed { reason, .. }) => reason,
        other => panic!("expected a failure: {other:?}"),
    }
}

#[test]
fn a_timed_out_flush_failure_and_the_next_flush_failure_are_both_reported() {
    let reason = after_a_timed_out_flush(false);
    assert!(reason.contains("3 spans were not sent"), "lost: {reason}");
    assert!(reason.contains("2 spans were not sent"), "lost: {reason}");
}

#[test]
fn a_timed_out_flush_failure_and_the_shutdown_failure_are_both_reported() {
    let reason = after_a_timed_out_flush(true);
    assert!(reason.contains("3 spans were not sent"), "lost: {reason}");
    assert!(reason.contains("5 spans were not sent"), "lost: {reason}");
}

/// A job whose first flush waits for `gate`, then fails with a message that ends like the
/// worker's own summary of the failures it did not show; every later flush fails too.
struct FailsWithASummaryLikeMessage {
    gate: Option<mpsc::Receiver<()>>,
}

impl Job for FailsWithASummaryLikeMessage {
    type Item = u32;
    fn process(&mut self, _: Vec<u32>) -> Result<(), String> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), String> {
        match self.gate.take() {
            Some(gate) => {
                let _ = gate.recv();
                Err("the sink said: busy; and 7 later failures not shown".into())
            }
            None => Err("2 spans were not sent".into()),
        }
    }
}

#[test]
fn a_timed_out_flush_failure_ending_like_a_count_of_hidden_failures_is_not_read_as_one() {
    // The worker read the count of failures it did not show back from the text it had
    // joined: a job's message ending `; and 7 later failures not shown` was taken for its
    // summary, and the next flush's failure was dropped as "8 later failures".
    let (open, gate) = mpsc::channel();
    let worker = Worker::builder("test-summary-like-failure")
        .spawn(move || Ok::<_, String>(FailsWithASummaryLikeMessage { gate: Some(gate) }))
        .unwrap();
    worker.send(1).unwrap();
    match worker.flush(Duration::from_millis(50)) {
        Err(WorkerError::Timeout { .. }) => {}
        other => panic!("the job's flush is blocked: expected a timeout, got {other:?}"),
    }
    open.send(()).unwrap();
    match worker.flush(Duration::from_secs(10)) {
        Err(WorkerError::Failed { reason, .. }) => assert_eq!(
            reason,
            "the sink said: busy; and 7 later failures not shown; then 2 spans were not sent"
        ),
        other => panic!("expected a failure: {other:?}"),
    }
}

#[test]
fn a_timed_out_shutdown_is_reported_as_such_and_a_later_call_waits_for_the_real_answer() {
    let (open, gate) = mpsc::channel();
    let (job, seen, shut) = recorder(Some(gate));
    let worker = Worker::builder("test-shutdown")
        .with_wake_at(1)
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    worker.send(1).unwrap();
    worker.send(2).unwrap();
    match worker.shutdown(Duration::from_millis(100)) {
        Err(WorkerError::Timeout { .. }) => {}
        other => panic!("the job is blocked: expected a timeout, got {other:?}"),
    }
    assert_eq!(shut.load(Ordering::SeqCst), 0);
    match worker.flush(Duration::from_secs(1)) {
        Err(WorkerError::Stopped { .. }) => {}
        other => panic!("a stopping worker takes no flush, got {other:?}"),
    }
    open.send(()).unwrap();
    worker.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(shut.load(Ordering::SeqCst), 1, "the job was shut down once");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1, 2],
        "what was queued went out"
    );
    worker.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn dropping_the_last_handle_processes_what_is_queued() {
    let (job, seen, shut) = recorder(None);
    let worker = Worker::builder("test-drop")
        .with_interval(Duration::from_secs(3600))
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    let clone = worker.clone();
    for i in 0..10 {
        clone.send(i).unwrap();
    }
    drop(clone);
    assert!(
        seen.lock().unwrap().is_empty(),
        "below the wake threshold, nothing ran yet"
    );
    drop(worker);
    assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(shut.load(Ordering::SeqCst), 1);
}

#[test]
fn items_below_the_threshold_go_out_at_the_interval() {
    let (job, seen, _) = recorder(None);
    let worker = Worker::builder("test-interval")
        .with_interval(Duration::from_millis(50))
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    worker.send(5).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the interval never woke the thread"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(*seen.lock().unwrap(), vec![5]);
}

#[test]
fn a_job_that_cannot_start_says_why_without_its_credentials() {
    let err = Worker::builder("test-start")
        .spawn(|| {
            Err::<Recorder, _>("cannot reach https://user:hunter2@collector.example/v1/traces")
        })
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, WorkerError::Start { .. }), "{err:?}");
    assert!(text.contains("collector.example"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn an_idle_worker_sleeps_until_the_next_item_and_that_item_wakes_it() {
    let (job, seen, _) = recorder(None);
    let worker = Worker::builder("test-idle")
        .with_interval(Duration::from_millis(10))
        .with_idle_sleep(Some(Duration::from_millis(50)))
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    for round in 0..20u32 {
        // Long enough for the thread to stop ticking and sleep without a timeout.
        std::thread::sleep(Duration::from_millis(80));
        worker.send(round).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().len() <= round as usize {
            assert!(
                Instant::now() < deadline,
                "item {round}, below the wake threshold, was never processed: the sleeping \
                 thread was not woken"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(*seen.lock().unwrap(), (0..20).collect::<Vec<_>>());
}

/// Counts its ticks and the items it processes.
struct Ticker {
    ticks: Arc<AtomicU64>,
    items: Arc<AtomicU64>,
}

impl Job for Ticker {
    type Item = u32;
    fn process(&mut self, batch: Vec<u32>) -> Result<(), String> {
        self.items.fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
    fn tick(&mut self) {
        self.ticks.fetch_add(1, Ordering::SeqCst);
    }
}

/// Ticks of a worker idle for `idle` after one item, asleep after 50 ms, ticking every 10 ms
/// while awake; and whether an item sent afterwards still wakes it.
fn ticks_while_asleep(idle_tick: Option<Duration>, idle: Duration) -> (u64, u64) {
    let (ticks, items) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let job = Ticker {
        ticks: ticks.clone(),
        items: items.clone(),
    };
    let worker = Worker::builder("test-idle-tick")
        .with_interval(Duration::from_millis(10))
        .with_idle_sleep(Some(Duration::from_millis(50)))
        .with_idle_tick(idle_tick)
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    worker.send(1).unwrap();
    // Asleep well before this.
    std::thread::sleep(Duration::from_millis(300));
    let before = ticks.load(Ordering::SeqCst);
    std::thread::sleep(idle);
    let asleep = ticks.load(Ordering::SeqCst) - before;
    worker.send(2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while items.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "the item after the idle spell was never processed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    (asleep, items.load(Ordering::SeqCst))
}

#[test]
fn an_idle_worker_with_an_idle_tick_still_ticks_while_asleep_and_items_still_wake_it() {
    // Every 100 ms for a second: about 10 ticks (not the 100 of the awake interval, nor two
    // a wake).
    let (ticks, items) =
        ticks_while_asleep(Some(Duration::from_millis(100)), Duration::from_secs(1));
    assert!(
        (5..=15).contains(&ticks),
        "{ticks} ticks in a second asleep"
    );
    assert_eq!(items, 2);
    // Without one, an asleep worker does not tick at all.
    let (ticks, items) = ticks_while_asleep(None, Duration::from_millis(500));
    assert_eq!(ticks, 0, "an asleep worker without an idle tick ticked");
    assert_eq!(items, 2);
}

#[test]
fn senders_racing_the_thread_lose_nothing_and_keep_the_counts_exact() {
    // The thread takes items as fast as four senders put them in: an item can be taken
    // before its sender has counted it (this overflowed the pending count once).
    let (job, seen, _) = recorder(None);
    let worker = Worker::builder("test-race")
        .with_capacity(64)
        .with_batch_size(1)
        .with_wake_at(1)
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let (worker, accepted) = (worker.clone(), accepted.clone());
            s.spawn(move || {
                for i in 0..20_000u32 {
                    if worker.send(t * 100_000 + i % 1000).is_ok() {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    worker.flush(Duration::from_secs(10)).unwrap();
    let stats = worker.stats();
    let accepted = accepted.load(Ordering::Relaxed);
    assert_eq!(stats.queued, accepted);
    assert_eq!(stats.queued + stats.dropped, 80_000);
    assert_eq!(stats.processed, accepted);
    assert_eq!(seen.lock().unwrap().len() as u64, accepted);
    assert_eq!(stats.depth, 0, "{stats:?}");
}

/// Records what it processes; its shutdown says it began, then waits to be told to go on.
struct SlowShutdown {
    seen: Arc<Mutex<Vec<u32>>>,
    began: mpsc::Sender<()>,
    go_on: mpsc::Receiver<()>,
}

impl Job for SlowShutdown {
    type Item = u32;
    fn process(&mut self, batch: Vec<u32>) -> Result<(), String> {
        self.seen.lock().unwrap().extend(batch);
        Ok(())
    }
    fn shutdown(&mut self) -> Result<(), String> {
        let _ = self.began.send(());
        let _ = self.go_on.recv();
        Ok(())
    }
}

#[test]
fn an_item_sent_while_a_shutdown_is_under_way_is_dropped_and_counted() {
    // The thread drains its queue one last time, then shuts its job down: an item sent
    // meanwhile was accepted (`Ok`), never processed and never counted.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (began_tx, began) = mpsc::channel();
    let (go_on, go_on_rx) = mpsc::channel();
    let job = SlowShutdown {
        seen: seen.clone(),
        began: began_tx,
        go_on: go_on_rx,
    };
    let worker = Worker::builder("test-closing")
        .with_wake_at(1)
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    worker.send(1).unwrap();
    let stopping = {
        let worker = worker.clone();
        std::thread::spawn(move || worker.shutdown(Duration::from_secs(10)))
    };
    began
        .recv_timeout(Duration::from_secs(10))
        .expect("the job's shutdown began");
    let before = llmtel::health().background_dropped;
    assert_eq!(
        worker.send(2),
        Err(2),
        "an item sent after the last drain is handed back"
    );
    assert!(llmtel::health().background_dropped > before);
    go_on.send(()).unwrap();
    stopping.join().unwrap().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![1]);
    let stats = worker.stats();
    assert_eq!(
        (stats.queued, stats.processed, stats.dropped),
        (1, 1, 1),
        "every item processed or counted as dropped: {stats:?}"
    );
}

#[test]
fn senders_racing_a_shutdown_get_every_accepted_item_processed_and_the_shutdown_ends() {
    // Four threads send flat out while the worker shuts down: each item a send accepted is
    // processed (none is accepted, then counted dropped), each refused one is counted, and
    // the refused sends do not keep the shutdown waiting.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let job = Recorder {
        seen: seen.clone(),
        gate: None,
        shut: Arc::new(AtomicU64::new(0)),
    };
    let worker = Worker::builder("test-racing-shutdown")
        .with_capacity(64)
        .spawn(move || Ok::<_, String>(job))
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (worker, stop) = (worker.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut accepted, mut refused) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    match worker.send(7) {
                        Ok(()) => accepted += 1,
                        Err(_) => refused += 1,
                    }
                }
                (accepted, refused)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let outcome = worker.shutdown(Duration::from_secs(20));
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (accepted, refused) = senders
        .into_iter()
        .map(|s| s.join().unwrap())
        .fold((0, 0), |(a, r), (x, y)| (a + x, r + y));
    assert!(outcome.is_ok(), "{outcome:?} after {took:?}");
    let stats = worker.stats();
    assert_eq!(seen.lock().unwrap().len() as u64, accepted, "{stats:?}");
    assert_eq!(
        (stats.queued, stats.processed, stats.dropped),
        (accepted, accepted, refused),
        "{stats:?}"
    );
}
