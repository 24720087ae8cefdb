//! Blind indexes: HMAC-SHA-256 of a normalised value under a per-workspace key, so exact-match
//! lookups (email, external id) work without storing the value in clear. The field name is
//! mixed in so equal values in different fields do not share an index entry.

use aws_lc_rs::hmac;

use crate::KeyMaterial;

pub struct BlindIndexKey(hmac::Key);

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(<redacted>)")
    }
}

impl BlindIndexKey {
    pub fn new(material: &KeyMaterial) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, material.expose()))
    }

    /// The index entry for `value` in `field`. `value` must already be normalised.
    pub fn index(&self, field: &str, value: &str) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&(field.len() as u32).to_be_bytes());
        ctx.update(field.as_bytes());
        ctx.update(value.as_bytes());
        ctx.sign().as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_key_and_field() {
        let m = KeyMaterial::generate().expect("rng");
        let k = BlindIndexKey::new(&m);
        assert_eq!(k.index("email", "a@b.c"), k.index("email", "a@b.c"));
        assert_ne!(k.index("email", "a@b.c"), k.index("external_id", "a@b.c"));
        let other = BlindIndexKey::new(&KeyMaterial::generate().expect("rng"));
        assert_ne!(k.index("email", "a@b.c"), other.index("email", "a@b.c"));
    }
}
