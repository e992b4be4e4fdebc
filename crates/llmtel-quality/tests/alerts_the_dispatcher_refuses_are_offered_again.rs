//! The monitor forgets an alert once it has resolved it. A resolution the alert dispatcher
//! refused (its queue full: Alertmanager down, the sink retrying) was dropped, and the alert
//! it resolved went on firing downstream for good (the dispatcher re-sends lasting alerts
//! until they resolve); so was a resolution raised past the monitor's `MAX_PENDING_ALERTS`.
//! Refused alerts now wait, in order, and are offered again; the monitor keeps every
//! resolution past its bound.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use llmtel_alert::{Alert, AlertDispatcher, AlertError, AlertSink, AlertState, Severity};
use llmtel_quality::{CallSignals, MAX_PENDING_ALERTS, Monitor, MonitorConfig, Quality};

/// Keeps what it is sent; holds up the dispatcher's thread while the test holds `gate`.
#[derive(Debug, Default)]
struct GateSink {
    gate: Arc<Mutex<()>>,
    got: Mutex<Vec<Alert>>,
}

impl AlertSink for GateSink {
    fn name(&self) -> &str {
        "gate"
    }
    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        self.got.lock().unwrap().extend_from_slice(alerts);
        drop(self.gate.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(())
    }
}

impl GateSink {
    fn got(&self) -> Vec<Alert> {
        self.got.lock().unwrap().clone()
    }
}

fn m1(a: &Alert, state: AlertState) -> bool {
    a.state == state && a.labels.get("model").map(String::as_str) == Some("m1")
}

#[test]
fn a_resolution_the_dispatcher_refused_reaches_the_sink_once_it_has_room() {
    let sink = Arc::new(GateSink::default());
    let held = sink.gate.lock().unwrap();
    let alerts = AlertDispatcher::builder()
        .with_sink(sink.clone())
        .with_capacity(1)
        .build();
    // The dispatcher's thread is held up in the sink with one alert, one more fills its
    // queue: it refuses every alert after that.
    assert!(alerts.send(Alert::firing("Filler", Severity::Warning)));
    let t = Instant::now();
    while sink.got().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(alerts.send(Alert::firing("Filler", Severity::Warning)));
    assert!(!alerts.send(Alert::firing("Filler", Severity::Warning)));

    let cfg = MonitorConfig {
        window: Duration::from_secs(1),
        ..MonitorConfig::default()
    };
    let q = Quality::builder()
        .with_monitor(cfg)
        .with_alerts(alerts.clone())
        .with_queue_capacity(8192)
        .with_events(false)
        .build();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t0 = UNIX_EPOCH + Duration::from_secs(now - 60);
    // Ten one-second windows of failing calls (m1 fires), then twenty of good ones (it
    // resolves): both refused.
    for w in 0..30u64 {
        for i in 0..100u64 {
            let at = t0 + Duration::from_millis(w * 1000 + i * 5);
            assert!(q.sink().send(common::signals("m1", at, w < 10)));
        }
    }
    assert!(
        !q.flush(Duration::from_secs(5)),
        "alerts wait: the flush says so"
    );
    assert!(q.with_monitor(Monitor::active_alerts).is_empty());
    assert!(alerts.stats().dropped > 0, "{:?}", alerts.stats());
    // The dispatcher gets room.
    drop(held);
    let t = Instant::now();
    loop {
        let got = sink.got();
        let fired = got.iter().position(|a| m1(a, AlertState::Firing));
        let resolved = got.iter().position(|a| m1(a, AlertState::Resolved));
        if let (Some(f), Some(r)) = (fired, resolved) {
            assert!(f < r, "{got:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the resolution never reached the sink: {got:?}, {:?}",
            q.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(q.flush(Duration::from_secs(10)));
    assert_eq!(q.stats().alerts_dropped, 0, "{:?}", q.stats());
    assert!(q.shutdown());
}

#[test]
fn resolutions_past_the_pending_bound_are_kept() {
    let cfg = MonitorConfig {
        max_series: 4_000,
        ..MonitorConfig::default()
    };
    let mut monitor = Monitor::new(cfg);
    let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let features = MAX_PENDING_ALERTS + 300;
    // Every feature fails, the second half from five minutes later (so that no more than
    // the bound fire at once); the fires are taken as they come.
    let mut fired = 0;
    let mut now = start;
    for minute in 0..15u64 {
        for call in 0..40u64 {
            now = start + Duration::from_secs(minute * 60 + call);
            let started = if minute < 5 { features / 2 } else { features };
            for f in 0..started {
                monitor.record_call(&CallSignals {
                    feature: Some(format!("feature-{f}")),
                    ..common::signals("gpt-4o-mini", now, true)
                });
            }
        }
        fired += monitor
            .take_alerts()
            .iter()
            .filter(|a| a.state == AlertState::Firing)
            .count();
    }
    assert!(fired > MAX_PENDING_ALERTS, "{fired}");
    assert_eq!(monitor.stats().alerts_dropped, 0);
    // Then every call stops: every alert resolves, for lack of data, at once.
    monitor.advance(now + Duration::from_secs(2 * 3600));
    monitor.advance(now + Duration::from_secs(2 * 3600 + 60));
    assert!(monitor.active_alerts().is_empty());
    let resolved = monitor
        .take_alerts()
        .into_iter()
        .filter(|a| a.state == AlertState::Resolved)
        .count();
    assert_eq!(resolved, fired);
    assert_eq!(monitor.stats().alerts_dropped, 0);
}
