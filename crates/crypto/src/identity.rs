//! Messenger identity verification: a workspace's server proves who a messenger user is, with an
//! HMAC `user_hash` or an HS256 JWT made with a verification secret.
//!
//! A secret is shown once as `ilh_` + 43 base64url characters (256 random bits); the HMAC and JWT
//! key is the UTF-8 bytes of the whole string, so customers use it as the plain string their
//! HMAC or JWT library takes. HMAC comes from aws-lc-rs (`hmac::verify` compares in constant
//! time); JWTs are parsed and checked by `jsonwebtoken` with HS256 as the only algorithm.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::CryptoError;

const SECRET_PREFIX: &str = "ilh_";

/// A verification secret's value, shown once when created and otherwise kept sealed.
pub struct SecretValue(SecretString);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl SecretValue {
    pub fn generate() -> Result<Self, CryptoError> {
        let bytes = zeroize::Zeroizing::new(crate::random_bytes::<32>()?);
        Ok(Self(SecretString::from(format!(
            "{SECRET_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(*bytes)
        ))))
    }

    /// A stored value read back (after decryption).
    pub fn from_stored(bytes: &[u8]) -> Result<Self, CryptoError> {
        let text = std::str::from_utf8(bytes).map_err(|_| CryptoError::Malformed)?;
        if !text.starts_with(SECRET_PREFIX) || text.len() != SECRET_PREFIX.len() + 43 {
            return Err(CryptoError::Malformed);
        }
        Ok(Self(SecretString::from(text.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Lowercase hex HMAC-SHA-256 of `message` under this secret: what a workspace's server
    /// computes. Used by tests, benchmarks and examples; the server only verifies.
    pub fn user_hash(&self, message: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.expose().as_bytes());
        hex::encode(hmac::sign(&key, message.as_bytes()).as_ref())
    }
}

/// One active secret, ready to verify: its id (`ms_…`) and keys.
pub struct VerificationSecret {
    id: String,
    hmac: hmac::Key,
    // jsonwebtoken keeps its own copy of the key bytes, which it does not zeroize on drop; the
    // copy lives only as long as this value (one request).
    jwt: DecodingKey,
}

impl std::fmt::Debug for VerificationSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerificationSecret({}, <redacted>)", self.id)
    }
}

impl VerificationSecret {
    pub fn new(id: impl Into<String>, value: &SecretValue) -> Self {
        let bytes = value.expose().as_bytes();
        Self {
            id: id.into(),
            hmac: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            jwt: DecodingKey::from_secret(bytes),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The secret (among `secrets`) under which `presented` is the HMAC-SHA-256 of `message`, if
/// any. `presented` must be 64 hex digits; the comparison is constant-time.
pub fn verify_user_hash<'a>(
    secrets: &'a [VerificationSecret],
    message: &str,
    presented: &str,
) -> Option<&'a VerificationSecret> {
    if presented.len() != 64 {
        return None;
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(presented, &mut tag).ok()?;
    secrets
        .iter()
        .find(|s| hmac::verify(&s.hmac, message.as_bytes(), &tag).is_ok())
}

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const JWT_LEEWAY_S: i64 = 60;

/// Limits on user JWTs.
#[derive(Debug, Clone, Copy)]
pub struct JwtPolicy {
    /// Longest accepted lifetime: `exp - iat`, or `exp - now` for a token without `iat`.
    pub max_lifetime_s: i64,
}

impl Default for JwtPolicy {
    fn default() -> Self {
        Self {
            max_lifetime_s: 24 * 3600,
        }
    }
}

/// The one validation every user JWT gets: HS256 only, `exp` required and checked, `nbf`
/// checked, audience not used. Built once: it holds small heap sets.
static VALIDATION: std::sync::LazyLock<Validation> = std::sync::LazyLock::new(|| {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = JWT_LEEWAY_S as u64;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp"]);
    v
});

/// What a verified user JWT says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtClaims {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// Why a JWT was refused. Each has a stable code for the API's error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("only HS256 is accepted")]
    Algorithm,
    #[error("the signature does not verify under any active secret")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's lifetime exceeds the workspace's maximum")]
    LifetimeTooLong,
    #[error("the token has no exp claim")]
    MissingExp,
    #[error("the token has no user_id claim")]
    MissingUserId,
}

impl JwtError {
    pub const fn code(self) -> &'static str {
        match self {
            JwtError::Malformed => "jwt_malformed",
            JwtError::Algorithm => "jwt_algorithm_not_allowed",
            JwtError::Signature => "jwt_signature_invalid",
            JwtError::Expired => "jwt_expired",
            JwtError::NotYetValid => "jwt_not_yet_valid",
            JwtError::LifetimeTooLong => "jwt_lifetime_too_long",
            JwtError::MissingExp => "jwt_missing_exp",
            JwtError::MissingUserId => "jwt_missing_user_id",
        }
    }
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    user_id: Option<serde_json::Value>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
}

fn map_jwt_error(e: &jsonwebtoken::errors::Error) -> JwtError {
    match e.kind() {
        ErrorKind::InvalidSignature => JwtError::Signature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => JwtError::Algorithm,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => JwtError::MissingExp,
        _ => JwtError::Malformed,
    }
}

/// Verify an HS256 user JWT against the active secrets and return its claims. A `kid` header
/// that names a secret restricts the check to that secret. `now_s` is the current Unix time.
pub fn verify_jwt<'a>(
    secrets: &'a [VerificationSecret],
    token: &str,
    now_s: i64,
    policy: JwtPolicy,
) -> Result<(JwtClaims, &'a VerificationSecret), JwtError> {
    // `decode` checks the header's algorithm against HS256 before any key is used; a header
    // it cannot parse (`"alg":"none"`) is reported as an algorithm error when it names one.
    // The header is parsed separately only when a `kid` can choose among several secrets.
    let kid = if secrets.len() > 1 {
        jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
    } else {
        None
    };
    let candidates: Vec<&VerificationSecret> = match kid.as_deref() {
        Some(kid) if secrets.iter().any(|s| s.id == kid) => {
            secrets.iter().filter(|s| s.id == kid).collect()
        }
        _ => secrets.iter().collect(),
    };
    if candidates.is_empty() {
        // Still tell a malformed or wrong-algorithm token apart from a missing secret.
        return Err(match jsonwebtoken::decode_header(token) {
            Ok(h) if h.alg != Algorithm::HS256 => JwtError::Algorithm,
            Ok(_) => JwtError::Signature,
            Err(_) if algorithm_named(token) => JwtError::Algorithm,
            Err(_) => JwtError::Malformed,
        });
    }
    let mut last = JwtError::Signature;
    for secret in candidates {
        match jsonwebtoken::decode::<RawClaims>(token, &secret.jwt, &VALIDATION) {
            Ok(data) => return check_claims(data.claims, now_s, policy).map(|c| (c, secret)),
            Err(e) => {
                last = match map_jwt_error(&e) {
                    JwtError::Malformed if algorithm_named(token) => JwtError::Algorithm,
                    other => other,
                };
                // Only a signature mismatch says "maybe another secret": anything else is a
                // property of the token itself.
                if last != JwtError::Signature {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

/// True when a JWT's header names an algorithm other than HS256, as a header that failed to
/// parse may (`"alg":"none"`): refusing it as an algorithm error is more useful than
/// "malformed".
fn algorithm_named(token: &str) -> bool {
    let Some(encoded) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    v.get("alg")
        .and_then(|a| a.as_str())
        .is_some_and(|a| a != "HS256")
}

fn check_claims(raw: RawClaims, now_s: i64, policy: JwtPolicy) -> Result<JwtClaims, JwtError> {
    let exp = raw.exp.ok_or(JwtError::MissingExp)?;
    if let Some(iat) = raw.iat
        && iat > now_s + JWT_LEEWAY_S
    {
        return Err(JwtError::NotYetValid);
    }
    let start = raw.iat.unwrap_or(now_s);
    if exp.saturating_sub(start) > policy.max_lifetime_s {
        return Err(JwtError::LifetimeTooLong);
    }
    let user_id = match raw.user_id {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s,
        Some(serde_json::Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return Err(JwtError::MissingUserId),
    };
    Ok(JwtClaims {
        user_id,
        email: raw.email,
        name: raw.name,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn secret() -> (SecretValue, VerificationSecret) {
        let v = SecretValue::generate().unwrap();
        let s = VerificationSecret::new("ms_a", &v);
        (v, s)
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn mint(v: &SecretValue, alg: Algorithm, claims: serde_json::Value) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(v.expose().as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn known_vector() {
        let v =
            SecretValue::from_stored(b"ilh_exampleexampleexampleexampleexampleexample1").unwrap();
        assert_eq!(
            v.user_hash("user-42"),
            "c4d291f5b8fcd65fc1ee8a75a3526b60534af392233a929df4e064b733ce6fe7"
        );
    }

    #[test]
    fn user_hash_verifies_only_its_message_and_secret() {
        let (v, s) = secret();
        let (_, other) = secret();
        let h = v.user_hash("u-1");
        assert_eq!(h.len(), 64);
        assert!(
            h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let both = [other, s];
        assert_eq!(
            verify_user_hash(&both, "u-1", &h).map(|s| s.id()),
            Some("ms_a")
        );
        assert!(verify_user_hash(&both, "u-2", &h).is_none());
        assert!(verify_user_hash(&both[..1], "u-1", &h).is_none());
        assert!(verify_user_hash(&both, "u-1", &h[..63]).is_none());
        assert!(verify_user_hash(&both, "u-1", "zz").is_none());
        assert!(verify_user_hash(&[], "u-1", &h).is_none());
    }

    #[test]
    fn stored_values_must_have_the_secret_shape() {
        let (v, _) = secret();
        assert!(SecretValue::from_stored(v.expose().as_bytes()).is_ok());
        assert!(SecretValue::from_stored(b"ilh_short").is_err());
        assert!(SecretValue::from_stored(b"\xff\xfe").is_err());
        assert!(!format!("{v:?}").contains(v.expose()));
    }

    #[test]
    fn good_jwt_yields_claims() {
        let (v, s) = secret();
        let t = mint(
            &v,
            Algorithm::HS256,
            json!({"user_id": "u-1", "email": "a@example.com", "name": "A", "exp": now() + 600, "iat": now()}),
        );
        let (claims, used) =
            verify_jwt(std::slice::from_ref(&s), &t, now(), JwtPolicy::default()).unwrap();
        assert_eq!(used.id(), "ms_a");
        assert_eq!(claims.user_id, "u-1");
        assert_eq!(claims.email.as_deref(), Some("a@example.com"));
        let numeric = mint(
            &v,
            Algorithm::HS256,
            json!({"user_id": 42, "exp": now() + 600}),
        );
        assert_eq!(
            verify_jwt(&[s], &numeric, now(), JwtPolicy::default())
                .unwrap()
                .0
                .user_id,
            "42"
        );
    }

    #[test]
    fn bad_jwts_are_refused_with_their_reason() {
        let (v, s) = secret();
        let (w, _) = secret();
        let p = JwtPolicy::default();
        let ss = std::slice::from_ref(&s);
        let n = now();
        let cases = [
            (
                mint(&v, Algorithm::HS384, json!({"user_id": "u", "exp": n + 60})),
                JwtError::Algorithm,
            ),
            (
                mint(&w, Algorithm::HS256, json!({"user_id": "u", "exp": n + 60})),
                JwtError::Signature,
            ),
            (
                mint(
                    &v,
                    Algorithm::HS256,
                    json!({"user_id": "u", "exp": n - 600}),
                ),
                JwtError::Expired,
            ),
            (
                mint(&v, Algorithm::HS256, json!({"exp": n + 60})),
                JwtError::MissingUserId,
            ),
            (
                mint(&v, Algorithm::HS256, json!({"user_id": "", "exp": n + 60})),
                JwtError::MissingUserId,
            ),
            (
                mint(&v, Algorithm::HS256, json!({"user_id": "u"})),
                JwtError::MissingExp,
            ),
            (
                mint(
                    &v,
                    Algorithm::HS256,
                    json!({"user_id": "u", "exp": n + 60, "nbf": n + 600}),
                ),
                JwtError::NotYetValid,
            ),
            (
                mint(
                    &v,
                    Algorithm::HS256,
                    json!({"user_id": "u", "exp": n + 6000, "iat": n + 600}),
                ),
                JwtError::NotYetValid,
            ),
            (
                mint(
                    &v,
                    Algorithm::HS256,
                    json!({"user_id": "u", "exp": n + 2 * 86400, "iat": n}),
                ),
                JwtError::LifetimeTooLong,
            ),
            (
                mint(
                    &v,
                    Algorithm::HS256,
                    json!({"user_id": "u", "exp": n + 2 * 86400}),
                ),
                JwtError::LifetimeTooLong,
            ),
            ("not.a.jwt".to_owned(), JwtError::Malformed),
            (String::new(), JwtError::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(
                verify_jwt(ss, &token, n, p).map(|_| ()),
                Err(want),
                "{token}"
            );
        }
    }

    #[test]
    fn alg_none_and_rs256_are_refused() {
        let (_, s) = secret();
        let n = now();
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let body = enc(json!({"user_id": "u", "exp": n + 60}));
        for alg in ["none", "None", "RS256", "ES256"] {
            let t = format!("{}.{body}.", enc(json!({"alg": alg, "typ": "JWT"})));
            assert_eq!(
                verify_jwt(std::slice::from_ref(&s), &t, n, JwtPolicy::default()).map(|_| ()),
                Err(JwtError::Algorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn kid_picks_the_secret_and_rotation_works() {
        let (old_v, old) = secret();
        let new_v = SecretValue::generate().unwrap();
        let new = VerificationSecret::new("ms_b", &new_v);
        let n = now();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("ms_b".into());
        let t = encode(
            &h,
            &json!({"user_id": "u", "exp": n + 60}),
            &EncodingKey::from_secret(new_v.expose().as_bytes()),
        )
        .unwrap();
        let both = [old, new];
        assert_eq!(
            verify_jwt(&both, &t, n, JwtPolicy::default())
                .unwrap()
                .1
                .id(),
            "ms_b"
        );
        // A token made with a deleted secret fails once that secret is gone.
        let t_old = mint(
            &old_v,
            Algorithm::HS256,
            json!({"user_id": "u", "exp": n + 60}),
        );
        assert!(verify_jwt(&both, &t_old, n, JwtPolicy::default()).is_ok());
        assert_eq!(
            verify_jwt(&both[1..], &t_old, n, JwtPolicy::default()).map(|_| ()),
            Err(JwtError::Signature)
        );
    }
}
