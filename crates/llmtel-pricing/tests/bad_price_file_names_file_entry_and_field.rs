//! A bad price file is rejected whole, with an error naming the file, line, entry and
//! field, and saying what to do.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Catalog, CatalogError};

fn error_of(src: &str) -> CatalogError {
    match Catalog::from_toml_str(src, "prices.toml") {
        Ok(c) => panic!("accepted a bad file ({} entries)", c.len()),
        Err(e) => e,
    }
}

const GOOD_FIRST: &str = r#"[[model]]
id = "good"
provider = "test"
[[model.price]]
effective = "2025-01-01"
input = 1
output = 1
"#;

#[test]
fn negative_price() {
    let src = format!(
        "{GOOD_FIRST}\n[[model]]\nid = \"my-model\"\nprovider = \"test\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = -1\noutput = 1\n"
    );
    let e = error_of(&src);
    assert_eq!(e.entry(), Some("my-model"));
    assert_eq!(e.field(), Some("price.input"));
    assert_eq!(e.line(), Some(14));
    let msg = e.to_string();
    assert!(
        msg.starts_with("prices.toml:14: model `my-model`, field `price.input`: negative price"),
        "{msg}"
    );
    assert!(msg.contains("USD per million tokens"), "{msg}");
}

#[test]
fn more_precision_than_a_micro_dollar_per_million() {
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = \"0.0000001\"\noutput = 1\n",
    );
    assert_eq!(
        (e.entry(), e.field(), e.line()),
        (Some("m"), Some("price.input"), Some(6))
    );
    assert!(e.to_string().contains("precision"), "{e}");
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1\noutput = 0.00000012\n",
    );
    assert_eq!((e.field(), e.line()), (Some("price.output"), Some(7)));
}

#[test]
fn nan_and_wrong_types() {
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = nan\noutput = 1\n",
    );
    assert_eq!(e.field(), Some("price.input"));
    assert!(e.to_string().contains("NaN"), "{e}");
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = true\noutput = 1\n",
    );
    assert_eq!(e.field(), Some("price.input"));
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = \"cheap\"\noutput = 1\n",
    );
    assert_eq!(e.field(), Some("price.input"));
}

#[test]
fn unknown_field_names_the_entry_and_the_field() {
    let src = format!(
        "{GOOD_FIRST}\n[[model]]\nid = \"typo-model\"\nprovider = \"test\"\n[[model.price]]\neffective = \"2025-01-01\"\ninptu = 1\noutput = 1\n"
    );
    let e = error_of(&src);
    assert_eq!(e.entry(), Some("typo-model"));
    assert_eq!(e.field(), Some("inptu"));
    assert_eq!(e.line(), Some(14));
    let msg = e.to_string();
    assert!(msg.contains("prices.toml:14"), "{msg}");
    assert!(msg.contains("unknown field"), "{msg}");
    assert!(msg.contains("data/README.md"), "{msg}");
}

#[test]
fn missing_output_and_missing_price() {
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1\n",
    );
    assert_eq!((e.entry(), e.field()), (Some("m"), Some("price.output")));
    let e = error_of("[[model]]\nid = \"m\"\nprovider = \"p\"\n");
    assert_eq!(
        (e.entry(), e.field(), e.line()),
        (Some("m"), Some("price"), Some(1))
    );
    // Embedding models may omit output.
    let ok = Catalog::from_toml_str(
        "[[model]]\nid = \"e\"\nprovider = \"p\"\nkind = \"embedding\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 0.02\n",
        "prices.toml",
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn bad_date_kind_duplicates() {
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-13-01\"\ninput = 1\noutput = 1\n",
    );
    assert_eq!((e.field(), e.line()), (Some("price.effective"), Some(5)));
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\nkind = \"image\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1\noutput = 1\n",
    );
    assert_eq!((e.field(), e.line()), (Some("kind"), Some(4)));
    assert!(
        e.to_string()
            .contains("chat, embedding, moderation, completion"),
        "{e}"
    );
    let e = error_of(&format!("{GOOD_FIRST}\n{GOOD_FIRST}"));
    assert_eq!((e.entry(), e.field()), (Some("good"), Some("id")));
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1\noutput = 1\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 2\noutput = 2\n",
    );
    assert_eq!((e.entry(), e.field()), (Some("m"), Some("price.effective")));
}

#[test]
fn syntax_error_has_a_line() {
    let e = error_of(&format!("{GOOD_FIRST}\n[[model]\nid = \"x\"\n"));
    assert_eq!(e.line(), Some(9));
    assert!(e.to_string().starts_with("prices.toml:9:"), "{e}");
}

#[test]
fn unreadable_file_names_the_path() {
    let path = std::path::Path::new("/nonexistent/llmtel/prices.toml");
    let e = Catalog::load(path).expect_err("no such file");
    assert!(matches!(e, CatalogError::Io { .. }));
    assert!(
        e.to_string().contains("/nonexistent/llmtel/prices.toml"),
        "{e}"
    );
}

#[test]
fn a_good_file_loads_from_disk_with_its_path_as_origin() {
    let dir = std::env::temp_dir().join(format!("llmtel-pricing-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[[model]]\nid = \"m\"\nprovider = \"p\"\n").expect("write");
    let e = Catalog::load(&path).expect_err("no price");
    assert!(
        e.to_string().starts_with(&format!("{}:1:", path.display())),
        "{e}"
    );
    std::fs::write(&path, GOOD_FIRST).expect("write");
    assert_eq!(Catalog::load(&path).expect("loads").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_typo_in_a_field_name_is_an_unknown_field() {
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninptu = 1\noutput = 1\n",
    );
    assert_eq!(
        (e.entry(), e.field(), e.line()),
        (Some("m"), Some("inptu"), Some(6))
    );
    assert!(
        e.to_string()
            .starts_with("prices.toml:6: model `m`, field `inptu`"),
        "{e}"
    );
}

#[test]
fn a_per_token_price_in_a_per_million_file_is_a_wrong_unit() {
    let e = error_of(
        "[[model]]\nid = \"m\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 2.5e-06\noutput = 1\n",
    );
    assert_eq!(
        (e.entry(), e.field(), e.line()),
        (Some("m"), Some("price.input"), Some(6))
    );
    assert!(e.to_string().contains("looks like USD per token"), "{e}");
}

#[test]
fn the_builtin_catalog_is_never_replaced_by_a_half_loaded_file() {
    let dir = std::env::temp_dir().join(format!("llmtel-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Two good entries, then a bad one: nothing of the file is loaded.
    let path = dir.join("prices.toml");
    let src = format!(
        "{GOOD_FIRST}\n[[model]]\nid = \"gpt-4o\"\nprovider = \"openai\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 0\noutput = 0\n\n[[model]]\nid = \"bad\"\nprovider = \"p\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = -1\noutput = 1\n"
    );
    std::fs::write(&path, src).unwrap();
    let before = Catalog::builtin().len();
    let e = Catalog::builtin_with(&path).unwrap_err();
    assert_eq!(e.entry(), Some("bad"));
    assert!(e.to_string().contains("prices.toml"), "{e}");
    assert_eq!(Catalog::builtin().len(), before);
    assert!(Catalog::builtin().get("good").is_none());
    // gpt-4o keeps its built-in price.
    let p = Catalog::builtin()
        .get("gpt-4o")
        .unwrap()
        .prices
        .last()
        .unwrap()
        .rates;
    assert_eq!(p.input, 2_500_000);
    // Same for a LiteLLM JSON file with one bad entry among good ones.
    let json = dir.join("prices.json");
    std::fs::write(
        &json,
        r#"{"good": {"input_cost_per_token": 1e-06}, "gpt-4o": {"input_cost_per_token": 0}, "z": {"input_cost_per_token": 1e-06, "output_cost_per_token": -1}}"#,
    )
    .unwrap();
    let e = Catalog::builtin_with(&json).unwrap_err();
    assert_eq!(
        (e.entry(), e.field()),
        (Some("z"), Some("output_cost_per_token"))
    );
    assert_eq!(Catalog::builtin().len(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}
