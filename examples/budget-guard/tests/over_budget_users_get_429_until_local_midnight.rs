//! The built `budget-guard` binary, started as a real process on a free loopback port with a
//! tiny per-user daily limit (in America/Los_Angeles): calls succeed and report their exact
//! cost; the call that would pass the limit gets a 429 whose `Retry-After` is the time to the
//! next local midnight of the rule's zone; other users are unaffected; and after the process
//! is killed (`kill -9`) and started again on the same store, the user is still refused and
//! the spend is there to the pico-dollar.
//!
//! Runs against the SQLite store (a temp file) and against a real Redis (`REDIS_URL`, from
//! `scripts/redis.sh start`; that test FAILS when Redis is not running).
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::{Timestamp, ToSpan, tz::TimeZone};
use llmtel::{Catalog, Usage};
use serde_json::{Value, json};

const ZONE: &str = "America/Los_Angeles";
const MODEL: &str = "gpt-4o-mini";
const PROMPT: &str = "How much does this call cost?";
const MAX_TOKENS: u64 = 64;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service as a child process; killed (by its PID) on drop.
struct Service {
    child: Child,
    base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(config: &Path, env: &[(&str, String)]) -> Service {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_budget-guard"));
        cmd.env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("BUDGET_CONFIG", config)
            .env("SIM_LATENCY_MS", "5")
            .env_remove("REDIS_URL")
            .env_remove("ALERTMANAGER_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start budget-guard");
        let mut s = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::blocking::get(format!("{}/healthz", s.base)) {
                if r.status().is_success() {
                    return s;
                }
            }
            if let Some(status) = s.child.try_wait().unwrap() {
                panic!("budget-guard exited before it answered: {status}");
            }
            assert!(Instant::now() < deadline, "budget-guard did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn chat(&self, user: &str) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .post(format!("{}/chat", self.base))
            .json(&json!({ "user": user, "prompt": PROMPT, "max_tokens": MAX_TOKENS }))
            .send()
            .unwrap()
    }

    fn budget(&self, user: &str) -> Value {
        let v: Value = reqwest::blocking::get(format!("{}/budget/{user}", self.base))
            .unwrap()
            .json()
            .unwrap();
        v[0].clone()
    }

    /// Waits until the user's spend is written (no reservation left) and returns it.
    fn settled_spend(&self, user: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let b = self.budget(user);
            if b["reserved_picousd"] == 0 {
                return b["spent_picousd"].as_u64().unwrap();
            }
            assert!(Instant::now() < deadline, "spend never settled: {b}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn picos_decimal(p: u128) -> String {
    format!("{}.{:012}", p / 1_000_000_000_000, p % 1_000_000_000_000)
}

/// (reserved estimate, actual cost) of one call, in pico-dollars, computed the way the
/// service does: the prompt's tokens plus max_tokens reserved; 48 output tokens spent.
fn estimate_and_cost() -> (u128, u128) {
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let p = llmtel::estimate::count_tokens(MODEL, PROMPT).tokens;
    let e = llmtel_budget::Estimate::for_model(
        Catalog::builtin(),
        MODEL,
        Some("openai"),
        p,
        MAX_TOKENS,
        today,
    )
    .unwrap();
    let c = Catalog::builtin()
        .price(MODEL, Some("openai"), &Usage::new(p, 48), today)
        .unwrap();
    (e.usd.picos(), c.breakdown.total.picos())
}

/// Seconds from now to the next midnight in `zone`.
fn secs_to_local_midnight(zone: &str) -> i64 {
    let tz = TimeZone::get(zone).unwrap();
    let now = Timestamp::now();
    let tomorrow = now
        .to_zoned(tz.clone())
        .date()
        .checked_add(1.day())
        .unwrap();
    let midnight = tomorrow.to_zoned(tz).unwrap().timestamp();
    midnight.as_second() - now.as_second()
}

fn run(dir: &Path, env: Vec<(&str, String)>) {
    let (e, c) = estimate_and_cost();
    // Two calls fit whether or not the first one is settled yet (e + e <= limit); a third
    // never does, even settled (c + c + e > limit, since the estimate is below 2c).
    assert!(e < 2 * c && c < e);
    let limit = 2 * e;
    let config: PathBuf = dir.join("budgets.toml");
    std::fs::write(
        &config,
        format!(
            "[[rule]]\nname = \"per-user-daily\"\nscope = \"user\"\nperiod = \"day\"\n\
             time_zone = \"{ZONE}\"\nlimit_usd = \"{}\"\n",
            picos_decimal(limit)
        ),
    )
    .unwrap();

    let svc = Service::start(&config, &env);
    for i in 0..2 {
        let r = svc.chat("alice");
        assert_eq!(r.status(), 200, "call {i}");
        let body: Value = r.json().unwrap();
        assert_eq!(body["cost_picousd"].as_u64(), Some(c as u64), "{body}");
        assert_eq!(body["simulated"], true);
        assert!(body["cost_usd"].as_f64().unwrap() > 0.0);
    }

    let r = svc.chat("alice");
    assert_eq!(r.status(), 429);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = secs_to_local_midnight(ZONE);
    assert!(
        (retry - expected).abs() <= 3,
        "Retry-After {retry}, next midnight in {ZONE} is in {expected} s"
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["rule"], "per-user-daily");
    assert_eq!(body["scope"], "user.id=alice");
    assert_eq!(body["retry_after_secs"], retry);

    // Another user has a budget of their own.
    assert_eq!(svc.chat("bob").status(), 200);

    // Both calls of alice are written, exactly: the estimates were replaced by the costs.
    assert_eq!(svc.settled_spend("alice"), 2 * c as u64);
    assert_eq!(svc.settled_spend("bob"), c as u64);

    // kill -9 and start again on the same store: the spend survived, alice is refused.
    drop(svc);
    let svc = Service::start(&config, &env);
    let r = svc.chat("alice");
    assert_eq!(r.status(), 429, "after restart");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(svc.budget("alice")["spent_picousd"], 2 * c as u64);
    assert_eq!(svc.chat("bob").status(), 200, "bob: c + e fits");
}

#[test]
fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("budget.db");
    run(dir.path(), vec![("BUDGET_DB", db.display().to_string())]);
}

/// `LLMTEL_REDIS_URL` from the environment or the env file `scripts/redis.sh start` writes.
fn redis_url() -> String {
    if let Ok(u) = std::env::var("LLMTEL_REDIS_URL") {
        return u;
    }
    let peers = std::env::var("LLMTEL_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.peers"));
    std::fs::read_to_string(peers.join("redis.env"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("export LLMTEL_REDIS_URL="))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            panic!(
                "Redis is not running: run `scripts/redis.sh start` (it writes .peers/redis.env)"
            )
        })
}

#[test]
fn redis_store() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!(
        "llmtel:test:budget-guard:{}:{}:",
        std::process::id(),
        Timestamp::now().as_nanosecond()
    );
    run(
        dir.path(),
        vec![("REDIS_URL", redis_url()), ("BUDGET_REDIS_PREFIX", prefix)],
    );
}
