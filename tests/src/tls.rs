//! A TLS upstream with a certificate from a test CA made with rcgen, served by hyper over
//! tokio-rustls with the ALPN protocols a test asks for.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A running TLS upstream; every response carries `x-upstream-version` (the HTTP version the
/// request arrived with) and `x-upstream-te` (its `TE` header, if any).
pub struct TlsUpstream {
    pub addr: SocketAddr,
    /// The test CA that signed the server certificate, as PEM.
    pub ca_pem: String,
    connections: Arc<AtomicUsize>,
}

impl TlsUpstream {
    /// `alpn`: e.g. `[b"h2", b"http/1.1"]`, or `[b"http/1.1"]` for an HTTP/1.1-only server.
    pub async fn start(alpn: &[&[u8]]) -> TlsUpstream {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![server_cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // Handshakes the gateway refuses end here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service =
                        service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                            let version = format!("{:?}", req.version());
                            let mut response =
                                hyper::Response::builder().header("x-upstream-version", version);
                            if let Some(te) = req.headers().get("te") {
                                response = response.header("x-upstream-te", te);
                            }
                            let response = response
                                .body(Full::new(Bytes::from_static(b"secure hello")))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsUpstream {
            addr,
            ca_pem: ca_cert.pem(),
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
