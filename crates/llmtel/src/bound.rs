//! Length caps on values a caller controls.
//!
//! Everything llmtel keeps per value — budget scopes, metric labels, quality series, trace
//! summaries, span dimensions — is keyed by strings that often come from a request (a user id,
//! a feature name, a model name chosen by the client). A count cap alone does not bound memory
//! when one value can be a megabyte, so every such value goes through [`cap_value`] first.
//!
//! A value longer than [`MAX_VALUE_BYTES`] keeps its first bytes (on a character boundary)
//! and gets a marker with a stable 64-bit hash of the whole value, so two long values
//! that share a prefix stay distinct (two users never share a budget because their ids are
//! long) and the same long value always maps to the same capped one, in every process and
//! every build (a budget shared through Redis sees one key). Each cap is counted in
//! [`crate::Health::values_truncated`].
//!
//! ```
//! let long = "u".repeat(1_000_000);
//! let capped = llmtel::cap_value(&long);
//! assert!(capped.len() <= llmtel::MAX_VALUE_BYTES);
//! assert!(capped.ends_with(']'));
//! assert_eq!(capped, llmtel::cap_value(&long)); // stable
//! assert_ne!(capped, llmtel::cap_value(&format!("{long}x"))); // distinct values stay distinct
//! assert_eq!(llmtel::cap_value("alice"), "alice"); // short values are untouched (no copy)
//! ```

use std::borrow::Cow;

use crate::health::{COUNTERS, inc};

/// The longest value (in bytes) llmtel keeps as is; longer ones are capped by [`cap_value`].
pub const MAX_VALUE_BYTES: usize = 256;

/// The marker's length: `…[` (4 bytes), 16 hex digits, `]`.
const MARKER_BYTES: usize = 4 + 16 + 1;

/// `value` if it is at most [`MAX_VALUE_BYTES`] long; otherwise its first bytes, cut on a
/// character boundary, followed by `…[` + a stable hash of the whole value + `]`, at most
/// [`MAX_VALUE_BYTES`] in all. Counted in [`crate::Health::values_truncated`].
pub fn cap_value(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_VALUE_BYTES {
        return Cow::Borrowed(value);
    }
    inc(&COUNTERS.values_truncated);
    let cut = value.floor_char_boundary(MAX_VALUE_BYTES - MARKER_BYTES);
    let mut out = String::with_capacity(MAX_VALUE_BYTES);
    out.push_str(&value[..cut]);
    out.push_str(&format!("…[{:016x}]", stable_hash(value.as_bytes())));
    Cow::Owned(out)
}

/// [`cap_value`] for an owned string: no copy when it is short enough.
pub fn cap_string(value: String) -> String {
    match cap_value(&value) {
        Cow::Borrowed(_) => value,
        Cow::Owned(capped) => capped,
    }
}

/// A stable 64-bit hash of the whole value: MurmurHash64A (Austin Appleby's public-domain
/// MurmurHash2, 64-bit variant, seed 0), a word at a time. Stable across processes, builds and
/// Rust versions (unlike `DefaultHasher`); a word at a time because a hostile value can be
/// megabytes long (FNV-1a, a byte at a time, cost ~12 ns a byte in a debug build). Not a
/// cryptographic hash: a capped value only ever collides with another capped value, which a
/// short (uncapped) value never is.
fn stable_hash(bytes: &[u8]) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h: u64 = (bytes.len() as u64).wrapping_mul(M);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        let mut k = u64::from_le_bytes(word).wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = (h ^ k).wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^ (h >> R)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_values_are_cut_on_a_character_boundary() {
        let v = "é".repeat(300);
        let c = cap_value(&v);
        assert!(c.len() <= MAX_VALUE_BYTES, "{}", c.len());
        assert!(c.starts_with("éé"));
        let exact = "a".repeat(MAX_VALUE_BYTES);
        assert!(matches!(cap_value(&exact), Cow::Borrowed(_)));
        let over = "a".repeat(MAX_VALUE_BYTES + 1);
        assert_eq!(cap_value(&over).len(), MAX_VALUE_BYTES);
    }

    #[test]
    fn the_hash_is_pinned_so_capped_keys_stay_the_same_across_releases() {
        // Budget scopes in a shared Redis are keyed by capped values: a change of hash would
        // split one user's spend in two across a rolling upgrade.
        // Values from an independent Python transcription of MurmurHash64A (seed 0).
        assert_eq!(stable_hash(b""), 0);
        assert_eq!(stable_hash(b"a"), 0x0717_17d2_d36b_6b11);
        assert_eq!(stable_hash(b"0123456789abcdef!"), 0x7866_985d_a0fe_6924);
    }

    #[test]
    fn a_megabyte_is_hashed_whole() {
        let mut v = vec![b'u'; 1 << 20];
        let h = stable_hash(&v);
        v[(1 << 20) - 3] = b'v';
        assert_ne!(h, stable_hash(&v));
    }

    #[test]
    fn values_differing_anywhere_get_different_hashes() {
        let base = vec![b'u'; 4096];
        let mut seen = std::collections::HashSet::new();
        for i in 0..base.len() {
            let mut v = base.clone();
            v[i] = b'v';
            assert!(seen.insert(stable_hash(&v)), "collision at {i}");
        }
        assert!(seen.insert(stable_hash(&base)));
        assert!(seen.insert(stable_hash(&base[..4095])));
    }
}
