//! Evaluators run with a timeout each, but a synchronous evaluator (a `SyncEvaluator`, the
//! built-ins) does its work in the first poll of its future, which the timeout on the
//! evaluation thread could never interrupt: a slow one held up every later input, and its
//! late result was counted and recorded as if on time. Each run is now on a thread of its
//! own: past its timeout it is counted in `evals_timed_out` and its result dropped, while the
//! next inputs are evaluated.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmtel_eval::{EvalInput, Evaluation, SyncAdapter, SyncEvaluator};
use llmtel_quality::Quality;

/// Scores every answer 1; takes its time on the answer `slow` (until `gate` is free).
#[derive(Debug, Default)]
struct Sleepy {
    gate: Arc<Mutex<()>>,
    finished: Arc<AtomicUsize>,
}

impl SyncEvaluator for Sleepy {
    fn name(&self) -> &str {
        "sleepy"
    }
    fn score(&self, input: &EvalInput) -> Option<Evaluation> {
        if input.answer == "slow" {
            drop(self.gate.lock().unwrap_or_else(|e| e.into_inner()));
        }
        self.finished.fetch_add(1, Ordering::SeqCst);
        Some(Evaluation::new("sleepy", 1.0, "ok", ""))
    }
}

/// Scores every answer 1, at once.
#[derive(Debug)]
struct Quick;

impl SyncEvaluator for Quick {
    fn name(&self) -> &str {
        "quick"
    }
    fn score(&self, _: &EvalInput) -> Option<Evaluation> {
        Some(Evaluation::new("quick", 1.0, "ok", ""))
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_late_result_is_timed_out_and_later_inputs_are_evaluated() {
    let sleepy = Sleepy::default();
    let (gate, finished) = (sleepy.gate.clone(), sleepy.finished.clone());
    let held = gate.lock().unwrap();
    let q = Quality::builder()
        .with_evaluator_sampled(
            Arc::new(SyncAdapter(sleepy)),
            1.0,
            Duration::from_millis(200),
        )
        .with_events(false)
        .build();
    assert!(q.evaluate(EvalInput::new("slow")));
    for _ in 0..5 {
        assert!(q.evaluate(EvalInput::new("fast")));
    }
    // The five fast inputs are scored while the slow one is still held up.
    assert!(q.flush(Duration::from_secs(20)), "{:?}", q.stats());
    let stats = q.stats();
    assert_eq!(
        (stats.evals_run, stats.evals_timed_out),
        (5, 1),
        "{stats:?}"
    );
    // The slow one returns, late: its result is dropped.
    drop(held);
    wait_for("the slow run never returned", || {
        finished.load(Ordering::SeqCst) == 6
    });
    assert!(q.evaluate(EvalInput::new("fast")));
    assert!(q.flush(Duration::from_secs(20)));
    let stats = q.stats();
    assert_eq!(
        (stats.evals_run, stats.evals_timed_out),
        (6, 1),
        "{stats:?}"
    );
    assert_eq!(q.snapshot().stats.evaluations, 6);
    assert!(q.shutdown());
}

#[test]
fn an_evaluator_that_never_returns_holds_up_neither_the_others_nor_shutdown() {
    let sleepy = Sleepy::default();
    let gate = sleepy.gate.clone();
    let held = gate.lock().unwrap();
    let q = Quality::builder()
        .with_evaluator_sampled(
            Arc::new(SyncAdapter(sleepy)),
            1.0,
            Duration::from_millis(100),
        )
        .with_evaluator(Arc::new(SyncAdapter(Quick)))
        .with_events(false)
        .build();
    for _ in 0..10 {
        assert!(q.evaluate(EvalInput::new("slow")));
    }
    assert!(q.flush(Duration::from_secs(20)), "{:?}", q.stats());
    let stats = q.stats();
    // Every input scored by the other evaluator; the stuck one timed out on each (after two
    // runs still going, it is not started again until one returns).
    assert_eq!(
        (stats.evals_run, stats.evals_timed_out),
        (10, 10),
        "{stats:?}"
    );
    assert!(q.shutdown(), "the shutdown waited for the stuck runs");
    drop(held);
}

#[test]
fn a_timeout_of_duration_max_means_no_timeout() {
    // `Duration::MAX` for "never time out" (and a flush that waits as long as it takes):
    // the deadline overflowed an `Instant` and every evaluation panicked.
    let q = Quality::builder()
        .with_evaluator_sampled(Arc::new(SyncAdapter(Quick)), 1.0, Duration::MAX)
        .with_events(false)
        .build();
    for _ in 0..3 {
        assert!(q.evaluate(EvalInput::new("fast")));
    }
    assert!(q.flush(Duration::MAX), "{:?}", q.stats());
    let stats = q.stats();
    assert_eq!(
        (stats.evals_run, stats.evals_timed_out),
        (3, 0),
        "{stats:?}"
    );
    assert!(q.shutdown());
}
