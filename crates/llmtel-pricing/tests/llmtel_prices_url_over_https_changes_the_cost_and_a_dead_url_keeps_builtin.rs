//! `LLMTEL_PRICES_URL`: a price file fetched over https at start-up, from a real local TLS
//! server (a CA and server certificate made in the test with rcgen, trusted through
//! `LLMTEL_PRICES_URL_CA_FILE` / `with_ca_pem`), is layered over the built-in catalog; a
//! dead or untrusted URL leaves the built-in catalog and a counted failure that says
//! what to do.
#![cfg(feature = "fetch")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use llmtel_pricing::{PriceSources, Usage, price_source_failures};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const CHANGED: &str = r#"
[[model]]
id = "gpt-4o"
provider = "openai"
[[model.price]]
effective = "2024-10-02"
input = 3.00
output = 12.00
"#;

struct Ca {
    pem: String,
    params: CertificateParams,
    key: KeyPair,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        params,
        key,
    }
}

/// An https server on 127.0.0.1 answering every request with `body`; returns its port.
fn serve(ca: &Ca, body: &'static str) -> u16 {
    let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    params.is_ca = IsCa::NoCa;
    let key = KeyPair::generate().unwrap();
    let cert = params
        .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
        .unwrap();
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, der)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/toml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes());
                let _ = tls.write_all(body.as_bytes());
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

fn gpt_4o_million_each_way(sources: &PriceSources) -> (String, Vec<String>) {
    let layered = sources.load();
    let call = layered
        .catalog
        .price(
            "gpt-4o",
            None,
            &Usage::new(1_000_000, 1_000_000),
            jiff::civil::date(2026, 1, 1),
        )
        .unwrap();
    (
        call.breakdown.total.to_string(),
        layered.failures.iter().map(ToString::to_string).collect(),
    )
}

#[test]
fn a_changed_price_served_over_https_changes_the_cost_at_the_next_start() {
    let ca = ca();
    let port = serve(&ca, CHANGED);
    let ca_file = std::env::temp_dir().join(format!("llmtel-prices-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, &ca.pem).unwrap();
    // What llmtel::init() does at start-up: read the environment.
    let env: HashMap<&str, String> = HashMap::from([
        (
            "LLMTEL_PRICES_URL",
            format!("https://127.0.0.1:{port}/prices.toml"),
        ),
        ("LLMTEL_PRICES_URL_CA_FILE", ca_file.display().to_string()),
    ]);
    let sources = PriceSources::from_lookup(|k| env.get(k).cloned());
    let (cost, failures) = gpt_4o_million_each_way(&sources);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(cost, "$15.000000"); // $3 + $12 instead of the built-in $2.50 + $10
    let layered = sources.load();
    assert_eq!(
        layered.layers,
        vec![format!("https://127.0.0.1:{port}/prices.toml")]
    );
    // Without the URL (an earlier start): the built-in price.
    let (cost, _) = gpt_4o_million_each_way(&PriceSources::default());
    assert_eq!(cost, "$12.500000");
}

#[test]
fn a_dead_url_keeps_the_builtin_catalog_and_counts_a_failure_without_the_token() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens there
    let before = price_source_failures();
    let sources = PriceSources::default()
        .with_url(format!(
            "https://127.0.0.1:{port}/prices.json?token=sk-SECRET-123"
        ))
        .with_timeout(Duration::from_secs(3));
    let (cost, failures) = gpt_4o_million_each_way(&sources);
    assert_eq!(cost, "$12.500000");
    assert_eq!(failures.len(), 1);
    assert!(price_source_failures() > before);
    let msg = &failures[0];
    assert!(
        msg.contains(&format!(
            "cannot fetch prices from https://127.0.0.1:{port}/prices.json"
        )),
        "{msg}"
    );
    assert!(msg.contains("built-in prices are used"), "{msg}");
    assert!(!msg.contains("SECRET"), "token leaked: {msg}");
    assert!(!format!("{sources:?}").contains("SECRET"));
}

#[test]
fn an_untrusted_certificate_is_refused_and_the_builtin_catalog_kept() {
    let ca = ca();
    let port = serve(&ca, CHANGED);
    let sources = PriceSources::default().with_url(format!("https://127.0.0.1:{port}/p.toml"));
    let (cost, failures) = gpt_4o_million_each_way(&sources);
    assert_eq!(cost, "$12.500000");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("LLMTEL_PRICES_URL_CA_FILE"),
        "{}",
        failures[0]
    );
}

#[test]
fn plain_http_is_refused() {
    let sources = PriceSources::default().with_url("http://127.0.0.1:9/prices.toml");
    let (cost, failures) = gpt_4o_million_each_way(&sources);
    assert_eq!(cost, "$12.500000");
    assert!(
        failures[0].contains("not an https:// URL"),
        "{}",
        failures[0]
    );
}

#[test]
fn the_file_wins_over_the_url() {
    let ca = ca();
    let port = serve(&ca, CHANGED);
    let file = std::env::temp_dir().join(format!("llmtel-prices-file-{}.toml", std::process::id()));
    std::fs::write(&file, CHANGED.replace("3.00", "4.00")).unwrap();
    let sources = PriceSources::default()
        .with_url(format!("https://127.0.0.1:{port}/p.toml"))
        .with_ca_pem(ca.pem.clone())
        .with_file(&file);
    let (cost, failures) = gpt_4o_million_each_way(&sources);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(cost, "$16.000000");
}
