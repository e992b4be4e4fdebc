//! The in-memory store (default): one process, lost at exit.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Amount, BudgetStore, Meter, MeterTotals, ReserveOutcome};
use crate::error::StoreError;

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, (Amount, i64)>,
    reservations: HashMap<String, Vec<(String, Amount, i64)>>,
    fired: HashMap<String, i64>,
    ops: u64,
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

    fn prune(&mut self, now_ms: i64) {
        self.ops += 1;
        if self.ops % 4096 == 0 {
            self.buckets
                .retain(|_, (_, exp)| *exp == 0 || *exp > now_ms);
            self.fired.retain(|_, exp| *exp == 0 || *exp > now_ms);
            self.reservations.retain(|_, v| {
                v.retain(|(_, _, exp)| *exp > now_ms);
                !v.is_empty()
            });
        }
    }
}

/// Budgets in process memory: exact, fast, not shared and not durable.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
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
        for (i, (m, a)) in charges.iter().enumerate() {
            let spent = s.spent(m, now_ms);
            let reserved = s.reserved(&m.id, now_ms);
            if m.denies(spent, reserved, *a) {
                return Ok(ReserveOutcome::Denied(i));
            }
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
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.prune(now_ms);
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
            out.push(s.spent(m, now_ms));
        }
        Ok(out)
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
