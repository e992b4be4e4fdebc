//! Issue #14: the OpenAI image-generation and audio endpoints the middleware sees are
//! recognised and priced on the exported span, against hand-computed values:
//! `/images/generations` and `/images/edits` (gpt-image-* bill by tokens, image output
//! tokens at their own rate), `/audio/speech` (tts-1 per input character; gpt-4o-mini-tts
//! by the tokens of its SSE stream) and `/audio/transcriptions` (whisper-1 per second of
//! audio; gpt-4o-transcribe by tokens, its seconds not charged twice), with JSON bodies,
//! hand-built multipart bodies and reqwest's streamed `multipart::Form`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// What llmtel's layer priced the call at for its sinks (budgets, metrics, summaries): the
/// trace summary of the one call.
fn in_process_cost(p: &Pipeline) -> f64 {
    let _ = p.spans(); // waits for the reader thread to end the span
    p.summaries
        .recent(1)
        .pop()
        .expect("a trace summary")
        .cost
        .as_f64()
}

/// Sends `form` (a streamed multipart body) and reads the whole response.
async fn post_form(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
    form: reqwest::multipart::Form,
) -> (u16, Vec<u8>) {
    let resp = client
        .post(url)
        .header("authorization", "Bearer sk-test-SECRET-0123456789abcdef")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// A hand-built `multipart/form-data` body (sent as bytes, not streamed).
fn multipart_bytes(model: &str, audio: &[u8]) -> (String, Vec<u8>) {
    let boundary = "llmtel-test-boundary-7f3a";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"call.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(audio);
    body.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\njson\r\n--{boundary}--\r\n"
        )
        .as_bytes(),
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Fake WAV bytes: a RIFF header, then noise that includes a look-alike of a form field.
fn audio(len: usize) -> Vec<u8> {
    let mut a = b"RIFF\x24\x00\x00\x00WAVEfmt name=\"model\"\r\n\r\nnot-a-model\r\n".to_vec();
    a.extend((0..len).map(|i| (i * 31 % 251) as u8));
    a
}

const IMAGE_REQUEST: &str = r#"{"model":"gpt-image-1.5","prompt":"A lighthouse at dusk, watercolour","n":1,"size":"1024x1024","quality":"medium"}"#;
const IMAGE_RESPONSE: &str = r#"{"created":1764700000,"background":"opaque","data":[{"b64_json":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}],"output_format":"png","quality":"medium","size":"1024x1024","usage":{"input_tokens":20,"input_tokens_details":{"image_tokens":0,"text_tokens":20},"output_tokens":1056,"output_tokens_details":{"image_tokens":1056,"text_tokens":0},"total_tokens":1076}}"#;

#[test]
fn a_generated_image_is_priced_by_its_tokens_with_image_output_at_its_own_rate() {
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, IMAGE_RESPONSE)]).await;
        let c = client(middleware(&server));
        let (status, body) = post(
            &c,
            &server.url("/openai/v1/images/generations"),
            IMAGE_REQUEST,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            IMAGE_RESPONSE.as_bytes(),
            "the caller gets the body as sent"
        );
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "gen_ai.operation.name"), "generate_content");
    assert_eq!(str_attr(&s, "gen_ai.output.type"), "image");
    assert_eq!(str_attr(&s, "gen_ai.request.model"), "gpt-image-1.5");
    assert_eq!(i64_attr(&s, "llmtel.usage.images"), 1);
    assert_eq!(i64_attr(&s, "llmtel.usage.image.output_tokens"), 1056);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 20);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens"), 1056);
    // gpt-image-1.5: 20 text tokens x $5/M = 0.0001; 1,056 image tokens x $32/M = 0.033792
    // (its text output rate, $10/M, would say 0.01056). Total $0.033892.
    assert_usd(f64_attr(&s, "llmtel.cost.image_output"), 0.033792);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.033892);
    // The sinks see the same price: the counts reach llmtel's layer too.
    assert_usd(in_process_cost(&p), 0.033892);
    // The image is billed through the tokens: no per-image charge, nothing noted.
    assert!(attr(&s, "llmtel.cost.images").is_none(), "{s:?}");
    assert!(attr(&s, "llmtel.cost.notes").is_none(), "{s:?}");
    assert!(attr(&s, "llmtel.cost.estimated").is_none_or(|v| v.as_str() == "false"));
}

const EDIT_RESPONSE: &str = r#"{"created":1764700000,"data":[{"b64_json":"iVBORw0KGgo="}],"usage":{"input_tokens":600,"input_tokens_details":{"image_tokens":500,"text_tokens":100},"output_tokens":4160,"total_tokens":4760}}"#;

#[test]
fn an_image_edit_sent_as_a_streamed_form_names_its_model_and_is_priced() {
    let png = audio(200_000); // any bytes: the server does not look at them
    let sent = png.clone();
    let p = run_async(|| async move {
        let server = Replay::start(vec![Reply::json(200, EDIT_RESPONSE)]).await;
        let c = client(middleware(&server));
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                reqwest::multipart::Part::bytes(sent)
                    .file_name("room.png")
                    .mime_str("image/png")
                    .unwrap(),
            )
            .text("prompt", "Add a lamp")
            .text("model", "gpt-image-1");
        let (status, _) = post_form(&c, &server.url("/openai/v1/images/edits"), form).await;
        assert_eq!(status, 200);
        // The body reached the server whole: every image byte, in order.
        let got = &server.requests()[0].body;
        assert!(
            got.windows(png.len()).any(|w| w == png.as_slice()),
            "the form's file bytes were changed on the way"
        );
    });
    let s = llm_span(&p);
    // The streamed form's `model` field, read as the body went out.
    assert_eq!(str_attr(&s, "gen_ai.response.model"), "gpt-image-1");
    assert_eq!(i64_attr(&s, "llmtel.usage.image.input_tokens"), 500);
    // Without an output split, every output token of the images endpoint is an image token.
    assert_eq!(i64_attr(&s, "llmtel.usage.image.output_tokens"), 4160);
    // gpt-image-1: 100 text in x $5/M = 0.0005, 500 image in x $10/M = 0.005,
    // 4,160 image out x $40/M = 0.1664. Total $0.1719.
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.1719);
}

const SPEECH_INPUT: &str = "Your order has shipped and will arrive on Tuesday.";

#[test]
fn speech_from_tts_1_is_priced_per_input_character_and_its_audio_passes_unread() {
    let mp3: Vec<u8> = (0..300_000).map(|i| (i % 256) as u8).collect();
    let reply = Reply {
        status: 200,
        content_type: "audio/mpeg",
        steps: mp3
            .chunks(16 * 1024)
            .map(|c| Step::Bytes(c.to_vec()))
            .collect(),
        chunked: true,
    };
    let expected = mp3.clone();
    let p = run_async(|| async move {
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let req = format!(r#"{{"model":"tts-1","input":"{SPEECH_INPUT}","voice":"alloy"}}"#);
        let (status, body) = post(&c, &server.url("/openai/v1/audio/speech"), &req).await;
        assert_eq!(status, 200);
        assert_eq!(body, expected, "the audio reaches the caller unchanged");
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "gen_ai.output.type"), "speech");
    let chars = SPEECH_INPUT.chars().count();
    assert_eq!(chars, 50);
    assert_eq!(i64_attr(&s, "llmtel.usage.input_characters"), 50);
    // tts-1: $15 per million characters: 50 x $0.000015 = $0.00075.
    assert_usd(f64_attr(&s, "llmtel.cost.characters"), 0.00075);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.00075);
    assert_usd(in_process_cost(&p), 0.00075);
    // Audio is not text: no usage estimated from it, no parse error for the binary body.
    assert!(attr(&s, "llmtel.parse_error").is_none(), "{s:?}");
    assert!(attr(&s, "gen_ai.usage.input_tokens").is_none(), "{s:?}");
}

#[test]
fn streamed_speech_from_gpt_4o_mini_tts_is_priced_by_its_reported_tokens() {
    let events = [
        "data: {\"type\":\"speech.audio.delta\",\"audio\":\"SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjU4Ljc2LjEwMAAAAAAAAAAAAAAA\"}\n\n",
        "data: {\"type\":\"speech.audio.delta\",\"audio\":\"//uQxAAAAAAAAAAAAAAAAAAAAAAAWGluZwAAAA8AAAACAAACcQ==\"}\n\n",
        "data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":14,\"output_tokens\":101,\"total_tokens\":115}}\n\n",
    ];
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::sse(&events)]).await;
        let c = client(middleware(&server));
        let req = format!(
            r#"{{"model":"gpt-4o-mini-tts","input":"{SPEECH_INPUT}","voice":"coral","stream_format":"sse"}}"#
        );
        let (status, _) = post(&c, &server.url("/openai/v1/audio/speech"), &req).await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), 14);
    assert_eq!(i64_attr(&s, "llmtel.usage.audio.output_tokens"), 101);
    // gpt-4o-mini-tts: 14 text tokens x $0.60/M = 0.0000084, 101 audio tokens x $12/M =
    // 0.001212. Total $0.0012204; the characters are recorded, not charged again.
    assert_usd(f64_attr(&s, "llmtel.cost.audio_output"), 0.001212);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.0012204);
    assert!(attr(&s, "llmtel.cost.characters").is_none(), "{s:?}");
}

#[test]
fn a_whisper_transcription_is_priced_per_second_of_audio() {
    let cases = [
        // `usage` of type duration (json): 9 s.
        (
            r#"{"text":"Hello, I'd like to return an order.","usage":{"type":"duration","seconds":9}}"#,
            9_000,
            0.0009,
        ),
        // verbose_json without usage: its duration, 8.47 s.
        (
            r#"{"task":"transcribe","language":"english","duration":8.47,"text":"Hello.","segments":[]}"#,
            8_470,
            0.000847,
        ),
    ];
    for (response, ms, usd) in cases {
        let p = run_async(|| async move {
            let server = Replay::start(vec![Reply::json(200, response)]).await;
            let c = client(middleware(&server));
            let (ct, body) = multipart_bytes("whisper-1", &audio(4_096));
            let resp = c
                .post(server.url("/openai/v1/audio/transcriptions"))
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.bytes().await.unwrap();
        });
        let s = llm_span(&p);
        // The hand-built form's `model`, not the look-alike inside the audio bytes.
        assert_eq!(str_attr(&s, "gen_ai.request.model"), "whisper-1");
        assert_eq!(str_attr(&s, "gen_ai.output.type"), "text");
        assert_eq!(i64_attr(&s, "llmtel.usage.input_audio_ms"), ms);
        // whisper-1: $0.006 per minute = $0.0001 per second.
        assert_usd(f64_attr(&s, "llmtel.cost.audio_seconds"), usd);
        assert_usd(f64_attr(&s, "gen_ai.usage.cost"), usd);
        assert_usd(in_process_cost(&p), usd);
    }
}

#[test]
fn a_token_billed_transcription_sent_as_a_streamed_form_is_priced_by_its_tokens() {
    const RESPONSE: &str = r#"{"text":"Hello, I'd like to return an order.","usage":{"type":"tokens","input_tokens":14,"input_token_details":{"text_tokens":0,"audio_tokens":14},"output_tokens":45,"total_tokens":59}}"#;
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(200, RESPONSE)]).await;
        let c = client(middleware(&server));
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(audio(64 * 1024))
                    .file_name("call.wav")
                    .mime_str("audio/wav")
                    .unwrap(),
            )
            .text("model", "gpt-4o-transcribe");
        let (status, _) = post_form(&c, &server.url("/openai/v1/audio/transcriptions"), form).await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(str_attr(&s, "gen_ai.response.model"), "gpt-4o-transcribe");
    assert_eq!(i64_attr(&s, "llmtel.usage.audio.input_tokens"), 14);
    // 14 audio tokens x $2.50/M = 0.000035, 45 output tokens x $10/M = 0.00045: $0.000485.
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.000485);
    assert!(attr(&s, "llmtel.cost.audio_seconds").is_none(), "{s:?}");
}

#[test]
fn a_refused_speech_call_is_not_billed_for_its_characters() {
    const ERROR: &str = r#"{"error":{"message":"Rate limit reached for tts-1","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let p = run_async(|| async {
        let server = Replay::start(vec![Reply::json(429, ERROR)]).await;
        let c = client(middleware(&server));
        let req = format!(r#"{{"model":"tts-1","input":"{SPEECH_INPUT}","voice":"alloy"}}"#);
        let (status, _) = post(&c, &server.url("/openai/v1/audio/speech"), &req).await;
        assert_eq!(status, 429);
    });
    let s = llm_span(&p);
    assert!(attr(&s, "error.type").is_some(), "{s:?}");
    assert!(attr(&s, "llmtel.usage.input_characters").is_none(), "{s:?}");
    assert!(attr(&s, "gen_ai.usage.cost").is_none(), "{s:?}");
}

#[test]
fn unstreamed_speech_from_gpt_4o_mini_tts_is_not_priced_at_zero() {
    // gpt-4o-mini-tts bills text and audio tokens; its non-streamed answer is the audio
    // alone, so the call reports only the characters sent, which that model has no price
    // for. Its cost is unknown: never $0, and the span says what to do.
    let mp3: Vec<u8> = (0..30_000).map(|i| (i % 256) as u8).collect();
    let reply = Reply {
        status: 200,
        content_type: "audio/mpeg",
        steps: vec![Step::Bytes(mp3)],
        chunked: true,
    };
    let p = run_async(|| async move {
        let server = Replay::start(vec![reply]).await;
        let c = client(middleware(&server));
        let req =
            format!(r#"{{"model":"gpt-4o-mini-tts","input":"{SPEECH_INPUT}","voice":"alloy"}}"#);
        let (status, _) = post(&c, &server.url("/openai/v1/audio/speech"), &req).await;
        assert_eq!(status, 200);
    });
    let s = llm_span(&p);
    assert_eq!(i64_attr(&s, "llmtel.usage.input_characters"), 50);
    assert!(attr(&s, "gen_ai.usage.cost").is_none(), "{s:?}");
    let note = str_attr(&s, "llmtel.usage.note");
    assert!(
        note.contains("not priced") && note.contains("stream_format"),
        "{note}"
    );
    let _ = p.spans();
    let summary = p.summaries.recent(1).pop().expect("a trace summary");
    assert_eq!(summary.unpriced_calls, 1, "{summary:?}");
    assert_eq!(summary.cost.as_f64(), 0.0);
}
