//! The built `budget-guard` binary as a real process on a free loopback port, and the API
//! keys the tests give it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Alice's API key in the tests' budgets files (obviously fake: `test-key-`).
pub const ALICE_KEY: &str = "test-key-alice-0123456789abcdef";
/// Bob's API key in the tests' budgets files.
pub const BOB_KEY: &str = "test-key-bob-fedcba9876543210";

/// The `[api_keys]` table of the tests' budgets files: alice and bob.
pub fn api_keys_toml() -> String {
    format!("\n[api_keys]\n\"{ALICE_KEY}\" = \"alice\"\n\"{BOB_KEY}\" = \"bob\"\n")
}

/// The key of a test user.
pub fn key_of(user: &str) -> &'static str {
    match user {
        "alice" => ALICE_KEY,
        "bob" => BOB_KEY,
        other => panic!("no test key for {other}"),
    }
}

/// A budgets file with one daily rule of `limit_usd` per user and the test keys.
pub fn write_config(dir: &Path, limit_usd: &str) -> std::path::PathBuf {
    let path = dir.join("budgets.toml");
    std::fs::write(
        &path,
        format!(
            "[[rule]]\nname = \"per-user-daily\"\nscope = \"user\"\nperiod = \"day\"\n\
             time_zone = \"UTC\"\nlimit_usd = \"{limit_usd}\"\n{}",
            api_keys_toml()
        ),
    )
    .unwrap();
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service as a child process; killed (by its PID) on drop.
pub struct Service {
    pub child: Child,
    pub base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command that starts the service on `port` with `config`, no Redis, no Alertmanager.
pub fn command(config: &Path, port: u16, env: &[(&str, String)]) -> Command {
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
    cmd
}

impl Service {
    /// Starts the service (stderr inherited) and waits until `/healthz` answers.
    pub fn start(config: &Path, env: &[(&str, String)]) -> Service {
        let port = free_port();
        Service::spawn(command(config, port, env), port)
    }

    /// Starts `cmd` (made by [`command`] for `port`) and waits until `/healthz` answers.
    pub fn spawn(mut cmd: Command, port: u16) -> Service {
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

    fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    /// `POST /chat` with `body`, with `Authorization: Bearer key` when a key is given.
    pub fn post_chat(&self, key: Option<&str>, body: &Value) -> reqwest::blocking::Response {
        let mut req = Self::client()
            .post(format!("{}/chat", self.base))
            .json(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send().unwrap()
    }

    /// `POST /chat` with a raw body and content type.
    pub fn post_raw(
        &self,
        key: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::blocking::Response {
        let mut req = Self::client()
            .post(format!("{}/chat", self.base))
            .bearer_auth(key)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().unwrap()
    }

    /// `GET path`, with `Authorization: Bearer key` when a key is given.
    pub fn get(&self, path: &str, key: Option<&str>) -> reqwest::blocking::Response {
        let mut req = Self::client().get(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send().unwrap()
    }

    /// The first rule's row of `GET /budget` for the key's user.
    pub fn budget(&self, key: &str) -> Value {
        let r = self.get("/budget", Some(key));
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        v[0].clone()
    }

    /// Waits until the key's user has no reservation left and returns their spend.
    pub fn settled_spend(&self, key: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let b = self.budget(key);
            if b["reserved_picousd"] == 0 {
                return b["spent_picousd"].as_u64().unwrap();
            }
            assert!(Instant::now() < deadline, "spend never settled: {b}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// `LLMTEL_REDIS_URL` from the environment or the env file `scripts/redis.sh start` writes.
pub fn redis_url() -> String {
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
