//! Holding a batch through a collector outage, on [`crate::ExportQueue`]'s threads.
//!
//! The OTLP exporters retry a failed export a few times within their timeout (about 0.7 s
//! against a collector that refuses connections; longer when it asks for a delay with gRPC
//! `RetryInfo` or HTTP `Retry-After`). Past that, a plain batch processor drops the batch and
//! takes the next one, which fails the same way: during an outage it drains its whole queue
//! into failures. llmtel's export queue does not. While the collector is down, refuses
//! (gRPC `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, ...; HTTP 429, 502, 503, 504) or times out, the
//! export thread keeps the batch and retries it with a growing delay (1 s doubling to 5 s),
//! and the spans ended meanwhile wait in the bounded queue; past its bound they are dropped
//! and counted (`Health::spans_dropped`). When the collector answers again, the held batch
//! and the queue go out.
//!
//! Keeping a batch for a retry costs a copy of it, so the thread copies only while it has
//! reason to expect a failure: until the first export succeeded, and from a failed export
//! until the next one that goes out. A healthy pipeline never copies; when a collector that
//! was healthy fails, the batches in flight (at most two) are lost and counted
//! (`Health::spans_export_failed`).
//!
//! A shutdown (or dropping the queue) sets a deadline inside its timeout: from then on the
//! thread stops waiting for an unreachable collector, counts what it could not send, and the
//! shutdown says how many spans that was.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::health::{COUNTERS, inc};

/// The first delay before a held batch is retried.
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest delay between two retries of a held batch.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(5);
/// How often a wait checks whether a shutdown gave up on the collector.
const GIVE_UP_POLL: Duration = Duration::from_millis(20);

const UNPROVEN: u8 = 0;
const HEALTHY: u8 = 1;
const OUTAGE: u8 = 2;

/// The outage state of one export queue, shared by its thread and its handle.
#[derive(Debug)]
pub(crate) struct Hold {
    state: AtomicU8,
    give_up_at: Mutex<Option<Instant>>,
}

thread_local! {
    /// The hold of the export queue whose thread this is (none on any other thread).
    static CURRENT: RefCell<Option<Arc<Hold>>> = const { RefCell::new(None) };
}

impl Hold {
    pub(crate) fn new() -> Arc<Hold> {
        Arc::new(Hold {
            state: AtomicU8::new(UNPROVEN),
            give_up_at: Mutex::new(None),
        })
    }

    /// Makes `hold` the current thread's (the export queue's thread, before its exporter is
    /// built).
    pub(crate) fn install(hold: Arc<Hold>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(hold));
    }

    /// The hold of the export queue running on this thread, if any.
    pub(crate) fn current() -> Option<Arc<Hold>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Stops waiting for an unreachable collector `within` from now (the earliest deadline
    /// set wins).
    pub(crate) fn give_up_within(&self, within: Duration) {
        let at = Instant::now() + within;
        let mut g = self.give_up_at.lock().unwrap_or_else(|e| e.into_inner());
        *g = Some(g.map_or(at, |old| old.min(at)));
    }

    fn given_up(&self) -> bool {
        self.give_up_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| Instant::now() >= at)
    }

    /// Whether an export is expected to fail (no success yet, or since the last failure).
    pub(crate) fn in_doubt(&self) -> bool {
        self.state.load(Ordering::Relaxed) != HEALTHY
    }

    /// Exports `batch` through `inner`, holding it through an outage (see the module docs).
    pub(crate) async fn export<E: SpanExporter>(
        &self,
        inner: &E,
        batch: Vec<SpanData>,
    ) -> OTelSdkResult {
        if !self.in_doubt() {
            let r = inner.export(batch).await;
            if let Err(e) = &r {
                if is_transient(e) {
                    self.state.store(OUTAGE, Ordering::Relaxed);
                }
            }
            return r;
        }
        let mut delay = FIRST_RETRY;
        loop {
            if self.given_up() {
                return Err(gave_up(None));
            }
            let attempt = self.unless_given_up(inner.export(batch.clone())).await;
            match attempt {
                None => return Err(gave_up(None)),
                Some(Ok(())) => {
                    self.state.store(HEALTHY, Ordering::Relaxed);
                    return Ok(());
                }
                Some(Err(e)) if !is_transient(&e) => {
                    // The collector answered: it is reachable, and rejects this batch.
                    self.state.store(HEALTHY, Ordering::Relaxed);
                    return Err(e);
                }
                Some(Err(e)) => {
                    self.state.store(OUTAGE, Ordering::Relaxed);
                    inc(&COUNTERS.export_errors);
                    if self
                        .unless_given_up(tokio::time::sleep(delay))
                        .await
                        .is_none()
                    {
                        return Err(gave_up(Some(&e)));
                    }
                    delay = (delay * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// Runs `fut` until it finishes or a shutdown gives up (`None`).
    async fn unless_given_up<F: Future>(&self, fut: F) -> Option<F::Output> {
        let mut fut = pin!(fut);
        let mut poll = pin!(tokio::time::sleep(GIVE_UP_POLL));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            while poll.as_mut().poll(cx).is_ready() {
                if self.given_up() {
                    return Poll::Ready(None);
                }
                poll.as_mut()
                    .reset(tokio::time::Instant::now() + GIVE_UP_POLL);
            }
            Poll::Pending
        })
        .await
    }
}

fn gave_up(last: Option<&OTelSdkError>) -> OTelSdkError {
    OTelSdkError::InternalFailure(match last {
        Some(e) if e.to_string().contains("ResourceExhausted") => format!(
            "given up at shutdown while the collector refused the spans ({e}). \
             RESOURCE_EXHAUSTED is also how a gRPC receiver refuses a request over its \
             message size limit: if the collector is not overloaded, lower \
             LLMTEL_EXPORT_MAX_BATCH_BYTES (QueueConfig::max_export_batch_bytes, 3 MiB by \
             default) under its limit or raise the limit (max_recv_msg_size_mib)"
        ),
        Some(e) => format!("given up at shutdown while the collector was unreachable ({e})"),
        None => "given up at shutdown while the collector was unreachable".to_owned(),
    })
}

/// Whether an export error says the collector may take the same batch later: it could not
/// be reached, timed out, or refused for now (gRPC `UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
/// `DEADLINE_EXCEEDED`, `ABORTED`, `CANCELLED`; HTTP 429, 502, 503, 504). A rejection of
/// the batch itself (invalid, unauthenticated, 400, 401, 404, ...) is not: the batch is
/// dropped and counted, and the next one is tried.
pub(crate) fn is_transient(e: &OTelSdkError) -> bool {
    match e {
        OTelSdkError::Timeout(_) => true,
        OTelSdkError::AlreadyShutdown => false,
        OTelSdkError::InternalFailure(m) => TRANSIENT.iter().any(|t| m.contains(t)),
    }
}

/// How opentelemetry-otlp words the failures above (`export failed with gRPC code: {code:?}`,
/// `HTTP export failed with status code: {status}`, `HTTP export failed: network error`).
const TRANSIENT: &[&str] = &[
    "gRPC code: Unavailable",
    "gRPC code: ResourceExhausted",
    "gRPC code: DeadlineExceeded",
    "gRPC code: Aborted",
    "gRPC code: Cancelled",
    "status code: 429",
    "status code: 502",
    "status code: 503",
    "status code: 504",
    "network error",
    "timed out",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_for_now_are_transient_and_rejections_are_not() {
        for m in [
            "TonicTracesClient export failed with gRPC code: Unavailable: tcp connect error",
            "TonicTracesClient export failed with gRPC code: ResourceExhausted",
            "HTTP export failed with status code: 429",
            "HTTP export failed with status code: 503",
            "HTTP export failed: network error",
        ] {
            assert!(
                is_transient(&OTelSdkError::InternalFailure(m.into())),
                "{m}"
            );
        }
        for m in [
            "TonicTracesClient export failed with gRPC code: InvalidArgument",
            "TonicTracesClient export failed with gRPC code: Unauthenticated",
            "HTTP export failed with status code: 400",
            "HTTP export failed with status code: 401",
        ] {
            assert!(
                !is_transient(&OTelSdkError::InternalFailure(m.into())),
                "{m}"
            );
        }
        assert!(is_transient(&OTelSdkError::Timeout(Duration::from_secs(1))));
        assert!(!is_transient(&OTelSdkError::AlreadyShutdown));
    }

    #[test]
    fn a_refusal_for_size_says_how_to_fix_it() {
        let e = OTelSdkError::InternalFailure(
            "TonicTracesClient export failed with gRPC code: ResourceExhausted".into(),
        );
        let m = gave_up(Some(&e)).to_string();
        assert!(m.contains("LLMTEL_EXPORT_MAX_BATCH_BYTES"), "{m}");
        let e = OTelSdkError::InternalFailure(
            "TonicTracesClient export failed with gRPC code: Unavailable".into(),
        );
        let m = gave_up(Some(&e)).to_string();
        assert!(
            m.contains("unreachable") && !m.contains("BATCH_BYTES"),
            "{m}"
        );
    }

    #[test]
    fn the_earliest_give_up_deadline_wins() {
        let h = Hold::new();
        h.give_up_within(Duration::from_secs(60));
        h.give_up_within(Duration::ZERO);
        h.give_up_within(Duration::from_secs(60));
        assert!(h.given_up());
    }
}
