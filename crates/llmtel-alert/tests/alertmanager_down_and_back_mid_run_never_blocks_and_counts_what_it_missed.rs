//! Issue #13's alert-sink fault, against a real Prometheus Alertmanager (the Debian package
//! that scripts/alertmanager.sh installs), run privately by this test on a port of its own so
//! that it can be killed and restarted mid-run:
//!
//! 1. Alertmanager up: an alert is delivered and listed by its API.
//! 2. Alertmanager killed (`SIGKILL`): sending never blocks the caller; the alert sent while
//!    it is down is retried (3 times, 200 ms doubling) and then counted as failed, with the
//!    error, never silently lost.
//! 3. Alertmanager restarted on the same port: the next alert is delivered and listed.
//!
//! Delivered + failed = alerts sent, exactly.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmtel_alert::{Alert, AlertDispatcher, AlertmanagerSink, Severity};

const BIN: &str = "prometheus-alertmanager";

/// Starts Alertmanager on `port` with its data in `dir`; returns once `/-/ready` answers.
fn start(port: u16, dir: &Path) -> Child {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: none\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 4h\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let child = Command::new(BIN)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {BIN} ({e}): install it with scripts/alertmanager.sh install")
        });
    let ready = format!("http://127.0.0.1:{port}/-/ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::blocking::Client::new();
    while !client
        .get(&ready)
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "{BIN} not ready on port {port} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// Whether Alertmanager lists an alert named `name`.
fn listed(port: u16, name: &str) -> bool {
    let url = format!("http://127.0.0.1:{port}/api/v2/alerts?filter=alertname%3D%22{name}%22");
    reqwest::blocking::get(url)
        .and_then(|r| r.json::<serde_json::Value>())
        .map(|v| v.as_array().is_some_and(|a| a.len() == 1))
        .unwrap_or(false)
}

#[test]
fn alerts_flow_stop_counted_while_it_is_down_and_flow_again_when_it_is_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("llmtel-am-fault-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut am = KillOnDrop(start(port, &dir));

    let dispatcher = AlertDispatcher::builder()
        .with_sink(Arc::new(
            AlertmanagerSink::new(&format!("http://127.0.0.1:{port}")).unwrap(),
        ))
        .build();
    let alert = |name: &str| Alert::firing(name, Severity::Warning).with_label("rule", "fault");
    let id = std::process::id();
    let (before, during, after) = (
        format!("LlmtelFaultBefore{id}"),
        format!("LlmtelFaultDuring{id}"),
        format!("LlmtelFaultAfter{id}"),
    );

    // 1. Up.
    assert!(dispatcher.send(alert(&before)));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    assert!(listed(port, &before), "the first alert is listed");

    // 2. Down: the caller is never held, the alert is counted as failed.
    am.0.kill().unwrap();
    am.0.wait().unwrap();
    let t = Instant::now();
    assert!(dispatcher.send(alert(&during)));
    let held = t.elapsed();
    assert!(
        held < Duration::from_millis(50),
        "send held the caller {held:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while dispatcher.stats().failed < 1 {
        assert!(Instant::now() < deadline, "{:?}", dispatcher.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = dispatcher.stats();
    assert!(
        stats.last_error.is_some(),
        "the failure says why: {stats:?}"
    );

    // 3. Back on the same port: alerts flow again.
    let back = Instant::now();
    let _am = KillOnDrop(start(port, &dir));
    assert!(dispatcher.send(alert(&after)));
    assert!(dispatcher.flush(Duration::from_secs(10)));
    assert!(
        listed(port, &after),
        "the alert sent after the restart is listed"
    );
    println!(
        "Alertmanager back in {:?}; send held the caller {held:?} while it was down; {:?}",
        back.elapsed(),
        dispatcher.stats()
    );
    let stats = dispatcher.stats();
    assert_eq!(
        (stats.delivered, stats.failed, stats.dropped),
        (2, 1, 0),
        "every alert delivered or counted: {stats:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stops Alertmanager when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
