//! TLS policy: TLS 1.3 and 1.2 only; for 1.2 only ECDHE key exchange with AEAD suites. The
//! provider is aws-lc-rs. Without a configured certificate, a self-signed one for `localhost`
//! and `127.0.0.1` is made once under the data folder.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
    Ok((server_config(chain, key)?, source))
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
