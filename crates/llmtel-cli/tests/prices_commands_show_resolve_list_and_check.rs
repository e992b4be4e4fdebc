//! `llmtel prices MODEL | resolve | list | check` end to end: runs the built binary.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::process::{Command, Output};

fn llmtel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(args)
        .output()
        .expect("run llmtel")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn prices_model_shows_the_dated_prices() {
    let o = llmtel(&["prices", "gpt-4o", "--at", "2024-06-01"]);
    assert!(o.status.success(), "{}", err(&o));
    let s = out(&o);
    assert!(s.starts_with("gpt-4o (matched `gpt-4o`, exact)"), "{s}");
    assert!(
        s.contains("from 2024-05-13  <- in force on 2024-06-01"),
        "{s}"
    );
    assert!(s.contains("input 5  output 15"), "{s}");
    assert!(
        s.contains("from 2024-10-02\n    input 2.5  output 10"),
        "{s}"
    );
    let o = llmtel(&["prices", "gpt-4o", "--json", "--at", "2025-01-01"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["in_force"], "2024-10-02");
    assert_eq!(v["prices"][1]["cache_read"], "1.25");
}

#[test]
fn prices_resolve_explains_each_step() {
    let o = llmtel(&["prices", "resolve", "openai/gpt-4o-2024-08-06"]);
    assert!(o.status.success(), "{}", err(&o));
    let s = out(&o);
    let lines: Vec<&str> = s.lines().collect();
    assert!(
        lines[1].contains("exact / alias / case") && lines[1].ends_with("no match"),
        "{s}"
    );
    assert!(
        lines[2].contains("provider_prefix") && lines[2].contains("gpt-4o-2024-08-06"),
        "{s}"
    );
    assert!(s.contains("-> gpt-4o"), "{s}");
    assert!(s.trim_end().ends_with("matched `gpt-4o` (snapshot)"), "{s}");
    let o = llmtel(&["prices", "resolve", "no-such-model-xyz"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("no step matched"), "{}", err(&o));
}

#[test]
fn prices_list_filters_by_provider_and_prints_json() {
    let o = llmtel(&["prices", "list", "--provider", "x_ai", "--json"]);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let a = v.as_array().unwrap();
    assert!(!a.is_empty());
    assert!(a.iter().all(|e| e["provider"] == "x_ai"));
    let o = llmtel(&["prices", "list"]);
    let s = out(&o);
    let n: usize = s
        .trim_end()
        .rsplit('\n')
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n >= 300, "{n}");
}

#[test]
fn prices_check_validates_toml_and_litellm_json() {
    let dir = std::env::temp_dir().join(format!("llmtel-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[deployments]\nmy-gpt4o-prod = \"gpt-4o\"\n\n[[model]]\nid = \"my-ft\"\nprovider = \"openai\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 3\noutput = 12\n",
    )
    .unwrap();
    let o = llmtel(&["prices", "check", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("ok, llmtel TOML, 1 entries, 1 deployments"),
        "{}",
        out(&o)
    );
    // The deployment prices as its model.
    let o = llmtel(&[
        "cost",
        "--model",
        "my-gpt4o-prod",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "0",
        "--prices",
        good.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        (v["matched"].as_str(), v["match"].as_str()),
        (Some("gpt-4o"), Some("deployment"))
    );
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[model]]\nid = \"my-ft\"\nprovider = \"openai\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = -3\noutput = 12\n",
    )
    .unwrap();
    let o = llmtel(&["prices", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("bad.toml:6: model `my-ft`, field `price.input`: negative price"),
        "{}",
        err(&o)
    );
    let dangling = dir.join("dangling.toml");
    std::fs::write(&dangling, "[deployments]\nprod = \"no-such-model\"\n").unwrap();
    let o = llmtel(&["prices", "check", dangling.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("deployments.prod"), "{}", err(&o));
    let json = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../llmtel-pricing/tests/data/litellm_model_prices.json"
    );
    let o = llmtel(&["prices", "check", json]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("ok, LiteLLM JSON,"), "{}", out(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn prices_check_rejects_an_alias_that_is_another_models_id() {
    let path =
        std::env::temp_dir().join(format!("llmtel-cli-alias-id-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[model]]\nid = \"my-4o\"\nprovider = \"openai\"\naliases = [\"gpt-4o\"]\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1\noutput = 1\n",
    )
    .unwrap();
    let o = llmtel(&["prices", "check", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let e = err(&o);
    assert!(
        e.contains("model `my-4o`, field `aliases`") && e.contains("`gpt-4o`"),
        "{e}"
    );
    // Used as --prices, the file is refused the same way.
    let o = llmtel(&[
        "cost",
        "--prices",
        path.to_str().unwrap(),
        "--model",
        "gpt-4o",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("field `aliases`"), "{}", err(&o));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn prices_check_judges_deployments_as_calls_are_priced() {
    let dir = std::env::temp_dir().join(format!("llmtel-check-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, src: String| {
        let path = dir.join(name);
        std::fs::write(&path, src).unwrap();
        path.to_str().unwrap().to_string()
    };
    // A chain: checked ok, and a call reporting its first name is priced as its model.
    let chain = write(
        "chain.toml",
        "[deployments]\nprod = \"staging\"\nstaging = \"gpt-4o\"\n".into(),
    );
    let o = llmtel(&["prices", "check", &chain]);
    assert!(o.status.success(), "{}", err(&o));
    let o = llmtel(&[
        "cost",
        "--model",
        "prod",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "0",
        "--prices",
        &chain,
        "--json",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        (v["matched"].as_str(), v["match"].as_str()),
        (Some("gpt-4o"), Some("deployment"))
    );
    // Two deployments naming each other resolve to nothing: reported.
    let cycle = write(
        "cycle.toml",
        "[deployments]\nping = \"pong\"\npong = \"ping\"\n".into(),
    );
    let o = llmtel(&["prices", "check", &cycle]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        err(&o).contains("deployments.ping") && err(&o).contains("map back to each other"),
        "{}",
        err(&o)
    );
    // A chain longer than calls follow: its first name prices nothing, so it is reported
    // (its target alone, resolved afresh, would reach the model).
    let hops = llmtel_pricing::MAX_DEPLOYMENT_HOPS;
    let mut long = String::from("[deployments]\n");
    for i in 0..hops {
        long.push_str(&format!("d{i} = \"d{}\"\n", i + 1));
    }
    long.push_str(&format!("d{hops} = \"gpt-4o\"\n"));
    let long = write("long.toml", long);
    let o = llmtel(&["prices", "check", &long]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(err(&o).contains("deployments.d0`"), "{}", err(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
