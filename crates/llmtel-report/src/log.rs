//! [`CallLog`]: the durable record of LLM calls, evaluations and alerts, as JSON lines.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

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
    /// (`with_max_files(0)`; the file's last line then says the log is full), or because
    /// one record is larger than the maximum size.
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
    /// With 0, the log stops at its maximum size and counts what it drops: records stop
    /// short of it by the size of a `dropped` line, and that last line says the log is full
    /// (from then on every record is dropped), so that reports say so.
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
        let (file, size) = open_log(&self.path)?;
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
            unflushed: 0,
            retry_at: None,
            marked_drops: None,
            marker_room: marker_room(),
            full: false,
            marked_full: false,
            full_marked: false,
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

/// Opens (creates or appends to) the log at `path`; returns it and its size. A last line
/// left without its newline (a crash or a failed write cut it) is ended first, so the next
/// record starts a line of its own (appended to the cut one, both would be unreadable).
fn open_log(path: &Path) -> Result<(File, u64), LogError> {
    let err = |source| LogError::Open {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    let mut size = file.metadata().map_err(err)?.len();
    if size > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1))
            .and_then(|_| file.read_exact(&mut last))
            .map_err(err)?;
        if last[0] != b'\n' {
            file.write_all(b"\n").map_err(err)?;
            size += 1;
        }
    }
    Ok((file, size))
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
    /// Records in `out`'s buffer: counted as written once the buffer reached the file.
    unflushed: u64,
    /// After a failed open or rotation: no new attempt before this (records are dropped and
    /// counted meanwhile), so a failing file system is not retried on every record.
    retry_at: Option<Instant>,
    /// The drops a `dropped` line in the buffer reports: marked reported once the buffer
    /// reached the file.
    marked_drops: Option<u64>,
    /// The size of the longest `dropped` line: with no rotation kept, what records and
    /// other `dropped` lines leave free at the end of the file for the line saying it is
    /// full.
    marker_room: u64,
    /// No rotation kept, and the file is full (a record found no room): every record is
    /// dropped, and the next `dropped` line says the log is full.
    full: bool,
    /// The `dropped` line in the buffer says the log is full.
    marked_full: bool,
    /// A line saying the log is full reached the file: it is the last.
    full_marked: bool,
}

/// The length of the longest `dropped` line, newline included.
fn marker_room() -> u64 {
    [jiff::Timestamp::MIN, jiff::Timestamp::MAX]
        .into_iter()
        .map(|time| {
            serde_json::to_string(&Record::Dropped(DroppedEntry {
                time,
                records: u64::MAX,
                log_full: true,
            }))
            .map_or(256, |l| l.len() as u64 + 1)
        })
        .max()
        .unwrap_or(256)
}

/// How long after a failed open or rotation the writer tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl Job for Writer {
    type Item = Box<Record>;

    fn process(&mut self, batch: Vec<Box<Record>>) -> Result<(), String> {
        for r in batch {
            self.write(*r);
        }
        self.report_drops();
        let _ = self.flush_out();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.report_drops();
        self.flush_out()
            .map_err(|e| format!("flushing {}: {e}", self.path.display()))
    }
}

impl Writer {
    /// Writes what is buffered to the file: its records are written, or, when the write
    /// fails, dropped and counted ([`Writer::fail`]).
    fn flush_out(&mut self) -> std::io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        match out.flush() {
            Ok(()) => {
                self.counters
                    .written
                    .fetch_add(std::mem::take(&mut self.unflushed), Relaxed);
                if let Some(n) = self.marked_drops.take() {
                    self.reported_drops = n;
                }
                if std::mem::take(&mut self.marked_full) {
                    self.full_marked = true;
                }
                Ok(())
            }
            Err(e) => {
                self.fail();
                Err(e)
            }
        }
    }

    /// A write to the file failed (a full disk, a quota, an I/O error): the records still
    /// buffered are dropped and counted (some may have reached the file before the error),
    /// the file is closed and opened again at the next record after [`RETRY_AFTER`]
    /// (ending a line the failure cut).
    fn fail(&mut self) {
        if let Some(out) = self.out.take() {
            // The buffer is given up, not written again on drop.
            drop(out.into_parts());
        }
        self.counters
            .dropped_write_error
            .fetch_add(std::mem::take(&mut self.unflushed), Relaxed);
        // A drop marker in the lost buffer is written again later.
        self.marked_drops = None;
        self.marked_full = false;
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
    }

    /// The open file, opened again after a failure when its retry time has come.
    fn out(&mut self) -> Result<&mut BufWriter<File>, WriteFailure> {
        if self.out.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return Err(WriteFailure::Io);
            }
            match open_log(&self.path) {
                Ok((file, size)) => {
                    self.size = size;
                    self.out = Some(BufWriter::new(file));
                    self.retry_at = None;
                }
                Err(_) => {
                    self.retry_at = Some(Instant::now() + RETRY_AFTER);
                    return Err(WriteFailure::Io);
                }
            }
        }
        self.out.as_mut().ok_or(WriteFailure::Io)
    }

    /// Writes a `dropped` line for the drops since the last one. The drops are marked
    /// reported only once the line reached the file ([`Writer::flush_out`]): a failed write or
    /// flush leaves them for the next line.
    ///
    /// With no rotation kept, a line leaves room for the one saying the log is full, written
    /// when the file is full (or this line finds no room): after it, no line is written.
    fn report_drops(&mut self) {
        if self.full_marked {
            return;
        }
        let now = self.counters.dropped();
        let reported = self.marked_drops.unwrap_or(self.reported_drops);
        if now <= reported {
            return;
        }
        let records = now - reported;
        let time = Timestamp::now();
        let mut done = self.write_marker(time, records, self.full);
        if matches!(done, Err(WriteFailure::Full)) && !self.full && self.max_files == 0 {
            // This line would take the room kept for the last one: the log is full.
            self.full = true;
            done = self.write_marker(time, records, true);
        }
        if done.is_ok() {
            self.marked_drops = Some(now);
            self.marked_full = self.full;
        }
    }

    /// Writes one `dropped` line (not counted as a record: a failure here is reflected in
    /// the count already).
    fn write_marker(
        &mut self,
        time: Timestamp,
        records: u64,
        log_full: bool,
    ) -> Result<(), WriteFailure> {
        let rec = Record::Dropped(DroppedEntry {
            time,
            records,
            log_full,
        });
        let mut line = serde_json::to_string(&rec).map_err(|_| WriteFailure::Io)?;
        line.push('\n');
        // The line saying the log is full takes the room kept for it.
        let keep = if log_full { 0 } else { self.room_kept() };
        self.write_line(&line, keep)
    }

    /// What a line leaves free at the end of the file: with no rotation kept, room for the
    /// `dropped` line saying the log is full.
    fn room_kept(&self) -> u64 {
        if self.max_files == 0 {
            self.marker_room
        } else {
            0
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
        if self.full {
            // The log stopped at its maximum size (no rotation kept).
            self.counters.dropped_file_full.fetch_add(1, Relaxed);
            return;
        }
        self.apply_policy(&mut rec);
        // The one redaction step (llmtel::redact) over the whole line: an API key used as a
        // user id, a scope value in an alert or quoted in captured content never reaches
        // the file.
        let mut line = match serde_json::to_string(&rec) {
            Ok(l) => llmtel::redact::redact_string(l),
            Err(_) => {
                self.counters.dropped_write_error.fetch_add(1, Relaxed);
                return;
            }
        };
        // The record and its newline in one write: a line is never left without its end by
        // a write of the record alone.
        line.push('\n');
        let keep = self.room_kept();
        match self.write_line(&line, keep) {
            Ok(()) => self.unflushed += 1,
            Err(WriteFailure::Full) => {
                self.counters.dropped_file_full.fetch_add(1, Relaxed);
                // No rotation kept, and a record that fits an empty file found no room:
                // the log is full. (A record larger than the file is dropped alone.)
                if self.max_files == 0 && line.len() as u64 + keep <= self.max_file_bytes {
                    self.full = true;
                }
            }
            Err(WriteFailure::Io) => {
                self.counters.dropped_write_error.fetch_add(1, Relaxed);
            }
        }
    }

    /// Writes `line` (with its newline) to the file, rotating it first when it would pass its
    /// maximum size. With no rotation kept, the line must leave `keep` bytes free.
    fn write_line(&mut self, line: &str, keep: u64) -> Result<(), WriteFailure> {
        let len = line.len() as u64;
        if len.saturating_add(keep) > self.max_file_bytes {
            return Err(WriteFailure::Full);
        }
        // Opened again after a failure first: its size is the file's.
        self.out()?;
        if self.size.saturating_add(len).saturating_add(keep) > self.max_file_bytes {
            if self.max_files == 0 {
                return Err(WriteFailure::Full);
            }
            self.rotate()?;
        }
        let out = self.out()?;
        if out.write_all(line.as_bytes()).is_err() {
            self.fail();
            return Err(WriteFailure::Io);
        }
        self.size += len;
        self.counters.bytes_written.fetch_add(len, Relaxed);
        Ok(())
    }

    /// `path` becomes `path.1`, `path.1` becomes `path.2`, ...; the oldest beyond
    /// `max_files` is removed; a new `path` is opened.
    ///
    /// The others shift only when `path.1` is taken: after a rotation that failed past the
    /// shift (the rename of `path`, or the new file's open: a file held open elsewhere, no
    /// file descriptor left), the next attempt does not shift again, which removed the
    /// oldest file on every record until the whole history was gone.
    fn rotate(&mut self) -> Result<(), WriteFailure> {
        if self.flush_out().is_err() {
            return Err(WriteFailure::Io);
        }
        self.out = None;
        if rotated(&self.path, 1).exists() {
            let _ = std::fs::remove_file(rotated(&self.path, self.max_files));
            for i in (1..self.max_files).rev() {
                let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
            }
        }
        if std::fs::rename(&self.path, rotated(&self.path, 1)).is_err() && self.path.exists() {
            self.retry_at = Some(Instant::now() + RETRY_AFTER);
            return Err(WriteFailure::Io);
        }
        self.counters.rotations.fetch_add(1, Relaxed);
        self.size = 0;
        self.out().map(|_| ())
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
