//! `AlertDispatcher::shutdown` discarded the worker's answer: a shutdown that timed out (a
//! sink that hangs) looked like a success, and the alerts still queued were never counted.
//! It now returns the outcome; on a timeout the alerts left are counted as dropped (in the
//! stats and `llmtel::health()`), skipped once the sink returns, and a later call waits for
//! the thread's real answer.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmtel::worker::WorkerError;
use llmtel_alert::{Alert, AlertDispatcher, AlertError, AlertSink, Severity};

/// Records every alert; its first `send` says it began, then waits to be told to go on.
#[derive(Debug, Default)]
struct Hangs {
    names: Mutex<Vec<String>>,
    gate: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

impl AlertSink for Hangs {
    fn name(&self) -> &str {
        "hangs"
    }

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        let gate = self.gate.lock().unwrap().take();
        if let Some((began, go_on)) = gate {
            began.send(()).unwrap();
            go_on.recv().unwrap();
        }
        let mut names = self.names.lock().unwrap();
        names.extend(alerts.iter().map(|a| a.name.clone()));
        Ok(())
    }
}

#[test]
fn a_timed_out_shutdown_is_an_error_and_what_it_left_is_counted_dropped_once() {
    let (began_tx, began) = mpsc::channel();
    let (go_on, go_on_rx) = mpsc::channel();
    let sink = Arc::new(Hangs {
        gate: Mutex::new(Some((began_tx, go_on_rx))),
        ..Hangs::default()
    });
    let d = AlertDispatcher::builder().with_sink(sink.clone()).build();
    assert!(d.send(Alert::firing("Taken", Severity::Critical)));
    began
        .recv_timeout(Duration::from_secs(10))
        .expect("the sink took the first alert");
    assert!(d.send(Alert::firing("Left1", Severity::Critical)));
    assert!(d.send(Alert::firing("Left2", Severity::Critical)));

    let health_before = llmtel::health().background_dropped;
    match d.shutdown_with_timeout(Duration::from_millis(200)) {
        Err(WorkerError::Timeout { .. }) => {}
        other => panic!("the sink hangs: expected a timeout, got {other:?}"),
    }
    let s = d.stats();
    assert_eq!(
        s.dropped, 2,
        "the two alerts still queued are counted: {s:?}"
    );
    assert!(llmtel::health().background_dropped - health_before >= 2);
    assert!(
        !d.send(Alert::firing("AfterShutdown", Severity::Critical)),
        "a stopping dispatcher takes no alert"
    );

    // The sink returns: the alert it held is delivered, the two given up are not, and the
    // next call gets the thread's answer.
    go_on.send(()).unwrap();
    d.shutdown()
        .expect("the thread finished once the sink returned");
    assert_eq!(*sink.names.lock().unwrap(), ["Taken"]);
    let s = d.stats();
    assert_eq!(
        (s.queued, s.delivered, s.dropped),
        (3, 1, 3),
        "each alert delivered or dropped, once: {s:?}"
    );
}

#[test]
fn a_clean_shutdown_delivers_what_is_queued_and_says_so() {
    let sink = Arc::new(Hangs::default());
    let d = AlertDispatcher::builder().with_sink(sink.clone()).build();
    for name in ["A", "B", "C"] {
        assert!(d.send(Alert::firing(name, Severity::Warning)));
    }
    d.shutdown().unwrap();
    assert_eq!(*sink.names.lock().unwrap(), ["A", "B", "C"]);
    let s = d.stats();
    assert_eq!((s.delivered, s.dropped), (3, 0), "{s:?}");
    // Once shut down, every call returns the first outcome.
    d.shutdown().unwrap();
}
