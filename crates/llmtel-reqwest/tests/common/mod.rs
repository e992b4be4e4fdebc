//! Test support: the in-memory llmtel pipeline (a copy of llmtel's own test pipeline), a
//! local replay server standing in for the providers, and the middleware client.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod fixtures;
// The in-memory export pipeline is llmtel's own test helper (one copy for both crates).
#[path = "../../../llmtel/tests/common/mod.rs"]
mod pipeline;
pub use pipeline::*;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One step of a reply body.
#[derive(Clone)]
pub enum Step {
    /// Send these bytes as one HTTP chunk, flushed.
    Bytes(Vec<u8>),
    /// Wait until the test notifies.
    Wait(Arc<Notify>),
    /// Close the connection without finishing the body (a stream cut in the middle).
    Cut,
}

/// A canned reply.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub steps: Vec<Step>,
    /// `transfer-encoding: chunked` (streams) or `content-length` (whole bodies).
    pub chunked: bool,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Self {
        Reply {
            status,
            content_type: "application/json",
            steps: vec![Step::Bytes(body.as_bytes().to_vec())],
            chunked: false,
        }
    }

    /// An SSE reply, one HTTP chunk per element.
    pub fn sse(chunks: &[impl AsRef<str>]) -> Self {
        Reply {
            status: 200,
            content_type: "text/event-stream",
            steps: chunks
                .iter()
                .map(|c| Step::Bytes(c.as_ref().as_bytes().to_vec()))
                .collect(),
            chunked: true,
        }
    }

    /// All the body bytes the reply sends (before any cut).
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &self.steps {
            match s {
                Step::Bytes(b) => out.extend_from_slice(b),
                Step::Cut => break,
                Step::Wait(_) => {}
            }
        }
        out
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub head: String,
    pub body: Vec<u8>,
}

/// A local HTTP/1.1 server on 127.0.0.1 that answers each request with the next reply.
pub struct Replay {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Replay {
    pub async fn start(replies: Vec<Reply>) -> Replay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let queue = Arc::new(Mutex::new(VecDeque::from(replies)));
        let rec = received.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let rec = rec.clone();
                let queue = queue.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    rec.lock().unwrap().push(req);
                    let reply = queue.lock().unwrap().pop_front();
                    let Some(reply) = reply else {
                        let _ = sock
                            .write_all(b"HTTP/1.1 500 No Reply\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    };
                    write_reply(&mut sock, reply).await;
                });
            }
        });
        Replay { addr, received }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    let mut first = head.lines().next().unwrap_or_default().split(' ');
    Some(Received {
        method: first.next().unwrap_or_default().to_owned(),
        path: first.next().unwrap_or_default().to_owned(),
        head,
        body,
    })
}

async fn write_reply(sock: &mut tokio::net::TcpStream, reply: Reply) {
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        429 => "Too Many Requests",
        _ => "Status",
    };
    if !reply.chunked {
        let body = reply.bytes();
        let head = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            reply.status,
            reply.content_type,
            body.len()
        );
        let _ = sock.write_all(head.as_bytes()).await;
        let _ = sock.write_all(&body).await;
        let _ = sock.flush().await;
        return;
    }
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ntransfer-encoding: chunked\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
        reply.status, reply.content_type
    );
    if sock.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let _ = sock.flush().await;
    for step in reply.steps {
        match step {
            Step::Bytes(b) => {
                let mut chunk = format!("{:x}\r\n", b.len()).into_bytes();
                chunk.extend_from_slice(&b);
                chunk.extend_from_slice(b"\r\n");
                if sock.write_all(&chunk).await.is_err() {
                    return;
                }
                let _ = sock.flush().await;
            }
            Step::Wait(n) => {
                // A liveness bound only: a test holding many big bodies open on a loaded
                // machine notifies well after 10 s (the cut then failed its reads).
                if tokio::time::timeout(Duration::from_secs(60), n.notified())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Step::Cut => {
                let _ = sock.shutdown().await;
                return;
            }
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let _ = sock.flush().await;
}

/// A client with the middleware, every API flavour pointed at the replay server.
pub fn client(mw: llmtel_reqwest::LlmMiddleware) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(mw)
        .build()
}

/// Middleware routes for the replay server: `/v1/...` OpenAI-style under `/openai`,
/// Anthropic under `/anthropic`, Gemini under `/gemini`, Ollama under `/ollama`.
pub fn middleware(server: &Replay) -> llmtel_reqwest::LlmMiddleware {
    llmtel_reqwest::LlmMiddleware::new()
        .with_openai_compatible(&format!("{}/openai/v1", server.base()), "openai")
        .unwrap()
        .with_openai_compatible(&format!("{}/ollama/v1", server.base()), "ollama")
        .unwrap()
        .with_anthropic_base_url(&format!("{}/anthropic", server.base()))
        .unwrap()
        .with_gemini_base_url(&format!("{}/gemini", server.base()))
        .unwrap()
}

/// Runs an async test body on a current-thread runtime inside the in-memory pipeline.
pub fn run_async<F, Fut>(f: F) -> Pipeline
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), f())
                .await
                .expect("test timed out");
        });
    })
}

/// The one LLM span exported.
pub fn llm_span(p: &Pipeline) -> opentelemetry_sdk::trace::SpanData {
    let spans: Vec<_> = p
        .spans()
        .into_iter()
        .filter(|s| attr(s, "gen_ai.operation.name").is_some())
        .collect();
    assert_eq!(
        spans.len(),
        1,
        "expected one LLM span, got {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    spans.into_iter().next().unwrap()
}

/// POSTs `body` and reads the whole response body.
pub async fn post(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
    body: &str,
) -> (u16, Vec<u8>) {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test-SECRET-0123456789abcdef")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, bytes.to_vec())
}
