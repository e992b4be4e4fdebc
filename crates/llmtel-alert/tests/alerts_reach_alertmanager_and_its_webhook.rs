//! Real Prometheus Alertmanager (scripts/alertmanager.sh): alerts posted through the
//! dispatcher are listed by `/api/v2/alerts` with their labels and annotations and reach
//! Alertmanager's webhook receiver firing, then resolved.

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmtel_alert::{Alert, AlertDispatcher, AlertmanagerSink, Severity};
use support::{Listener, peer_env};

#[test]
fn firing_then_resolved_alert_is_listed_and_reaches_the_webhook() {
    let am = peer_env("LLMTEL_ALERTMANAGER_URL", "scripts/alertmanager.sh");
    let hook_addr = peer_env(
        "LLMTEL_ALERTMANAGER_WEBHOOK_ADDR",
        "scripts/alertmanager.sh",
    );
    let hook = Listener::start(&hook_addr); // before any alert: Alertmanager posts here

    let name = format!("LlmtelAlertTest{}", std::process::id());
    let dispatcher = AlertDispatcher::builder()
        .with_sink(Arc::new(AlertmanagerSink::new(&am).expect("sink")))
        .build();
    let alert = Alert::firing(&name, Severity::Warning)
        .with_label("rule", "per-user-daily")
        .with_label("scope", "user.id=u-42")
        .with_annotation("summary", "u-42 spent 80 % of $5.00 today");
    assert!(dispatcher.send(alert.clone()));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    assert_eq!(dispatcher.stats().delivered, 1, "{:?}", dispatcher.stats());

    // Read it back from the API.
    let client = reqwest::blocking::Client::new();
    let url = format!("{am}/api/v2/alerts?filter=alertname%3D%22{name}%22");
    let listed: serde_json::Value = client
        .get(&url)
        .send()
        .expect("GET /api/v2/alerts")
        .json()
        .expect("json");
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let a = &listed[0];
    assert_eq!(a["labels"]["alertname"], name.as_str());
    assert_eq!(a["labels"]["rule"], "per-user-daily");
    assert_eq!(a["labels"]["scope"], "user.id=u-42");
    assert_eq!(a["labels"]["severity"], "warning");
    assert_eq!(
        a["annotations"]["summary"],
        "u-42 spent 80 % of $5.00 today"
    );
    assert_eq!(a["status"]["state"], "active");

    // Alertmanager's webhook: firing.
    let is = |status: &'static str| {
        let name = name.clone();
        move |r: &support::Received| {
            r.body["status"] == status
                && r.body["alerts"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|x| x["labels"]["alertname"] == name.as_str()))
        }
    };
    let firing = hook.wait_for("webhook firing", Duration::from_secs(15), is("firing"));
    assert_eq!(firing.path, "/alerts");
    assert_eq!(firing.body["commonLabels"]["rule"], "per-user-daily");

    // Resolve it: Alertmanager sends `resolved` to the webhook.
    assert!(dispatcher.send(alert.resolved()));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    let resolved = hook.wait_for("webhook resolved", Duration::from_secs(15), is("resolved"));
    assert_eq!(
        resolved.body["alerts"][0]["annotations"]["summary"],
        "u-42 spent 80 % of $5.00 today"
    );
    let listed: serde_json::Value = client
        .get(format!("{url}&active=true&silenced=false&inhibited=false"))
        .send()
        .expect("GET")
        .json()
        .expect("json");
    assert!(
        listed
            .as_array()
            .expect("array")
            .iter()
            .all(|a| a["status"]["state"] != "active"),
        "{listed:#?}"
    );
    assert_eq!(dispatcher.stats().failed, 0);
}
