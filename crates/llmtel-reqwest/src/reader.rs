//! The body reader: decodes response bodies on a thread of its own, so the caller's stream
//! runs at the speed of plain reqwest.
//!
//! On the caller's thread the instrumented body only notes when each frame arrived and copies
//! its bytes into a 64 KiB window (frames of 16 KiB and more are kept by reference), so the
//! connection's read buffer is reused at once. Each full window (or 64 frames kept by
//! reference), and what is left when the body ends, fails or is dropped, is handed to the
//! reader thread, which runs the SSE parser and the
//! provider's decoder, records usage, timing and errors on the span and ends it.
//!
//! Memory is bounded: at most [`MAX_QUEUED_BYTES`] wait for the reader or are being decoded
//! by it (a batch counts until it has been decoded); past that the bytes of new frames are
//! skipped (counted in [`ReaderStats::bytes_skipped`] and `llmtel::health()`, and noted on
//! the span as `llmtel.parse_error`), never blocking the caller. What the decoders keep per
//! call until the call ends (a JSON body read whole, the request's copy) is bounded over all
//! calls by [`MAX_KEPT_BYTES`](crate::MAX_KEPT_BYTES); an SSE parser holds at most one event
//! (its data and its current line up to 4 MiB each, in buffers that can grow to twice that,
//! then only the event's last 64 KiB), not in that budget, and gives back what an event over
//! 64 KiB needed once it is dispatched. While bodies keep arriving the
//! reader polls for work every millisecond, so the caller's thread does not pay for waking
//! it; after 200 idle polls it sleeps, and the next body's end (or 1 MiB waiting) wakes it.
//! A span therefore ends at most about a millisecond after its body (the span's end time is
//! when the reader ends it). [`llmtel::finish_pending_spans`] (called by llmtel's guard)
//! waits until every body that ended has its span ended.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::body::{CallState, End};

/// Most bytes waiting for the reader thread or being decoded by it, over all bodies.
pub const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;
/// Frames shorter than this are copied (a few hundred bytes of SSE each); longer ones are
/// kept by reference.
const COPY_BELOW: usize = 16 * 1024;
/// The buffer frames are copied into; it is handed to the reader when full (and at the end).
const WINDOW: usize = 64 * 1024;
/// Frames kept by reference before a hand-off (bounds the connection buffers they pin).
const HANDOFF_FRAMES: usize = 64;
const WAKE_BYTES: usize = 1024 * 1024;
/// While bodies keep arriving the reader looks for work this often, so that the caller's
/// thread never has to wake it (a futex wake costs microseconds, a VM's more).
const POLL: Duration = Duration::from_millis(1);
/// Polls without work before the reader sleeps until woken.
const IDLE_POLLS: u32 = 200;

/// One frame of a body as the caller saw it.
#[derive(Debug)]
pub(crate) enum Piece {
    /// The frame's bytes and when the caller got them.
    Data(Bytes, Instant),
    /// A frame of this many bytes was skipped: the reader was too far behind.
    Gap(usize),
}

struct Handoff {
    id: u64,
    /// The call's state, with its first hand-off.
    state: Option<Box<CallState>>,
    pieces: Vec<Piece>,
    end: Option<End>,
}

#[derive(Default)]
struct Queue {
    msgs: VecDeque<Handoff>,
    queued_bytes: usize,
    unwoken_bytes: usize,
    ends_sent: u64,
    ends_done: u64,
    /// The reader is parked until woken (not polling).
    sleeping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reader thread.
pub(crate) struct Reader {
    shared: Arc<Shared>,
    thread: Thread,
}

static READER: OnceLock<Option<Reader>> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct Counters {
    calls: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    inline_calls: AtomicU64,
    panics: AtomicU64,
}

static COUNTERS: Counters = Counters {
    calls: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
    skipped: AtomicU64::new(0),
    inline_calls: AtomicU64::new(0),
    panics: AtomicU64::new(0),
};

/// What the body reader has done since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReaderStats {
    /// Calls whose span the reader thread ended.
    pub calls_finished: u64,
    /// Body bytes it decoded.
    pub bytes_read: u64,
    /// Body bytes it never saw because more than [`MAX_QUEUED_BYTES`] were waiting (the
    /// calls' spans carry `llmtel.parse_error`). Also counted in
    /// `llmtel::health().body_bytes_skipped`.
    pub bytes_skipped: u64,
    /// Calls decoded on the caller's thread because the reader thread could not be started.
    pub inline_calls: u64,
    /// Calls whose decoding panicked (a bug: please report it); their spans end failed with
    /// `error.type = internal`, without what the body held, and their pre-flight hooks are
    /// settled with that class. Also counted in `llmtel::health().body_decoder_panics`.
    pub decoder_panics: u64,
    /// Bytes kept for decoding now, over all calls in flight (JSON bodies read whole,
    /// request copies); at most [`MAX_KEPT_BYTES`](crate::MAX_KEPT_BYTES).
    pub kept_bytes: u64,
    /// JSON bodies read from their tail only, and requests not kept, because
    /// [`MAX_KEPT_BYTES`](crate::MAX_KEPT_BYTES) were in use (their spans carry
    /// `llmtel.parse_error`). Each is also counted in `llmtel::health().kept_over_budget`.
    pub over_budget: u64,
}

/// The body reader's counters.
pub fn reader_stats() -> ReaderStats {
    ReaderStats {
        calls_finished: COUNTERS.calls.load(Relaxed),
        bytes_read: COUNTERS.bytes.load(Relaxed),
        bytes_skipped: COUNTERS.skipped.load(Relaxed),
        inline_calls: COUNTERS.inline_calls.load(Relaxed),
        decoder_panics: COUNTERS.panics.load(Relaxed),
        kept_bytes: crate::budget::BUDGET.held() as u64,
        over_budget: crate::budget::over_budget(),
    }
}

impl Reader {
    /// The reader thread, started on first use; `None` if the thread cannot be spawned.
    pub(crate) fn get() -> Option<&'static Reader> {
        READER.get_or_init(Reader::spawn).as_ref()
    }

    fn spawn() -> Option<Reader> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            done: Condvar::new(),
        });
        let theirs = shared.clone();
        let handle = std::thread::Builder::new()
            .name("llmtel-body-reader".into())
            .spawn(move || run(&theirs))
            .ok()?;
        let reader = Reader {
            shared,
            thread: handle.thread().clone(),
        };
        llmtel::register_span_finisher(|timeout| match READER.get() {
            Some(Some(r)) => r.finish_pending(timeout),
            _ => true,
        });
        Some(reader)
    }

    fn send(&self, mut msg: Handoff) {
        let mut bytes = queued_bytes(&msg.pieces);
        let end = msg.end.is_some();
        let wake = {
            let mut q = self.shared.lock();
            if q.queued_bytes + bytes > MAX_QUEUED_BYTES {
                COUNTERS.skipped.fetch_add(bytes as u64, Relaxed);
                llmtel::count_body_bytes_skipped(bytes as u64);
                for p in &mut msg.pieces {
                    if let Piece::Data(b, _) = p {
                        *p = Piece::Gap(b.len());
                    }
                }
                bytes = 0;
            }
            q.msgs.push_back(msg);
            q.queued_bytes += bytes;
            q.unwoken_bytes += bytes;
            if end {
                q.ends_sent += 1;
            }
            let wake = q.sleeping && (end || q.unwoken_bytes >= WAKE_BYTES);
            if wake {
                q.unwoken_bytes = 0;
                q.sleeping = false;
            }
            wake
        };
        if wake {
            self.thread.unpark();
        }
    }

    /// Waits until every body that ended so far has its span ended.
    fn finish_pending(&self, timeout: Duration) -> bool {
        // (`Duration::MAX`, "as long as it takes", has no deadline: it overflowed one.)
        let deadline = Instant::now().checked_add(timeout);
        let mut q = self.shared.lock();
        let target = q.ends_sent;
        self.thread.unpark();
        while q.ends_done < target {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return false;
            }
            q = self
                .shared
                .done
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

fn queued_bytes(pieces: &[Piece]) -> usize {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Data(b, _) => b.len(),
            Piece::Gap(_) => 0,
        })
        .sum()
}

/// Takes every message waiting. Their bytes still count against [`MAX_QUEUED_BYTES`] until
/// [`batch_done`] (they are in memory until decoded).
fn take_batch(shared: &Shared, idle: u32) -> VecDeque<Handoff> {
    let mut q = shared.lock();
    q.unwoken_bytes = 0;
    if q.msgs.is_empty() && idle >= IDLE_POLLS {
        // Checked and set under the lock a sender takes: no wake-up is missed.
        q.sleeping = true;
    }
    std::mem::take(&mut q.msgs)
}

/// A batch of `bytes`, with `ended` bodies' ends, has been decoded.
fn batch_done(shared: &Shared, bytes: usize, ended: u64) {
    {
        let mut q = shared.lock();
        q.queued_bytes = q.queued_bytes.saturating_sub(bytes);
        q.ends_done += ended;
    }
    shared.done.notify_all();
}

fn run(shared: &Shared) {
    let mut calls: HashMap<u64, Box<CallState>> = HashMap::new();
    let mut idle = 0;
    loop {
        let msgs = take_batch(shared, idle);
        if msgs.is_empty() {
            if idle >= IDLE_POLLS {
                std::thread::park();
                shared.lock().sleeping = false;
                idle = 0;
            } else {
                std::thread::park_timeout(POLL);
                idle += 1;
            }
            continue;
        }
        idle = 0;
        let mut ended = 0;
        let mut bytes = 0;
        for msg in msgs {
            if msg.end.is_some() {
                ended += 1;
            }
            // As `send` counted them (the bytes of skipped frames were never counted).
            bytes += queued_bytes(&msg.pieces);
            process(&mut calls, msg);
        }
        batch_done(shared, bytes, ended);
    }
}

fn process(calls: &mut HashMap<u64, Box<CallState>>, msg: Handoff) {
    let Handoff {
        id,
        state,
        pieces,
        end,
    } = msg;
    if let Some(s) = state {
        calls.insert(id, s);
    }
    let Some(mut state) = calls.remove(&id) else {
        return;
    };
    let ended = end.is_some();
    let completed = run_guarded(&mut state, |state| {
        feed(state, pieces);
        if let Some(end) = end {
            state.in_own_dispatch(|s| s.finish(end));
            COUNTERS.calls.fetch_add(1, Relaxed);
        }
    });
    if completed && !ended {
        calls.insert(id, state);
    }
}

/// Runs `f` on a call's state, catching a panic (a bug, counted in
/// [`ReaderStats::decoder_panics`]): the call is then abandoned, its span failed with
/// `error.type = internal` and its hook settled, after the unwinding (the hook is the
/// application's code; a panic in it is caught too). Returns whether `f` completed.
fn run_guarded(state: &mut CallState, f: impl FnOnce(&mut CallState)) -> bool {
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(state))) {
        Ok(()) => true,
        Err(_) => {
            COUNTERS.panics.fetch_add(1, Relaxed);
            llmtel::count_body_decoder_panic();
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                state.in_own_dispatch(CallState::abandon);
            }));
            false
        }
    }
}

fn feed(state: &mut CallState, pieces: Vec<Piece>) {
    for p in pieces {
        match p {
            Piece::Data(b, at) => {
                COUNTERS.bytes.fetch_add(b.len() as u64, Relaxed);
                state.on_data(&b, at);
            }
            Piece::Gap(n) => state.on_gap(n),
        }
    }
}

/// The caller's side of one body.
pub(crate) enum Tap {
    /// Decoded on the caller's thread (no reader thread).
    Inline(Box<CallState>),
    /// Handed to the reader thread in batches.
    Offloaded(Offload),
    /// The body has ended and the call was handed over.
    Done,
}

pub(crate) struct Offload {
    reader: &'static Reader,
    id: u64,
    state: Option<Box<CallState>>,
    /// Frames handed over in order: those kept by reference, and the copied ones once their
    /// window is sealed.
    pieces: Vec<Piece>,
    /// Copied frames not yet sealed: their bytes in `window`, their lengths and times here.
    copied: Vec<(usize, Instant)>,
    window: BytesMut,
}

impl Tap {
    pub(crate) fn new(state: CallState) -> Tap {
        match Reader::get() {
            Some(reader) => Tap::Offloaded(Offload {
                reader,
                id: NEXT_ID.fetch_add(1, Relaxed),
                state: Some(Box::new(state)),
                pieces: Vec::new(),
                copied: Vec::new(),
                window: BytesMut::new(),
            }),
            None => {
                COUNTERS.inline_calls.fetch_add(1, Relaxed);
                Tap::Inline(Box::new(state))
            }
        }
    }

    /// A frame of the body arrived.
    #[inline]
    pub(crate) fn on_data(&mut self, data: &Bytes) {
        if data.is_empty() {
            return;
        }
        let now = Instant::now();
        match self {
            Tap::Inline(state) => {
                if !run_guarded(state, |s| s.on_data(data, now)) {
                    *self = Tap::Done;
                }
            }
            Tap::Offloaded(o) => {
                if data.len() < COPY_BELOW {
                    // Copied (from cache: the kernel just wrote it), so the connection's read
                    // buffer is free for reuse at once.
                    if o.window.len() + data.len() > o.window.capacity() {
                        if !o.copied.is_empty() {
                            o.hand_off(None);
                        }
                        o.window.reserve(WINDOW);
                    }
                    o.window.extend_from_slice(data);
                    o.copied.push((data.len(), now));
                } else {
                    o.seal();
                    o.pieces.push(Piece::Data(data.clone(), now));
                    if o.pieces.len() >= HANDOFF_FRAMES {
                        o.hand_off(None);
                    }
                }
            }
            Tap::Done => {}
        }
    }

    /// The body ended (completely, with an error, or dropped by the caller).
    pub(crate) fn end(&mut self, end: End) {
        match std::mem::replace(self, Tap::Done) {
            Tap::Inline(mut state) => {
                run_guarded(&mut state, |s| s.in_own_dispatch(|s| s.finish(end)));
            }
            Tap::Offloaded(mut o) => o.hand_off(Some(end)),
            Tap::Done => {}
        }
    }
}

impl Offload {
    /// Moves the copied frames into `pieces`, in order, as slices of one shared buffer.
    fn seal(&mut self) {
        if self.copied.is_empty() {
            return;
        }
        let chunk = self.window.split().freeze();
        let mut at = 0;
        for (len, t) in self.copied.drain(..) {
            self.pieces.push(Piece::Data(chunk.slice(at..at + len), t));
            at += len;
        }
    }

    fn hand_off(&mut self, end: Option<End>) {
        self.seal();
        self.reader.send(Handoff {
            id: self.id,
            state: self.state.take(),
            pieces: std::mem::take(&mut self.pieces),
            end,
        });
    }
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tap::Inline(_) => "Tap::Inline",
            Tap::Offloaded(_) => "Tap::Offloaded",
            Tap::Done => "Tap::Done",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Handoff {
        Handoff {
            id: 0,
            state: None,
            pieces: vec![Piece::Data(Bytes::from(vec![0u8; n]), Instant::now())],
            end: None,
        }
    }

    #[test]
    fn a_batch_counts_against_the_queue_bound_until_it_is_decoded() {
        let reader = Reader {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                done: Condvar::new(),
            }),
            thread: std::thread::current(),
        };
        reader.send(data(1 << 20));
        let batch = take_batch(&reader.shared, 0);
        assert_eq!(batch.len(), 1);
        assert_eq!(
            reader.shared.lock().queued_bytes,
            1 << 20,
            "still in memory"
        );
        // While it is decoded, what would pass the bound with it is skipped, and counted in
        // `llmtel::health()` too (only in `reader_stats()`, which nothing exported, the loss
        // was not on the Prometheus page).
        let skipped = COUNTERS.skipped.load(Relaxed);
        let health = llmtel::health().body_bytes_skipped;
        reader.send(data(MAX_QUEUED_BYTES - (1 << 20) + 1));
        assert_eq!(
            COUNTERS.skipped.load(Relaxed),
            skipped + (MAX_QUEUED_BYTES - (1 << 20) + 1) as u64
        );
        assert!(
            llmtel::health().body_bytes_skipped
                >= health + (MAX_QUEUED_BYTES - (1 << 20) + 1) as u64
        );
        assert!(matches!(
            reader.shared.lock().msgs[0].pieces[0],
            Piece::Gap(_)
        ));
        batch_done(&reader.shared, queued_bytes(&batch[0].pieces), 0);
        assert_eq!(reader.shared.lock().queued_bytes, 0);
        reader.send(data(MAX_QUEUED_BYTES));
        assert_eq!(reader.shared.lock().queued_bytes, MAX_QUEUED_BYTES);
    }
}
