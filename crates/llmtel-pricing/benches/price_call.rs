//! Resolve + cost of one call for a cached model name, against the cost arithmetic alone
//! on pre-resolved rates (the baseline, same run), and the built-in catalog's load time.
//!
//! `cargo bench -p llmtel-pricing --bench price_call -- --measurement-time 3 --warm-up-time 1`
//! Targets: resolve + cost < 300 ns for a cached name; built-in catalog load < 20 ms.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::civil::date;
use llmtel_pricing::{Catalog, Usage};

fn usage() -> Usage {
    Usage {
        input_tokens: 12_000,
        output_tokens: 800,
        cache_read_tokens: 8_000,
        reasoning_tokens: 200,
        ..Usage::default()
    }
}

fn price_call(c: &mut Criterion) {
    let catalog = Catalog::builtin();
    let at = date(2026, 1, 15);
    let u = usage();
    let mut g = c.benchmark_group("price_call");
    // Baseline: cost arithmetic alone on rates resolved beforehand.
    let rates = catalog
        .get("gpt-4o")
        .unwrap()
        .price_at(at)
        .unwrap()
        .rates_for(u.prompt_tokens())
        .0;
    g.bench_function("baseline_cost_on_resolved_rates", |b| {
        b.iter(|| black_box(&rates).cost(black_box(&u)).unwrap())
    });
    for name in [
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "vertex_ai/gemini-2.5-pro",
    ] {
        catalog.price(name, None, &u, at).unwrap(); // warm the resolve cache
        g.bench_function(format!("resolve_and_cost/{name}"), |b| {
            b.iter(|| {
                catalog
                    .price(black_box(name), None, black_box(&u), at)
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn load(c: &mut Criterion) {
    let src = include_str!("../data/catalog.toml");
    let mut g = c.benchmark_group("catalog_load");
    g.sample_size(20);
    g.bench_function("builtin_toml", |b| {
        b.iter(|| Catalog::from_toml_str(black_box(src), "builtin").unwrap())
    });
    let json = include_str!("../tests/data/litellm_model_prices.json");
    g.bench_function("litellm_json_full_file", |b| {
        b.iter(|| Catalog::from_litellm_json(black_box(json), "litellm.json").unwrap())
    });
    g.finish();
}

criterion_group!(benches, price_call, load);
criterion_main!(benches);
