//! Test-only package: end-to-end tests across llmtel's crates live in `tests/`.
