//! The dispatcher keeps at most 1,024 lasting alerts (`Alert::until_resolved`) for re-sending;
//! a new one past that was delivered once and silently never sent again. It is now counted
//! (`DispatchStats::lasting_untracked`) and the first one is logged, once, to the app's
//! subscriber.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmtel_alert::{Alert, AlertDispatcher, AlertError, AlertSink, Severity};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The most lasting alerts kept for re-sending.
const MAX_LASTING: usize = 1024;

/// Counts what it receives; re-sends lasting alerts (rarely: this test needs none).
#[derive(Debug, Default)]
struct Counting(Mutex<usize>);

impl AlertSink for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    fn resend_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(3600))
    }

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        *self.0.lock().unwrap() += alerts.len();
        Ok(())
    }
}

/// Collects the message of every warning.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        struct V(String);
        impl tracing::field::Visit for V {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut v = V(String::new());
            event.record(&mut v);
            self.0.lock().unwrap().push(v.0);
        }
    }
}

fn lasting(i: usize) -> Alert {
    Alert::firing("QualityDrift", Severity::Warning)
        .until_resolved()
        .with_label("series", i.to_string())
}

#[test]
fn lasting_alerts_past_the_cap_are_counted_and_the_first_is_logged_once() {
    let sink = Arc::new(Counting::default());
    let d = AlertDispatcher::builder()
        .with_sink(sink.clone())
        .with_capacity(4096)
        .build();
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..MAX_LASTING + 3 {
            assert!(d.send(lasting(i)));
        }
        assert!(d.flush(Duration::from_secs(10)));
        assert_eq!(d.stats().lasting_untracked, 3);
        // A refresh of one kept is not counted; a new one past the cap is, and not logged
        // again.
        assert!(d.send(lasting(0).with_annotation("summary", "refreshed")));
        assert!(d.send(lasting(MAX_LASTING + 3)));
        assert!(d.flush(Duration::from_secs(10)));
        assert_eq!(d.stats().lasting_untracked, 4);
        // A resolved one frees its place.
        assert!(d.send(lasting(1).resolved()));
        assert!(d.send(lasting(MAX_LASTING + 4)));
        assert!(d.flush(Duration::from_secs(10)));
        let s = d.stats();
        assert_eq!(s.lasting_untracked, 4, "{s:?}");
        assert_eq!(
            s.delivered,
            MAX_LASTING as u64 + 3 + 4,
            "every one delivered"
        );
    });
    let got = warnings.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "logged once: {got:#?}");
    assert!(
        got[0].contains("1024") && got[0].contains("lasting_untracked"),
        "{got:#?}"
    );
}
