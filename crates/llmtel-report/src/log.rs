//! [`CallLog`]: the durable record of LLM calls, evaluations and alerts, as JSON lines.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use jiff::Timestamp;
use llmtel::worker::{Job, Worker};
use llmtel::{CallSink, ContentCapture, LlmCall};
use llmtel_alert::{Alert, AlertError, AlertSink};
use serde::Serialize;

use crate::error::LogError;
use crate::record::{AlertEntry, CallRecord, DroppedEntry, Record};

/// Default capacity of the queue from the request path to the writer thread.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// How often the writer looks for records while calls arrive. Producers do not wake it per
/// record: waking a parked thread costs the request thread microseconds (a futex wake, often
/// a reschedule), many times the rest of `on_call`. After 10 s without records the writer
/// sleeps until the next one (llmtel's worker primitive).
const POLL: Duration = Duration::from_millis(100);
/// How long dropping the last handle waits for queued records to be written.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default size at which the log file is rotated: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Default number of rotated files kept (`calls.jsonl.1` .. `calls.jsonl.4`).
pub const DEFAULT_MAX_FILES: usize = 4;

/// Counters of a [`CallLog`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogStats {
    /// Records queued for the writer.
    pub queued: u64,
    /// Records written.
    pub written: u64,
    /// Records dropped because the queue was full (or the writer had stopped).
    pub dropped_queue_full: u64,
    /// Records dropped because the file reached its maximum size and no rotation is kept
    /// (`with_max_files(0)`), or because one record is larger than the maximum size.
    pub dropped_file_full: u64,
    /// Records dropped because writing failed.
    pub dropped_write_error: u64,
    /// Times the file was rotated.
    pub rotations: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

impl LogStats {
    /// Every record dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_file_full + self.dropped_write_error
    }
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_file_full: AtomicU64,
    dropped_write_error: AtomicU64,
    rotations: AtomicU64,
    bytes_written: AtomicU64,
}

impl Counters {
    fn dropped(&self) -> u64 {
        self.dropped_queue_full.load(Relaxed)
            + self.dropped_file_full.load(Relaxed)
            + self.dropped_write_error.load(Relaxed)
    }
}

/// Builds a [`CallLog`].
#[derive(Debug)]
pub struct CallLogBuilder {
    path: PathBuf,
    queue_capacity: usize,
    max_file_bytes: u64,
    max_files: usize,
    content: Option<ContentCapture>,
}

impl CallLogBuilder {
    /// Capacity of the queue to the writer thread (default [`DEFAULT_QUEUE_CAPACITY`]);
    /// a record that finds it full is dropped and counted.
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Size at which the file is rotated (default [`DEFAULT_MAX_FILE_BYTES`]).
    pub fn with_max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes.max(1);
        self
    }

    /// Rotated files kept: `path.1` (newest) to `path.N` (default [`DEFAULT_MAX_FILES`]).
    /// With 0, the log stops at its maximum size and counts what it drops.
    pub fn with_max_files(mut self, n: usize) -> Self {
        self.max_files = n;
        self
    }

    /// The content policy applied (on the writer thread) to captured prompts, responses
    /// and feedback comments before they are written. Default: the process-wide policy
    /// ([`llmtel::content_capture`]) at the time of writing, off unless the app turned it on.
    pub fn with_content_capture(mut self, policy: ContentCapture) -> Self {
        self.content = Some(policy);
        self
    }

    /// Opens (creates or appends to) the file and starts the writer thread.
    ///
    /// # Errors
    /// [`LogError::Open`] when the file cannot be opened for appending,
    /// [`LogError::Thread`] when the thread cannot be started.
    pub fn build(self) -> Result<CallLog, LogError> {
        let file = open_append(&self.path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            path: self.path.clone(),
            out: Some(BufWriter::new(file)),
            size,
            max_file_bytes: self.max_file_bytes,
            max_files: self.max_files,
            content: self.content,
            counters: counters.clone(),
            reported_drops: 0,
        };
        let worker = Worker::builder("call-log")
            .with_capacity(self.queue_capacity)
            .with_wake_at(self.queue_capacity.div_ceil(2))
            .with_interval(POLL)
            .with_drop_timeout(DROP_TIMEOUT)
            .spawn(move || Ok::<_, std::convert::Infallible>(writer))
            .map_err(|e| LogError::Thread(std::io::Error::other(e.to_string())))?;
        Ok(CallLog {
            inner: Arc::new(Inner {
                path: self.path,
                worker,
                counters,
            }),
        })
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })
}

struct Inner {
    path: PathBuf,
    /// The writer thread, woken when the queue is half full, to flush, or to stop.
    worker: Worker<Box<Record>>,
    counters: Arc<Counters>,
}

/// The durable record of a period, for [`crate::Report`]: one JSON line per LLM call,
/// evaluation result, user rating and alert (see [`Record`]).
///
/// - As a [`CallSink`] (`LlmLayer::with_sink`) it logs every call, without content.
/// - Its [`layer`](CallLog::layer), added **after** `llmtel::layer()`, logs every call with
///   its content when the app captured it, and the `gen_ai.evaluation.result` spans of
///   `llmtel-quality` (evaluator results and user feedback).
/// - As an [`AlertSink`] (`AlertDispatcher::builder().with_sink(..)`) it logs alerts.
///
/// The request thread only builds the record (string clones) and queues it without
/// blocking or waking anything; a writer thread, which looks for records every 100 ms (or
/// as soon as the queue is half full), serialises and appends them. A full queue drops the record and
/// counts it ([`LogStats`]); the writer then writes a `dropped` line so that reports say they
/// are incomplete. The file is rotated at a maximum size, keeping a bounded number of files.
///
/// ```
/// use std::sync::Arc;
/// use tracing_subscriber::prelude::*;
///
/// let path = std::env::temp_dir().join(format!("llmtel-doc-{}.jsonl", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let log = llmtel_report::CallLog::builder(&path).build()?;
/// let subscriber = tracing_subscriber::registry()
///     .with(llmtel::layer())
///     .with(log.layer()); // before or after llmtel::layer(): any order works
/// tracing::subscriber::with_default(subscriber, || {
///     let span = llmtel::llm_span!("chat", "openai", "gpt-4o", "llmtel.feature" = "search");
///     llmtel::record_usage(&span, &llmtel::Usage { input_tokens: 1000, output_tokens: 100, ..Default::default() });
/// });
/// assert!(log.flush(std::time::Duration::from_secs(5)));
/// let report = llmtel_report::Report::from_log(&path, &llmtel_report::Period::all())?;
/// assert_eq!(report.totals.requests, 1);
/// // gpt-4o: 1000 × $2.50/M + 100 × $10/M
/// assert_eq!(report.totals.cost.to_string(), "$0.003500");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CallLog {
    inner: Arc<Inner>,
}

impl fmt::Debug for CallLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallLog")
            .field("path", &self.inner.path)
            .field("stats", &self.stats())
            .finish()
    }
}

impl CallLog {
    /// A builder for a log appended to `path`.
    pub fn builder(path: impl Into<PathBuf>) -> CallLogBuilder {
        CallLogBuilder {
            path: path.into(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_files: DEFAULT_MAX_FILES,
            content: None,
        }
    }

    /// The file the log appends to.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The tracing layer: calls with their captured content, and evaluation results.
    pub fn layer(&self) -> crate::CallLogLayer {
        crate::CallLogLayer::new(self.clone())
    }

    /// Queues a record without blocking. Returns `false` (and counts a drop) when the queue
    /// is full or the writer has stopped.
    pub fn append(&self, record: Record) -> bool {
        match self.inner.worker.send(Box::new(record)) {
            Ok(()) => true,
            Err(_) => {
                // Counted here too, so that the writer's next `dropped` line includes it.
                self.inner.counters.dropped_queue_full.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Waits up to `timeout` until every record queued before this call is written and the
    /// file flushed. Returns whether it happened.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.worker.flush(timeout).is_ok()
    }

    /// Writes what is queued, flushes the file and stops the writer thread (also done when
    /// the last clone is dropped). Records given afterwards are dropped and counted.
    pub fn shutdown(&self) {
        let _ = self.inner.worker.shutdown(DROP_TIMEOUT);
    }

    /// The counters.
    pub fn stats(&self) -> LogStats {
        let c = &self.inner.counters;
        LogStats {
            queued: self.inner.worker.stats().queued,
            written: c.written.load(Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Relaxed),
            dropped_file_full: c.dropped_file_full.load(Relaxed),
            dropped_write_error: c.dropped_write_error.load(Relaxed),
            rotations: c.rotations.load(Relaxed),
            bytes_written: c.bytes_written.load(Relaxed),
        }
    }
}

impl CallSink for CallLog {
    fn on_call(&self, call: &LlmCall) {
        self.append(Record::Call(Box::new(CallRecord::from_call(call))));
    }
}

impl AlertSink for CallLog {
    fn name(&self) -> &str {
        "call_log"
    }

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        let now = Timestamp::now();
        let dropped = alerts
            .iter()
            .filter(|a| !self.append(Record::Alert(AlertEntry::from_alert(a, now))))
            .count();
        if dropped > 0 {
            return Err(AlertError::Transport {
                sink: "call_log".into(),
                message: format!("queue full: {dropped} alerts dropped"),
            });
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), AlertError> {
        if self.flush(Duration::from_secs(5)) {
            Ok(())
        } else {
            Err(AlertError::Transport {
                sink: "call_log".into(),
                message: "flush timed out after 5 s".into(),
            })
        }
    }
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    size: u64,
    max_file_bytes: u64,
    max_files: usize,
    content: Option<ContentCapture>,
    counters: Arc<Counters>,
    reported_drops: u64,
}

impl Job for Writer {
    type Item = Box<Record>;

    fn process(&mut self, batch: Vec<Box<Record>>) -> Result<(), String> {
        for r in batch {
            self.write(*r);
        }
        self.report_drops();
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.report_drops();
        match self.out.as_mut() {
            Some(out) => out
                .flush()
                .map_err(|e| format!("flushing {}: {e}", self.path.display())),
            None => Ok(()),
        }
    }
}

impl Writer {
    /// Writes a `dropped` line for the drops since the last one.
    fn report_drops(&mut self) {
        let now = self.counters.dropped();
        if now > self.reported_drops {
            let records = now - self.reported_drops;
            self.reported_drops = now;
            let rec = Record::Dropped(DroppedEntry {
                time: Timestamp::now(),
                records,
            });
            if let Ok(line) = serde_json::to_string(&rec) {
                // Not counted as a record: a failure here is already reflected in the count.
                let _ = self.write_line(&line);
            }
        }
    }

    fn apply_policy(&self, rec: &mut Record) {
        let policy = match &self.content {
            Some(p) => p.clone(),
            None => llmtel::content_capture(),
        };
        let apply = |v: &mut Option<String>| {
            if let Some(s) = v.take() {
                *v = policy.apply(&s);
            }
        };
        match rec {
            Record::Call(c) => {
                apply(&mut c.input_messages);
                apply(&mut c.output_messages);
            }
            Record::Evaluation(e) => apply(&mut e.explanation),
            _ => {}
        }
    }

    fn write(&mut self, mut rec: Record) {
        self.apply_policy(&mut rec);
        // The one redaction step (llmtel::redact) over the whole line: an API key used as a
        // user id, a scope value in an alert or quoted in captured content never reaches
        // the file.
        let line = match serde_json::to_string(&rec) {
            Ok(l) => llmtel::redact::redact_string(l),
            Err(_) => {
                self.counters.dropped_write_error.fetch_add(1, Relaxed);
                return;
            }
        };
        match self.write_line(&line) {
            Ok(()) => {
                self.counters.written.fetch_add(1, Relaxed);
            }
            Err(WriteFailure::Full) => {
                self.counters.dropped_file_full.fetch_add(1, Relaxed);
            }
            Err(WriteFailure::Io) => {
                self.counters.dropped_write_error.fetch_add(1, Relaxed);
            }
        }
    }

    fn write_line(&mut self, line: &str) -> Result<(), WriteFailure> {
        let len = line.len() as u64 + 1;
        if len > self.max_file_bytes {
            return Err(WriteFailure::Full);
        }
        if self.size + len > self.max_file_bytes {
            if self.max_files == 0 {
                return Err(WriteFailure::Full);
            }
            self.rotate()?;
        }
        let out = self.out.as_mut().ok_or(WriteFailure::Io)?;
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|_| WriteFailure::Io)?;
        self.size += len;
        self.counters.bytes_written.fetch_add(len, Relaxed);
        Ok(())
    }

    /// `path` becomes `path.1`, `path.1` becomes `path.2`, ...; the oldest beyond
    /// `max_files` is removed; a new `path` is opened.
    fn rotate(&mut self) -> Result<(), WriteFailure> {
        if let Some(mut out) = self.out.take() {
            let _ = out.flush();
        }
        let _ = std::fs::remove_file(rotated(&self.path, self.max_files));
        for i in (1..self.max_files).rev() {
            let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
        }
        let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        let file = open_append(&self.path).map_err(|_| WriteFailure::Io)?;
        self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.out = Some(BufWriter::new(file));
        self.counters.rotations.fetch_add(1, Relaxed);
        Ok(())
    }
}

enum WriteFailure {
    Full,
    Io,
}

/// The name of the `n`th rotated file of `path` (`calls.jsonl.1` is the newest).
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}
