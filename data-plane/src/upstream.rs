//! Upstream HTTP clients, one per TLS profile. hyper's pool is keyed by scheme and authority only,
//! so integrations that trust different roots must not share a client. Clients outlive routing
//! table rebuilds, so their pooled keep-alive connections survive config changes. Each profile
//! has a second, HTTP/1.1-only client for protocol upgrades (WebSocket): an upgrade cannot ride
//! an HTTP/2 connection that ALPN might pick. Name resolution goes through
//! [`GuardedResolver`], which drops denied addresses (RELIABILITY S7).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use std::{io, vec};

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use shared::address::DenyList;
use shared::model::{TlsSettings, parse_ca_certs};

use crate::proxy::body::Relay;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector<GuardedResolver>>, Relay>;

/// The clients of one TLS profile.
#[derive(Debug, Clone)]
pub struct ProfileClients {
    /// HTTP/1.1 or HTTP/2, as ALPN decides.
    pub any: UpstreamClient,
    /// HTTP/1.1 only, for upgrades.
    pub http1: UpstreamClient,
    profile: TlsProfile,
}

/// Clients of the same profile are interchangeable (two tables compare equal with them).
impl PartialEq for ProfileClients {
    fn eq(&self, other: &ProfileClients) -> bool {
        self.profile == other.profile
    }
}

/// What makes two integrations' TLS needs different.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TlsProfile {
    verify: bool,
    ca_certs: Option<String>,
}

/// Builds clients on demand and keeps them across table rebuilds.
pub struct Clients {
    connect_timeout: Duration,
    deny: Arc<DenyList>,
    by_profile: HashMap<TlsProfile, ProfileClients>,
}

impl Clients {
    pub fn new(connect_timeout: Duration, deny: DenyList) -> Clients {
        Clients {
            connect_timeout,
            deny: Arc::new(deny),
            by_profile: HashMap::new(),
        }
    }

    /// Whether a base URL host that is an IP literal is denied: literals never reach the
    /// resolver, so routes to them are refused before any connection.
    pub fn denies_literal(&self, host: &str) -> bool {
        host.parse::<IpAddr>()
            .is_ok_and(|ip| self.deny.contains(ip))
    }

    /// The client for these settings, built the first time they are seen.
    pub fn for_tls(&mut self, tls: &TlsSettings) -> Result<ProfileClients, String> {
        let profile = TlsProfile {
            verify: tls.reject_unauthorized,
            ca_certs: tls.ca_certs.clone(),
        };
        if let Some(client) = self.by_profile.get(&profile) {
            return Ok(client.clone());
        }
        let client = self.build(&profile)?;
        self.by_profile.insert(profile, client.clone());
        Ok(client)
    }

    /// Forgets clients no integration of the new table uses.
    pub fn retain_used(&mut self, used: &[TlsSettings]) {
        self.by_profile.retain(|p, _| {
            used.iter()
                .any(|t| t.reject_unauthorized == p.verify && t.ca_certs == p.ca_certs)
        });
    }

    fn build(&self, profile: &TlsProfile) -> Result<ProfileClients, String> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = &profile.ca_certs {
            for cert in parse_ca_certs(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.ca_certs: unusable certificate: {e}"))?;
            }
        }
        let mut tls = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !profile.verify {
            tls.dangerous()
                .set_certificate_verifier(Arc::new(NoVerification(
                    rustls::crypto::ring::default_provider(),
                )));
        }
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            inner: GaiResolver::new(),
            deny: Arc::clone(&self.deny),
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        let builder = || hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls.clone());
        let any = builder()
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http.clone());
        let http1 = builder()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = |connector| {
            Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(connector)
        };
        Ok(ProfileClients {
            any: client(any),
            http1: client(http1),
            profile: profile.clone(),
        })
    }
}

/// A resolved upstream address is in a denied range.
#[derive(Debug, thiserror::Error)]
#[error("{0} is in a denied address range")]
pub struct DeniedAddress(pub IpAddr);

/// The system resolver minus denied addresses; a name left with none fails to resolve.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    inner: GaiResolver,
    deny: Arc<DenyList>,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolving = self.inner.call(name);
        let deny = Arc::clone(&self.deny);
        Box::pin(async move {
            let mut denied = None;
            let allowed: Vec<SocketAddr> = resolving
                .await?
                .filter(|addr| {
                    let refused = deny.contains(addr.ip());
                    if refused {
                        denied = Some(addr.ip());
                    }
                    !refused
                })
                .collect();
            match denied {
                Some(ip) if allowed.is_empty() => Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    DeniedAddress(ip),
                )),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

/// `reject_unauthorized: false`: accept any certificate, for that integration only. Signatures
/// are still checked so the handshake itself stays sound.
#[derive(Debug)]
struct NoVerification(rustls::crypto::CryptoProvider);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
