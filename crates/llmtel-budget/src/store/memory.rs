//! The in-memory store (default): one process, lost at exit.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{Amount, BudgetStore, Meter, MeterTotals, ReserveOutcome};
use crate::error::StoreError;

/// Distinct scope values (meters) a rule keeps by default before some are evicted (see
/// [`MemoryStore`] for which).
pub const DEFAULT_MAX_VALUES_PER_RULE: usize = 100_000;

#[derive(Debug, Default)]
struct State {
    buckets: foldhash::HashMap<String, (Amount, i64)>,
    reservations: foldhash::HashMap<String, Vec<(String, Amount, i64)>>,
    fired: foldhash::HashMap<String, i64>,
    ops: u64,
    /// Every meter kept (`rule\x1fvalue`): when it was last used and whether it is at its
    /// limit.
    meters: foldhash::HashMap<String, Use>,
    /// Meters kept per rule.
    per_rule: foldhash::HashMap<String, usize>,
    /// Applied operation ids and when they are forgotten (see [`super::Commit::op_id`]).
    applied: foldhash::HashMap<String, i64>,
}

/// How long an applied operation id is kept.
const REPLAY_WINDOW_MS: i64 = 3_600_000;

/// The last use of a meter, which decides the order of eviction.
#[derive(Clone, Copy, Debug, Default)]
struct Use {
    /// When it was last used (`ops`), a reserve refused included.
    tick: u64,
    /// It refused a reservation, or its spend reached a limit, and has not admitted one
    /// since: evicting it would let its scope value in again at $0.
    full: bool,
}

/// Whether `spent` has reached a limit of `m`.
fn at_limit(m: &Meter, spent: Amount) -> bool {
    m.limit_usd.is_some_and(|l| spent.usd >= l) || m.limit_tokens.is_some_and(|l| spent.tokens >= l)
}

/// The rule of a meter id `rule\x1fvalue`.
fn rule_of(meter: &str) -> &str {
    meter.split_once('\u{1f}').map_or(meter, |(r, _)| r)
}

/// The meter of a bucket key `rule\x1fvalue\x1fstart`.
fn meter_of_bucket(key: &str) -> &str {
    key.rsplit_once('\u{1f}').map_or(key, |(m, _)| m)
}

impl State {
    fn spent(&self, m: &Meter, now_ms: i64) -> Amount {
        m.buckets
            .iter()
            .filter_map(|b| self.buckets.get(b))
            .filter(|(_, exp)| *exp == 0 || *exp > now_ms)
            .fold(Amount::default(), |a, (v, _)| a.plus(*v))
    }

    fn reserved(&mut self, meter: &str, now_ms: i64) -> Amount {
        match self.reservations.get_mut(meter) {
            None => Amount::default(),
            Some(v) => {
                v.retain(|(_, _, exp)| *exp > now_ms);
                v.iter().fold(Amount::default(), |a, (_, x, _)| a.plus(*x))
            }
        }
    }

    /// Notes a use of `meter`; when its rule keeps more than `cap` meters, evicts a tenth
    /// of them (with their spend, reservations and fired marks): first those with no spend
    /// and no reservation in their window, then those under their limit, the least recently
    /// used first in each; a meter at its limit (refusing calls) last, as evicting it lets
    /// its scope value in again at $0. Returns how many were evicted.
    fn touch(&mut self, meter: &str, cap: usize, now_ms: i64) -> u64 {
        self.ops += 1;
        let tick = self.ops;
        if let Some(u) = self.meters.get_mut(meter) {
            u.tick = tick;
            return 0;
        }
        self.meters
            .insert(meter.to_string(), Use { tick, full: false });
        let rule = rule_of(meter);
        let n = match self.per_rule.get_mut(rule) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.per_rule.insert(rule.to_string(), 1);
                1
            }
        };
        if n <= cap {
            return 0;
        }
        // The rule's meters with spend or a reservation in their window.
        let live: HashSet<&str> = self
            .buckets
            .iter()
            .filter(|(k, (a, exp))| {
                (*exp == 0 || *exp > now_ms) && *a != Amount::default() && rule_of(k) == rule
            })
            .map(|(k, _)| meter_of_bucket(k))
            .chain(
                self.reservations
                    .iter()
                    .filter(|(m, v)| rule_of(m) == rule && v.iter().any(|(_, _, e)| *e > now_ms))
                    .map(|(m, _)| m.as_str()),
            )
            .collect();
        // Nothing to lose first, then under the limit, at the limit last; the least recently
        // used first in each; never the meter just added.
        let mut of_rule: Vec<((u8, u64), &String)> = self
            .meters
            .iter()
            .filter(|(m, _)| rule_of(m) == rule && m.as_str() != meter)
            .map(|(m, u)| {
                let class = match (live.contains(m.as_str()), u.full) {
                    (false, _) => 0,
                    (true, false) => 1,
                    (true, true) => 2,
                };
                ((class, u.tick), m)
            })
            .collect();
        of_rule.sort_unstable();
        let drop_n = (n - cap).max(cap / 10).min(of_rule.len());
        let evict: HashSet<String> = of_rule[..drop_n]
            .iter()
            .map(|(_, m)| (*m).clone())
            .collect();
        drop(live);
        for m in &evict {
            self.meters.remove(m);
            self.reservations.remove(m);
        }
        self.buckets
            .retain(|k, _| !evict.contains(meter_of_bucket(k)));
        self.fired.retain(|k, _| {
            let m = meter_of_bucket(meter_of_bucket(k));
            !evict.contains(m)
        });
        if let Some(c) = self.per_rule.get_mut(rule) {
            *c -= evict.len();
        }
        evict.len() as u64
    }

    /// Notes whether `m` is at its limit (it refused a call, or its spend reached a limit).
    fn mark(&mut self, m: &Meter, full: bool) {
        if let Some(u) = self.meters.get_mut(&m.id) {
            u.full = full;
        }
    }

    fn prune(&mut self, now_ms: i64) {
        self.ops += 1;
        if self.ops % 4096 == 0 {
            self.buckets
                .retain(|_, (_, exp)| *exp == 0 || *exp > now_ms);
            self.fired.retain(|_, exp| *exp == 0 || *exp > now_ms);
            self.applied.retain(|_, exp| *exp > now_ms);
            self.reservations.retain(|_, v| {
                v.retain(|(_, _, exp)| *exp > now_ms);
                !v.is_empty()
            });
        }
    }
}

/// Budgets in process memory: exact, fast, not shared and not durable.
///
/// Bounded: expired periods are dropped, and each rule keeps at most
/// [`DEFAULT_MAX_VALUES_PER_RULE`] distinct scope values
/// ([`MemoryStore::with_max_values_per_rule`]); beyond, a tenth of them is evicted with
/// their spend and reservations (an evicted value starts again from zero), counted in
/// [`BudgetStore::evicted`] and `BudgetStats::store_evicted`: first values with no spend and
/// no reservation in the period, then values under their limit, values at their limit
/// (refusing calls) last, the least recently used first in each. A refused reservation is a
/// use: a value over its limit that keeps retrying is not the one evicted and let in again. Scope values are
/// capped in length by [`crate::CallContext`], so the store's size is bounded by
/// rules x values x [`llmtel::MAX_VALUE_BYTES`].
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    max_values: usize,
    evicted: AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            state: Mutex::default(),
            max_values: DEFAULT_MAX_VALUES_PER_RULE,
            evicted: AtomicU64::new(0),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Keeps at most `n` distinct scope values per rule (at least 1; default
    /// [`DEFAULT_MAX_VALUES_PER_RULE`]), evicting beyond (see [`MemoryStore`] for which).
    pub fn with_max_values_per_rule(mut self, n: usize) -> Self {
        self.max_values = n.max(1);
        self
    }

    /// Distinct meters (rule and scope value) the store keeps now.
    pub fn meters(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .meters
            .len()
    }

    /// An estimate of the bytes the store's maps hold: keys, values and entries (not the
    /// allocator's overhead).
    pub fn approx_bytes(&self) -> usize {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = 3 * std::mem::size_of::<usize>(); // a String's header
        let b: usize = s
            .buckets
            .keys()
            .map(|k| k.capacity() + entry + std::mem::size_of::<(Amount, i64)>())
            .sum();
        let r: usize = s
            .reservations
            .iter()
            .map(|(k, v)| {
                k.capacity()
                    + entry * 2
                    + v.iter()
                        .map(|(id, _, _)| {
                            id.capacity() + std::mem::size_of::<(String, Amount, i64)>()
                        })
                        .sum::<usize>()
            })
            .sum();
        let f: usize = s.fired.keys().map(|k| k.capacity() + entry + 8).sum();
        let m: usize = s
            .meters
            .keys()
            .map(|k| k.capacity() + entry + std::mem::size_of::<Use>())
            .sum();
        let p: usize = s.per_rule.keys().map(|k| k.capacity() + entry + 8).sum();
        b + r + f + m + p
    }

    fn commit_op(
        &self,
        op_id: Option<&str>,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.prune(now_ms);
        let skip = match op_id.filter(|o| !o.is_empty()) {
            Some(o) if s.applied.get(o).is_some_and(|exp| *exp > now_ms) => true,
            Some(o) => {
                s.applied.insert(o.to_string(), now_ms + REPLAY_WINDOW_MS);
                false
            }
            None => false,
        };
        self.touch_all(&mut s, charges.iter().map(|(m, _)| *m), now_ms);
        if skip {
            // Applied before (a replay): nothing written.
            return Ok(charges.iter().map(|(m, _)| s.spent(m, now_ms)).collect());
        }
        if let Some((id, meters)) = release {
            for m in meters {
                if let Some(v) = s.reservations.get_mut(m.id.as_str()) {
                    v.retain(|(r, _, _)| r != id);
                }
            }
        }
        let mut out = Vec::with_capacity(charges.len());
        for (m, a) in charges {
            let exp = if m.ttl_ms > 0 { now_ms + m.ttl_ms } else { 0 };
            match s.buckets.get_mut(m.current()) {
                Some((v, e)) => {
                    if *e != 0 && *e <= now_ms {
                        *v = Amount::default();
                    }
                    *v = v.plus(*a);
                    *e = exp;
                }
                None => {
                    s.buckets.insert(m.current().to_string(), (*a, exp));
                }
            }
            let spent = s.spent(m, now_ms);
            s.mark(m, at_limit(m, spent));
            out.push(spent);
        }
        Ok(out)
    }

    fn touch_all<'a>(&self, s: &mut State, meters: impl Iterator<Item = &'a Meter>, now_ms: i64) {
        let mut n = 0;
        for m in meters {
            n += s.touch(&m.id, self.max_values, now_ms);
        }
        if n > 0 {
            self.evicted.fetch_add(n, Relaxed);
        }
    }
}

impl BudgetStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn is_remote(&self) -> bool {
        false
    }

    fn reserve(
        &self,
        id: &str,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<ReserveOutcome, StoreError> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let denied = charges.iter().position(|(m, a)| {
            let spent = s.spent(m, now_ms);
            let reserved = s.reserved(&m.id, now_ms);
            m.denies(spent, reserved, *a)
        });
        // A refused call is a use too: a scope value retrying over its limit stays the most
        // recently used, not the first evicted (and let in again at $0).
        self.touch_all(&mut s, charges.iter().map(|(m, _)| *m), now_ms);
        if let Some(i) = denied {
            s.mark(charges[i].0, true);
            return Ok(ReserveOutcome::Denied(i));
        }
        for (m, _) in charges {
            s.mark(m, false);
        }
        for (m, a) in charges {
            match s.reservations.get_mut(&m.id) {
                Some(v) => v.push((id.to_string(), *a, expires_ms)),
                None => {
                    s.reservations
                        .insert(m.id.clone(), vec![(id.to_string(), *a, expires_ms)]);
                }
            }
        }
        Ok(ReserveOutcome::Admitted)
    }

    fn commit(
        &self,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError> {
        self.commit_op(None, release, charges, now_ms)
    }

    fn commit_batch(
        &self,
        ops: &[super::Commit<'_>],
        now_ms: i64,
    ) -> Result<Vec<Vec<Amount>>, StoreError> {
        ops.iter()
            .map(|c| self.commit_op(c.op_id, c.release, c.charges, now_ms))
            .collect()
    }

    fn totals(&self, meters: &[&Meter], now_ms: i64) -> Result<Vec<MeterTotals>, StoreError> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(meters
            .iter()
            .map(|m| MeterTotals {
                spent: s.spent(m, now_ms),
                reserved: s.reserved(&m.id, now_ms),
            })
            .collect())
    }

    fn values(&self, prefix: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<String> = s
            .buckets
            .iter()
            .filter(|(_, (_, exp))| *exp == 0 || *exp > now_ms)
            .filter_map(|(k, _)| super::value_of(k, prefix).map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    fn fire_once(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let exp = if ttl_ms > 0 { now_ms + ttl_ms } else { 0 };
        match s.fired.get_mut(key) {
            Some(e) if *e == 0 || *e > now_ms => Ok(false),
            Some(e) => {
                *e = exp;
                Ok(true)
            }
            None => {
                s.fired.insert(key.to_string(), exp);
                Ok(true)
            }
        }
    }
}
