//! TLS with default features: every HTTP sink (webhook, Slack, Alertmanager) delivers to a
//! real local https server whose private CA is trusted through `HttpConfig::with_ca_file`;
//! a server whose certificate is not trusted is a clear, counted failure (no panic); a CA file
//! that cannot be used is a clear configuration error.

mod support;
#[path = "support/tls.rs"]
mod tls;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use llmtel_alert::{
    Alert, AlertDispatcher, AlertError, AlertSink, AlertmanagerSink, HttpConfig, Severity,
    SlackSink, WebhookSink,
};
use support::Listener;
use tls::{TestCa, TlsFront};

fn fast() -> HttpConfig {
    HttpConfig::default()
        .with_timeout(Duration::from_secs(5))
        .with_retries(0)
        .with_backoff(Duration::from_millis(10), Duration::from_millis(10))
}

type Make = fn(&str, HttpConfig) -> Result<Arc<dyn AlertSink>, AlertError>;

fn sinks() -> Vec<(&'static str, &'static str, Make)> {
    vec![
        ("webhook", "/hooks/alerts", |u, c| {
            Ok(Arc::new(WebhookSink::with_config(u, c)?))
        }),
        ("slack", "/services/T000/B000/XXXX", |u, c| {
            Ok(Arc::new(SlackSink::with_config(u, c)?))
        }),
        ("alertmanager", "", |u, c| {
            Ok(Arc::new(AlertmanagerSink::with_config(u, c)?))
        }),
    ]
}

#[test]
fn every_http_sink_delivers_to_an_https_server_trusting_a_custom_ca() {
    let ca = TestCa::new("sinks");
    for (kind, path, make) in sinks() {
        let backend = Listener::start("127.0.0.1:0");
        let front = TlsFront::start(&ca, &backend.addr);
        let sink = make(&front.url(path), fast().with_ca_file(&ca.file)).expect("sink");
        let d = AlertDispatcher::builder().with_sink(sink).build();
        let name = format!("HttpsAlert{kind}");
        assert!(d.send(Alert::firing(&name, Severity::Warning).with_label("rule", "r1")));
        assert!(d.flush(Duration::from_secs(10)), "{kind}: flush timed out");
        let stats = d.stats();
        assert_eq!(stats.delivered, 1, "{kind}: {stats:?}");
        assert_eq!(stats.failed, 0, "{kind}: {stats:?}");
        let got = backend.wait_for(kind, Duration::from_secs(5), |_| true);
        assert!(
            got.body.to_string().contains(&name),
            "{kind}: the receiver got {got:?}"
        );
        assert!(
            front.handshakes.load(Ordering::SeqCst) >= 1,
            "{kind}: no TLS"
        );
    }
}

#[test]
fn an_untrusted_server_certificate_is_a_clear_counted_failure() {
    let trusted = TestCa::new("trusted");
    let other = TestCa::new("other");
    let backend = Listener::start("127.0.0.1:0");
    let front = TlsFront::start(&other, &backend.addr);
    for config in [fast(), fast().with_ca_file(&trusted.file)] {
        let sink = WebhookSink::with_config(&front.url("/hooks/SECRETPATH?token=SECRETQ"), config)
            .expect("sink");
        let d = AlertDispatcher::builder().with_sink(Arc::new(sink)).build();
        assert!(d.send(Alert::firing("Untrusted", Severity::Critical)));
        assert!(d.flush(Duration::from_secs(10)));
        let stats = d.stats();
        assert_eq!((stats.delivered, stats.failed), (0, 1), "{stats:?}");
        let err = stats.last_error.expect("an error is kept");
        assert!(
            err.to_lowercase().contains("certificate"),
            "the error should say the certificate is the problem: {err}"
        );
        assert!(
            !err.contains("SECRET"),
            "the URL leaked into the error: {err}"
        );
    }
    assert!(front.wait_failed_handshakes(2) >= 2);
    assert!(backend.received().is_empty());
}

#[test]
fn a_ca_file_that_cannot_be_used_is_a_clear_config_error() {
    let missing = std::env::temp_dir().join("llmtel-no-such-ca-file.pem");
    let err = WebhookSink::with_config("https://127.0.0.1:1/x", fast().with_ca_file(&missing))
        .expect_err("a missing CA file is an error");
    let text = err.to_string();
    assert!(matches!(err, AlertError::Config(_)), "{err:?}");
    assert!(text.contains("CA file") && text.contains("PEM"), "{text}");

    let empty = std::env::temp_dir().join(format!("llmtel-empty-ca-{}.pem", std::process::id()));
    std::fs::write(&empty, "not a certificate").expect("write");
    let err = SlackSink::with_config("https://127.0.0.1:1/x", fast().with_ca_file(&empty))
        .expect_err("a file without certificates is an error");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}
