//! Webhook signing secrets and signatures, as the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>) defines them.
//!
//! A secret is `whsec_` + the standard base64 of 32 random bytes; the HMAC key is those 32
//! bytes (the base64 decoded). A request carries `webhook-id`, `webhook-timestamp` (Unix
//! seconds) and `webhook-signature: v1,<base64 of HMAC-SHA-256(key, id "." timestamp "."
//! body)>`. HMAC comes from aws-lc-rs; [`WebhookSecret::verify`] compares in constant time
//! (`hmac::verify`).

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::CryptoError;

const PREFIX: &str = "whsec_";
/// Bytes of a secret this module makes.
const KEY_LEN: usize = 32;
/// Shortest and longest key `parse` takes (the specification's examples use 24 bytes).
const MIN_KEY: usize = 24;
const MAX_KEY: usize = 64;

/// A webhook subscription's signing secret. Shown once when the subscription is made and
/// otherwise kept sealed; zeroized on drop, never printed.
pub struct WebhookSecret {
    text: Zeroizing<String>,
    key: hmac::Key,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// A fresh secret (256 random bits).
    pub fn generate() -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(crate::random_bytes::<KEY_LEN>()?);
        Ok(Self::from_key(bytes.as_slice()))
    }

    fn from_key(bytes: &[u8]) -> Self {
        Self {
            text: Zeroizing::new(format!("{PREFIX}{}", STANDARD.encode(bytes))),
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// A secret read back (after decryption) or held by a receiver: `whsec_` + standard
    /// base64 of 24 to 64 bytes (ours are 32).
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let b64 = text.strip_prefix(PREFIX).ok_or(CryptoError::Malformed)?;
        let raw = Zeroizing::new(STANDARD.decode(b64).map_err(|_| CryptoError::Malformed)?);
        if !(MIN_KEY..=MAX_KEY).contains(&raw.len()) {
            return Err(CryptoError::Malformed);
        }
        Ok(Self::from_key(&raw))
    }

    /// The stored form (bytes of the text), for sealing.
    pub fn from_stored(bytes: &[u8]) -> Result<Self, CryptoError> {
        Self::parse(std::str::from_utf8(bytes).map_err(|_| CryptoError::Malformed)?)
    }

    /// The `whsec_…` text: shown once to the subscriber, sealed at rest.
    pub fn expose(&self) -> &str {
        &self.text
    }

    fn message(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(msg_id.len() + 24 + body.len());
        m.extend_from_slice(msg_id.as_bytes());
        m.push(b'.');
        m.extend_from_slice(timestamp.to_string().as_bytes());
        m.push(b'.');
        m.extend_from_slice(body);
        m
    }

    /// The `webhook-signature` header value: `v1,<base64 HMAC-SHA-256>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = hmac::sign(&self.key, &Self::message(msg_id, timestamp, body));
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }

    /// Whether a `webhook-signature` header (space-separated `v1,<sig>` entries; other
    /// versions ignored) holds a valid signature of this message. Constant-time comparison.
    /// Checking the timestamp's freshness is the receiver's policy, not done here.
    pub fn verify(&self, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let message = Self::message(msg_id, timestamp, body);
        header
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|sig| STANDARD.decode(sig).ok())
            .any(|sig| hmac::verify(&self.key, &message, &sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn standard_webhooks_test_vector() {
        // The specification's reference example (its libraries' test suites use it).
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = s.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(s.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body, &sig));
    }

    #[test]
    fn round_trip_and_refusals() {
        let s = WebhookSecret::generate().unwrap();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.expose().len(), 6 + 44);
        let back = WebhookSecret::from_stored(s.expose().as_bytes()).unwrap();
        let sig = s.sign("msg_1", 5, b"body");
        assert!(back.verify("msg_1", 5, b"body", &sig));
        assert!(back.verify("msg_1", 5, b"body", &format!("v2,xyz {sig}")));
        assert!(!back.verify("msg_2", 5, b"body", &sig));
        assert!(!back.verify("msg_1", 6, b"body", &sig));
        assert!(!back.verify("msg_1", 5, b"bodx", &sig));
        assert!(!back.verify("msg_1", 5, b"body", "v1,AAAA"));
        let other = WebhookSecret::generate().unwrap();
        assert!(!other.verify("msg_1", 5, b"body", &sig));
        assert!(WebhookSecret::parse("whsec_notbase64!").is_err());
        assert!(WebhookSecret::parse("ilh_x").is_err());
        assert!(!format!("{s:?}").contains("whsec"));
    }
}
