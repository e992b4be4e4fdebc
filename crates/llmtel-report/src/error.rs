//! Errors of the call log and of reports.

use std::path::PathBuf;

/// Why a [`crate::CallLog`] could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The log file could not be opened for appending.
    #[error(
        "cannot open the call log {path} for appending: {source} (check that its directory exists and is writable)"
    )]
    Open {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the call log's writer thread: {0}")]
    Thread(std::io::Error),
}

/// Why a [`crate::Report`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The log file does not exist.
    #[error(
        "no call log at {path}: pass the file an llmtel_report::CallLog writes (the path given to CallLog::builder), e.g. `--log llmtel-calls.jsonl`"
    )]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The log could not be read.
    #[error("cannot read the call log {path}: {source}")]
    Read {
        /// The path given (`-` for a reader).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The log holds no record at all.
    #[error(
        "the call log {path} holds no record ({lines} lines, {malformed} malformed{first}): add llmtel_report::CallLog to your LlmLayer (or its layer to your subscriber), make some LLM calls, then report"
    )]
    Empty {
        /// The path given (`-` for a reader).
        path: PathBuf,
        /// Non-blank lines read.
        lines: u64,
        /// Lines that were not records.
        malformed: u64,
        /// The first malformed line, as `; first: line N: error`.
        first: String,
    },
    /// The period is not usable.
    #[error("bad period: {0}")]
    Period(String),
}
