//! The anthropic usage parsers: whole JSON bodies and SSE streams of any bytes never panic,
//! and splitting the stream never changes what is seen.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmtel_reqwest::Api;
use llmtel_reqwest::decode::Decoder;
use llmtel_reqwest::sse::SseParser;

fuzz_target!(|data: &[u8]| {
    for api in [Api::AnthropicMessages] {
        let mut d = Decoder::new(api);
        d.json(data);
        d.finish();
        let seen = |step: usize| {
            let mut p = SseParser::new();
            let mut d = Decoder::new(api);
            for c in data.chunks(step.max(1)) {
                p.feed(c, |e| d.event(e.event, e.data));
            }
            d.finish();
            d.into_observed()
        };
        assert_eq!(seen(data.len()), seen(7));
    }
});
