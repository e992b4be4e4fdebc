//! The budget engine: rules x store, reservations, spend recording, thresholds, alerts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use llmtel_alert::{Alert, AlertDispatcher, Severity};
use llmtel_pricing::Usd;

use crate::context::{CallContext, Estimate};
use crate::error::{BudgetExceeded, ReserveError, StoreError};
use crate::period::{Window, window};
use crate::rule::{Mode, Period, Rule};
use crate::status::RuleStatus;
use crate::store::{Amount, BudgetStore, MemoryStore, Meter, MeterTotals, ReserveOutcome};

/// The clock of the budgets (tests move it).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// What `reserve` does when the store cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailMode {
    /// Admit the call (unenforced) and count it; the default.
    #[default]
    Open,
    /// Refuse the call with [`ReserveError::StoreUnavailable`].
    Closed,
}

/// Counters of a [`Budgets`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// Calls whose spend was recorded (by the layer or a settle).
    pub recorded: u64,
    /// Reservations admitted.
    pub admitted: u64,
    /// Reservations refused by a limit.
    pub denied: u64,
    /// Reservations admitted unenforced because the store was down (fail-open).
    pub admitted_unenforced: u64,
    /// Reservations refused because the store was down (fail-closed).
    pub refused_store_down: u64,
    /// Store operations that failed.
    pub store_errors: u64,
    /// Spend writes waiting for the store to return.
    pub buffered: u64,
    /// Buffered spend writes written once the store returned.
    pub replayed: u64,
    /// Spend writes dropped: buffer or queue full (each counted, never silent).
    pub dropped: u64,
    /// Threshold alerts raised.
    pub alerts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    recorded: AtomicU64,
    admitted: AtomicU64,
    denied: AtomicU64,
    admitted_unenforced: AtomicU64,
    refused_store_down: AtomicU64,
    store_errors: AtomicU64,
    replayed: AtomicU64,
    dropped: AtomicU64,
    alerts: AtomicU64,
}

/// One charge of one rule and scope value.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) rule: usize,
    pub(crate) value: String,
}

#[derive(Debug)]
struct CommitOp {
    release: Option<(String, Vec<String>)>,
    targets: Vec<Target>,
    amount: Amount,
    at: Timestamp,
}

enum Msg {
    Commit(CommitOp),
    Flush(mpsc::Sender<()>),
}

#[derive(Debug)]
struct Bound {
    id: String,
    meters: Vec<String>,
}

/// Builds [`Budgets`].
pub struct BudgetsBuilder {
    rules: Vec<Rule>,
    store: Option<Arc<dyn BudgetStore>>,
    alerts: Option<AlertDispatcher>,
    clock: Option<Clock>,
    fail: FailMode,
    reservation_ttl: Duration,
    buffer: usize,
    queue: usize,
}

impl std::fmt::Debug for BudgetsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetsBuilder")
            .field("rules", &self.rules)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl BudgetsBuilder {
    /// Adds a rule.
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds rules.
    pub fn with_rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// The store (default: [`MemoryStore`]).
    pub fn with_store(mut self, store: Arc<dyn BudgetStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Where threshold and store alerts go.
    pub fn with_alerts(mut self, alerts: AlertDispatcher) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// The clock (default: the system clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// What `reserve` does when the store is down (default: fail open).
    pub fn with_fail_mode(mut self, mode: FailMode) -> Self {
        self.fail = mode;
        self
    }

    /// How long an unsettled reservation holds budget (default 10 minutes).
    pub fn with_reservation_ttl(mut self, ttl: Duration) -> Self {
        self.reservation_ttl = ttl;
        self
    }

    /// Spend writes kept while the store is down (default 100,000); beyond, dropped and
    /// counted.
    pub fn with_buffer_capacity(mut self, n: usize) -> Self {
        self.buffer = n;
        self
    }

    /// Capacity of the queue to the background writer of a remote store (default 100,000).
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }

    /// Builds the budgets; with a remote store, starts its writer thread.
    pub fn build(self) -> Budgets {
        let store: Arc<dyn BudgetStore> =
            self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let inner = Arc::new(Inner {
            rules: self.rules,
            store,
            alerts: self.alerts,
            clock: self.clock.unwrap_or_else(|| Arc::new(Timestamp::now)),
            fail: self.fail,
            ttl_ms: self.reservation_ttl.as_millis() as i64,
            counters: Counters::default(),
            pending: Mutex::new(VecDeque::new()),
            buffer_cap: self.buffer,
            store_down: AtomicBool::new(false),
            fired: Mutex::new(HashSet::new()),
            seen: Mutex::new(HashMap::new()),
            bound: Mutex::new(HashMap::new()),
            last: Mutex::new(HashMap::new()),
            n_bound: AtomicUsize::new(0),
            id_prefix: format!("{:x}.{:x}", std::process::id(), nanos & 0xffff_ffff),
            next_id: AtomicU64::new(0),
            writer: Mutex::new(None),
            writer_handle: Mutex::new(None),
        });
        if inner.store.is_remote() {
            let (tx, rx) = mpsc::sync_channel(self.queue);
            let weak = Arc::downgrade(&inner);
            if let Ok(h) = std::thread::Builder::new()
                .name("llmtel-budget".into())
                .spawn(move || writer(rx, weak))
            {
                *inner.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
                *inner
                    .writer_handle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(h);
            }
        }
        Budgets { inner }
    }
}

pub(crate) struct Inner {
    pub(crate) rules: Vec<Rule>,
    pub(crate) store: Arc<dyn BudgetStore>,
    alerts: Option<AlertDispatcher>,
    clock: Clock,
    fail: FailMode,
    ttl_ms: i64,
    counters: Counters,
    pending: Mutex<VecDeque<CommitOp>>,
    buffer_cap: usize,
    store_down: AtomicBool,
    fired: Mutex<HashSet<String>>,
    seen: Mutex<HashMap<usize, HashSet<String>>>,
    bound: Mutex<HashMap<u64, Bound>>,
    last: Mutex<HashMap<String, Amount>>,
    pub(crate) n_bound: AtomicUsize,
    id_prefix: String,
    next_id: AtomicU64,
    writer: Mutex<Option<SyncSender<Msg>>>,
    writer_handle: Mutex<Option<JoinHandle<()>>>,
}

/// Spend limits over a store: reserve before a call, record after it, see the status.
/// Cheap to clone (clones share everything).
///
/// ```
/// use llmtel_budget::{Budgets, CallContext, Estimate, Rule, Scope, Period};
/// use llmtel::Usd;
/// let budgets = Budgets::builder()
///     .with_rule(Rule::new("per-user", Scope::User, Period::Lifetime)
///         .with_limit_usd(Usd::parse_decimal("1").unwrap()))
///     .build();
/// let ctx = CallContext::new().with_user("u-1");
/// let r = budgets.reserve(&ctx, Estimate::new(Usd::parse_decimal("0.6").unwrap(), 0)).unwrap();
/// r.settle(Usd::parse_decimal("0.7").unwrap(), 0);
/// let err = budgets.reserve(&ctx, Estimate::new(Usd::parse_decimal("0.5").unwrap(), 0)).unwrap_err();
/// assert_eq!(err.exceeded().unwrap().spent, Usd::parse_decimal("0.7").unwrap());
/// ```
#[derive(Clone)]
pub struct Budgets {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("rules", &self.inner.rules.len())
            .field("store", &self.inner.store.kind())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.store.flush();
    }
}

impl Inner {
    pub(crate) fn counters_recorded_undo(&self) {
        self.counters.recorded.fetch_sub(1, Relaxed);
    }
}

fn picos(u: Usd) -> i64 {
    i64::try_from(u.picos()).unwrap_or(i64::MAX)
}

fn usd(p: i64) -> Usd {
    Usd::from_picos(u128::try_from(p.max(0)).unwrap_or(0))
}

impl Budgets {
    /// A builder with no rule, the memory store and fail-open.
    pub fn builder() -> BudgetsBuilder {
        BudgetsBuilder {
            rules: Vec::new(),
            store: None,
            alerts: None,
            clock: None,
            fail: FailMode::Open,
            reservation_ttl: Duration::from_secs(600),
            buffer: 100_000,
            queue: 100_000,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BudgetStore> {
        &self.inner.store
    }

    /// Now, by the budgets' clock.
    pub fn now(&self) -> Timestamp {
        (self.inner.clock)()
    }

    pub(crate) fn targets(&self, ctx: &CallContext) -> Vec<Target> {
        let mut out = Vec::new();
        for (i, r) in self.inner.rules.iter().enumerate() {
            let Some(v) = ctx.value(&r.scope) else {
                continue;
            };
            if !r.values.is_empty() && !r.values.iter().any(|x| x == v) {
                continue;
            }
            let value = match r.mode {
                Mode::PerValue => v.to_string(),
                Mode::Shared => "*".to_string(),
            };
            out.push(Target { rule: i, value });
        }
        out
    }

    pub(crate) fn meter(&self, t: &Target, now: Timestamp) -> Option<(Meter, Window)> {
        let rule = &self.inner.rules[t.rule];
        let w = window(&rule.period, now)?;
        let id = format!("{}\u{1f}{}", rule.name, t.value);
        let buckets = w.buckets.iter().map(|s| format!("{id}\u{1f}{s}")).collect();
        Some((
            Meter {
                id,
                buckets,
                ttl_ms: w.ttl_ms,
                limit_usd: rule.limits.usd.map(picos),
                limit_tokens: rule
                    .limits
                    .tokens
                    .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            },
            w,
        ))
    }

    fn next_id(&self) -> String {
        let n = self.inner.next_id.fetch_add(1, Relaxed);
        format!("{}.{n:x}", self.inner.id_prefix)
    }

    /// Reserves `estimate` against every rule that applies to the call, atomically: the
    /// call is admitted only if settled plus reserved spend plus the estimate stays within
    /// every limit. Settle the reservation with the actual cost, bind it to the LLM span (the
    /// [`crate::BudgetLayer`] settles it when the span closes), or drop it to release it; one
    /// never settled (crash) expires after the reservation TTL.
    ///
    /// A zero USD estimate (zero-priced model) is never refused by a USD limit.
    ///
    /// # Errors
    /// [`ReserveError::Exceeded`] with the rule, scope, spend, limit and reset time;
    /// [`ReserveError::StoreUnavailable`] when the store is down and the budgets fail closed.
    pub fn reserve(
        &self,
        ctx: &CallContext,
        estimate: Estimate,
    ) -> Result<Reservation, ReserveError> {
        let now = self.now();
        let targets = self.targets(ctx);
        let amount = Amount {
            usd: picos(estimate.usd),
            tokens: i64::try_from(estimate.tokens).unwrap_or(i64::MAX),
        };
        let mut charges = Vec::with_capacity(targets.len());
        for t in &targets {
            if let Some((m, _)) = self.meter(t, now) {
                charges.push((m, amount));
            }
        }
        let id = self.next_id();
        if charges.is_empty() {
            return Ok(Reservation::new(
                self.clone(),
                id,
                Vec::new(),
                targets,
                true,
            ));
        }
        let now_ms = now.as_millisecond();
        match self
            .inner
            .store
            .reserve(&id, &charges, now_ms, now_ms + self.inner.ttl_ms)
        {
            Ok(ReserveOutcome::Admitted) => {
                self.store_ok();
                self.inner.counters.admitted.fetch_add(1, Relaxed);
                let meters = charges.into_iter().map(|(m, _)| m.id).collect();
                Ok(Reservation::new(self.clone(), id, meters, targets, true))
            }
            Ok(ReserveOutcome::Denied(i)) => {
                self.store_ok();
                self.inner.counters.denied.fetch_add(1, Relaxed);
                let (m, _) = &charges[i.min(charges.len() - 1)];
                let t = &targets[i.min(targets.len() - 1)];
                let totals = self
                    .inner
                    .store
                    .totals(std::slice::from_ref(m), now_ms)
                    .ok()
                    .and_then(|v| v.first().copied())
                    .unwrap_or_default();
                Err(ReserveError::Exceeded(Box::new(
                    self.exceeded(t, m, totals, amount, now),
                )))
            }
            Err(e) => {
                self.store_failed(&e);
                match self.inner.fail {
                    FailMode::Open => {
                        self.inner
                            .counters
                            .admitted_unenforced
                            .fetch_add(1, Relaxed);
                        Ok(Reservation::new(
                            self.clone(),
                            id,
                            Vec::new(),
                            targets,
                            false,
                        ))
                    }
                    FailMode::Closed => {
                        self.inner.counters.refused_store_down.fetch_add(1, Relaxed);
                        Err(ReserveError::StoreUnavailable(e))
                    }
                }
            }
        }
    }

    fn exceeded(
        &self,
        t: &Target,
        m: &Meter,
        totals: MeterTotals,
        amount: Amount,
        now: Timestamp,
    ) -> BudgetExceeded {
        let rule = &self.inner.rules[t.rule];
        let usd_hit = m.limit_usd.is_some_and(|l| {
            amount.usd > 0
                && i128::from(totals.spent.usd)
                    + i128::from(totals.reserved.usd)
                    + i128::from(amount.usd)
                    > i128::from(l)
        });
        BudgetExceeded {
            rule: rule.name.to_string(),
            scope: format!("{}={}", rule.scope.attribute(), t.value),
            period: rule.period.name(),
            spent: usd(totals.spent.usd.saturating_add(totals.reserved.usd)),
            limit: m.limit_usd.map(usd).unwrap_or(Usd::ZERO),
            spent_tokens: totals
                .spent
                .tokens
                .saturating_add(totals.reserved.tokens)
                .max(0) as u64,
            limit_tokens: if usd_hit {
                None
            } else {
                m.limit_tokens.map(|l| l.max(0) as u64)
            },
            resets_at: window(&rule.period, now).and_then(|w| w.resets_at),
        }
    }

    /// Records the spend of a call made without a reservation (the [`crate::BudgetLayer`]
    /// does this for every LLM span). Never blocks on a remote store (queued).
    pub fn record(&self, ctx: &CallContext, cost: Usd, tokens: u64) -> Vec<(usize, f64)> {
        self.submit(None, ctx, cost, tokens)
    }

    pub(crate) fn submit(
        &self,
        release: Option<(String, Vec<String>)>,
        ctx: &CallContext,
        cost: Usd,
        tokens: u64,
    ) -> Vec<(usize, f64)> {
        let targets = self.targets(ctx);
        self.submit_targets(release, targets, cost, tokens)
    }

    pub(crate) fn submit_targets(
        &self,
        release: Option<(String, Vec<String>)>,
        targets: Vec<Target>,
        cost: Usd,
        tokens: u64,
    ) -> Vec<(usize, f64)> {
        self.inner.counters.recorded.fetch_add(1, Relaxed);
        self.note_seen(&targets);
        let op = CommitOp {
            release,
            targets,
            amount: Amount {
                usd: picos(cost),
                tokens: i64::try_from(tokens).unwrap_or(i64::MAX),
            },
            at: self.now(),
        };
        if !self.inner.store.is_remote() {
            return self.apply(op);
        }
        // Remote store: the utilization after this call as this process last saw it.
        let mut util = Vec::with_capacity(op.targets.len());
        {
            let last = self.inner.last.lock().unwrap_or_else(|e| e.into_inner());
            for t in &op.targets {
                if let Some((m, _)) = self.meter(t, op.at) {
                    let seen = last.get(m.current()).copied().unwrap_or_default();
                    util.push((t.rule, utilization(&m, seen.plus(op.amount))));
                }
            }
        }
        let w = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        match w.as_ref().map(|tx| tx.try_send(Msg::Commit(op))) {
            Some(Ok(())) => {}
            Some(Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_))) | None => {
                self.inner.counters.dropped.fetch_add(1, Relaxed);
            }
        }
        util
    }

    fn note_seen(&self, targets: &[Target]) {
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        for t in targets {
            let s = seen.entry(t.rule).or_default();
            if s.len() < 10_000 && !s.contains(&t.value) {
                s.insert(t.value.clone());
            }
        }
    }

    /// Applies one commit to the store; on failure buffers it. Returns (rule, utilization).
    fn apply(&self, op: CommitOp) -> Vec<(usize, f64)> {
        {
            let pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            if !pending.is_empty() && self.inner.store.is_remote() {
                drop(pending);
                self.buffer(op);
                return Vec::new();
            }
        }
        match self.try_apply(&op) {
            Ok(u) => u,
            Err(e) => {
                self.store_failed(&e);
                self.buffer(op);
                Vec::new()
            }
        }
    }

    fn buffer(&self, op: CommitOp) {
        let mut p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() >= self.inner.buffer_cap {
            self.inner.counters.dropped.fetch_add(1, Relaxed);
        } else {
            p.push_back(op);
        }
    }

    fn try_apply(&self, op: &CommitOp) -> Result<Vec<(usize, f64)>, StoreError> {
        let mut charges = Vec::with_capacity(op.targets.len());
        let mut windows = Vec::with_capacity(op.targets.len());
        for t in &op.targets {
            if let Some((m, w)) = self.meter(t, op.at) {
                charges.push((m, op.amount));
                windows.push((t, w));
            }
        }
        let release = op
            .release
            .as_ref()
            .map(|(id, ms)| (id.as_str(), ms.as_slice()));
        if charges.is_empty() && release.is_none() {
            return Ok(Vec::new());
        }
        let now_ms = (self.inner.clock)().as_millisecond();
        let spent = self.inner.store.commit(release, &charges, now_ms)?;
        self.store_ok();
        if self.inner.store.is_remote() {
            let mut last = self.inner.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.len() > 100_000 {
                last.clear();
            }
            for ((m, _), s) in charges.iter().zip(&spent) {
                last.insert(m.current().to_string(), *s);
            }
        }
        let mut out = Vec::with_capacity(spent.len());
        for (((m, _), (t, w)), s) in charges.iter().zip(&windows).zip(&spent) {
            let u = utilization(m, *s);
            out.push((t.rule, u));
            self.thresholds(t, m, w, *s, now_ms);
        }
        Ok(out)
    }

    fn thresholds(&self, t: &Target, m: &Meter, w: &Window, spent: Amount, now_ms: i64) {
        let rule = &self.inner.rules[t.rule];
        for &pct in &rule.thresholds {
            let crossed = |lim: Option<i64>, s: i64| {
                lim.is_some_and(|l| l > 0 && i128::from(s) * 100 >= i128::from(l) * i128::from(pct))
            };
            if !(crossed(m.limit_usd, spent.usd) || crossed(m.limit_tokens, spent.tokens)) {
                continue;
            }
            let key = format!("{}\u{1f}{}\u{1f}{pct}", m.id, w.period_start);
            {
                let mut f = self.inner.fired.lock().unwrap_or_else(|e| e.into_inner());
                if f.contains(&key) {
                    continue;
                }
                if f.len() > 100_000 {
                    f.clear();
                }
                f.insert(key.clone());
            }
            let ttl = match rule.period {
                Period::RollingHours(h) => i64::from(h) * 3_600_000,
                _ => w.ttl_ms,
            };
            match self.inner.store.fire_once(&key, ttl, now_ms) {
                Ok(true) => self.alert_threshold(rule, t, m, w, spent, pct),
                Ok(false) => {}
                Err(e) => {
                    self.store_failed(&e);
                    self.inner
                        .fired
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                }
            }
        }
    }

    fn alert_threshold(
        &self,
        rule: &Rule,
        t: &Target,
        m: &Meter,
        w: &Window,
        spent: Amount,
        pct: u32,
    ) {
        self.inner.counters.alerts.fetch_add(1, Relaxed);
        let Some(alerts) = &self.inner.alerts else {
            return;
        };
        let scope = format!("{}={}", rule.scope.attribute(), t.value);
        let of = match (m.limit_usd, m.limit_tokens) {
            (Some(l), _) => format!("{} of {}", usd(spent.usd), usd(l)),
            (None, Some(l)) => format!("{} of {l} tokens", spent.tokens),
            _ => String::new(),
        };
        let start = Timestamp::from_second(w.period_start)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let mut a = Alert::firing(
            "LlmBudgetThreshold",
            if pct >= 100 {
                Severity::Critical
            } else {
                Severity::Warning
            },
        )
        .with_label("rule", rule.name.as_ref())
        .with_label("scope", &scope)
        .with_label("threshold", pct.to_string())
        .with_label("period", rule.period.name())
        .with_label("period_start", start)
        .with_annotation(
            "summary",
            format!("{scope} reached {pct} % of budget {}: {of}", rule.name),
        );
        if let Some(r) = w.resets_at {
            a = a.with_annotation("resets_at", r.to_string());
        }
        alerts.send(a);
    }

    fn store_failed(&self, e: &StoreError) {
        self.inner.counters.store_errors.fetch_add(1, Relaxed);
        if !self.inner.store_down.swap(true, Relaxed) {
            tracing::warn!(target: "llmtel_budget", error = %e, "budget store unavailable; failing {}",
                if self.inner.fail == FailMode::Open { "open, buffering spend" } else { "closed" });
            if let Some(a) = &self.inner.alerts {
                a.send(
                    Alert::firing("LlmBudgetStoreUnavailable", Severity::Critical)
                        .with_label("store", self.inner.store.kind())
                        .with_annotation("summary", format!("budget store unavailable: {e}"))
                        .with_annotation(
                            "description",
                            match self.inner.fail {
                                FailMode::Open => "calls are admitted unenforced; spend is buffered and written when the store returns",
                                FailMode::Closed => "calls are refused until the store returns",
                            },
                        ),
                );
            }
        }
    }

    fn store_ok(&self) {
        if self.inner.store_down.load(Relaxed)
            && self
                .inner
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            && self.inner.store_down.swap(false, Relaxed)
        {
            tracing::info!(target: "llmtel_budget", "budget store available again");
            if let Some(a) = &self.inner.alerts {
                a.send(
                    Alert::firing("LlmBudgetStoreUnavailable", Severity::Critical)
                        .with_label("store", self.inner.store.kind())
                        .with_annotation(
                            "summary",
                            format!(
                                "budget store available again; {} buffered spend writes replayed",
                                self.inner.counters.replayed.load(Relaxed)
                            ),
                        )
                        .resolved(),
                );
            }
        }
    }

    /// Writes buffered spend while the store answers. Returns whether the buffer is empty.
    fn replay(&self) -> bool {
        loop {
            let op = {
                let mut p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                match p.pop_front() {
                    Some(op) => op,
                    None => break,
                }
            };
            match self.try_apply(&op) {
                Ok(_) => {
                    self.inner.counters.replayed.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    self.inner.counters.store_errors.fetch_add(1, Relaxed);
                    let _ = e;
                    self.inner
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_front(op);
                    return false;
                }
            }
        }
        self.store_ok();
        true
    }

    /// Waits up to `timeout` until every spend write queued before this call reached the
    /// store (a store that is down keeps the buffer). Returns whether it did.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if self.inner.store.is_remote() {
            let (tx, rx) = mpsc::channel();
            let mut msg = Msg::Flush(tx);
            loop {
                {
                    let w = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(w) = w.as_ref() else { return false };
                    match w.try_send(msg) {
                        Ok(()) => break,
                        Err(TrySendError::Full(m)) => msg = m,
                        Err(TrySendError::Disconnected(_)) => return false,
                    }
                }
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            if rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_err()
            {
                return false;
            }
        } else {
            self.replay();
        }
        let empty = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        let _ = self.inner.store.flush();
        empty
    }

    /// The counters.
    pub fn stats(&self) -> BudgetStats {
        let c = &self.inner.counters;
        BudgetStats {
            recorded: c.recorded.load(Relaxed),
            admitted: c.admitted.load(Relaxed),
            denied: c.denied.load(Relaxed),
            admitted_unenforced: c.admitted_unenforced.load(Relaxed),
            refused_store_down: c.refused_store_down.load(Relaxed),
            store_errors: c.store_errors.load(Relaxed),
            buffered: self
                .inner
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len() as u64,
            replayed: c.replayed.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            alerts: c.alerts.load(Relaxed),
        }
    }

    /// Status of every rule that applies to this call's context.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub fn status_for(&self, ctx: &CallContext) -> Result<Vec<RuleStatus>, StoreError> {
        let targets = self.targets(ctx);
        self.status_of(&targets)
    }

    /// Status of every rule: shared and global rules, and per-value rules for each value
    /// this process has seen (up to 10,000 a rule) or the store lists.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub fn status(&self) -> Result<Vec<RuleStatus>, StoreError> {
        let now = self.now();
        let mut targets = Vec::new();
        let seen = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (i, r) in self.inner.rules.iter().enumerate() {
            let mut values: Vec<String> = seen.get(&i).into_iter().flatten().cloned().collect();
            if let Some((m, _)) = self.meter(
                &Target {
                    rule: i,
                    value: String::new(),
                },
                now,
            ) {
                let prefix = m.id; // "rule\x1f"
                for v in self.inner.store.values(&prefix, now.as_millisecond())? {
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
            }
            if values.is_empty() && (r.mode == Mode::Shared || r.scope == crate::Scope::Global) {
                values.push("*".into());
            }
            values.sort();
            targets.extend(values.into_iter().map(|value| Target { rule: i, value }));
        }
        self.status_of(&targets)
    }

    fn status_of(&self, targets: &[Target]) -> Result<Vec<RuleStatus>, StoreError> {
        let now = self.now();
        let mut meters = Vec::new();
        let mut ws = Vec::new();
        for t in targets {
            if let Some((m, w)) = self.meter(t, now) {
                meters.push(m);
                ws.push((t, w));
            }
        }
        let totals = self.inner.store.totals(&meters, now.as_millisecond())?;
        Ok(meters
            .iter()
            .zip(&ws)
            .zip(totals)
            .map(|((m, (t, w)), tot)| {
                let rule = &self.inner.rules[t.rule];
                RuleStatus {
                    rule: rule.name.to_string(),
                    scope: format!("{}={}", rule.scope.attribute(), t.value),
                    period: rule.period.name(),
                    period_start: Timestamp::from_second(w.period_start).ok(),
                    spent: usd(tot.spent.usd),
                    spent_tokens: tot.spent.tokens.max(0) as u64,
                    reserved: usd(tot.reserved.usd),
                    limit: rule.limits.usd,
                    limit_tokens: rule.limits.tokens,
                    utilization: utilization(m, tot.spent),
                    remaining: rule.limits.usd.map(|l| {
                        usd(picos(l)
                            .saturating_sub(tot.spent.usd)
                            .saturating_sub(tot.reserved.usd))
                    }),
                    remaining_tokens: m.limit_tokens.map(|l| {
                        l.saturating_sub(tot.spent.tokens)
                            .saturating_sub(tot.reserved.tokens)
                            .max(0) as u64
                    }),
                    resets_at: w.resets_at,
                }
            })
            .collect())
    }

    pub(crate) fn bind(&self, span_id: u64, id: String, meters: Vec<String>) {
        let mut b = self.inner.bound.lock().unwrap_or_else(|e| e.into_inner());
        if b.insert(span_id, Bound { id, meters }).is_none() {
            self.inner.n_bound.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn take_bound(&self, span_id: u64) -> Option<(String, Vec<String>)> {
        if self.inner.n_bound.load(Relaxed) == 0 {
            return None;
        }
        let mut b = self.inner.bound.lock().unwrap_or_else(|e| e.into_inner());
        let r = b.remove(&span_id)?;
        self.inner.n_bound.fetch_sub(1, Relaxed);
        Some((r.id, r.meters))
    }
}

/// The highest of USD and token utilization, as a fraction of the limit (0 with no limit).
fn utilization(m: &Meter, s: Amount) -> f64 {
    let f = |l: Option<i64>, v: i64| match l {
        Some(l) if l > 0 => v as f64 / l as f64,
        Some(_) if v > 0 => f64::INFINITY,
        _ => 0.0,
    };
    f(m.limit_usd, s.usd).max(f(m.limit_tokens, s.tokens))
}

fn writer(rx: Receiver<Msg>, weak: std::sync::Weak<Inner>) {
    loop {
        let msg = rx.recv_timeout(Duration::from_millis(250));
        let Some(inner) = weak.upgrade() else { return };
        let b = Budgets { inner };
        match msg {
            Ok(Msg::Commit(op)) => {
                b.apply(op);
            }
            Ok(Msg::Flush(ack)) => {
                b.replay();
                let _ = ack.send(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let has_pending = !b
            .inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if has_pending {
            b.replay();
        }
    }
}

/// Budget held for one call until it is settled, bound to its span, released or expired.
///
/// Dropping it without settling releases it (a call that never happened).
#[derive(Debug)]
pub struct Reservation {
    budgets: Option<Budgets>,
    id: String,
    meters: Vec<String>,
    targets: Vec<Target>,
    enforced: bool,
}

impl Reservation {
    fn new(
        budgets: Budgets,
        id: String,
        meters: Vec<String>,
        targets: Vec<Target>,
        enforced: bool,
    ) -> Self {
        Reservation {
            budgets: Some(budgets),
            id,
            meters,
            targets,
            enforced,
        }
    }

    /// Its id (unique across processes).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `false` when the store was down and the call was admitted unenforced (fail-open).
    pub fn is_enforced(&self) -> bool {
        self.enforced
    }

    /// Records the call's actual cost and tokens against the rules it was reserved under
    /// and releases the reservation, in one store operation. Returns (rule index,
    /// utilization after) when the store is in process (empty when the write is queued).
    pub fn settle(mut self, cost: Usd, tokens: u64) -> Vec<(usize, f64)> {
        let Some(b) = self.budgets.take() else {
            return Vec::new();
        };
        let release = (!self.meters.is_empty()).then(|| {
            (
                std::mem::take(&mut self.id),
                std::mem::take(&mut self.meters),
            )
        });
        b.submit_targets(release, std::mem::take(&mut self.targets), cost, tokens)
    }

    /// Lets the [`crate::BudgetLayer`] settle this reservation with the actual cost of the
    /// first LLM span that closes in `span` (the LLM span itself or an ancestor, e.g. the
    /// request span). Closing `span` with no LLM call releases it.
    pub fn bind(mut self, span: &tracing::Span) {
        let Some(b) = self.budgets.take() else { return };
        match span.id() {
            Some(id) => b.bind(
                id.into_u64(),
                std::mem::take(&mut self.id),
                std::mem::take(&mut self.meters),
            ),
            None => self.budgets = Some(b), // disabled span: release on drop
        }
    }

    /// Releases the reservation without recording spend.
    pub fn release(mut self) {
        self.release_now();
    }

    fn release_now(&mut self) {
        if let Some(b) = self.budgets.take() {
            if !self.meters.is_empty() {
                let release = Some((
                    std::mem::take(&mut self.id),
                    std::mem::take(&mut self.meters),
                ));
                b.release(release);
            }
        }
    }
}

impl Budgets {
    fn release(&self, release: Option<(String, Vec<String>)>) {
        let op = CommitOp {
            release,
            targets: Vec::new(),
            amount: Amount::default(),
            at: self.now(),
        };
        if !self.inner.store.is_remote() {
            self.apply(op);
            return;
        }
        let w = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = w.as_ref() {
            // A release that cannot be queued simply expires later.
            let _ = tx.try_send(Msg::Commit(op));
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release_now();
    }
}
