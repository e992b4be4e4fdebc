//! What a metrics sink builds from a call's values, kept by those values.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, RwLock};

use super::guard::CardinalityGuard;

/// Value combinations a [`LabelCache`] keeps by default.
pub const DEFAULT_LABEL_CACHE_CAPACITY: usize = 1024;

/// What a metrics sink records a call with (label sets, series handles), built once per
/// combination of the call's raw values and reused for every later call with the same
/// values: such a call skips the redaction, the [`CardinalityGuard`] and the allocations.
///
/// Bounded: past its capacity, new combinations are built on each call and not kept. The
/// guard's decisions are stable (a value admitted once always passes, a value refused once is
/// always refused), so a kept entry stays right; each call with a refused value still counts
/// an overflow, as the guard would.
///
/// ```
/// use llmtel::metrics::{CardinalityGuard, LabelCache};
/// let guard = CardinalityGuard::new(1);
/// let cache: LabelCache<String> = LabelCache::default();
/// let build = |v: &str| {
///     let label = guard.admit("user", v);
///     let refused = (label == llmtel::metrics::OVERFLOW_VALUE).then_some("user");
///     (label, refused.into_iter().collect())
/// };
/// let a = cache.get_or_build([Some("alice")], &guard, || build("alice"));
/// let b = cache.get_or_build([Some("bob")], &guard, || build("bob"));
/// let b2 = cache.get_or_build([Some("bob")], &guard, || unreachable!("kept"));
/// assert_eq!((a.as_str(), b.as_str()), ("alice", llmtel::metrics::OVERFLOW_VALUE));
/// assert!(std::sync::Arc::ptr_eq(&b, &b2));
/// assert_eq!(guard.overflows(), vec![("user", 2)]);
/// ```
pub struct LabelCache<T> {
    entries: RwLock<Entries<T>>,
    /// Hashes a call's values once (foldhash, seeded per cache); the map is keyed by that
    /// hash as it is.
    hasher: foldhash::quality::RandomState,
    capacity: usize,
}

struct Entries<T> {
    by_hash: HashMap<u64, Vec<Arc<Entry<T>>>, BuildHasherDefault<HashIsKey>>,
    len: usize,
}

/// The hasher of a map keyed by a hash already computed: that hash, as it is.
#[derive(Default)]
struct HashIsKey(u64);

impl Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; any other input still hashes, slowly.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One kept combination.
struct Entry<T> {
    /// The raw values it was built from (before redaction and the guard).
    raw: Vec<Option<Box<str>>>,
    /// Labels whose value the guard refused (each call counts an overflow again).
    overflowed: Vec<&'static str>,
    value: Arc<T>,
}

impl<T> Default for LabelCache<T> {
    fn default() -> Self {
        LabelCache::new(DEFAULT_LABEL_CACHE_CAPACITY)
    }
}

impl<T> fmt::Debug for LabelCache<T> {
    // The raw values may hold what the guard redacts: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<T> LabelCache<T> {
    /// A cache keeping at most `capacity` combinations.
    pub fn new(capacity: usize) -> Self {
        LabelCache {
            entries: RwLock::new(Entries {
                by_hash: HashMap::default(),
                len: 0,
            }),
            hasher: foldhash::quality::RandomState::default(),
            capacity,
        }
    }

    /// Combinations kept.
    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |e| e.len)
    }

    /// Whether nothing is kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What was built for `values` before, or what `build` makes of them now (kept while
    /// there is room). `build` returns the value and the labels the guard refused a value
    /// of; a later call with the same values counts an overflow of each on `guard` again.
    pub fn get_or_build<'a, I>(
        &self,
        values: I,
        guard: &CardinalityGuard,
        build: impl FnOnce() -> (T, Vec<&'static str>),
    ) -> Arc<T>
    where
        I: IntoIterator<Item = Option<&'a str>>,
        I::IntoIter: Clone,
    {
        let values = values.into_iter();
        let mut h = self.hasher.build_hasher();
        for v in values.clone() {
            v.hash(&mut h);
        }
        let hash = h.finish();
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = find(&entries, hash, values.clone()) {
                for label in &found.overflowed {
                    guard.count_overflow(label);
                }
                return found.value.clone();
            }
        }
        let (value, overflowed) = build();
        let value = Arc::new(value);
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        // Another thread may have built the same combination meanwhile: keep one.
        if let Some(found) = find(&entries, hash, values.clone()) {
            return found.value.clone();
        }
        if entries.len < self.capacity {
            entries
                .by_hash
                .entry(hash)
                .or_default()
                .push(Arc::new(Entry {
                    raw: values.map(|v| v.map(Box::from)).collect(),
                    overflowed,
                    value: value.clone(),
                }));
            entries.len += 1;
        }
        value
    }
}

fn find<'e, 'a, T>(
    entries: &'e Entries<T>,
    hash: u64,
    values: impl Iterator<Item = Option<&'a str>> + Clone,
) -> Option<&'e Arc<Entry<T>>> {
    entries.by_hash.get(&hash)?.iter().find(|e| {
        let mut values = values.clone();
        e.raw
            .iter()
            .all(|r| values.next().is_some_and(|v| r.as_deref() == v))
            && values.next().is_none()
    })
}
