//! Real processes: SQLite spend survives `kill -9`; two OS processes share one Redis limit;
//! Redis stopped mid-test: requests go on (fail-open), spend is buffered and written when
//! Redis returns, errors are counted and an alert says so (scripts/redis.sh); a Redis turned
//! read-only (a failover's replica) is the same: spend buffered, written once it is writable.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmtel_alert::{AlertDispatcher, AlertState, MemorySink};
use llmtel_budget::{
    BudgetStore, Budgets, CallContext, Estimate, Period, RedisStore, Rule, Scope, SqliteStore,
};
use support::{redis_url, usd};

const CHILD: &str = "LLMTEL_BUDGET_CHILD";

fn child(test: &str, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("exe"));
    c.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::inherit());
    c
}

fn lifetime_dollar() -> Rule {
    Rule::new("dollar", Scope::Global, Period::Lifetime).with_limit_usd(usd("1"))
}

#[test]
#[ignore = "child process of sqlite_spend_survives_kill_9"]
fn child_sqlite_writer() {
    let Ok(path) = std::env::var(CHILD) else {
        return;
    };
    let store: Arc<dyn BudgetStore> = Arc::new(SqliteStore::open(&path).expect("open"));
    let b = Budgets::builder()
        .with_store(store)
        .with_rule(Rule::new("all", Scope::Global, Period::Lifetime))
        .build();
    for i in 1.. {
        b.record(&CallContext::new(), llmtel::Usd::from_picos(1_000), 1);
        assert!(b.flush(Duration::from_secs(5)));
        println!("written {i}");
    }
}

#[test]
fn sqlite_spend_survives_kill_9() {
    let dir = std::env::temp_dir().join(format!("llmtel-kill9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("budget.db");
    let _ = std::fs::remove_file(&path);
    let mut c = child(
        "child_sqlite_writer",
        &[(CHILD, path.display().to_string())],
    )
    .spawn()
    .expect("spawn");
    let out = BufReader::new(c.stdout.take().expect("stdout"));
    let mut last = 0u64;
    for line in out.lines() {
        let line = line.expect("line");
        if let Some(n) = line.split("written ").nth(1) {
            last = n.parse().expect("n");
            if last >= 200 {
                break;
            }
        }
    }
    c.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix: no cleanup, no flush
    let status = c.wait().expect("wait");
    assert!(!status.success());
    let store: Arc<dyn BudgetStore> = Arc::new(SqliteStore::open(&path).expect("reopen"));
    let b = Budgets::builder()
        .with_store(store)
        .with_rule(Rule::new("all", Scope::Global, Period::Lifetime))
        .build();
    let s = &b.status_for(&CallContext::new()).expect("status")[0];
    assert!(
        s.spent_tokens >= last && s.spent.picos() == u128::from(s.spent_tokens) * 1_000,
        "reported {last} written before kill -9, found {} tokens, {}",
        s.spent_tokens,
        s.spent
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "child process of two_processes_share_one_redis_limit"]
fn child_redis_spender() {
    let Ok(prefix) = std::env::var(CHILD) else {
        return;
    };
    let store = RedisStore::open(&redis_url())
        .expect("url")
        .with_prefix(&prefix);
    let b = Budgets::builder()
        .with_store(Arc::new(store))
        .with_rule(lifetime_dollar())
        .build();
    let mut admitted = 0;
    for _ in 0..40 {
        if let Ok(r) = b.reserve(&CallContext::new(), Estimate::new(usd("0.03"), 0)) {
            admitted += 1;
            r.settle(usd("0.03"), 0);
        }
    }
    assert!(b.flush(Duration::from_secs(10)));
    println!("admitted {admitted}");
}

#[test]
fn two_processes_share_one_redis_limit() {
    let prefix = format!("llmtel:test:procs:{}:", std::process::id());
    let kids: Vec<_> = (0..2)
        .map(|_| {
            child("child_redis_spender", &[(CHILD, prefix.clone())])
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut total = 0;
    let mut each = Vec::new();
    for k in kids {
        let out = k.wait_with_output().expect("wait");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let n: u32 = text
            .lines()
            .find_map(|l| l.split("admitted ").nth(1))
            .expect("admitted line")
            .parse()
            .expect("n");
        each.push(n);
        total += n;
    }
    assert_eq!(
        total, 33,
        "two processes together admit 33 x $0.03 under $1: {each:?}"
    );
    let b = Budgets::builder()
        .with_store(Arc::new(
            RedisStore::open(&redis_url())
                .expect("url")
                .with_prefix(&prefix),
        ))
        .with_rule(lifetime_dollar())
        .build();
    assert_eq!(
        b.status_for(&CallContext::new()).expect("status")[0].spent,
        usd("0.99")
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn a_redis_turned_read_only_buffers_spend_and_replays_it_when_writable_again() {
    // A failover leaves a process talking to a replica (`READONLY`): that passes, as a
    // store that is down does; the spend must be buffered and written once it does.
    let bin = support::peer_env("LLMTEL_REDIS_SERVER", "scripts/redis.sh");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("llmtel-redis-ro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut server = start_redis(&bin, port, &dir);
    let url = format!("redis://127.0.0.1:{port}/");
    let admin = |args: &[&str]| {
        let client = redis::Client::open(url.as_str()).expect("client");
        let mut conn = client.get_connection().expect("connect");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query::<redis::Value>(&mut conn).expect("admin command");
    };
    let store = RedisStore::open(&url)
        .expect("url")
        .with_timeout(Duration::from_millis(500));
    let b = Budgets::builder()
        .with_store(Arc::new(store))
        .with_rule(lifetime_dollar())
        .build();
    let ctx = CallContext::new();
    b.record(&ctx, usd("0.01"), 1);
    assert!(b.flush(Duration::from_secs(5)));

    // A replica of a primary that is not there: every write answers READONLY.
    let nowhere = free_port().to_string();
    admin(&["REPLICAOF", "127.0.0.1", &nowhere]);
    for _ in 0..5 {
        b.record(&ctx, usd("0.01"), 1);
    }
    let t0 = Instant::now();
    while b.stats().buffered < 5 {
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", b.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = b.stats();
    assert_eq!(s.rejected, 0, "READONLY is not a refusal for good: {s:?}");

    // Writable again (promoted): the buffered spend is written, once.
    admin(&["REPLICAOF", "NO", "ONE"]);
    let t0 = Instant::now();
    while b.stats().buffered > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", b.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(b.flush(Duration::from_secs(5)));
    let st = &b.status_for(&ctx).expect("status")[0];
    assert_eq!((st.spent, st.spent_tokens), (usd("0.06"), 6));
    server.kill().expect("kill");
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn start_redis(bin: &str, port: u16, dir: &std::path::Path) -> std::process::Child {
    let c = Command::new(bin)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c
}

#[test]
fn redis_stopped_mid_test_fails_open_buffers_and_replays() {
    let bin = support::peer_env("LLMTEL_REDIS_SERVER", "scripts/redis.sh");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("llmtel-redis-down-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut server = start_redis(&bin, port, &dir);

    let sink = MemorySink::new();
    let alerts = AlertDispatcher::builder()
        .with_sink(Arc::new(sink.clone()))
        .build();
    let store = RedisStore::open(&format!("redis://127.0.0.1:{port}/"))
        .expect("url")
        .with_timeout(Duration::from_millis(100));
    let b = Budgets::builder()
        .with_store(Arc::new(store))
        .with_rule(lifetime_dollar())
        .with_alerts(alerts.clone())
        .build();
    let ctx = CallContext::new();
    for _ in 0..5 {
        b.record(&ctx, usd("0.01"), 1);
    }
    assert!(b.flush(Duration::from_secs(5)));
    // On a loaded machine the first connection may miss the 100 ms timeout: those writes
    // are replayed by the flush. Only what is buffered during the outage is counted below.
    let replayed_before = b.stats().replayed;

    server.kill().expect("kill redis"); // by our own child's PID
    server.wait().expect("wait");

    // Requests go on: reserve fails open within the timeout, spend is buffered.
    for _ in 0..5 {
        let t0 = Instant::now();
        let r = b
            .reserve(&ctx, Estimate::new(usd("0.01"), 0))
            .expect("fail-open");
        assert!(!r.is_enforced());
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        r.settle(usd("0.01"), 1);
    }
    b.flush(Duration::from_secs(2));
    let s = b.stats();
    assert_eq!(s.admitted_unenforced, 5);
    assert!(s.store_errors >= 1, "{s:?}");
    assert_eq!(s.buffered, 5, "{s:?}");
    assert!(alerts.flush(Duration::from_secs(2)));
    assert!(
        sink.alerts()
            .iter()
            .any(|a| a.name == "LlmBudgetStoreUnavailable" && a.state == AlertState::Firing),
        "{:#?}",
        sink.alerts()
    );

    // Redis returns: the buffered spend is written, and the alert resolves.
    let mut server = start_redis(&bin, port, &dir);
    let t0 = Instant::now();
    while b.stats().buffered > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", b.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(b.flush(Duration::from_secs(5)));
    let st = &b.status_for(&ctx).expect("status")[0];
    assert_eq!((st.spent, st.spent_tokens), (usd("0.10"), 10));
    assert_eq!(b.stats().replayed - replayed_before, 5);
    assert!(alerts.flush(Duration::from_secs(2)));
    assert!(
        sink.alerts()
            .iter()
            .any(|a| a.name == "LlmBudgetStoreUnavailable" && a.state == AlertState::Resolved),
        "{:#?}",
        sink.alerts()
    );
    server.kill().expect("kill");
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
