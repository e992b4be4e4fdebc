//! The one redaction step every text llmtel lets out of the process goes through: exported
//! span names, status descriptions, attribute values and events, the console line and
//! llmtel's own log lines.
//!
//! [`redact`] replaces with `[REDACTED]`:
//! - API keys with a provider prefix (`sk-`, `sk-ant-`, `sk-proj-`, `AIza`, `xai-`, `gsk_`,
//!   `hf_`, `ghp_`, `AKIA`, `xoxb-`, Langfuse / LangSmith keys, JWTs, ...), at least 16
//!   characters, wherever they appear: alone, inside a URL, inside JSON (right after an
//!   escape such as `\n` too);
//! - the value of a credential parameter or header, in a URL query (percent-encoded too:
//!   `%3Fkey%3D…`), a header line, JSON (a quoted value to its closing quote, escaped
//!   quotes included; an array value whole) or `name=value` text (`name = value` too): `key`, `api_key`, `api-key`, `apikey`, `x-api-key`,
//!   `x-goog-api-key`, `access_token`, `token`, `secret`, `password`, `authorization`
//!   (the scheme word, e.g. `Bearer`, is kept), and any name ending with the word `key` or
//!   `token` (`AZURE_OPENAI_KEY`, `api_token`, `Ocp-Apim-Subscription-Key`, `accessToken`,
//!   `primaryKey`) unless the word before it names something else (`time_to_first_token`,
//!   `next_page_token`, `routing_key`, `partition_key`, `public_key`: `NOT_A_CREDENTIAL`);
//!   a signed URL's signature (`X-Amz-Signature`, `X-Goog-Signature`, `Signature`), and a
//!   URL query's `code` (an Azure Functions key, an OAuth authorization code);
//! - the token after `Bearer `, and after `Basic ` a base64 `user:password` (any token after
//!   `Authorization: Basic`: "a basic JavaScript function" is prose);
//! - the password of a URL's user info (`https://user:password@host`), to the authority's
//!   last `@`.
//!
//! It returns the input itself, without allocating, when there is nothing to redact.
//!
//! ```
//! use llmtel::redact;
//! let url = "https://generativelanguage.googleapis.com/v1beta/models/x:generateContent?key=AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv";
//! assert!(!redact(url).contains("AIza"));
//! assert_eq!(redact("Authorization: Bearer abc.def.ghi"), "Authorization: Bearer [REDACTED]");
//! assert_eq!(redact(r#"{"x-api-key":"k-123"}"#), r#"{"x-api-key":"[REDACTED]"}"#);
//! assert!(matches!(redact("nothing to see"), std::borrow::Cow::Borrowed(_)));
//! ```

use std::borrow::Cow;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// [`REDACTED`] without its closing bracket (which ends an unquoted value): a value that
/// starts with it was redacted already.
const REDACTED_OPEN: &[u8] = b"[REDACTED";

/// Prefixes of provider API keys and tokens that are never recorded (case-sensitive).
const SECRET_PREFIXES: &[&str] = &[
    // Grouped by first byte (checked when the table below is built).
    "sk-",
    "sk_",
    "rk_",
    "r8_",
    "pk-lf-",
    "pplx-",
    "lsv2_",
    "AIza",
    "AKIA",
    "xai-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xapp-",
    "gsk_",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "glpat-",
    "hf_",
    "nvapi-",
    "csk-",
    "ya29.",
    "eyJ",
];

/// The shortest prefixed token taken for a key.
const MIN_PREFIXED_LEN: usize = 16;

/// The shortest secret found without a `=` or `:`: `Bearer` (or `Basic`), a blank and an
/// 8-byte token, or a prefixed key.
const SHORTEST_UNNAMED: usize = {
    let scheme = "Basic".len() + 1 + MIN_SCHEME_TOKEN;
    if scheme < MIN_PREFIXED_LEN {
        scheme
    } else {
        MIN_PREFIXED_LEN
    }
};

/// The shortest token after `Bearer` or `Basic` taken for a credential.
const MIN_SCHEME_TOKEN: usize = 8;

/// Names whose value is a credential (compared case-insensitively, whole name).
const SECRET_NAMES: &[&str] = &["key", "token", "sig", "auth", "pass", "pwd"];

/// Name suffixes whose value is a credential (compared case-insensitively); also the
/// attribute names llmtel never exports (`export.rs`).
pub(crate) const SECRET_NAME_SUFFIXES: &[&str] = &[
    "api_key",
    "api-key",
    "apikey",
    "access_token",
    "access-token",
    "refresh_token",
    "id_token",
    "auth_token",
    "auth-token",
    "session_token",
    "bearer_token",
    "secret",
    "secret_key",
    "secret_access_key",
    "password",
    "passwd",
    "authorization",
    "private_key",
    "private-key",
    // Signed URLs' query parameters (`X-Amz-Signature`, `X-Goog-Signature`, CloudFront's
    // `Signature`): the signature is the credential, usable until the URL expires.
    "signature",
];

/// Replaces every secret in `s` with `[REDACTED]` (see the [module docs](self) for the forms
/// caught). Borrows `s` unchanged, without allocating, when it holds none.
pub fn redact(s: &str) -> Cow<'_, str> {
    // Every form below is at least SHORTEST_UNNAMED bytes long, unless it is a named value or
    // userinfo, which need a `=` or `:`: most attribute values (models, ids, finish reasons)
    // are ruled out without a scan.
    if s.len() < SHORTEST_UNNAMED && !s.bytes().any(|b| matches!(b, b'=' | b':' | b'%')) {
        return Cow::Borrowed(s);
    }
    let Some(first) = next_secret(s, 0) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut hit = Some(first);
    while let Some((start, end)) = hit {
        out.push_str(&s[copied..start]);
        out.push_str(REDACTED);
        copied = end;
        hit = next_secret(s, end);
    }
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

/// The attribute whose value is always shown as a [`fingerprint`], never as it is: an API
/// key (or its id, which apps set to the key itself) names who may call, whatever its shape
/// (a 32-hex Azure key is not recognised by [`redact`]).
pub const API_KEY_ID: &str = "llmtel.api_key_id";

/// `value` as `[REDACTED:<12 hex digits>]`: a fingerprint, so that two values stay two rows,
/// two series or two attribute values without either being shown. A value that is already
/// `[REDACTED]` or such a fingerprint is returned as it is (a span policed twice, by the app
/// and by a collector, keeps the app's).
///
/// The fingerprint is SipHash keyed with a random 128-bit key drawn once per process: the
/// same value shows the same fingerprint for the life of the process, and without the key
/// it cannot be checked against guessed secrets, short ones included. It changes when the
/// process restarts, and differs between processes.
///
/// ```
/// let a = llmtel::redact::fingerprint("0123456789abcdef0123456789abcdef");
/// assert!(a.starts_with("[REDACTED:") && !a.contains("0123"));
/// assert_eq!(a, llmtel::redact::fingerprint("0123456789abcdef0123456789abcdef"));
/// ```
pub fn fingerprint(value: &str) -> String {
    let fingerprinted = |v: &str| {
        v.strip_prefix("[REDACTED:")
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.len() == 12 && h.bytes().all(|c| c.is_ascii_hexdigit()))
    };
    if value == REDACTED || fingerprinted(value) {
        return value.to_string();
    }
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let h = std::hash::BuildHasher::hash_one(
        KEY.get_or_init(std::collections::hash_map::RandomState::new),
        value,
    );
    format!("[REDACTED:{:012x}]", h >> 16)
}

/// The value of the attribute (or dimension) `name` as llmtel shows it outside the process
/// (exported, as a metric label, in `Debug`): [`API_KEY_ID`]'s as its [`fingerprint`], any
/// other's as it is.
pub fn shown<'a>(name: &str, value: &'a str) -> Cow<'a, str> {
    if name == API_KEY_ID {
        Cow::Owned(fingerprint(value))
    } else {
        Cow::Borrowed(value)
    }
}

/// [`redact`] for an owned string: no copy when there is nothing to redact.
pub fn redact_string(s: String) -> String {
    match redact(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(r) => r,
    }
}

fn is_key_body(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Ends an unquoted value.
fn ends_value(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'&' | b',' | b';' | b'"' | b'\'' | b'\\' | b'<' | b'>' | b')' | b']' | b'}' | b'#'
        )
}

/// What a byte may start: a name's separator (`=`, `:`) or, at a word boundary, a prefixed
/// key or a `Bearer` / `Basic` token. Any other byte is skipped in the scan's inner loop.
const SEPARATOR: u8 = 1;
const KEY_START: u8 = 2;
/// An ASCII letter or digit.
const WORD: u8 = 4;
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        if (c as u8).is_ascii_alphanumeric() {
            t[c] = WORD;
        }
        c += 1;
    }
    t[b'=' as usize] = SEPARATOR;
    t[b':' as usize] = SEPARATOR;
    // `%3D`, an encoded `=`.
    t[b'%' as usize] = SEPARATOR;
    t[b'b' as usize] |= KEY_START;
    t[b'B' as usize] |= KEY_START;
    let mut i = 0;
    while i < SECRET_PREFIXES.len() {
        let c = SECRET_PREFIXES[i].as_bytes()[0] as usize;
        // (The scan looks for keys only at word starts.)
        assert!(
            t[c] & WORD != 0,
            "a secret prefix must start with a letter or digit"
        );
        t[c] |= KEY_START;
        i += 1;
    }
    t
};

/// The byte range of the next secret at or after `from`.
fn next_secret(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let word = |i: usize| BYTE_CLASS[usize::from(b[i])] & WORD != 0;
    // The scan goes word by word: a key can start only at a word's first byte (every
    // KEY_START byte is a word byte), and a separator is not a word byte, so the rest of a
    // word is skipped with one test a byte. The few positions that may start a secret are
    // looked at out of line.
    let mut i = from;
    if i > 0 && i <= b.len() && word(i - 1) {
        // (Up to where a JSON escape ends, if `from` is inside the escape's word.)
        while i < b.len() && word(i) && !after_escape(b, i) {
            i += 1;
        }
    }
    while i < b.len() {
        let class = BYTE_CLASS[usize::from(b[i])];
        if class & WORD != 0 {
            if class & KEY_START != 0 {
                if let Some(r) = secret_at(b, i, true) {
                    return Some(r);
                }
            }
            // In JSON text a newline is `\` `n`: in `\nsk-proj-…` the key starts a word
            // after the escape, inside the word `nsk`. An escape ends one or five bytes
            // into the word (`\n`, `\uXXXX`), never further (a backslash ends a word).
            if i > 0 && matches!(b[i - 1], b'\\' | b'%') {
                for k in [i + 1, i + 2, i + 5] {
                    if k < b.len()
                        && BYTE_CLASS[usize::from(b[k])] & KEY_START != 0
                        && after_escape(b, k)
                    {
                        if let Some(r) = secret_at(b, k, true) {
                            return Some(r);
                        }
                    }
                }
            }
            i += 1;
            while i < b.len() && word(i) {
                i += 1;
            }
        } else {
            if class & SEPARATOR != 0 {
                if let Some(r) = secret_at(b, i, false) {
                    return Some(r);
                }
            }
            i += 1;
        }
    }
    None
}

/// Whether `i` directly follows a JSON string escape: `\n`, `\t`, `\r`, `\f`, `\b` or
/// `\uXXXX`, its backslash not itself escaped (`\\n` is a backslash and the letter `n`). A
/// word starts there, as it would after the character the escape stands for: in
/// `"x\nsk-proj-…"` the key follows the escaped newline.
/// So does a percent-encoded byte (`%XX`): in `%3Dsk-proj-…` the key follows an encoded
/// `=`.
fn after_escape(b: &[u8], i: usize) -> bool {
    let escaped_at = |at: usize| {
        b[at] == b'\\' && b[..=at].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1
    };
    (i >= 3 && b[i - 3] == b'%' && b[i - 2..i].iter().all(u8::is_ascii_hexdigit))
        || (i >= 2 && matches!(b[i - 1], b'n' | b't' | b'r' | b'f' | b'b') && escaped_at(i - 2))
        || (i >= 6
            && b[i - 5] == b'u'
            && b[i - 4..i].iter().all(u8::is_ascii_hexdigit)
            && escaped_at(i - 6))
}

/// A secret starting (or, for a separator, named) at `i`, a byte [`next_secret`] picked:
/// `key_start` when it may start a key there (a key's first byte after a non-word byte).
#[inline(never)]
fn secret_at(b: &[u8], i: usize, key_start: bool) -> Option<(usize, usize)> {
    let c = b[i];
    if key_start {
        if let Some(end) = prefixed_key(b, i) {
            return Some((i, end));
        }
        if matches!(c, b'b' | b'B') {
            if let Some(r) = after_scheme(b, i) {
                return Some(r);
            }
        }
    }
    if matches!(c, b'=' | b':')
        || (c == b'%'
            && b.get(i + 1..i + 3)
                .is_some_and(|e| e.eq_ignore_ascii_case(b"3D")))
    {
        if let Some(r) = named_value(b, i) {
            return Some(r);
        }
        if c == b':' {
            if let Some(r) = userinfo_password(b, i) {
                return Some(r);
            }
        }
    }
    None
}

/// For each byte, the range of [`SECRET_PREFIXES`] that start with it (empty for most).
const PREFIX_RANGE: [(u8, u8); 256] = {
    let mut t = [(0u8, 0u8); 256];
    let mut i = 0;
    while i < SECRET_PREFIXES.len() {
        let c = SECRET_PREFIXES[i].as_bytes()[0] as usize;
        if t[c].0 == t[c].1 {
            t[c] = (i as u8, i as u8 + 1);
        } else {
            assert!(
                t[c].1 as usize == i,
                "SECRET_PREFIXES must be grouped by first byte"
            );
            t[c].1 = i as u8 + 1;
        }
        i += 1;
    }
    t
};

/// A key with a known prefix starting at `i`: its end.
fn prefixed_key(b: &[u8], i: usize) -> Option<usize> {
    // A key is at least MIN_PREFIXED_LEN bytes and starts with a prefix's first byte: most
    // positions of a text are ruled out by these two tests alone, the rest compared with
    // the few prefixes that start with their byte.
    let (lo, hi) = PREFIX_RANGE[b[i] as usize];
    if lo == hi || b.len() - i < MIN_PREFIXED_LEN {
        return None;
    }
    let rest = &b[i..];
    // (Compared inline: these prefixes are a few bytes, shorter than a call to memcmp.)
    let prefix = SECRET_PREFIXES[lo as usize..hi as usize]
        .iter()
        .find(|p| rest.len() >= p.len() && p.bytes().zip(rest).all(|(p, r)| p == *r))?;
    let mut end = i + prefix.len();
    while end < b.len() && is_key_body(b[end]) {
        end += 1;
    }
    // A trailing dot ends a sentence, not a key.
    while end > i + prefix.len() && b[end - 1] == b'.' {
        end -= 1;
    }
    (end - i >= MIN_PREFIXED_LEN).then_some(end)
}

/// `Bearer <token>` or `Basic <base64>` at `i`: the token's range.
fn after_scheme(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let rest = &b[i..];
    let (len, basic) = if rest.len() > 7 && rest[..6].eq_ignore_ascii_case(b"bearer") {
        (6, false)
    } else if rest.len() > 6 && rest[..5].eq_ignore_ascii_case(b"basic") {
        (5, true)
    } else {
        return None;
    };
    let mut start = i + len;
    if start >= b.len() || !matches!(b[start], b' ' | b'\t') {
        return None;
    }
    while start < b.len() && matches!(b[start], b' ' | b'\t') {
        start += 1;
    }
    let mut end = start;
    while end < b.len() && !ends_value(b[end]) {
        end += 1;
    }
    let tok = &b[start..end];
    if tok.len() < MIN_SCHEME_TOKEN || tok.starts_with(REDACTED_OPEN) {
        return None;
    }
    let looks_secret = if basic {
        // Prose says "basic" too ("a basic JavaScript function"): the word after it is taken
        // for credentials only after an `Authorization` name, or when it is what a Basic
        // credential is, `user:password` in base64.
        after_authorization(b, i) || basic_credentials(tok)
    } else {
        tok.iter()
            .any(|c| c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-' | b'+' | b'/' | b'='))
    };
    looks_secret.then_some((start, end))
}

/// Whether the scheme word at `i` follows an `Authorization` name and its separator
/// (`Authorization: Basic`, `authorization=Basic`, `"Authorization": "Basic`).
fn after_authorization(b: &[u8], i: usize) -> bool {
    let mut j = i;
    while j > 0 && matches!(b[j - 1], b' ' | b'\t' | b'"' | b'\'' | b'\\') {
        j -= 1;
    }
    if j == 0 || !matches!(b[j - 1], b':' | b'=') {
        return false;
    }
    j -= 1;
    while j > 0 && matches!(b[j - 1], b' ' | b'\t' | b'"' | b'\'' | b'\\') {
        j -= 1;
    }
    const NAME: &[u8] = b"authorization";
    j >= NAME.len() && b[j - NAME.len()..j].eq_ignore_ascii_case(NAME)
}

/// Whether `tok` is what follows `Basic` in an `Authorization` header: `user:password` in
/// standard base64 (padded: its length a multiple of 4).
fn basic_credentials(tok: &[u8]) -> bool {
    if tok.len() % 4 != 0 {
        return false;
    }
    let padding = tok.iter().rev().take_while(|&&c| c == b'=').count();
    if padding > 2 {
        return false;
    }
    let mut bits = 0u32;
    let mut nbits = 0;
    for &c in &tok[..tok.len() - padding] {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return false,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            if (bits >> nbits) & 0xff == u32::from(b':') {
                return true;
            }
            bits &= (1 << nbits) - 1;
        }
    }
    false
}

/// For a name's last byte, a bit set of the bytes before it (either case, both) with which
/// one of [`SECRET_NAMES`] or [`SECRET_NAME_SUFFIXES`] ends: `NAME_END[last][prev / 8]` bit
/// `prev % 8`. A JSON line's keys (`"input_tokens":`, `"started_at":`) are ruled out by their
/// last two bytes, before their name is read back and compared.
static NAME_END: [[u8; 32]; 256] = {
    let mut t = [[0u8; 32]; 256];
    mark_last_two(&mut t, SECRET_NAMES);
    mark_last_two(&mut t, SECRET_NAME_SUFFIXES);
    mark_last_two(&mut t, &CREDENTIAL_WORDS);
    mark_last_two(&mut t, &["code"]);
    t
};

const fn mark_last_two(table: &mut [[u8; 32]; 256], names: &[&str]) {
    let mut i = 0;
    while i < names.len() {
        let n = names[i].as_bytes();
        // (Every name is at least two bytes: checked by the table's own test.)
        if n.len() >= 2 {
            let (prev, last) = (n[n.len() - 2], n[n.len() - 1]);
            let lasts = [last.to_ascii_lowercase(), last.to_ascii_uppercase()];
            let prevs = [prev.to_ascii_lowercase(), prev.to_ascii_uppercase()];
            let mut a = 0;
            while a < 2 {
                let mut p = 0;
                while p < 2 {
                    let (l, q) = (lasts[a] as usize, prevs[p] as usize);
                    table[l][q / 8] |= 1 << (q % 8);
                    p += 1;
                }
                a += 1;
            }
        }
        i += 1;
    }
}

/// Whether the name ending at `end` (exclusive) ends as a credential name may.
fn may_end_secret_name(b: &[u8], end: usize) -> bool {
    if end < 2 {
        return false;
    }
    let (prev, last) = (usize::from(b[end - 2]), usize::from(b[end - 1]));
    NAME_END[last][prev / 8] & (1 << (prev % 8)) != 0
}

/// Sets `bit` in `table` at the last byte of each of `names`, in both cases: a table of the
/// bytes such names end with, built from the lists themselves (so it cannot miss an entry
/// added to them), to rule most names out before comparing any.
pub(crate) const fn mark_last_bytes(table: &mut [u8; 256], names: &[&str], bit: u8) {
    let mut i = 0;
    while i < names.len() {
        if let Some(&last) = names[i].as_bytes().last() {
            table[last.to_ascii_lowercase() as usize] |= bit;
            table[last.to_ascii_uppercase() as usize] |= bit;
        }
        i += 1;
    }
}

/// The words a name ending with ([`ends_with_credential_word`]) names a credential (in the
/// order of [`NOT_A_CREDENTIAL`]).
const CREDENTIAL_WORDS: [&str; 2] = ["token", "key"];

/// The words before `token` and before `key` that name something other than a credential:
/// token counts and timings (`time_to_first_token`, OpenLIT's `time_per_output_token`),
/// pagination, and the keys of data (`routing_key`, `partition_key`, `public_key`, ...).
/// Not `primary`: Azure returns its admin and SAS keys as `primaryKey` / `secondaryKey`.
const NOT_A_CREDENTIAL: [&[&str]; 2] = [
    &[
        "first",
        "output",
        "input",
        "last",
        "page",
        "next",
        "continuation",
        "max",
        "prompt",
        "completion",
        "stop",
        "special",
        "cancellation",
    ],
    &[
        "routing",
        "partition",
        "message",
        "cache",
        "sort",
        "foreign",
        "idempotency",
        "object",
        "row",
        "hash",
        "dedup",
        "dedupe",
        "group",
        "shard",
        "range",
        "cursor",
        "index",
        "bucket",
        "lookup",
        "order",
        "unique",
        "map",
        "entity",
        "record",
        "item",
        "composite",
        "public",
    ],
];

/// Whether `name` ends with the word `key` or `token` after a `_` or `-`, or as a
/// camel-case word (`AZURE_OPENAI_KEY`, `api_token`, `Ocp-Apim-Subscription-Key`,
/// `accessToken`, `botToken`): a credential's name, unless the word before it names
/// something else ([`NOT_A_CREDENTIAL`]: `time_to_first_token`, `routing_key`). Plurals
/// (`max_tokens`) are not.
pub(crate) fn ends_with_credential_word(name: &[u8]) -> bool {
    CREDENTIAL_WORDS
        .iter()
        .zip(NOT_A_CREDENTIAL)
        .any(|(w, not_credentials)| {
            let w = w.as_bytes();
            let Some(at) = name.len().checked_sub(w.len()).filter(|&at| at > 0) else {
                return false;
            };
            if !name[at..].eq_ignore_ascii_case(w) {
                return false;
            }
            let (before, first) = (name[at - 1], name[at]);
            let word = matches!(before, b'_' | b'-')
                || (first.is_ascii_uppercase()
                    && (before.is_ascii_lowercase() || before.is_ascii_digit())
                    && name[at + 1..].iter().all(u8::is_ascii_lowercase));
            let prev = word_before(name, at);
            word && !not_credentials
                .iter()
                .any(|n| prev.eq_ignore_ascii_case(n.as_bytes()))
        })
}

/// The word of `name` before the one starting at `at` (after a `_`, `-` or `.`, or at a
/// camel-case boundary).
fn word_before(name: &[u8], at: usize) -> &[u8] {
    let mut end = at;
    if end > 0 && matches!(name[end - 1], b'_' | b'-' | b'.') {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && name[start - 1].is_ascii_alphanumeric() {
        start -= 1;
        if name[start].is_ascii_uppercase() && start > 0 && name[start - 1].is_ascii_lowercase() {
            break;
        }
    }
    &name[start..end]
}

fn secret_name(name: &[u8]) -> Option<bool> {
    // A name is compared only with the names and suffixes that end with its last letter
    // (`named_value` has ruled out the names no credential name ends like).
    let last = name.last()?.to_ascii_lowercase();
    let ends_with = |s: &str| {
        let s = s.as_bytes();
        s[s.len() - 1] == last
            && name.len() >= s.len()
            && name[name.len() - s.len()..].eq_ignore_ascii_case(s)
    };
    if SECRET_NAMES
        .iter()
        .any(|s| s.len() == name.len() && ends_with(s))
        || ends_with_credential_word(name)
    {
        return Some(false);
    }
    SECRET_NAME_SUFFIXES
        .iter()
        .any(|s| ends_with(s))
        .then(|| ends_with("authorization"))
}

/// `name=value`, `name: value`, `name = value`, `"name": "value"`, `"name": ["value"]`,
/// and in a percent-encoded URL `%3Fname%3Dvalue`, around the separator at `sep` (`=`, `:`
/// or the `%` of `%3D`), where `name` is a credential's: the value's range.
fn named_value(b: &[u8], sep: usize) -> Option<(usize, usize)> {
    // `%3D`: an `=` percent-encoded (a URL inside a URL's query), its value ends at an
    // encoded `&`, `#` or blank too.
    let encoded = b[sep] == b'%';
    // `==` compares, it names nothing.
    if b[sep] == b'=' && b.get(sep + 1) == Some(&b'=') {
        return None;
    }
    // The name, before the separator: `name`, `"name"`, `\"name\"`, with blanks before it.
    let mut j = sep;
    while j > 0 && matches!(b[j - 1], b' ' | b'\t') {
        j -= 1;
    }
    if j > 0 && matches!(b[j - 1], b'"' | b'\'') {
        j -= 1;
        if j > 0 && b[j - 1] == b'\\' {
            j -= 1;
        }
    }
    let name_end = j;
    // Every credential name ends with one of a few pairs of letters: rule the others out
    // before reading the name.
    if !may_end_secret_name(b, j) {
        return None;
    }
    while j > 0 && is_name_byte(b[j - 1]) && name_end - j < 64 {
        j -= 1;
    }
    // A name right after a JSON escape or a percent-encoded byte starts after it
    // (`\ntoken: …` names `token`, `%3Fkey%3D…` names `key`).
    if j > 0 && matches!(b[j - 1], b'\\' | b'%') {
        if let Some(k) = [j + 1, j + 2, j + 5]
            .into_iter()
            .find(|&k| k < name_end && after_escape(b, k))
        {
            j = k;
        }
    }
    if j == name_end {
        return None;
    }
    let name = &b[j..name_end];
    let authorization = match secret_name(name) {
        Some(a) => a,
        // A URL query's `code` (an Azure Functions key, an OAuth authorization code).
        None if name.eq_ignore_ascii_case(b"code")
            && !matches!(b[sep], b':')
            && query_start(b, j) =>
        {
            false
        }
        None => return None,
    };
    // The value, after it: blanks, an optional (escaped) quote, or a JSON array.
    let mut k = sep + if encoded { 3 } else { 1 };
    while k < b.len() && matches!(b[k], b' ' | b'\t') {
        k += 1;
    }
    if k < b.len() && b[k] == b'[' && !b[k..].starts_with(REDACTED_OPEN) {
        return array_value(b, k + 1);
    }
    let mut escaped = false;
    if k < b.len() && b[k] == b'\\' && k + 1 < b.len() && matches!(b[k + 1], b'"' | b'\'') {
        k += 1;
        escaped = true;
    }
    let quote = (k < b.len() && matches!(b[k], b'"' | b'\'')).then(|| {
        k += 1;
        b[k - 1]
    });
    let mut start = k;
    if authorization {
        // Keep the scheme word (`Bearer`, `Basic`, `Token`).
        let mut w = start;
        while w < b.len() && b[w].is_ascii_alphabetic() {
            w += 1;
        }
        if w > start && w < b.len() && b[w] == b' ' {
            start = w + 1;
        }
    }
    // (Looked at before the value is scanned: a scan always ends in a hit, and the next
    // one starts past it, so the text is scanned once.)
    if b[start..].starts_with(REDACTED_OPEN) {
        return None;
    }
    let end = match quote {
        None => {
            let mut end = start;
            while end < b.len() && !ends_value(b[end]) && !(encoded && encoded_end(b, end)) {
                end += 1;
            }
            end
        }
        Some(q) if !escaped => quoted_end(b, start, q),
        Some(q) => escaped_quoted_end(b, start, q),
    };
    (end > start).then_some((start, end))
}

/// Whether the name starting at `j` is a URL query's: after `?` or `&`, or their
/// percent-encoded forms `%3F`, `%26`.
fn query_start(b: &[u8], j: usize) -> bool {
    (j > 0 && matches!(b[j - 1], b'?' | b'&'))
        || (j >= 3
            && b[j - 3] == b'%'
            && (b[j - 2..j].eq_ignore_ascii_case(b"3F") || &b[j - 2..j] == b"26"))
}

/// Whether a percent-encoded `&`, `#` or blank (`%26`, `%23`, `%20`) is at `i`: the end of
/// a percent-encoded query's value.
fn encoded_end(b: &[u8], i: usize) -> bool {
    b[i] == b'%' && matches!(b.get(i + 1..i + 3), Some(b"26" | b"23" | b"20"))
}

/// The end of a value quoted with `q`, from `start`: its closing quote, an escaped one
/// (`"a\"b"`) and any other escape taken as part of the value; a line's end ends it too.
fn quoted_end(b: &[u8], start: usize, q: u8) -> usize {
    let mut end = start;
    while end < b.len() {
        match b[end] {
            c if c == q || c == b'\n' || c == b'\r' => break,
            b'\\' => end = (end + 2).min(b.len()),
            _ => end += 1,
        }
    }
    end
}

/// [`quoted_end`] for a value inside an escaped string (`{\"password\": \"v\"}`): it is
/// closed by `\"`, unless an odd number of escaped backslashes comes before (`\\\"` is an
/// escaped quote of the inner text); a bare quote or a line's end ends it too.
fn escaped_quoted_end(b: &[u8], start: usize, q: u8) -> usize {
    let mut end = start;
    let mut backslashes = 0usize;
    while end < b.len() {
        let c = b[end];
        if c == q || c == b'\n' || c == b'\r' {
            break;
        }
        if c == b'\\' && end + 1 < b.len() {
            let next = b[end + 1];
            if next == q && backslashes % 2 == 0 {
                break;
            }
            backslashes = if next == b'\\' { backslashes + 1 } else { 0 };
            end += 2;
            continue;
        }
        backslashes = 0;
        end += 1;
    }
    end
}

/// A JSON array value (`"x-api-key":["k1","k2"]`) from `start`, after its `[`: everything
/// up to its `]` (one inside a quoted entry not taken for it), or a line's end.
fn array_value(b: &[u8], start: usize) -> Option<(usize, usize)> {
    if b[start..].starts_with(REDACTED_OPEN) {
        return None;
    }
    let mut end = start;
    let mut quote = None;
    while end < b.len() {
        let c = b[end];
        if c == b'\n' || c == b'\r' || (quote.is_none() && c == b']') {
            break;
        }
        match (c, quote) {
            (b'\\', _) => {
                end = (end + 2).min(b.len());
                continue;
            }
            (b'"' | b'\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            _ => {}
        }
        end += 1;
    }
    (end > start).then_some((start, end))
}

/// How far past a user name's `:` a URL password's closing `@` is looked for.
const MAX_USERINFO_SCAN: usize = 256;

/// `scheme://user:password@host`: the password's range, for the `:` at `colon`.
fn userinfo_password(b: &[u8], colon: usize) -> Option<(usize, usize)> {
    // The user name runs back to `//`.
    let mut j = colon;
    while j > 0 && !matches!(b[j - 1], b'/' | b'@') && !ends_value(b[j - 1]) {
        j -= 1;
    }
    if j < 2 || b[j - 1] != b'/' || b[j - 2] != b'/' {
        return None;
    }
    // The password ends at the last `@` of the authority, as URL parsers read it: one
    // written with a raw `@`, `/` or `?` (generated base64 passwords hold `/`) is redacted
    // whole, not up to its first such byte. The `@` is looked for up to the value's end,
    // and not past a `?` that follows the first `@` (a query value may hold an `@`).
    // (Bounded: text made of `//a:` runs would otherwise be scanned to its end from each.)
    let mut stop = colon + 1;
    let cap = b.len().min(colon + 1 + MAX_USERINFO_SCAN);
    while stop < cap && !ends_value(b[stop]) {
        stop += 1;
    }
    let first_at = colon + 1 + b[colon + 1..stop].iter().position(|&c| c == b'@')?;
    let query = b[first_at..stop]
        .iter()
        .position(|&c| c == b'?')
        .map_or(stop, |q| first_at + q);
    let end = colon + 1 + b[colon + 1..query].iter().rposition(|&c| c == b'@')?;
    (end > colon + 1 && !b[colon + 1..end].starts_with(REDACTED_OPEN)).then_some((colon + 1, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redact(s).into_owned()
    }

    #[test]
    fn names_ending_with_the_word_key_or_token_are_credentials_and_plurals_are_not() {
        for line in [
            "GET /v1/models?api_token=abcd1234efgh",
            "Ocp-Apim-Subscription-Key: 0123456789abcdef",
            r#"{"accessToken":"abc123def456"}"#,
            "AZURE_OPENAI_KEY=0123456789abcdef0123456789abcdef",
            "bot_token=xyz987wvu654",
            "subscriptionKey: f00dfeedf00dfeed",
            r#"{"primaryKey":"f00dfeedf00dfeed","secondaryKey":"abc123def456"}"#,
        ] {
            let out = r(line);
            assert!(out.contains(REDACTED), "{line} -> {out}");
            for secret in ["abcd1234", "0123456789", "abc123", "xyz987", "f00dfeed"] {
                assert!(!out.contains(secret), "{line} -> {out}");
            }
        }
        for kept in [
            "max_tokens=512",
            "input_tokens: 1200",
            "monkey=banana1234",
            "hotkey=ctrl-shift-p",
            r#"{"time_to_first_token": 0.31}"#,
            "gen_ai.server.time_per_output_token=0.02",
            "timeToFirstToken: 0.31",
            "routing_key=orders.eu",
            "messaging.rabbitmq.destination.routing_key: orders",
            "partition_key=tenant-42",
            "next_page_token=abc123def456",
            "public_key=ssh-ed25519",
        ] {
            assert_eq!(r(kept), kept);
        }
    }

    #[test]
    fn every_listed_prefix_and_name_is_caught_in_a_json_line() {
        // The byte tables that rule positions out fast are built from the lists: each entry
        // must still be caught, in any case for the names, at the end of a line too.
        for p in SECRET_PREFIXES {
            let key = format!("{p}Abc123def456ghi789");
            let line = format!(r#"{{"model":"gpt-4o","note":"{key}"}}"#);
            assert!(!r(&line).contains(&key), "{line} -> {}", r(&line));
            assert!(!r(&key).contains("Abc123"), "{key}");
        }
        let names = SECRET_NAMES.iter().map(|n| (n, false));
        for (name, suffix) in names.chain(SECRET_NAME_SUFFIXES.iter().map(|n| (n, true))) {
            // (The tables read a name's last two bytes.)
            assert!(name.len() >= 2, "{name}");
            // Lower, upper, and both alternations of case.
            let alternate = |odd: bool| -> String {
                name.chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if (i % 2 == 1) == odd {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect()
            };
            let mut forms = vec![
                name.to_string(),
                name.to_ascii_uppercase(),
                alternate(false),
                alternate(true),
            ];
            if suffix {
                forms.push(format!("x-{name}"));
            }
            for n in forms {
                let line = format!(r#"{{"model":"gpt-4o","{n}":"v4lue"}}"#);
                assert!(!r(&line).contains("v4lue"), "{line} -> {}", r(&line));
                let query = format!("/p?a=1&{n}=v4lue");
                assert!(!r(&query).contains("v4lue"), "{query} -> {}", r(&query));
            }
        }
    }

    #[test]
    fn the_shortest_secret_of_each_form_is_still_redacted() {
        // At the length bounds the fast path relies on (SHORTEST_UNNAMED).
        let bearer = "Bearer abcd1234";
        assert!(!r(bearer).contains("abcd1234"), "{}", r(bearer));
        let basic = "Basic dXNlcjpw";
        assert_eq!(basic.len(), SHORTEST_UNNAMED);
        assert!(!r(basic).contains("dXNlcjpw"), "{}", r(basic));
        let key = "sk-abcdefghij1234";
        assert!(key.len() >= MIN_PREFIXED_LEN);
        assert!(!r(key).contains("abcdefghij1234"), "{}", r(key));
        for named in ["key=abc", "pwd:x1y2z3"] {
            assert_ne!(r(named), named);
        }
        for plain in ["gpt-4o-mini", "stop", "user-3", "chat gpt-4o"] {
            assert!(matches!(redact(plain), Cow::Borrowed(_)), "{plain}");
        }
    }

    #[test]
    fn query_parameters_carrying_keys_are_redacted() {
        assert_eq!(
            r("http://h/v1beta/models/m:generateContent?key=abc123&alt=sse"),
            "http://h/v1beta/models/m:generateContent?key=[REDACTED]&alt=sse"
        );
        assert_eq!(
            r("GET /x?a=1&api_key=zz9 HTTP"),
            "GET /x?a=1&api_key=[REDACTED] HTTP"
        );
        assert_eq!(
            r("/cb?access_token=t0k3n#frag"),
            "/cb?access_token=[REDACTED]#frag"
        );
        assert_eq!(r("/cb?token=t"), "/cb?token=[REDACTED]");
        assert_eq!(
            r("url (http://1.2.3.4/p?key=AIzaX)"),
            "url (http://1.2.3.4/p?key=[REDACTED])"
        );
        // Not a credential parameter.
        assert_eq!(r("/p?monkey=1&keys=2"), "/p?monkey=1&keys=2");
    }

    #[test]
    fn header_lines_and_json_headers_are_redacted() {
        assert_eq!(
            r("Authorization: Bearer abc"),
            "Authorization: Bearer [REDACTED]"
        );
        assert_eq!(
            r("authorization: Basic dXNlcjpwYXNz\nnext"),
            "authorization: Basic [REDACTED]\nnext"
        );
        assert_eq!(
            r("x-api-key: k1\r\nhost: h"),
            "x-api-key: [REDACTED]\r\nhost: h"
        );
        assert_eq!(r("api-key: k1"), "api-key: [REDACTED]");
        assert_eq!(r("x-goog-api-key:k1"), "x-goog-api-key:[REDACTED]");
        assert_eq!(
            r(r#"{"Authorization": "Bearer t", "x": 1}"#),
            r#"{"Authorization": "Bearer [REDACTED]", "x": 1}"#
        );
        assert_eq!(
            r(r#"{\"api_key\": \"v\"}"#),
            r#"{\"api_key\": \"[REDACTED]\"}"#
        );
    }

    #[test]
    fn prefixed_keys_are_redacted_wherever_they_appear() {
        for key in [
            "sk-proj-abcdefghijklmnop1234",
            "sk-ant-api03-abcdefghijklmnop",
            "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv",
            "xai-abcdefghijklmnop1234",
            "gsk_abcdefghijklmnop1234",
        ] {
            for text in [
                key.to_owned(),
                format!("the key {key}."),
                format!("https://x/y/{key}/z"),
                format!(r#"{{"k":"{key}"}}"#),
                format!("x={key}&y"),
            ] {
                let out = r(&text);
                assert!(!out.contains(key), "{text} -> {out}");
                assert!(out.contains(REDACTED), "{out}");
            }
        }
        assert_eq!(r("sk-short"), "sk-short");
        assert_eq!(
            r("task-abcdefghijklmnopqrstuvw"),
            "task-abcdefghijklmnopqrstuvw"
        );
    }

    /// Signed URLs (S3, GCS, CloudFront) carry their credential in a `...Signature`
    /// parameter: it was exported, and the URL stayed usable.
    #[test]
    fn signed_url_signatures_are_redacted() {
        for (url, secret) in [
            (
                "https://b.s3.amazonaws.com/o?X-Amz-Credential=AK%2F&X-Amz-Signature=9f86d081884c7d65",
                "9f86d081884c7d65",
            ),
            (
                "https://storage.googleapis.com/b/o?X-Goog-Signature=0a1b2c3d4e5f6a7b&X-Goog-Expires=900",
                "0a1b2c3d4e5f6a7b",
            ),
            (
                "https://d1.cloudfront.net/v.mp4?Expires=1&Signature=Qm9n~dXM-&Key-Pair-Id=K2",
                "Qm9n~dXM-",
            ),
        ] {
            let out = r(url);
            assert!(!out.contains(secret), "{out}");
            assert!(out.contains("Signature=[REDACTED]"), "{out}");
        }
    }

    /// A password written with a raw `@`, `/` or `?` is redacted whole: its first such byte
    /// ended it, and the rest (`ss` of `p@ss`) was exported.
    #[test]
    fn a_url_password_holding_at_slash_or_question_mark_is_redacted_whole() {
        for (url, kept) in [
            (
                "https://otel:p@ss@collector:4318/v1",
                "https://otel:[REDACTED]@collector:4318/v1",
            ),
            ("https://u:ab/cd+ef@host/x", "https://u:[REDACTED]@host/x"),
            (
                "redis://:pa?ss@cache:6379",
                "redis://:[REDACTED]@cache:6379",
            ),
            (
                "https://u:pw@host/path?email=a@b.example",
                "https://u:[REDACTED]@host/path?email=a@b.example",
            ),
        ] {
            assert_eq!(r(url), kept, "{url}");
            assert_eq!(r(&r(url)), kept, "idempotent: {url}");
        }
        // Text of `//a:` runs without blanks is scanned a bounded length from each (it
        // was scanned to its end from each: quadratic).
        let runs = "//a:".repeat(1 << 16);
        assert!(matches!(redact(&runs), Cow::Borrowed(_)));
        // No `@`: a host and port, nothing to redact.
        assert_eq!(
            r("http://localhost:4318/v1/traces"),
            "http://localhost:4318/v1/traces"
        );
    }

    #[test]
    fn bearer_tokens_and_url_passwords_are_redacted_in_prose() {
        assert_eq!(r("sent Bearer abc.def.ghi ok"), "sent Bearer [REDACTED] ok");
        assert_eq!(r("a basic question"), "a basic question");
        assert_eq!(
            r("https://u:hunter2@db.local/x"),
            "https://u:[REDACTED]@db.local/x"
        );
        assert_eq!(r("http://127.0.0.1:4318/v1"), "http://127.0.0.1:4318/v1");
    }

    /// In JSON text a newline is the two bytes `\` `n`: a key after an escaped newline, tab,
    /// carriage return, form feed, backspace or `\uXXXX` starts a word there (`nsk-proj-…`
    /// was one word, and the key not at a word's start, so it was exported as is).
    #[test]
    fn a_secret_right_after_a_json_escape_is_redacted() {
        for (text, secret) in [
            (
                r#"{"c":"x\nsk-proj-abcdefghijklmnop1234"}"#,
                "abcdefghijklmnop1234",
            ),
            (
                r#"{"c":"x\nAIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv"}"#,
                "SyA1b2C3d4E5f6G7",
            ),
            (
                r#"{"c":"jwt:\teyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig1234"}"#,
                "hbGciOiJIUzI1NiJ9",
            ),
            (r#"{"h":"Host: x\r\nBearer abc.def.ghi"}"#, "abc.def.ghi"),
            (
                r#"{"c":"a\fgsk_abcdefghijklmnop1234"}"#,
                "abcdefghijklmnop1234",
            ),
            (
                r#"{"c":"a\bghp_abcdefghijklmnop1234"}"#,
                "abcdefghijklmnop1234",
            ),
            (
                r#"{"c":"\u0022sk-ant-api03-abcdefghijklmnop\u0022"}"#,
                "abcdefghijklmnop",
            ),
            (r#"{"c":"x\ntoken: t0k3n-value"}"#, "t0k3n-value"),
            (r#"{"c":"x\nkey=k3y-value"}"#, "k3y-value"),
        ] {
            let out = r(text);
            assert!(!out.contains(secret), "{text} -> {out}");
            assert!(out.contains(REDACTED), "{text} -> {out}");
        }
        // Scanning from the escape's letter or from the key itself (the scan resumes after
        // a hit wherever it ended).
        let text = r#""\nsk-proj-abcdefghijklmnop1234""#;
        for from in [1, 2, 3] {
            assert_eq!(next_secret(text, from), Some((3, text.len() - 1)), "{from}");
        }
        // An escaped backslash before the letter is no escape: `\\n` is `\` and `n`, and
        // `nsk-...` is one word, as it is in plain text.
        for kept in [
            r#"{"c":"C:\\nsk-proj-abcdefghijklmnop1234"}"#,
            "nsk-proj-abcdefghijklmnop1234",
        ] {
            assert_eq!(r(kept), kept);
        }
    }

    /// `Basic` is also an English word: what follows it is a credential only when it is one
    /// (`user:password` in base64) or follows an `Authorization` name.
    #[test]
    fn basic_takes_only_base64_credentials_or_an_authorization_value() {
        for kept in [
            "Write a basic JavaScript function",
            "A Basic HelloWorld3 example",
            "basic TypeScript types",
            "Basic Authentication explained",
        ] {
            assert_eq!(r(kept), kept);
        }
        for (text, secret) in [
            ("curl sent Basic dXNlcjpwYXNz to it", "dXNlcjpwYXNz"),
            ("basic Zm9vOmJhcg==", "Zm9vOmJhcg"),
            ("Authorization: Basic QWxhZGRpbjpvcGVu", "QWxhZGRpbjpvcGVu"),
            (
                r#"{\"authorization\": \"Basic aGVsbG8gd29ybGQ=\"}"#,
                "aGVsbG8gd29ybGQ",
            ),
            (
                "authorization=Basic YWxhZGRpbjpvcGVuc2VzYW1l",
                "YWxhZGRpbjpvcGVu",
            ),
        ] {
            let out = r(text);
            assert!(!out.contains(secret), "{text} -> {out}");
        }
        // After `Authorization`, the scheme's word is kept and any token taken.
        assert_eq!(
            r("Authorization: Basic NotBase64Creds"),
            "Authorization: Basic [REDACTED]"
        );
        assert!(basic_credentials(b"dXNlcjpw"));
        assert!(!basic_credentials(b"JavaScript"));
        assert!(!basic_credentials(b"HelloWorld3="));
        assert!(!basic_credentials(b"QQ==="));
    }

    /// An Azure Functions URL carries its key as `?code=`: it was exported as it is. Only a
    /// query's `code` is taken: an error's `"code": "rate_limit_exceeded"` is kept.
    #[test]
    fn a_url_querys_code_parameter_is_redacted() {
        for (url, kept) in [
            (
                "https://fn.azurewebsites.net/api/chat?code=aBcD1234eFgH5678==&name=x",
                "https://fn.azurewebsites.net/api/chat?code=[REDACTED]&name=x",
            ),
            (
                "https://fn.azurewebsites.net/api/chat?a=1&CODE=aBcD1234eFgH5678",
                "https://fn.azurewebsites.net/api/chat?a=1&CODE=[REDACTED]",
            ),
        ] {
            assert_eq!(r(url), kept, "{url}");
            assert_eq!(r(kept), kept, "idempotent: {url}");
        }
        for kept in [
            r#"{"error":{"code":"rate_limit_exceeded","type":"tokens"}}"#,
            "exit code=2",
            "status code: 429",
            "error.code=insufficient_quota",
            "zipcode=10115",
        ] {
            assert_eq!(r(kept), kept);
        }
    }

    /// `password = hunter2`: a blank before the `=` (config files, log lines) let the value
    /// through; only a `:` could have blanks before it.
    #[test]
    fn a_blank_before_the_equals_sign_still_names_the_value() {
        for (text, kept) in [
            ("password = hunter2", "password = [REDACTED]"),
            (
                "db password\t= hunter2 next",
                "db password\t= [REDACTED] next",
            ),
            ("api_key = sk-x1y2", "api_key = [REDACTED]"),
            (
                "api_key = sk-proj-abcdefghijklmnop1234",
                "api_key = [REDACTED]",
            ),
            (r#"token = "t0k3n value""#, r#"token = "[REDACTED]""#),
        ] {
            assert_eq!(r(text), kept, "{text}");
            assert_eq!(r(kept), kept, "idempotent: {text}");
        }
        for kept in [
            "if token == null",
            "max_tokens = 512",
            "x = 1",
            "the monkey = banana",
            "key >= 3",
        ] {
            assert_eq!(r(kept), kept);
        }
    }

    /// A URL inside a URL's query is percent-encoded: `%3Fkey%3D…` hid the parameter's `?`,
    /// `=` and `&` from the scan, and its key was exported.
    #[test]
    fn percent_encoded_query_separators_still_name_the_value() {
        for (text, kept) in [
            (
                "https://login.example/cb?next=https%3A%2F%2Fapi.example%2Fv1%3Fkey%3Dabc123secret%26alt%3Dsse",
                "https://login.example/cb?next=https%3A%2F%2Fapi.example%2Fv1%3Fkey%3D[REDACTED]%26alt%3Dsse",
            ),
            (
                "/r?u=%2Fx%3Fa%3D1%26token%3Dt0k3nVALUE",
                "/r?u=%2Fx%3Fa%3D1%26token%3D[REDACTED]",
            ),
            (
                "/r?u=%2Fx%3fapi_key%3dzz9%20and",
                "/r?u=%2Fx%3fapi_key%3d[REDACTED]%20and",
            ),
            (
                "/r?u=%2Ffn%3Fcode%3DaBcD1234eFgH%26x%3D1",
                "/r?u=%2Ffn%3Fcode%3D[REDACTED]%26x%3D1",
            ),
            // A prefixed key right after an encoded byte starts a word there.
            (
                "/r?u=%2Fx%3Fq%3Dsk-proj-abcdefghijklmnop1234",
                "/r?u=%2Fx%3Fq%3D[REDACTED]",
            ),
        ] {
            assert_eq!(r(text), kept, "{text}");
            assert_eq!(r(kept), kept, "idempotent: {text}");
        }
        for kept in [
            "/p?q=100%25+off",
            "https%3A%2F%2Fexample.com%2Fmonkey%3Dbanana",
            "50% done",
        ] {
            assert_eq!(r(kept), kept);
        }
    }

    /// `"password":"a\"b…"`: the value ended at the escaped quote, and what followed it was
    /// exported. It now runs to the real closing quote, in plain and in escaped JSON.
    #[test]
    fn a_quoted_value_is_redacted_through_its_escaped_quotes() {
        for (text, kept) in [
            (
                r#"{"password":"a\"b-rest-of-secret","user":"u"}"#,
                r#"{"password":"[REDACTED]","user":"u"}"#,
            ),
            (
                r#"{"token":"x\\y\"z\u0041q","n":1}"#,
                r#"{"token":"[REDACTED]","n":1}"#,
            ),
            (
                r#"{\"password\": \"a\\\"b-rest\", \"user\": \"u\"}"#,
                r#"{\"password\": \"[REDACTED]\", \"user\": \"u\"}"#,
            ),
            ("password='a\\'b-rest' next", "password='[REDACTED]' next"),
        ] {
            assert_eq!(r(text), kept, "{text}");
            assert_eq!(r(kept), kept, "idempotent: {text}");
        }
        assert_eq!(
            r(r#"{\"api_key\": \"v\"}"#),
            r#"{\"api_key\": \"[REDACTED]\"}"#
        );
        // A value of quotes each escaped is scanned once (a scan ends in a hit).
        let text = format!(r#""password":"{}"#, r#"\""#.repeat(1 << 16));
        assert!(!r(&text).contains(r#"\"\""#));
        let runs = r#""password":"[REDACTED\"#.repeat(1 << 12);
        assert!(matches!(redact(&runs), Cow::Borrowed(_)));
    }

    /// `"x-api-key":["k"]`: a header's values as a JSON array (how several HTTP clients
    /// log headers) were exported, the value starting with `[`.
    #[test]
    fn a_json_array_value_is_redacted_whole() {
        for (text, kept) in [
            (
                r#"{"x-api-key":["s3cr3t-value"],"host":["h"]}"#,
                r#"{"x-api-key":[[REDACTED]],"host":["h"]}"#,
            ),
            (
                r#"{"authorization": ["Bearer abc", "Basic x]y"], "n": 1}"#,
                r#"{"authorization": [[REDACTED]], "n": 1}"#,
            ),
            (
                r#"{\"api_key\":[\"k1\",\"k2\"]}"#,
                r#"{\"api_key\":[[REDACTED]]}"#,
            ),
        ] {
            assert_eq!(r(text), kept, "{text}");
            assert_eq!(r(kept), kept, "idempotent: {text}");
        }
        assert_eq!(r(r#"{"keys":["a","b"]}"#), r#"{"keys":["a","b"]}"#);
        assert_eq!(r(r#"{"api_key":[]}"#), r#"{"api_key":[]}"#);
    }

    #[test]
    fn text_without_secrets_is_borrowed_and_redaction_is_idempotent() {
        for s in [
            "",
            "hello world",
            "gen_ai.usage.input_tokens: 12",
            "ratio=0.5",
            "a:b",
        ] {
            assert!(matches!(redact(s), Cow::Borrowed(_)), "{s}");
        }
        let once = r("x?key=abc Authorization: Bearer t0k");
        assert!(matches!(redact(&once), Cow::Borrowed(_)), "{once}");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples = [
            "=", ":", "key=", "\"key\":", "Bearer ", "é=é:ü", "://:@", "key:\\",
        ];
        for s in samples {
            let _ = redact(s);
        }
    }

    /// The byte-by-byte scan the word-by-word one replaced: every byte classified, a key
    /// looked for at each KEY_START byte after a non-word byte.
    fn next_secret_bytewise(s: &str, from: usize) -> Option<(usize, usize)> {
        let b = s.as_bytes();
        let mut after_word =
            from > 0 && b.get(from - 1).is_some_and(|&c| c.is_ascii_alphanumeric());
        let mut i = from;
        while i < b.len() {
            let class = BYTE_CLASS[b[i] as usize];
            let key_start = class & KEY_START != 0 && (!after_word || after_escape(b, i));
            if key_start || class & SEPARATOR != 0 {
                if let Some(r) = secret_at(b, i, key_start) {
                    return Some(r);
                }
            }
            after_word = class & WORD != 0;
            i += 1;
        }
        None
    }

    proptest::proptest! {
        /// The word-by-word scan finds the same secrets as the byte-by-byte one, from any
        /// position, in text made of the pieces secrets are made of.
        #[test]
        fn the_word_scan_finds_what_the_byte_scan_finds(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "sk-", "sk-proj-", "AIza", "eyJ", "ghp_", "Bearer ", "Basic ", "key", "api_key",
                    "token", "x-api-key", "Authorization", "password", "=", ":", ": ", "\"", "'",
                    "https://", "user", "@", "/", "?", "&", " ", "\n", "_", "-", ".", ",", "{", "}",
                    "abc", "ABC123", "0123456789", "dXNlcjpwYXNz", "é", "b", "s", "x",
                    "\\", "\\n", "\\t", "\\b", "\\u00e9", "\\u00", "u", "n", "e9",
                    "%", "%3D", "%3d", "%3F", "%26", "%20", "3D", "code", "?", "[", "]", " = ", "==",
                    "\\\"",
                ]),
                0..40,
            ),
            from in 0usize..64,
        ) {
            let text: String = pieces.concat();
            let mut from = from.min(text.len());
            while !text.is_char_boundary(from) {
                from -= 1;
            }
            proptest::prop_assert_eq!(
                next_secret(&text, from),
                next_secret_bytewise(&text, from),
                "{:?} from {}", text, from
            );
        }
    }
}
