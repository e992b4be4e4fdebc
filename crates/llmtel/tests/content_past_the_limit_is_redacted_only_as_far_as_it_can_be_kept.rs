//! Content capture on a hostile prompt: a 10 MB message is cut to the limit without the
//! redaction (built-in and the app's) scanning or copying all of it, and a secret that
//! starts before the cut never leaks a prefix.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const TEN_MB: usize = 10 * 1024 * 1024;

/// A policy whose redactor changes nothing and remembers the longest text it was given.
fn watched(max_chars: usize) -> (llmtel::ContentCapture, Arc<AtomicUsize>) {
    let longest = Arc::new(AtomicUsize::new(0));
    let seen = longest.clone();
    let policy = llmtel::ContentCapture::enabled()
        .with_max_chars(max_chars)
        .with_redactor(move |s: &str| {
            seen.fetch_max(s.len(), Ordering::Relaxed);
            s.to_owned()
        });
    (policy, longest)
}

#[test]
fn a_ten_megabyte_prompt_is_redacted_only_near_the_limit() {
    let (policy, longest) = watched(4_096);
    let prompt = "lorem ipsum ".repeat(TEN_MB / 12);
    let kept = policy.apply(&prompt).expect("capture is on");
    let seen = longest.load(Ordering::Relaxed);
    assert!(
        seen < 128 * 1024,
        "the redactor was given {seen} bytes of a {} byte prompt cut to 4,096 characters",
        prompt.len()
    );
    assert_eq!(
        kept,
        format!(
            "{}…[truncated {} chars]",
            &prompt[..4_096],
            prompt.len() - 4_096
        ),
        "the kept part and the count of what was cut are those of the whole prompt"
    );
}

#[test]
fn a_token_without_blanks_is_redacted_only_near_the_limit_too() {
    let (policy, longest) = watched(100);
    let blob = format!("data sk-proj-{}", "A".repeat(TEN_MB));
    let kept = policy.apply(&blob).expect("capture is on");
    assert!(longest.load(Ordering::Relaxed) < 128 * 1024);
    assert!(
        !kept.contains("sk-proj") && !kept.contains("AAAA"),
        "{kept:.200}"
    );
    assert!(kept.starts_with("data [REDACTED]"), "{kept:.200}");
}

#[test]
fn a_secret_across_the_cut_leaks_no_prefix() {
    for max in [15, 20, 30] {
        let policy = llmtel::ContentCapture::enabled().with_max_chars(max);
        let key = format!("sk-ant-api03-{}", "Zq9".repeat(20));
        let content = format!("{} {key} {}", "b".repeat(12), "tail ".repeat(20_000));
        let kept = policy.apply(&content).expect("capture is on");
        assert!(!kept.contains("sk-ant") && !kept.contains("Zq9"), "{kept}");
        let cut: usize = kept
            .rsplit("…[truncated ")
            .next()
            .and_then(|n| n.strip_suffix(" chars]"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no marker in {kept}"));
        let redacted = content.replace(&key, "[REDACTED]");
        assert_eq!(
            cut,
            redacted.chars().count() - max,
            "the marker counts what was cut of the redacted content"
        );
    }
}
