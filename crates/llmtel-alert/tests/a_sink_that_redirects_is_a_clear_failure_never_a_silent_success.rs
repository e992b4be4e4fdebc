//! A receiver behind a redirect (an http -> https 301 in front of Alertmanager, a moved
//! webhook): reqwest's default policy followed it and turned the POST of a 301, 302 or 303
//! into a GET without its body (and its `Authorization` header dropped across hosts), which
//! Alertmanager's `GET /api/v2/alerts` answers 200: the alert was counted delivered and never
//! posted. No redirect is followed now: a 3xx is a failure, not retried, that names where it
//! points (scheme, host and port only) and says to configure that URL directly.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use llmtel_alert::{
    Alert, AlertDispatcher, AlertSink, AlertmanagerSink, HttpConfig, Severity, SlackSink,
    WebhookSink,
};
use support::Listener;

type Make = fn(&str, HttpConfig) -> Arc<dyn AlertSink>;

fn sinks() -> [(&'static str, Make); 3] {
    [
        ("webhook", |u, c| {
            Arc::new(WebhookSink::with_config(u, c).unwrap())
        }),
        ("slack", |u, c| {
            Arc::new(SlackSink::with_config(u, c).unwrap())
        }),
        ("alertmanager", |u, c| {
            Arc::new(AlertmanagerSink::with_config(u, c).unwrap())
        }),
    ]
}

#[test]
fn a_redirect_is_counted_failed_names_its_target_and_nothing_reaches_the_target() {
    for status in [301, 302, 303, 307, 308] {
        for (kind, make) in sinks() {
            // Where the redirect points: it answers 200 to anything (a GET included).
            let target = Listener::start("127.0.0.1:0");
            let redirecting = Listener::start("127.0.0.1:0");
            redirecting.redirect(
                status,
                &target.url("/api/v2/alerts/PATHTOKEN?token=QUERYTOKEN"),
            );
            let config = HttpConfig::default()
                .with_header("Authorization", "Bearer HEADERTOKEN")
                .with_timeout(Duration::from_secs(2))
                .with_backoff(Duration::from_millis(10), Duration::from_millis(10));
            let d = AlertDispatcher::builder()
                .with_sink(make(&redirecting.url(""), config))
                .build();
            d.send(Alert::firing("Redirected", Severity::Critical).with_label("rule", "r1"));
            assert!(d.flush(Duration::from_secs(20)), "{kind} {status}: flush");

            let s = d.stats();
            let what = format!("{kind} answered {status}: {s:?}");
            assert_eq!((s.delivered, s.failed), (0, 1), "{what}");
            assert!(
                target.received().is_empty() && target.hits.load(Ordering::SeqCst) == 0,
                "{what}: the redirect was followed: {:?}",
                target.received()
            );
            assert_eq!(
                redirecting.hits.load(Ordering::SeqCst),
                1,
                "{what}: a redirect is the same on every try, so it is not retried"
            );
            let error = s.last_error.unwrap();
            assert!(error.contains(&format!("HTTP {status}")), "{error}");
            assert!(
                error.contains(&format!("redirect to http://{}/<redacted>", target.addr)),
                "{what}: the error names where it points: {error}"
            );
            assert!(
                error.contains("configure that URL directly"),
                "{what}: {error}"
            );
            for secret in ["PATHTOKEN", "QUERYTOKEN", "HEADERTOKEN"] {
                assert!(!error.contains(secret), "{what}: {error}");
            }
        }
    }
}

#[test]
fn a_relative_redirect_names_the_sinks_own_host() {
    let redirecting = Listener::start("127.0.0.1:0");
    redirecting.redirect(308, "/elsewhere/PATHTOKEN");
    let d = AlertDispatcher::builder()
        .with_sink(Arc::new(
            WebhookSink::with_config(
                &redirecting.url("/hook"),
                HttpConfig::default().with_retries(0),
            )
            .unwrap(),
        ))
        .build();
    d.send(Alert::firing("Redirected", Severity::Warning));
    assert!(d.flush(Duration::from_secs(20)));
    let s = d.stats();
    assert_eq!((s.delivered, s.failed), (0, 1), "{s:?}");
    let error = s.last_error.unwrap();
    assert!(
        error.contains(&format!(
            "redirect to http://{}/<redacted>",
            redirecting.addr
        )),
        "{error}"
    );
    assert!(!error.contains("PATHTOKEN"), "{error}");
}
