//! A lasting alert (`Alert::until_resolved`: a budget store down) is posted again to the
//! sinks that need it (Alertmanager) until its resolved alert goes through the dispatcher. The
//! resolved alert went through the bounded queue like any other: when a slow sink had filled
//! it, the resolve was dropped and the critical alert was posted again for good. A resolve
//! that finds the queue full is now kept aside and delivered after the alerts queued before
//! it (a refresh of the same alert among them), so the lasting alert stops.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmtel_alert::{Alert, AlertDispatcher, AlertError, AlertSink, AlertState, Severity};

/// Records every batch; its first `send` says it began, then waits to be told to go on (a
/// receiver that hangs). Re-sends lasting alerts every 100 ms, as Alertmanager's sink does.
#[derive(Debug)]
struct Slow {
    batches: Mutex<Vec<Vec<Alert>>>,
    gate: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

impl AlertSink for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    fn resend_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        let gate = self.gate.lock().unwrap().take();
        if let Some((began, go_on)) = gate {
            began.send(()).unwrap();
            go_on.recv().unwrap();
        }
        self.batches.lock().unwrap().push(alerts.to_vec());
        Ok(())
    }
}

impl Slow {
    /// Every alert received, in order, as (name, state, summary).
    fn received(&self) -> Vec<(String, AlertState, String)> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|a| (a.name.clone(), a.state, a.summary().to_owned()))
            .collect()
    }
}

#[test]
fn a_resolve_the_full_queue_has_no_room_for_is_delivered_and_the_alert_stops() {
    let (began_tx, began) = mpsc::channel();
    let (go_on, go_on_rx) = mpsc::channel();
    let sink = Arc::new(Slow {
        batches: Mutex::default(),
        gate: Mutex::new(Some((began_tx, go_on_rx))),
    });
    let d = AlertDispatcher::builder()
        .with_sink(sink.clone())
        .with_capacity(2)
        .build();
    let down = || {
        Alert::firing("StoreDown", Severity::Critical)
            .until_resolved()
            .with_label("store", "redis")
    };
    assert!(d.send(down().with_annotation("summary", "down")));
    began
        .recv_timeout(Duration::from_secs(10))
        .expect("the sink took the first alert");

    // Behind the hanging sink the queue (2) fills: a refresh of the alert, a notice, and then
    // there is no room.
    assert!(d.send(down().with_annotation("summary", "still down")));
    assert!(d.send(Alert::firing("Notice", Severity::Warning)));
    assert!(
        !d.send(Alert::firing("Dropped", Severity::Warning)),
        "the queue is full"
    );
    // Resolved as the budgets resolve it: same name and labels, not marked lasting.
    let resolve_accepted = d.send(
        Alert::firing("StoreDown", Severity::Critical)
            .with_label("store", "redis")
            .with_annotation("summary", "back")
            .resolved(),
    );

    go_on.send(()).unwrap();
    assert!(d.flush(Duration::from_secs(10)));
    let got = sink.received();
    let resolved_at = got
        .iter()
        .position(|(name, state, _)| name == "StoreDown" && *state == AlertState::Resolved)
        .unwrap_or_else(|| panic!("the resolve never reached the sink: {got:#?}"));
    let refreshed_at = got
        .iter()
        .position(|(_, _, summary)| summary == "still down")
        .unwrap();
    assert!(
        refreshed_at < resolved_at,
        "delivered after the alerts queued before it: {got:#?}"
    );

    // The re-sends go on for another lasting alert, and no longer include the resolved one.
    assert!(
        d.send(
            Alert::firing("Drift", Severity::Warning)
                .until_resolved()
                .with_label("metric", "score")
        )
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = sink.received();
        if got.iter().filter(|(name, _, _)| name == "Drift").count() >= 3 {
            let after: Vec<_> = got[resolved_at + 1..]
                .iter()
                .filter(|(name, _, _)| name == "StoreDown")
                .collect();
            assert!(
                after.is_empty(),
                "the resolved alert was sent again: {after:#?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lasting alert was never sent again: {got:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    assert!(resolve_accepted, "send said the resolve was dropped");
    let s = d.stats();
    assert_eq!(
        (s.queued, s.dropped, s.resolves_kept, s.failed),
        (4, 1, 1, 0),
        "{s:?}"
    );
}
