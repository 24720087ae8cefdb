//! AES-256-GCM with associated data that names where a ciphertext belongs.
//!
//! Ciphertext layout: `0x02 || nonce (12) || ciphertext || tag (16)` (`0x01`: the v1 associated
//! data, still opened). Nonces are random; every
//! data subject has its own key, so no key comes near the 2^32-message bound for random nonces.
//! Nonces come from `rand`'s thread-local CSPRNG (ChaCha12, seeded and periodically reseeded
//! from the operating system): drawing 12 bytes from it costs a few nanoseconds, where a call
//! into the system DRBG per field cost more than the encryption itself (docs/benchmarks.md).
//! Keys are still drawn from aws-lc-rs's generator.

use aws_lc_rs::aead::{AES_256_GCM, Aad as LcAad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;

const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// 32 bytes of secret key material, zeroed on drop, never printed.
pub struct KeyMaterial(Zeroizing<[u8; 32]>);

impl KeyMaterial {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Zeroizing::new(crate::random_bytes::<32>()?)))
    }

    pub fn zeroed() -> Self {
        Self(Zeroizing::new([0u8; 32]))
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self(Zeroizing::new(arr)))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn expose_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// Associated data: a canonical, length-prefixed encoding of where a ciphertext lives —
/// workspace, table, record and field. Decrypting with any other one fails. Kept inline (no
/// heap allocation) up to `AAD_INLINE` bytes, since one is built for every sealed field.
///
/// Format v2 (what [`AeadKey::seal`] writes): `"ilk" 0x02`, then each of the four parts as a
/// 16-bit big-endian length and its bytes — about 100 bytes for a message part, seven GHASH
/// blocks. The key is not named in it: every key is random and used for one subject (or one
/// workspace key version), so a ciphertext opened under any other key fails anyway.
/// Format v1 (opened for data written before v2) also carried a 16-byte domain tag, 32-bit
/// lengths and the key id; [`Aad`] keeps the key id to rebuild it.
#[derive(Clone)]
pub struct Aad {
    bytes: AadBytes,
    key_id: arrayvec::ArrayVec<u8, KEY_ID_MAX>,
    key_id_fits: bool,
}

// The inline variant is large on purpose: it keeps the per-field AAD off the heap.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum AadBytes {
    Inline(arrayvec::ArrayVec<u8, AAD_INLINE>),
    Heap(Vec<u8>),
}

const AAD_INLINE: usize = 192;
const KEY_ID_MAX: usize = 64;
/// Domain and version of the v2 encoding.
const AAD_TAG_V2: &[u8; 4] = b"ilk\x02";
/// The v1 domain tag with its length prefix.
const AAD_TAG_V1: &[u8; 16] = b"\x00\x00\x00\x0cinterlock/v1";

impl Aad {
    /// `key_id` names the key and its version; it is bound only in the legacy v1 format.
    pub fn new(workspace: &str, table: &str, record: &str, field: &str, key_id: &str) -> Self {
        let parts: [&str; 4] = [workspace, table, record, field];
        let fits = parts.iter().all(|p| p.len() <= u16::MAX as usize);
        let total: usize = AAD_TAG_V2.len() + parts.iter().map(|p| p.len() + 2).sum::<usize>();
        let bytes = if fits && total <= AAD_INLINE {
            let mut buf = arrayvec::ArrayVec::<u8, AAD_INLINE>::new();
            let _ = buf.try_extend_from_slice(AAD_TAG_V2);
            for p in parts {
                // Cannot fail: the total was checked above.
                let _ = buf.try_extend_from_slice(&(p.len() as u16).to_be_bytes());
                let _ = buf.try_extend_from_slice(p.as_bytes());
            }
            AadBytes::Inline(buf)
        } else {
            // Parts longer than 64 KiB get a 32-bit length, marked by a different tag byte.
            let mut buf = Vec::with_capacity(total + 8);
            buf.extend_from_slice(if fits { AAD_TAG_V2 } else { b"ilk\x82" });
            for p in parts {
                if fits {
                    buf.extend_from_slice(&(p.len() as u16).to_be_bytes());
                } else {
                    buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
                }
                buf.extend_from_slice(p.as_bytes());
            }
            AadBytes::Heap(buf)
        };
        let mut key = arrayvec::ArrayVec::<u8, KEY_ID_MAX>::new();
        let key_id_fits = key.try_extend_from_slice(key_id.as_bytes()).is_ok();
        Self {
            bytes,
            key_id: key,
            key_id_fits,
        }
    }

    /// The v2 encoding (what is authenticated for new ciphertexts).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.bytes {
            AadBytes::Inline(b) => b,
            AadBytes::Heap(v) => v,
        }
    }

    /// The v1 encoding, rebuilt from the parts, for ciphertexts written before v2.
    fn legacy_v1(&self) -> Option<Vec<u8>> {
        if !self.key_id_fits {
            return None;
        }
        let bytes = self.as_bytes();
        let wide = bytes.get(3) == Some(&0x82);
        let mut rest = bytes.get(4..)?;
        let mut out = Vec::with_capacity(bytes.len() + 64);
        out.extend_from_slice(AAD_TAG_V1);
        for _ in 0..4 {
            let (len, after) = if wide {
                let (l, r) = rest.split_at_checked(4)?;
                (u32::from_be_bytes(l.try_into().ok()?) as usize, r)
            } else {
                let (l, r) = rest.split_at_checked(2)?;
                (u16::from_be_bytes(l.try_into().ok()?) as usize, r)
            };
            let (part, r) = after.split_at_checked(len)?;
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(part);
            rest = r;
        }
        out.extend_from_slice(&(self.key_id.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.key_id);
        Some(out)
    }
}

impl PartialEq for Aad {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes() && self.key_id == other.key_id
    }
}

impl Eq for Aad {}

impl std::fmt::Debug for Aad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aad({} bytes)", self.as_bytes().len())
    }
}

/// An AES-256-GCM key ready for use. The expanded key lives inside aws-lc-rs, which cleanses
/// it when dropped.
pub struct AeadKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

impl AeadKey {
    pub fn new(material: &KeyMaterial) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, material.expose())
            .map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Encrypt `plaintext`, bound to `aad`.
    pub fn seal(&self, aad: &Aad, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce_bytes);
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.push(FORMAT_V2);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                LcAad::from(aad.as_bytes()),
                &mut out[1 + NONCE_LEN..],
            )
            .map_err(|_| CryptoError::Encrypt)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypt and authenticate. The plaintext is zeroed when the returned buffer drops.
    pub fn open(&self, aad: &Aad, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < OVERHEAD {
            return Err(CryptoError::Malformed);
        }
        let legacy;
        let aad_bytes: &[u8] = match sealed[0] {
            FORMAT_V2 => aad.as_bytes(),
            FORMAT_V1 => {
                legacy = aad.legacy_v1().ok_or(CryptoError::Decrypt)?;
                &legacy
            }
            _ => return Err(CryptoError::Malformed),
        };
        let nonce_bytes: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        let mut buf = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_bytes),
                LcAad::from(aad_bytes),
                &mut buf,
            )
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        buf[len..].zeroize();
        buf.truncate(len);
        Ok(buf)
    }

    /// Wrap (encrypt) another key's material under this key.
    pub fn wrap(&self, aad: &Aad, material: &KeyMaterial) -> Result<Vec<u8>, CryptoError> {
        self.seal(aad, material.expose())
    }

    /// Unwrap key material sealed by [`AeadKey::wrap`].
    pub fn unwrap_key(&self, aad: &Aad, wrapped: &[u8]) -> Result<KeyMaterial, CryptoError> {
        let bytes = self.open(aad, wrapped)?;
        KeyMaterial::from_slice(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AeadKey {
        AeadKey::new(&KeyMaterial::generate().expect("rng")).expect("key")
    }

    #[test]
    fn round_trip() {
        let k = key();
        let aad = Aad::new("ws", "contacts", "ct_1", "email", "sk_1");
        let ct = k.seal(&aad, b"hello").expect("seal");
        assert_eq!(ct.len(), 5 + OVERHEAD);
        assert_eq!(&**k.open(&aad, &ct).expect("open"), b"hello");
    }

    #[test]
    fn wrong_workspace_table_record_field_or_key_fails() {
        let k = key();
        let aad = Aad::new("ws", "contacts", "ct_1", "email", "sk_1");
        let ct = k.seal(&aad, b"hello").expect("seal");
        for other in [
            Aad::new("ws2", "contacts", "ct_1", "email", "sk_1"),
            Aad::new("ws", "contacts", "ct_2", "email", "sk_1"),
            Aad::new("ws", "contacts", "ct_1", "name", "sk_1"),
            Aad::new("ws", "leads", "ct_1", "email", "sk_1"),
        ] {
            assert!(matches!(k.open(&other, &ct), Err(CryptoError::Decrypt)));
        }
        assert!(matches!(key().open(&aad, &ct), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn tampering_and_truncation_fail() {
        let k = key();
        let aad = Aad::new("a", "b", "c", "d", "e");
        let mut ct = k.seal(&aad, b"hello").expect("seal");
        let last = ct.len() - 1;
        ct[last] ^= 1;
        assert!(k.open(&aad, &ct).is_err());
        assert!(matches!(
            k.open(&aad, &ct[..5]),
            Err(CryptoError::Malformed)
        ));
        assert!(matches!(k.open(&aad, &[]), Err(CryptoError::Malformed)));
    }

    #[test]
    fn long_aad_spills_to_the_heap_and_still_binds() {
        let k = key();
        let huge = "y".repeat(70_000);
        let wide = Aad::new(&huge, "t", "r", "f", "k");
        let ct = k.seal(&wide, b"v").expect("seal");
        assert!(k.open(&wide, &ct).is_ok());
        assert!(k.open(&Aad::new(&huge, "t", "r", "g", "k"), &ct).is_err());
        let long = "x".repeat(400);
        let aad = Aad::new(&long, "t", "r", "f", "k");
        assert!(aad.as_bytes().len() > AAD_INLINE);
        let ct = k.seal(&aad, b"v").expect("seal");
        assert!(k.open(&aad, &ct).is_ok());
        assert!(k.open(&Aad::new(&long, "t", "r", "g", "k"), &ct).is_err());
    }

    #[test]
    fn aad_v2_is_tagged_and_length_prefixed() {
        let aad = Aad::new("ws", "t", "r", "f", "k");
        assert_eq!(
            aad.as_bytes(),
            b"ilk\x02\x00\x02ws\x00\x01t\x00\x01r\x00\x01f"
        );
        let v1 = aad.legacy_v1().expect("rebuilds");
        assert_eq!(&v1[..16], AAD_TAG_V1);
        assert!(v1.ends_with(b"\x00\x00\x00\x01k"));
    }

    /// A value sealed in the v1 format (as stored before v2) still opens, bound as before.
    #[test]
    fn v1_ciphertexts_still_open() {
        let k = key();
        let aad = Aad::new("ws_us_1", "contacts", "ct_1", "email", "sk_1");
        let v1 = aad.legacy_v1().expect("v1");
        let nonce = [9u8; NONCE_LEN];
        let mut body = b"legacy".to_vec();
        let tag = k
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                LcAad::from(&v1[..]),
                &mut body,
            )
            .expect("seal");
        let mut sealed = vec![FORMAT_V1];
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        sealed.extend_from_slice(tag.as_ref());
        assert_eq!(&**k.open(&aad, &sealed).expect("opens"), b"legacy");
        // The key id was bound in v1.
        let other_key_id = Aad::new("ws_us_1", "contacts", "ct_1", "email", "sk_2");
        assert!(k.open(&other_key_id, &sealed).is_err());
        let mut unknown = sealed.clone();
        unknown[0] = 7;
        assert!(matches!(
            k.open(&aad, &unknown),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn aad_is_unambiguous() {
        assert_ne!(
            Aad::new("ab", "c", "", "", ""),
            Aad::new("a", "bc", "", "", "")
        );
    }

    #[test]
    fn nonces_differ() {
        let k = key();
        let aad = Aad::new("a", "b", "c", "d", "e");
        assert_ne!(
            k.seal(&aad, b"same").expect("seal"),
            k.seal(&aad, b"same").expect("seal")
        );
    }
}
