//! Bearer tokens. A token is 256 random bits behind a prefix that names its kind and, for
//! workspace tokens, its region (`ilk_eu_…`), so a request can be routed before any lookup.
//! Only SHA-256 hashes of tokens are stored; tokens are high-entropy, so a slow hash adds
//! nothing. Hashes are compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use interlock_domain::Region;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::CryptoError;

const API_PREFIX: &str = "ilk_";
const OPERATOR_PREFIX: &str = "ilo_";

/// The SHA-256 of a token: what the store keeps. No `PartialEq`: compare with [`TokenHash::ct_eq`].
#[derive(Clone)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(crate::sha256(token.as_bytes()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

fn random_secret() -> Result<String, CryptoError> {
    Ok(URL_SAFE_NO_PAD.encode(crate::random_bytes::<32>()?))
}

/// What a region token is for; each kind has its own prefix, so one kind is never accepted
/// where another is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A workspace API token: full access to one workspace (`ilk_`).
    Api,
    /// A messenger session: one contact's conversations, for an hour (`ilm_`).
    MessengerSession,
    /// A visitor token: resumes one anonymous visitor (`ilv_`).
    Visitor,
    /// A teammate's one-time invitation to set a password (`ili_`).
    Invitation,
    /// A teammate's signed-in session, sent as a cookie (`ils_`).
    TeammateSession,
    /// A session's CSRF token, sent as the `X-CSRF-Token` header (`ilc_`).
    Csrf,
    /// A pending WebAuthn ceremony (passkey registration or sign-in) (`ilw_`).
    Ceremony,
    /// An operator staff member's signed-in session (`ilx_`): no access to any workspace.
    StaffSession,
    /// A staff member's just-in-time grant to one workspace (`ilg_`).
    StaffGrant,
}

impl TokenKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Api => API_PREFIX,
            TokenKind::MessengerSession => "ilm_",
            TokenKind::Visitor => "ilv_",
            TokenKind::Invitation => "ili_",
            TokenKind::TeammateSession => "ils_",
            TokenKind::Csrf => "ilc_",
            TokenKind::Ceremony => "ilw_",
            TokenKind::StaffSession => "ilx_",
            TokenKind::StaffGrant => "ilg_",
        }
    }
}

/// A bearer token that names its kind and region (`ilk_eu_…`), shown once when made.
pub struct RegionToken(SecretString);

/// A workspace API token.
pub type ApiToken = RegionToken;

impl std::fmt::Debug for RegionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegionToken(<redacted>)")
    }
}

impl RegionToken {
    pub fn generate(kind: TokenKind, region: Region) -> Result<Self, CryptoError> {
        Ok(Self(SecretString::from(format!(
            "{}{}_{}",
            kind.prefix(),
            region.as_str(),
            random_secret()?
        ))))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.expose())
    }

    /// The region a presented token claims, if it has the shape of a token of this kind.
    pub fn region_of(kind: TokenKind, presented: &str) -> Option<Region> {
        let rest = presented.strip_prefix(kind.prefix())?;
        let (region, secret) = rest.split_once('_')?;
        if secret.len() != 43 {
            return None;
        }
        region.parse().ok()
    }
}

/// The operator's token: manages workspaces, reads no workspace data.
pub struct OperatorToken(SecretString);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(<redacted>)")
    }
}

impl OperatorToken {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(SecretString::from(format!(
            "{OPERATOR_PREFIX}{}",
            random_secret()?
        ))))
    }

    /// Read back a token from its file contents.
    pub fn from_file_contents(text: &str) -> Option<Self> {
        let t = text.trim();
        (t.starts_with(OPERATOR_PREFIX) && t.len() == OPERATOR_PREFIX.len() + 43)
            .then(|| Self(SecretString::from(t.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_tokens_carry_region() {
        let kinds = [
            TokenKind::Api,
            TokenKind::MessengerSession,
            TokenKind::Visitor,
        ];
        for r in Region::ALL {
            for k in kinds {
                let t = RegionToken::generate(k, r).expect("rng");
                assert_eq!(RegionToken::region_of(k, t.expose()), Some(r));
                // A token of one kind is never taken for another.
                for other in kinds.into_iter().filter(|o| *o != k) {
                    assert_eq!(RegionToken::region_of(other, t.expose()), None);
                }
            }
        }
        assert_eq!(RegionToken::region_of(TokenKind::Api, "ilk_us_short"), None);
        assert_eq!(RegionToken::region_of(TokenKind::Api, "Bearer x"), None);
        let op = OperatorToken::generate().expect("rng");
        assert_eq!(RegionToken::region_of(TokenKind::Api, op.expose()), None);
    }

    #[test]
    fn hashes_compare() {
        let t = RegionToken::generate(TokenKind::Api, Region::Us).expect("rng");
        assert!(t.hash().ct_eq(&TokenHash::of(t.expose())));
        let u = RegionToken::generate(TokenKind::Api, Region::Us).expect("rng");
        assert!(!t.hash().ct_eq(&u.hash()));
        assert!(!format!("{t:?}").contains(t.expose()));
    }

    #[test]
    fn operator_token_file_round_trip() {
        let t = OperatorToken::generate().expect("rng");
        let back = OperatorToken::from_file_contents(&format!("{}\n", t.expose())).expect("parses");
        assert!(back.hash().ct_eq(&t.hash()));
        assert!(OperatorToken::from_file_contents("garbage").is_none());
    }
}
