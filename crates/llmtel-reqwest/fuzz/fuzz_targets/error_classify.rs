//! Error classification of any status and any body never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let status = data.first().map_or(0, |b| 400 + u16::from(*b));
    let text = String::from_utf8_lossy(data);
    let _ = llmtel_reqwest::errors::classify(status, Some(&text), Some(&text), Some(&text));
});
