//! The cardinality guard: a cap on distinct values per label, with an overflow value.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The value a label takes once its cap of distinct values is reached.
pub const OVERFLOW_VALUE: &str = "__overflow__";

#[derive(Debug, Default)]
struct LabelState {
    values: HashSet<String>,
    overflows: AtomicU64,
}

/// Caps the number of distinct values each label can take.
///
/// The first `cap` distinct values of a label pass; any further value becomes
/// [`OVERFLOW_VALUE`] and is counted in [`CardinalityGuard::overflows`]. A value that once passed
/// always passes, so a series never changes its labels midway.
///
/// ```
/// use llmtel::metrics::{CardinalityGuard, OVERFLOW_VALUE};
/// let g = CardinalityGuard::new(2);
/// assert_eq!(g.admit("user", "a"), "a");
/// assert_eq!(g.admit("user", "b"), "b");
/// assert_eq!(g.admit("user", "c"), OVERFLOW_VALUE);
/// assert_eq!(g.admit("user", "a"), "a");
/// assert_eq!(g.overflows(), vec![("user", 1)]);
/// ```
#[derive(Debug)]
pub struct CardinalityGuard {
    default_cap: usize,
    caps: HashMap<&'static str, usize>,
    labels: RwLock<HashMap<&'static str, LabelState>>,
}

impl Default for CardinalityGuard {
    /// A cap of 100 distinct values per label.
    fn default() -> Self {
        CardinalityGuard::new(100)
    }
}

impl CardinalityGuard {
    /// A guard allowing `cap` distinct values per label.
    pub fn new(cap: usize) -> Self {
        CardinalityGuard {
            default_cap: cap,
            caps: HashMap::new(),
            labels: RwLock::new(HashMap::new()),
        }
    }

    /// Sets the cap of one label.
    pub fn with_cap(mut self, label: &'static str, cap: usize) -> Self {
        self.caps.insert(label, cap);
        self
    }

    /// The cap of `label`.
    pub fn cap(&self, label: &str) -> usize {
        self.caps.get(label).copied().unwrap_or(self.default_cap)
    }

    /// The value to use for `label`: `value` itself, or [`OVERFLOW_VALUE`] past the cap.
    ///
    /// A value longer than [`crate::MAX_VALUE_BYTES`] is first capped with
    /// [`crate::cap_value`] (counted in [`crate::Health::values_truncated`]), so a label never
    /// stores or exports more than that per value.
    pub fn admit(&self, label: &'static str, value: &str) -> String {
        // Redacted before it is kept or exported (an API key used as a user id must not
        // become a label), then capped.
        let redacted = crate::redact(value);
        let value = crate::cap_value(&redacted);
        let value: &str = &value;
        // Fast path: a known value (read lock only).
        {
            let labels = self.labels.read().unwrap_or_else(|e| e.into_inner());
            if let Some(state) = labels.get(label) {
                if state.values.contains(value) {
                    return value.to_owned();
                }
                if state.values.len() >= self.cap(label) {
                    state.overflows.fetch_add(1, Relaxed);
                    return OVERFLOW_VALUE.to_owned();
                }
            }
        }
        let mut labels = self.labels.write().unwrap_or_else(|e| e.into_inner());
        let state = labels.entry(label).or_default();
        if state.values.contains(value) {
            return value.to_owned();
        }
        if state.values.len() >= self.cap(label) {
            state.overflows.fetch_add(1, Relaxed);
            return OVERFLOW_VALUE.to_owned();
        }
        state.values.insert(value.to_owned());
        value.to_owned()
    }

    /// Counts one more overflow of `label` (a caller that remembers a value was refused).
    pub(crate) fn count_overflow(&self, label: &'static str) {
        let labels = self.labels.read().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = labels.get(label) {
            state.overflows.fetch_add(1, Relaxed);
        }
    }

    /// Overflows so far, per label that had any, sorted by label.
    pub fn overflows(&self) -> Vec<(&'static str, u64)> {
        let labels = self.labels.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = labels
            .iter()
            .map(|(k, s)| (*k, s.overflows.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort_unstable();
        v
    }

    /// Distinct values admitted so far for `label`.
    pub fn distinct(&self, label: &str) -> usize {
        let labels = self.labels.read().unwrap_or_else(|e| e.into_inner());
        labels.get(label).map_or(0, |s| s.values.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_label_values_are_capped_before_they_are_stored() {
        let g = CardinalityGuard::new(10);
        let long = "u".repeat(1_000_000);
        let admitted = g.admit("user", &long);
        assert!(
            admitted.len() <= crate::MAX_VALUE_BYTES,
            "{}",
            admitted.len()
        );
        assert_eq!(
            g.admit("user", &long),
            admitted,
            "the same value maps to one label"
        );
        assert_eq!(g.distinct("user"), 1);
        let labels = g.labels.read().unwrap_or_else(|e| e.into_inner());
        assert!(
            labels["user"]
                .values
                .iter()
                .all(|v| v.len() <= crate::MAX_VALUE_BYTES)
        );
    }
}
