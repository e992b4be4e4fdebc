//! The export settings given in code that opentelemetry-otlp would let the environment
//! override: the headers of every export request (a preset's credentials,
//! `Builder::with_header`) and the request timeout.
//!
//! opentelemetry-otlp merges `OTEL_EXPORTER_OTLP_HEADERS` over the headers it is given, so a
//! variable meant for another backend (`Authorization=Bearer <grafana token>`) would replace
//! a preset's credentials and be sent to the preset's host. llmtel puts the code's headers
//! on each request last instead: over HTTP through the client it hands the exporter
//! ([`HeadersLast`]), over gRPC through an interceptor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::init::InitError;

/// Export headers set in code, names case-insensitive (a later one replaces an earlier one
/// of the same name), values marked sensitive. `Debug` shows the names only.
#[derive(Clone, Default)]
pub(crate) struct CodeHeaders(Arc<[(http::HeaderName, http::HeaderValue)]>);

impl fmt::Debug for CodeHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| (k.as_str(), "<redacted>")))
            .finish()
    }
}

impl CodeHeaders {
    /// The headers of `pairs`, in order, a later name replacing an earlier one.
    ///
    /// # Errors
    /// [`InitError::Setting`] naming the header whose name or value is not valid HTTP.
    pub(crate) fn new(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, InitError> {
        let mut out: Vec<(http::HeaderName, http::HeaderValue)> = Vec::new();
        for (k, v) in pairs {
            let name = http::HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| {
                InitError::Setting(format!(
                    "export header name {k:?} is not a valid HTTP header name (letters, digits \
                     and -); check Builder::with_header or the preset"
                ))
            })?;
            let mut value = http::HeaderValue::from_str(v.trim()).map_err(|_| {
                InitError::Setting(format!(
                    "the value of export header {name} is not a valid HTTP header value \
                     (visible ASCII; percent-encode anything else); it is not shown here"
                ))
            })?;
            value.set_sensitive(true);
            out.retain(|(n, _)| *n != name);
            out.push((name, value));
        }
        Ok(CodeHeaders(out.into()))
    }

    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Puts these headers on `headers`, replacing any of the same name.
    #[cfg(any(test, feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn apply(&self, headers: &mut http::HeaderMap) {
        for (k, v) in self.0.iter() {
            headers.insert(k.clone(), v.clone());
        }
    }

    /// A gRPC interceptor putting these headers on each export last (after the
    /// environment's, which opentelemetry-otlp adds first).
    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn interceptor(
        &self,
    ) -> impl tonic::service::Interceptor + Clone + Send + Sync + 'static {
        let headers = self.clone();
        move |mut req: tonic::Request<()>| {
            let mut map = std::mem::take(req.metadata_mut()).into_headers();
            headers.apply(&mut map);
            *req.metadata_mut() = tonic::metadata::MetadataMap::from_headers(map);
            Ok(req)
        }
    }
}

/// The OTLP/HTTP client: reqwest (with the request timeout set: opentelemetry-otlp's own
/// timeout does not bound a request it hands to a given client), putting the code's headers
/// on each request last.
#[cfg(feature = "otlp-http")]
#[derive(Debug)]
pub(crate) struct HeadersLast {
    pub(crate) client: reqwest::Client,
    pub(crate) headers: CodeHeaders,
}

#[cfg(feature = "otlp-http")]
#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HeadersLast {
    async fn send_bytes(
        &self,
        mut request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        self.headers.apply(request.headers_mut());
        self.client.send_bytes(request).await
    }
}

/// The export request timeout: `code`, else the first of `vars` set to a timeout
/// (milliseconds, as the OpenTelemetry specification has it), else 10 s. A variable set to
/// something else is warned about once on stderr and ignored (the specification's rule for a
/// malformed value): the next one, else the default, is used.
pub(crate) fn export_timeout(code: Option<Duration>, vars: &[&'static str]) -> Duration {
    if let Some(t) = code {
        return t;
    }
    let (timeout, warnings) = timeout_from_vars(vars, crate::init::env);
    crate::init::warn_env_each(&warnings);
    timeout
}

/// [`export_timeout`] of the variables read by `get` (an empty value is as unset: the
/// specification, "Parsing empty value": a compose file's `OTEL_EXPORTER_OTLP_TIMEOUT=`
/// failed the start), and the warnings for the variables ignored.
fn timeout_from_vars(
    vars: &[&'static str],
    get: impl Fn(&str) -> Option<String>,
) -> (Duration, Vec<String>) {
    crate::init::first_valid(
        vars,
        get,
        parse_positive_millis,
        |t| format!("{} ms", t.as_millis()),
        DEFAULT_EXPORT_TIMEOUT,
        "a timeout",
        "write whole milliseconds above 0 (10000 for 10 s)",
    )
}

/// A timeout or interval variable's value: whole milliseconds above 0.
pub(crate) fn parse_positive_millis(v: &str) -> Option<Duration> {
    match v.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
        _ => None,
    }
}

/// The OTLP exporter's request timeout when none is set (the specification's default).
pub(crate) const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_headers_replace_earlier_ones_whatever_the_case_and_debug_hides_values() {
        let h = CodeHeaders::new([
            ("Authorization".to_owned(), "Basic preset".to_owned()),
            ("x-tenant".to_owned(), "a".to_owned()),
            ("authorization".to_owned(), "Bearer code".to_owned()),
        ])
        .unwrap_or_default();
        let mut map = http::HeaderMap::new();
        map.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer env"),
        );
        h.apply(&mut map);
        assert_eq!(map.get_all("authorization").iter().count(), 1);
        assert_eq!(map["authorization"], "Bearer code");
        assert_eq!(map["x-tenant"], "a");
        let debug = format!("{h:?}");
        assert!(
            !debug.contains("code") && !debug.contains("preset"),
            "{debug}"
        );
        assert!(debug.contains("authorization"), "{debug}");
    }

    #[test]
    fn a_header_that_is_not_http_is_a_clear_error_without_its_value() {
        let bad_name = CodeHeaders::new([("bad name".to_owned(), "v".to_owned())]);
        assert!(matches!(bad_name, Err(InitError::Setting(m)) if m.contains("bad name")));
        let bad_value = CodeHeaders::new([("x-key".to_owned(), "sk-\nsecret".to_owned())]);
        match bad_value {
            Err(InitError::Setting(m)) => {
                assert!(m.contains("x-key") && !m.contains("secret"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_timeout_is_the_codes_else_the_variables_in_milliseconds_else_ten_seconds() {
        let d = Duration::from_millis(1500);
        assert_eq!(export_timeout(Some(d), &[]), d);
        assert_eq!(
            export_timeout(None, &["LLMTEL_TEST_NO_SUCH_TIMEOUT_VAR"]),
            DEFAULT_EXPORT_TIMEOUT
        );
        assert_eq!(
            parse_positive_millis(" 2500 "),
            Some(Duration::from_millis(2500))
        );
        for bad in ["0", "10s", "-1", "1.5", "", "x"] {
            assert_eq!(parse_positive_millis(bad), None, "{bad:?}");
        }
    }

    /// A timeout variable that is not one is ignored with a warning naming it, its value,
    /// the timeout used and what to write: the next variable's, else the default (it failed
    /// `init()`; the specification says to warn and ignore).
    #[test]
    fn a_timeout_variable_that_is_not_one_is_warned_about_and_ignored() {
        const S: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
        const G: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
        let with = |set: &'static [(&'static str, &'static str)]| {
            timeout_from_vars(&[S, G], move |k| {
                set.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let (t, w) = with(&[(G, "x")]);
        assert_eq!(t, DEFAULT_EXPORT_TIMEOUT);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains(G)
                && w[0].contains("\"x\"")
                && w[0].contains("ignored")
                && w[0].contains("10000 ms (the default)")
                && w[0].contains("whole milliseconds"),
            "{w:?}"
        );
        let (t, w) = with(&[(S, "5s"), (G, "2500")]);
        assert_eq!(t, Duration::from_millis(2500));
        assert!(
            w.len() == 1 && w[0].contains(S) && w[0].contains("2500 ms (from"),
            "{w:?}"
        );
        let (t, w) = with(&[(S, "-1"), (G, "0")]);
        assert_eq!((t, w.len()), (DEFAULT_EXPORT_TIMEOUT, 2), "{w:?}");
        let (t, w) = with(&[(S, "3000"), (G, "x")]);
        assert_eq!(t, Duration::from_millis(3000));
        assert!(w.is_empty(), "{w:?}");
    }
}
