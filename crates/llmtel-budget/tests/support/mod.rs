//! Shared test support: stores, a movable clock, peers.
#![allow(dead_code, unreachable_pub)]

// The HTTP test listener and peer-env helpers are llmtel-alert's (one copy for both crates).
#[path = "../../../llmtel-alert/tests/support/mod.rs"]
pub mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;
use llmtel_budget::{BudgetStore, Clock, MemoryStore, RedisStore, SqliteStore};

pub use http::peer_env;

/// A clock tests move by hand.
#[derive(Clone, Debug)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn at(t: &str) -> Self {
        let ts: Timestamp = t.parse().expect("timestamp");
        TestClock(Arc::new(AtomicI64::new(ts.as_millisecond())))
    }
    pub fn set(&self, t: &str) {
        let ts: Timestamp = t.parse().expect("timestamp");
        self.0.store(ts.as_millisecond(), Ordering::SeqCst);
    }
    pub fn advance_secs(&self, s: i64) {
        self.0.fetch_add(s * 1000, Ordering::SeqCst);
    }
    pub fn clock(&self) -> Clock {
        let c = self.0.clone();
        Arc::new(move || Timestamp::from_millisecond(c.load(Ordering::SeqCst)).expect("ts"))
    }
}

pub fn redis_url() -> String {
    peer_env("LLMTEL_REDIS_URL", "scripts/redis.sh")
}

/// The TLS port of scripts/redis.sh (`rediss://`, with a password).
pub fn rediss_url() -> String {
    peer_env("LLMTEL_REDISS_URL", "scripts/redis.sh")
}

/// The PEM file of the self-signed CA that signed that port's certificate.
pub fn redis_ca() -> String {
    peer_env("LLMTEL_REDIS_CA", "scripts/redis.sh")
}

/// `{pid}-{test}-{nanos}`: unique to this test run.
fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos();
    format!("{}-{test}-{nanos}", std::process::id())
}

/// A key prefix unique to this test run.
pub fn unique_prefix(test: &str) -> String {
    format!("llmtel:test:{}:", unique(test))
}

/// A fresh store of each kind; Redis under a key prefix unique to the test. `rediss` is
/// the same Redis over TLS, trusting scripts/redis.sh's CA.
pub fn store(kind: &str, test: &str) -> Arc<dyn BudgetStore> {
    match kind {
        "memory" => Arc::new(MemoryStore::new()),
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!("llmtel-budget-{}", unique(test)));
            std::fs::create_dir_all(&dir).expect("dir");
            Arc::new(SqliteStore::open(dir.join("budget.db")).expect("sqlite"))
        }
        "redis" => Arc::new(
            RedisStore::open(&redis_url())
                .expect("redis url")
                .with_prefix(&unique_prefix(test))
                .with_timeout(std::time::Duration::from_secs(2))
                .with_reserve_timeout(std::time::Duration::from_secs(2)),
        ),
        #[cfg(feature = "redis-tls")]
        "rediss" => Arc::new(
            RedisStore::open(&rediss_url())
                .expect("rediss url")
                .with_ca_file(redis_ca())
                .expect("CA file")
                .with_prefix(&unique_prefix(test))
                .with_timeout(std::time::Duration::from_secs(2))
                .with_reserve_timeout(std::time::Duration::from_secs(2)),
        ),
        _ => unreachable!(),
    }
}

pub fn usd(s: &str) -> llmtel::Usd {
    llmtel::Usd::parse_decimal(s).expect("usd")
}

/// A TCP proxy on 127.0.0.1 in front of a real server (tokio, on its own thread), whose
/// behaviour tests switch at run time to simulate network faults.
pub mod proxy {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Forwards both ways.
    pub const STRAIGHT: u8 = 0;
    /// Accepts connections, reads and discards what they send, never answers (a
    /// blackholed server: the TCP handshake succeeds, no reply ever comes).
    pub const BLACKHOLE: u8 = 1;
    /// Forwards requests to the server but drops every reply: the server runs each
    /// command, the client never learns it did.
    pub const DROP_REPLIES: u8 = 2;

    /// The proxy; stops when dropped (its runtime thread ends with the process's test).
    #[derive(Debug)]
    pub struct Proxy {
        /// Where clients connect.
        pub addr: SocketAddr,
        mode: Arc<AtomicU8>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Proxy {
        /// A proxy to `upstream` in `mode`.
        pub fn start(upstream: SocketAddr, mode: u8) -> Proxy {
            let mode = Arc::new(AtomicU8::new(mode));
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let m = mode.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    addr_tx
                        .send(listener.local_addr().expect("addr"))
                        .expect("send");
                    let accept = async {
                        loop {
                            let Ok((client, _)) = listener.accept().await else {
                                continue;
                            };
                            tokio::spawn(serve(client, upstream, m.clone()));
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stop_rx => {}
                    }
                });
            });
            let addr = addr_rx.recv().expect("proxy address");
            Proxy {
                addr,
                mode,
                stop: Some(stop_tx),
            }
        }

        /// Switches the behaviour (new connections, and replies on open ones).
        pub fn set_mode(&self, mode: u8) {
            self.mode.store(mode, Ordering::SeqCst);
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
        }
    }

    async fn serve(mut client: TcpStream, upstream: SocketAddr, mode: Arc<AtomicU8>) {
        if mode.load(Ordering::SeqCst) == BLACKHOLE {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = client.read(&mut buf).await {
                if n == 0 {
                    return;
                }
            }
            return;
        }
        let Ok(server) = TcpStream::connect(upstream).await else {
            return;
        };
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sw.shutdown().await;
        };
        let down = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if mode.load(Ordering::SeqCst) == DROP_REPLIES {
                            continue;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = cw.shutdown().await;
        };
        tokio::join!(up, down);
    }
}

/// `url` (a `redis://` URL) with its host and port replaced by `addr`.
pub fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (auth, hostpath) = match rest.rsplit_once('@') {
        Some((a, h)) => (format!("{a}@"), h),
        None => (String::new(), rest),
    };
    let path = hostpath.find('/').map_or("", |i| &hostpath[i..]);
    format!("{scheme}://{auth}{addr}{path}")
}

/// The socket address of a `redis://` URL.
pub fn addr_of(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().expect("host");
    host.parse().expect("127.0.0.1:port")
}
