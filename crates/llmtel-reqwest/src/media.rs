//! Requests to the media endpoints (images, speech, transcription): the fields their
//! prices depend on, read from JSON or `multipart/form-data` bodies, including a multipart
//! body that reqwest streams (a `reqwest::multipart::Form`), read on its way out.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::request::RequestInfo;

/// Longest multipart field value read (`model`, `stream`); a longer one is not read.
const MAX_FIELD_VALUE: usize = 256;
/// Bytes kept between two frames of a streamed body, so a field split across frames is
/// still found.
const CARRY: usize = 512;

/// The value of the text field `name` of a `multipart/form-data` body, if it is in `body`
/// whole and at most [`MAX_FIELD_VALUE`] bytes of UTF-8.
pub(crate) fn multipart_field<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    let needle = format!("name=\"{name}\"");
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&body[from..], needle.as_bytes()) {
        let start = from + at;
        // The needle must be a parameter of a Content-Disposition header, not text inside
        // an uploaded file that happens to look like one.
        let line_start = memchr::memrchr(b'\n', &body[..start]).map_or(0, |i| i + 1);
        let header = &body[line_start..start];
        from = start + needle.len();
        if !header
            .to_ascii_lowercase()
            .starts_with(b"content-disposition:")
        {
            continue;
        }
        let rest = &body[from..];
        // The parameter must end there (`name="model"` and not `name="model_x"` is already
        // guaranteed by the closing quote).
        let head_end = memchr::memmem::find(rest, b"\r\n\r\n")?;
        let value = &rest[head_end + 4..];
        let end = memchr::memmem::find(value, b"\r\n")?;
        if end > MAX_FIELD_VALUE {
            return None;
        }
        return std::str::from_utf8(&value[..end]).ok();
    }
    None
}

/// The parameters of a multipart request body (`model`, `stream`), or `None` when it names
/// no model.
pub(crate) fn multipart_info(body: &[u8]) -> Option<RequestInfo> {
    let model = multipart_field(body, "model")?;
    Some(RequestInfo {
        model: Some(model.to_owned()),
        stream: multipart_field(body, "stream").is_some_and(|s| s.trim() == "true"),
        ..RequestInfo::default()
    })
}

/// The characters of a text-to-speech request's `input` (what tts-1 bills), if the body is
/// a JSON object with a string `input`.
pub(crate) fn speech_characters(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Speech<'a> {
        #[serde(borrow, default)]
        input: Option<std::borrow::Cow<'a, str>>,
    }
    let s: Speech<'_> = serde_json::from_slice(body).ok()?;
    s.input.map(|i| i.chars().count() as u64)
}

/// The model a streamed multipart body names, once the body has gone past it.
pub(crate) type ScannedModel = Arc<OnceLock<String>>;

/// A streamed request body that passes every frame through unchanged and looks for the
/// multipart `model` field on the way.
pub(crate) struct ScanBody {
    inner: reqwest::Body,
    carry: Vec<u8>,
    found: ScannedModel,
}

impl ScanBody {
    pub(crate) fn new(inner: reqwest::Body) -> (Self, ScannedModel) {
        let found = ScannedModel::default();
        (
            ScanBody {
                inner,
                carry: Vec::new(),
                found: found.clone(),
            },
            found,
        )
    }

    fn scan(&mut self, data: &[u8]) {
        if self.found.get().is_some() {
            return;
        }
        // The tail of the previous frames and this one: a field split across frames is
        // seen whole (the field, its headers and value fit in CARRY bytes).
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(data);
        if let Some(model) = multipart_field(&window, "model") {
            let _ = self.found.set(llmtel::cap_string(model.to_owned()));
            return;
        }
        let keep = window.len().min(CARRY);
        window.drain(..window.len() - keep);
        self.carry = window;
    }
}

impl HttpBody for ScanBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.scan(data);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF name=\"model\"\r\n\r\nfake\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n--XyZ--\r\n";

    #[test]
    fn fields_are_read_from_their_headers_not_from_file_bytes() {
        assert_eq!(multipart_field(FORM, "model"), Some("whisper-1"));
        assert_eq!(multipart_field(FORM, "stream"), Some("true"));
        assert_eq!(multipart_field(FORM, "language"), None);
        let info = multipart_info(FORM).unwrap();
        assert_eq!(info.model.as_deref(), Some("whisper-1"));
        assert!(info.stream);
        assert_eq!(multipart_info(b"{\"model\":\"x\"}"), None);
    }

    #[test]
    fn a_streamed_body_finds_the_model_whatever_the_frame_boundaries() {
        for size in [1, 2, 7, 33, 64, FORM.len()] {
            let (mut body, found) = ScanBody::new(reqwest::Body::from(""));
            for chunk in FORM.chunks(size) {
                body.scan(chunk);
            }
            assert_eq!(found.get().map(String::as_str), Some("whisper-1"), "{size}");
            assert!(body.carry.len() <= CARRY + size);
        }
    }

    #[test]
    fn speech_input_is_counted_in_characters() {
        assert_eq!(
            speech_characters(
                br#"{"model":"tts-1","input":"h\u00e9llo w\u00f6rld","voice":"alloy"}"#
            ),
            Some(11)
        );
        assert_eq!(speech_characters(br#"{"model":"tts-1"}"#), None);
        assert_eq!(speech_characters(b"not json"), None);
    }
}
