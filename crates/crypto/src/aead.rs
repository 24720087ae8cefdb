//! AES-256-GCM with associated data that names where a ciphertext belongs.
//!
//! Ciphertext layout: `0x01 || nonce (12) || ciphertext || tag (16)`. Nonces are random; every
//! data subject has its own key, so no key comes near the 2^32-message bound for random nonces.
//! Nonces come from `rand`'s thread-local CSPRNG (ChaCha12, seeded and periodically reseeded
//! from the operating system): drawing 12 bytes from it costs a few nanoseconds, where a call
//! into the system DRBG per field cost more than the encryption itself (docs/benchmarks.md).
//! Keys are still drawn from aws-lc-rs's generator.

use aws_lc_rs::aead::{AES_256_GCM, Aad as LcAad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;

const FORMAT_V1: u8 = 1;
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

/// Associated data: a canonical, length-prefixed encoding of where a ciphertext lives. Decrypting
/// with any other workspace, table, record, field or key id fails. Kept inline (no heap
/// allocation) up to `AAD_INLINE` bytes, since one is built for every sealed field.
#[derive(Clone)]
pub struct Aad(AadBytes);

// The inline variant is large on purpose: it keeps the per-field AAD off the heap.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum AadBytes {
    Inline(arrayvec::ArrayVec<u8, AAD_INLINE>),
    Heap(Vec<u8>),
}

const AAD_INLINE: usize = 256;
/// The domain tag with its length prefix, as the encoding below would write it; a constant so
/// it is one fixed-size copy.
const AAD_TAG: &[u8; 16] = b"\x00\x00\x00\x0cinterlock/v1";

impl Aad {
    /// `key_id` names the key and its version.
    pub fn new(workspace: &str, table: &str, record: &str, field: &str, key_id: &str) -> Self {
        let parts: [&str; 5] = [workspace, table, record, field, key_id];
        let total: usize = AAD_TAG.len() + parts.iter().map(|p| p.len() + 4).sum::<usize>();
        // Lengths are prefixed so ("ab","c") and ("a","bc") encode differently.
        if total <= AAD_INLINE {
            let mut buf = arrayvec::ArrayVec::<u8, AAD_INLINE>::new();
            let _ = buf.try_extend_from_slice(AAD_TAG);
            for p in parts {
                // Cannot fail: the total was checked above.
                let _ = buf.try_extend_from_slice(&(p.len() as u32).to_be_bytes());
                let _ = buf.try_extend_from_slice(p.as_bytes());
            }
            Self(AadBytes::Inline(buf))
        } else {
            let mut buf = Vec::with_capacity(total);
            buf.extend_from_slice(AAD_TAG);
            for p in parts {
                buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
                buf.extend_from_slice(p.as_bytes());
            }
            Self(AadBytes::Heap(buf))
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            AadBytes::Inline(b) => b,
            AadBytes::Heap(v) => v,
        }
    }
}

impl PartialEq for Aad {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
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
        out.push(FORMAT_V1);
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
        if sealed.len() < OVERHEAD || sealed[0] != FORMAT_V1 {
            return Err(CryptoError::Malformed);
        }
        let nonce_bytes: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        let mut buf = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_bytes),
                LcAad::from(aad.as_bytes()),
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
    fn wrong_aad_record_field_or_key_fails() {
        let k = key();
        let aad = Aad::new("ws", "contacts", "ct_1", "email", "sk_1");
        let ct = k.seal(&aad, b"hello").expect("seal");
        for other in [
            Aad::new("ws2", "contacts", "ct_1", "email", "sk_1"),
            Aad::new("ws", "contacts", "ct_2", "email", "sk_1"),
            Aad::new("ws", "contacts", "ct_1", "name", "sk_1"),
            Aad::new("ws", "contacts", "ct_1", "email", "sk_2"),
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
        let long = "x".repeat(400);
        let aad = Aad::new(&long, "t", "r", "f", "k");
        assert!(aad.as_bytes().len() > AAD_INLINE);
        let ct = k.seal(&aad, b"v").expect("seal");
        assert!(k.open(&aad, &ct).is_ok());
        assert!(k.open(&Aad::new(&long, "t", "r", "g", "k"), &ct).is_err());
    }

    #[test]
    fn aad_tag_is_the_length_prefixed_domain_string() {
        let aad = Aad::new("", "", "", "", "");
        assert_eq!(&aad.as_bytes()[..4], &12u32.to_be_bytes());
        assert_eq!(&aad.as_bytes()[4..16], b"interlock/v1");
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
