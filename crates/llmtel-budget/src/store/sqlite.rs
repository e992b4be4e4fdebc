//! The SQLite store: embedded and durable (WAL; a committed write survives `kill -9`).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Amount, BudgetStore, Commit, Meter, MeterTotals, ReserveOutcome};
use crate::error::StoreError;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS llmtel_budget_bucket (
    key TEXT PRIMARY KEY, usd INTEGER NOT NULL, tokens INTEGER NOT NULL, expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS llmtel_budget_reservation (
    meter TEXT NOT NULL, id TEXT NOT NULL, usd INTEGER NOT NULL, tokens INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL, PRIMARY KEY (meter, id)
) WITHOUT ROWID;
-- Operation ids of applied spend writes (kept for REPLAY_WINDOW_MS): a write replayed
-- after its reply was lost is skipped, never counted twice.
CREATE TABLE IF NOT EXISTS llmtel_budget_applied (
    id TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS llmtel_budget_fired (
    key TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Each meter's sum row (id ''): the sums of its reservations and, as expires_ms, no later
/// than their earliest expiry. Kept by these triggers on every insert and delete; a sum
/// saturates at the i64 bounds (`CAST` of the REAL that SQLite makes of an integer
/// overflow), where a REAL would fail every later read of the row. Created at open, in
/// place of an earlier version's (which added without saturating).
const TRIGGERS: &str = "
CREATE TRIGGER llmtel_budget_held_add AFTER INSERT ON llmtel_budget_reservation
WHEN NEW.id <> '' BEGIN
    INSERT INTO llmtel_budget_reservation (meter, id, usd, tokens, expires_ms)
    VALUES (NEW.meter, '', NEW.usd, NEW.tokens, NEW.expires_ms)
    ON CONFLICT (meter, id) DO UPDATE SET usd = CAST(usd + excluded.usd AS INTEGER),
      tokens = CAST(tokens + excluded.tokens AS INTEGER),
      expires_ms = MIN(expires_ms, excluded.expires_ms);
END;
CREATE TRIGGER llmtel_budget_held_drop AFTER DELETE ON llmtel_budget_reservation
WHEN OLD.id <> '' BEGIN
    UPDATE llmtel_budget_reservation SET usd = CAST(usd - OLD.usd AS INTEGER),
      tokens = CAST(tokens - OLD.tokens AS INTEGER)
    WHERE meter = OLD.meter AND id = '';
END;
";

/// How long an applied spend write's operation id is kept (1 hour).
const REPLAY_WINDOW_MS: i64 = 3_600_000;

fn err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    // Busy, locked, I/O, full disk, cannot open, read-only (a file or file system made
    // read-only, `-shm` locks or a WAL recovery it cannot take now): a state that passes,
    // as Redis's `READONLY` does, so the spend is buffered and replayed, not dropped.
    // Anything else (a constraint, bad SQL, a value of the wrong type) would fail again;
    // so would `READONLY_DBMOVED` (the file was moved or deleted under the open
    // connection, which the store never reopens: its writes fail for good).
    let moved = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_READONLY_DBMOVED
    );
    let transient = !moved
        && matches!(
            e.sqlite_error_code(),
            Some(
                DatabaseBusy
                    | DatabaseLocked
                    | SystemIoFailure
                    | DiskFull
                    | CannotOpen
                    | OutOfMemory
                    | OperationInterrupted
                    | FileLockingProtocolFailed
                    | ReadOnly
            )
        );
    StoreError {
        store: "sqlite",
        message: e.to_string(),
        rejected: !transient,
    }
}

/// Budgets in a SQLite file. Several processes may share the file (writes are serialised
/// by SQLite's lock; `busy_timeout` 2 s).
///
/// A reservation is a row, written before the call is admitted; each meter also has a sum
/// row of its reservations (kept by triggers, rebuilt at every open), so a reserve reads one
/// row however many calls are in flight. A one-rule reserve is a single statement.
///
/// Durability: WAL with `synchronous = NORMAL`, so every committed write survives the
/// process being killed (`kill -9`); an OS crash or power loss may lose the last
/// transactions. [`SqliteStore::with_synchronous_full`] closes that gap at a cost per write.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    ops: std::sync::atomic::AtomicU64,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path`.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or the schema created.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(err)?;
        Self::init(conn)
    }

    /// An in-memory SQLite database (for tests and benchmarks).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(err)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(2)).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // The sum rows are derived data: rebuilt from the reservations at every open, so a
        // file written by an earlier version (or damaged sums) starts out exact. Summed
        // here, saturating (SQLite's `SUM` fails on an overflow: the file would not open).
        immediate(&conn, |c| {
            let current: Option<String> = c
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger'
                     AND name = 'llmtel_budget_held_add'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if !current.is_some_and(|sql| sql.contains("CAST(")) {
                c.execute_batch(
                    "DROP TRIGGER IF EXISTS llmtel_budget_held_add;
                     DROP TRIGGER IF EXISTS llmtel_budget_held_drop;",
                )?;
                c.execute_batch(TRIGGERS)?;
            }
            c.execute("DELETE FROM llmtel_budget_reservation WHERE id = ''", [])?;
            let mut sums: Vec<(String, Amount, i64)> = Vec::new();
            let mut rows = c.prepare(
                "SELECT meter, CAST(usd AS INTEGER), CAST(tokens AS INTEGER), expires_ms
                 FROM llmtel_budget_reservation WHERE id <> '' ORDER BY meter",
            )?;
            let mut rows = rows.query([])?;
            while let Some(r) = rows.next()? {
                let (meter, a, exp): (String, _, i64) = (
                    r.get(0)?,
                    Amount {
                        usd: r.get(1)?,
                        tokens: r.get(2)?,
                    },
                    r.get(3)?,
                );
                match sums.last_mut() {
                    Some((m, sum, first)) if *m == meter => {
                        *sum = sum.plus(a);
                        *first = (*first).min(exp);
                    }
                    _ => sums.push((meter, a, exp)),
                }
            }
            drop(rows);
            let mut ins = c.prepare(
                "INSERT INTO llmtel_budget_reservation (meter, id, usd, tokens, expires_ms)
                 VALUES (?1, '', ?2, ?3, ?4)",
            )?;
            for (meter, sum, first) in sums {
                ins.execute(params![meter, sum.usd, sum.tokens, first])?;
            }
            Ok(())
        })
        .map_err(err)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            ops: Default::default(),
        })
    }

    /// `PRAGMA synchronous = FULL`: durable across OS crashes too (an fsync per commit).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn with_synchronous_full(self) -> Result<Self, StoreError> {
        self.conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(err)?;
        Ok(self)
    }
}

fn spent(c: &Connection, m: &Meter, now_ms: i64) -> rusqlite::Result<Amount> {
    spent_in(c, &m.buckets, now_ms)
}

/// Settled spend over `buckets` (unexpired).
fn spent_in(c: &Connection, buckets: &[String], now_ms: i64) -> rusqlite::Result<Amount> {
    let mut st = c.prepare_cached(
        "SELECT CAST(usd AS INTEGER), CAST(tokens AS INTEGER) FROM llmtel_budget_bucket
         WHERE key = ?1 AND (expires_ms = 0 OR expires_ms > ?2)",
    )?;
    let mut total = Amount::default();
    for b in buckets {
        if let Some((u, t)) = st
            .query_row(params![b, now_ms], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?
        {
            total = total.plus(Amount { usd: u, tokens: t });
        }
    }
    Ok(total)
}

/// "No reservation held" as the earliest expiry of a sum row.
const NONE_HELD: i64 = i64::MAX;

/// What a reserve checks against: the meter's sum row (kept by triggers), once its expired
/// reservations are gone. A reserve reads one row instead of summing every call in flight;
/// the reservation rows are scanned only when the earliest expiry has passed.
fn held(c: &Connection, meter: &str, now_ms: i64) -> rusqlite::Result<Amount> {
    let row = c
        .prepare_cached(
            "SELECT usd, tokens, expires_ms FROM llmtel_budget_reservation
             WHERE meter = ?1 AND id = ''",
        )?
        .query_row(params![meter], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    match row {
        None => Ok(Amount::default()),
        Some((usd, tokens, first)) if first > now_ms => Ok(Amount { usd, tokens }),
        Some(_) => {
            // Deleting them takes them off the sums (trigger); then the next expiry.
            c.prepare_cached(
                "DELETE FROM llmtel_budget_reservation
                 WHERE meter = ?1 AND id <> '' AND expires_ms <= ?2",
            )?
            .execute(params![meter, now_ms])?;
            c.prepare_cached(
                "UPDATE llmtel_budget_reservation SET expires_ms = COALESCE(
                   (SELECT MIN(expires_ms) FROM llmtel_budget_reservation
                    WHERE meter = ?1 AND id <> ''), ?2)
                 WHERE meter = ?1 AND id = '' RETURNING usd, tokens",
            )?
            .query_row(params![meter, NONE_HELD], |r| {
                Ok(Amount {
                    usd: r.get(0)?,
                    tokens: r.get(1)?,
                })
            })
        }
    }
}

/// Drops reservation `id` of `meter` (the trigger takes it off the sums).
fn release(c: &Connection, meter: &str, id: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "DELETE FROM llmtel_budget_reservation WHERE meter = ?1 AND id = ?2 AND id <> ''",
    )?
    .execute(params![meter, id])?;
    Ok(())
}

/// A reserve on one meter with one bucket (the usual call: one rule, a calendar period) as
/// one autocommit statement, like the raw upsert it is measured against: the row is
/// inserted only if the limits hold, the sum row needs no sweep and the id is new. `false`
/// when it was not inserted, for whichever reason: the caller then takes the full path.
fn reserve_fast(
    c: &Connection,
    id: &str,
    m: &Meter,
    a: Amount,
    now_ms: i64,
    expires_ms: i64,
) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "INSERT INTO llmtel_budget_reservation (meter, id, usd, tokens, expires_ms)
             SELECT ?1, ?2, ?3, ?4, ?5 FROM
               (SELECT COALESCE(MAX(usd), 0) AS su, COALESCE(MAX(tokens), 0) AS st
                FROM llmtel_budget_bucket WHERE key = ?9 AND (expires_ms = 0 OR expires_ms > ?8)),
               (SELECT COALESCE(MAX(usd), 0) AS hu, COALESCE(MAX(tokens), 0) AS ht,
                       COALESCE(MAX(expires_ms), ?10) AS first
                FROM llmtel_budget_reservation WHERE meter = ?1 AND id = '')
             WHERE first > ?8
               AND (?6 IS NULL OR ?3 <= 0 OR su + hu + ?3 <= ?6)
               AND (?7 IS NULL OR ?4 <= 0 OR st + ht + ?4 <= ?7)
             ON CONFLICT (meter, id) DO NOTHING",
        )?
        .execute(params![
            m.id,
            id,
            a.usd,
            a.tokens,
            expires_ms,
            m.limit_usd,
            m.limit_tokens,
            now_ms,
            m.current(),
            NONE_HELD
        ])?;
    Ok(n == 1)
}

/// Unexpired reservations of a meter, row by row (status reports; a reserve reads `held`),
/// summed here, saturating (SQLite's `SUM` fails on an overflow).
fn reserved(c: &Connection, meter: &str, now_ms: i64) -> rusqlite::Result<Amount> {
    let mut st = c.prepare_cached(
        "SELECT usd, tokens FROM llmtel_budget_reservation
         WHERE meter = ?1 AND id <> '' AND expires_ms > ?2",
    )?;
    let mut rows = st.query(params![meter, now_ms])?;
    let mut total = Amount::default();
    while let Some(r) = rows.next()? {
        total = total.plus(Amount {
            usd: r.get(0)?,
            tokens: r.get(1)?,
        });
    }
    Ok(total)
}

/// One commit inside an open transaction: release, add, read back the spend.
fn commit_in(tx: &Connection, op: &Commit<'_>, now_ms: i64) -> rusqlite::Result<Vec<Amount>> {
    if let Some(oid) = op.op_id.filter(|o| !o.is_empty()) {
        let fresh = tx
            .prepare_cached(
                "INSERT INTO llmtel_budget_applied (id, expires_ms) VALUES (?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![oid, now_ms.saturating_add(REPLAY_WINDOW_MS)])?;
        if fresh == 0 {
            // Applied before (a replay): nothing written, the spend as it stands.
            return op
                .charges
                .iter()
                .map(|(m, _)| spent(tx, m, now_ms))
                .collect();
        }
    }
    if let Some((id, meters)) = op.release {
        for m in meters {
            release(tx, &m.id, id)?;
        }
    }
    // The upsert returns the current bucket (unexpired: it was just written), so only a
    // rolling window's older buckets are read back. A total saturates at the i64 bounds
    // (as the memory store's does): SQLite turns `usd + excluded.usd` past them into a
    // REAL, which `CAST` brings back to the bound; a REAL left by an earlier version is
    // written back as an integer by any charge, $0 included.
    let mut up = tx.prepare_cached(
        "INSERT INTO llmtel_budget_bucket (key, usd, tokens, expires_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET
           usd = CASE WHEN expires_ms <> 0 AND expires_ms <= ?5 THEN excluded.usd
             ELSE CAST(usd + excluded.usd AS INTEGER) END,
           tokens = CASE WHEN expires_ms <> 0 AND expires_ms <= ?5 THEN excluded.tokens
             ELSE CAST(tokens + excluded.tokens AS INTEGER) END,
           expires_ms = excluded.expires_ms
         RETURNING usd, tokens",
    )?;
    let mut current = Vec::with_capacity(op.charges.len());
    for (m, a) in op.charges {
        let exp = if m.ttl_ms > 0 { now_ms + m.ttl_ms } else { 0 };
        current.push(
            up.query_row(params![m.current(), a.usd, a.tokens, exp, now_ms], |r| {
                Ok(Amount {
                    usd: r.get(0)?,
                    tokens: r.get(1)?,
                })
            })?,
        );
    }
    drop(up);
    let mut out = Vec::with_capacity(op.charges.len());
    for ((m, _), cur) in op.charges.iter().zip(current) {
        let older = &m.buckets[..m.buckets.len().saturating_sub(1)];
        out.push(cur.plus(spent_in(tx, older, now_ms)?));
    }
    Ok(out)
}

/// Runs `f` in one `BEGIN IMMEDIATE` transaction (the write lock first, so that the reads
/// and the write of a reserve are one atomic step across processes): committed when `f`
/// succeeds, rolled back otherwise. `BEGIN` and `COMMIT` are prepared once per connection
/// (rusqlite's `Transaction` parses them again on every call).
fn immediate<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let done = f(c).and_then(|v| {
        c.prepare_cached("COMMIT")?.execute([])?;
        Ok(v)
    });
    if done.is_err() && !c.is_autocommit() {
        // Best effort: the error being returned is the one that matters.
        let _ = c.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
    }
    done
}

impl BudgetStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn reserve(
        &self,
        id: &str,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<ReserveOutcome, StoreError> {
        if id.is_empty() {
            return Err(StoreError::rejected(
                "sqlite",
                "a reservation id must not be empty",
            ));
        }
        let c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if let [(m, a)] = charges {
            if m.buckets.len() == 1
                && reserve_fast(&c, id, m, *a, now_ms, expires_ms).map_err(err)?
            {
                return Ok(ReserveOutcome::Admitted);
            }
        }
        immediate(&c, |tx| {
            for (i, (m, a)) in charges.iter().enumerate() {
                let s = spent(tx, m, now_ms)?;
                let r = held(tx, &m.id, now_ms)?;
                if m.denies(s, r, *a) {
                    return Ok(ReserveOutcome::Denied(i)); // nothing written but expiries
                }
            }
            let mut ins = tx.prepare_cached(
                "INSERT INTO llmtel_budget_reservation VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (meter, id) DO NOTHING",
            )?;
            for (m, a) in charges {
                let row = params![m.id, id, a.usd, a.tokens, expires_ms];
                if ins.execute(row)? == 0 {
                    // The same id again replaces it.
                    release(tx, &m.id, id)?;
                    ins.execute(row)?;
                }
            }
            Ok(ReserveOutcome::Admitted)
        })
        .map_err(err)
    }

    fn commit(
        &self,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError> {
        super::commit_as_batch(self, release, charges, now_ms)
    }

    /// One `IMMEDIATE` transaction for the whole batch: written entirely or not at all.
    fn commit_batch(
        &self,
        ops: &[Commit<'_>],
        now_ms: i64,
    ) -> Result<Vec<Vec<Amount>>, StoreError> {
        let c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let n = ops.len() as u64;
        let before = self.ops.load(std::sync::atomic::Ordering::Relaxed);
        let out = immediate(&c, |tx| {
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                out.push(commit_in(tx, op, now_ms)?);
            }
            if before / 4096 != (before + n) / 4096 {
                for table in [
                    "DELETE FROM llmtel_budget_bucket WHERE expires_ms <> 0 AND expires_ms <= ?1",
                    "DELETE FROM llmtel_budget_fired WHERE expires_ms <> 0 AND expires_ms <= ?1",
                    "DELETE FROM llmtel_budget_applied WHERE expires_ms <= ?1",
                    // Expired reservations of every meter (off the sums by the trigger),
                    // then those sums' next expiry.
                    "DELETE FROM llmtel_budget_reservation WHERE id <> '' AND expires_ms <= ?1",
                    "UPDATE llmtel_budget_reservation AS s SET
                       expires_ms = (SELECT COALESCE(MIN(x.expires_ms), 9223372036854775807)
                                     FROM llmtel_budget_reservation x
                                     WHERE x.meter = s.meter AND x.id <> '')
                     WHERE s.id = '' AND s.expires_ms <= ?1",
                ] {
                    tx.execute(table, params![now_ms])?;
                }
                tx.execute(
                    "DELETE FROM llmtel_budget_reservation
                     WHERE id = '' AND expires_ms = ?1 AND usd = 0 AND tokens = 0",
                    params![NONE_HELD],
                )?;
            }
            Ok(out)
        })
        .map_err(err)?;
        self.ops.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(out)
    }

    fn totals(&self, meters: &[&Meter], now_ms: i64) -> Result<Vec<MeterTotals>, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = c.transaction().map_err(err)?;
        let mut out = Vec::with_capacity(meters.len());
        for m in meters {
            out.push(MeterTotals {
                spent: spent(&tx, m, now_ms).map_err(err)?,
                reserved: reserved(&tx, &m.id, now_ms).map_err(err)?,
            });
        }
        tx.commit().map_err(err)?;
        Ok(out)
    }

    fn values(&self, prefix: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = c
            .prepare_cached(
                "SELECT key FROM llmtel_budget_bucket WHERE substr(key, 1, length(?1)) = ?1
                 AND (expires_ms = 0 OR expires_ms > ?2)",
            )
            .map_err(err)?;
        let keys = st
            .query_map(params![prefix, now_ms], |r| r.get::<_, String>(0))
            .map_err(err)?;
        let mut v = Vec::new();
        for k in keys {
            let k = k.map_err(err)?;
            if let Some(x) = super::value_of(&k, prefix) {
                v.push(x.to_string());
            }
        }
        v.sort();
        v.dedup();
        Ok(v)
    }

    fn fire_once(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        let c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let exp = if ttl_ms > 0 { now_ms + ttl_ms } else { 0 };
        let n = c
            .prepare_cached(
                "INSERT INTO llmtel_budget_fired (key, expires_ms) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET expires_ms = excluded.expires_ms
                 WHERE llmtel_budget_fired.expires_ms <> 0 AND llmtel_budget_fired.expires_ms <= ?3",
            )
            .map_err(err)?
            .execute(params![key, exp, now_ms])
            .map_err(err)?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database SQLite can only read answers `SQLITE_READONLY` (and its extended codes:
    /// a `-shm` it cannot lock, a WAL recovery it cannot run): a state that passes (the
    /// file or its file system made writable again), so the spend is buffered and
    /// replayed like Redis's `READONLY`, not dropped as refused. Not a file moved under
    /// the connection (`READONLY_DBMOVED`): the store never reopens it, so that is a
    /// refusal (buffering would promise a replay that never comes).
    #[test]
    fn a_read_only_database_is_unavailable_not_a_refusal() {
        let dir = std::env::temp_dir().join(format!(
            "llmtel-budget-readonly-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("budget.db");
        drop(SqliteStore::open(&path).expect("create"));
        // What a connection meets on a read-only file or file system (as root, the file's
        // mode alone would not stop it).
        let ro = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open read-only");
        let e = ro
            .execute(
                "INSERT INTO llmtel_budget_fired (key, expires_ms) VALUES ('k', 0)",
                [],
            )
            .expect_err("a read-only database refuses the write");
        assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly));
        let se = err(e);
        assert!(!se.rejected, "{se}");
        for code in [
            rusqlite::ffi::SQLITE_READONLY_CANTLOCK,
            rusqlite::ffi::SQLITE_READONLY_RECOVERY,
        ] {
            let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            assert!(!err(e).rejected, "extended code {code}");
        }
        let moved = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY_DBMOVED),
            None,
        );
        assert!(err(moved).rejected, "a moved file is not waited for");
        // A refusal stays one.
        let bad = Connection::open_in_memory()
            .expect("db")
            .execute("INSERT INTO no_such_table VALUES (1)", [])
            .expect_err("no table");
        assert!(err(bad).rejected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
