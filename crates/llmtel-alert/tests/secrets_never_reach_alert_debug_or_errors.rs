//! Secrets never reach `Debug` or errors: webhook URLs (Slack's URL is the secret), header
//! values and URL passwords are absent from `{:?}` of every public config and sink type and of
//! the dispatcher; a failed delivery's `last_error` and a config error carry no URL path or
//! query; Slack text escapes every value, so a user name cannot ping or link.

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmtel_alert::{
    Alert, AlertDispatcher, AlertmanagerSink, HttpConfig, Severity, SlackSink, WebhookSink,
    escape_slack,
};
use support::Listener;

const SECRETS: [&str; 5] = [
    "PATHTOKEN",
    "QUERYTOKEN",
    "HEADERTOKEN",
    "URLPASSWORD",
    "sk-live-KEY",
];

fn config() -> HttpConfig {
    HttpConfig::default()
        .with_header("Authorization", "Bearer HEADERTOKEN")
        .with_header("x-api-key", "sk-live-KEY")
        .with_timeout(Duration::from_secs(2))
        .with_retries(0)
}

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s}: {text}");
    }
}

#[test]
fn debug_of_every_config_sink_and_dispatcher_shows_no_secret() {
    let slack_url = "https://hooks.slack.com/services/T000/B000/PATHTOKEN?x=QUERYTOKEN";
    let hook_url = "https://user:URLPASSWORD@hooks.example.com:8443/in/PATHTOKEN?key=QUERYTOKEN";
    let am_url = "https://admin:URLPASSWORD@am.example.com:9093";
    let c = config();
    let slack = SlackSink::with_config(slack_url, c.clone()).expect("slack");
    let hook = WebhookSink::with_config(hook_url, c.clone()).expect("webhook");
    let am = AlertmanagerSink::with_config(am_url, c.clone()).expect("alertmanager");
    for (what, text) in [
        ("HttpConfig", format!("{c:?} {c:#?}")),
        ("SlackSink", format!("{slack:?} {slack:#?}")),
        ("WebhookSink", format!("{hook:?} {hook:#?}")),
        ("AlertmanagerSink", format!("{am:?} {am:#?}")),
    ] {
        assert_clean(what, &text);
    }
    // What stays useful: the host, the header names.
    assert!(format!("{slack:?}").contains("https://hooks.slack.com/<redacted>"));
    assert!(format!("{hook:?}").contains("hooks.example.com:8443"));
    assert!(format!("{c:?}").contains("Authorization"));

    let builder = AlertDispatcher::builder()
        .with_sink(Arc::new(slack))
        .with_sink(Arc::new(hook))
        .with_sink(Arc::new(am));
    assert_clean("DispatcherBuilder", &format!("{builder:?}"));
    let d = builder.build();
    assert_clean("AlertDispatcher", &format!("{d:?}"));
}

#[test]
fn a_failed_delivery_keeps_no_url_path_or_query_in_last_error() {
    // A port nobody listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/PATHTOKEN?key=QUERYTOKEN");
    for sink in [
        Arc::new(SlackSink::with_config(&url, config()).expect("sink"))
            as Arc<dyn llmtel_alert::AlertSink>,
        Arc::new(WebhookSink::with_config(&url, config()).expect("sink")),
    ] {
        let d = AlertDispatcher::builder().with_sink(sink).build();
        d.send(Alert::firing("Refused", Severity::Warning));
        assert!(d.flush(Duration::from_secs(10)));
        let stats = d.stats();
        assert_eq!(stats.failed, 1, "{stats:?}");
        let err = stats.last_error.expect("kept");
        assert_clean("last_error", &err);
        assert!(!err.contains("/services"), "path in {err}");
        assert!(err.contains("request failed"), "{err}");
    }
}

#[test]
fn a_config_error_shows_no_secret() {
    for bad in [
        "hooks.slack.com/services/T000/B000/PATHTOKEN",
        "ftp://user:URLPASSWORD@example.com/PATHTOKEN",
        "https://exa mple.com/PATHTOKEN?key=QUERYTOKEN",
    ] {
        let err = SlackSink::new(bad).expect_err("invalid");
        assert_clean("config error", &format!("{err} {err:?}"));
    }
}

#[test]
fn slack_text_escapes_a_hostile_user_name() {
    let hostile = "<!channel> <https://evil.example/reset|reset your password> & <@U123>";
    let alert = Alert::firing("LlmBudget<!here>", Severity::Critical)
        .with_label("scope", format!("user.id={hostile}"))
        .with_annotation("summary", format!("{hostile} spent $5"));
    let body = SlackSink::body(std::slice::from_ref(&alert));
    let text = body["text"].as_str().expect("text");
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    assert!(text.contains("&lt;https://evil.example/reset|reset your password&gt;"));
    assert!(text.contains("&amp; &lt;@U123&gt;"), "{text}");
    assert!(text.contains("LlmBudget&lt;!here&gt;"), "{text}");
    assert_eq!(escape_slack("a&b<c>"), "a&amp;b&lt;c&gt;");

    // And that is what reaches a Slack-shaped receiver.
    let slack = Listener::start("127.0.0.1:0");
    let d = AlertDispatcher::builder()
        .with_sink(Arc::new(
            SlackSink::with_config(&slack.url("/services/T/B/X"), config()).expect("sink"),
        ))
        .build();
    d.send(alert);
    assert!(d.flush(Duration::from_secs(10)));
    let got = slack.wait_for("slack", Duration::from_secs(5), |_| true);
    let text = got.body["text"].as_str().expect("text");
    assert!(
        !text.contains("<!channel>") && text.contains("&lt;!channel&gt;"),
        "{text}"
    );
}
