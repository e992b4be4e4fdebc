//! A price file saved with a UTF-8 byte order mark (as Windows editors write it) loads:
//! LiteLLM's JSON, from a string or a file (`Catalog::load`, `LLMTEL_PRICES`; a URL's body
//! goes through the same reader), and llmtel's TOML (which loaded already: a guard). Before,
//! the format was detected past the mark but the JSON parser was given it, and failed with
//! "not a LiteLLM price file: expected value at line 1 column 1".
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Catalog, Usage};

const JSON: &str = "\u{feff}{\"my-model\": {\"litellm_provider\": \"openai\", \"mode\": \"chat\", \"input_cost_per_token\": 2.5e-06, \"output_cost_per_token\": 1e-05}}";
const TOML: &str = "\u{feff}[[model]]\nid = \"my-model\"\nprovider = \"openai\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 2.5\noutput = 10.0\n";

fn total(c: &Catalog) -> String {
    c.price(
        "my-model",
        None,
        &Usage::new(1_000_000, 1_000_000),
        jiff::civil::date(2025, 6, 1),
    )
    .unwrap()
    .breakdown
    .total
    .to_string()
}

#[test]
fn litellm_json_with_a_byte_order_mark_loads() {
    let c = Catalog::from_litellm_json(JSON, "prices.json").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(total(&c), "$12.500000");
    let dir = std::env::temp_dir().join(format!("llmtel-bom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Detected by its content too (no .json extension).
    for name in ["prices.json", "prices.txt"] {
        let path = dir.join(name);
        std::fs::write(&path, JSON).unwrap();
        let c = Catalog::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(total(&c), "$12.500000", "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn toml_with_a_byte_order_mark_loads() {
    let c = Catalog::from_toml_str(TOML, "prices.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(total(&c), "$12.500000");
}
