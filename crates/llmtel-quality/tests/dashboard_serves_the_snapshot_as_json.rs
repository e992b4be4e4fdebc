//! The dashboard endpoint: real calls through `LlmLayer` into a `Quality` pipeline, then a
//! real HTTP GET of `/snapshot` on a port picked by the OS; the JSON numbers are those of
//! the calls driven (costs from the built-in catalog's prices).
#![cfg(feature = "dashboard")]
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use llmtel::{Catalog, Usage};
use llmtel_quality::Quality;
use llmtel_quality::dashboard::{DashboardError, serve};
use tracing_subscriber::prelude::*;

/// (model, feature, input tokens, output tokens, error)
const CALLS: &[(&str, &str, u64, u64, Option<&str>)] = &[
    ("gpt-4o", "search", 1200, 300, None),
    ("gpt-4o", "search", 800, 100, None),
    ("gpt-4o-mini", "chat", 5000, 700, None),
    ("gpt-4o-mini", "chat", 0, 0, Some("timeout")),
];

fn drive(quality: &Quality) {
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::LlmLayer::new().with_sink(Arc::new(quality.sink())));
    tracing::subscriber::with_default(subscriber, || {
        for (i, (model, feature, input, output, error)) in CALLS.iter().enumerate() {
            let span = llmtel::llm_span!("chat", "openai", model, "llmtel.feature" = *feature);
            llmtel::record_response(&span, &format!("resp-{i}"), model, &["stop"]);
            match error {
                Some(e) => llmtel::record_error(&span, e, "upstream timed out"),
                None => llmtel::record_usage(
                    &span,
                    &Usage {
                        input_tokens: *input,
                        output_tokens: *output,
                        ..Default::default()
                    },
                ),
            }
        }
    });
    assert!(quality.flush(Duration::from_secs(10)));
}

fn get(url: &str) -> (u16, String) {
    let r = reqwest::blocking::get(url).unwrap();
    let status = r.status().as_u16();
    (status, r.text().unwrap())
}

#[test]
fn snapshot_endpoint_returns_the_numbers_of_the_calls_driven() {
    let quality = Quality::builder().build();
    drive(&quality);
    let server = serve(&quality, "127.0.0.1:0").unwrap();
    assert_ne!(server.local_addr().port(), 0);
    let base = format!("http://{}", server.local_addr());

    let (status, body) = get(&format!("{base}/snapshot"));
    assert_eq!(status, 200, "{body}");
    // Byte for byte the in-process snapshot (compared as text: parsing JSON floats back
    // is not exact).
    assert_eq!(body, serde_json::to_string(&quality.snapshot()).unwrap());
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();

    // And the numbers of the calls driven, computed here.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let priced: Vec<f64> = CALLS
        .iter()
        .filter(|c| c.4.is_none())
        .map(|(m, _, i, o, _)| {
            let u = Usage {
                input_tokens: *i,
                output_tokens: *o,
                ..Default::default()
            };
            Catalog::builtin()
                .price(m, None, &u, today)
                .unwrap()
                .breakdown
                .total
                .as_f64()
        })
        .collect();
    let total = &json["overall"]["total"];
    assert_eq!(total["requests"], 4);
    assert_eq!(total["errors"], 1);
    assert_eq!(total["error_rate"], 0.25);
    let avg = total["avg_cost_usd"].as_f64().unwrap();
    let expected = priced.iter().sum::<f64>() / priced.len() as f64;
    assert!((avg - expected).abs() < 1e-12, "{avg} vs {expected}");
    let series = json["series"].as_array().unwrap();
    let keys: Vec<(&str, &str, u64)> = series
        .iter()
        .map(|s| {
            (
                s["model"].as_str().unwrap(),
                s["feature"].as_str().unwrap(),
                s["total"]["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![("gpt-4o", "search", 2), ("gpt-4o-mini", "chat", 2)]
    );
    assert_eq!(json["stats"]["calls"], 4);

    let (status, body) = get(&format!("{base}/healthz"));
    assert_eq!(status, 200);
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["stats"]["calls_queued"], 4);
    assert_eq!(h["stats"]["calls_dropped"], 0);

    let (status, _) = get(&format!("{base}/no-such-page"));
    assert_eq!(status, 404);

    // Dropping the server stops it: the port no longer answers.
    let addr = server.local_addr();
    drop(server);
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn a_bad_or_busy_address_is_a_clear_error() {
    let quality = Quality::builder().build();
    let err = serve(&quality, "not an address").unwrap_err();
    assert!(matches!(err, DashboardError::Addr(_)), "{err}");
    assert!(err.to_string().contains("host:port"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = serve(&quality, &addr).unwrap_err();
    assert!(matches!(err, DashboardError::Bind { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn the_router_nests_into_an_app() {
    let quality = Quality::builder().build();
    drive(&quality);
    let app: axum::Router = axum::Router::new().nest(
        "/quality",
        llmtel_quality::dashboard::router(quality.clone()),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    std::thread::spawn(move || {
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, app).await.unwrap();
        })
    });
    let (status, body) = get(&format!("http://{addr}/quality/snapshot"));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["overall"]["total"]["requests"], 4);
}
