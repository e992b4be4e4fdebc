//! The PII scan runs on the evaluation thread and cannot be interrupted by its timeout: it
//! must stay linear in the input, whatever the text. A run of `(` or `+` used to make it look
//! back over the whole text before each one (quadratic: 32k characters took seconds).

use std::time::{Duration, Instant};

use llmtel_eval::{EvalInput, PiiKind, PiiLeak, SyncEvaluator, find_pii};

/// Scans `text` and says how long it took.
fn timed(text: &str) -> (Vec<PiiKind>, Duration) {
    let t = Instant::now();
    let found = find_pii(text);
    (found, t.elapsed())
}

#[test]
fn openings_without_digits_do_not_make_the_scan_quadratic() {
    // 32k characters: the quadratic scan took seconds here (unoptimised); a linear one takes
    // milliseconds, even unoptimised on a busy machine.
    for unit in ["( ", "+ ", "(+ ", "x ("] {
        let text = unit.repeat(32 * 1024 / unit.len());
        let (found, took) = timed(&text);
        assert!(found.is_empty(), "{unit:?}: {found:?}");
        assert!(took < Duration::from_secs(1), "{unit:?}: {took:?}");
    }
}

#[test]
fn labels_are_still_read_before_the_number() {
    // The bounded look-back still sees the label (and its "number" / "#").
    assert!(find_pii("Your order number: 4111 1111 1111 1111").is_empty());
    assert!(find_pii("ticket #  4111111111111111").is_empty());
    assert!(find_pii("Reference no. 555-123-4567").is_empty());
    // A label cut by the window is not taken for one ("reorder" ending in "order").
    let long = format!("{} 4111 1111 1111 1111", "x".repeat(60));
    assert_eq!(find_pii(&long), vec![PiiKind::CardNumber]);
    let eval = PiiLeak
        .score(&EvalInput::new("Card: 4111 1111 1111 1111"))
        .unwrap();
    assert_eq!(eval.score, 0.0);
}
