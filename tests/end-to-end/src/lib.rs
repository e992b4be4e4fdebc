//! Test-only package: end-to-end tests across llmtel's crates live in `tests/`.
//!
//! Its doctests are the README's code blocks: `cargo test --doc` compiles every one of them
//! (and runs those not marked `no_run`), so the README cannot show code that does not build.

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
