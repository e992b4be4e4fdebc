//! Fresh prices without a release reach the collector too: a catalog with a price file merged
//! over the built-in one (what `llmtel collector` loads from `LLMTEL_PRICES`) prices every
//! forwarded span, and the built-in prices stay for the models the file does not name.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use llmtel_collector::Collector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_file_overrides_the_builtin_price_of_a_model_and_keeps_the_rest() {
    let dir = std::env::temp_dir().join(format!("llmtel-collector-prices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prices.toml");
    std::fs::write(
        &file,
        "[[model]]\nid = \"gpt-4o\"\nprovider = \"openai\"\n[[model.price]]\n\
         effective = \"2024-01-01\"\ninput = 1.00\noutput = 4.00\n",
    )
    .unwrap();
    let layered = llmtel_pricing::PriceSources::default()
        .with_file(&file)
        .load();
    assert!(layered.failures.is_empty(), "{:?}", layered.failures);

    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream).with_catalog(layered.catalog))
        .await
        .unwrap();
    let call = |model: &str| {
        vec![
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.request.model", model),
            i("gen_ai.usage.input_tokens", 1_000_000),
            i("gen_ai.usage.output_tokens", 1_000_000),
        ]
    };
    post_protobuf(
        &collector,
        request(
            "svc",
            7,
            vec![
                ("chat gpt-4o".into(), call("gpt-4o")),
                ("chat gpt-4o-mini".into(), call("gpt-4o-mini")),
            ],
        ),
    )
    .await;
    // The file's price: $1 per million input tokens and $4 per million output tokens (the
    // built-in ones are $2.50 and $10).
    let (_, file_priced) = receiver.wait_for("chat gpt-4o").await;
    assert!(
        (f64_attr(&file_priced, "gen_ai.usage.cost") - 5.0).abs() < 1e-9,
        "{:?}",
        file_priced.attributes
    );
    // A model the file does not name keeps its built-in price ($0.15 and $0.60).
    let (_, builtin) = receiver.wait_for("chat gpt-4o-mini").await;
    assert!(
        (f64_attr(&builtin, "gen_ai.usage.cost") - 0.75).abs() < 1e-9,
        "{:?}",
        builtin.attributes
    );
    let _ = std::fs::remove_dir_all(&dir);
}
