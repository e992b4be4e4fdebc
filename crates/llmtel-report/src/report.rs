//! [`Report`]: a period of the call log, aggregated.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use jiff::{Timestamp, ToSpan};
use llmtel::Usd;
use llmtel_score::{
    CONTENT_FILTER_REASONS, DdSketch, QualityInputs, QualityWeights, TRUNCATION_REASONS,
};
use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use crate::log::rotated;
use crate::period::Period;
use crate::record::{AlertEntry, CallRecord, EvaluationEntry, Record, usd_exact};

/// Name of the evaluation records that carry a user's rating.
pub const USER_FEEDBACK: &str = "user_feedback";
/// Key of calls that name no model, user or feature.
pub const NONE: &str = "(none)";
/// Malformed lines listed in a report (all are counted).
pub const MAX_MALFORMED_LISTED: usize = 10;
/// Most buckets a series may have.
pub const MAX_BUCKETS: usize = 10_000;

/// The length of the series' buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// One hour (UTC).
    Hour,
    /// One day (UTC).
    Day,
}

impl Bucket {
    fn seconds(self) -> i64 {
        match self {
            Bucket::Hour => 3600,
            Bucket::Day => 86_400,
        }
    }

    /// `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }
}

/// Report settings; build with [`Report::builder`].
#[derive(Clone, Debug)]
pub struct ReportBuilder {
    period: Period,
    bucket: Option<Bucket>,
    worst: usize,
    weights: QualityWeights,
}

impl Default for ReportBuilder {
    fn default() -> Self {
        ReportBuilder {
            period: Period::all(),
            bucket: None,
            worst: 10,
            weights: QualityWeights::default(),
        }
    }
}

impl ReportBuilder {
    /// The period covered (default: everything in the log).
    pub fn with_period(mut self, period: Period) -> Self {
        self.period = period;
        self
    }

    /// The series' bucket length (default: hours for periods up to 48 hours, else days).
    pub fn with_bucket(mut self, bucket: Bucket) -> Self {
        self.bucket = Some(bucket);
        self
    }

    /// How many of the worst calls by quality score to list (default 10).
    pub fn with_worst_calls(mut self, n: usize) -> Self {
        self.worst = n;
        self
    }

    /// The weights of the per-call quality score (default: `llmtel-quality`'s defaults;
    /// give the weights of your monitor to get the same scores).
    pub fn with_weights(mut self, weights: QualityWeights) -> Self {
        self.weights = weights;
        self
    }

    /// Builds the report from the log at `path` and its rotated files (`path.N` .. `path.1`:
    /// every file of the directory named `path` and a number, oldest first, gaps skipped).
    ///
    /// Every file is opened once, before anything is read, and read up to the length it had
    /// then: a rotation or calls appended while the report is built change nothing in it. A
    /// rotation while the files are listed and opened has them listed and opened again (a
    /// file it moved was missed).
    /// `path` itself may be missing when rotated files exist (a rotation that could not
    /// open the new file).
    ///
    /// # Errors
    /// [`ReportError::NotFound`] (neither `path` nor a rotated file), [`ReportError::Read`],
    /// [`ReportError::Empty`] (no record at all), [`ReportError::Period`] (too many buckets).
    pub fn from_log(&self, path: impl AsRef<Path>) -> Result<Report, ReportError> {
        let path = path.as_ref();
        let source = Source::open(path)?;
        self.build(&source, path)
    }

    /// Builds the report from log lines read from `reader` (read into memory first). As in
    /// a file, a line that is not UTF-8 is read with its bad bytes replaced (and counted
    /// malformed when it is then no record).
    ///
    /// # Errors
    /// As [`ReportBuilder::from_log`].
    pub fn from_reader(&self, mut reader: impl Read) -> Result<Report, ReportError> {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|source| ReportError::Read {
                path: "-".into(),
                source,
            })?;
        self.build(&Source::Bytes(bytes), Path::new("-"))
    }

    fn build(&self, source: &Source, path: &Path) -> Result<Report, ReportError> {
        let first = self.first_pass(source, path)?;
        self.second_pass(source, first)
    }

    /// Pass 1: evaluations by response id, the time range of the period's calls, alerts,
    /// drops and the log's health.
    fn first_pass(&self, source: &Source, path: &Path) -> Result<FirstPass, ReportError> {
        let mut health = LogHealth::default();
        let mut evals: HashMap<String, Vec<EvaluationEntry>> = HashMap::new();
        let mut range: Option<(Timestamp, Timestamp)> = None;
        let mut alerts = Vec::new();
        let mut unmatched_window = Vec::new();
        source.scan(|file, line_no, line| {
            health.lines += 1;
            // Redacted on read too: a log written before llmtel-report redacted its lines
            // (or by another tool) renders without keys in every format.
            let rec = match serde_json::from_str::<Record>(&llmtel::redact(line)) {
                Ok(r) => r,
                Err(e) => {
                    health.malformed += 1;
                    if health.malformed_lines.len() < MAX_MALFORMED_LISTED {
                        health.malformed_lines.push(MalformedLine {
                            file: file.to_owned(),
                            line: line_no,
                            error: e.to_string(),
                        });
                    }
                    return;
                }
            };
            health.records += 1;
            let in_period = self.period.contains(rec.time());
            match rec {
                Record::Call(c) if in_period => {
                    let t = c.time;
                    range = Some(match range {
                        None => (t, t),
                        Some((a, b)) => (a.min(t), b.max(t)),
                    });
                }
                Record::Call(_) => health.outside_period += 1,
                Record::Evaluation(e) => match &e.response_id {
                    Some(r) => evals.entry(r.clone()).or_default().push(e),
                    None if in_period => unmatched_window.push(e),
                    None => {}
                },
                Record::Alert(a) if in_period => alerts.push(a),
                Record::Alert(_) => health.outside_period += 1,
                Record::Dropped(d) => {
                    if in_period {
                        health.dropped_by_logger =
                            health.dropped_by_logger.saturating_add(d.records);
                    }
                    // Full before the period's end (before its start too): the records of
                    // the period after that time were dropped.
                    if d.log_full && self.period.to.is_none_or(|to| d.time < to) {
                        health.log_full_since =
                            Some(health.log_full_since.map_or(d.time, |t| t.min(d.time)));
                    }
                }
            }
        })?;
        if health.records == 0 {
            return Err(ReportError::Empty {
                path: path.to_owned(),
                lines: health.lines,
                malformed: health.malformed,
                first: health
                    .malformed_lines
                    .first()
                    .map(|m| format!("; first: line {}: {}", m.line, m.error))
                    .unwrap_or_default(),
            });
        }
        Ok(FirstPass {
            health,
            evals,
            range,
            alerts,
            unmatched_window,
        })
    }

    /// Pass 2: the period's calls, over the same lines as pass 1.
    fn second_pass(&self, source: &Source, first: FirstPass) -> Result<Report, ReportError> {
        let FirstPass {
            health,
            evals,
            range,
            mut alerts,
            unmatched_window,
        } = first;
        let from = self.period.from.or(range.map(|r| r.0));
        let to = self.period.to.or(range.map(|r| r.1));
        let bucket = self.bucket.unwrap_or(match (from, to) {
            (Some(f), Some(t)) if t.as_second() - f.as_second() > 48 * 3600 => Bucket::Day,
            _ => Bucket::Hour,
        });
        let mut agg = Aggregator::new(from, to, bucket, self)?;
        source.scan(|_, _, line| {
            if let Ok(Record::Call(c)) = serde_json::from_str::<Record>(&llmtel::redact(line)) {
                if self.period.contains(c.time) {
                    let e = c
                        .response_id
                        .as_ref()
                        .and_then(|r| evals.get(r))
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    agg.add(*c, e);
                }
            }
        })?;
        let unmatched_evals = evals
            .iter()
            .filter(|(r, _)| !agg.matched_responses.contains_key(*r))
            .flat_map(|(_, v)| v.iter())
            .filter(|e| self.period.contains(e.time))
            .count()
            + unmatched_window.len();
        alerts.sort_by(|a, b| {
            (a.event_time(), &a.name, &a.state).cmp(&(b.event_time(), &b.name, &b.state))
        });
        Ok(agg.finish(Period { from, to }, alerts, unmatched_evals as u64, health))
    }
}

/// What pass 1 found, for pass 2.
struct FirstPass {
    health: LogHealth,
    evals: HashMap<String, Vec<EvaluationEntry>>,
    range: Option<(Timestamp, Timestamp)>,
    alerts: Vec<AlertEntry>,
    unmatched_window: Vec<EvaluationEntry>,
}

/// A log file, opened once and read (by both passes) up to the length it had then.
struct LogFile {
    path: PathBuf,
    name: String,
    file: File,
    len: u64,
    /// The file opened ([`identity`]).
    identity: Option<(u64, u64)>,
}

impl LogFile {
    /// Whether its name still names the file opened (no rotation moved it since).
    fn still_named(&self) -> bool {
        match self.identity {
            Some(id) => std::fs::metadata(&self.path).is_ok_and(|m| identity(&m) == Some(id)),
            None => true,
        }
    }
}

/// Where the log lines come from.
enum Source {
    Files(Vec<LogFile>),
    Bytes(Vec<u8>),
}

/// The rotated files of `path` (`path.N`, any number from 1), oldest (highest number) first.
///
/// Found by listing the directory, not by trying `path.1`, `path.2`, ... until one is
/// missing: a rotation cut between its shift of the older files and its rename of `path`
/// leaves no `path.1`, and every older file was then left out.
fn rotated_files(path: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let Some(name) = path.file_name() else {
        return Ok(Vec::new());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        // A directory that can be searched but not listed: the consecutive numbers only.
        Err(_) => {
            let mut v: Vec<PathBuf> = (1..)
                .map(|n| rotated(path, n))
                .take_while(|p| p.exists())
                .collect();
            v.reverse();
            return Ok(v);
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ReportError::Read {
            path: dir.to_owned(),
            source,
        })?;
        if let Some(n) = rotation_number(name, &entry.file_name()) {
            found.push(n);
        }
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found.into_iter().map(|n| rotated(path, n)).collect())
}

/// `n` when `entry` is `name.n` (`n` from 1, written as [`rotated`] writes it).
fn rotation_number(name: &OsStr, entry: &OsStr) -> Option<usize> {
    let digits = entry
        .as_encoded_bytes()
        .strip_prefix(name.as_encoded_bytes())?
        .strip_prefix(b".")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// How many times a report lists and opens the log's files when a rotation moves them while
/// they are opened.
const OPEN_ATTEMPTS: usize = 4;

/// The file `meta` describes, to tell whether a name still names the file opened by it
/// (unix: device and inode; elsewhere every file is taken for unchanged).
#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl Source {
    /// Opens the log at `path` and its rotated files, oldest first, and notes their
    /// lengths. See [`Source::open_listed`].
    fn open(path: &Path) -> Result<Source, ReportError> {
        Self::open_listed(path, rotated_files(path)?)
    }

    /// Opens the log at `path` and its rotated files `listed` (oldest first). Opening oldest
    /// first, a rotation meanwhile (a file moves to the next number) cannot make a file be
    /// opened twice, but it can make one be missed: `path.1` opened after the rotation is
    /// the former `path`, and the former `path.1` (now `path.2`, opened before it moved or
    /// never listed) was left out of the report. When the files listed are no longer those
    /// of the directory, or a name no longer names the file opened by it, the files are
    /// listed and opened again (at most [`OPEN_ATTEMPTS`] times).
    fn open_listed(path: &Path, mut listed: Vec<PathBuf>) -> Result<Source, ReportError> {
        let mut attempt = 1;
        loop {
            let files = Self::open_files(path, listed.clone())?;
            let now = rotated_files(path)?;
            let moved = now != listed || !files.iter().all(LogFile::still_named);
            if !moved || attempt >= OPEN_ATTEMPTS {
                return Ok(Source::Files(files));
            }
            attempt += 1;
            listed = now;
        }
    }

    /// Opens `names` and `path` (the live file), skipping those missing.
    fn open_files(path: &Path, mut names: Vec<PathBuf>) -> Result<Vec<LogFile>, ReportError> {
        names.push(path.to_owned());
        let mut files = Vec::with_capacity(names.len());
        for p in names {
            let read_err = |source| ReportError::Read {
                path: p.clone(),
                source,
            };
            let file = match File::open(&p) {
                Ok(f) => f,
                // Gone since the listing (the oldest, removed by a rotation), or `path`
                // missing after a rotation that could not open the new file.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(read_err(e)),
            };
            let meta = file.metadata().map_err(read_err)?;
            files.push(LogFile {
                name: p.display().to_string(),
                path: p,
                file,
                len: meta.len(),
                identity: identity(&meta),
            });
        }
        if files.is_empty() {
            return Err(ReportError::NotFound {
                path: path.to_owned(),
            });
        }
        Ok(files)
    }

    /// Calls `f(file, line number, line)` for every non-blank line.
    fn scan(&self, mut f: impl FnMut(&str, u64, &str)) -> Result<(), ReportError> {
        match self {
            Source::Bytes(b) => {
                scan_lines(&b[..], "-", &mut f).map_err(|source| ReportError::Read {
                    path: "-".into(),
                    source,
                })?;
            }
            Source::Files(files) => {
                for lf in files {
                    let read_err = |source| ReportError::Read {
                        path: lf.path.clone(),
                        source,
                    };
                    let mut file = &lf.file;
                    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
                    scan_lines(BufReader::new(file.take(lf.len)), &lf.name, &mut f)
                        .map_err(read_err)?;
                }
            }
        }
        Ok(())
    }
}

/// Calls `f(name, line number, line)` for every non-blank line of `reader`; a line that is
/// not UTF-8 is read with its bad bytes replaced.
fn scan_lines(
    reader: impl BufRead,
    name: &str,
    f: &mut impl FnMut(&str, u64, &str),
) -> std::io::Result<()> {
    for (i, line) in reader.split(b'\n').enumerate() {
        let bytes = line?;
        let line = String::from_utf8_lossy(&bytes);
        if !line.trim().is_empty() {
            f(name, i as u64 + 1, &line);
        }
    }
    Ok(())
}

/// Requests, errors, cost and tokens of a group of calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostRow {
    /// The model, user or feature (`(none)` when calls name none).
    pub key: String,
    /// Calls.
    pub requests: u64,
    /// Failed calls.
    pub errors: u64,
    /// Exact total cost of the priced calls, USD (decimal string in JSON).
    #[serde(with = "usd_exact")]
    pub cost: Usd,
    /// Calls that could not be priced (unknown model, no usage).
    pub unpriced: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl CostRow {
    fn add(&mut self, c: &CallRecord) {
        self.requests += 1;
        self.errors += u64::from(c.error_type.is_some());
        match c.cost_usd {
            Some(v) => self.cost = self.cost.saturating_add(v),
            None => self.unpriced += 1,
        }
        self.input_tokens = self.input_tokens.saturating_add(c.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(c.output_tokens);
    }
}

/// Latency quantiles of successful calls, seconds (from a DDSketch, 1 % relative accuracy).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_s: f64,
    /// 95th percentile.
    pub p95_s: f64,
}

fn latency_of(s: &DdSketch) -> Option<Latency> {
    Some(Latency {
        p50_s: s.quantile(0.5)?,
        p95_s: s.quantile(0.95)?,
    })
}

/// The totals of the period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Calls.
    pub requests: u64,
    /// Failed calls.
    pub errors: u64,
    /// Exact total cost of the priced calls, USD (decimal string in JSON).
    #[serde(with = "usd_exact")]
    pub cost: Usd,
    /// Calls that could not be priced (unknown model, no usage).
    pub unpriced: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// `errors / requests`.
    pub error_rate: Option<f64>,
    /// Latency of successful calls.
    pub latency: Option<Latency>,
    /// Average quality score of the scored calls.
    pub avg_quality_score: Option<f64>,
    /// Calls with a quality score.
    pub scored_calls: u64,
    /// Average user rating (`0..=1`) and how many.
    pub avg_rating: Option<f64>,
    /// User ratings of the period's calls.
    pub ratings: u64,
}

/// One bucket of the series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Start of the bucket.
    pub start: Timestamp,
    /// Calls.
    pub requests: u64,
    /// Failed calls.
    pub errors: u64,
    /// `errors / requests`; `None` without calls.
    pub error_rate: Option<f64>,
    /// Exact cost, USD.
    #[serde(with = "usd_exact")]
    pub cost: Usd,
    /// Latency of successful calls.
    pub latency: Option<Latency>,
    /// Average quality score.
    pub quality_score: Option<f64>,
}

/// An evaluator's average over the period's calls.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluatorSummary {
    /// Average score.
    pub avg: f64,
    /// Results.
    pub count: u64,
}

/// One of the worst calls by quality score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorstCall {
    /// The call's quality score.
    pub quality_score: f64,
    /// The evaluator scores and rating behind it.
    pub evaluations: BTreeMap<String, f64>,
    /// The call as logged (content only when it was captured).
    pub call: CallRecord,
}

/// Alerts of the period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertsSummary {
    /// Alerts that fired.
    pub firing: u64,
    /// Alerts that resolved.
    pub resolved: u64,
    /// Every alert event, in time order.
    pub events: Vec<AlertEntry>,
}

/// A line of the log that is not a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedLine {
    /// The file (`-` for a reader).
    pub file: String,
    /// Line number, from 1.
    pub line: u64,
    /// Why it is not a record.
    pub error: String,
}

/// What the report read: how complete it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogHealth {
    /// Non-blank lines read.
    pub lines: u64,
    /// Records read (every period).
    pub records: u64,
    /// Lines skipped as malformed.
    pub malformed: u64,
    /// The first malformed lines ([`MAX_MALFORMED_LISTED`]).
    pub malformed_lines: Vec<MalformedLine>,
    /// Records the logger dropped during the period (queue or file full): the report
    /// misses that many.
    pub dropped_by_logger: u64,
    /// When the log was full (its maximum size reached with no rotated file kept,
    /// `CallLogBuilder::with_max_files(0)`), if at or before the period's end: the log
    /// dropped every record after that, and counts only the first ones in
    /// `dropped_by_logger`.
    pub log_full_since: Option<Timestamp>,
    /// Calls and alerts outside the period.
    pub outside_period: u64,
    /// Evaluations of the period that match no call of the period.
    pub unmatched_evaluations: u64,
}

/// A report on a period of the call log: cost by model, user and feature; series of cost,
/// requests, error rate, latency and quality; alerts; the worst calls by quality score.
///
/// Serde: `to_json()` writes it, `serde_json::from_str` reads it back. Costs are exact
/// decimal strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When the report was made.
    pub generated_at: Timestamp,
    /// The period covered: as asked, with open ends set to the first and last call.
    pub period: Period,
    /// The series' bucket length.
    pub bucket: Bucket,
    /// Totals.
    pub totals: Totals,
    /// Cost by model, most expensive first.
    pub by_model: Vec<CostRow>,
    /// Cost by user (`user.id`), most expensive first.
    pub by_user: Vec<CostRow>,
    /// Cost by feature (`llmtel.feature`), most expensive first.
    pub by_feature: Vec<CostRow>,
    /// One point per bucket of the period, empty buckets included.
    pub series: Vec<SeriesPoint>,
    /// Evaluator averages over the period's calls (user ratings as `user_feedback`).
    pub evaluators: BTreeMap<String, EvaluatorSummary>,
    /// Alerts fired and resolved during the period.
    pub alerts: AlertsSummary,
    /// The worst calls by quality score, worst first.
    pub worst_calls: Vec<WorstCall>,
    /// What was read.
    pub log: LogHealth,
}

impl Report {
    /// Report settings.
    pub fn builder() -> ReportBuilder {
        ReportBuilder::default()
    }

    /// The report of `period` from the log at `path` (and its rotated files), with the
    /// default settings.
    ///
    /// # Errors
    /// As [`ReportBuilder::from_log`].
    pub fn from_log(path: impl AsRef<Path>, period: &Period) -> Result<Report, ReportError> {
        Report::builder().with_period(*period).from_log(path)
    }

    /// The report of `period` from log lines read from `reader`.
    ///
    /// # Errors
    /// As [`ReportBuilder::from_reader`].
    pub fn from_reader(reader: impl Read, period: &Period) -> Result<Report, ReportError> {
        Report::builder().with_period(*period).from_reader(reader)
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// The quality score of a call and the evaluations behind it.
fn score_call(
    c: &CallRecord,
    evals: &[EvaluationEntry],
    w: &QualityWeights,
) -> (Option<f64>, QualityInputs) {
    let ok = c.error_type.is_none();
    let has = |set: &[&str]| {
        c.finish_reasons
            .iter()
            .any(|r| set.iter().any(|s| r.eq_ignore_ascii_case(s)))
    };
    let mut q = QualityInputs {
        success: Some(ok),
        complete: Some(!(has(TRUNCATION_REASONS) || has(CONTENT_FILTER_REASONS))),
        latency_s: Some(c.latency_s),
        ..Default::default()
    };
    // In log order: a later result replaces an earlier one of the same name, as in the
    // monitor.
    for e in evals {
        let Some(s) = e.score else { continue };
        if e.name == USER_FEEDBACK {
            q.rating = Some(s);
        } else {
            q.set_evaluation(&e.name, s);
        }
    }
    (w.score(&q), q)
}

#[derive(Debug)]
struct BucketAgg {
    requests: u64,
    errors: u64,
    cost: Usd,
    latency: DdSketch,
    quality: (f64, u64),
}

impl BucketAgg {
    fn new() -> Self {
        BucketAgg {
            requests: 0,
            errors: 0,
            cost: Usd::ZERO,
            latency: DdSketch::default_latency(),
            quality: (0.0, 0),
        }
    }
}

/// A candidate of the worst calls, ordered so that the heap's top is the best of them.
#[derive(Debug)]
struct Candidate(WorstCall);

impl Candidate {
    fn key(&self) -> (f64, Timestamp) {
        (self.0.quality_score, self.0.call.time)
    }
}

impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        let (a, ta) = self.key();
        let (b, tb) = o.key();
        a.total_cmp(&b).then(ta.cmp(&tb))
    }
}

struct Aggregator<'a> {
    cfg: &'a ReportBuilder,
    origin: Option<Timestamp>,
    bucket: Bucket,
    buckets: Vec<BucketAgg>,
    total: CostRow,
    latency: DdSketch,
    quality: (f64, u64),
    rating: (f64, u64),
    by_model: BTreeMap<String, CostRow>,
    by_user: BTreeMap<String, CostRow>,
    by_feature: BTreeMap<String, CostRow>,
    evaluators: BTreeMap<String, (f64, u64)>,
    worst: BinaryHeap<Candidate>,
    matched_responses: HashMap<String, ()>,
}

/// The start of the bucket holding `t`.
fn floor(t: Timestamp, b: Bucket) -> Timestamp {
    let s = t.as_second().div_euclid(b.seconds()) * b.seconds();
    Timestamp::from_second(s).unwrap_or(t)
}

impl<'a> Aggregator<'a> {
    fn new(
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        bucket: Bucket,
        cfg: &'a ReportBuilder,
    ) -> Result<Self, ReportError> {
        let origin = from.map(|f| floor(f, bucket));
        let n = match (origin, to) {
            (Some(o), Some(t)) => {
                // `to` is exclusive when given, the last call's time when not.
                let last = if cfg.period.to.is_some() {
                    t.checked_sub(1.nanosecond()).unwrap_or(t)
                } else {
                    t
                };
                let span = (last.as_second() - o.as_second()).max(0);
                (span / bucket.seconds()) as usize + 1
            }
            _ => 0,
        };
        if n > MAX_BUCKETS {
            let range = match (from, to) {
                (Some(f), Some(t)) => format!(" ({f} to {t})"),
                _ => String::new(),
            };
            let what = match (bucket, cfg.period.from.is_some()) {
                (Bucket::Hour, _) => "use a shorter period or --bucket day",
                // The period is the log's first to last call: a call dated far back (a
                // device clock before NTP, a missing time) makes it this long.
                (Bucket::Day, false) => {
                    "give the period to report with --from (and --to): the log's calls span \
                     that long, the earliest may carry a wrong date"
                }
                (Bucket::Day, true) => "use a shorter period (--from, --to)",
            };
            return Err(ReportError::Period(format!(
                "{n} {} buckets{range} is more than {MAX_BUCKETS}: {what}",
                bucket.as_str()
            )));
        }
        Ok(Aggregator {
            cfg,
            origin,
            bucket,
            buckets: (0..n).map(|_| BucketAgg::new()).collect(),
            total: CostRow {
                key: "*".into(),
                ..Default::default()
            },
            latency: DdSketch::default_latency(),
            quality: (0.0, 0),
            rating: (0.0, 0),
            by_model: BTreeMap::new(),
            by_user: BTreeMap::new(),
            by_feature: BTreeMap::new(),
            evaluators: BTreeMap::new(),
            worst: BinaryHeap::new(),
            matched_responses: HashMap::new(),
        })
    }

    fn add(&mut self, c: CallRecord, evals: &[EvaluationEntry]) {
        if let Some(r) = &c.response_id {
            if !evals.is_empty() {
                self.matched_responses.insert(r.clone(), ());
            }
        }
        let (score, inputs) = score_call(&c, evals, &self.cfg.weights);
        self.total.add(&c);
        let key = |v: &Option<String>| v.clone().unwrap_or_else(|| NONE.to_owned());
        for (map, k) in [
            (&mut self.by_model, key(&c.model)),
            (&mut self.by_user, key(&c.user)),
            (&mut self.by_feature, key(&c.feature)),
        ] {
            map.entry(k.clone())
                .or_insert_with(|| CostRow {
                    key: k,
                    ..Default::default()
                })
                .add(&c);
        }
        let ok = c.error_type.is_none();
        if ok {
            self.latency.add(c.latency_s);
        }
        if let Some(s) = score {
            self.quality.0 += s;
            self.quality.1 += 1;
        }
        if let Some(r) = inputs.rating {
            self.rating.0 += r;
            self.rating.1 += 1;
        }
        for (n, s) in &inputs.evaluations {
            let e = self.evaluators.entry(n.clone()).or_default();
            e.0 += s;
            e.1 += 1;
        }
        if let Some(r) = inputs.rating {
            let e = self.evaluators.entry(USER_FEEDBACK.into()).or_default();
            e.0 += r;
            e.1 += 1;
        }
        if let Some(o) = self.origin {
            let i = (c.time.as_second() - o.as_second()).div_euclid(self.bucket.seconds());
            if let Some(b) = usize::try_from(i)
                .ok()
                .and_then(|i| self.buckets.get_mut(i))
            {
                b.requests += 1;
                b.errors += u64::from(!ok);
                if let Some(v) = c.cost_usd {
                    b.cost = b.cost.saturating_add(v);
                }
                if ok {
                    b.latency.add(c.latency_s);
                }
                if let Some(s) = score {
                    b.quality.0 += s;
                    b.quality.1 += 1;
                }
            }
        }
        if let (Some(s), true) = (score, self.cfg.worst > 0) {
            let evaluations: BTreeMap<String, f64> = inputs
                .evaluations
                .iter()
                .cloned()
                .chain(inputs.rating.map(|r| (USER_FEEDBACK.to_owned(), r)))
                .collect();
            let cand = Candidate(WorstCall {
                quality_score: s,
                evaluations,
                call: c,
            });
            if self.worst.len() < self.cfg.worst {
                self.worst.push(cand);
            } else if self.worst.peek().is_some_and(|top| cand < *top) {
                self.worst.pop();
                self.worst.push(cand);
            }
        }
    }

    fn finish(
        self,
        period: Period,
        alerts: Vec<AlertEntry>,
        unmatched_evaluations: u64,
        mut log: LogHealth,
    ) -> Report {
        log.unmatched_evaluations = unmatched_evaluations;
        let avg = |(s, n): (f64, u64)| (n > 0).then(|| s / n as f64);
        let rows = |m: BTreeMap<String, CostRow>| {
            let mut v: Vec<CostRow> = m.into_values().collect();
            v.sort_by(|a, b| b.cost.cmp(&a.cost).then(a.key.cmp(&b.key)));
            v
        };
        let origin = self.origin;
        let bucket = self.bucket;
        let series = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| SeriesPoint {
                start: origin
                    .and_then(|o| {
                        Timestamp::from_second(o.as_second() + i as i64 * bucket.seconds()).ok()
                    })
                    .unwrap_or_default(),
                requests: b.requests,
                errors: b.errors,
                error_rate: (b.requests > 0).then(|| b.errors as f64 / b.requests as f64),
                cost: b.cost,
                latency: latency_of(&b.latency),
                quality_score: avg(b.quality),
            })
            .collect();
        let mut worst: Vec<WorstCall> = self
            .worst
            .into_sorted_vec()
            .into_iter()
            .map(|c| c.0)
            .collect();
        worst.truncate(self.cfg.worst);
        let t = &self.total;
        Report {
            generated_at: Timestamp::now(),
            period,
            bucket,
            totals: Totals {
                error_rate: (t.requests > 0).then(|| t.errors as f64 / t.requests as f64),
                latency: latency_of(&self.latency),
                avg_quality_score: avg(self.quality),
                scored_calls: self.quality.1,
                avg_rating: avg(self.rating),
                ratings: self.rating.1,
                requests: t.requests,
                errors: t.errors,
                cost: t.cost,
                unpriced: t.unpriced,
                input_tokens: t.input_tokens,
                output_tokens: t.output_tokens,
            },
            by_model: rows(self.by_model),
            by_user: rows(self.by_user),
            by_feature: rows(self.by_feature),
            series,
            evaluators: self
                .evaluators
                .into_iter()
                .map(|(k, (s, n))| {
                    (
                        k,
                        EvaluatorSummary {
                            avg: s / n as f64,
                            count: n,
                        },
                    )
                })
                .collect(),
            alerts: AlertsSummary {
                firing: alerts.iter().filter(|a| !a.is_resolved()).count() as u64,
                resolved: alerts.iter().filter(|a| a.is_resolved()).count() as u64,
                events: alerts,
            },
            worst_calls: worst,
            log,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report
mod tests {
    //! Both passes of a report read the same lines: the files as they were when the report
    //! opened them, whatever a rotation or new calls do to the log between the passes.
    use std::io::Write;

    use super::*;

    fn temp_log(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("llmtel-report-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("calls.jsonl")
    }

    /// A call line at `time` costing `cost` dollars.
    fn call(time: &str, cost: &str) -> String {
        format!(
            "{{\"kind\":\"call\",\"time\":\"{time}\",\"model\":\"gpt-4o\",\"input_tokens\":10,\"cost_usd\":\"{cost}\"}}\n"
        )
    }

    fn first_three() -> String {
        [
            call("2025-06-01T01:30:00Z", "0.01"),
            call("2025-06-01T02:30:00Z", "0.02"),
            call("2025-06-01T03:30:00Z", "0.03"),
        ]
        .concat()
    }

    /// The report of the log at `path`, with `between` done to the log between the passes.
    fn report_with(path: &Path, between: impl FnOnce()) -> Report {
        let b = Report::builder();
        let source = Source::open(path).unwrap();
        let first = b.first_pass(&source, path).unwrap();
        between();
        b.second_pass(&source, first).unwrap()
    }

    /// The totals are the sums of what the report lists, and those of the three first calls.
    fn assert_first_three(r: &Report) {
        let cost = Usd::parse_decimal("0.06").unwrap();
        assert_eq!(r.totals.requests, 3, "{:?}", r.totals);
        assert_eq!(r.totals.cost, cost);
        assert_eq!(r.log.records, 3);
        assert_eq!(r.series.len(), 3);
        assert_eq!(r.series.iter().map(|p| p.requests).sum::<u64>(), 3);
        let series_cost = r
            .series
            .iter()
            .fold(Usd::ZERO, |a, p| a.saturating_add(p.cost));
        assert_eq!(series_cost, cost);
        assert_eq!(r.by_model.len(), 1);
        assert_eq!((r.by_model[0].requests, r.by_model[0].cost), (3, cost));
    }

    #[test]
    fn a_rotation_between_the_passes_changes_nothing() {
        // Pass 2 opened the files again by name: after a rotation it read the new live file
        // (other calls, none in the series pass 1 laid out) and missed the rotated one.
        let path = temp_log("rotated-between");
        std::fs::write(&path, first_three()).unwrap();
        let r = report_with(&path, || {
            std::fs::rename(&path, rotated(&path, 1)).unwrap();
            let later = [
                call("2025-06-03T04:30:00Z", "0.50"),
                call("2025-06-03T05:30:00Z", "0.50"),
            ];
            std::fs::write(&path, later.concat()).unwrap();
        });
        assert_first_three(&r);
    }

    #[test]
    fn a_rotation_while_the_files_are_opened_misses_no_file() {
        // The files were listed, then opened oldest first: a rotation in between made
        // `path.1` the former live file, and the former `path.1` (now `path.2`, not listed)
        // was left out of the report.
        let path = temp_log("rotated-while-opened");
        std::fs::write(rotated(&path, 1), call("2025-06-01T01:30:00Z", "0.01")).unwrap();
        std::fs::write(&path, call("2025-06-01T02:30:00Z", "0.02")).unwrap();
        let listed = rotated_files(&path).unwrap();
        // The writer rotates: path.1 -> path.2, path -> path.1, a new path.
        std::fs::rename(rotated(&path, 1), rotated(&path, 2)).unwrap();
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        std::fs::write(&path, call("2025-06-01T03:30:00Z", "0.03")).unwrap();
        let b = Report::builder();
        let source = Source::open_listed(&path, listed).unwrap();
        let first = b.first_pass(&source, &path).unwrap();
        assert_first_three(&b.second_pass(&source, first).unwrap());
    }

    #[test]
    fn calls_appended_between_the_passes_are_left_out() {
        // Pass 2 read the file to its new end: calls logged after pass 1 were in the totals,
        // outside the series and period pass 1 laid out.
        let path = temp_log("appended-between");
        std::fs::write(&path, first_three()).unwrap();
        let r = report_with(&path, || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(call("2025-06-05T00:30:00Z", "0.40").as_bytes())
                .unwrap();
        });
        assert_first_three(&r);
    }
}
