//! The Redis store: one budget shared by every process and replica.
//!
//! Every multi-key operation is one Lua script (atomic on the server). Keys, under a
//! prefix (default `llmtel:budget:`):
//! - `{prefix}b:{bucket}`: hash `u` (pico-dollars), `t` (tokens); expires after its period
//!   (plus a day) by `PEXPIRE`, so old periods clean themselves up;
//! - `{prefix}r:{meter}`: one hash per meter for its reservations: reservation id ->
//!   `usd:tokens:expires_ms`, plus `u`, `t` (the sum of the reservations held) and `e` (no
//!   later than the earliest expiry held). A reserve reads the sums and scans the hash for
//!   expired reservations only once `e` has passed (about once per reservation TTL), so it
//!   costs the same with 1 or 10,000 calls in flight;
//! - `{prefix}f:{key}`: fired thresholds, `SET NX PX`.
//!
//! Cost per call (what the budgets issue measured): each script reads a hash once
//! (`HMGET`) and writes it once (`HSET`), keeping the sums in Lua between; `PEXPIRE` runs
//! only when the key's last extension (field `k`, overshooting by 1/8 of the TTL) no longer
//! covers the new deadline. A reserve on one meter is 3 `redis.call`s (was 10); a batch of
//! settles is one `HGET` per settle plus 3 calls per key touched (was 9 per settle).
//!
//! Sums are returned to Rust as strings and added there as exact integers. Lua keeps a sum
//! while it stays below 2^52 (exact in a double) and otherwise falls back to `HINCRBY` on
//! the server (exact for any `i64`). The limit check inside the reserve script uses Lua
//! numbers (doubles): exact up to 2^53 pico-dollars (about $9,007 per budget), within 1e-16
//! relative above. A sum that reached the i64 bound (saturated: about $9.2 million or
//! 9.2e18 tokens, or within 2^10 of it, which doubles cannot tell apart) refuses every
//! call that adds to it, under any limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{Client, Connection, Script, Value};

use super::{Amount, BudgetStore, Commit, Meter, MeterTotals, ReserveOutcome};
use crate::error::StoreError;

/// The Lua text both scripts start with: `LIM` (2^52: below it a sum is kept exactly in a
/// Lua number) and `hincrby_sat`, an `HINCRBY` that saturates at the i64 bounds (Redis
/// refuses to overflow). A macro so that `concat!` joins it to each script at build time.
macro_rules! lua_prelude {
    () => {
        r#"
local LIM = 4503599627370496
local function hincrby_sat(key, f, by)
  local r = redis.pcall('HINCRBY', key, f, by)
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'overflow') then error(r) end
    redis.call('HSET', key, f, string.sub(by, 1, 1) == '-' and '-9223372036854775808' or '9223372036854775807')
  end
end
"#
    };
}

/// Drops the expired reservations of each meter (when its `e` has passed); holds `id` on
/// every meter if none would pass a limit. Returns 0, or the 1-based meter that would.
///
/// Runs once per call on the request path, so it is written flat: one helper function (the
/// prelude's: Lua builds a closure per function per run, ~0.3 µs each) and no tables per
/// key. Each meter's hash is read once (`HMGET`) and written once (`HSET`, the new sums
/// computed in Lua while they stay below 2^52, `HINCRBY` above).
const RESERVE: &str = concat!(
    lua_prelude!(),
    r#"
local SAT = 2^63
local id, now, exp, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ki, ai = 1, 5
local holds = {}
for m = 1, n do
  local nb, lu, lt = tonumber(ARGV[ai]), tonumber(ARGV[ai+1]), tonumber(ARGV[ai+2])
  local au, at, ttl = ARGV[ai+3], ARGV[ai+4], tonumber(ARGV[ai+5])
  ai = ai + 6
  local rk = KEYS[ki]
  ki = ki + 1
  local su, st = 0, 0
  for b = 1, nb do
    local v = redis.call('HMGET', KEYS[ki], 'u', 't')
    ki = ki + 1
    su = su + (tonumber(v[1]) or 0)
    st = st + (tonumber(v[2]) or 0)
  end
  local v = redis.call('HMGET', rk, 'u', 't', 'k', 'e')
  local ru, rt, k, e = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4])
  if e and e <= now then
    -- The earliest expiry has passed: drop the expired reservations (exactly, on the
    -- server) and note the next earliest expiry.
    local function neg(x) if x == '0' then return x end if string.sub(x, 1, 1) == '-' then return string.sub(x, 2) end return '-' .. x end
    local all = redis.call('HGETALL', rk)
    local ne, del = nil, {}
    for i = 1, #all, 2 do
      local f, val = all[i], all[i + 1]
      if string.len(f) > 1 then
        local u, t, x = string.match(val, '^(%-?%d+):(%-?%d+):(%-?%d+)$')
        if u then
          x = tonumber(x)
          if x <= now then
            hincrby_sat(rk, 'u', neg(u))
            hincrby_sat(rk, 't', neg(t))
            del[#del + 1] = f
          elseif not ne or x < ne then
            ne = x
          end
        end
      end
    end
    for i = 1, #del, 1000 do redis.call('HDEL', rk, unpack(del, i, math.min(i + 999, #del))) end
    if ne then redis.call('HSET', rk, 'e', string.format('%d', ne)) else redis.call('HDEL', rk, 'e') end
    e = ne
    v = redis.call('HMGET', rk, 'u', 't')
    ru, rt = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  end
  local nu, nt = tonumber(au), tonumber(at)
  -- A sum at the i64 bound (saturated) is over any limit, one at the bound included:
  -- in doubles the bound plus a small amount rounds to the bound.
  if (lu >= 0 and nu > 0 and (su + ru + nu > lu or su + ru >= SAT))
    or (lt >= 0 and nt > 0 and (st + rt + nt > lt or st + rt >= SAT)) then
    return m
  end
  holds[m] = {rk, au, at, ttl, ru, rt, k, e}
end
for m = 1, n do
  local h = holds[m]
  local rk, ru, rt, k, e = h[1], h[5], h[6], h[7], h[8]
  local nu, nt = tonumber(h[2]), tonumber(h[3])
  local w = {id, h[2] .. ':' .. h[3] .. ':' .. ARGV[3]}
  local exact = math.abs(ru) < LIM and math.abs(rt) < LIM and math.abs(nu) < LIM and math.abs(nt) < LIM and math.abs(ru + nu) < LIM and math.abs(rt + nt) < LIM
  if exact then
    w[#w + 1] = 'u'; w[#w + 1] = string.format('%d', ru + nu)
    w[#w + 1] = 't'; w[#w + 1] = string.format('%d', rt + nt)
  end
  if not e or exp < e then w[#w + 1] = 'e'; w[#w + 1] = ARGV[3] end
  local ext = nil
  if k < now + h[4] then
    ext = h[4] + math.floor(h[4] / 8)
    w[#w + 1] = 'k'; w[#w + 1] = string.format('%d', now + ext)
  end
  redis.call('HSET', rk, unpack(w))
  if not exact then
    hincrby_sat(rk, 'u', h[2])
    hincrby_sat(rk, 't', h[3])
  end
  if ext then redis.call('PEXPIRE', rk, ext) end
end
return 0
"#
);

/// A batch of commits, in order, atomically. `KEYS` holds each key once; the ops refer to
/// them by index. Every hash touched is read once (`HMGET`), changed in Lua (exact below
/// 2^52, a list of `HINCRBY`s above) and written once (`HDEL` of the released ids, `HSET`
/// of the sums, then the `HINCRBY`s); `PEXPIRE` only when the last extension (field `k`)
/// no longer covers the deadline. Returns the final `u`, `t` of the keys asked for at the
/// end (Rust works out the spend after each op from them).
///
/// All or nothing: every key is read and checked (a hash whose sums are integers that
/// `HINCRBY` takes) before the first write (the older buckets of a rolling meter, whose
/// sums are only returned, included), and every write comes after the last op, so
/// a refused batch (a key of another type, a sum that is not an integer) writes nothing,
/// and the writer's retry of its ops one by one counts each once. The writes cannot fail
/// (a sum saturates at the i64 bounds, as the memory store's does).
///
/// An op with an operation id is skipped when `{prefix}o:{id}` exists: it was applied
/// before (its reply was lost and the write is replayed), so a spend is never counted
/// twice. The marks are set with the writes (`SET PX`, the replay window). The 1-based
/// numbers of the skipped ops follow the sums in the reply.
const COMMIT: &str = concat!(
    lua_prelude!(),
    r#"
local now = tonumber(ARGV[2])
local hs = {}
-- A field as HINCRBY reads it: absent, or an integer in the i64 range.
local function isint(s)
  if not s or s == '0' then return true end
  local d = string.match(s, '^%-?([1-9]%d*)$')
  if not d or #d > 19 then return false end
  return #d < 19 or d <= (string.sub(s, 1, 1) == '-' and '9223372036854775808' or '9223372036854775807')
end
local function load(i)
  local h = hs[i]
  if not h then
    local v = redis.call('HMGET', KEYS[i], 'u', 't', 'k')
    if not (isint(v[1]) and isint(v[2])) then
      error({err = 'ERR llmtel-budget: a sum of ' .. KEYS[i] .. ' is not an integer'})
    end
    h = {u = tonumber(v[1]) or 0, t = tonumber(v[2]) or 0, k = tonumber(v[3]) or 0, ttl = 0, del = {}, gone = {}, incs = {}}
    h.exact = math.abs(h.u) < LIM and math.abs(h.t) < LIM
    hs[i] = h
  end
  return h
end
-- Adds to the sums in Lua while they stay exact; otherwise queues HINCRBYs (after the
-- exact sums reached so far), run with the other writes once every op has been read.
local function add(h, u, t, sign)
  local nu, nt = sign * tonumber(u), sign * tonumber(t)
  if h.exact and math.abs(nu) < LIM and math.abs(nt) < LIM and math.abs(h.u + nu) < LIM and math.abs(h.t + nt) < LIM then
    h.u, h.t, h.dirty = h.u + nu, h.t + nt, true
    return
  end
  if h.dirty then
    h.base = {string.format('%d', h.u), string.format('%d', h.t)}
    h.dirty = false
  end
  h.exact = false
  if sign < 0 then
    -- Negated as text (exact; Redis refuses '-0').
    if u ~= '0' then u = string.sub(u, 1, 1) == '-' and string.sub(u, 2) or ('-' .. u) end
    if t ~= '0' then t = string.sub(t, 1, 1) == '-' and string.sub(t, 2) or ('-' .. t) end
  end
  h.incs[#h.incs + 1] = u
  h.incs[#h.incs + 1] = t
end
local ai = 4
local skipped = {}
local marks, marked = {}, {}
for o = 1, tonumber(ARGV[1]) do
  local oki, id, nr = tonumber(ARGV[ai]), ARGV[ai + 1], tonumber(ARGV[ai + 2])
  ai = ai + 3
  -- An op already applied (a replay after a reply that was lost) is skipped whole.
  local skip = false
  if oki > 0 then
    skip = marked[oki] or redis.call('EXISTS', KEYS[oki]) == 1
    if skip then
      skipped[#skipped + 1] = o
    else
      marked[oki] = true
      marks[#marks + 1] = KEYS[oki]
    end
  end
  for r = 1, nr do
    local ri = tonumber(ARGV[ai])
    ai = ai + 1
    local h = load(ri)
    if not skip and not h.gone[id] then
      local v = redis.call('HGET', KEYS[ri], id)
      if v then
        local u, t = string.match(v, '^(%-?%d+):(%-?%d+):')
        if u then add(h, u, t, -1) end
        h.del[#h.del + 1] = id
        h.gone[id] = true
      end
    end
  end
  for m = 1, tonumber(ARGV[ai]) do
    local bi, ttl = tonumber(ARGV[ai + 1]), tonumber(ARGV[ai + 4])
    local h = load(bi)
    if not skip then
      add(h, ARGV[ai + 2], ARGV[ai + 3], 1)
      if ttl > h.ttl then h.ttl = ttl end
    end
    ai = ai + 4
  end
  ai = ai + 1
end
-- The keys whose sums are returned, read and checked too (a meter's older buckets, which
-- no op adds to): a refusal after the first write would leave that write applied, and
-- the retry of the refused commit would count it again.
for j = 1, tonumber(ARGV[ai]) do load(tonumber(ARGV[ai + j])) end
-- Every op read: the writes.
for i, h in pairs(hs) do
  local key = KEYS[i]
  for j = 1, #h.del, 1000 do redis.call('HDEL', key, unpack(h.del, j, math.min(j + 999, #h.del))) end
  local w = {}
  if h.dirty then
    w[1] = 'u'; w[2] = string.format('%d', h.u); w[3] = 't'; w[4] = string.format('%d', h.t)
  elseif h.base then
    w[1] = 'u'; w[2] = h.base[1]; w[3] = 't'; w[4] = h.base[2]
  end
  local ext = nil
  if h.ttl > 0 and h.k < now + h.ttl then
    ext = h.ttl + math.floor(h.ttl / 8)
    w[#w + 1] = 'k'; w[#w + 1] = string.format('%d', now + ext)
  end
  if #w > 0 then redis.call('HSET', key, unpack(w)) end
  for j = 1, #h.incs, 2 do
    hincrby_sat(key, 'u', h.incs[j])
    hincrby_sat(key, 't', h.incs[j + 1])
  end
  if ext then redis.call('PEXPIRE', key, ext) end
end
for j = 1, #marks do redis.call('SET', marks[j], '1', 'PX', ARGV[3]) end
local out = {}
for j = 1, tonumber(ARGV[ai]) do
  local i = tonumber(ARGV[ai + j])
  local h = load(i)
  if h.exact then
    out[#out + 1] = string.format('%d', h.u)
    out[#out + 1] = string.format('%d', h.t)
  else
    local v = redis.call('HMGET', KEYS[i], 'u', 't')
    out[#out + 1] = v[1] or '0'
    out[#out + 1] = v[2] or '0'
  end
end
for j = 1, #skipped do out[#out + 1] = string.format('%d', skipped[j]) end
return out
"#
);

/// Budgets in Redis (`redis://` or `rediss://`, `redis://:password@host:port/db`).
///
/// A small pool of connections (a caller never waits behind another's round trip); every
/// call has a deadline (100 ms for a reserve, connecting included, 200 ms for the rest), so
/// a Redis that is down or slow costs a request at most that, the budgets fail open (or
/// closed, as configured), and after a few failures their circuit breaker answers at
/// once. Spend writes carry an operation id, so a write replayed after a lost reply is
/// not counted twice. Neither `Debug` nor errors show the URL's password.
pub struct RedisStore {
    client: Client,
    /// Idle connections and how many are open: each operation takes one (or connects)
    /// and gives it back, so no caller waits behind another's slow round trip.
    pool: Arc<Shared>,
    max_connections: usize,
    prefix: String,
    timeout: Duration,
    reserve_timeout: Duration,
    replay_window: Duration,
    reserve: Script,
    commit: Script,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Pooled>,
    /// Connections open (idle or in use, or being made).
    open: usize,
}

/// The pool, shared with the threads that make connections.
#[derive(Default)]
struct Shared {
    pool: Mutex<Pool>,
    ready: std::sync::Condvar,
}

impl Shared {
    fn give_back(&self, p: Pooled) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.idle.push(p);
        drop(pool);
        self.ready.notify_one();
    }

    /// A connection (or a slot that failed to connect) is gone.
    fn discard(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.open = pool.open.saturating_sub(1);
        drop(pool);
        self.ready.notify_one();
    }
}

/// A connection being made on a helper thread: its result, or that the caller gave up
/// waiting (then the thread pools the connection, or frees its slot, itself).
#[derive(Default)]
struct Handoff {
    result: Option<redis::RedisResult<Connection>>,
    abandoned: bool,
}

struct Pooled {
    conn: Connection,
    /// The read/write timeout set on it.
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client (and its URL, with the password) is never shown.
        let info = self.client.get_connection_info();
        let addr = match info.addr() {
            redis::ConnectionAddr::Tcp(h, p) => format!("redis://{h}:{p}"),
            redis::ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}"),
            redis::ConnectionAddr::Unix(p) => format!("unix://{}", p.display()),
            _ => "redis".to_string(),
        };
        f.debug_struct("RedisStore")
            .field("addr", &addr)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("reserve_timeout", &self.reserve_timeout)
            .finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::unavailable("redis", e.to_string())
}

/// A Redis error from an operation: `rejected` when the server answered with an error that a
/// retry would meet again (a script error, a wrong type), not when it could not be reached,
/// timed out, or is in a state that passes ([`passing_state`]).
fn op_err(e: &redis::RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || passing_state(e);
    if transient {
        StoreError::unavailable("redis", e.to_string())
    } else {
        StoreError::rejected("redis", e.to_string())
    }
}

/// A server error that passes with time, not with a different request: loading its data
/// (`LOADING`), asked to try again (`TRYAGAIN`), a replica after a failover or a primary
/// whose link is down (`READONLY`, `MASTERDOWN`), a cluster not serving (`CLUSTERDOWN`),
/// out of memory under `noeviction` (`OOM`), a script or module running too long (`BUSY`).
/// Spend refused this way is buffered and replayed, not dropped.
fn passing_state(e: &redis::RedisError) -> bool {
    use redis::ServerErrorKind as K;
    matches!(
        e.kind(),
        redis::ErrorKind::Server(
            K::BusyLoading | K::TryAgain | K::ReadOnly | K::MasterDown | K::ClusterDown
        )
    ) || matches!(e.code(), Some("OOM" | "BUSY" | "READONLY" | "MASTERDOWN"))
}

impl RedisStore {
    /// A store for `url` with the default prefix and a 200 ms timeout. Does not connect
    /// yet (the first operation does), so a Redis that is down at start-up is not an error.
    ///
    /// `rediss://` URLs need the feature `redis-tls`; the server's certificate is checked
    /// against the system's roots, or the CA given to [`RedisStore::with_ca_file`].
    ///
    /// # Errors
    /// [`StoreError`] for an invalid URL, or `rediss://` without the feature `redis-tls`.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let tls = url.starts_with("rediss://");
        if tls && !cfg!(feature = "redis-tls") {
            return Err(err(
                "a rediss:// URL needs TLS support: enable llmtel-budget's feature `redis-tls`",
            ));
        }
        #[cfg(feature = "redis-tls")]
        if tls {
            tls::install_crypto_provider();
        }
        Ok(RedisStore {
            client: Client::open(url).map_err(|e| err(format!("invalid Redis URL: {e}")))?,
            pool: Arc::new(Shared::default()),
            max_connections: 8,
            prefix: "llmtel:budget:".into(),
            timeout: Duration::from_millis(200),
            reserve_timeout: Duration::from_millis(100),
            replay_window: Duration::from_secs(3600),
            reserve: Script::new(RESERVE),
            commit: Script::new(COMMIT),
        })
    }

    /// Sets the key prefix (to separate applications or tests sharing one Redis).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Trusts the CA certificate(s) in the PEM file at `path` (instead of the system's
    /// roots) for a `rediss://` URL: a Redis with a self-signed or private CA.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be read, holds no PEM certificate, or the URL is
    /// not `rediss://`.
    #[cfg(feature = "redis-tls")]
    pub fn with_ca_file(self, path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| err(format!("cannot read the CA file {}: {e}", path.display())))?;
        self.with_ca_pem(&pem)
            .map_err(|e| err(format!("CA file {}: {}", path.display(), e.message)))
    }

    /// Trusts the CA certificate(s) in `pem` (PEM text) instead of the system's roots; see
    /// [`RedisStore::with_ca_file`].
    ///
    /// # Errors
    /// [`StoreError`] when `pem` holds no certificate or the URL is not `rediss://`.
    #[cfg(feature = "redis-tls")]
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, StoreError> {
        self.client = tls::client_with_ca(self.client.get_connection_info().clone(), pem)?;
        Ok(self)
    }

    /// Sets the connect, read and write timeout of every operation but `reserve` (default
    /// 200 ms; `Duration::MAX`: no deadline).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the deadline of a `reserve`, connecting included (default 100 ms): the most a
    /// request waits on a slow or unreachable Redis before the budgets fail open or closed
    /// (and, after a few such failures, their circuit breaker answers at once). A
    /// connection still being made at the deadline is finished in the background and
    /// serves the next call. `Duration::MAX`: no deadline (a request then waits as long as
    /// Redis does).
    pub fn with_reserve_timeout(mut self, timeout: Duration) -> Self {
        self.reserve_timeout = timeout;
        self
    }

    /// At most this many connections open at once (default 8; at least 1): a burst of
    /// calls shares them (waiting for one until its deadline) instead of opening a
    /// connection each.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long an applied spend write's operation id is remembered (default 1 hour): a
    /// write whose reply was lost and that is replayed within this window is not counted
    /// twice. At most 100 years (a longer one, `Duration::MAX` included, is taken as that:
    /// Redis refuses an expiry past `i64::MAX` ms).
    pub fn with_replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.with_conn_within(self.timeout, f)
    }

    /// Runs `f` on an idle connection (or a new one), within `timeout`, connecting
    /// included. At most [`RedisStore::with_max_connections`] are open: beyond, a call waits for an
    /// idle one until its deadline.
    fn with_conn_within<T>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let start = std::time::Instant::now();
        // No deadline when it is past what an `Instant` can hold (`Duration::MAX`).
        let mut p = match self.acquire(start.checked_add(timeout))? {
            Some(p) => p,
            None => Pooled {
                conn: self.connect_within(timeout)?,
                timeout: Duration::ZERO,
            },
        };
        // What is left of the deadline (at least a few ms to try).
        let timeout = timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(5));
        if p.timeout != timeout {
            if let Err(e) = p
                .conn
                .set_read_timeout(Some(timeout))
                .and_then(|()| p.conn.set_write_timeout(Some(timeout)))
            {
                self.discard();
                return Err(err(e));
            }
            p.timeout = timeout;
        }
        match f(&mut p.conn) {
            Ok(v) => {
                self.give_back(p);
                Ok(v)
            }
            Err(e) => {
                // A connection with I/O trouble is dropped (a late reply must never be
                // read as the answer to another call); the next call reconnects.
                // So is one to a server that turned replica (`READONLY`): after a failover
                // the next connection may reach the new primary.
                if e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || passing_state(&e)
                {
                    self.discard();
                } else {
                    self.give_back(p);
                }
                Err(op_err(&e))
            }
        }
    }

    /// An idle connection, or `None` with a slot to open a new one, or an error when every
    /// connection stayed busy until `deadline` (`None`: no deadline).
    fn acquire(&self, deadline: Option<std::time::Instant>) -> Result<Option<Pooled>, StoreError> {
        let mut pool = self.pool.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(p) = pool.idle.pop() {
                return Ok(Some(p));
            }
            if pool.open < self.max_connections {
                pool.open += 1;
                return Ok(None);
            }
            let Some(deadline) = deadline else {
                pool = self
                    .pool
                    .ready
                    .wait(pool)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(err(format!(
                    "all {} connections busy until the deadline",
                    self.max_connections
                )));
            }
            pool = self
                .pool
                .ready
                .wait_timeout(pool, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn give_back(&self, p: Pooled) {
        self.pool.give_back(p);
    }

    fn discard(&self) {
        self.pool.discard();
    }

    /// Connects, waiting at most `wait` (on a slot taken by [`RedisStore::acquire`]).
    /// redis-rs bounds each step of its handshake (TCP, TLS, `AUTH`, `CLIENT SETINFO`) by
    /// its timeout, not the whole, so a server that accepts and never answers would cost
    /// several: the connection is made on a helper thread, with the connect timeout
    /// ([`RedisStore::with_timeout`]) per step. A caller that stops waiting leaves the
    /// connection to that thread, which pools it when it succeeds (a slow TLS handshake
    /// serves the next call) or frees the slot.
    fn connect_within(&self, wait: Duration) -> Result<Connection, StoreError> {
        let handoff = Arc::new((Mutex::new(Handoff::default()), std::sync::Condvar::new()));
        let (h, client, shared) = (handoff.clone(), self.client.clone(), self.pool.clone());
        let step = wait.max(self.timeout);
        let spawned = std::thread::Builder::new()
            .name("llmtel-budget-connect".into())
            .spawn(move || {
                let r = client.get_connection_with_timeout(step);
                let mut g = h.0.lock().unwrap_or_else(|e| e.into_inner());
                if g.abandoned {
                    drop(g);
                    match r {
                        Ok(conn) => shared.give_back(Pooled {
                            conn,
                            timeout: Duration::ZERO,
                        }),
                        Err(_) => shared.discard(),
                    }
                } else {
                    g.result = Some(r);
                    drop(g);
                    h.1.notify_one();
                }
            });
        if let Err(e) = spawned {
            self.discard();
            return Err(err(format!("cannot start a connection thread: {e}")));
        }
        // No deadline when it is past what an `Instant` can hold (`Duration::MAX`).
        let deadline = std::time::Instant::now().checked_add(wait);
        let mut g = handoff.0.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match g.result.take() {
                Some(Ok(c)) => return Ok(c),
                Some(Err(e)) => {
                    drop(g);
                    self.discard();
                    return Err(err(connect_hint(&self.client, e)));
                }
                None => {}
            }
            let Some(deadline) = deadline else {
                g = handoff.1.wait(g).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let now = std::time::Instant::now();
            if now >= deadline {
                g.abandoned = true;
                return Err(err(format!(
                    "cannot connect within {} ms (the server accepts but does not answer, or is too slow)",
                    wait.as_millis()
                )));
            }
            g = handoff
                .1
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn bucket(&self, b: &str) -> String {
        format!("{}b:{b}", self.prefix)
    }

    fn res(&self, m: &str) -> String {
        format!("{}r:{m}", self.prefix)
    }
}

/// A connection error, with what to do about the usual TLS mistakes.
fn connect_hint(client: &Client, e: redis::RedisError) -> String {
    let tls = !matches!(
        client.get_connection_info().addr(),
        redis::ConnectionAddr::Tcp(..) | redis::ConnectionAddr::Unix(_)
    );
    let text = e.to_string();
    if tls && text.contains("certificate") {
        format!(
            "cannot connect: {text} (the server's certificate is not signed by a trusted CA: give its CA with `RedisStore::with_ca_file` or `ca_file` in the [store] table)"
        )
    } else if !tls && (e.is_connection_dropped() || e.is_io_error() || e.is_timeout()) {
        format!("cannot connect: {text} (if this port serves TLS, use a rediss:// URL)")
    } else {
        format!("cannot connect: {text}")
    }
}

#[cfg(feature = "redis-tls")]
mod tls {
    use redis::{Client, ConnectionInfo, TlsCertificates};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::err;
    use crate::error::StoreError;

    /// Installs aws-lc-rs as rustls' process-wide crypto provider unless one is already
    /// installed (by the application or another library): never replaces it, never panics.
    pub(super) fn install_crypto_provider() {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err: another thread installed one in between, which is as good.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
    }

    /// A TLS client for `info` trusting the certificates in `pem`.
    pub(super) fn client_with_ca(info: ConnectionInfo, pem: &[u8]) -> Result<Client, StoreError> {
        if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            return Err(err(
                "a CA certificate is only used with a rediss:// URL (TLS); this URL is not one",
            ));
        }
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("invalid PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(err(
                "no certificate found: expected PEM text with -----BEGIN CERTIFICATE-----",
            ));
        }
        install_crypto_provider();
        Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        )
        .map_err(|e| err(format!("cannot use the CA certificate: {e}")))
    }
}

/// The unexpired reservations of a meter's hash (`HGETALL`, RESP2 pairs or a RESP3 map):
/// every field but the sums `u`, `t` and the marks `k`, `e`.
fn held(v: &Value, now_ms: i64) -> Amount {
    let pairs: Vec<(&Value, &Value)> = match v {
        Value::Array(a) => a.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    };
    let mut total = Amount::default();
    for (field, value) in pairs {
        let (Value::BulkString(f), Value::BulkString(r)) = (field, value) else {
            continue;
        };
        if f.len() <= 1 {
            continue;
        }
        let r = String::from_utf8_lossy(r);
        let mut p = r.split(':').map(|x| x.parse::<i64>().unwrap_or(0));
        let (u, tk, e) = (
            p.next().unwrap_or(0),
            p.next().unwrap_or(0),
            p.next().unwrap_or(0),
        );
        if e > now_ms {
            total = total.plus(Amount { usd: u, tokens: tk });
        }
    }
    total
}

fn to_i64(v: &Value) -> i64 {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        Value::Int(i) => *i,
        Value::SimpleString(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

impl BudgetStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn reserve(
        &self,
        id: &str,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<ReserveOutcome, StoreError> {
        // At most MAX_EXPIRY_MS ahead: `PEXPIRE` refuses an expiry past i64::MAX and the
        // script's doubles are exact below 2^53.
        let expires_ms = expires_ms.min(now_ms.saturating_add(super::MAX_EXPIRY_MS));
        let mut inv = self.reserve.prepare_invoke();
        inv.arg(id).arg(now_ms).arg(expires_ms).arg(charges.len());
        for (m, a) in charges {
            inv.key(self.res(&m.id));
            for b in &m.buckets {
                inv.key(self.bucket(b));
            }
            inv.arg(m.buckets.len())
                .arg(m.limit_usd.unwrap_or(-1))
                .arg(m.limit_tokens.unwrap_or(-1))
                .arg(a.usd)
                .arg(a.tokens)
                .arg(
                    expires_ms
                        .saturating_sub(now_ms)
                        .clamp(1, super::MAX_EXPIRY_MS)
                        .saturating_add(1000),
                );
        }
        let r: i64 = self.with_conn_within(self.reserve_timeout, |c| inv.invoke(c))?;
        Ok(if r == 0 {
            ReserveOutcome::Admitted
        } else {
            ReserveOutcome::Denied((r - 1) as usize)
        })
    }

    fn commit(
        &self,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError> {
        super::commit_as_batch(self, release, charges, now_ms)
    }

    /// One script for the whole batch: one round trip, atomic on the server. Each key is
    /// sent once; the script returns each bucket's final sums and the spend after every op
    /// is worked out here, exactly, by taking off what later ops added.
    fn commit_batch(
        &self,
        ops: &[Commit<'_>],
        now_ms: i64,
    ) -> Result<Vec<Vec<Amount>>, StoreError> {
        let mut inv = self.commit.prepare_invoke();
        let mut keys: HashMap<String, usize> = HashMap::new();
        let mut index = |inv: &mut redis::ScriptInvocation<'_>, key: String| -> usize {
            let next = keys.len() + 1;
            *keys.entry(key).or_insert_with_key(|k| {
                inv.key(k.as_str());
                next
            })
        };
        // Bucket keys by name: the final sums asked for, and what each op added to each.
        let mut buckets: HashMap<&str, usize> = HashMap::new();
        inv.arg(ops.len())
            .arg(now_ms)
            .arg(super::expiry_ms(self.replay_window).max(1));
        for op in ops {
            let oki = match op.op_id {
                Some(o) if !o.is_empty() => index(&mut inv, format!("{}o:{o}", self.prefix)),
                _ => 0,
            };
            let (id, meters) = op.release.unwrap_or(("", &[]));
            inv.arg(oki).arg(id).arg(meters.len());
            for m in meters {
                let i = index(&mut inv, self.res(&m.id));
                inv.arg(i);
            }
            inv.arg(op.charges.len());
            for (m, a) in op.charges {
                for b in &m.buckets {
                    let i = index(&mut inv, self.bucket(b));
                    buckets.insert(b.as_str(), i);
                }
                let cur = buckets.get(m.current()).copied().unwrap_or(0);
                inv.arg(cur).arg(a.usd).arg(a.tokens).arg(m.ttl_ms);
            }
        }
        inv.arg(buckets.len());
        let asked: Vec<usize> = buckets.values().copied().collect();
        for i in &asked {
            inv.arg(*i);
        }
        let vals: Vec<Value> = self.with_conn(|c| inv.invoke(c))?;
        let mut last: HashMap<usize, Amount> = HashMap::with_capacity(asked.len());
        for (n, i) in asked.iter().enumerate() {
            last.insert(
                *i,
                Amount {
                    usd: vals.get(2 * n).map(to_i64).unwrap_or(0),
                    tokens: vals.get(2 * n + 1).map(to_i64).unwrap_or(0),
                },
            );
        }
        let skipped: std::collections::HashSet<usize> = vals
            .iter()
            .skip(2 * asked.len())
            .map(|v| to_i64(v).max(1) as usize - 1)
            .collect();
        // Backwards: a bucket after op n is its final sums less what ops after n added (a
        // skipped op added nothing).
        let mut out = vec![Vec::new(); ops.len()];
        for (n, op) in ops.iter().enumerate().rev() {
            out[n] = op
                .charges
                .iter()
                .map(|(m, _)| {
                    m.buckets.iter().fold(Amount::default(), |t, b| {
                        let v = buckets
                            .get(b.as_str())
                            .and_then(|i| last.get(i))
                            .copied()
                            .unwrap_or_default();
                        t.plus(v)
                    })
                })
                .collect();
            if skipped.contains(&n) {
                continue;
            }
            for (m, a) in op.charges {
                if let Some(v) = buckets.get(m.current()).and_then(|i| last.get_mut(i)) {
                    *v = Amount {
                        usd: v.usd.saturating_sub(a.usd),
                        tokens: v.tokens.saturating_sub(a.tokens),
                    };
                }
            }
        }
        Ok(out)
    }

    fn totals(&self, meters: &[&Meter], now_ms: i64) -> Result<Vec<MeterTotals>, StoreError> {
        let mut pipe = redis::pipe();
        for m in meters {
            for b in &m.buckets {
                pipe.cmd("HMGET").arg(self.bucket(b)).arg("u").arg("t");
            }
            pipe.cmd("HGETALL").arg(self.res(&m.id));
        }
        let vals: Vec<Value> = self.with_conn(|c| pipe.query(c))?;
        let mut it = vals.into_iter();
        let mut out = Vec::with_capacity(meters.len());
        for m in meters {
            let mut t = MeterTotals::default();
            for _ in &m.buckets {
                if let Some(Value::Array(v)) = it.next() {
                    t.spent = t.spent.plus(Amount {
                        usd: v.first().map(to_i64).unwrap_or(0),
                        tokens: v.get(1).map(to_i64).unwrap_or(0),
                    });
                }
            }
            if let Some(v) = it.next() {
                t.reserved = held(&v, now_ms);
            }
            out.push(t);
        }
        Ok(out)
    }

    fn values(&self, prefix: &str, _now_ms: i64) -> Result<Vec<String>, StoreError> {
        let pattern = format!(
            "{}*",
            self.bucket(prefix).replace(['*', '?', '[', ']'], "?")
        );
        let full = self.bucket(prefix);
        let keys: Vec<String> = self.with_conn(|c| {
            let mut out = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                out.extend(batch);
                if next == 0 || out.len() > 100_000 {
                    return Ok(out);
                }
                cursor = next;
            }
        })?;
        let mut v: Vec<String> = keys
            .iter()
            .filter_map(|k| super::value_of(k.strip_prefix(&full)?, "").map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    fn fire_once(&self, key: &str, ttl_ms: i64, _now_ms: i64) -> Result<bool, StoreError> {
        let k = format!("{}f:{key}", self.prefix);
        let v: Value = self.with_conn(|c| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&k).arg(1).arg("NX");
            if ttl_ms > 0 {
                cmd.arg("PX").arg(ttl_ms);
            }
            cmd.query(c)
        })?;
        Ok(!matches!(v, Value::Nil))
    }
}
