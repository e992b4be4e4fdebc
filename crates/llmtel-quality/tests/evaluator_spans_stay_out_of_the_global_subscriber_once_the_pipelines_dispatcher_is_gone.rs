//! A pipeline built `with_dispatch(d)` emits its evaluation records into `d` and runs its
//! evaluators there (their own model calls are spans). Once `d` was dropped, the records were
//! no longer emitted, but the evaluators' spans went to the global default subscriber, where
//! the app had asked for none of them. Neither goes anywhere now.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use llmtel_eval::{EvalInput, Evaluation, SyncAdapter, SyncEvaluator};
use llmtel_quality::Quality;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Opens a span named `evaluator.work` as it scores, as a remote evaluator does for its call.
#[derive(Debug)]
struct Traced;

impl SyncEvaluator for Traced {
    fn name(&self) -> &str {
        "traced"
    }
    fn score(&self, _: &EvalInput) -> Option<Evaluation> {
        let _span = tracing::info_span!("evaluator.work").entered();
        Some(Evaluation::new("traced", 1.0, "ok", ""))
    }
}

/// Counts the `evaluator.work` spans it sees.
#[derive(Clone, Default)]
struct Count(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for Count {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        if attrs.metadata().name() == "evaluator.work" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn once_the_pipelines_dispatcher_is_dropped_evaluator_spans_go_nowhere() {
    let global = Count::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(global.clone()))
        .unwrap();
    let own = Count::default();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(own.clone()));
    let q = Quality::builder()
        .with_dispatch(dispatch.clone())
        .with_evaluator(Arc::new(SyncAdapter(Traced)))
        .build();
    assert!(q.evaluate(EvalInput::new("an answer")));
    assert!(q.flush(Duration::from_secs(10)));
    assert_eq!(own.0.load(Ordering::SeqCst), 1);
    drop(dispatch);
    assert!(q.evaluate(EvalInput::new("another answer")));
    assert!(q.flush(Duration::from_secs(10)));
    assert_eq!(q.stats().evals_run, 2, "{:?}", q.stats());
    assert_eq!(own.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        global.0.load(Ordering::SeqCst),
        0,
        "an evaluator's span reached the global subscriber"
    );
}
