//! A captured HTTP header (`http.request.header.*`, `http.response.header.*`) named like a
//! credential is never exported, whether or not it is one of the few well-known names
//! (`authorization`, `x-api-key`, ...): Azure's `ocp-apim-subscription-key`, Portkey's
//! `x-portkey-api-key`, AWS's `x-amz-security-token`, GitLab's `private-token` were kept,
//! though the same names as plain attributes were dropped.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use opentelemetry::KeyValue;

/// The keys `police_attributes` keeps of `keys` (each with a credential-looking value).
fn kept(keys: &[String]) -> Vec<String> {
    let mut attrs: Vec<KeyValue> = keys
        .iter()
        .map(|k| KeyValue::new(k.clone(), "c0ffee-1234-5678"))
        .collect();
    llmtel::police_attributes(&mut attrs, &llmtel::ContentCapture::default());
    attrs.iter().map(|kv| kv.key.to_string()).collect()
}

#[test]
fn credential_named_headers_are_dropped_like_credential_named_attributes() {
    let credentials = [
        "ocp-apim-subscription-key",
        "x-portkey-api-key",
        "x-amz-security-token",
        "x-auth-token",
        "private-token",
        "X-Amz-Secret-Access-Key",
        "x-client-secret",
        "x-refresh-token",
    ];
    for name in credentials {
        let keys: Vec<String> = [
            format!("http.request.header.{name}"),
            format!("http.response.header.{name}"),
            format!("HTTP.Request.Header.{name}"),
            // The same name as a plain attribute was already dropped.
            format!("app.{}", name.replace('-', "_")),
        ]
        .into();
        assert_eq!(kept(&keys), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn headers_that_name_no_credential_are_kept() {
    let keys: Vec<String> = [
        "http.request.header.content-type",
        "http.request.header.idempotency-key",
        "http.response.header.x-ratelimit-remaining-tokens",
        "http.response.header.x-request-id",
        "http.request.header.cache-key",
    ]
    .map(String::from)
    .into();
    assert_eq!(kept(&keys), keys);
}
