//! Test support: a minimal HTTP listener that records what it receives.
//! (Also included by llmtel-budget's tests, `tests/support/mod.rs`.)
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received request.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub body: serde_json::Value,
}

/// An HTTP listener on 127.0.0.1 that answers every request with `status` and records it.
#[derive(Clone, Debug)]
pub struct Listener {
    pub addr: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    fail_first: Arc<AtomicUsize>,
    location: Arc<Mutex<Option<String>>>,
    pub hits: Arc<AtomicUsize>,
}

impl Listener {
    /// Binds `addr` (`127.0.0.1:0` for any free port) and serves on a thread.
    pub fn start(addr: &str) -> Listener {
        let l = TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("cannot bind the test listener on {addr}: {e}"));
        let me = Listener {
            addr: l.local_addr().expect("local addr").to_string(),
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            fail_first: Arc::default(),
            location: Arc::default(),
            hits: Arc::default(),
        };
        let m = me.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let m = m.clone();
                std::thread::spawn(move || m.serve(s));
            }
        });
        me
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answer every request with this status.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Answer every request with this redirect status (301, 302, 307, ...) to `location`.
    pub fn redirect(&self, status: u16, location: &str) {
        *self.location.lock().expect("lock") = Some(location.to_owned());
        self.set_status(status);
    }

    /// Answer the next `n` requests with 503.
    pub fn fail_first(&self, n: usize) {
        self.fail_first.store(n, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until `pred` holds for one received request, or panics after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        let t0 = Instant::now();
        loop {
            if let Some(r) = self.received().into_iter().find(|r| pred(r)) {
                return r;
            }
            if t0.elapsed() > timeout {
                panic!(
                    "{what}: not received within {timeout:?}; got {:#?}",
                    self.received()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn serve(&self, s: TcpStream) {
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            self.hits.fetch_add(1, Ordering::SeqCst);
            let failing = self
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let status = if failing {
                503
            } else {
                self.status.load(Ordering::SeqCst)
            };
            if (200..300).contains(&status) {
                self.received.lock().expect("lock").push(Received {
                    method,
                    path,
                    body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                });
            }
            let location = match &*self.location.lock().expect("lock") {
                Some(to) if (300..400).contains(&status) => format!("location: {to}\r\n"),
                _ => String::new(),
            };
            let resp = format!(
                "HTTP/1.1 {status} X\r\n{location}content-length: 2\r\ncontent-type: application/json\r\n\r\n{{}}"
            );
            let mut w = &s;
            if w.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Reads a variable from the peer env files, failing with the script to run.
pub fn peer_env(var: &str, script: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        // Fall back to the env file the script writes.
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = std::env::var("LLMTEL_PEERS_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| repo.join(".peers"));
        let name = script.trim_start_matches("scripts/").trim_end_matches(".sh");
        let file = dir.join(format!("{name}.env"));
        std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix(&format!("export {var}="))
                        .map(|v| v.trim().to_string())
                })
            })
            .unwrap_or_else(|| {
                panic!(
                    "{var} is not set and {} has no such line: this test needs a real peer; run `{script} install && {script} start` (then `source {}`)",
                    file.display(),
                    file.display()
                )
            })
    })
}
