//! An incremental Server-Sent Events parser (the WHATWG `text/event-stream` grammar) that
//! takes the body in whatever chunks the network delivers and never holds more than one
//! event.
//!
//! ```
//! use llmtel_reqwest::sse::SseParser;
//!
//! let mut parser = SseParser::new();
//! let mut events = Vec::new();
//! for chunk in [&b"event: ping\nda"[..], b"ta: {\"a\"", b":1}\n\n"] {
//!     parser.feed(chunk, |e| events.push((e.event.to_owned(), e.data.to_vec())));
//! }
//! assert_eq!(events, vec![("ping".to_owned(), b"{\"a\":1}".to_vec())]);
//! ```

/// Longest line or event kept, in bytes; longer ones are dropped and counted in
/// [`SseParser::oversized`], so memory stays bounded whatever the peer sends.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, Copy)]
pub struct SseEvent<'a> {
    /// The `event:` field, `""` when absent (the spec's default type is `message`).
    pub event: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
}

/// Incremental SSE parser: feed it bytes, it calls back once per complete event.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    event: String,
    has_data: bool,
    skip_lf: bool,
    line_too_long: bool,
    oversized: u64,
    at_start: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser {
            line: Vec::new(),
            data: Vec::new(),
            event: String::new(),
            has_data: false,
            skip_lf: false,
            line_too_long: false,
            oversized: 0,
            at_start: true,
        }
    }
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events or lines dropped because they exceeded [`MAX_EVENT_BYTES`].
    pub fn oversized(&self) -> u64 {
        self.oversized
    }

    /// Whether bytes of an unfinished event or line are pending (the stream ended inside
    /// an event if this is true at its end).
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    /// Feeds the next bytes of the stream; `on_event` runs for each event completed by them.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        if bytes.is_empty() {
            return;
        }
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while !bytes.is_empty() {
            if let Some(rest) = self.single_line_event(bytes, &mut on_event) {
                bytes = rest;
                continue;
            }
            match memchr::memchr2(b'\n', b'\r', bytes) {
                Some(i) => {
                    let is_cr = bytes[i] == b'\r';
                    let head = &bytes[..i];
                    bytes = &bytes[i + 1..];
                    if is_cr {
                        if let Some(rest) = bytes.strip_prefix(b"\n") {
                            bytes = rest;
                        } else if bytes.is_empty() {
                            // `\r` at the end of a chunk: a `\n` may open the next one.
                            self.skip_lf = true;
                        }
                    }
                    if self.line.is_empty() && !self.line_too_long {
                        if head.len() > MAX_EVENT_BYTES {
                            self.oversized += 1;
                        } else {
                            self.process_line_owned(head, &mut on_event);
                        }
                    } else if self.line_too_long {
                        // The rest of a dropped line.
                        self.push_line(head);
                    } else {
                        self.push_line(head);
                        let line = std::mem::take(&mut self.line);
                        self.process_line_owned(&line, &mut on_event);
                        self.line = line;
                        self.line.clear();
                    }
                    self.line_too_long = false;
                }
                None => {
                    self.push_line(bytes);
                    break;
                }
            }
        }
    }

    /// The common case, without copying: between events, `bytes` opens with a whole
    /// `data:` line followed by an empty line (`\n\n`). Dispatches that event from the
    /// input and returns the bytes after it; `None` leaves everything to the general path,
    /// which would dispatch the same event.
    fn single_line_event<'b>(
        &mut self,
        bytes: &'b [u8],
        on_event: &mut impl FnMut(SseEvent<'_>),
    ) -> Option<&'b [u8]> {
        if self.at_start
            || self.has_data
            || self.line_too_long
            || !self.line.is_empty()
            || !bytes.starts_with(b"data:")
        {
            return None;
        }
        let end = memchr::memchr2(b'\n', b'\r', bytes)?;
        if end > MAX_EVENT_BYTES || bytes[end] != b'\n' || bytes.get(end + 1) != Some(&b'\n') {
            return None;
        }
        let value = &bytes[5..end];
        on_event(SseEvent {
            event: &self.event,
            data: value.strip_prefix(b" ").unwrap_or(value),
        });
        self.event.clear();
        Some(&bytes[end + 2..])
    }

    fn push_line(&mut self, bytes: &[u8]) {
        if self.line_too_long {
            return;
        }
        if self.line.len() + bytes.len() > MAX_EVENT_BYTES {
            self.line.clear();
            self.line_too_long = true;
            self.oversized += 1;
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn process_line_owned(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.line_too_long {
            return;
        }
        let mut line = line;
        if self.at_start {
            // A UTF-8 byte order mark may open the stream.
            self.at_start = false;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            if self.has_data {
                on_event(SseEvent {
                    event: &self.event,
                    data: &self.data,
                });
            }
            self.data.clear();
            self.event.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                if self.data.len() + value.len() > MAX_EVENT_BYTES {
                    self.oversized += 1;
                    self.data.clear();
                    self.has_data = false;
                    return;
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&String::from_utf8_lossy(value));
            }
            _ => {} // id, retry and unknown fields carry nothing we record
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| {
                out.push((
                    e.event.to_owned(),
                    String::from_utf8_lossy(e.data).into_owned(),
                ))
            });
        }
        out
    }

    #[test]
    fn line_endings_comments_and_multiline_data() {
        let got = parse(&[b": keep-alive\r\nevent: a\r\ndata: 1\r\ndata:2\r\r\ndata: x\n\n"]);
        assert_eq!(
            got,
            vec![("a".into(), "1\n2".into()), (String::new(), "x".into())]
        );
    }

    #[test]
    fn cr_lf_split_across_chunks_is_one_line_end() {
        let got = parse(&[b"data: 1\r", b"\n\r", b"\ndata: 2\n\n"]);
        assert_eq!(
            got,
            vec![(String::new(), "1".into()), (String::new(), "2".into())]
        );
    }

    #[test]
    fn bom_and_field_without_colon() {
        let got = parse(&[b"\xEF\xBB", b"\xBFdata\n\ndata: z\n\n"]);
        assert_eq!(
            got,
            vec![(String::new(), String::new()), (String::new(), "z".into())]
        );
    }

    #[test]
    fn unfinished_event_is_not_dispatched() {
        let mut p = SseParser::new();
        let mut n = 0;
        p.feed(b"data: {\"a\":", |_| n += 1);
        assert_eq!(n, 0);
        assert!(p.has_pending());
    }
}
