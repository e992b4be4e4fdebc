//! Any split of the same SSE bytes gives the same usage, ids and text; random bytes never
//! panic the SSE parser or any provider's decoder (the stable-Rust twin of the cargo-fuzz
//! targets in `fuzz/`).
#![allow(clippy::unwrap_used)]

mod common;

use common::fixtures::*;
use llmtel_reqwest::Api;
use llmtel_reqwest::decode::{Decoder, Observed};
use llmtel_reqwest::sse::SseParser;
use proptest::prelude::*;

fn decode(api: Api, chunks: &[&[u8]]) -> Observed {
    let mut parser = SseParser::new();
    let mut d = Decoder::new(api);
    for c in chunks {
        parser.feed(c, |e| d.event(e.event, e.data));
    }
    d.finish();
    d.into_observed()
}

fn split(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.iter_mut().for_each(|c| *c %= bytes.len() + 1);
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts {
        out.push(&bytes[prev..c]);
        prev = c;
    }
    out.push(&bytes[prev..]);
    out
}

fn streams() -> Vec<(Api, Vec<u8>)> {
    vec![
        (Api::OpenAiChat, openai_stream(true).concat().into_bytes()),
        (
            Api::OpenAiResponses,
            responses_stream().concat().into_bytes(),
        ),
        (
            Api::AnthropicMessages,
            anthropic_stream().concat().into_bytes(),
        ),
        // Gemini ends events with CRLF CRLF: splits between CR and LF are covered.
        (
            Api::GeminiStreamGenerate,
            gemini_stream().concat().into_bytes(),
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_split_gives_the_same_observation(cuts in proptest::collection::vec(0usize..100_000, 0..24)) {
        for (api, bytes) in streams() {
            let whole = decode(api, &[&bytes]);
            prop_assert!(whole.usage.is_some(), "{api:?}");
            prop_assert!(whole.parse_error.is_none(), "{api:?}: {:?}", whole.parse_error);
            let parts = split(&bytes, cuts.clone());
            prop_assert_eq!(&decode(api, &parts), &whole, "{:?}", api);
        }
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_observation(_x in 0..1) {
        for (api, bytes) in streams() {
            let whole = decode(api, &[&bytes]);
            let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
            prop_assert_eq!(&decode(api, &bytewise), &whole);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), cuts in proptest::collection::vec(0usize..4096, 0..8)) {
        for api in [Api::OpenAiChat, Api::OpenAiCompletions, Api::OpenAiEmbeddings, Api::OpenAiResponses, Api::AnthropicMessages, Api::GeminiGenerate, Api::GeminiStreamGenerate] {
            let _ = decode(api, &split(&bytes, cuts.clone()));
            let mut d = Decoder::new(api);
            d.json(&bytes);
            d.finish();
        }
    }

    #[test]
    fn sse_shaped_noise_never_panics(lines in proptest::collection::vec(
        prop_oneof![
            Just("data: ".to_owned()), Just("event: message_delta".to_owned()), Just("\n".to_owned()),
            Just("\r".to_owned()), Just(":".to_owned()), Just("data: [DONE]".to_owned()),
            Just("{\"usage\":{\"prompt_tokens\":18446744073709551615}}".to_owned()),
            Just("{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-1}}".to_owned()),
            Just("{\"choices\":[{\"index\":99999999,\"finish_reason\":\"stop\"}]}".to_owned()),
            "[ -~]{0,40}",
        ], 0..64)) {
        let bytes = lines.concat().into_bytes();
        for api in [Api::OpenAiChat, Api::OpenAiResponses, Api::AnthropicMessages, Api::GeminiStreamGenerate] {
            let _ = decode(api, &[&bytes]);
        }
    }
}
