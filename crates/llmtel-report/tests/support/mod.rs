//! Shared helpers of the llmtel-report tests: temporary log paths and exact prices.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use llmtel::{Catalog, Usage, Usd};

/// A fresh path for a log, unique to this process and `name`; removed with its rotated files.
pub fn temp_log(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmtel-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.join("calls.jsonl")
}

/// The catalog's exact price of a call on `date`.
pub fn price(model: &str, provider: &str, usage: &Usage, date: jiff::civil::Date) -> Usd {
    Catalog::builtin()
        .price(model, Some(provider), usage, date)
        .expect("model in the built-in catalog")
        .breakdown
        .total
}

/// Today, UTC: the date the layer prices live calls at.
pub fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// Sum of exact amounts.
pub fn sum<'a>(v: impl IntoIterator<Item = &'a Usd>) -> Usd {
    v.into_iter().fold(Usd::ZERO, |a, b| a.saturating_add(*b))
}
