//! Shared helpers for llmtel's integration tests (real peers, receivers, child processes).
//!
//! Include from a test file with `mod support;` and use e.g.
//! `support::phoenix::Peers::from_env()`.

// Each test binary uses a different subset of the helpers, and items of a
// private module of a test crate are never reachable from outside.
#![allow(dead_code, unreachable_pub)]

pub mod child;
pub mod grpc_metrics;
pub mod otlp_http;
pub mod phoenix;
