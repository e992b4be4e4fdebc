//! Real Prometheus Alertmanager (scripts/alertmanager.sh). Alertmanager resolves an alert by
//! itself when its client stops sending it (after `resolve_timeout`, 5 minutes by default),
//! and expects clients to send firing alerts again: an alert whose condition lasts
//! (`Alert::until_resolved`: a budget store that is down, a quality drift) is posted again
//! while it fires, so Alertmanager sees it refreshed (`updatedAt` moves on), and no more once
//! it is resolved; a one-off notice is posted once.

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmtel_alert::{Alert, AlertDispatcher, AlertmanagerSink, Severity};
use support::peer_env;

/// The `updatedAt` and state Alertmanager lists for the alert named `name` (it lists only
/// the alerts that are not resolved).
fn listed(am: &str, name: &str) -> (String, String) {
    let url = format!("{am}/api/v2/alerts?filter=alertname%3D%22{name}%22");
    let v: serde_json::Value = reqwest::blocking::get(url)
        .expect("GET /api/v2/alerts")
        .json()
        .expect("json");
    match v.as_array().and_then(|a| a.first()) {
        Some(a) => (
            a["updatedAt"].as_str().unwrap_or_default().to_owned(),
            a["status"]["state"].as_str().unwrap_or_default().to_owned(),
        ),
        None => (String::new(), "resolved".to_owned()),
    }
}

#[test]
fn a_lasting_alert_is_posted_again_while_it_fires_and_a_notice_once() {
    let am = peer_env("LLMTEL_ALERTMANAGER_URL", "scripts/alertmanager.sh");
    let id = std::process::id();
    let (lasting_name, notice_name) = (format!("LlmtelLasting{id}"), format!("LlmtelNotice{id}"));
    let sink = AlertmanagerSink::new(&am)
        .expect("sink")
        .with_resend_interval(Duration::from_millis(400));
    let dispatcher = AlertDispatcher::builder().with_sink(Arc::new(sink)).build();
    let lasting = Alert::firing(&lasting_name, Severity::Critical)
        .until_resolved()
        .with_label("store", "redis");
    let notice = Alert::firing(&notice_name, Severity::Warning).with_label("rule", "daily");
    assert!(dispatcher.send(lasting.clone()));
    assert!(dispatcher.send(notice));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    let (lasting_first, state) = listed(&am, &lasting_name);
    assert_eq!(state, "active");
    let (notice_first, _) = listed(&am, &notice_name);

    std::thread::sleep(Duration::from_millis(1500));
    let (lasting_later, state) = listed(&am, &lasting_name);
    assert_eq!(state, "active");
    assert!(
        lasting_later > lasting_first,
        "posted again: updatedAt {lasting_first} -> {lasting_later}"
    );
    assert_eq!(
        listed(&am, &notice_name).0,
        notice_first,
        "a notice is posted once"
    );

    // Resolved: no longer posted (a post would make it active again).
    assert!(dispatcher.send(lasting.resolved()));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    assert_ne!(listed(&am, &lasting_name).1, "active");
    std::thread::sleep(Duration::from_millis(1200));
    assert_ne!(
        listed(&am, &lasting_name).1,
        "active",
        "not posted after it resolved"
    );
    assert_eq!(dispatcher.stats().failed, 0);
}
