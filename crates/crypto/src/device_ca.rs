//! The region's staff device CA: the certificate authority whose client certificates mark the
//! operator's managed devices (docs/staff-devices.md).
//!
//! Layout: `<key_dir>/<region>/device-ca-key.pem` (PKCS#8 ECDSA P-256, mode 0600) and
//! `device-ca-cert.pem` (the self-signed CA certificate, mode 0600) in the region's 0700 key
//! folder, beside the master keys. A key file that group or others can read is refused. Both
//! files are made on first use; processes racing to make them end up with the ones linked into
//! place first.
//!
//! Certificates come from rcgen (aws-lc-rs): the CA is `CA:TRUE, pathlen:0` with key usages
//! `keyCertSign, cRLSign`; a device certificate names the staff member (CN) and the device
//! (OU), carries the `clientAuth` extended key usage and a random 128-bit serial. The TLS
//! layer verifies them with rustls' `WebPkiClientVerifier`; this module only issues. A
//! device's identity at the request layer is the SHA-256 of its certificate's DER
//! ([`fingerprint`]).

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use interlock_domain::Region;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// The CA certificate's file name in the region's key folder.
pub const CA_CERT_FILE: &str = "device-ca-cert.pem";
/// The CA key's file name in the region's key folder.
pub const CA_KEY_FILE: &str = "device-ca-key.pem";
/// How long a device CA certificate is valid.
pub const CA_VALID_DAYS: i64 = 3650;
/// Longest validity of a device certificate: a device is re-issued at least yearly, so a lost
/// device's certificate dies on its own even if nobody revokes it.
pub const MAX_DEVICE_DAYS: u32 = 397;
/// Longest device name, in characters.
pub const MAX_DEVICE_NAME: usize = 64;
/// Longest staff id, in bytes.
pub const MAX_STAFF_ID: usize = 64;
/// A CA key PEM is about 250 bytes; anything far larger is not one of ours.
const MAX_KEY_FILE: u64 = 8 * 1024;
/// The same for the CA certificate (about 600 bytes).
const MAX_CERT_FILE: u64 = 16 * 1024;
/// Issued certificates start this much in the past, for clocks slightly behind ours.
const BACKDATE: Duration = Duration::minutes(5);

/// What can go wrong with the device CA. Messages name files, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum DeviceCaError {
    #[error("device CA file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("device CA key {path} is readable by others (mode {mode:o}); it must be 0600")]
    KeyFilePermissions { path: String, mode: u32 },
    #[error("{path} is not a usable device CA {what}")]
    Malformed { path: String, what: &'static str },
    #[error("{cert} is not the certificate of the key in {key}")]
    Mismatch { cert: String, key: String },
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the system random generator failed")]
    Random,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeviceCaError + '_ {
    move |source| DeviceCaError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Lower-case hex SHA-256 of a certificate's DER: how a device is known to the request layer.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(crate::sha256(der))
}

/// A device certificate just issued: what the staff member's device installs, and what the
/// region's store records (everything but the key).
pub struct IssuedDevice {
    /// The certificate's serial number, lower-case hex of 16 random bytes.
    pub serial: String,
    /// [`fingerprint`] of the certificate.
    pub fingerprint: String,
    /// The staff id the certificate names (its CN).
    pub staff_id: String,
    /// The device name (its OU).
    pub name: String,
    pub cert_pem: String,
    /// The device's private key (PKCS#8 PEM). Shown once, never stored by the server.
    pub key_pem: Zeroizing<String>,
    /// Milliseconds since the Unix epoch; `not_before` is a few minutes earlier.
    pub issued_at_ms: i64,
    /// The certificate's `notAfter`, in milliseconds since the Unix epoch (whole seconds).
    pub not_after_ms: i64,
}

impl fmt::Debug for IssuedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedDevice")
            .field("serial", &self.serial)
            .field("fingerprint", &self.fingerprint)
            .field("not_after_ms", &self.not_after_ms)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One region's device CA, loaded from (or made in) its key folder.
pub struct DeviceCa {
    region: Region,
    key: KeyPair,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCa")
            .field("region", &self.region)
            .field("fingerprint", &fingerprint(&self.cert_der))
            .field("key", &"<redacted>")
            .finish()
    }
}

impl DeviceCa {
    /// `<key_dir>/<region>/device-ca-cert.pem`.
    pub fn cert_path(key_dir: &Path, region: Region) -> PathBuf {
        key_dir.join(region.as_str()).join(CA_CERT_FILE)
    }

    /// `<key_dir>/<region>/device-ca-key.pem`.
    pub fn key_path(key_dir: &Path, region: Region) -> PathBuf {
        key_dir.join(region.as_str()).join(CA_KEY_FILE)
    }

    /// Load the region's device CA, making its key and certificate when missing (folder 0700,
    /// files 0600). A key file that group or others can read is refused, and so is a
    /// certificate that is not the key's.
    pub fn open_or_create(key_dir: &Path, region: Region) -> Result<Self, DeviceCaError> {
        let dir = key_dir.join(region.as_str());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        let key_path = dir.join(CA_KEY_FILE);
        let key = match load_key(&key_path) {
            Ok(key) => key,
            Err(DeviceCaError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let fresh = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
                let pem = Zeroizing::new(fresh.serialize_pem());
                if publish(&dir, CA_KEY_FILE, pem.as_bytes())? {
                    fresh
                } else {
                    load_key(&key_path)?
                }
            }
            Err(e) => return Err(e),
        };
        let cert_path = dir.join(CA_CERT_FILE);
        let cert_pem = match read_limited(&cert_path, MAX_CERT_FILE) {
            Ok(pem) => pem,
            Err(DeviceCaError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                // The key is there but not its certificate (first start, or a process stopped
                // between the two files): certify the key. Whichever certificate is linked
                // first wins; all are for the same key and name, so any of them verifies what
                // the others' issuer would have signed.
                let pem = ca_params(region)?.self_signed(&key)?.pem();
                if publish(&dir, CA_CERT_FILE, pem.as_bytes())? {
                    pem
                } else {
                    read_limited(&cert_path, MAX_CERT_FILE)?
                }
            }
            Err(e) => return Err(e),
        };
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| {
            DeviceCaError::Malformed {
                path: cert_path.display().to_string(),
                what: "certificate",
            }
        })?;
        // The certificate carries its subject's SubjectPublicKeyInfo verbatim, so the key's own
        // SPKI appearing in it is what "this certificate is this key's" means here (the
        // signature and the chain are checked by rustls when devices connect).
        let spki = key.subject_public_key_info();
        if !cert_der.windows(spki.len()).any(|w| w == spki.as_slice()) {
            return Err(DeviceCaError::Mismatch {
                cert: cert_path.display().to_string(),
                key: key_path.display().to_string(),
            });
        }
        // Parsing it as an issuer now means a damaged certificate fails at start-up, not at
        // the first issue.
        Issuer::from_ca_cert_der(&cert_der, &key).map_err(|_| DeviceCaError::Malformed {
            path: cert_path.display().to_string(),
            what: "certificate",
        })?;
        Ok(Self {
            region,
            key,
            cert_der,
            cert_pem,
        })
    }

    pub fn region(&self) -> Region {
        self.region
    }

    /// The CA certificate (DER), for the TLS verifier's roots.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate (PEM), for devices or tools that want to check the chain.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issue a client certificate for `staff_id`'s device `device_name`, valid `valid_days`
    /// days (1 to [`MAX_DEVICE_DAYS`]), with a fresh P-256 key. Nothing is stored: the caller
    /// records the device (serial, fingerprint, expiry) and hands over the key once.
    pub fn issue(
        &self,
        staff_id: &str,
        device_name: &str,
        valid_days: u32,
    ) -> Result<IssuedDevice, DeviceCaError> {
        check_staff_id(staff_id)?;
        check_device_name(device_name)?;
        if !(1..=MAX_DEVICE_DAYS).contains(&valid_days) {
            return Err(DeviceCaError::Invalid {
                field: "valid_days",
                reason: "a device certificate is valid for 1 to 397 days",
            });
        }
        let serial_bytes: [u8; 16] = crate::random_bytes().map_err(|_| DeviceCaError::Random)?;
        let now = OffsetDateTime::now_utc();
        // X.509 times are whole seconds: keep the recorded expiry equal to the certificate's.
        let not_after = OffsetDateTime::from_unix_timestamp(
            now.unix_timestamp() + i64::from(valid_days) * 86_400,
        )
        .map_err(|_| DeviceCaError::Invalid {
            field: "valid_days",
            reason: "out of range",
        })?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Interlock");
        dn.push(DnType::OrganizationalUnitName, device_name);
        dn.push(DnType::CommonName, staff_id);
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&serial_bytes));
        params.not_before = now - BACKDATE;
        params.not_after = not_after;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;

        let device_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key)?;
        let cert = params.signed_by(&device_key, &issuer)?;
        Ok(IssuedDevice {
            serial: hex::encode(serial_bytes),
            fingerprint: fingerprint(cert.der()),
            staff_id: staff_id.to_owned(),
            name: device_name.to_owned(),
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(device_key.serialize_pem()),
            issued_at_ms: i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
            not_after_ms: not_after.unix_timestamp() * 1000,
        })
    }
}

/// A staff id as the CA accepts it: 1 to 64 bytes of lower-case letters, digits and `_`.
fn check_staff_id(id: &str) -> Result<(), DeviceCaError> {
    let ok = (1..=MAX_STAFF_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DeviceCaError::Invalid {
            field: "staff_id",
            reason: "a staff id is 1 to 64 lower-case letters, digits or '_'",
        })
    }
}

/// A device name: 1 to 64 characters, no control characters, no surrounding spaces.
fn check_device_name(name: &str) -> Result<(), DeviceCaError> {
    let n = name.chars().count();
    let ok = (1..=MAX_DEVICE_NAME).contains(&n)
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    if ok {
        Ok(())
    } else {
        Err(DeviceCaError::Invalid {
            field: "name",
            reason: "a device name is 1 to 64 characters, without control characters or surrounding spaces",
        })
    }
}

/// The CA certificate's parameters for a region.
fn ca_params(region: Region) -> Result<CertificateParams, DeviceCaError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Interlock");
    dn.push(
        DnType::CommonName,
        format!("Interlock {} staff device CA", region.as_str()),
    );
    params.distinguished_name = dn;
    let serial: [u8; 16] = crate::random_bytes().map_err(|_| DeviceCaError::Random)?;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_VALID_DAYS);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// Read a small file whole, refusing anything larger than `max` bytes.
fn read_limited(path: &Path, max: u64) -> Result<String, DeviceCaError> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    if len > max {
        return Err(DeviceCaError::Malformed {
            path: path.display().to_string(),
            what: "file (too large)",
        });
    }
    let mut text = String::with_capacity(len as usize + 1);
    f.read_to_string(&mut text).map_err(io_err(path))?;
    Ok(text)
}

/// Load the CA key, refusing a file that group or others can read.
fn load_key(path: &Path) -> Result<KeyPair, DeviceCaError> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let meta = f.metadata().map_err(io_err(path))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(DeviceCaError::KeyFilePermissions {
            path: path.display().to_string(),
            mode: mode & 0o777,
        });
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(DeviceCaError::Malformed {
            path: path.display().to_string(),
            what: "key (too large)",
        });
    }
    // Sized up front so the buffer never grows and leaves an unzeroized copy behind.
    let mut pem = Zeroizing::new(String::with_capacity(meta.len() as usize + 1));
    f.read_to_string(&mut pem).map_err(io_err(path))?;
    KeyPair::from_pem_and_sign_algo(&pem, &PKCS_ECDSA_P256_SHA256).map_err(|_| {
        DeviceCaError::Malformed {
            path: path.display().to_string(),
            what: "key (expected a PKCS#8 ECDSA P-256 PEM)",
        }
    })
}

/// Write `bytes` to `dir/name` (mode 0600) unless it exists: written to a temporary file,
/// synced, then hard-linked into place, which fails if another process published first.
/// Returns whether this call published the file.
fn publish(dir: &Path, name: &str, bytes: &[u8]) -> Result<bool, DeviceCaError> {
    let nonce: [u8; 8] = crate::random_bytes().map_err(|_| DeviceCaError::Random)?;
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        hex::encode(nonce)
    ));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&tmp)(source));
    }
    let path = dir.join(name);
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(dir))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err(&path)(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_with_private_modes_and_reloads_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeviceCa::open_or_create(dir.path(), Region::Eu).unwrap();
        let folder = dir.path().join("eu");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700);
        assert_eq!(mode(&folder.join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&folder.join(CA_CERT_FILE)), 0o600);
        let again = DeviceCa::open_or_create(dir.path(), Region::Eu).unwrap();
        assert_eq!(ca.cert_der(), again.cert_der());
        // No temporary file is left behind.
        let mut names: Vec<String> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec![CA_CERT_FILE.to_owned(), CA_KEY_FILE.to_owned()]);
        assert!(format!("{ca:?}").contains("<redacted>"));
    }

    #[test]
    fn refuses_a_key_others_can_read_and_a_foreign_certificate() {
        let dir = tempfile::tempdir().unwrap();
        DeviceCa::open_or_create(dir.path(), Region::Us).unwrap();
        let key = DeviceCa::key_path(dir.path(), Region::Us);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            DeviceCa::open_or_create(dir.path(), Region::Us),
            Err(DeviceCaError::KeyFilePermissions { .. })
        ));
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        // Another region's certificate is not this key's.
        let other = DeviceCa::open_or_create(dir.path(), Region::Au).unwrap();
        fs::write(
            DeviceCa::cert_path(dir.path(), Region::Us),
            other.cert_pem(),
        )
        .unwrap();
        assert!(matches!(
            DeviceCa::open_or_create(dir.path(), Region::Us),
            Err(DeviceCaError::Mismatch { .. })
        ));
    }

    #[test]
    fn a_missing_certificate_is_made_again_for_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = DeviceCa::open_or_create(dir.path(), Region::Eu).unwrap();
        fs::remove_file(DeviceCa::cert_path(dir.path(), Region::Eu)).unwrap();
        let second = DeviceCa::open_or_create(dir.path(), Region::Eu).unwrap();
        assert_ne!(first.cert_der(), second.cert_der());
        let spki = first.key.subject_public_key_info();
        assert!(second.cert_der().windows(spki.len()).any(|w| w == spki));
    }

    #[test]
    fn issues_distinct_client_certificates_and_checks_input() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeviceCa::open_or_create(dir.path(), Region::Eu).unwrap();
        let a = ca.issue("sf_0123abcd", "alice-laptop", 90).unwrap();
        let b = ca.issue("sf_0123abcd", "alice-laptop", 90).unwrap();
        assert_eq!(a.serial.len(), 32);
        assert_ne!(a.serial, b.serial);
        assert_ne!(a.fingerprint, b.fingerprint);
        let der = CertificateDer::from_pem_slice(a.cert_pem.as_bytes()).unwrap();
        assert_eq!(a.fingerprint, fingerprint(&der));
        assert_eq!(a.fingerprint.len(), 64);
        assert!(a.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let days = (a.not_after_ms - a.issued_at_ms) / 86_400_000;
        assert!((89..=90).contains(&days), "{days}");
        assert!(!format!("{a:?}").contains("PRIVATE"));
        for (staff, name, valid) in [
            ("", "x", 1),
            ("SF_upper", "x", 1),
            ("sf_1", "", 1),
            ("sf_1", " padded", 1),
            ("sf_1", "line\nbreak", 1),
            ("sf_1", "x", 0),
            ("sf_1", "x", MAX_DEVICE_DAYS + 1),
        ] {
            assert!(
                matches!(
                    ca.issue(staff, name, valid),
                    Err(DeviceCaError::Invalid { .. })
                ),
                "{staff:?} {name:?} {valid}"
            );
        }
    }
}
