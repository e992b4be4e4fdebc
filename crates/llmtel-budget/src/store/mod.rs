//! Budget stores: where spend, reservations and fired thresholds live.
//!
//! Every store implements [`BudgetStore`] and passes the same behaviour suite
//! (`tests/store_behaviour.rs`). Amounts are exact integers: pico-dollars and tokens, as
//! `i64` (so one bucket holds up to about $9.2 million).

mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::{DEFAULT_MAX_VALUES_PER_RULE, MemoryStore};
#[cfg(feature = "redis")]
pub use redis::RedisStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use std::fmt::Debug;

use crate::error::StoreError;

/// An amount of spend: pico-dollars and tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Amount {
    /// Pico-dollars.
    pub usd: i64,
    /// Tokens.
    pub tokens: i64,
}

impl Amount {
    /// Component-wise saturating sum.
    pub fn plus(self, o: Amount) -> Amount {
        Amount {
            usd: self.usd.saturating_add(o.usd),
            tokens: self.tokens.saturating_add(o.tokens),
        }
    }
}

/// One budget counter of one rule and scope value: the buckets to sum (the last is the
/// current one, where spend is added) and its limits. Reservations belong to the meter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meter {
    /// `rule\x1fvalue`; reservations are held under it.
    pub id: String,
    /// Bucket keys to sum, current last.
    pub buckets: Vec<String>,
    /// How long the current bucket is kept after a write, ms (0: forever); at least until
    /// its period ends.
    pub ttl_ms: i64,
    /// USD limit in pico-dollars.
    pub limit_usd: Option<i64>,
    /// Token limit.
    pub limit_tokens: Option<i64>,
}

impl Meter {
    /// The bucket spend is added to.
    pub fn current(&self) -> &str {
        self.buckets.last().map(String::as_str).unwrap_or("")
    }

    /// Whether `spent + reserved + amount` passes a limit. A zero amount of a kind never
    /// does (zero-priced models are never blocked by a USD limit).
    pub fn denies(&self, spent: Amount, reserved: Amount, amount: Amount) -> bool {
        let over = |lim: Option<i64>, s: i64, r: i64, a: i64| {
            lim.is_some_and(|l| {
                a > 0 && i128::from(s) + i128::from(r) + i128::from(a) > i128::from(l)
            })
        };
        over(self.limit_usd, spent.usd, reserved.usd, amount.usd)
            || over(
                self.limit_tokens,
                spent.tokens,
                reserved.tokens,
                amount.tokens,
            )
    }
}

/// One settle or release of a batch: the reservation to drop (its id and meters) and the
/// amounts to add.
#[derive(Clone, Copy, Debug)]
pub struct Commit<'a> {
    /// Reservation `id` to remove from these meters.
    pub release: Option<(&'a str, &'a [&'a Meter])>,
    /// Amounts to add to each meter's current bucket.
    pub charges: &'a [(&'a Meter, Amount)],
    /// The operation's id, unique across processes: a store that can lose a reply after
    /// applying a commit (Redis, SQLite) records it and skips a commit whose id it has
    /// already applied, so a replayed write is never counted twice. `None`: not recorded.
    pub op_id: Option<&'a str>,
}

/// What `reserve` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every meter had room; the reservation is held.
    Admitted,
    /// The meter at this index would pass a limit; nothing was reserved.
    Denied(usize),
}

/// Settled and reserved spend of a meter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeterTotals {
    /// Settled spend over the meter's buckets.
    pub spent: Amount,
    /// Unexpired reservations.
    pub reserved: Amount,
}

/// Where budgets live. Operations on several meters are atomic: a reservation is held on
/// all of them or none.
///
/// `now_ms` is the budgets' clock (unix ms), passed in so that tests can move time.
pub trait BudgetStore: Send + Sync + Debug {
    /// `memory`, `sqlite` or `redis`.
    fn kind(&self) -> &'static str;

    /// Whether operations leave the process (network or disk). The budget layer writes to
    /// such stores from a background thread, never on the request path.
    fn is_remote(&self) -> bool {
        true
    }

    /// Atomically: drops expired reservations of the meters; if no meter would pass a limit
    /// with its amount ([`Meter::denies`]), holds reservation `id` (until `expires_ms`) on
    /// every meter.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached.
    fn reserve(
        &self,
        id: &str,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<ReserveOutcome, StoreError>;

    /// Atomically adds each amount to its meter's current bucket and removes reservation
    /// `release.0` from the meters `release.1`. Returns each charged meter's settled spend
    /// afterwards.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached (nothing was written).
    fn commit(
        &self,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError>;

    /// Applies several commits in order, as one operation where the store can (one SQLite
    /// transaction, one Redis script): the background writer batches settles this way, so
    /// a remote store pays one round trip for many calls. Returns each commit's result.
    ///
    /// The default applies them one by one; a store that can fail part-way must override
    /// it so that a batch is written entirely or not at all (a failed batch is buffered and
    /// written again whole).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached (nothing was written).
    fn commit_batch(
        &self,
        ops: &[Commit<'_>],
        now_ms: i64,
    ) -> Result<Vec<Vec<Amount>>, StoreError> {
        ops.iter()
            .map(|c| self.commit(c.release, c.charges, now_ms))
            .collect()
    }

    /// Settled and reserved spend of each meter.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached.
    fn totals(&self, meters: &[&Meter], now_ms: i64) -> Result<Vec<MeterTotals>, StoreError>;

    /// Marks `key` for `ttl_ms` (0: forever); `true` only for the first caller, across every
    /// process sharing the store.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached.
    fn fire_once(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError>;

    /// The scope values that have spend under meters starting with `prefix`
    /// (`rule\x1f`), for status reports. Default: none known.
    ///
    /// # Errors
    /// [`StoreError`].
    fn values(&self, prefix: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let _ = (prefix, now_ms);
        Ok(Vec::new())
    }

    /// Scope values (meters) the store evicted to stay within its bounds, with their spend
    /// (the memory store's values beyond its cap). Default: 0.
    fn evicted(&self) -> u64 {
        0
    }

    /// Makes written spend durable, where that is a separate step.
    ///
    /// # Errors
    /// [`StoreError`].
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Releases connections and files.
    ///
    /// # Errors
    /// [`StoreError`].
    fn shutdown(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The longest expiry a store is given, ms (100 years): a longer TTL or window
/// (`Duration::MAX` included) is taken as this, so that every store can keep it as ms since
/// the epoch (Redis `PEXPIRE` / `PX` refuse an expiry past `i64::MAX`, and its Lua scripts
/// compute in doubles, exact below 2^53).
pub(crate) const MAX_EXPIRY_MS: i64 = 100 * 365 * 24 * 3_600_000;

/// `d` in ms, at most [`MAX_EXPIRY_MS`] (a caller's `Duration::MAX` never overflows).
pub(crate) fn expiry_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis())
        .unwrap_or(i64::MAX)
        .min(MAX_EXPIRY_MS)
}

/// [`BudgetStore::commit`] for a store whose [`BudgetStore::commit_batch`] does the work:
/// one commit as a batch of one.
#[cfg(any(feature = "redis", feature = "sqlite"))]
pub(crate) fn commit_as_batch(
    store: &dyn BudgetStore,
    release: Option<(&str, &[&Meter])>,
    charges: &[(&Meter, Amount)],
    now_ms: i64,
) -> Result<Vec<Amount>, StoreError> {
    let one = Commit {
        release,
        charges,
        op_id: None,
    };
    Ok(store
        .commit_batch(&[one], now_ms)?
        .pop()
        .unwrap_or_default())
}

/// The scope value of a bucket key `rule\x1fvalue\x1fstart` under `prefix` (`rule\x1f`).
pub(crate) fn value_of<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix)?
        .rsplit_once('\u{1f}')
        .map(|(v, _)| v)
}
