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
/// request arrived with) and `x-upstream-te` (its `TE` header, if any). An HTTP/1.1 request with
/// `Upgrade` is switched and then echoed byte for byte.
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
                    let service = service_fn(respond);
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
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

async fn respond(
    mut req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let mut response =
        hyper::Response::builder().header("x-upstream-version", format!("{:?}", req.version()));
    if let Some(te) = req.headers().get("te") {
        response = response.header("x-upstream-te", te);
    }
    if req.headers().contains_key("upgrade") {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            }
        });
        response = response
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket");
    }
    Ok(response
        .body(Full::new(Bytes::from_static(b"secure hello")))
        .unwrap())
}
