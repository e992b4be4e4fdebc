//! `Quality::shutdown` waits 30 s for each of its threads; it returned nothing, so a
//! shutdown that gave up (a thread held up, its last items never recorded) looked like one
//! that finished. It now says whether both threads stopped in time, as `flush` does.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmtel_quality::{CallRef, Feedback, Quality};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Holds up the thread that opens a span while the test holds `gate`.
struct Gate(Arc<Mutex<()>>);

impl<S: tracing::Subscriber> Layer<S> for Gate {
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        drop(self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

#[test]
fn a_shutdown_that_finishes_says_so() {
    let q = Quality::builder().build();
    assert!(q.feedback(Feedback::thumbs(CallRef::ResponseId("r".into()), true)));
    assert!(q.shutdown());
    assert_eq!(q.snapshot().stats.feedback, 1);
}

#[test]
fn a_shutdown_held_up_past_its_timeout_says_so() {
    let gate = Arc::new(Mutex::new(()));
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(Gate(gate.clone())));
    let q = Quality::builder().with_dispatch(dispatch.clone()).build();
    let held = gate.lock().unwrap();
    // The monitor's thread emits the rating as a span: held up there.
    assert!(q.feedback(Feedback::thumbs(CallRef::ResponseId("r".into()), true)));
    let started = Instant::now();
    assert!(!q.shutdown(), "a held-up thread was reported as stopped");
    assert!(started.elapsed() >= Duration::from_secs(29));
    drop(held);
    drop(dispatch);
}
