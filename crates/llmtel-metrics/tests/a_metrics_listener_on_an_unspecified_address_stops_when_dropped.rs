//! The built-in `/metrics` listener bound to an unspecified address (`0.0.0.0`, `[::]`: every
//! interface) stops when its `MetricsServer` is dropped, and the drop returns: it wakes its
//! accept loop through the loopback of the same family (connecting to the unspecified address
//! itself fails on some systems) and never waits for it forever. Real sockets.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use llmtel_metrics::PrometheusSink;

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn stops_when_dropped(bind: &str, loopback: IpAddr) {
    let sink = PrometheusSink::default();
    let server = sink.serve(bind).unwrap();
    let port = server.local_addr().port();
    assert!(server.local_addr().ip().is_unspecified());
    let local = SocketAddr::new(loopback, port);
    assert!(scrape(local).starts_with("HTTP/1.1 200"), "{bind}");

    let (tx, rx) = std::sync::mpsc::channel();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        drop(server);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{bind}: dropping the server did not return"));
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Stopped: the port no longer accepts.
    assert!(
        TcpStream::connect_timeout(&local, Duration::from_secs(2)).is_err(),
        "{bind}: still listening after the drop"
    );
}

#[test]
fn a_listener_on_every_ipv4_interface_stops_when_dropped() {
    stops_when_dropped("0.0.0.0:0", Ipv4Addr::LOCALHOST.into());
}

#[test]
fn a_listener_on_every_ipv6_interface_stops_when_dropped() {
    // A host without IPv6 cannot bind `[::]`: nothing to check there.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    stops_when_dropped("[::]:0", Ipv6Addr::LOCALHOST.into());
}
