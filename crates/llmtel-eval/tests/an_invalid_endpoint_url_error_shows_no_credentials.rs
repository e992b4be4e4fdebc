//! A base URL that does not parse was kept verbatim in the error (and its message): an API
//! key in its user info or query reached logs. What looks like user info, a query or a
//! fragment is now masked, even though the URL does not parse.
#![cfg(feature = "judge")]

use llmtel_eval::{EndpointConfigError, LlmJudge};

fn error(base: &str) -> EndpointConfigError {
    match LlmJudge::builder(base, "m").build() {
        Ok(_) => panic!("{base} was accepted"),
        Err(e) => e,
    }
}

#[test]
fn user_info_and_query_are_masked_in_an_invalid_url() {
    for (base, secret) in [
        (
            "https://user:sk-live-xyz@api.example.com:99999/v1",
            "sk-live-xyz",
        ),
        ("https://api.example.com:99999/v1?api_key=abc123", "abc123"),
        ("https://u:pa/ss@api.example.com:99999/v1", "pa/ss"),
        ("sk-live-xyz@api.example.com/v1", "sk-live-xyz"),
        ("https://api.example.com:99999/v1#token=t0k", "t0k"),
        // A `#` or `?` in the password, an `@` in the query: where the user info ends
        // cannot be told, so nothing past the scheme is shown.
        ("https://user:Zx9#kP2q@api.example.com:99999/v1", "Zx9"),
        ("https://user:Zx9?kP2q@api.example.com:99999/v1", "Zx9"),
        ("https://api.example.com:99999/v1?key=abc@d3f", "d3f"),
    ] {
        let e = error(base);
        let EndpointConfigError::InvalidUrl { url, .. } = &e else {
            panic!("{base}: {e:?}");
        };
        assert!(!url.contains(secret), "{url}");
        let shown = e.to_string();
        assert!(!shown.contains(secret), "{shown}");
        assert!(!format!("{e:?}").contains(secret), "{e:?}");
        // Still says which host and port were meant.
        if !base.contains('@') {
            assert!(shown.contains("api.example.com"), "{shown}");
        }
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}

#[test]
fn an_invalid_url_without_credentials_is_shown_as_given() {
    let e = error("https://api.example.com:99999/v1");
    assert!(
        e.to_string()
            .contains("\"https://api.example.com:99999/v1\""),
        "{e}"
    );
}
