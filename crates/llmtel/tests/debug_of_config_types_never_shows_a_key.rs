//! `{:?}` of every public llmtel config type that can hold a secret prints `<redacted>` (or
//! `[REDACTED]` inside a URL) in its place: configs end up in logs and panic messages.
#![allow(clippy::unwrap_used)]

const KEY: &str = "sk-lf-0123456789abcdef0123456789";
const PUBLIC: &str = "pk-lf-0123456789abcdef0123456789";
const URL_KEY: &str = "AIzaSyD-FAKEke72PouQMnMX-a7eZSW0jkFMBWY";

fn assert_clean(what: &str, s: &str) {
    for secret in [KEY, PUBLIC, URL_KEY, "hunter2", "lsv2_pt_0123456789abcdef"] {
        assert!(!s.contains(secret), "{what} Debug shows {secret}: {s}");
    }
}

#[test]
fn builder_debug_hides_header_values_and_url_credentials() {
    let b = llmtel::builder()
        .with_endpoint(format!(
            "https://user:hunter2@otel.example:4318/?key={URL_KEY}"
        ))
        .with_header("authorization", format!("Bearer {KEY}"))
        .with_header("x-api-key", "lsv2_pt_0123456789abcdef")
        .with_preset(llmtel::Preset::Langfuse {
            host: "https://cloud.langfuse.com".into(),
            public_key: PUBLIC.into(),
            secret_key: KEY.into(),
        });
    let s = format!("{b:?}");
    assert_clean("Builder", &s);
    assert!(s.contains("<redacted>"), "{s}");
    assert!(
        s.contains("authorization"),
        "header names stay visible: {s}"
    );
    assert!(s.contains("otel.example"), "the host stays visible: {s}");
}

#[test]
fn preset_debug_hides_every_key() {
    for p in [
        llmtel::Preset::Langfuse {
            host: format!("https://lf.local/?token={KEY}"),
            public_key: PUBLIC.into(),
            secret_key: KEY.into(),
        },
        llmtel::Preset::LangSmith {
            endpoint: "https://api.smith.langchain.com".into(),
            api_key: "lsv2_pt_0123456789abcdef".into(),
            project: "support".into(),
        },
        llmtel::Preset::Phoenix {
            endpoint: "http://admin:hunter2@127.0.0.1:6006".into(),
            project: "p".into(),
        },
    ] {
        let s = format!("{p:?} {p:#?}");
        assert_clean("Preset", &s);
    }
}

#[test]
fn content_policy_and_exporter_debug_show_no_hook_internals() {
    let policy = llmtel::ContentCapture::enabled().with_redactor(move |s: &str| s.replace(KEY, ""));
    let exporter =
        llmtel::GenAiExporter::new(opentelemetry_sdk::trace::InMemorySpanExporter::default())
            .with_content_capture(policy.clone());
    assert_clean("ContentCapture", &format!("{policy:?}"));
    assert_clean("GenAiExporter", &format!("{exporter:?}"));
}

#[cfg(feature = "metrics")]
#[test]
fn otlp_metrics_config_debug_hides_header_values_and_url_credentials() {
    let c = llmtel::metrics::OtlpMetricsConfig {
        endpoint: Some(format!(
            "https://user:hunter2@otel.example:4318/?key={URL_KEY}"
        )),
        headers: vec![("authorization".into(), format!("Bearer {KEY}"))],
        ..Default::default()
    };
    let s = format!("{c:?}");
    assert_clean("OtlpMetricsConfig", &s);
    assert!(
        s.contains("authorization") && s.contains("otel.example"),
        "{s}"
    );
}
