//! The connection to the downstream: one encoded OTLP request sent as is over gRPC or
//! HTTP/protobuf, and sent again as is on a retry (nothing is copied or re-encoded).

use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes};
use llmtel::tls::OtlpTls;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::Channel;

use crate::CollectorError;
use crate::config::{Endpoint, ForwardHeaders, Protocol};

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How an `https://` downstream is trusted (llmtel's rules for an OTLP client): the
/// platform's roots and the CA file of `[forward] ca_file`, else
/// `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` / `OTEL_EXPORTER_OTLP_CERTIFICATE`.
pub(crate) fn tls(
    endpoint: &Endpoint,
    explicit: Option<&std::path::Path>,
) -> Result<OtlpTls, CollectorError> {
    OtlpTls::resolve(
        Some(&endpoint.0),
        explicit.map(|p| (p, "[forward] ca_file")),
        &[
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ],
        "[forward] ca_file or OTEL_EXPORTER_OTLP_CERTIFICATE",
    )
    .map_err(CollectorError::Certificate)
}

/// One downstream connection.
#[derive(Clone, Debug)]
pub(crate) enum Downstream {
    Grpc {
        channel: Channel,
        headers: MetadataMap,
        timeout: Duration,
        gzip: bool,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: reqwest::header::HeaderMap,
        gzip: bool,
    },
}

impl Downstream {
    /// Connects lazily to `endpoint` (inside a Tokio runtime), with the headers of
    /// `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS` and `extra` over them.
    pub(crate) fn new(
        endpoint: &Endpoint,
        protocol: Protocol,
        timeout: Duration,
        extra: &ForwardHeaders,
        tls: &OtlpTls,
        gzip: bool,
    ) -> Result<Self, CollectorError> {
        // The errors may quote the endpoint, which may carry credentials: say which setting
        // to fix instead.
        let bad = || CollectorError::Exporter {
            endpoint: format!("{endpoint:?}"),
        };
        let mut pairs = Vec::new();
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Ok(v) = std::env::var(var) {
                merge(&mut pairs, parse_headers(&v));
            }
        }
        merge(&mut pairs, extra.0.iter().cloned());
        Ok(match protocol {
            Protocol::Grpc => {
                let mut headers = MetadataMap::new();
                for (k, v) in pairs {
                    let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| bad())?;
                    headers.insert(key, MetadataValue::try_from(v.as_str()).map_err(|_| bad())?);
                }
                let mut channel = Channel::from_shared(endpoint.0.clone()).map_err(|_| bad())?;
                if let Some(config) = tls.tonic().map_err(CollectorError::Certificate)? {
                    channel = channel.tls_config(config).map_err(|e| {
                        CollectorError::Certificate(format!(
                            "cannot set up TLS to the gRPC downstream: {e}; check the CA file"
                        ))
                    })?;
                }
                let channel = channel.timeout(timeout).connect_lazy();
                Downstream::Grpc {
                    channel,
                    headers,
                    timeout,
                    gzip,
                }
            }
            Protocol::HttpProtobuf => {
                let mut headers = reqwest::header::HeaderMap::new();
                headers.insert(
                    reqwest::header::CONTENT_TYPE,
                    reqwest::header::HeaderValue::from_static("application/x-protobuf"),
                );
                for (k, v) in pairs {
                    let name =
                        reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad())?;
                    let value = reqwest::header::HeaderValue::from_str(&v).map_err(|_| bad())?;
                    headers.insert(name, value);
                }
                if gzip {
                    headers.insert(
                        reqwest::header::CONTENT_ENCODING,
                        reqwest::header::HeaderValue::from_static("gzip"),
                    );
                }
                // No redirect is followed: a 301/302/303 would turn the POST into a GET
                // without its body (and a 2xx answer to it count spans forwarded that were
                // never sent), a 307/308 would send the spans and the forward headers
                // (credentials) to whatever host the answer names. A 3xx is a refusal.
                let client = tls
                    .reqwest_builder()
                    .map_err(CollectorError::Certificate)?
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(timeout)
                    .build()
                    .map_err(|_| bad())?;
                Downstream::Http {
                    client,
                    // The traces URL itself ([`crate::Config`] resolved it).
                    url: endpoint.0.clone(),
                    headers,
                    gzip,
                }
            }
        })
    }

    /// The body to send for one encoded `ExportTraceServiceRequest`: gzip-compressed once
    /// here for an HTTP downstream that takes gzip (retries resend it as is; over gRPC,
    /// tonic compresses each message it sends).
    pub(crate) fn body(&self, request: Bytes) -> Bytes {
        match self {
            Downstream::Http { gzip: true, .. } => gzip_body(&request),
            _ => request,
        }
    }

    /// Sends one body made by [`Downstream::body`], with `hops` as its
    /// [`crate::hop::HEADER`]: `Ok` with the number of spans the downstream rejected in a
    /// partial success (usually 0), or why it took none.
    pub(crate) async fn send(&self, body: Bytes, hops: &str) -> Result<u64, Refusal> {
        match self {
            Downstream::Grpc {
                channel,
                headers,
                timeout,
                gzip,
            } => {
                let mut grpc = tonic::client::Grpc::new(channel.clone());
                if *gzip {
                    grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                grpc.ready()
                    .await
                    .map_err(|_| Refusal::Retry { after: None })?;
                let mut req = tonic::Request::new(body);
                *req.metadata_mut() = headers.clone();
                if let Ok(v) = MetadataValue::try_from(hops) {
                    req.metadata_mut().insert(crate::hop::HEADER, v);
                }
                req.set_timeout(*timeout);
                grpc.unary::<_, ExportTraceServiceResponse, _>(
                    req,
                    PathAndQuery::from_static(EXPORT),
                    Raw,
                )
                .await
                .map(|r| rejected(&r.into_inner()))
                .map_err(|s| grpc_refusal(&s))
            }
            Downstream::Http {
                client,
                url,
                headers,
                gzip: _,
            } => {
                let mut r = client
                    .post(url)
                    .headers(headers.clone())
                    .header(crate::hop::HEADER, hops)
                    .body(body)
                    .send()
                    .await
                    .map_err(|_| Refusal::Retry { after: None })?;
                let status = r.status().as_u16();
                if r.status().is_success() {
                    // A body that does not read or decode says nothing was rejected.
                    let body = r.bytes().await.unwrap_or_default();
                    return Ok(ExportTraceServiceResponse::decode(body)
                        .map(|r| rejected(&r))
                        .unwrap_or(0));
                }
                match status {
                    300..=399 => Err(Refusal::Final(format!(
                        "the downstream {:?} answered HTTP {status} redirecting to {}: the \
                         collector does not follow redirects (the spans would be lost or sent \
                         with the forward headers to another address); set the forward endpoint \
                         to the final URL",
                        redacted(url),
                        r.headers()
                            .get(reqwest::header::LOCATION)
                            .and_then(|v| v.to_str().ok())
                            .map_or_else(|| "nowhere".to_owned(), |l| format!("{:?}", redacted(l)))
                    ))),
                    // What OTLP/HTTP says to retry, after `Retry-After` when given.
                    429 | 502 | 503 | 504 => Err(Refusal::Retry {
                        after: r
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(|s| Duration::from_secs(s.min(3600))),
                    }),
                    _ => Err(Refusal::Final(format!(
                        "the downstream {:?} refused a request for good: HTTP {status}{} \
                         (not retried, as OTLP says; check the forward endpoint, headers and \
                         the downstream's limits)",
                        redacted(url),
                        // The first chunk only: an error page can be big.
                        reason(r.chunk().await.ok().flatten().unwrap_or_default())
                    ))),
                }
            }
        }
    }
}

/// Why the downstream took none of a request's spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Worth sending again: not reachable, timed out, or an error OTLP says to retry (HTTP
    /// 429/502/503/504; gRPC `UNAVAILABLE`, `DEADLINE_EXCEEDED`, ..., and
    /// `RESOURCE_EXHAUSTED` with a `RetryInfo`); `after` when the downstream said how long to
    /// wait (HTTP `Retry-After` in seconds, gRPC `RetryInfo`).
    Retry { after: Option<Duration> },
    /// Refused for good: an error OTLP says must not be retried (HTTP 400, 401, 403, 413,
    /// ...; gRPC `INVALID_ARGUMENT`, `UNAUTHENTICATED`, `PERMISSION_DENIED`, ...), or a
    /// redirect (HTTP 3xx, never followed). Sending it again would only hold the queue's
    /// room. With what happened and what to do ([`crate::Collector::last_error`]).
    Final(String),
}

/// The refusal a gRPC status means, by the OTLP specification's list of retryable codes. A
/// status tonic made from a transport error (it has a source: the connection broke, the
/// stream was reset) is retried whatever its code: the downstream never answered.
fn grpc_refusal(s: &tonic::Status) -> Refusal {
    use tonic::Code;
    let after = crate::rpc::retry_delay(s.details());
    if std::error::Error::source(s).is_some() {
        return Refusal::Retry { after };
    }
    match s.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Refusal::Retry { after },
        Code::ResourceExhausted if after.is_some() => Refusal::Retry { after },
        code => Refusal::Final(format!(
            "the gRPC downstream refused a request for good: {code:?}: {} (not retried, as \
             OTLP says; check the forward endpoint, headers and the downstream's limits)",
            clip(s.message())
        )),
    }
}

/// At most 300 characters of a downstream's message (and the rest of a redaction marker
/// the cut falls in), on one line, redacted ([`llmtel::redact`]) before it is cut: a key
/// cut at the 300th character would be too short to be recognised as one.
fn clip(message: &str) -> String {
    use llmtel::redact::REDACTED;
    let text = llmtel::redact::redact(message);
    let mut end = text.char_indices().nth(300).map_or(text.len(), |(i, _)| i);
    if let Some(start) = text[..end].rfind('[') {
        if text[start..].starts_with(REDACTED) {
            end = end.max(start + REDACTED.len());
        }
    }
    let one_line: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one_line.trim().to_owned()
}

/// `: ` and the text of an HTTP error body (a `google.rpc.Status`'s message, or the text as
/// is), clipped; nothing for an empty one.
fn reason(body: Bytes) -> String {
    let text = crate::rpc::message_of(&body)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    let text = clip(&text);
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// A URL without what may carry credentials (user info, query, fragment).
fn redacted(url: &str) -> String {
    if url.contains("://") {
        format!("{:?}", crate::config::Endpoint(url.to_owned()))
            .trim_matches('"')
            .to_owned()
    } else {
        url.split(['?', '#']).next().unwrap_or_default().to_owned()
    }
}

/// The spans a response's partial success says were rejected.
fn rejected(r: &ExportTraceServiceResponse) -> u64 {
    r.partial_success
        .as_ref()
        .map_or(0, |p| p.rejected_spans.max(0) as u64)
}

/// The `key=value,key=value` list of `OTEL_EXPORTER_OTLP_HEADERS`, values percent-decoded.
fn parse_headers(v: &str) -> impl Iterator<Item = (String, String)> + '_ {
    v.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), percent_decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
}

/// Adds `new` to `pairs`, each replacing a header of the same name.
fn merge(pairs: &mut Vec<(String, String)>, new: impl Iterator<Item = (String, String)>) {
    for (k, v) in new {
        pairs.retain(|(old, _)| !old.eq_ignore_ascii_case(&k));
        pairs.push((k, v));
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A gRPC codec that sends already encoded bytes and decodes the response (an
/// `ExportTraceServiceResponse`: its partial success counts the spans rejected).
#[derive(Clone, Copy, Debug, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        // A response that does not decode says nothing was rejected.
        let r = ExportTraceServiceResponse::decode(&mut *src).unwrap_or_default();
        src.advance(src.remaining());
        Ok(Some(r))
    }
}

/// `body` gzip-compressed (the default level: what the OpenTelemetry SDKs send).
fn gzip_body(body: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing to a `Vec` cannot fail.
    let _ = enc.write_all(body);
    Bytes::from(enc.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::{merge, parse_headers, percent_decode};

    #[test]
    fn later_headers_replace_earlier_ones_of_the_same_name() {
        let mut pairs = Vec::new();
        merge(
            &mut pairs,
            parse_headers("x-tenant=acme, X-Scope-OrgID=team%20a,bad,=x"),
        );
        merge(&mut pairs, parse_headers("x-scope-orgid=b"));
        assert_eq!(
            pairs,
            [
                ("x-tenant".into(), "acme".into()),
                ("x-scope-orgid".into(), "b".into())
            ]
        );
    }

    #[test]
    fn a_message_is_clipped_to_300_characters_redacted_first() {
        use super::clip;
        // A key cut at the 300th character is redacted whole, and so is its marker.
        let token = "Ab3dEf6hJ9".repeat(4);
        let message = format!("{}Bearer {token} rest", "x ".repeat(143));
        let clipped = clip(&message);
        assert!(clipped.ends_with("Bearer [REDACTED]"), "{clipped}");
        assert!(!clipped.contains("Ab3d"), "{clipped}");
        // Otherwise, 300 characters on one line.
        let long = format!("a\nb{}", "é".repeat(400));
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), 300);
        assert!(clipped.starts_with("a b"), "{clipped}");
    }

    #[test]
    fn header_values_are_percent_decoded() {
        assert_eq!(percent_decode("team%20a"), "team a");
        assert_eq!(percent_decode("Basic%3Dx%"), "Basic=x%");
        assert_eq!(percent_decode("plain"), "plain");
    }
}
