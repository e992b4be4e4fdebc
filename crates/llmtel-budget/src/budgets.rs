//! The budget engine: rules x store, reservations, spend recording, thresholds, alerts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use llmtel::worker::{Job, Worker};
use llmtel_alert::{Alert, AlertDispatcher, Severity};
use llmtel_pricing::Usd;
use opentelemetry::trace::SpanId;
use smallvec::SmallVec;

use crate::context::{CallContext, Estimate, UnpricedTokens};
use crate::error::{BudgetExceeded, ConfigError, ExceededCause, ReserveError, StoreError};
use crate::period::{Window, window};
use crate::rule::{Mode, Period, Rule, Unpriced};
use crate::status::RuleStatus;
use crate::store::{Amount, BudgetStore, Commit, MemoryStore, Meter, MeterTotals, ReserveOutcome};

/// (rule index, utilization after) per rule a spend was charged to: on the stack for the
/// usual few rules (every call settled in process returns one).
pub(crate) type Utilization = SmallVec<[(usize, f64); 4]>;

/// The meters a spend is charged to, one per rule that applies: on the stack for the usual
/// few rules.
pub(crate) type Targets = SmallVec<[Arc<Metered>; 4]>;

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
    /// Spend writes the store refused on their own (a script or SQL error, not an outage):
    /// dropped so that they do not hold up the writes after them, each logged and alerted.
    pub rejected: u64,
    /// Threshold alerts raised.
    pub alerts: u64,
    /// Reservations of calls with no price (model unknown to the catalog) admitted under a
    /// USD rule by its `on_unpriced` policy (fallback price or allow).
    pub unpriced_admitted: u64,
    /// Reservations refused because the model has no price (`on_unpriced = "refuse"`).
    pub unpriced_refused: u64,
    /// Calls with no price whose spend was recorded under a USD rule (at the fallback price,
    /// or at $0 under `allow` and `refuse`).
    pub unpriced_recorded: u64,
    /// Amounts (a reservation's estimate, a recorded or settled call, the fallback price of
    /// a call with no price) over the most one call may charge ($1,000,000,
    /// [`llmtel::MAX_TOKENS_PER_CALL`] tokens), charged at that.
    pub amounts_capped: u64,
    /// Scope values the store evicted to stay bounded (memory store: beyond its per-rule
    /// cap, those with nothing spent first, those at their limit last), their spend
    /// forgotten.
    pub store_evicted: u64,
    /// Whether the circuit breaker is open now: the store failed or timed out
    /// [`BudgetsBuilder::with_breaker`] times in a row, and reservations answer at once by
    /// the fail mode until a probe succeeds.
    pub breaker_open: bool,
    /// Times the breaker opened.
    pub breaker_trips: u64,
    /// Reservations answered by the open breaker without asking the store (also counted in
    /// `admitted_unenforced` or `refused_store_down`).
    pub short_circuited: u64,
    /// Reservations whose store call failed or timed out after it may have landed: a
    /// release was queued for each, written when the store answers again.
    pub released_after_timeout: u64,
    /// Reservations [`Reservation::bind`] could not bind, released at once: 65,536 were
    /// bound and unsettled within the reservation TTL (spans that never close, or bound
    /// where nothing settles them).
    pub bound_refused: u64,
    /// Rules [`BudgetsBuilder::build`] had to change to use them (each logged as a
    /// warning): a duplicate, empty or `\x1f`-holding name renamed, thresholds outside 1 to
    /// 1000 percent left out. [`BudgetsBuilder::try_build`] refuses such rules instead.
    pub rules_adjusted: u64,
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
    /// Buffered writes taken out of the buffer by a replay in progress.
    replaying: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    alerts: AtomicU64,
    unpriced_admitted: AtomicU64,
    unpriced_refused: AtomicU64,
    unpriced_recorded: AtomicU64,
    amounts_capped: AtomicU64,
    breaker_trips: AtomicU64,
    short_circuited: AtomicU64,
    released_after_timeout: AtomicU64,
    bound_refused: AtomicU64,
    rules_adjusted: AtomicU64,
}

/// The circuit breaker in front of the store (monotonic time, not the budgets' clock).
#[derive(Debug)]
struct Breaker {
    threshold: u32,
    cool_down: Duration,
    base: Instant,
    /// Store failures in a row.
    failures: std::sync::atomic::AtomicU32,
    /// Open until this many ms after `base`; 0: closed.
    open_until: AtomicU64,
    /// A probe is in flight (one caller asks the store once the cool-down has passed).
    probing: AtomicBool,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether a call may go to the store (closed, or this caller is the probe).
    fn allows(&self) -> bool {
        let until = self.open_until.load(Relaxed);
        if until == 0 {
            return true;
        }
        if self.now_ms() < until {
            return false;
        }
        self.probing
            .compare_exchange(false, true, Relaxed, Relaxed)
            .is_ok()
    }

    fn is_open(&self) -> bool {
        self.open_until.load(Relaxed) != 0
    }

    fn success(&self) {
        // Loads first: the request path does not write shared cache lines when closed.
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.open_until.load(Relaxed) != 0 {
            self.open_until.store(0, Relaxed);
        }
        if self.probing.load(Relaxed) {
            self.probing.store(false, Relaxed);
        }
    }

    /// Returns whether this failure opened the breaker.
    fn failure(&self) -> bool {
        let n = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        let was_open = self.open_until.load(Relaxed) != 0;
        let opened = if n >= self.threshold || was_open {
            // Saturating: a cool-down of `Duration::MAX` keeps it open (until a write
            // succeeds) instead of overflowing on the request thread.
            let cool_down = u64::try_from(self.cool_down.as_millis()).unwrap_or(u64::MAX);
            let until = self.now_ms().saturating_add(cool_down);
            self.open_until.store(until, Relaxed);
            !was_open
        } else {
            false
        };
        self.probing.store(false, Relaxed);
        opened
    }
}

/// One rule and scope value with its meter and window, cached until the window moves on
/// (the request path formats no key and does no time-zone arithmetic on a cache hit).
#[derive(Debug)]
pub(crate) struct Metered {
    pub(crate) rule: usize,
    pub(crate) value: Arc<str>,
    pub(crate) meter: Meter,
    pub(crate) window: Window,
    /// The window holds for `from_ms <= now < until_ms`.
    from_ms: i64,
    until_ms: i64,
}

impl Metered {
    fn holds_at(&self, ms: i64) -> bool {
        self.from_ms <= ms && ms < self.until_ms
    }
}

/// A rule's cached meters, by scope value. (The maps looked up for every call here and in
/// the memory store hash with foldhash, seeded per process: several times cheaper than
/// SipHash on short keys; a scope value can come from a request, so the hash is seeded, and
/// every such map is bounded.)
type MeterCache = RwLock<foldhash::HashMap<Arc<str>, Arc<Metered>>>;
/// Cached meters per rule beyond which the cache of that rule starts over.
const METER_CACHE_CAP: usize = 10_000;
/// Commits the background writer sends to a remote store at once.
const WRITE_BATCH: usize = 256;
/// How long the writer waits for more commits after the first of a batch (a flush does not
/// wait). Settles reach the store at most this much later; until then their reservations
/// still hold the estimate, so admission stays conservative.
const WRITE_LINGER: Duration = Duration::from_millis(2);

/// Release of a reservation: its id and the meters it holds.
pub(crate) type Release = (String, Targets);

/// A reservation bound to a span, taken to be settled (or released) with its call.
#[derive(Debug)]
pub(crate) struct BoundReservation {
    pub(crate) id: String,
    /// The meters it was reserved on (every rule that applied to the pre-flight's context):
    /// the call's spend goes to them, also when the store did not hold it.
    pub(crate) meters: Targets,
    /// Whether the store may hold it: then settling or releasing it sends a release. A
    /// reservation admitted while the store was down (the breaker open, a refused
    /// reserve) holds nothing, but its meters still take the spend.
    pub(crate) held: bool,
}

impl BoundReservation {
    /// The release to send to the store, when it may hold the reservation.
    pub(crate) fn release(&self) -> Option<Release> {
        (self.held && !self.meters.is_empty()).then(|| (self.id.clone(), self.meters.clone()))
    }
}

#[derive(Debug)]
struct CommitOp {
    release: Option<Release>,
    targets: Targets,
    amount: Amount,
    /// The call had no price: each rule charges these tokens by its `on_unpriced` policy
    /// (boxed: rare, and it keeps the writer's queue items small).
    unpriced: Option<Box<UnpricedTokens>>,
    /// Sequence number of the operation id of a spend write (0: none, a release), so that
    /// a replayed write is applied once ([`Commit::op_id`]).
    op_seq: u64,
    at: Timestamp,
}

#[derive(Debug)]
struct Bound {
    id: String,
    /// The meters it was reserved on, whether the store holds it or not.
    meters: Targets,
    /// Whether the store may hold it (a release is sent when it is settled or released).
    held: bool,
    /// The OpenTelemetry span id of the span, when it had one: [`crate::BudgetSink`] settles
    /// the reservation with the call llmtel's export stage hands it for that span.
    otel: Option<SpanId>,
    /// When it was bound (the budgets' clock): past the reservation TTL the store has
    /// expired the reservation, and the binding is forgotten when room is needed.
    at_ms: i64,
}

/// Reservations bound to spans, by the span's tracing id and by its OpenTelemetry span id.
#[derive(Debug, Default)]
struct BoundTable {
    by_span: foldhash::HashMap<u64, Bound>,
    by_otel: foldhash::HashMap<SpanId, u64>,
    /// When the table, full, was last swept for expired bindings (the budgets' clock): at
    /// most once a second, so a full table refuses a binding without a scan each time.
    swept_at_ms: Option<i64>,
}

impl BoundTable {
    fn remove(&mut self, span_id: u64) -> Option<Bound> {
        let b = self.by_span.remove(&span_id)?;
        if let Some(otel) = b.otel {
            self.by_otel.remove(&otel);
        }
        Some(b)
    }
}

/// Reservations bound to spans kept at most (a binding nobody settles, for example to a
/// span that never closes, stays until its reservation's TTL passes and room is needed).
pub(crate) const MAX_BOUND: usize = 65_536;
/// How often a full table of bindings is swept for expired ones, at most.
const SWEEP_INTERVAL_MS: i64 = 1_000;

/// Meters a status read sums per store call ([`Budgets::status`]): the memory store holds its
/// lock for one such chunk at a time (a few hundred microseconds), not for every value.
const STATUS_TOTALS_CHUNK: usize = 512;

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
    breaker: (u32, Duration),
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

    /// How long an unsettled reservation holds budget (default 10 minutes; at most 100
    /// years: a longer one, `Duration::MAX` included, is taken as that).
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

    /// The circuit breaker in front of the store: after `failures` store errors or timeouts
    /// in a row (default 3), `reserve` answers at once by the fail mode, without asking the
    /// store, for `cool_down` (default 2 s); then one call probes the store, and a success
    /// closes the breaker. A down or blackholed store then costs a request nothing instead
    /// of the store's deadline every time. Visible in [`BudgetStats::breaker_open`]. A
    /// `cool_down` of `Duration::MAX` never probes: the breaker closes when a spend write
    /// reaches the store.
    pub fn with_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.breaker = (failures.max(1), cool_down);
        self
    }

    /// Capacity of the queue to the background writer of a remote store (default 100,000).
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }

    /// Builds the budgets, refusing rules that cannot be used as given: a duplicate name
    /// whose meters can be another rule's (two rules of one name share their meters in the
    /// store, keyed `name\x1fvalue`, and charge every call twice, unless their values never
    /// meet: per-value rules limited to values no other has, a shared rule and per-value
    /// rules limited to values other than `*`), an empty name or one holding `\x1f` (the separator of a store key),
    /// values that can never match a call (a global rule given values: its value is always
    /// `*`; a value longer than [`llmtel::MAX_VALUE_BYTES`], 256 bytes: every call value is
    /// capped at that before it is matched), thresholds outside 1 to 1000 percent. With a
    /// remote store, starts its writer thread.
    ///
    /// ```
    /// use llmtel_budget::{Budgets, ConfigError, Period, Rule, Scope};
    /// let rule = || Rule::new("daily", Scope::User, Period::Lifetime);
    /// let err = Budgets::builder().with_rule(rule()).with_rule(rule()).try_build().unwrap_err();
    /// assert!(matches!(err, ConfigError::Rule { ref field, .. } if field == "name"));
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Rule`] naming the first rule at fault and the field.
    pub fn try_build(self) -> Result<Budgets, ConfigError> {
        crate::rule::check_rules(&self.rules)?;
        Ok(self.build_checked(0))
    }

    /// Builds the budgets; with a remote store, starts its writer thread.
    ///
    /// Never fails: a rule that [`BudgetsBuilder::try_build`] refuses is changed so that it
    /// can be used, with a warning logged and [`BudgetStats::rules_adjusted`] counted: a
    /// duplicate name whose meters can be an earlier rule's gets a suffix (the second
    /// `daily` becomes `daily#2`: its own meters, not the first rule's, which it would
    /// charge a second time); two rules of one name on values that never meet (`daily` for
    /// tenant `a`, `daily` for tenant `b`) keep their name, and the spend the store holds
    /// under it. An empty name becomes
    /// `rule`, a `\x1f` in a name becomes `_`, a global rule's values are removed (it applies
    /// to every call, as its scope says), a value longer than [`llmtel::MAX_VALUE_BYTES`] is
    /// capped by [`llmtel::cap_value`] as call values are (so that it matches them),
    /// thresholds outside 1 to 1000 percent are left out. Rules from a rules file ([`crate::Config`]) are checked when it is read.
    pub fn build(mut self) -> Budgets {
        let adjusted = adjust_rules(&mut self.rules);
        self.build_checked(adjusted)
    }

    fn build_checked(self, adjusted: u64) -> Budgets {
        let store: Arc<dyn BudgetStore> =
            self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let cache = self.rules.iter().map(|_| RwLock::default()).collect();
        let inner = Arc::new(Inner {
            rules: self.rules,
            cache,
            store,
            alerts: self.alerts,
            clock: self.clock.unwrap_or_else(|| Arc::new(Timestamp::now)),
            fail: self.fail,
            ttl_ms: crate::store::expiry_ms(self.reservation_ttl),
            counters: Counters {
                rules_adjusted: AtomicU64::new(adjusted),
                ..Counters::default()
            },
            pending: Mutex::new(VecDeque::new()),
            buffer_cap: self.buffer,
            store_down: AtomicBool::new(false),
            fired: Mutex::default(),
            unpriced_alerted: Mutex::default(),
            seen: Mutex::default(),
            bound: Mutex::default(),
            last: Mutex::default(),
            n_bound: AtomicUsize::new(0),
            layers: AtomicUsize::new(0),
            id_prefix: format!("{:x}.{:x}", std::process::id(), nanos & 0xffff_ffff),
            next_id: AtomicU64::new(0),
            writer: OnceLock::new(),
            breaker: Breaker {
                threshold: self.breaker.0,
                cool_down: self.breaker.1,
                base: Instant::now(),
                failures: Default::default(),
                open_until: AtomicU64::new(0),
                probing: AtomicBool::new(false),
            },
        });
        if inner.store.is_remote() {
            let weak = Arc::downgrade(&inner);
            // A settle never wakes the writer by itself: the first commit after a write wakes
            // it, and it lingers to batch what follows into one store operation. It ticks
            // every 250 ms to replay spend buffered while the store was down.
            if let Ok(w) = Worker::builder("budget")
                .with_capacity(self.queue)
                .with_batch_size(WRITE_BATCH)
                .with_wake_at(1)
                .with_linger(WRITE_LINGER)
                .with_interval(Duration::from_millis(250))
                .with_idle_sleep(None)
                .spawn(move || Ok::<_, std::convert::Infallible>(Writer(weak)))
            {
                let _ = inner.writer.set(w);
            }
        }
        let last = Some(Arc::new(FlushOnDrop(Arc::downgrade(&inner))));
        Budgets { last, inner }
    }
}

/// Makes `rules` usable as [`BudgetsBuilder::build`] documents; returns how many it
/// changed, each logged as a warning.
fn adjust_rules(rules: &mut [Rule]) -> u64 {
    let taken: std::collections::HashSet<Arc<str>> = rules.iter().map(|r| r.name.clone()).collect();
    let mut seen = std::collections::HashSet::new();
    let mut adjusted = 0;
    for i in 0..rules.len() {
        let (before, rest) = rules.split_at_mut(i);
        let r = &mut rest[0];
        let given = r.name.clone();
        let mut changed = Vec::new();
        if r.name_problem().is_some() {
            let name = if r.name.is_empty() {
                "rule".to_string()
            } else {
                r.name.replace('\u{1f}', "_")
            };
            r.name = name.into();
            changed.push("name");
        }
        // Only a rule whose meter keys can be an earlier one's is renamed: two rules of one
        // name on values that never meet (tenant `a`, tenant `b`) keep their name, and the
        // spend their store already holds under it.
        if before
            .iter()
            .any(|b| b.name == r.name && b.keys_can_collide(r))
        {
            // The first free `name#n`, neither used by another rule nor given to one.
            let base = r.name.clone();
            let mut n = 2u64;
            let mut name: Arc<str> = format!("{base}#{n}").into();
            while seen.contains(&name) || taken.contains(&name) {
                n += 1;
                name = format!("{base}#{n}").into();
            }
            r.name = name;
            changed.push("duplicate name");
        }
        seen.insert(r.name.clone());
        if r.values_problem().is_some() {
            if r.scope == crate::Scope::Global {
                // A global rule's value is always `*`: the rule applies to every call.
                r.values.clear();
            } else {
                // Capped as every call value is, so that it matches the calls it names.
                for v in &mut r.values {
                    if v.len() > llmtel::MAX_VALUE_BYTES {
                        *v = llmtel::cap_string(std::mem::take(v));
                    }
                }
            }
            changed.push("values");
        }
        let thresholds = r.thresholds.len();
        r.thresholds.retain(|t| crate::rule::THRESHOLDS.contains(t));
        if r.thresholds.len() != thresholds {
            changed.push("thresholds");
        }
        if !changed.is_empty() {
            adjusted += 1;
            tracing::warn!(
                target: "llmtel_budget",
                rule = %given,
                renamed = %r.name,
                changed = ?changed,
                "budget rule {given:?} changed to be usable (as {:?}: a duplicate, empty or \\x1f-holding name is renamed, a global rule's values removed, a value over 256 bytes capped as call values are, thresholds outside 1..=1000 % left out); use BudgetsBuilder::try_build to refuse it instead",
                r.name
            );
        }
    }
    adjusted
}

pub(crate) struct Inner {
    pub(crate) rules: Vec<Rule>,
    cache: Vec<MeterCache>,
    pub(crate) store: Arc<dyn BudgetStore>,
    alerts: Option<AlertDispatcher>,
    clock: Clock,
    fail: FailMode,
    ttl_ms: i64,
    counters: Counters,
    pending: Mutex<VecDeque<CommitOp>>,
    buffer_cap: usize,
    store_down: AtomicBool,
    fired: Mutex<foldhash::HashSet<String>>,
    /// Models with no price already alerted (one alert per model; bounded).
    unpriced_alerted: Mutex<foldhash::HashSet<String>>,
    seen: Mutex<foldhash::HashMap<usize, foldhash::HashSet<Arc<str>>>>,
    bound: Mutex<BoundTable>,
    last: Mutex<foldhash::HashMap<String, Amount>>,
    pub(crate) n_bound: AtomicUsize,
    /// Live [`crate::BudgetLayer`]s of these budgets: while there is one, it records every
    /// call and [`crate::BudgetSink`] stands aside (never both).
    pub(crate) layers: AtomicUsize,
    id_prefix: String,
    next_id: AtomicU64,
    /// The writer of a remote store (none for the memory store, or if its thread could not
    /// start: then spend writes are dropped and counted).
    writer: OnceLock<Worker<CommitOp>>,
    breaker: Breaker,
}

/// Spend limits over a store: reserve before a call, record after it, see the status.
/// Cheap to clone (clones share everything). With a SQLite or Redis store, dropping the last
/// clone writes the spend still queued for the background writer first (waiting up to 5 s, on
/// the dropping thread); what a store that is down does not take is reported in an error
/// event. Call [`Budgets::flush`] before exit to choose the wait yourself.
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
    // Declared first, so dropped first: while the last user handle drops, `inner` is still
    // alive for the flush. `None` in the handles llmtel makes for itself (the writer's).
    // Held only to be dropped.
    #[allow(dead_code)]
    last: Option<Arc<FlushOnDrop>>,
    pub(crate) inner: Arc<Inner>,
}

/// How long dropping the last [`Budgets`] handle waits for the spend still queued to reach
/// the store.
const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared by every handle a user holds: when the last one drops, the spend still queued for
/// the background writer is written before the writer stops (without it, the writer could
/// no longer reach the budgets and the queue was lost, silently).
struct FlushOnDrop(std::sync::Weak<Inner>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let b = Budgets::internal(inner);
        if !b.inner.store.is_remote() || b.flush(DROP_FLUSH_TIMEOUT) {
            return;
        }
        let left = b.stats().buffered;
        tracing::error!(
            target: "llmtel_budget",
            writes = left,
            store = b.inner.store.kind(),
            "budgets dropped with {left} spend writes the {} store did not take; they are lost. \
             Call Budgets::flush while the store is up before exit",
            b.inner.store.kind()
        );
    }
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

/// A scope as status rows, refusals, gauges and alerts show it: `attribute=value`
/// (`user.id=u-1`). The value of an API-key scope ([`crate::Scope::ApiKey`], per value),
/// and any value llmtel's redaction takes for a secret, shows as
/// `attribute=[REDACTED:<12 hex digits>]`: a fingerprint of the value
/// ([`llmtel::redact::fingerprint`]), so that two keys stay two rows and two Prometheus
/// series (both read `[REDACTED]` before: duplicate label sets, whose samples Prometheus
/// drops). An API key is fingerprinted whatever its shape: a 32-hex Azure key, which the
/// redaction does not recognise, was shown as it is.
///
/// The fingerprint is keyed once per process: the same value shows the same fingerprint
/// for the life of the process (a series stays one series), and without the key it cannot
/// be checked against guessed secrets, short ones included. It changes when the process
/// restarts, and differs between processes.
pub(crate) fn scope_label(rule: &Rule, value: &str) -> String {
    let attribute = rule.scope.attribute();
    let full = format!("{attribute}={value}");
    let api_key = rule.scope == crate::Scope::ApiKey && rule.mode == Mode::PerValue;
    if !api_key && matches!(llmtel::redact(&full), std::borrow::Cow::Borrowed(_)) {
        return full;
    }
    format!(
        "{}={}",
        llmtel::redact(attribute),
        llmtel::redact::fingerprint(value)
    )
}

fn picos(u: Usd) -> i64 {
    i64::try_from(u.picos()).unwrap_or(i64::MAX)
}

/// The most one call may charge a meter, in pico-dollars ($1,000,000) and tokens
/// ([`llmtel::MAX_TOKENS_PER_CALL`]): a store keeps 64-bit totals, and one absurd amount
/// through the public API (`u64::MAX` tokens) overflowed Redis's `HINCRBY` mid-script and
/// turned SQLite's column to floating point, poisoning the meter for its period.
const MAX_PICOS_PER_CALL: i64 = 1_000_000 * 1_000_000_000_000;

/// Whether `amount` alone passes a limit of `m` (with nothing spent nor reserved): no
/// retry can ever admit it.
fn over_alone(m: &Meter, amount: Amount) -> bool {
    m.denies(Amount::default(), Amount::default(), amount)
}

fn usd(p: i64) -> Usd {
    Usd::from_picos(u128::try_from(p.max(0)).unwrap_or(0))
}

/// A call's amount as a store keeps it, capped per call, and whether it was capped.
fn capped_amount(cost: Usd, tokens: u64) -> (Amount, bool) {
    let usd = picos(cost);
    let capped = usd > MAX_PICOS_PER_CALL || tokens > llmtel::MAX_TOKENS_PER_CALL;
    let amount = Amount {
        usd: usd.min(MAX_PICOS_PER_CALL),
        tokens: i64::try_from(tokens.min(llmtel::MAX_TOKENS_PER_CALL)).unwrap_or(i64::MAX),
    };
    (amount, capped)
}

/// The fallback price of a call with no price under `policy`, in pico-dollars capped per
/// call as every amount is ([`MAX_PICOS_PER_CALL`]: its tokens are capped, but an absurd
/// count at the fallback price was charged as i64::MAX, about $9.2 million, at once), and
/// whether it was capped. `None` unless the policy is a fallback price.
fn fallback_picos(policy: &Unpriced, u: &UnpricedTokens) -> Option<(i64, bool)> {
    let p = picos(policy.fallback_cost(u.input, u.output)?);
    Some((p.min(MAX_PICOS_PER_CALL), p > MAX_PICOS_PER_CALL))
}

impl Budgets {
    /// Counts an amount capped per call ([`BudgetStats::amounts_capped`]).
    fn count_capped(&self, capped: bool) {
        if capped {
            self.inner.counters.amounts_capped.fetch_add(1, Relaxed);
        }
    }

    /// A handle for llmtel's own use (the writer, the gauges): dropping it never flushes.
    pub(crate) fn internal(inner: Arc<Inner>) -> Budgets {
        Budgets { last: None, inner }
    }

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
            breaker: (3, Duration::from_secs(2)),
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

    /// The meters of every rule that applies to the call, at `now_ms`.
    pub(crate) fn targets(&self, ctx: &CallContext, now_ms: i64) -> Targets {
        let mut out = Targets::new();
        for (i, r) in self.inner.rules.iter().enumerate() {
            let Some(v) = ctx.value(&r.scope) else {
                continue;
            };
            // A context built field by field (not through the capping setters) is capped
            // here: no request-controlled value reaches a key or a map uncapped.
            let v = llmtel::cap_value(v);
            if !r.values.is_empty() && !r.values.iter().any(|x| *x == *v) {
                continue;
            }
            let value = match r.mode {
                Mode::PerValue => &*v,
                Mode::Shared => "*",
            };
            if let Some(m) = self.metered(i, value, now_ms) {
                out.push(m);
            }
        }
        out
    }

    /// The meter of rule `rule` and scope value `value` at `now_ms`, from the cache when its
    /// window still holds. `None` only for dates out of range.
    pub(crate) fn metered(&self, rule: usize, value: &str, now_ms: i64) -> Option<Arc<Metered>> {
        let cache = &self.inner.cache[rule];
        let key = {
            let c = cache.read().unwrap_or_else(|e| e.into_inner());
            match c.get_key_value(value) {
                Some((_, m)) if m.holds_at(now_ms) => return Some(m.clone()),
                Some((k, _)) => k.clone(),
                None => Arc::from(value),
            }
        };
        let r = &self.inner.rules[rule];
        let now = Timestamp::from_millisecond(now_ms).ok()?;
        let w = window(&r.period, now)?;
        let id = format!("{}\u{1f}{}", r.name, key);
        let buckets = w.buckets.iter().map(|s| format!("{id}\u{1f}{s}")).collect();
        let (from_ms, until_ms) = match w.resets_at {
            None => (i64::MIN, i64::MAX),
            Some(t) => (
                w.buckets.last().copied().unwrap_or(w.period_start) * 1000,
                t.as_millisecond(),
            ),
        };
        let m = Arc::new(Metered {
            rule,
            value: key.clone(),
            meter: Meter {
                id,
                buckets,
                ttl_ms: w.ttl_ms,
                limit_usd: r.limits.usd.map(picos),
                limit_tokens: r
                    .limits
                    .tokens
                    .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            },
            window: w,
            from_ms,
            until_ms,
        });
        let mut c = cache.write().unwrap_or_else(|e| e.into_inner());
        if c.len() >= METER_CACHE_CAP {
            c.clear();
        }
        c.insert(key, m.clone());
        Some(m)
    }

    /// `m` at another instant (itself while its window holds).
    fn metered_at(&self, m: &Arc<Metered>, ms: i64) -> Option<Arc<Metered>> {
        if m.holds_at(ms) {
            Some(m.clone())
        } else {
            self.metered(m.rule, &m.value, ms)
        }
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
    /// A zero USD estimate (a model priced at zero) is never refused by a USD limit. An
    /// estimate with no price ([`Estimate::unpriced`], a model the catalog does not know)
    /// meets each USD rule's [`crate::Unpriced`] policy: refused (the default), reserved at
    /// the fallback price, or let through at $0; counted in [`BudgetStats`] and alerted
    /// once per model.
    ///
    /// Bounded in time: a remote store's call has a deadline (Redis: 100 ms, see
    /// [`crate::RedisStore::with_reserve_timeout`]) and after a few failures in a row the
    /// circuit breaker ([`BudgetsBuilder::with_breaker`]) answers at once by the fail mode,
    /// so calling it from an async handler never stalls the runtime for longer than that.
    /// A reserve that failed after it may have landed releases its reservation once the
    /// store answers again.
    ///
    /// # Errors
    /// [`ReserveError::Exceeded`] with the rule, scope, spend, limit and reset time;
    /// [`ReserveError::StoreUnavailable`] when the store is down and the budgets fail closed;
    /// [`ReserveError::Unpriced`] for a model with no price under a rule that refuses them.
    pub fn reserve(
        &self,
        ctx: &CallContext,
        estimate: Estimate,
    ) -> Result<Reservation, ReserveError> {
        let now = self.now();
        let now_ms = now.as_millisecond();
        let targets = self.targets(ctx, now_ms);
        let (amount, mut capped) = capped_amount(estimate.usd, estimate.tokens);
        let id = self.next_id();
        if targets.is_empty() {
            self.count_capped(capped);
            return Ok(Reservation::new(self.clone(), id, targets, false, true)
                .with_unpriced(estimate.unpriced));
        }
        let mut amounts = Vec::with_capacity(targets.len());
        let mut unpriced_under_usd = false;
        for t in &targets {
            let rule = &self.inner.rules[t.rule];
            match (estimate.unpriced, rule.limits.usd) {
                (Some(u), Some(_)) => {
                    unpriced_under_usd = true;
                    let model = ctx.model.as_deref().unwrap_or("(none)");
                    self.alert_unpriced(rule, model);
                    match rule.on_unpriced {
                        Unpriced::Refuse => {
                            self.inner.counters.unpriced_refused.fetch_add(1, Relaxed);
                            return Err(ReserveError::Unpriced {
                                rule: rule.name.to_string(),
                                model: llmtel::cap_value(model).into_owned(),
                            });
                        }
                        p @ Unpriced::Fallback { .. } => {
                            let (usd, over) = fallback_picos(&p, &u).unwrap_or_default();
                            capped |= over;
                            amounts.push(Amount { usd, ..amount });
                        }
                        Unpriced::Allow => amounts.push(amount),
                    }
                }
                _ => amounts.push(amount),
            }
        }
        self.count_capped(capped);
        let charges: Vec<(&Meter, Amount)> = targets
            .iter()
            .zip(&amounts)
            .map(|(t, a)| (&t.meter, *a))
            .collect();
        if !self.inner.breaker.allows() {
            // The store failed repeatedly: answer at once by the fail mode.
            self.inner.counters.short_circuited.fetch_add(1, Relaxed);
            let e = StoreError::unavailable(
                self.inner.store.kind(),
                format!(
                    "circuit breaker open after {} failures in a row; answering without the store until a probe succeeds (every {} ms)",
                    self.inner.breaker.threshold,
                    self.inner.breaker.cool_down.as_millis()
                ),
            );
            return match self.inner.fail {
                FailMode::Open => {
                    self.inner
                        .counters
                        .admitted_unenforced
                        .fetch_add(1, Relaxed);
                    Ok(Reservation::new(self.clone(), id, targets, false, false)
                        .with_unpriced(estimate.unpriced))
                }
                FailMode::Closed => {
                    self.inner.counters.refused_store_down.fetch_add(1, Relaxed);
                    Err(ReserveError::StoreUnavailable(e))
                }
            };
        }
        let outcome = self.inner.store.reserve(
            &id,
            &charges,
            now_ms,
            now_ms.saturating_add(self.inner.ttl_ms),
        );
        drop(charges);
        match outcome {
            Ok(ReserveOutcome::Admitted) => {
                self.store_ok();
                // Listed in the status (and its gauges) while it holds only a reservation.
                self.note_seen(&targets);
                self.inner.counters.admitted.fetch_add(1, Relaxed);
                if unpriced_under_usd {
                    self.inner.counters.unpriced_admitted.fetch_add(1, Relaxed);
                }
                Ok(Reservation::new(self.clone(), id, targets, true, true)
                    .with_unpriced(estimate.unpriced))
            }
            Ok(ReserveOutcome::Denied(i)) => {
                self.store_ok();
                self.inner.counters.denied.fetch_add(1, Relaxed);
                // A meter the estimate alone is over is the refusal to report, whichever
                // meter the store met first: no retry can ever pass it.
                // Then a meter whose settled spend alone refuses it (the store names the
                // first meter that refused, which may be one only calls in flight hold:
                // "retry shortly" would be wrong while another refuses until its reset).
                let meters: Vec<&Meter> = targets.iter().map(|t| &t.meter).collect();
                let all = self.inner.store.totals(&meters, now_ms).ok();
                let settled_refuses = |j: usize| {
                    all.as_ref().and_then(|v| v.get(j)).is_some_and(|tot| {
                        targets[j]
                            .meter
                            .denies(tot.spent, Amount::default(), amounts[j])
                    })
                };
                let i = targets
                    .iter()
                    .zip(&amounts)
                    .position(|(t, a)| over_alone(&t.meter, *a))
                    .or_else(|| (0..targets.len()).find(|&j| settled_refuses(j)))
                    .unwrap_or_else(|| i.min(targets.len() - 1));
                let t = &targets[i];
                let totals = all.as_ref().and_then(|v| v.get(i).copied());
                Err(ReserveError::Exceeded(Box::new(
                    self.exceeded(t, totals, amounts[i]),
                )))
            }
            Err(e) => {
                self.store_failed(&e);
                // A timeout or lost connection may come after the store held the
                // reservation: release it (idempotent), written when the store answers
                // again, so it does not hold budget for its TTL. A refusal held nothing.
                let maybe_held = !e.rejected;
                if maybe_held {
                    self.inner
                        .counters
                        .released_after_timeout
                        .fetch_add(1, Relaxed);
                }
                match self.inner.fail {
                    FailMode::Open => {
                        self.inner
                            .counters
                            .admitted_unenforced
                            .fetch_add(1, Relaxed);
                        // Settling or dropping it sends the release (with the spend).
                        Ok(
                            Reservation::new(self.clone(), id, targets, maybe_held, false)
                                .with_unpriced(estimate.unpriced),
                        )
                    }
                    FailMode::Closed => {
                        self.inner.counters.refused_store_down.fetch_add(1, Relaxed);
                        if maybe_held {
                            self.release((id, targets));
                        }
                        Err(ReserveError::StoreUnavailable(e))
                    }
                }
            }
        }
    }

    /// The refusal of `amount` on `t`, with its totals as read after the refusal (`None`:
    /// they could not be read).
    fn exceeded(&self, t: &Metered, totals: Option<MeterTotals>, amount: Amount) -> BudgetExceeded {
        let rule = &self.inner.rules[t.rule];
        let m = &t.meter;
        let over = |l: Option<i64>, s: i64, r: i64, a: i64| {
            l.is_some_and(|l| {
                a > 0 && i128::from(s) + i128::from(r) + i128::from(a) > i128::from(l)
            })
        };
        let usd_alone = over(m.limit_usd, 0, 0, amount.usd);
        let cause = if over_alone(m, amount) {
            ExceededCause::EstimateOverLimit
        } else if totals.is_some_and(|tot| !m.denies(tot.spent, Amount::default(), amount)) {
            // The settled spend leaves room: reservations of calls in flight hold it.
            ExceededCause::InFlight
        } else {
            ExceededCause::Spent
        };
        let (usd_hit, tokens_hit) = match totals {
            _ if cause == ExceededCause::EstimateOverLimit => (usd_alone, !usd_alone),
            Some(tot) => {
                let usd_hit = over(m.limit_usd, tot.spent.usd, tot.reserved.usd, amount.usd);
                (usd_hit, !usd_hit)
            }
            // Unknown spend: every limit this amount could have passed.
            None => (
                m.limit_usd.is_some() && amount.usd > 0,
                m.limit_tokens.is_some() && amount.tokens > 0,
            ),
        };
        let tot = totals.unwrap_or_default();
        BudgetExceeded {
            rule: rule.name.to_string(),
            scope: scope_label(rule, &t.value),
            period: rule.period.name(),
            spent: usd(tot.spent.usd.saturating_add(tot.reserved.usd)),
            limit: m.limit_usd.map(usd).unwrap_or(Usd::ZERO),
            spent_tokens: tot.spent.tokens.saturating_add(tot.reserved.tokens).max(0) as u64,
            limit_tokens: if tokens_hit || !usd_hit {
                m.limit_tokens.map(|l| l.max(0) as u64)
            } else {
                None
            },
            resets_at: t.window.resets_at,
            totals_unavailable: totals.is_none(),
            cause,
        }
    }

    /// Records the spend of a call made without a reservation (the [`crate::BudgetLayer`]
    /// does this for every LLM span). Never blocks on a remote store (queued).
    pub fn record(&self, ctx: &CallContext, cost: Usd, tokens: u64) -> Vec<(usize, f64)> {
        self.submit(None, ctx, cost, tokens, None, None)
            .0
            .into_vec()
    }

    /// Records the spend of a call with no price (its model is not in the catalog): each
    /// rule with a USD limit charges `input` and `output` tokens by its
    /// [`crate::Unpriced`] policy (the fallback price, or $0 under `allow` and `refuse`: the
    /// call already happened), counted in [`BudgetStats::unpriced_recorded`] and alerted
    /// once per model. The [`crate::BudgetLayer`] does this for an LLM span with no cost.
    pub fn record_unpriced(&self, ctx: &CallContext, input: u64, output: u64) -> Vec<(usize, f64)> {
        self.record_unpriced_model(ctx, input, output, None)
    }

    /// [`record_unpriced`](Self::record_unpriced), naming `priced_model` in the alert: the
    /// model the catalog was asked for (the response model when the call has one, as the
    /// [`crate::BudgetSink`] names it), where `ctx.model` is the request model budget rules
    /// match. `None` names `ctx.model`.
    pub fn record_unpriced_model(
        &self,
        ctx: &CallContext,
        input: u64,
        output: u64,
        priced_model: Option<&str>,
    ) -> Vec<(usize, f64)> {
        let u = UnpricedTokens { input, output };
        self.submit(
            None,
            ctx,
            Usd::ZERO,
            input.saturating_add(output),
            Some(u),
            priced_model,
        )
        .0
        .into_vec()
    }

    /// Whether a rule with a USD limit applies to this call (a call with no price then
    /// meets that rule's `on_unpriced` policy).
    pub fn usd_rule_applies(&self, ctx: &CallContext) -> bool {
        self.inner.rules.iter().any(|r| {
            r.limits.usd.is_some()
                && ctx
                    .value(&r.scope)
                    .is_some_and(|v| r.values.is_empty() || r.values.iter().any(|x| x == v))
        })
    }

    /// Records a call's spend on the meters of `ctx` (and of `release`, the reservation it
    /// settles). `priced_model` names the model the catalog did not know in the alert of a
    /// call with no price (default: `ctx.model`).
    pub(crate) fn submit(
        &self,
        reservation: Option<BoundReservation>,
        ctx: &CallContext,
        cost: Usd,
        tokens: u64,
        unpriced: Option<UnpricedTokens>,
        priced_model: Option<&str>,
    ) -> (Utilization, bool) {
        let at = self.now();
        let mut targets = self.targets(ctx, at.as_millisecond());
        let release = reservation.as_ref().and_then(BoundReservation::release);
        if let Some(BoundReservation {
            meters: reserved, ..
        }) = &reservation
        {
            // A settled reservation's spend goes to the meters it held (its
            // `with_context` dimensions, a model the pre-flight was told), rule by rule: the
            // call's own would leave the meter the pre-flight checks empty. Also when the
            // store did not hold it (admitted unenforced while the store was down): the
            // spend is buffered and written to those meters when the store is back. Also when the call settles after
            // the window it reserved in (past midnight, a rolling bucket later, the export
            // stage's delay): the write takes the meter at its own instant
            // (`metered_at`), the same rule and scope value in the window then. A rule the
            // reservation did not hold is charged by the call's own meter.
            for r in reserved.iter() {
                match targets.iter_mut().find(|t| t.rule == r.rule) {
                    Some(t) => *t = r.clone(),
                    None => targets.push(r.clone()),
                }
            }
        }
        // A call with no price meets the `on_unpriced` policy of each USD rule it is charged
        // to: decided on the meters it is charged to (the reservation's included), not on
        // the call's own context alone (a tenant given only to the pre-flight).
        let model = priced_model.or(ctx.model.as_deref()).unwrap_or("(none)");
        let unpriced = self.unpriced_under_usd(&targets, unpriced, Some(model));
        (
            self.submit_at(release, targets, cost, tokens, unpriced, at),
            unpriced.is_some(),
        )
    }

    /// `unpriced`, when a USD rule is among `targets` (counted in
    /// [`BudgetStats::unpriced_recorded`], and alerted once per model when `model` is
    /// given); `None` otherwise (no rule prices its tokens).
    fn unpriced_under_usd(
        &self,
        targets: &[Arc<Metered>],
        unpriced: Option<UnpricedTokens>,
        model: Option<&str>,
    ) -> Option<UnpricedTokens> {
        unpriced?;
        let mut counted = false;
        for t in targets {
            let rule = &self.inner.rules[t.rule];
            if rule.limits.usd.is_some() {
                if !counted {
                    self.inner.counters.unpriced_recorded.fetch_add(1, Relaxed);
                    counted = true;
                }
                if let Some(model) = model {
                    self.alert_unpriced(rule, model);
                }
            }
        }
        unpriced.filter(|_| counted)
    }

    /// Records a settled reservation's spend on its meters. `unpriced`: the call had no
    /// price, and each USD rule charges these tokens by its `on_unpriced` policy.
    pub(crate) fn submit_targets(
        &self,
        release: Option<Release>,
        targets: Targets,
        cost: Usd,
        tokens: u64,
        unpriced: Option<UnpricedTokens>,
    ) -> Utilization {
        // Not alerted here: the reservation alerted its model when it was made.
        let unpriced = self.unpriced_under_usd(&targets, unpriced, None);
        self.submit_at(release, targets, cost, tokens, unpriced, self.now())
    }

    /// What `op` charges the meter of rule `rule`: its amount, or for a call with no price
    /// under a USD rule, the rule's fallback price of its tokens.
    fn charge(&self, rule: usize, op: &CommitOp) -> Amount {
        let r = &self.inner.rules[rule];
        match (op.unpriced.as_deref(), r.limits.usd) {
            (Some(u), Some(_)) => match fallback_picos(&r.on_unpriced, u) {
                Some((usd, _)) => Amount { usd, ..op.amount },
                None => op.amount,
            },
            _ => op.amount,
        }
    }

    /// One alert per model with no price (bounded: 1,000 models), naming the rule's policy
    /// and what to do.
    fn alert_unpriced(&self, rule: &Rule, model: &str) {
        let Some(alerts) = &self.inner.alerts else {
            return;
        };
        let model = llmtel::cap_value(model);
        {
            let mut seen = self
                .inner
                .unpriced_alerted
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.len() >= 1_000 || !seen.insert(model.to_string()) {
                return;
            }
        }
        let what = match rule.on_unpriced {
            Unpriced::Refuse => "refuses its calls",
            Unpriced::Fallback { .. } => "charges its calls at the fallback price",
            Unpriced::Allow => "lets its calls through at $0",
        };
        alerts.send(
            Alert::firing("LlmBudgetUnpricedModel", Severity::Warning)
                .with_label("model", model.as_ref())
                .with_label("rule", rule.name.as_ref())
                .with_label("policy", rule.on_unpriced.name())
                .with_annotation(
                    "summary",
                    format!("model {model:?} has no price: budget {:?} {what}", rule.name),
                )
                .with_annotation(
                    "description",
                    "add a price for the model (a price file, see `llmtel prices check`, or Catalog::insert) or set the rule's on_unpriced policy",
                ),
        );
    }

    fn submit_at(
        &self,
        release: Option<Release>,
        targets: Targets,
        cost: Usd,
        tokens: u64,
        unpriced: Option<UnpricedTokens>,
        at: Timestamp,
    ) -> Utilization {
        self.inner.counters.recorded.fetch_add(1, Relaxed);
        self.note_seen(&targets);
        let (amount, mut capped) = capped_amount(cost, tokens);
        if let Some(u) = &unpriced {
            // Each USD rule charges the fallback price of its policy: capped as well.
            capped |= targets.iter().any(|t| {
                let r = &self.inner.rules[t.rule];
                r.limits.usd.is_some()
                    && fallback_picos(&r.on_unpriced, u).is_some_and(|(_, over)| over)
            });
        }
        self.count_capped(capped);
        let op = CommitOp {
            release,
            targets,
            amount,
            unpriced: unpriced.map(Box::new),
            op_seq: self.inner.next_id.fetch_add(1, Relaxed) + 1,
            at,
        };
        if !self.inner.store.is_remote() {
            return self.apply(op);
        }
        // Remote store: the utilization after this call as this process last saw it.
        let mut util = Utilization::new();
        {
            let last = self.inner.last.lock().unwrap_or_else(|e| e.into_inner());
            let at_ms = op.at.as_millisecond();
            for t in &op.targets {
                if let Some(m) = self.metered_at(t, at_ms) {
                    let seen = last.get(m.meter.current()).copied().unwrap_or_default();
                    let a = self.charge(t.rule, &op);
                    util.push((t.rule, utilization(&m.meter, seen.plus(a))));
                }
            }
        }
        let sent = self.inner.writer.get().map(|w| w.send(op).is_ok());
        if sent != Some(true) {
            self.inner.counters.dropped.fetch_add(1, Relaxed);
        }
        util
    }

    fn note_seen(&self, targets: &[Arc<Metered>]) {
        if targets.is_empty() {
            return;
        }
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        for t in targets {
            let s = seen.entry(t.rule).or_default();
            if s.len() < 10_000 && !s.contains(&*t.value) {
                s.insert(t.value.clone());
            }
        }
    }

    /// Applies one commit to the store; on failure buffers it. Returns (rule, utilization).
    fn apply(&self, op: CommitOp) -> Utilization {
        {
            let pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            if !pending.is_empty() && self.inner.store.is_remote() {
                drop(pending);
                self.buffer(op);
                return Utilization::new();
            }
        }
        match self.try_apply(&op) {
            Ok(u) => u,
            Err(e) => {
                self.store_failed(&e);
                self.buffer(op);
                Utilization::new()
            }
        }
    }

    /// Spend writes buffered while the store was down, waiting to be replayed.
    fn buffered_writes(&self) -> usize {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Applies commits in one store operation; on failure buffers them all, in order.
    fn apply_batch(&self, ops: Vec<CommitOp>) {
        let buffered = self.buffered_writes() > 0;
        if !buffered {
            match self.try_apply_batch(&ops) {
                Ok(_) => return,
                Err(e) if e.rejected => {
                    self.apply_one_by_one(ops);
                    return;
                }
                Err(e) => self.store_failed(&e),
            }
        }
        for op in ops {
            self.buffer(op);
        }
    }

    /// A batch the store refused: writes each op alone, so that one write the store cannot
    /// take does not hold up the others (retrying the batch would fail forever). An op
    /// refused on its own is dropped, counted, logged and alerted; on an outage the rest is
    /// buffered as usual.
    /// Returns how many were written.
    fn apply_one_by_one(&self, ops: Vec<CommitOp>) -> u64 {
        let mut written = 0;
        let mut ops = ops.into_iter();
        while let Some(op) = ops.next() {
            match self.try_apply_batch(std::slice::from_ref(&op)) {
                Ok(_) => written += 1,
                Err(e) if e.rejected => self.reject(&e),
                Err(e) => {
                    self.store_failed(&e);
                    self.buffer(op);
                    for op in ops {
                        self.buffer(op);
                    }
                    break;
                }
            }
        }
        written
    }

    fn reject(&self, e: &StoreError) {
        self.inner.counters.rejected.fetch_add(1, Relaxed);
        self.inner.counters.store_errors.fetch_add(1, Relaxed);
        tracing::error!(target: "llmtel_budget", error = %e,
            "the budget store refused a spend write; it is dropped (see BudgetStats::rejected)");
        if let Some(a) = &self.inner.alerts {
            a.send(
                Alert::firing("LlmBudgetWriteRejected", Severity::Critical)
                    .with_label("store", self.inner.store.kind())
                    .with_annotation("summary", format!("budget store refused a spend write: {e}"))
                    .with_annotation(
                        "description",
                        "the write was dropped so later spend is not held up; budgets may under-count: check the store's version and logs",
                    ),
            );
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

    /// Writes one op (the in-process path of every settle: fewer allocations than a batch).
    fn try_apply(&self, op: &CommitOp) -> Result<Utilization, StoreError> {
        let ms = op.at.as_millisecond();
        // (On the stack for the usual few rules a call falls under: this runs for every
        // call settled in process.)
        let metered: Targets = op
            .targets
            .iter()
            .filter_map(|t| self.metered_at(t, ms))
            .collect();
        if metered.is_empty() && op.release.is_none() {
            return Ok(Utilization::new());
        }
        let charges: SmallVec<[(&Meter, Amount); 4]> = metered
            .iter()
            .map(|m| (&m.meter, self.charge(m.rule, op)))
            .collect();
        let releases: Vec<&Meter> = match &op.release {
            Some((_, ms)) => ms.iter().map(|m| &m.meter).collect(),
            None => Vec::new(),
        };
        let release = op
            .release
            .as_ref()
            .map(|(id, _)| (id.as_str(), releases.as_slice()));
        let now_ms = if self.inner.store.is_remote() {
            (self.inner.clock)().as_millisecond()
        } else {
            ms // in process: applied now
        };
        let spent = self.inner.store.commit(release, &charges, now_ms)?;
        self.store_ok();
        self.after_commit(&metered, &spent, now_ms)
            .map(|u| u.collect())
            .ok_or_else(|| StoreError {
                rejected: false,
                store: self.inner.store.kind(),
                message: "commit answered a different number of meters".into(),
            })
    }

    /// Remembers the spend (remote stores), checks thresholds; (rule, utilization) per meter.
    fn after_commit<'a>(
        &'a self,
        metered: &'a [Arc<Metered>],
        spent: &'a [Amount],
        now_ms: i64,
    ) -> Option<impl Iterator<Item = (usize, f64)> + 'a> {
        if metered.len() != spent.len() {
            return None;
        }
        if self.inner.store.is_remote() {
            let mut last = self.inner.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.len() > 100_000 {
                last.clear();
            }
            for (m, a) in metered.iter().zip(spent) {
                match last.get_mut(m.meter.current()) {
                    Some(v) => *v = *a,
                    None => {
                        last.insert(m.meter.current().to_string(), *a);
                    }
                }
            }
        }
        Some(metered.iter().zip(spent).map(move |(m, a)| {
            if !self.inner.rules[m.rule].thresholds.is_empty() {
                self.thresholds(m, *a, now_ms);
            }
            (m.rule, utilization(&m.meter, *a))
        }))
    }

    /// Writes `ops` in one store operation (all or nothing), then checks thresholds.
    /// Returns (rule, utilization after) per op.
    fn try_apply_batch(&self, ops: &[CommitOp]) -> Result<Vec<Vec<(usize, f64)>>, StoreError> {
        // Each op's meters at its own instant (a settle after midnight goes to the new day).
        let metered: Vec<Vec<Arc<Metered>>> = ops
            .iter()
            .map(|op| {
                let ms = op.at.as_millisecond();
                op.targets
                    .iter()
                    .filter_map(|t| self.metered_at(t, ms))
                    .collect()
            })
            .collect();
        let charges: Vec<Vec<(&Meter, Amount)>> = metered
            .iter()
            .zip(ops)
            .map(|(ms, op)| {
                ms.iter()
                    .map(|m| (&m.meter, self.charge(m.rule, op)))
                    .collect()
            })
            .collect();
        let releases: Vec<Vec<&Meter>> = ops
            .iter()
            .map(|op| match &op.release {
                Some((_, ms)) => ms.iter().map(|m| &m.meter).collect(),
                None => Vec::new(),
            })
            .collect();
        let op_ids: Vec<String> = ops
            .iter()
            .map(|op| match op.op_seq {
                0 => String::new(),
                n => format!("{}.w{n:x}", self.inner.id_prefix),
            })
            .collect();
        let commits: Vec<Commit<'_>> = ops
            .iter()
            .zip(&charges)
            .zip(&releases)
            .zip(&op_ids)
            .filter(|(((op, c), _), _)| !c.is_empty() || op.release.is_some())
            .map(|(((op, c), r), oid)| Commit {
                release: op
                    .release
                    .as_ref()
                    .map(|(id, _)| (id.as_str(), r.as_slice())),
                charges: c.as_slice(),
                // A spend write carries its id (a replay is skipped); a release needs none.
                op_id: (!oid.is_empty() && !c.is_empty()).then_some(oid.as_str()),
            })
            .collect();
        if commits.is_empty() {
            return Ok(ops.iter().map(|_| Vec::new()).collect());
        }
        let now_ms = (self.inner.clock)().as_millisecond();
        let spent = self.inner.store.commit_batch(&commits, now_ms)?;
        drop(commits);
        self.store_ok();
        let mut spent = spent.into_iter();
        let mut out = Vec::with_capacity(ops.len());
        for ((op, ms), c) in ops.iter().zip(&metered).zip(&charges) {
            if c.is_empty() && op.release.is_none() {
                out.push(Vec::new());
                continue;
            }
            let s = spent.next().unwrap_or_default();
            out.push(
                self.after_commit(ms, &s, now_ms)
                    .map(|u| u.collect())
                    .unwrap_or_default(),
            );
        }
        Ok(out)
    }

    fn thresholds(&self, t: &Metered, spent: Amount, now_ms: i64) {
        let (m, w) = (&t.meter, &t.window);
        let rule = &self.inner.rules[t.rule];
        for &pct in &rule.thresholds {
            let crossed = |lim: Option<i64>, s: i64| {
                lim.is_some_and(|l| l > 0 && i128::from(s) * 100 >= i128::from(l) * i128::from(pct))
            };
            if !(crossed(m.limit_usd, spent.usd) || crossed(m.limit_tokens, spent.tokens)) {
                continue;
            }
            // A calendar period fires once; a rolling window's start moves every bucket, so
            // it fires once per window length (the block of `h` hours its start is in), not
            // again at every bucket.
            let period = match rule.period {
                Period::RollingHours(h) => w.period_start.div_euclid((i64::from(h) * 3600).max(1)),
                _ => w.period_start,
            };
            let key = format!("{}\u{1f}{}\u{1f}{pct}", m.id, period);
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
                Ok(true) => self.alert_threshold(rule, t, spent, pct),
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

    fn alert_threshold(&self, rule: &Rule, t: &Metered, spent: Amount, pct: u32) {
        let (m, w) = (&t.meter, &t.window);
        self.inner.counters.alerts.fetch_add(1, Relaxed);
        let Some(alerts) = &self.inner.alerts else {
            return;
        };
        let scope = scope_label(rule, &t.value);
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
        if e.rejected {
            // The store answered (and refused one operation): it is up.
            self.inner.breaker.success();
        } else if self.inner.breaker.failure() {
            self.inner.counters.breaker_trips.fetch_add(1, Relaxed);
            tracing::warn!(target: "llmtel_budget", error = %e,
                "budget store circuit breaker open: reservations answer at once ({}) until a probe succeeds",
                if self.inner.fail == FailMode::Open { "fail-open" } else { "fail-closed" });
        }
        if !self.inner.store_down.swap(true, Relaxed) {
            tracing::warn!(target: "llmtel_budget", error = %e, "budget store unavailable; failing {}",
                if self.inner.fail == FailMode::Open { "open, buffering spend" } else { "closed" });
            if let Some(a) = &self.inner.alerts {
                a.send(
                    Alert::firing("LlmBudgetStoreUnavailable", Severity::Critical)
                        // Lasts until the store is back (resolved in `store_ok`).
                        .until_resolved()
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
        self.inner.breaker.success();
        if self.inner.store_down.load(Relaxed)
            && self.buffered_writes() == 0
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
            let batch: Vec<CommitOp> = {
                let mut p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                let n = p.len().min(WRITE_BATCH);
                self.inner.counters.replaying.store(n as u64, Relaxed);
                p.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            match self.try_apply_batch(&batch) {
                Ok(_) => {
                    self.inner.counters.replaying.store(0, Relaxed);
                    self.inner
                        .counters
                        .replayed
                        .fetch_add(batch.len() as u64, Relaxed);
                }
                Err(e) if e.rejected => {
                    self.inner.counters.replaying.store(0, Relaxed);
                    let written = self.apply_one_by_one(batch);
                    self.inner.counters.replayed.fetch_add(written, Relaxed);
                }
                Err(_) => {
                    self.inner.counters.store_errors.fetch_add(1, Relaxed);
                    let mut p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                    for op in batch.into_iter().rev() {
                        p.push_front(op);
                    }
                    self.inner.counters.replaying.store(0, Relaxed);
                    return false;
                }
            }
        }
        self.store_ok();
        true
    }

    /// Waits up to `timeout` until every spend write queued before this call reached the
    /// store (a store that is down keeps the buffer). Returns whether it did.
    /// `Duration::MAX` waits with no deadline.
    pub fn flush(&self, timeout: Duration) -> bool {
        if self.inner.store.is_remote() {
            // The writer's flush replays the buffer and fails while spend is still buffered.
            let Some(w) = self.inner.writer.get() else {
                return false;
            };
            let empty = w.flush(timeout).is_ok();
            let _ = self.inner.store.flush();
            empty
        } else {
            let empty = self.replay();
            let _ = self.inner.store.flush();
            empty
        }
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
            buffered: self.buffered_writes() as u64 + c.replaying.load(Relaxed),
            replayed: c.replayed.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            alerts: c.alerts.load(Relaxed),
            unpriced_admitted: c.unpriced_admitted.load(Relaxed),
            unpriced_refused: c.unpriced_refused.load(Relaxed),
            unpriced_recorded: c.unpriced_recorded.load(Relaxed),
            amounts_capped: c.amounts_capped.load(Relaxed),
            store_evicted: self.inner.store.evicted(),
            breaker_open: self.inner.breaker.is_open(),
            breaker_trips: c.breaker_trips.load(Relaxed),
            short_circuited: c.short_circuited.load(Relaxed),
            released_after_timeout: c.released_after_timeout.load(Relaxed),
            bound_refused: c.bound_refused.load(Relaxed),
            rules_adjusted: c.rules_adjusted.load(Relaxed),
        }
    }

    /// Status of every rule that applies to this call's context.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub fn status_for(&self, ctx: &CallContext) -> Result<Vec<RuleStatus>, StoreError> {
        let targets = self.targets(ctx, self.now().as_millisecond());
        self.status_of(&targets)
    }

    /// Status of every rule: shared and global rules, and per-value rules for each value
    /// this process has seen (up to 10,000 a rule) or the store lists.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub fn status(&self) -> Result<Vec<RuleStatus>, StoreError> {
        Ok(self.status_by_rule()?.into_iter().map(|(_, s)| s).collect())
    }

    /// [`status`](Self::status), each row with the index of its rule (two rules may share a
    /// name).
    pub(crate) fn status_by_rule(&self) -> Result<Vec<(usize, RuleStatus)>, StoreError> {
        let now_ms = self.now().as_millisecond();
        let mut targets = Vec::new();
        let seen = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (i, r) in self.inner.rules.iter().enumerate() {
            // A set, sorted: the values seen here and the store's (up to 100,000 a rule in
            // memory) merged without a quadratic scan.
            let mut values: std::collections::BTreeSet<String> = seen
                .get(&i)
                .into_iter()
                .flatten()
                .map(|v| v.to_string())
                .collect();
            let prefix = format!("{}\u{1f}", r.name);
            values.extend(self.inner.store.values(&prefix, now_ms)?);
            // Another rule of this name (on values this one never meets) shares the prefix.
            // The rule's values as a set, built once: not a list rebuilt for every value.
            if let Some(keys) = r.key_values() {
                let keys: std::collections::HashSet<&str> = keys.into_iter().collect();
                values.retain(|v| keys.contains(v.as_str()));
            }
            if values.is_empty() && (r.mode == Mode::Shared || r.scope == crate::Scope::Global) {
                values.insert("*".into());
            }
            targets.extend(values.iter().filter_map(|v| self.metered(i, v, now_ms)));
        }
        self.status_of_rules(&targets)
    }

    fn status_of(&self, targets: &[Arc<Metered>]) -> Result<Vec<RuleStatus>, StoreError> {
        Ok(self
            .status_of_rules(targets)?
            .into_iter()
            .map(|(_, s)| s)
            .collect())
    }

    fn status_of_rules(
        &self,
        targets: &[Arc<Metered>],
    ) -> Result<Vec<(usize, RuleStatus)>, StoreError> {
        let now = self.now();
        let now_ms = now.as_millisecond();
        let targets: Targets = targets
            .iter()
            .filter_map(|t| self.metered_at(t, now_ms))
            .collect();
        let meters: Vec<&Meter> = targets.iter().map(|t| &t.meter).collect();
        let ws: Vec<(&Metered, &Window)> = targets.iter().map(|t| (&**t, &t.window)).collect();
        // Read a chunk at a time: the memory store is locked while it sums a chunk, and the
        // calls waiting on it (`reserve` on request threads) wait for one chunk, not for
        // every value of every rule.
        let mut totals = Vec::with_capacity(meters.len());
        for chunk in meters.chunks(STATUS_TOTALS_CHUNK) {
            totals.extend(self.inner.store.totals(chunk, now_ms)?);
        }
        Ok(meters
            .iter()
            .zip(&ws)
            .zip(totals)
            .map(|((m, (t, w)), tot)| {
                let rule = &self.inner.rules[t.rule];
                let status = RuleStatus {
                    rule: rule.name.to_string(),
                    scope: scope_label(rule, &t.value),
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
                };
                (t.rule, status)
            })
            .collect())
    }

    /// Binds a reservation to the span with tracing id `span_id` (and OpenTelemetry span id
    /// `otel`). A reservation bound to that span before and not settled is released; with
    /// [`MAX_BOUND`] bound and none expired, this one is released at once and counted.
    pub(crate) fn bind(&self, span_id: u64, otel: Option<SpanId>, reservation: BoundReservation) {
        let BoundReservation { id, meters, held } = reservation;
        let now = self.now().as_millisecond();
        let mut b = self.inner.bound.lock().unwrap_or_else(|e| e.into_inner());
        let replaced = b.remove(span_id);
        let sweep_due = b
            .swept_at_ms
            .is_none_or(|at| now < at || now - at >= SWEEP_INTERVAL_MS);
        if b.by_span.len() >= MAX_BOUND && sweep_due {
            b.swept_at_ms = Some(now);
            // The store has expired these reservations already: forget them.
            let ttl = self.inner.ttl_ms;
            let expired: Vec<u64> = b
                .by_span
                .iter()
                .filter(|(_, v)| v.at_ms.saturating_add(ttl) <= now)
                .map(|(k, _)| *k)
                .collect();
            for k in expired {
                b.remove(k);
            }
        }
        let refused = if b.by_span.len() >= MAX_BOUND {
            Some(BoundReservation { id, meters, held })
        } else {
            if let Some(o) = otel {
                b.by_otel.insert(o, span_id);
            }
            b.by_span.insert(
                span_id,
                Bound {
                    id,
                    meters,
                    held,
                    otel,
                    at_ms: now,
                },
            );
            None
        };
        self.inner.n_bound.store(b.by_span.len(), Relaxed);
        drop(b);
        if let Some(r) = replaced {
            self.release_bound(BoundReservation {
                id: r.id,
                meters: r.meters,
                held: r.held,
            });
        }
        if let Some(r) = refused {
            self.inner.counters.bound_refused.fetch_add(1, Relaxed);
            self.release_bound(r);
        }
    }

    /// The reservation bound to the span with tracing id `span_id`, taken.
    pub(crate) fn take_bound(&self, span_id: u64) -> Option<BoundReservation> {
        self.take_bound_with(|b| b.remove(span_id))
    }

    /// The reservation bound to the span with OpenTelemetry span id `otel`, taken.
    pub(crate) fn take_bound_otel(&self, otel: SpanId) -> Option<BoundReservation> {
        self.take_bound_with(|b| {
            let span_id = *b.by_otel.get(&otel)?;
            b.remove(span_id)
        })
    }

    fn take_bound_with(
        &self,
        take: impl FnOnce(&mut BoundTable) -> Option<Bound>,
    ) -> Option<BoundReservation> {
        if self.inner.n_bound.load(Relaxed) == 0 {
            return None;
        }
        let mut b = self.inner.bound.lock().unwrap_or_else(|e| e.into_inner());
        let r = take(&mut b)?;
        self.inner.n_bound.store(b.by_span.len(), Relaxed);
        Some(BoundReservation {
            id: r.id,
            meters: r.meters,
            held: r.held,
        })
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

/// The background writer of a remote store: takes every commit queued (up to
/// [`WRITE_BATCH`], lingering [`WRITE_LINGER`] for more) and writes them in one store
/// operation, so the store sees one round trip or transaction for many settles. It holds the
/// budgets weakly: the writer is part of them.
struct Writer(std::sync::Weak<Inner>);

impl Writer {
    fn budgets(&self) -> Option<Budgets> {
        self.0.upgrade().map(Budgets::internal)
    }
}

impl Job for Writer {
    type Item = CommitOp;

    fn process(&mut self, batch: Vec<CommitOp>) -> Result<(), String> {
        if let Some(b) = self.budgets() {
            b.apply_batch(batch);
        }
        Ok(())
    }

    /// Replays spend buffered while the store was down.
    fn tick(&mut self) {
        if let Some(b) = self.budgets() {
            if b.buffered_writes() > 0 {
                b.replay();
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        let Some(b) = self.budgets() else {
            return Ok(());
        };
        // Decided here: a replay drains the buffer while it writes, so the buffer looks empty
        // from outside until a failed write puts it back.
        if b.replay() {
            Ok(())
        } else {
            let n = b.buffered_writes();
            Err(format!(
                "{n} spend writes are still buffered: the {} store is down; they are \
                 replayed when it is back",
                b.inner.store.kind()
            ))
        }
    }
}

/// The OpenTelemetry span id of `span`, when an OpenTelemetry layer gives it one.
fn otel_span_id(span: &tracing::Span) -> Option<SpanId> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.span_id())
}

/// Budget held for one call until it is settled, bound to its span, released or expired.
///
/// Dropping it without settling releases it (a call that never happened).
#[derive(Debug)]
pub struct Reservation {
    budgets: Option<Budgets>,
    id: String,
    /// The meters of the rules that apply to the call.
    targets: Targets,
    /// Whether the store holds the reservation on every target.
    held: bool,
    enforced: bool,
    /// The estimate's tokens when the call has no price ([`Estimate::unpriced`]): a settle
    /// at $0 is charged by each USD rule's `on_unpriced` policy.
    unpriced: Option<UnpricedTokens>,
}

impl Reservation {
    fn new(budgets: Budgets, id: String, targets: Targets, held: bool, enforced: bool) -> Self {
        Reservation {
            budgets: Some(budgets),
            id,
            targets,
            held,
            enforced,
            unpriced: None,
        }
    }

    fn with_unpriced(mut self, unpriced: Option<UnpricedTokens>) -> Self {
        self.unpriced = unpriced;
        self
    }

    /// Its id (unique across processes).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `false` when the store was down and the call was admitted unenforced (fail-open).
    pub fn is_enforced(&self) -> bool {
        self.enforced
    }

    fn release_part(&mut self) -> Option<Release> {
        std::mem::take(&mut self.held).then(|| (std::mem::take(&mut self.id), self.targets.clone()))
    }

    /// Records the call's actual cost and tokens (input + output) against the rules it was
    /// reserved under and releases the reservation, in one store operation. Returns (rule
    /// index, utilization after) when the store is in process; with a remote store the
    /// write is queued to the background writer and the utilization is the last this
    /// process saw.
    ///
    /// A reservation of a call with no price ([`Estimate::unpriced`], a model the catalog
    /// does not know) settled at `Usd::ZERO` (its cost is unknown) is charged as
    /// [`Reservation::settle_unpriced`] would be: each USD rule prices `tokens` by its
    /// [`crate::Unpriced`] policy, taking them as the estimate's input tokens first (the
    /// prompt, counted before the call) and the rest as output tokens. With the exact
    /// counts, call [`Reservation::settle_unpriced`].
    ///
    /// ```
    /// use llmtel_budget::{Budgets, CallContext, Estimate, Period, Rule, Scope, Unpriced};
    /// use llmtel::Usd;
    /// let usd = |s| Usd::parse_decimal(s).unwrap();
    /// let budgets = Budgets::builder()
    ///     .with_rule(Rule::new("per-user", Scope::User, Period::Lifetime)
    ///         .with_limit_usd(usd("10"))
    ///         .with_on_unpriced(Unpriced::Fallback {
    ///             input_per_million: usd("2"),
    ///             output_per_million: usd("10"),
    ///         }))
    ///     .build();
    /// let ctx = CallContext::new().with_user("u-1");
    /// let r = budgets.reserve(&ctx, Estimate::unpriced(100_000, 50_000)).unwrap();
    /// // 120,000 tokens: 100,000 in x $2/M + 20,000 out x $10/M.
    /// r.settle(Usd::ZERO, 120_000);
    /// assert_eq!(budgets.status_for(&ctx).unwrap()[0].spent, usd("0.4"));
    /// ```
    pub fn settle(self, cost: Usd, tokens: u64) -> Vec<(usize, f64)> {
        match self.unpriced {
            Some(estimate) if cost == Usd::ZERO => {
                let input = tokens.min(estimate.input);
                self.settle_unpriced(input, tokens - input)
            }
            _ => self.settle_with(cost, tokens, None),
        }
    }

    /// Settles the reservation of a call whose model has no price with its `input` and
    /// `output` token counts: each rule with a USD limit charges them by its
    /// [`crate::Unpriced`] policy (the fallback price, or $0 under `allow` and `refuse`: the
    /// call already happened), counted in [`BudgetStats::unpriced_recorded`]; token limits
    /// count them all. Otherwise as [`Reservation::settle`].
    pub fn settle_unpriced(self, input: u64, output: u64) -> Vec<(usize, f64)> {
        let u = UnpricedTokens { input, output };
        self.settle_with(Usd::ZERO, input.saturating_add(output), Some(u))
    }

    fn settle_with(
        mut self,
        cost: Usd,
        tokens: u64,
        unpriced: Option<UnpricedTokens>,
    ) -> Vec<(usize, f64)> {
        let Some(b) = self.budgets.take() else {
            return Vec::new();
        };
        let release = self.release_part();
        let targets = std::mem::take(&mut self.targets);
        b.submit_targets(release, targets, cost, tokens, unpriced)
            .into_vec()
    }

    /// Binds this reservation to `span`, to be settled with the actual cost of its call:
    ///
    /// - [`crate::BudgetLayer`] settles it with the first LLM span that closes in `span`
    ///   (the LLM span itself or an ancestor, e.g. the request span); closing `span` with
    ///   no LLM call releases it;
    /// - [`crate::BudgetSink`] on llmtel's export stage settles it with the call of `span`
    ///   itself (bind to the LLM span, as `BudgetPreflight` does), priced once
    ///   there, off the request path. It needs an OpenTelemetry layer in the subscriber
    ///   (the span's OpenTelemetry id is read here, which starts its OpenTelemetry span:
    ///   set its remote parent before binding).
    ///
    /// A binding nothing settles (a span that never closes, an ancestor with only the sink)
    /// holds its estimate until the reservation TTL; past 65,536 unsettled bindings a new
    /// one is released at once and counted in [`BudgetStats::bound_refused`].
    pub fn bind(mut self, span: &tracing::Span) {
        let Some(b) = self.budgets.take() else { return };
        match span.id() {
            Some(id) => {
                // The meters are kept whether the store holds the reservation or not: the
                // call's spend goes to them (a dimension given only to the pre-flight).
                let reservation = BoundReservation {
                    id: std::mem::take(&mut self.id),
                    meters: std::mem::take(&mut self.targets),
                    held: std::mem::take(&mut self.held),
                };
                let otel = otel_span_id(span);
                b.bind(id.into_u64(), otel, reservation)
            }
            None => self.budgets = Some(b), // disabled span: release on drop
        }
    }

    /// Releases the reservation without recording spend.
    pub fn release(mut self) {
        self.release_now();
    }

    fn release_now(&mut self) {
        if let Some(b) = self.budgets.take() {
            if let Some(release) = self.release_part() {
                b.release(release);
            }
        }
    }
}

impl Budgets {
    pub(crate) fn release(&self, release: Release) {
        let op = CommitOp {
            release: Some(release),
            targets: Targets::new(),
            amount: Amount::default(),
            unpriced: None,
            op_seq: 0,
            at: self.now(),
        };
        if !self.inner.store.is_remote() {
            self.apply(op);
            return;
        }
        if let Some(w) = self.inner.writer.get() {
            // A release that cannot be queued simply expires later.
            let _ = w.send(op);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release_now();
    }
}
