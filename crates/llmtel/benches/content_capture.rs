//! What content capture costs the thread that records a prompt, by the prompt's length:
//! `prompt/4KiB` (the default limit, baseline) against `prompt/10MiB` (a hostile prompt cut
//! to the same limit). Only the part that can be kept is redacted and copied, so the long
//! prompt costs a count of its characters on top. Results: BENCHMARKS.md.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn prompt(c: &mut Criterion) {
    let policy = llmtel::ContentCapture::enabled();
    let mut group = c.benchmark_group("prompt");
    for (name, len) in [("4KiB", 4 * 1024), ("10MiB", 10 * 1024 * 1024)] {
        let text = "lorem ipsum dolor sit amet, ".repeat(len / 28);
        group.bench_function(name, |b| {
            b.iter(|| black_box(policy.apply(black_box(&text))))
        });
    }
    group.finish();
}

criterion_group!(benches, prompt);
criterion_main!(benches);
