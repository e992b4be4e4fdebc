//! The HTTP sinks use reqwest's blocking client, which panics when it is built or dropped on
//! a thread of an async runtime. Apps build their sinks in `#[tokio::main]` and drop the last
//! budget, monitor or collector holding them there: neither may panic.

use std::sync::Arc;
use std::time::Duration;

use llmtel_alert::{Alert, AlertDispatcher, AlertmanagerSink, Severity, SlackSink, WebhookSink};

fn sinks() -> (AlertmanagerSink, WebhookSink, SlackSink) {
    // Port 9 (discard): nothing listens; delivery fails and is counted.
    (
        AlertmanagerSink::new("http://127.0.0.1:9").expect("alertmanager sink"),
        WebhookSink::new("http://127.0.0.1:9/hook").expect("webhook sink"),
        SlackSink::new("http://127.0.0.1:9/slack").expect("slack sink"),
    )
}

fn dispatcher() -> AlertDispatcher {
    let (am, hook, slack) = sinks();
    AlertDispatcher::builder()
        .with_sink(Arc::new(am))
        .with_sink(Arc::new(hook))
        .with_sink(Arc::new(slack))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_thread_runtime() {
    drop(sinks());
    let d = dispatcher();
    assert!(d.send(Alert::firing("LlmtelAsyncDrop", Severity::Warning)));
    assert!(d.flush(Duration::from_secs(20)));
    assert_eq!(d.stats().failed, 3, "{:?}", d.stats());
    drop(d);
}

#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime() {
    drop(sinks());
    drop(dispatcher());
}
