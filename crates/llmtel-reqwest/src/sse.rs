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

/// Longest line or event kept, in bytes; longer ones are counted in
/// [`SseParser::oversized`] and an event whose data outgrows it is dispatched with only the
/// last [`TAIL_BYTES`] of its data ([`SseEvent::truncated`]), so memory stays bounded
/// whatever the peer sends.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// How much of the end of an oversized event's data is kept: where the providers put the
/// usage (OpenAI's `response.completed` repeats every output, generated images included,
/// before it).
pub const TAIL_BYTES: usize = 64 * 1024;

/// Capacity a buffer keeps once empty; a larger one (an event or line over 64 KiB) is given
/// back, so that a long stream holds only what its current event needs.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Empties `v`, giving its memory back if it outgrew [`KEEP_CAPACITY`].
fn clear_trimmed(v: &mut Vec<u8>) {
    v.clear();
    if v.capacity() > KEEP_CAPACITY {
        *v = Vec::new();
    }
}

/// One dispatched event.
#[derive(Debug, Clone, Copy)]
pub struct SseEvent<'a> {
    /// The `event:` field, `""` when absent (the spec's default type is `message`).
    pub event: &'a str,
    /// The `data:` lines joined with `\n`; only their last [`TAIL_BYTES`] when
    /// `truncated`.
    pub data: &'a [u8],
    /// The event's data was longer than [`MAX_EVENT_BYTES`]: `data` is its end.
    pub truncated: bool,
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
    /// The line being dropped for its length is a `data:` line: its bytes go to `tail`.
    long_line_is_data: bool,
    /// The event in progress outgrew [`MAX_EVENT_BYTES`]: its data is kept in `tail`.
    truncated: bool,
    /// The end of a truncated event's data (at most twice [`TAIL_BYTES`]; the last
    /// [`TAIL_BYTES`] are dispatched).
    tail: Vec<u8>,
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
            long_line_is_data: false,
            truncated: false,
            tail: Vec::new(),
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

    /// Events or lines that exceeded [`MAX_EVENT_BYTES`] (an event's data is then
    /// dispatched truncated; any other line is dropped).
    pub fn oversized(&self) -> u64 {
        self.oversized
    }

    /// Whether bytes of an unfinished event or line are pending (the stream ended inside
    /// an event if this is true at its end).
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.truncated
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
                            self.start_long_line(head);
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
                        clear_trimmed(&mut self.line);
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
            || self.truncated
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
            truncated: false,
        });
        self.event.clear();
        Some(&bytes[end + 2..])
    }

    fn push_line(&mut self, bytes: &[u8]) {
        if self.line_too_long {
            if self.long_line_is_data {
                self.keep_tail(bytes);
            }
            return;
        }
        if self.line.len() + bytes.len() > MAX_EVENT_BYTES {
            let mut whole = std::mem::take(&mut self.line);
            whole.extend_from_slice(bytes);
            self.start_long_line(&whole);
            clear_trimmed(&mut whole);
            self.line = whole;
            self.line_too_long = true;
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    /// A line longer than [`MAX_EVENT_BYTES`] begins with `start`: counted, and when it is
    /// a `data:` line its value goes to the event's tail (the rest follows through
    /// [`push_line`](Self::push_line)).
    fn start_long_line(&mut self, start: &[u8]) {
        self.oversized += 1;
        let value = start.strip_prefix(b"data:");
        self.long_line_is_data = value.is_some();
        if let Some(v) = value {
            self.begin_truncated();
            self.keep_tail(v.strip_prefix(b" ").unwrap_or(v));
        }
    }

    /// The event in progress outgrows [`MAX_EVENT_BYTES`] with its next data line: its
    /// data so far moves to `tail`, followed by the line separator.
    fn begin_truncated(&mut self) {
        if self.truncated {
            self.keep_tail(b"\n");
            return;
        }
        self.truncated = true;
        self.tail.clear();
        if self.has_data {
            let data = std::mem::take(&mut self.data);
            self.keep_tail(&data);
            self.keep_tail(b"\n");
            self.data = data;
            clear_trimmed(&mut self.data);
        }
        self.has_data = false;
    }

    /// Appends to `tail`, keeping at least its last [`TAIL_BYTES`].
    fn keep_tail(&mut self, bytes: &[u8]) {
        if bytes.len() >= TAIL_BYTES {
            self.tail.clear();
            self.tail
                .extend_from_slice(&bytes[bytes.len() - TAIL_BYTES..]);
            return;
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * TAIL_BYTES {
            let cut = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..cut);
        }
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
            if self.truncated {
                on_event(SseEvent {
                    event: &self.event,
                    data: &self.tail[self.tail.len().saturating_sub(TAIL_BYTES)..],
                    truncated: true,
                });
            } else if self.has_data {
                on_event(SseEvent {
                    event: &self.event,
                    data: &self.data,
                    truncated: false,
                });
            }
            clear_trimmed(&mut self.data);
            self.event.clear();
            self.has_data = false;
            self.truncated = false;
            clear_trimmed(&mut self.tail);
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
                if self.truncated {
                    self.keep_tail(b"\n");
                    self.keep_tail(value);
                    return;
                }
                let sep = usize::from(self.has_data);
                if self.data.len() + sep + value.len() > MAX_EVENT_BYTES {
                    self.oversized += 1;
                    self.begin_truncated();
                    self.keep_tail(value);
                    return;
                }
                if self.has_data {
                    self.data.push(b'\n');
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

    /// Every event as (type, data, truncated), the stream fed in chunks of `step` bytes.
    fn parse_in(stream: &[u8], step: usize) -> Vec<(String, Vec<u8>, bool)> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in stream.chunks(step) {
            p.feed(c, |e| {
                out.push((e.event.to_owned(), e.data.to_vec(), e.truncated));
            });
        }
        assert!(!p.has_pending());
        out
    }

    #[test]
    fn an_event_over_the_limit_is_dispatched_with_the_end_of_its_data_however_split() {
        // A `response.completed` repeating 5 MB of image, its usage at the end.
        let usage = br#","usage":{"input_tokens":10,"output_tokens":1500}}}"#;
        let mut value = br#"{"type":"response.completed","response":{"output":""#.to_vec();
        value.extend(std::iter::repeat_n(b'A', 5_000_000));
        value.extend_from_slice(usage);
        let mut one_line = b"event: response.completed\ndata: ".to_vec();
        one_line.extend_from_slice(&value);
        one_line.extend_from_slice(b"\n\ndata: {\"next\":1}\n\n");
        let want_tail = value[value.len() - TAIL_BYTES..].to_vec();
        for step in [one_line.len(), 1 << 20, 7_777, 65_536] {
            let got = parse_in(&one_line, step);
            assert_eq!(got.len(), 2, "step {step}");
            assert_eq!(got[0].0, "response.completed");
            assert!(got[0].2, "truncated");
            assert_eq!(got[0].1, want_tail, "step {step}");
            assert!(got[0].1.ends_with(usage));
            assert_eq!(got[1], (String::new(), b"{\"next\":1}".to_vec(), false));
        }
        // The data of several lines outgrowing the limit together: joined with `\n`, as
        // an event within the limit would be.
        let line = vec![b'B'; 2_000_000];
        let mut stream = Vec::new();
        let mut joined = Vec::new();
        for n in 0..3 {
            stream.extend_from_slice(b"data: ");
            stream.extend_from_slice(&line);
            stream.push(b'\n');
            if n > 0 {
                joined.push(b'\n');
            }
            joined.extend_from_slice(&line);
        }
        stream.extend_from_slice(b"data: end\n\n");
        joined.extend_from_slice(b"\nend");
        for step in [stream.len(), 1_000_003] {
            let got = parse_in(&stream, step);
            assert_eq!(got.len(), 1);
            assert!(got[0].2);
            assert_eq!(got[0].1, joined[joined.len() - TAIL_BYTES..], "step {step}");
        }
    }

    #[test]
    fn a_long_line_that_is_not_data_is_dropped_and_the_event_goes_on() {
        let mut stream = b"data: 1\n: ".to_vec();
        stream.extend(std::iter::repeat_n(b'c', MAX_EVENT_BYTES + 10));
        stream.extend_from_slice(b"\ndata: 2\n\n");
        for step in [stream.len(), 4096] {
            let mut p = SseParser::new();
            let mut out = Vec::new();
            for c in stream.chunks(step) {
                p.feed(c, |e| out.push((e.data.to_vec(), e.truncated)));
            }
            assert_eq!(out, vec![(b"1\n2".to_vec(), false)], "step {step}");
            assert_eq!(p.oversized(), 1);
        }
    }

    #[test]
    fn an_event_over_64_kib_gives_its_memory_back_once_dispatched() {
        // A 3 MiB event (kept whole), a 6 MiB one (dispatched truncated), each arriving
        // in pieces through the line buffer, then small events.
        let mut stream = Vec::new();
        for n in [3 << 20, 6 << 20] {
            stream.extend_from_slice(b"data: {\"a\":\"");
            stream.extend(std::iter::repeat_n(b'x', n));
            stream.extend_from_slice(b"\"}\n\n");
        }
        stream.extend_from_slice(b"data: {\"small\":1}\n\ndata: 2\n\n");
        let mut p = SseParser::new();
        let mut sizes = Vec::new();
        for c in stream.chunks(100_000) {
            p.feed(c, |e| sizes.push((e.data.len(), e.truncated)));
            let held = p.line.capacity() + p.data.capacity() + p.tail.capacity();
            assert!(held <= 2 * MAX_EVENT_BYTES + 4 * TAIL_BYTES, "{held}");
        }
        assert_eq!(
            sizes,
            vec![
                ((3 << 20) + 8, false),
                (TAIL_BYTES, true),
                (11, false),
                (1, false)
            ]
        );
        for (name, cap) in [
            ("line", p.line.capacity()),
            ("data", p.data.capacity()),
            ("tail", p.tail.capacity()),
        ] {
            assert!(cap <= KEEP_CAPACITY, "{name}: {cap}");
        }
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
