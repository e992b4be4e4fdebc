//! Shared helpers for llmtel's integration tests (real peers, receivers, child processes).
//!
//! Include from a test file with `mod support;` and use e.g.
//! `support::phoenix::Peers::from_env()`.

// Each test binary uses a different subset of the helpers, and items of a
// private module of a test crate are never reachable from outside.
#![allow(dead_code, unreachable_pub)]

// `grpc_metrics.rs` is not declared here: examples include this module by path and have no
// tonic; a test that wants it adds `#[path = "support/grpc_metrics.rs"] mod grpc_metrics;`.

pub mod child;
pub mod otlp_http;
pub mod phoenix;
