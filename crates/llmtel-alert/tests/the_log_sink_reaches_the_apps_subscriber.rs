//! `LogSink` emits each alert as a `tracing` event. The dispatcher's thread runs with tracing
//! off (so an HTTP sink's client events stay out of the app's pipeline), and the log sink's
//! events went nowhere while every alert was counted delivered. It now sends under the
//! subscriber current where the dispatcher was built; a failing re-send of a lasting alert is
//! counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmtel_alert::{Alert, AlertDispatcher, LogSink, Severity};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Collects the `alert` field of every event.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Seen {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        struct V<'a>(&'a Mutex<Vec<String>>);
        impl tracing::field::Visit for V<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "alert" {
                    self.0
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{v:?}"));
                }
            }
        }
        event.record(&mut V(&self.0));
    }
}

#[test]
fn alerts_sent_to_the_log_sink_are_events_of_the_apps_subscriber() {
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    let dispatcher = tracing::subscriber::with_default(subscriber, || {
        AlertDispatcher::builder()
            .with_sink(Arc::new(LogSink::new()))
            .build()
    });
    dispatcher.send(Alert::firing("LogSinkProbe", Severity::Critical));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    assert_eq!(dispatcher.stats().delivered, 1);
    let got = seen.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(got, ["LogSinkProbe"], "{got:?}");
}

mod support;

#[test]
fn a_failing_resend_of_a_lasting_alert_is_counted() {
    // The first post reaches the receiver, then it fails: the re-sends were only noted in
    // `last_error`, never counted as failed.
    let l = support::Listener::start("127.0.0.1:0");
    let sink = llmtel_alert::AlertmanagerSink::with_config(
        &l.url(""),
        llmtel_alert::HttpConfig {
            retries: 0,
            ..llmtel_alert::HttpConfig::default()
        },
    )
    .expect("sink")
    .with_resend_interval(Duration::from_millis(100));
    let dispatcher = AlertDispatcher::builder().with_sink(Arc::new(sink)).build();
    dispatcher.send(Alert::firing("Lasting", Severity::Critical).until_resolved());
    assert!(dispatcher.flush(Duration::from_secs(10)));
    assert_eq!(dispatcher.stats().delivered, 1);
    l.set_status(500);
    std::thread::sleep(Duration::from_millis(1000));
    let s = dispatcher.stats();
    assert!(s.failed > 0, "{s:?}");
    assert!(s.last_error.is_some(), "{s:?}");
}

#[test]
fn alerts_reach_a_global_subscriber_set_after_the_dispatcher_is_built() {
    // The examples build their sinks, then install the global subscriber: nothing was
    // current at build, and the log sink's events went nowhere.
    let dispatcher = AlertDispatcher::builder()
        .with_sink(Arc::new(LogSink::new()))
        .build();
    let seen = Seen::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(seen.clone()))
        .expect("the only global subscriber of this test process");
    dispatcher.send(Alert::firing("GlobalProbe", Severity::Warning));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    let got = seen.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(got.contains(&"GlobalProbe".to_owned()), "{got:?}");
}
