//! The budget for the bytes the middleware keeps per call until the call ends, over every
//! call in flight: a JSON response read whole (up to 16 MiB each) and the copy of the request
//! (up to 32 MiB each, for an estimate or content capture). Without it, many concurrent calls
//! with large bodies could hold gigabytes.
//!
//! Past [`MAX_KEPT_BYTES`] a JSON response is read from its last 16 KiB only (its usage, as
//! for a body over 16 MiB) and a request is not kept (an estimate then counts the output
//! only; content capture records no input messages): counted in
//! [`ReaderStats::over_budget`](crate::ReaderStats::over_budget) and
//! `llmtel::health().kept_over_budget`, and noted on the span as
//! `llmtel.parse_error`. What a call holds is given back when the call ends (or its state is
//! dropped), whatever happens.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;

/// Most bytes kept for decoding over all calls in flight (JSON responses read whole, request
/// copies); see [`ReaderStats::kept_bytes`](crate::ReaderStats::kept_bytes).
pub const MAX_KEPT_BYTES: usize = 256 * 1024 * 1024;

/// A bound on bytes held at once.
#[derive(Debug)]
pub(crate) struct Budget {
    held: AtomicUsize,
    limit: usize,
}

/// The middleware's budget.
pub(crate) static BUDGET: Budget = Budget::new(MAX_KEPT_BYTES);

/// Times a body or a request could not be kept whole for the budget.
static OVER: AtomicU64 = AtomicU64::new(0);

impl Budget {
    pub(crate) const fn new(limit: usize) -> Self {
        Budget {
            held: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes held now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        self.held
            .fetch_update(Relaxed, Relaxed, |h| {
                h.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.held.fetch_sub(n, Relaxed);
    }
}

/// Times a body or a request could not be kept whole for the budget, since the process
/// started.
pub(crate) fn over_budget() -> u64 {
    OVER.load(Relaxed)
}

/// Counts one body or request not kept whole for the budget.
pub(crate) fn note_over() {
    OVER.fetch_add(1, Relaxed);
    llmtel::count_kept_over_budget();
}

/// Bytes taken from a budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: &'static Budget,
    bytes: usize,
}

impl Held {
    /// Nothing held yet.
    pub(crate) fn new(budget: &'static Budget) -> Self {
        Held { budget, bytes: 0 }
    }

    /// Holds `total` bytes in all: always possible when it is less than held now; `false`
    /// (nothing changed) when the budget has not the room for more.
    pub(crate) fn resize(&mut self, total: usize) -> bool {
        if total <= self.bytes {
            self.budget.give(self.bytes - total);
        } else if !self.budget.take(total - self.bytes) {
            return false;
        }
        self.bytes = total;
        true
    }

    /// Gives back everything held.
    pub(crate) fn release(&mut self) {
        if self.bytes > 0 {
            self.budget.give(self.bytes);
            self.bytes = 0;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give(self.bytes);
    }
}

/// Bytes kept until the call ends (the request's copy), held against a budget.
#[derive(Debug)]
pub(crate) struct KeptBytes {
    bytes: Bytes,
    _held: Held,
}

impl KeptBytes {
    /// Keeps `bytes` (shared, not copied) if `budget` has the room; counted when not.
    pub(crate) fn keep(budget: &'static Budget, bytes: Bytes) -> Option<Self> {
        let mut held = Held::new(budget);
        if held.resize(bytes.len()) {
            Some(KeptBytes { bytes, _held: held })
        } else {
            note_over();
            None
        }
    }

    /// A copy of `src` if `budget` has the room (checked before copying); counted when not.
    pub(crate) fn copy(budget: &'static Budget, src: &[u8]) -> Option<Self> {
        let mut held = Held::new(budget);
        if held.resize(src.len()) {
            Some(KeptBytes {
                bytes: Bytes::copy_from_slice(src),
                _held: held,
            })
        } else {
            note_over();
            None
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_bytes_are_bounded_and_given_back_when_dropped() {
        static B: Budget = Budget::new(100);
        let mut a = Held::new(&B);
        assert!(a.resize(60));
        let mut b = Held::new(&B);
        assert!(!b.resize(41), "past the limit");
        assert_eq!(B.held(), 60);
        assert!(b.resize(40));
        assert!(a.resize(10), "shrinking always succeeds");
        assert_eq!(B.held(), 50);
        let kept = KeptBytes::copy(&B, &[7; 50]).unwrap();
        assert_eq!(kept.as_bytes(), &[7; 50]);
        let before = over_budget();
        assert!(KeptBytes::keep(&B, Bytes::from_static(b"x")).is_none());
        assert_eq!(over_budget(), before + 1);
        drop((a, b, kept));
        assert_eq!(B.held(), 0);
    }
}
