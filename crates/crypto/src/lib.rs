//! Interlock's key hierarchy and the only place that touches cryptographic primitives.
//!
//! Region master key (a file outside the database) → workspace key (random, wrapped by the
//! master key) → subject key (random, one per data subject, wrapped by the workspace key) →
//! field ciphertexts (AES-256-GCM, associated data binding workspace, table, record and field).
//! Every primitive comes from aws-lc-rs; nothing here is hand-rolled.

pub mod aead;
pub mod audit;
pub mod blind;
pub mod device_ca;
pub mod error;
pub mod identity;
pub mod keyring;
pub mod password;
pub mod signed;
pub mod token;
pub mod totp;
pub mod webhook;

pub use aead::{Aad, AeadKey, KeyMaterial};
pub use audit::{
    AuditError, AuditPublicKey, AuditSigningKey, Checkpoint, CheckpointKind, ExportFailure,
    ExportSummary, SignedCheckpoint, verify_export,
};
pub use blind::BlindIndexKey;
pub use device_ca::{DeviceCa, DeviceCaError, IssuedDevice};
pub use error::CryptoError;
pub use identity::{JwtClaims, JwtError, JwtPolicy, SecretValue, VerificationSecret};
pub use keyring::{Keyring, MasterKey};
pub use signed::{SignedDocument, SignedDocumentError};
pub use token::{ApiToken, OperatorToken, RegionToken, TokenHash, TokenKind};
pub use webhook::WebhookSecret;

use aws_lc_rs::hkdf;

/// The keys a workspace derives from its one random workspace key: an AEAD key that wraps
/// subject keys and encrypts workspace-level fields, and a blind-index key.
#[derive(Debug)]
pub struct WorkspaceKeys {
    pub version: i64,
    pub aead: AeadKey,
    pub blind: BlindIndexKey,
}

impl WorkspaceKeys {
    /// Derive the workspace's keys with HKDF-SHA-256, one `info` label per purpose, so a key is
    /// never used for two jobs.
    pub fn derive(material: &KeyMaterial, version: i64) -> Result<Self, CryptoError> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"interlock/workspace-key/v1");
        let prk = salt.extract(material.expose());
        let mut aead_bytes = KeyMaterial::zeroed();
        let mut blind_bytes = KeyMaterial::zeroed();
        prk.expand(&[b"aead"], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(aead_bytes.expose_mut()))
            .map_err(|_| CryptoError::Kdf)?;
        prk.expand(&[b"blind-index"], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(blind_bytes.expose_mut()))
            .map_err(|_| CryptoError::Kdf)?;
        Ok(Self {
            version,
            aead: AeadKey::new(&aead_bytes)?,
            blind: BlindIndexKey::new(&blind_bytes),
        })
    }
}

/// Fill a buffer from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// SHA-256 of a byte string.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
