//! Real Prometheus Alertmanager (scripts/alertmanager.sh). Alertmanager knows an alert by all
//! its labels, `severity` included (the sink adds it); the dispatcher knows a lasting alert by
//! its name and labels. A resolve raised with another severity than its alert fired with
//! (a condition re-rated when it ends) ended, at Alertmanager, an alert that never fired,
//! and the one that did stayed active until its `resolve_timeout` (5 minutes by default).
//! The resolve now carries the severity its lasting alert fired with; an alert raised again
//! with another severity ends the first (no longer sent again, it stayed active as long).

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmtel_alert::{Alert, AlertDispatcher, AlertmanagerSink, Severity};
use support::peer_env;

/// The `(severity, state)` of each alert Alertmanager lists named `name` (it lists only the
/// alerts that are not resolved).
fn listed(am: &str, name: &str) -> Vec<(String, String)> {
    let url = format!("{am}/api/v2/alerts?filter=alertname%3D%22{name}%22");
    let v: serde_json::Value = reqwest::blocking::get(url)
        .expect("GET /api/v2/alerts")
        .json()
        .expect("json");
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|a| {
                    (
                        a["labels"]["severity"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        a["status"]["state"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_resolve_with_another_severity_ends_the_alert_that_fired() {
    let am = peer_env("LLMTEL_ALERTMANAGER_URL", "scripts/alertmanager.sh");
    let name = format!("LlmtelResevered{}", std::process::id());
    let sink = AlertmanagerSink::new(&am).expect("sink");
    let dispatcher = AlertDispatcher::builder().with_sink(Arc::new(sink)).build();

    let fired = Alert::firing(&name, Severity::Warning)
        .until_resolved()
        .with_label("evaluator", "judge");
    assert!(dispatcher.send(fired));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    assert_eq!(
        listed(&am, &name),
        [("warning".to_owned(), "active".to_owned())]
    );

    // The same identity for the dispatcher (name and labels), resolved as critical.
    let resolve = Alert::firing(&name, Severity::Critical)
        .with_label("evaluator", "judge")
        .resolved();
    assert!(dispatcher.send(resolve));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    let left = listed(&am, &name);
    assert!(
        left.is_empty(),
        "the warning that fired is resolved (Alertmanager lists no alert of that name): {left:?}"
    );
    assert_eq!(dispatcher.stats().failed, 0);
}

#[test]
fn an_alert_raised_again_with_another_severity_ends_the_first_one() {
    let am = peer_env("LLMTEL_ALERTMANAGER_URL", "scripts/alertmanager.sh");
    let name = format!("LlmtelEscalated{}", std::process::id());
    let sink = AlertmanagerSink::new(&am).expect("sink");
    let dispatcher = AlertDispatcher::builder().with_sink(Arc::new(sink)).build();
    let alert = |severity| {
        Alert::firing(&name, severity)
            .until_resolved()
            .with_label("evaluator", "judge")
    };

    assert!(dispatcher.send(alert(Severity::Warning)));
    assert!(dispatcher.send(alert(Severity::Critical)));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    // The warning is no longer sent again: it ends now, not at its resolve_timeout.
    assert_eq!(
        listed(&am, &name),
        [("critical".to_owned(), "active".to_owned())]
    );

    assert!(dispatcher.send(alert(Severity::Critical).resolved()));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    let left = listed(&am, &name);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(dispatcher.stats().failed, 0);
}
