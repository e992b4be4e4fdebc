//! Test support: a real local TLS server. A CA and a server certificate for `localhost` and
//! `127.0.0.1` are made in the test (rcgen); the server terminates TLS (rustls, ALPN `h2` and
//! `http/1.1`) and forwards the plain bytes to a plain test server, so any in-test HTTP or
//! gRPC receiver becomes an https one. (Also included by llmtel's tests.)
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA made for one test: its PEM and a file holding it.
#[derive(Debug)]
pub struct TestCa {
    pub pem: String,
    pub file: PathBuf,
    cert_der: CertificateDer<'static>,
    params: CertificateParams,
    key: KeyPair,
}

impl TestCa {
    /// A new CA; its PEM is written to a file of its own under the temp dir.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("llmtel test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        let pem = cert.pem();
        let file = std::env::temp_dir().join(format!(
            "llmtel-test-ca-{name}-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&file, &pem).expect("write CA file");
        TestCa {
            pem,
            file,
            cert_der: cert.der().clone(),
            params,
            key,
        }
    }

    /// A server certificate chain and key for `localhost` and `127.0.0.1`, signed by this CA.
    fn server_cert(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("server cert");
        (
            vec![cert.der().clone(), self.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A TLS front on 127.0.0.1 forwarding to a plain backend.
#[derive(Clone, Debug)]
pub struct TlsFront {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// TLS handshakes that failed (e.g. the client did not trust the certificate).
    pub failed_handshakes: Arc<AtomicUsize>,
    /// TLS handshakes that succeeded.
    pub handshakes: Arc<AtomicUsize>,
}

impl TlsFront {
    /// The handshakes refused so far, once there are `at_least` or 5 s have passed: the
    /// server counts a refused handshake on its own task, which may run just after the client
    /// has returned its error.
    pub fn wait_failed_handshakes(&self, at_least: usize) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let n = self.failed_handshakes.load(Ordering::SeqCst);
            if n >= at_least || std::time::Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    /// Starts a TLS server with a certificate of `ca`, forwarding to `backend` (`host:port`),
    /// on a thread and runtime of its own (lives until the test process ends).
    pub fn start(ca: &TestCa, backend: &str) -> TlsFront {
        let (chain, key) = ca.server_cert();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server cert");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind TLS front");
        listener.set_nonblocking(true).expect("nonblocking");
        let front = TlsFront {
            addr: listener.local_addr().expect("addr").to_string(),
            failed_handshakes: Arc::default(),
            handshakes: Arc::default(),
        };
        let (f, backend) = (front.clone(), backend.to_owned());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let (acceptor, f, backend) = (acceptor.clone(), f.clone(), backend.clone());
                    tokio::spawn(async move {
                        let mut tls = match acceptor.accept(tcp).await {
                            Ok(t) => t,
                            Err(_) => {
                                f.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        };
                        f.handshakes.fetch_add(1, Ordering::SeqCst);
                        let Ok(mut up) = tokio::net::TcpStream::connect(&backend).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    });
                }
            });
        });
        front
    }
}
