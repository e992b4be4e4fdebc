//! Content capture on a hostile prompt: a 10 MB message is cut to the limit and counted
//! whole (the built-in redaction reads only what can be kept; the app's redactor gets it
//! all), and a secret that starts before the cut never leaks a prefix.

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
fn a_ten_megabyte_prompt_is_cut_and_counted_as_a_whole() {
    let policy = llmtel::ContentCapture::enabled();
    let prompt = "lorem ipsum ".repeat(TEN_MB / 12);
    let kept = policy.apply(&prompt).expect("capture is on");
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

/// The app's redactor may parse the content (JSON messages): it is given all of it, never a
/// cut it could not parse.
#[test]
fn the_apps_redactor_is_given_the_whole_content() {
    let (policy, longest) = watched(4_096);
    let prompt = "lorem ipsum ".repeat(TEN_MB / 12);
    let kept = policy.apply(&prompt).expect("capture is on");
    assert_eq!(longest.load(Ordering::Relaxed), prompt.len());
    assert!(kept.starts_with(&prompt[..4_096]) && kept.ends_with(" chars]"));
}

#[test]
fn a_token_without_blanks_across_the_cut_is_redacted() {
    let policy = llmtel::ContentCapture::enabled().with_max_chars(100);
    let blob = format!("data sk-proj-{}", "A".repeat(TEN_MB));
    let kept = policy.apply(&blob).expect("capture is on");
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
