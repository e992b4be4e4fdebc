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
//!
//! A collector also refuses a request over its size limit: gRPC `RESOURCE_EXHAUSTED` (Go and
//! Python receivers) or `OUT_OF_RANGE` (tonic), HTTP 413. The queue keeps each request under
//! [`crate::QueueConfig::max_export_batch_bytes`]; a collector whose limit is lower still
//! gets every span: a held batch refused that way is halved and each half sent (and halved
//! again if need be), and the queue keeps its later requests under half the size refused
//! (not under 512 KiB: an overloaded collector answers `RESOURCE_EXHAUSTED` too). A
//! healthy pipeline keeps no copy, so the batches in flight when a size refusal first comes
//! are lost and counted, as in an outage; the halving starts with the next one.

use std::cell::Cell;
use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
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

/// The smallest request a refusal is taken as a refusal for its size of, and halved (below
/// it, a `RESOURCE_EXHAUSTED` is taken for an overloaded collector: the request is held
/// whole).
pub(crate) const MIN_REQUEST_BYTES: usize = 64 * 1024;

/// The smallest size a refusal makes the queue keep its requests under. `RESOURCE_EXHAUSTED`
/// is also an overloaded collector's answer, whatever the size: a throttling episode must
/// not leave the queue sending tiny requests for good. (A collector that takes less than
/// this still gets every span of a kept request, halved; set
/// [`crate::QueueConfig::max_export_batch_bytes`] under its limit.)
pub(crate) const MIN_LEARNED_BYTES: usize = 512 * 1024;

/// The outage state of one export queue, shared by its thread and its handle.
#[derive(Debug)]
pub(crate) struct Hold {
    state: AtomicU8,
    give_up_at: Mutex<Option<Instant>>,
    /// Half the smallest request the collector refused for its size (`usize::MAX` until
    /// one was): the queue keeps its requests under it.
    size_limit: AtomicUsize,
    /// [`LONE_SPAN_HOLD`] (shorter in tests).
    lone_span_hold: Duration,
}

/// The request being exported on the queue's runtime: its estimated size, and how many of
/// its spans went out when only part of it did (it was halved after a refusal for size).
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub(crate) bytes: Cell<usize>,
    pub(crate) sent: Cell<u64>,
}

tokio::task_local! {
    /// The request the current export task sends (set by the export queue).
    pub(crate) static REQUEST: Request;
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
            size_limit: AtomicUsize::new(usize::MAX),
            lone_span_hold: LONE_SPAN_HOLD,
        })
    }

    /// [`Hold::new`] retrying a lone span refused with `RESOURCE_EXHAUSTED` for `hold`.
    #[cfg(test)]
    fn with_lone_span_hold(hold: Duration) -> Arc<Hold> {
        let mut h = Hold::new();
        if let Some(h) = Arc::get_mut(&mut h) {
            h.lone_span_hold = hold;
        }
        h
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
    /// set wins). A `within` past what the clock can count (`Duration::MAX`, "as long as it
    /// takes") sets no deadline: `now + within` overflowed, a panic in the shutdown or in the
    /// queue's `Drop`.
    pub(crate) fn give_up_within(&self, within: Duration) {
        let Some(at) = Instant::now().checked_add(within) else {
            return;
        };
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

    /// The size the queue keeps each request under, learned from the collector's refusals
    /// (`usize::MAX` until one).
    pub(crate) fn size_limit(&self) -> usize {
        self.size_limit.load(Ordering::Relaxed)
    }

    /// A request of `bytes` was refused for its size: later ones are kept under half of it.
    fn learn_refused(&self, bytes: usize) {
        self.size_limit
            .fetch_min((bytes / 2).max(MIN_LEARNED_BYTES), Ordering::Relaxed);
    }

    /// Exports `batch` through `inner`, holding it through an outage and halving it when the
    /// collector refuses its size (see the module docs).
    pub(crate) async fn export<E: SpanExporter>(
        &self,
        inner: &E,
        batch: Vec<SpanData>,
    ) -> OTelSdkResult {
        if !self.in_doubt() {
            // All or nothing here: the queue counts the whole request either way.
            let r = inner.export(batch).await;
            if let Err(e) = &r {
                // Refused for its size, with no copy to halve: lost (and counted); the next
                // requests are kept smaller, and kept until they went out.
                let bytes = REQUEST.try_with(|r| r.bytes.get()).unwrap_or(0);
                let too_big = refused_for_size(e) && bytes >= MIN_REQUEST_BYTES;
                if too_big {
                    self.learn_refused(bytes);
                }
                if too_big || is_transient(e) {
                    self.state.store(OUTAGE, Ordering::Relaxed);
                }
            }
            return r;
        }
        Box::pin(self.export_held(inner, batch)).await
    }

    /// [`export`](Self::export) while in doubt: the batch is kept until it went out.
    async fn export_held<E: SpanExporter>(
        &self,
        inner: &E,
        mut batch: Vec<SpanData>,
    ) -> OTelSdkResult {
        let mut delay = FIRST_RETRY;
        let mut refused_alone: Option<Instant> = None;
        loop {
            if self.given_up() {
                return Err(gave_up(None));
            }
            let attempt = self.unless_given_up(inner.export(batch.clone())).await;
            match attempt {
                None => return Err(gave_up(None)),
                Some(Ok(())) => {
                    self.state.store(HEALTHY, Ordering::Relaxed);
                    note_sent(batch.len() as u64);
                    return Ok(());
                }
                Some(Err(e)) if self.too_big(&e, &batch) => {
                    // Too big for this collector: each half on its own (halved again if need
                    // be); what went out is counted as sent even if the other half fails.
                    inc(&COUNTERS.export_errors);
                    let back = batch.split_off(batch.len() / 2);
                    let front = Box::pin(self.export_held(inner, batch)).await;
                    let back = Box::pin(self.export_held(inner, back)).await;
                    return front.and(back);
                }
                Some(Err(e)) if self.refused_alone(&e, &batch, &mut refused_alone) => {
                    // One span, too big for this collector on its own: retried, it would
                    // hold every later span back for good.
                    self.state.store(HEALTHY, Ordering::Relaxed);
                    return Err(too_big_alone(&e, &batch));
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

    /// Whether `e` refused `batch` for its size: a refusal that may mean it, for a batch of
    /// more than one span and at least [`MIN_REQUEST_BYTES`]. If so, later requests are kept
    /// under half its size.
    fn too_big(&self, e: &OTelSdkError, batch: &[SpanData]) -> bool {
        if !refused_for_size(e) || batch.len() < 2 {
            return false;
        }
        let bytes: usize = batch.iter().map(crate::export::encoded_size_estimate).sum();
        if bytes < MIN_REQUEST_BYTES {
            return false;
        }
        self.learn_refused(bytes);
        true
    }

    /// Whether `e` refuses a lone span of at least [`MIN_REQUEST_BYTES`] for its size for the
    /// last time: at once for `OUT_OF_RANGE` / 413 (not retried anyway); for
    /// `RESOURCE_EXHAUSTED`, also an overloaded collector's answer (the exporter does not say
    /// which), once it has been refused for [`Hold::lone_span_hold`] since the first refusal
    /// (`since`).
    fn refused_alone(
        &self,
        e: &OTelSdkError,
        batch: &[SpanData],
        since: &mut Option<Instant>,
    ) -> bool {
        if batch.len() != 1 || !refused_for_size(e) {
            return false;
        }
        if crate::export::encoded_size_estimate(&batch[0]) < MIN_REQUEST_BYTES {
            return false;
        }
        let first = *since.get_or_insert_with(Instant::now);
        !is_transient(e) || first.elapsed() >= self.lone_span_hold
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

/// How long a lone span refused with `RESOURCE_EXHAUSTED` is retried before it is taken as
/// too big for the collector and dropped (counted): longer than a collector's usual
/// throttling spell, and bounded (retried for good, it held every later span back).
pub(crate) const LONE_SPAN_HOLD: Duration = Duration::from_secs(30);

fn too_big_alone(e: &OTelSdkError, batch: &[SpanData]) -> OTelSdkError {
    let bytes: usize = batch.iter().map(crate::export::encoded_size_estimate).sum();
    OTelSdkError::InternalFailure(format!(
        "a span of about {} KiB was refused for its size on its own ({e}); it is dropped \
         and counted. Raise the collector's request size limit (max_recv_msg_size_mib) or \
         keep large values (bodies, documents) out of span attributes",
        bytes / 1024
    ))
}

fn gave_up(last: Option<&OTelSdkError>) -> OTelSdkError {
    OTelSdkError::InternalFailure(match last {
        // (Held, so transient: of the refusals for size, only RESOURCE_EXHAUSTED is.)
        Some(e) if refused_for_size(e) => format!(
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

/// Counts `n` spans of the current request as sent (read when only part of it went out).
fn note_sent(n: u64) {
    let _ = REQUEST.try_with(|r| r.sent.set(r.sent.get() + n));
}

/// Whether an export error may be the collector refusing the request's size: gRPC
/// `RESOURCE_EXHAUSTED` (Go's and Python's "received message larger than max", also an
/// overloaded collector's answer) or `OUT_OF_RANGE` (tonic's "decoded message length too
/// large"), HTTP 413.
pub(crate) fn refused_for_size(e: &OTelSdkError) -> bool {
    match e {
        OTelSdkError::InternalFailure(m) => {
            m.contains("gRPC code: ResourceExhausted")
                || m.contains("gRPC code: OutOfRange")
                || m.contains("status code: 413")
        }
        _ => false,
    }
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

    /// A collector that refuses, as too big, any request of more than `max` spans.
    #[derive(Debug)]
    struct SpanLimit {
        max: usize,
        error: &'static str,
        seen: Mutex<Vec<(usize, bool)>>,
    }

    impl SpanExporter for SpanLimit {
        fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
            let ok = batch.len() <= self.max;
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((batch.len(), ok));
            std::future::ready(if ok {
                Ok(())
            } else {
                Err(OTelSdkError::InternalFailure(self.error.into()))
            })
        }
    }

    /// Exports `spans` spans of ~`kib` KiB each through `hold` to `collector`; returns the
    /// outcome and the spans counted as sent.
    fn export(
        hold: &Hold,
        collector: &impl SpanExporter,
        spans: usize,
        kib: usize,
    ) -> (OTelSdkResult, u64) {
        let batch: Vec<SpanData> = (0..spans)
            .map(|i| {
                let attrs = vec![opentelemetry::KeyValue::new("c", "x".repeat(kib * 1024))];
                crate::export::tests::span(&i.to_string(), attrs, None, "")
            })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // A batch held for good (taken for an outage) fails the test, not hangs it.
        hold.give_up_within(Duration::from_secs(10));
        rt.block_on(REQUEST.scope(Request::default(), async {
            let r = hold.export(collector, batch).await;
            (r, REQUEST.with(|r| r.sent.get()))
        }))
    }

    #[test]
    fn a_kept_batch_refused_for_its_size_is_halved_until_it_fits_and_the_size_is_learned() {
        for error in [
            "TonicTracesClient export failed with gRPC code: ResourceExhausted",
            "TonicTracesClient export failed with gRPC code: OutOfRange",
            "HTTP export failed with status code: 413",
        ] {
            let hold = Hold::new(); // no export yet: in doubt, batches are kept
            let collector = SpanLimit {
                max: 30,
                error,
                seen: Mutex::default(),
            };
            let (r, sent) = export(&hold, &collector, 100, 40);
            assert!(r.is_ok(), "{error}: {r:?}");
            assert_eq!(sent, 100, "{error}");
            let seen = collector.seen.lock().unwrap().clone();
            assert_eq!(
                seen,
                [
                    (100, false),
                    (50, false),
                    (25, true),
                    (25, true),
                    (50, false),
                    (25, true),
                    (25, true)
                ],
                "{error}"
            );
            // Later requests are kept under half the smallest refused (50 spans of ~41 KiB),
            // which is what the collector takes.
            let limit = hold.size_limit();
            let span = 40 * 1024 + 1 + 12 + 1 + 96 + 1024 + 2;
            assert!(limit <= 25 * span + 25 && limit >= 20 * span, "{limit}");
            assert!(!hold.in_doubt());
        }
    }

    /// An overloaded collector answers `RESOURCE_EXHAUSTED` to any request, whatever its size.
    #[derive(Debug)]
    struct Overloaded {
        refusals: Mutex<usize>,
    }

    impl SpanExporter for Overloaded {
        fn export(&self, _batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
            let mut left = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
            let refused = *left > 0;
            *left = left.saturating_sub(1);
            std::future::ready(if refused {
                Err(OTelSdkError::InternalFailure(
                    "TonicTracesClient export failed with gRPC code: ResourceExhausted".into(),
                ))
            } else {
                Ok(())
            })
        }
    }

    #[test]
    fn a_lone_span_too_big_for_the_collector_is_dropped_and_does_not_hold_the_rest_back() {
        for (error, attempts) in [
            // Refused at 0 s, 1 s and 3 s (the delay doubles): dropped once 2 s have passed.
            (
                "TonicTracesClient export failed with gRPC code: ResourceExhausted",
                3,
            ),
            (
                "TonicTracesClient export failed with gRPC code: OutOfRange",
                1,
            ),
            ("HTTP export failed with status code: 413", 1),
        ] {
            let hold = Hold::with_lone_span_hold(Duration::from_secs(2));
            // Takes no request with a span in it: a 100 KiB span is too big alone.
            let collector = SpanLimit {
                max: 0,
                error,
                seen: Mutex::default(),
            };
            let (r, sent) = export(&hold, &collector, 1, 100);
            let e = r.expect_err(error).to_string();
            // Dropped as too big (the queue counts it), not given up at the deadline.
            assert!(
                e.contains("refused for its size on its own"),
                "{error}: {e}"
            );
            assert_eq!(sent, 0);
            assert_eq!(collector.seen.lock().unwrap().len(), attempts, "{error}");
        }
    }

    #[test]
    fn a_lone_large_span_refused_by_an_overloaded_collector_for_a_while_still_goes_out() {
        // RESOURCE_EXHAUSTED is also a throttling collector's answer: a large span refused
        // for a few seconds (at 0, 1 and 3 s) is held, not dropped.
        let hold = Hold::new();
        let collector = Overloaded {
            refusals: Mutex::new(3),
        };
        let (r, sent) = export(&hold, &collector, 1, 100);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(sent, 1);
    }

    #[test]
    fn an_overloaded_collector_gets_every_span_and_never_shrinks_requests_below_the_floor() {
        let hold = Hold::new();
        // Refuses the first 7 requests, whatever their size: 100 spans halved down to one
        // before one goes out (no wait: each refusal halves a request over the size floor).
        let collector = Overloaded {
            refusals: Mutex::new(7),
        };
        let (r, sent) = export(&hold, &collector, 100, 40);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(sent, 100);
        assert_eq!(hold.size_limit(), MIN_LEARNED_BYTES);
    }

    #[test]
    fn a_healthy_pipeline_learns_the_size_refused_and_a_small_batch_is_never_halved() {
        let hold = Hold::new();
        hold.state.store(HEALTHY, Ordering::Relaxed);
        let collector = SpanLimit {
            max: 30,
            error: "TonicTracesClient export failed with gRPC code: OutOfRange",
            seen: Mutex::default(),
        };
        // Healthy: no copy, so the refused batch is lost (the queue counts it); the size
        // the queue gave for it is learned.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let request = Request::default();
        request.bytes.set(1 << 20);
        let batch = (0..40)
            .map(|i| crate::export::tests::span(&i.to_string(), Vec::new(), None, ""))
            .collect();
        let r = rt.block_on(REQUEST.scope(request, hold.export(&collector, batch)));
        assert!(r.is_err());
        assert_eq!(hold.size_limit(), 1 << 19);
        assert!(hold.in_doubt(), "the next batch is kept");
        // A refusal of a batch under MIN_REQUEST_BYTES is not taken for its size: an
        // OUT_OF_RANGE one is a rejection of the batch, not halved.
        let (r, sent) = export(&Hold::new(), &collector, 0, 1);
        assert!(r.is_ok() && sent == 0);
        let small = SpanLimit {
            max: 1,
            error: "TonicTracesClient export failed with gRPC code: OutOfRange",
            seen: Mutex::default(),
        };
        let (r, sent) = export(&Hold::new(), &small, 4, 1);
        assert!(r.is_err() && sent == 0, "{r:?}");
        assert_eq!(small.seen.lock().unwrap().as_slice(), [(4, false)]);
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
