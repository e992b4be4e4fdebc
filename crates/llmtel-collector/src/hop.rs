//! Forwarding loops: a downstream that leads back to the collector would have it forward
//! every span to itself, pricing and budgeting it again each time, without end.
//!
//! - At start, a downstream that is plainly one of the collector's own listeners (the same
//!   port, on an address that reaches the listener) is a configuration error
//!   ([`check_not_self`]).
//! - Every forward carries the `x-llmtel-collector` header: the ids of the llmtel collectors
//!   the request went through, this one's last. A request carrying this collector's id went
//!   through it already and is refused (HTTP `508 Loop Detected`, gRPC
//!   `FAILED_PRECONDITION`: neither is retried by OTLP senders) and counted; so is one that
//!   went through more than [`MAX_HOPS`] collectors. Chained collectors (one forwarding to
//!   another) each add their id and are not refused.

use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{IpAddr, SocketAddr};

use crate::ConfigError;
use crate::config::Endpoint;

/// The header (gRPC metadata key) naming the collectors a request went through.
pub(crate) const HEADER: &str = "x-llmtel-collector";

/// The most collectors a request may have gone through.
pub(crate) const MAX_HOPS: usize = 16;

/// A collector's id in [`HEADER`]: 16 hex digits, unique per started collector.
pub(crate) fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(STARTED.fetch_add(1, Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    format!("{:016x}", h.finish())
}

/// Why a request is refused as a loop.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Loop {
    /// It went through this collector already.
    Back,
    /// It went through more than [`MAX_HOPS`] collectors.
    TooManyHops,
}

impl Loop {
    /// What the sender is told.
    pub(crate) fn message(&self) -> String {
        match self {
            Loop::Back => format!(
                "llmtel collector: this request went through this collector already ({HEADER} \
                 names it): its downstream leads back to it, a forwarding loop; point the \
                 forward endpoint of the collector that sent it at a backend or another \
                 collector"
            ),
            Loop::TooManyHops => format!(
                "llmtel collector: this request went through more than {MAX_HOPS} llmtel \
                 collectors ({HEADER}): a forwarding loop; check each collector's forward \
                 endpoint"
            ),
        }
    }
}

/// The collectors a request went through (the values of its [`HEADER`], well-formed ids
/// only), or why it is refused: `own` among them, or too many.
pub(crate) fn check<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    own: &str,
) -> Result<Vec<String>, Loop> {
    let mut ids = Vec::new();
    for value in values {
        let text = String::from_utf8_lossy(value);
        for id in text.split(',').map(str::trim) {
            if id.eq_ignore_ascii_case(own) {
                return Err(Loop::Back);
            }
            if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                ids.push(id.to_ascii_lowercase());
            }
            if ids.len() > MAX_HOPS {
                return Err(Loop::TooManyHops);
            }
        }
    }
    Ok(ids)
}

/// The [`HEADER`] value a request forwarded by `own` carries: the collectors it went
/// through, then `own`.
pub(crate) fn value(via: &[String], own: &str) -> String {
    let mut v = via.join(",");
    if !v.is_empty() {
        v.push(',');
    }
    v.push_str(own);
    v
}

/// Refuses a downstream that is one of the collector's own listeners (`listeners`: what,
/// where it was bound, the flag that moves it): the same port on an address that reaches the
/// listener (loopback, unspecified, `localhost`, or the listener's own address).
pub(crate) fn check_not_self(
    endpoint: &Endpoint,
    listeners: &[(&'static str, SocketAddr, &'static str)],
) -> Result<(), ConfigError> {
    let Ok(url) = reqwest::Url::parse(&endpoint.0) else {
        return Ok(());
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Ok(());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let targets: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) if host.eq_ignore_ascii_case("localhost") => {
            vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()]
        }
        // A name: which addresses it has is not known here (the header catches a loop).
        Err(_) => return Ok(()),
    };
    for &(what, addr, flag) in listeners {
        if addr.port() == port && targets.iter().any(|&t| reaches(t, addr.ip())) {
            return Err(ConfigError::ForwardsToItself {
                endpoint: format!("{endpoint:?}"),
                listener: what,
                addr,
                flag,
            });
        }
    }
    Ok(())
}

/// Whether connecting to `target` reaches a listener bound to `listen` (same port).
fn reaches(target: IpAddr, listen: IpAddr) -> bool {
    let local = |ip: IpAddr| ip.is_loopback() || ip.is_unspecified();
    if target == listen {
        return true;
    }
    if !local(target) {
        return false;
    }
    match listen {
        // `[::]` takes IPv4 too (dual stack, the usual setting).
        IpAddr::V6(l) if l.is_unspecified() => true,
        IpAddr::V4(l) if l.is_unspecified() => target.is_ipv4(),
        // Connecting to an unspecified address reaches the loopback listener of its family.
        l if l.is_loopback() => target.is_unspecified() && target.is_ipv4() == l.is_ipv4(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(http: &str) -> Vec<(&'static str, SocketAddr, &'static str)> {
        vec![
            (
                "OTLP/gRPC",
                "127.0.0.1:4317".parse().unwrap(),
                "--grpc-listen",
            ),
            ("OTLP/HTTP", http.parse().unwrap(), "--http-listen"),
        ]
    }

    fn loops(endpoint: &str, http: &str) -> bool {
        check_not_self(&Endpoint(endpoint.into()), &listeners(http)).is_err()
    }

    #[test]
    fn a_downstream_on_a_listeners_port_of_this_host_is_refused() {
        assert!(loops("http://127.0.0.1:4318/v1/traces", "127.0.0.1:4318"));
        assert!(loops("http://localhost:4318/v1/traces", "127.0.0.1:4318"));
        assert!(loops("http://127.0.0.1:4317", "127.0.0.1:4318"));
        assert!(loops("http://127.0.0.1:4318/v1/traces", "0.0.0.0:4318"));
        assert!(loops("http://[::1]:4318/v1/traces", "[::]:4318"));
        assert!(loops("http://0.0.0.0:4318/v1/traces", "127.0.0.1:4318"));
        assert!(loops("http://10.1.2.3:4318/v1/traces", "10.1.2.3:4318"));
        let e = check_not_self(
            &Endpoint("http://user:pw@127.0.0.1:4318/v1/traces".into()),
            &listeners("127.0.0.1:4318"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("OTLP/HTTP") && e.contains("127.0.0.1:4318"),
            "{e}"
        );
        assert!(e.contains("--http-listen") && !e.contains("pw"), "{e}");
    }

    #[test]
    fn a_downstream_elsewhere_is_not() {
        assert!(!loops("http://127.0.0.1:14318/v1/traces", "127.0.0.1:4318"));
        assert!(!loops(
            "http://otel-collector:4318/v1/traces",
            "0.0.0.0:4318"
        ));
        assert!(!loops("http://10.1.2.3:4318/v1/traces", "127.0.0.1:4318"));
        assert!(!loops("http://127.0.0.1:4318/v1/traces", "10.1.2.3:4318"));
        assert!(!loops("http://[::1]:4318/v1/traces", "127.0.0.1:4318"));
        assert!(!loops("https://127.0.0.1/v1/traces", "127.0.0.1:4318"));
    }

    #[test]
    fn a_request_that_went_through_this_collector_is_a_loop() {
        let own = "00000000000000aa";
        let one = |v: &'static [u8]| check([v], own);
        assert_eq!(check([], own), Ok(vec![]));
        assert_eq!(
            one(b"00000000000000BB, junk"),
            Ok(vec!["00000000000000bb".to_owned()])
        );
        assert_eq!(one(b"00000000000000bb,00000000000000aa"), Err(Loop::Back));
        assert_eq!(
            check([&b"00000000000000bb"[..], b"00000000000000AA"], own),
            Err(Loop::Back)
        );
        let many = vec!["0123456789abcdef"; MAX_HOPS + 1].join(",");
        assert_eq!(check([many.as_bytes()], own), Err(Loop::TooManyHops));
        assert_eq!(value(&[], own), own);
        assert_eq!(
            value(&["00000000000000bb".into()], own),
            "00000000000000bb,00000000000000aa"
        );
        assert_ne!(new_id(), new_id());
        assert_eq!(new_id().len(), 16);
    }
}
