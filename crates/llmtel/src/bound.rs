//! Length caps on values a caller controls.
//!
//! Everything llmtel keeps per value — budget scopes, metric labels, quality series, trace
//! summaries, span dimensions — is keyed by strings that often come from a request (a user id,
//! a feature name, a model name chosen by the client). A count cap alone does not bound memory
//! when one value can be a megabyte, so every such value goes through [`cap_value`] first.
//!
//! A value longer than [`MAX_VALUE_BYTES`] keeps its first bytes (on a character boundary)
//! and gets a marker with a stable 64-bit FNV-1a hash of the whole value, so two long values
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
    let mut cut = MAX_VALUE_BYTES - MARKER_BYTES;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(MAX_VALUE_BYTES);
    out.push_str(&value[..cut]);
    out.push_str(&format!("…[{:016x}]", fnv1a(value.as_bytes())));
    Cow::Owned(out)
}

/// [`cap_value`] for an owned string: no copy when it is short enough.
pub fn cap_string(value: String) -> String {
    match cap_value(&value) {
        Cow::Borrowed(_) => value,
        Cow::Owned(capped) => capped,
    }
}

/// 64-bit FNV-1a: stable across processes, builds and Rust versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
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
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
