//! TLS policy: TLS 1.3 and 1.2 only; for 1.2 only ECDHE key exchange with AEAD suites. The
//! provider is aws-lc-rs. Without a configured certificate, a self-signed one for `localhost`
//! and `127.0.0.1` is made once under the data folder.
//!
//! Trusted staff devices (docs/staff-devices.md): the server asks every client for a
//! certificate but does not require one. A certificate that is presented must chain to the
//! device CA of a served region (rustls' `WebPkiClientVerifier`: signature, validity, the
//! `clientAuth` usage), or the handshake fails. [`DeviceAcceptor`] then puts the verified
//! certificate's fingerprint on every request of the connection as a [`ClientCertificate`];
//! whether that device is known and not revoked is decided per request (`crate::device`).

use std::fs;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no usable PEM {what}")]
    Pem { path: String, what: &'static str },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("client certificate verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Install aws-lc-rs as the process-wide rustls provider (idempotent).
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The provider restricted to the suites we allow.
pub fn provider() -> CryptoProvider {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites.retain(|s| {
        let name = format!("{:?}", s.suite());
        // TLS 1.3 suites are all AEAD with (EC)DHE. For 1.2 keep ECDHE + GCM/ChaCha20 only.
        name.starts_with("TLS13_")
            || (name.starts_with("TLS_ECDHE_")
                && (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305")))
    });
    p
}

/// Build the server configuration for a certificate chain and key.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The same, asking clients for a certificate issued by one of `device_cas` (DER): optional
/// (clients without one connect as before), but one that is presented and does not chain to
/// a device CA — or is expired, or lacks the `clientAuth` usage — fails the handshake.
pub fn server_config_with_devices(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    device_cas: &[CertificateDer<'static>],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(provider());
    let mut roots = RootCertStore::empty();
    for ca in device_cas {
        roots.add(ca.clone())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Where the certificate and key come from.
#[derive(Debug, Clone)]
pub struct CertSource {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Load the configured certificate, or make (once) a self-signed one under `tls_dir`.
pub fn load_or_generate(
    configured: Option<&CertSource>,
    tls_dir: &Path,
) -> Result<(Arc<ServerConfig>, CertSource), TlsError> {
    let (chain, key, source) = load_cert(configured, tls_dir)?;
    Ok((server_config(chain, key)?, source))
}

/// [`load_or_generate`] with client certificates from the staff device CAs
/// ([`server_config_with_devices`]).
pub fn load_or_generate_with_devices(
    configured: Option<&CertSource>,
    tls_dir: &Path,
    device_cas: &[CertificateDer<'static>],
) -> Result<(Arc<ServerConfig>, CertSource), TlsError> {
    let (chain, key, source) = load_cert(configured, tls_dir)?;
    Ok((server_config_with_devices(chain, key, device_cas)?, source))
}

type LoadedCert = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    CertSource,
);

fn load_cert(configured: Option<&CertSource>, tls_dir: &Path) -> Result<LoadedCert, TlsError> {
    let source = match configured {
        Some(c) => c.clone(),
        None => {
            let src = CertSource {
                cert: tls_dir.join("cert.pem"),
                key: tls_dir.join("key.pem"),
            };
            if !src.cert.exists() || !src.key.exists() {
                generate_self_signed(&src)?;
            }
            src
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&source.cert)
        .map_err(|_| TlsError::Pem {
            path: source.cert.display().to_string(),
            what: "certificate",
        })?
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem {
            path: source.cert.display().to_string(),
            what: "certificate",
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: source.cert.display().to_string(),
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_file(&source.key).map_err(|_| TlsError::Pem {
        path: source.key.display().to_string(),
        what: "private key",
    })?;
    Ok((chain, key, source))
}

fn generate_self_signed(src: &CertSource) -> Result<(), TlsError> {
    let dir = src.cert.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let key_pem = certified.signing_key.serialize_pem();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&src.key)
        .map_err(io(&src.key))?;
    f.write_all(key_pem.as_bytes()).map_err(io(&src.key))?;
    f.sync_all().map_err(io(&src.key))?;
    fs::write(&src.cert, certified.cert.pem()).map_err(io(&src.cert))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Client certificates on requests

/// The client certificate a connection presented and rustls verified against a device CA,
/// as a request extension. Absent when the client sent none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Lower-case hex SHA-256 of the certificate's DER ([`interlock_crypto::device_ca::fingerprint`]).
    pub fingerprint: String,
}

/// axum-server's rustls acceptor, plus: after the handshake, the verified client certificate
/// (if any) is read once and added to every request of the connection.
#[derive(Clone)]
pub struct DeviceAcceptor {
    inner: RustlsAcceptor,
}

impl std::fmt::Debug for DeviceAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAcceptor").finish_non_exhaustive()
    }
}

impl DeviceAcceptor {
    pub fn new(config: RustlsConfig) -> Self {
        Self {
            inner: RustlsAcceptor::new(config),
        }
    }
}

type AcceptFuture<T, S> =
    Pin<Box<dyn Future<Output = std::io::Result<(T, WithClientCertificate<S>)>> + Send>>;

impl<I, S> Accept<I, S> for DeviceAcceptor
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    // tokio-rustls' server stream, named through the wrapped acceptor (tokio-rustls is not a
    // direct dependency).
    type Stream = <RustlsAcceptor as Accept<I, S>>::Stream;
    type Service = WithClientCertificate<S>;
    type Future = AcceptFuture<Self::Stream, S>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let handshake = self.inner.accept(stream, service);
        Box::pin(async move {
            let (tls, service) = handshake.await?;
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| ClientCertificate {
                    fingerprint: interlock_crypto::device_ca::fingerprint(leaf),
                });
            Ok((
                tls,
                WithClientCertificate {
                    inner: service,
                    certificate,
                },
            ))
        })
    }
}

/// A connection's service with its client certificate: inserts the [`ClientCertificate`]
/// extension (when there is one) into each request before passing it on.
#[derive(Debug, Clone)]
pub struct WithClientCertificate<S> {
    inner: S,
    certificate: Option<ClientCertificate>,
}

impl<S, B> tower::Service<axum::http::Request<B>> for WithClientCertificate<S>
where
    S: tower::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        // Set (or replace) from the connection, never from anything the client sent.
        match &self.certificate {
            Some(c) => {
                req.extensions_mut().insert(c.clone());
            }
            None => {
                req.extensions_mut().remove::<ClientCertificate>();
            }
        }
        self.inner.call(req)
    }
}
