//! The SSE parser: any bytes, split anywhere (the first byte picks the split points), never
//! panic, and a split never changes the events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmtel_reqwest::sse::SseParser;

fn events(chunks: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c, |e| out.push((e.event.to_owned(), e.data.to_vec())));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, bytes)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let whole = events(&[bytes]);
    let parts: Vec<&[u8]> = bytes.chunks(step).collect();
    assert_eq!(events(&parts), whole);
});
