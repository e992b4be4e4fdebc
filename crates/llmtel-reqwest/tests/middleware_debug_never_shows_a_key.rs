//! `{:?}` of the middleware (its routes) never shows a key carried in a base URL.
#![allow(clippy::unwrap_used)]

#[test]
fn middleware_debug_hides_keys_in_base_urls() {
    const KEY: &str = "sk-proj-0123456789abcdefABCDEF";
    let mw = llmtel_reqwest::LlmMiddleware::new()
        .with_openai_compatible(&format!("http://127.0.0.1:9/gw/{KEY}/v1"), "gateway")
        .unwrap()
        .with_gemini_base_url("http://127.0.0.1:9/gemini")
        .unwrap();
    let s = format!("{mw:?} {mw:#?}");
    assert!(!s.contains(KEY), "{s}");
    assert!(s.contains("[REDACTED]"), "{s}");
    assert!(s.contains("127.0.0.1"), "{s}");

    // The builder's error names the bad URL, redacted too.
    let err = llmtel_reqwest::LlmMiddleware::new()
        .with_openai_compatible(&format!("not a url ?key={KEY}"), "x")
        .unwrap_err();
    assert!(!err.to_string().contains(KEY), "{err}");
    assert!(!format!("{err:?}").contains(KEY), "{err:?}");
}
