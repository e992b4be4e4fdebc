//! How an OTLP client trusts an `https://` endpoint: rustls with the platform's roots, plus the
//! CA certificates of a PEM file (given in code or by an `OTEL_EXPORTER_OTLP_*_CERTIFICATE`
//! variable). Shared by llmtel's exporters and `llmtel collector`'s forwarder.

use std::path::{Path, PathBuf};

use crate::init::env;

/// The TLS trust of one OTLP client: whether its endpoint is https, and the extra CA to trust.
/// Errors are messages that name the file, the setting it came from and what to do.
///
/// ```
/// let endpoint = Some("https://otlp.example:4317");
/// let tls = llmtel::tls::OtlpTls::resolve(endpoint, None, &[], "a CA file").unwrap();
/// assert!(tls.ca_source().is_none());
/// let err = llmtel::tls::OtlpTls::resolve(
///     endpoint,
///     Some((std::path::Path::new("/no/such/ca.pem"), "[forward] ca_file")),
///     &[],
///     "a CA file",
/// )
/// .unwrap_err();
/// assert!(err.contains("/no/such/ca.pem ([forward] ca_file)"), "{err}");
/// ```
#[derive(Clone, Debug, Default)]
pub struct OtlpTls {
    /// Read by gRPC clients (tonic needs TLS turned on explicitly; reqwest goes by the URL).
    #[cfg_attr(not(feature = "otlp-grpc"), allow(dead_code))]
    https: bool,
    /// PEM of the CA certificates, and where it came from (for errors).
    ca: Option<(Vec<u8>, String)>,
    /// Where to give a CA file, for the error on a system without CA certificates.
    #[cfg_attr(not(feature = "otlp-grpc"), allow(dead_code))]
    hint: &'static str,
}

impl OtlpTls {
    /// Reads the CA file `explicit` (with the name of the setting that gave it), else the one
    /// the first of `vars` that is set names. `endpoint`: where the client sends (TLS is
    /// turned on for an `https://` one, and for one without a scheme unless
    /// `OTEL_EXPORTER_OTLP_TRACES_INSECURE`, else `OTEL_EXPORTER_OTLP_INSECURE`, is `true`).
    /// `hint` says where a CA file can be given (used in errors).
    ///
    /// # Errors
    /// The file cannot be read, or holds no PEM certificate.
    pub fn resolve(
        endpoint: Option<&str>,
        explicit: Option<(&Path, &str)>,
        vars: &[&str],
        hint: &'static str,
    ) -> Result<OtlpTls, String> {
        let https = endpoint.is_some_and(|e| {
            is_https(e) || (!has_scheme(e) && !insecure("OTEL_EXPORTER_OTLP_TRACES_INSECURE", env))
        });
        let source = match explicit {
            Some((p, from)) => Some((p.to_path_buf(), from.to_owned())),
            None => vars
                .iter()
                .find_map(|v| env(v).map(|p| (PathBuf::from(p), (*v).to_owned()))),
        };
        let Some((path, from)) = source else {
            return Ok(OtlpTls {
                https,
                ca: None,
                hint,
            });
        };
        let pem = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read the OTLP CA certificate file {} ({from}): {e}; give a readable PEM file",
                path.display()
            )
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "the OTLP CA certificate file {} ({from}) holds no PEM certificate \
                 (-----BEGIN CERTIFICATE-----)",
                path.display()
            ));
        }
        Ok(OtlpTls {
            https,
            ca: Some((pem, format!("{} ({from})", path.display()))),
            hint,
        })
    }

    /// The CA file in use and the setting it came from, if any.
    pub fn ca_source(&self) -> Option<&str> {
        self.ca.as_ref().map(|(_, from)| from.as_str())
    }

    /// A reqwest client builder trusting the platform's roots (reqwest's default verifier)
    /// and the CA file's certificates.
    ///
    /// # Errors
    /// The file's PEM does not parse as certificates.
    #[cfg(feature = "otlp-http")]
    pub fn reqwest_builder(&self) -> Result<reqwest::ClientBuilder, String> {
        let b = reqwest::Client::builder();
        let Some((pem, from)) = &self.ca else {
            return Ok(b);
        };
        reqwest::Certificate::from_pem_bundle(pem)
            .ok()
            .filter(|c| !c.is_empty())
            .map(|certs| b.tls_certs_merge(certs))
            .ok_or_else(|| {
                format!("the OTLP CA certificate file {from} does not parse as PEM certificates")
            })
    }

    /// tonic's TLS settings for an https endpoint (`None` for http): the platform's roots when
    /// it has any, plus the CA.
    ///
    /// # Errors
    /// No CA file and no CA certificate on the system.
    #[cfg(feature = "otlp-grpc")]
    pub fn tonic(
        &self,
    ) -> Result<Option<opentelemetry_otlp::tonic_types::transport::ClientTlsConfig>, String> {
        use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
        if !self.https {
            return Ok(None);
        }
        let mut tls = ClientTlsConfig::new();
        let native = !rustls_native_certs::load_native_certs().certs.is_empty();
        if native {
            tls = tls.with_native_roots();
        }
        match &self.ca {
            Some((pem, _)) => tls = tls.ca_certificate(Certificate::from_pem(pem)),
            None if !native => {
                return Err(format!(
                    "this system has no CA certificates for the https OTLP endpoint: install \
                     them (ca-certificates) or give a CA file ({})",
                    self.hint
                ));
            }
            None => {}
        }
        Ok(Some(tls))
    }
}

/// Whether `endpoint` names its scheme (`http://`, `https://`, ...): a gRPC endpoint without
/// one (`collector.example.com:4317`) is secure unless the signal's `..._INSECURE` says
/// otherwise (the OTLP exporter specification; opentelemetry-otlp makes it `https://`).
fn has_scheme(endpoint: &str) -> bool {
    endpoint
        .trim()
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.contains(['/', '?', '#']))
}

/// Whether a signal's gRPC endpoint without a scheme is plain text: its own variable
/// (`OTEL_EXPORTER_OTLP_TRACES_INSECURE`, `..._METRICS_INSECURE`) when set, else
/// `OTEL_EXPORTER_OTLP_INSECURE`, is `true` (case ignored), as opentelemetry-otlp reads them.
/// `get` reads a variable, trimmed, empty as unset. Another signal's variable says nothing
/// about this one: read together, `..._METRICS_INSECURE=true` made the traces plain text
/// while their exporter, reading its own, went https with no TLS settings.
pub(crate) fn insecure(signal_var: &str, get: impl Fn(&str) -> Option<String>) -> bool {
    get(signal_var)
        .or_else(|| get("OTEL_EXPORTER_OTLP_INSECURE"))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `endpoint` with a scheme: as it is when it has one, else with `http://` when `insecure`,
/// else `https://` (the OTLP exporter specification's rule for a gRPC endpoint).
#[cfg(any(test, feature = "otlp-grpc"))]
pub(crate) fn with_scheme(endpoint: String, insecure: bool) -> String {
    if has_scheme(&endpoint) {
        endpoint
    } else if insecure {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    }
}

/// Whether `tls` turns TLS on (tests).
#[cfg(test)]
pub(crate) fn is_tls(tls: &OtlpTls) -> bool {
    tls.https
}

/// Whether `endpoint` is an `https://` URL (ASCII case ignored, surrounding space allowed).
pub(crate) fn is_https(endpoint: &str) -> bool {
    endpoint
        .trim()
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(set: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            set.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        }
    }

    #[test]
    fn each_signal_reads_its_own_insecure_variable_then_the_generic_one() {
        const TRACES: &str = "OTEL_EXPORTER_OTLP_TRACES_INSECURE";
        const METRICS: &str = "OTEL_EXPORTER_OTLP_METRICS_INSECURE";
        let only_metrics = [(METRICS, "true")];
        assert!(!insecure(TRACES, vars(&only_metrics)));
        assert!(insecure(METRICS, vars(&only_metrics)));
        // The signal's own value wins over the generic one, either way.
        let both = [(TRACES, "false"), ("OTEL_EXPORTER_OTLP_INSECURE", "true")];
        assert!(!insecure(TRACES, vars(&both)));
        assert!(insecure(METRICS, vars(&both)));
        // Empty is unset; the value's case and surrounding space do not matter.
        let empty = [(TRACES, " "), ("OTEL_EXPORTER_OTLP_INSECURE", " TRUE ")];
        assert!(insecure(TRACES, vars(&empty)));
        assert!(!insecure(TRACES, vars(&[])));
    }

    #[test]
    fn a_schemeless_endpoint_gets_the_scheme_insecure_says_and_a_scheme_is_kept() {
        let e = "collector.example.com:4317".to_owned();
        assert_eq!(
            with_scheme(e.clone(), false),
            "https://collector.example.com:4317"
        );
        assert_eq!(with_scheme(e, true), "http://collector.example.com:4317");
        for kept in ["http://c:4317", "https://c:4317", "unix:///tmp/otlp.sock"] {
            assert_eq!(with_scheme(kept.to_owned(), true), kept);
            assert_eq!(with_scheme(kept.to_owned(), false), kept);
        }
    }
}
