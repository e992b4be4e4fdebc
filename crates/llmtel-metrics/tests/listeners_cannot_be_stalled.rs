//! Listeners cannot be stalled: the built-in `/metrics` listener and the hardened axum
//! listener (`listener::serve_with_limits`, feature `serve`) serve connections concurrently,
//! so a client sending one header byte every 4 s does not delay a concurrent scrape; the
//! slow client is cut off by the header-read timeout (also on a kept-alive connection's next
//! request); connections over the limit are refused (503, closed) and counted; an oversized
//! head or body (declared or chunked) is refused (431 / 413) and counted; an idle kept-alive
//! connection is closed after the idle timeout, not the header-read one. Real sockets on
//! 127.0.0.1, real HTTP clients.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use llmtel_metrics::PrometheusSink;
use llmtel_metrics::listener::{Limits, ListenerStats};

/// What a listener under test exposes.
trait Server {
    fn addr(&self) -> SocketAddr;
    fn stats(&self) -> ListenerStats;
    /// The path that answers 200.
    fn path(&self) -> &'static str;
}

struct Builtin(llmtel_metrics::MetricsServer);

impl Server for Builtin {
    fn addr(&self) -> SocketAddr {
        self.0.local_addr()
    }
    fn stats(&self) -> ListenerStats {
        self.0.stats()
    }
    fn path(&self) -> &'static str {
        "/metrics"
    }
}

fn builtin(limits: Limits) -> Box<dyn Server> {
    let sink = PrometheusSink::default();
    Box::new(Builtin(
        sink.serve_with_limits("127.0.0.1:0", limits).unwrap(),
    ))
}

#[cfg(feature = "serve")]
struct Axum {
    addr: SocketAddr,
    limits: Limits,
}

#[cfg(feature = "serve")]
impl Server for Axum {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn stats(&self) -> ListenerStats {
        self.limits.stats()
    }
    fn path(&self) -> &'static str {
        "/metrics"
    }
}

/// The Prometheus router (and a POST route reading its body) on the hardened axum listener,
/// on a runtime of its own.
#[cfg(feature = "serve")]
fn axum_server(limits: Limits) -> Box<dyn Server> {
    let sink = PrometheusSink::default();
    let app: axum::Router = llmtel_metrics::prometheus::axum_router(sink).route(
        "/echo",
        axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
    );
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let l = limits.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            llmtel_metrics::listener::serve_with_limits(listener, app, l)
                .await
                .unwrap();
        });
    });
    Box::new(Axum { addr, limits })
}

fn servers(limits: Limits) -> Vec<(&'static str, Box<dyn Server>)> {
    #[allow(unused_mut)]
    let mut v = vec![("builtin", builtin(limits.clone()))];
    #[cfg(feature = "serve")]
    v.push(("axum", axum_server(Limits::clone(&limits_fresh(&limits)))));
    v
}

/// The same limits with counters of their own.
#[cfg(feature = "serve")]
fn limits_fresh(l: &Limits) -> Limits {
    Limits::new()
        .with_max_connections(l.max_connections())
        .with_header_read_timeout(l.header_read_timeout())
        .with_idle_timeout(l.idle_timeout())
        .with_max_header_bytes(l.max_header_bytes())
        .with_max_body_bytes(l.max_body_bytes())
}

/// One GET on a fresh connection; (status line, elapsed).
fn scrape(addr: SocketAddr, path: &str) -> (String, Duration) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    (out.lines().next().unwrap_or("").to_owned(), t0.elapsed())
}

/// A whole scrape answer (head and body).
fn scrape_body(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_all(&mut s)
}

/// Reads what the server says until it closes (or 10 s).
fn read_all(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one whole response (head and `content-length` body) from a kept-alive connection.
fn read_one_response(c: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= i + 4 + len {
                return String::from_utf8_lossy(&buf).into_owned();
            }
        }
        let n = c.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn wait_until(what: &str, server: &dyn Server, pred: impl Fn(&ListenerStats) -> bool) {
    let t0 = Instant::now();
    while !pred(&server.stats()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what}: {:?}",
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_client_sending_one_header_byte_every_4_s_does_not_delay_a_concurrent_scrape() {
    let limits = Limits::new().with_header_read_timeout(Duration::from_secs(6));
    let servers = servers(limits);
    // One slow client per server, all trickling at once.
    let mut slow: Vec<TcpStream> = servers
        .iter()
        .map(|(_, s)| {
            let mut c = TcpStream::connect(s.addr()).unwrap();
            c.write_all(b"G").unwrap();
            c
        })
        .collect();
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(200));
        for (name, s) in &servers {
            let (status, took) = scrape(s.addr(), s.path());
            assert!(status.contains("200"), "{name}: {status}");
            assert!(
                took < Duration::from_secs(1),
                "{name}: a scrape took {took:?} while a slow client was connected (round {round})"
            );
        }
        if round == 0 {
            std::thread::sleep(Duration::from_millis(3800));
            for c in &mut slow {
                c.write_all(b"E").unwrap(); // 4 s after the first byte: still connected
            }
        }
    }
    // The slow clients are cut off by the 6 s header-read timeout, and counted.
    for ((name, s), mut c) in servers.iter().zip(slow) {
        let answer = read_all(&mut c);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{name}: {answer}"
        );
        wait_until(name, s.as_ref(), |st| st.timed_out == 1);
    }
}

#[test]
fn connections_over_the_limit_are_refused_and_counted() {
    let limits = Limits::new()
        .with_max_connections(2)
        .with_header_read_timeout(Duration::from_secs(20))
        .with_idle_timeout(Duration::from_secs(20));
    for (name, s) in servers(limits) {
        let held: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(s.addr()).unwrap())
            .collect();
        wait_until(name, s.as_ref(), |st| st.active == 2);
        let mut extra = TcpStream::connect(s.addr()).unwrap();
        let answer = read_all(&mut extra);
        assert!(answer.starts_with("HTTP/1.1 503"), "{name}: {answer:?}");
        wait_until(name, s.as_ref(), |st| st.refused == 1);
        let st = s.stats();
        assert_eq!((st.accepted, st.refused), (2, 1), "{name}: {st:?}");
        // Once the held connections go, scrapes are served again.
        drop(held);
        wait_until(name, s.as_ref(), |st| st.active == 0);
        let (status, _) = scrape(s.addr(), s.path());
        assert!(status.contains("200"), "{name}: {status}");
        if name == "builtin" {
            // Also on the scrape itself, for whoever watches the listener.
            let body = scrape_body(s.addr());
            let line = format!(
                "llmtel_metrics_listener_connections_total{{listener=\"{}\",outcome=\"refused\"}} 1",
                s.addr()
            );
            assert!(body.contains(&line), "{name}: no `{line}` in\n{body}");
        }
    }
}

#[test]
fn an_oversized_head_or_body_is_refused_and_counted() {
    let limits = Limits::new()
        .with_max_header_bytes(4 * 1024)
        .with_max_body_bytes(1024);
    for (name, s) in servers(limits) {
        let mut c = TcpStream::connect(s.addr()).unwrap();
        let big = "a".repeat(8 * 1024);
        let _ = write!(
            c,
            "GET {} HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n",
            s.path()
        );
        let answer = read_all(&mut c);
        assert!(answer.starts_with("HTTP/1.1 431"), "{name}: {answer:?}");

        let mut c = TcpStream::connect(s.addr()).unwrap();
        let path = if name == "axum" { "/echo" } else { s.path() };
        let _ = write!(
            c,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
        );
        let _ = c.write_all(&[b'x'; 2048]);
        let answer = read_all(&mut c);
        assert!(answer.starts_with("HTTP/1.1 413"), "{name}: {answer:?}");
        wait_until(name, s.as_ref(), |st| st.too_large == 2);

        // A chunked body (no declared length) over the limit: refused when it gets there
        // (axum), or at once (the built-in listener takes no chunked body), and counted.
        let mut c = TcpStream::connect(s.addr()).unwrap();
        let _ = write!(
            c,
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
            "x".repeat(0x800)
        );
        let answer = read_all(&mut c);
        let refused = if name == "axum" {
            "HTTP/1.1 413"
        } else {
            "HTTP/1.1 411"
        };
        assert!(answer.starts_with(refused), "{name}: {answer:?}");
        wait_until(name, s.as_ref(), |st| st.too_large == 3);
    }
}

#[test]
fn a_kept_alive_connection_serves_again_then_is_closed_when_idle() {
    // An idle kept-alive connection waits for the idle timeout, not the (shorter)
    // header-read timeout.
    let limits = Limits::new()
        .with_header_read_timeout(Duration::from_millis(300))
        .with_idle_timeout(Duration::from_secs(3));
    for (name, s) in servers(limits) {
        let mut c = TcpStream::connect(s.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for round in 0..2 {
            if round == 1 {
                // Idle for over three header-read timeouts, well within the idle timeout.
                std::thread::sleep(Duration::from_secs(1));
            }
            write!(c, "GET {} HTTP/1.1\r\nHost: x\r\n\r\n", s.path()).unwrap();
            let text = read_one_response(&mut c);
            assert!(
                text.starts_with("HTTP/1.1 200"),
                "{name}, request {}: {text}",
                round + 1
            );
        }
        // Then idle: closed by the server.
        let t0 = Instant::now();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(t0.elapsed() < Duration::from_secs(9), "{name}: not closed");
        wait_until(name, s.as_ref(), |st| st.timed_out == 1 || st.active == 0);
    }
}

#[test]
fn a_kept_alive_connection_trickling_its_next_head_is_cut_off() {
    // One byte every 300 ms never lets the connection go idle (1.5 s); the next head's
    // header-read timeout (1 s from its first byte) cuts it off.
    let limits = Limits::new()
        .with_header_read_timeout(Duration::from_secs(1))
        .with_idle_timeout(Duration::from_millis(1500));
    for (name, s) in servers(limits) {
        let mut c = TcpStream::connect(s.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(c, "GET {} HTTP/1.1\r\nHost: x\r\n\r\n", s.path()).unwrap();
        let text = read_one_response(&mut c);
        assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text}");
        let mut w = c.try_clone().unwrap();
        let trickle = std::thread::spawn(move || {
            let head = format!("GET /metrics HTTP/1.1\r\nX-Slow: {}", "a".repeat(100));
            for b in head.bytes() {
                if w.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let t0 = Instant::now();
        let answer = read_all(&mut c);
        assert!(
            t0.elapsed() < Duration::from_secs(9),
            "{name}: a trickling head was not cut off"
        );
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{name}: {answer}"
        );
        wait_until(name, s.as_ref(), |st| st.timed_out == 1);
        drop(c);
        trickle.join().unwrap();
    }
}

#[test]
fn limits_of_duration_max_mean_no_deadline_and_scrapes_are_served() {
    // `Instant::now() + Duration::MAX` overflows: the connection thread panicked on every
    // request (head and body reads), so `/metrics` was never served.
    let limits = Limits::new()
        .with_header_read_timeout(Duration::MAX)
        .with_idle_timeout(Duration::MAX);
    for (name, s) in servers(limits) {
        let (status, _) = scrape(s.addr(), s.path());
        assert!(status.starts_with("HTTP/1.1 200"), "{name}: {status:?}");
        // A kept-alive connection serves its next request too.
        let mut c = TcpStream::connect(s.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(c, "GET {} HTTP/1.1\r\nHost: x\r\n\r\n", s.path()).unwrap();
        let first = read_one_response(&mut c);
        assert!(first.starts_with("HTTP/1.1 200"), "{name}: {first}");
        write!(c, "GET {} HTTP/1.1\r\nHost: x\r\n\r\n", s.path()).unwrap();
        let second = read_one_response(&mut c);
        assert!(second.starts_with("HTTP/1.1 200"), "{name}: {second}");
        drop(c);
        // A request with a body: its body is read within the (absent) deadline too.
        let mut p = TcpStream::connect(s.addr()).unwrap();
        write!(
            p,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        )
        .unwrap();
        let answer = read_all(&mut p);
        assert!(
            answer.starts_with("HTTP/1.1 "),
            "{name}: no answer to a POST"
        );
        assert_eq!(s.stats().timed_out, 0, "{name}");
    }
}
