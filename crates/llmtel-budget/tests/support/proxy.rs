//! A TCP proxy on 127.0.0.1 in front of a real server (tokio, on its own thread), whose
//! behaviour tests switch at run time to simulate network faults. (Also included by
//! examples/budget-guard's tests.)
#![allow(dead_code, unreachable_pub)]
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
