//! A plain OTLP/HTTP receiver for tests: every request read whole, answered `200 OK`, and
//! handed over with its head and body (decode the body with `opentelemetry-proto`).
//! (Also included by llmtel-metrics' tests, `#[path]`.)

// Each test binary uses a different subset of the helpers, and items of a private module of
// a test crate are never reachable from outside.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// One request a receiver got.
#[derive(Debug)]
pub struct Request {
    /// The request line and headers, lowercased.
    pub head: String,
    /// The path of the request line (`/v1/traces`, `/v1/metrics`).
    pub path: String,
    /// The body as sent (compressed if the head says so).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
    }
}

/// Reads one request from `stream` and answers it `200 OK`; `None` when the stream ends first.
pub fn read_request(stream: &mut (impl Read + Write)) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, body_at, len) = loop {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (head, i + 4, len);
        }
    };
    while buf.len() < body_at + len {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    Some(Request {
        head,
        path,
        body: buf[body_at..body_at + len].to_vec(),
    })
}

/// A receiver on a free loopback port: its `http://` URL and every request it gets.
pub fn receiver() -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            if let Some(request) = read_request(&mut s) {
                let _ = tx.send(request);
            }
        }
    });
    (url, rx)
}
