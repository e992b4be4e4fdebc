//! [`MaybeIds`]: a fixed-size, lock-free "may hold this span" filter.

use std::sync::atomic::{AtomicU32, Ordering};

use tracing_core::span::Id;

/// Which open spans are marked, as counts per slot of a hash of the span id.
///
/// A zero slot means "certainly not marked", so a span is dismissed with one atomic load
/// instead of a registry lookup. A non-zero slot may be another span's (the lookup then
/// settles it). Every [`add`](Self::add) is matched by one [`remove`](Self::remove) of the
/// same id, so slots return to zero (a count left behind would only cost the lookups of the
/// spans sharing its slot, never a wrong answer). Fixed size (16 KiB), whatever the traffic.
pub(crate) struct MaybeIds {
    slots: Box<[AtomicU32]>,
}

const SLOTS: usize = 4096;

impl MaybeIds {
    pub(crate) fn new() -> Self {
        MaybeIds {
            slots: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    #[inline]
    fn slot(&self, id: &Id) -> &AtomicU32 {
        // Fibonacci hashing: the top 12 bits of id * 2^64/phi.
        let h = id.into_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52;
        &self.slots[h as usize % SLOTS]
    }

    /// Marks `id`.
    #[inline]
    pub(crate) fn add(&self, id: &Id) {
        self.slot(id).fetch_add(1, Ordering::AcqRel);
    }

    /// Unmarks `id`, marked once by [`add`](Self::add).
    #[inline]
    pub(crate) fn remove(&self, id: &Id) {
        self.slot(id).fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether no id is marked.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| s.load(Ordering::Acquire) == 0)
    }

    /// Whether `id` may be marked (`false`: certainly not).
    #[inline]
    pub(crate) fn maybe(&self, id: &Id) -> bool {
        self.slot(id).load(Ordering::Acquire) != 0
    }
}

impl std::fmt::Debug for MaybeIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaybeIds").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_marked_until_removed_as_often_as_added() {
        let ids = MaybeIds::new();
        let a = Id::from_u64(7);
        assert!(!ids.maybe(&a));
        ids.add(&a);
        ids.add(&a);
        assert!(ids.maybe(&a));
        ids.remove(&a);
        assert!(ids.maybe(&a));
        ids.remove(&a);
        assert!(!ids.maybe(&a));
        // Ids of one slot share its count: a false "maybe", never a false "no".
        let same_slot = (1..u64::MAX)
            .map(Id::from_u64)
            .find(|b| b.into_u64() != 7 && std::ptr::eq(ids.slot(b), ids.slot(&a)))
            .expect("4096 slots");
        ids.add(&same_slot);
        assert!(ids.maybe(&a));
    }
}
