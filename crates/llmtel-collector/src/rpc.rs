//! The OTLP error details both ways: the `google.rpc.Status` an OTLP/HTTP error body carries
//! and the `RetryInfo` a gRPC status may carry (how long to wait before sending again).

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;

const RETRY_INFO: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// `google.rpc.Status`: the body of an OTLP/HTTP error and the `grpc-status-details-bin` of
/// a gRPC one.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The delay of the `RetryInfo` in a gRPC status's details (`tonic::Status::details`), if
/// it has one (negative parts read as zero; at most an hour).
pub(crate) fn retry_delay(details: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(details).ok()?;
    let info = status.details.iter().find(|a| a.type_url == RETRY_INFO)?;
    let d = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    let d = Duration::from_secs(d.seconds.max(0) as u64)
        + Duration::from_nanos(u64::from(d.nanos.max(0) as u32));
    Some(d.min(Duration::from_secs(3600)))
}

/// The gRPC status a sender gets when the queue is full: `UNAVAILABLE` (which OTLP clients
/// retry) with a `RetryInfo` saying when. `RESOURCE_EXHAUSTED` would be retried only by
/// clients that read a `RetryInfo`, and dropped by the others.
pub(crate) fn unavailable_retry_after(message: &str, delay: Duration) -> tonic::Status {
    let info = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    let details = RpcStatus {
        code: tonic::Code::Unavailable as i32,
        message: message.to_owned(),
        details: vec![Any {
            type_url: RETRY_INFO.to_owned(),
            value: info.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(
        tonic::Code::Unavailable,
        message,
        Bytes::from(details.encode_to_vec()),
    )
}

/// The body of an OTLP/HTTP error response: a `google.rpc.Status`, protobuf-encoded or as
/// JSON (the request's encoding), with its content type.
pub(crate) fn error_body(json: bool, code: tonic::Code, message: &str) -> (&'static str, Vec<u8>) {
    if json {
        let body = serde_json::json!({ "code": code as i32, "message": message });
        ("application/json", body.to_string().into_bytes())
    } else {
        let status = RpcStatus {
            code: code as i32,
            message: message.to_owned(),
            details: Vec::new(),
        };
        ("application/x-protobuf", status.encode_to_vec())
    }
}

/// The message of a protobuf-encoded `google.rpc.Status` (an OTLP/HTTP error body), when
/// the body is one with a message.
pub(crate) fn message_of(body: &[u8]) -> Option<String> {
    RpcStatus::decode(body)
        .ok()
        .map(|s| s.message)
        .filter(|m| !m.is_empty())
}

/// The message of a protobuf-encoded `google.rpc.Status` (an OTLP/HTTP error body).
#[cfg(test)]
pub(crate) fn status_message(body: &[u8]) -> Option<(i32, String)> {
    RpcStatus::decode(body).ok().map(|s| (s.code, s.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_queue_status_carries_its_retry_delay() {
        let s = unavailable_retry_after("full", Duration::from_millis(1500));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(retry_delay(s.details()), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn details_without_retry_info_or_not_a_status_give_no_delay() {
        let plain = RpcStatus {
            code: 8,
            message: "x".into(),
            details: vec![Any {
                type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                value: vec![1, 2, 3],
            }],
        };
        assert_eq!(retry_delay(&plain.encode_to_vec()), None);
        assert_eq!(retry_delay(b"\xff\xff not protobuf"), None);
        assert_eq!(retry_delay(&[]), None);
    }

    #[test]
    fn an_absurd_retry_delay_is_capped_at_an_hour() {
        let s = RpcStatus {
            code: 14,
            message: String::new(),
            details: vec![Any {
                type_url: RETRY_INFO.into(),
                value: RetryInfo {
                    retry_delay: Some(ProtoDuration {
                        seconds: i64::MAX,
                        nanos: -5,
                    }),
                }
                .encode_to_vec(),
            }],
        };
        assert_eq!(
            retry_delay(&s.encode_to_vec()),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn error_bodies_are_a_status_in_the_request_encoding() {
        let (ct, body) = error_body(false, tonic::Code::InvalidArgument, "bad");
        assert_eq!(ct, "application/x-protobuf");
        assert_eq!(status_message(&body), Some((3, "bad".into())));
        let (ct, body) = error_body(true, tonic::Code::Unavailable, "full \"q\"");
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(v["code"], 14);
        assert_eq!(v["message"], "full \"q\"");
    }
}
