//! Errors of the crypto layer. They say what failed, never with key or plaintext bytes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CryptoError {
    #[error("ciphertext did not authenticate (wrong key, record or field, or tampered)")]
    Decrypt,
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("encryption failed")]
    Encrypt,
    #[error("key derivation failed")]
    Kdf,
    #[error("the system random generator failed")]
    Random,
    #[error("invalid key material")]
    InvalidKey,
    #[error("a TOTP issuer or account name is empty or contains ':'")]
    TotpLabel,
    #[error("master key version {version} of region {region} is not in the key directory")]
    UnknownMasterKey { region: String, version: i64 },
    #[error("key file {path} is readable by others (mode {mode:o}); it must be 0600")]
    KeyFilePermissions { path: String, mode: u32 },
    #[error("key directory error at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
