//! Account passwords: the policy a new password must meet, and Argon2id hashing.
//!
//! Invariants:
//! - The store keeps only an Argon2id PHC string ([`PasswordHash`]); a password is never stored,
//!   logged or put in an error. [`PasswordHash`] has a redacted `Debug` and no `PartialEq`:
//!   the only way to compare is [`verify_password`], which is constant time.
//! - New hashes use Argon2id v1.3 with m = 19456 KiB, t = 2, p = 1 (the OWASP minimum) and a
//!   16-byte salt from aws-lc-rs. Verification uses the parameters recorded in the stored
//!   string, so raising the cost later does not break old hashes.
//! - An unknown account costs the same as a wrong password: [`verify_dummy`] runs a full
//!   verification against a fixed hash with the same parameters and always says no.
//! - Hashing and verifying are CPU- and memory-heavy (tens of milliseconds, 19 MiB): callers run
//!   them off the async runtime (e.g. `tokio::task::spawn_blocking`).

use std::sync::LazyLock;

use argon2::password_hash::{self, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Params, Version};

use crate::CryptoError;

/// The fewest characters (Unicode scalar values, not bytes) a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The most bytes a new password may have (UTF-8).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Argon2 memory cost in KiB (19 MiB).
const M_COST_KIB: u32 = 19_456;
/// Argon2 passes.
const T_COST: u32 = 2;
/// Argon2 lanes.
const P_COST: u32 = 1;
/// The lowest zxcvbn score (0..=4) a new password must reach.
const MIN_ZXCVBN_SCORE: u8 = 3;

/// An Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`): what the store
/// keeps. It holds no password, but it is still treated as a secret (it allows an offline
/// guessing attack), so `Debug` is redacted and there is no `PartialEq`.
#[derive(Clone)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Take back a hash read from the store. It must parse as a PHC string of Argon2id with
    /// valid parameters, a salt and an output, else [`CryptoError::Malformed`].
    pub fn from_stored(s: String) -> Result<Self, CryptoError> {
        parse_argon2id(&s).ok_or(CryptoError::Malformed)?;
        Ok(Self(s))
    }

    /// The PHC string, to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// Parse a PHC string, accepting only Argon2id with a salt, an output and valid parameters.
fn parse_argon2id(s: &str) -> Option<password_hash::PasswordHash<'_>> {
    let phc = password_hash::PasswordHash::new(s).ok()?;
    if phc.algorithm != ARGON2ID_IDENT || phc.salt.is_none() || phc.hash.is_none() {
        return None;
    }
    if let Some(version) = phc.version {
        Version::try_from(version).ok()?;
    }
    Params::try_from(&phc).ok()?;
    Some(phc)
}

/// Why a new password is refused. `code` is a stable API error code; `message` is a sentence
/// for people. Neither contains the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordProblem {
    pub code: &'static str,
    pub message: &'static str,
}

const TOO_SHORT: PasswordProblem = PasswordProblem {
    code: "password_too_short",
    message: "The password must have at least 12 characters.",
};

const TOO_LONG: PasswordProblem = PasswordProblem {
    code: "password_too_long",
    message: "The password must have at most 1024 bytes.",
};

const TOO_COMMON: PasswordProblem = PasswordProblem {
    code: "password_too_common",
    message: "The password is too common or too easy to guess; a few unrelated words make a \
              stronger one.",
};

/// Check a new password against the policy:
/// - at least [`MIN_PASSWORD_CHARS`] characters (chars, not bytes), else `password_too_short`;
/// - at most [`MAX_PASSWORD_BYTES`] bytes, else `password_too_long`;
/// - not common or guessable, else `password_too_common`: zxcvbn (which bundles lists of the
///   most common passwords, words and names) must score it at least 3 of 4, given `related`
///   (the user's email, name, workspace name) as user inputs. Each related string is also split
///   into its words (an email's local part and domain labels, a name's parts), so a password
///   built from any of them is caught.
///
/// Only the first 100 characters are scored (zxcvbn's own limit, which bounds its cost).
pub fn check_policy(password: &str, related: &[&str]) -> Result<(), PasswordProblem> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(TOO_LONG);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(TOO_SHORT);
    }
    let inputs = related_inputs(related);
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let score = u8::from(zxcvbn::zxcvbn(password, &inputs).score());
    if score < MIN_ZXCVBN_SCORE {
        return Err(TOO_COMMON);
    }
    Ok(())
}

/// The user inputs given to zxcvbn: each related string, lowercased, plus an email's local
/// part, and every run of letters or digits of at least 3 characters ("alice.smith@acme.io"
/// gives "alice.smith@acme.io", "alice.smith", "alicesmith", "alice", "smith", "acme").
fn related_inputs(related: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    };
    for r in related {
        let r = r.trim().to_lowercase();
        if let Some((local, _domain)) = r.split_once('@') {
            push(local.to_owned());
            push(local.chars().filter(|c| c.is_alphanumeric()).collect());
        }
        for part in r.split(|c: char| !c.is_alphanumeric()) {
            if part.chars().count() >= 3 {
                push(part.to_owned());
            }
        }
        push(r);
    }
    out
}

/// The hasher for new passwords: Argon2id v1.3, m = 19456 KiB, t = 2, p = 1, 32-byte output.
fn hasher() -> Result<Argon2<'static>, CryptoError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|_| CryptoError::Kdf)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_with_salt(password: &str, salt: &[u8]) -> Result<PasswordHash, CryptoError> {
    let salt = SaltString::encode_b64(salt).map_err(|_| CryptoError::Kdf)?;
    let phc = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| CryptoError::Kdf)?;
    Ok(PasswordHash(phc.to_string()))
}

/// Hash a password with Argon2id (m = 19456 KiB, t = 2, p = 1) and a fresh 16-byte random
/// salt. CPU-heavy: run it off the async runtime. It does not check the policy; call
/// [`check_policy`] first for a new password.
pub fn hash_password(password: &str) -> Result<PasswordHash, CryptoError> {
    hash_with_salt(password, &crate::random_bytes::<16>()?)
}

/// Whether `password` matches `hash`, compared in constant time. Verification uses the
/// algorithm version and costs recorded in the hash. Any parse problem gives `false`.
/// CPU-heavy: run it off the async runtime.
pub fn verify_password(password: &str, hash: &PasswordHash) -> bool {
    let Some(phc) = parse_argon2id(hash.as_str()) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &phc)
        .is_ok()
}

/// A fixed Argon2id hash with the same parameters as [`hash_password`], computed once, for
/// [`verify_dummy`]. Its password is not a secret: the result is ignored.
static DUMMY_HASH: LazyLock<Option<PasswordHash>> =
    LazyLock::new(|| hash_with_salt("interlock-dummy-password", b"interlock/dummy!").ok());

/// Do the work of verifying `password` against a real hash, then return `false`: used when
/// the account does not exist, so that case takes as long as a wrong password. (The first
/// call also computes the dummy hash once.)
pub fn verify_dummy(password: &str) -> bool {
    match DUMMY_HASH.as_ref() {
        Some(dummy) => {
            let _ = verify_password(password, dummy);
        }
        // Unreachable in practice (fixed valid parameters and salt); still spend the time.
        None => {
            let _ = hash_with_salt(password, b"interlock/dummy!");
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(password: &str, related: &[&str]) -> Option<&'static str> {
        check_policy(password, related).err().map(|p| p.code)
    }

    #[test]
    fn hash_round_trip_and_wrong_password() {
        let h = hash_password("violet-Harbor-91-lantern").expect("hash");
        assert!(h.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("violet-Harbor-91-lantern", &h));
        assert!(!verify_password("violet-Harbor-91-lanterN", &h));
        assert!(!verify_password("", &h));

        // What the store keeps comes back and still verifies.
        let back = PasswordHash::from_stored(h.as_str().to_owned()).expect("parses");
        assert!(verify_password("violet-Harbor-91-lantern", &back));

        // Salts are random: the same password hashes differently.
        let again = hash_password("violet-Harbor-91-lantern").expect("hash");
        assert_ne!(h.as_str(), again.as_str());
    }

    #[test]
    fn debug_redacts() {
        let h = PasswordHash::from_stored(
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
             Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE"
                .to_owned(),
        )
        .expect("parses");
        let dbg = format!("{h:?}");
        assert_eq!(dbg, "PasswordHash(<redacted>)");
        assert!(!dbg.contains("argon2"));
    }

    #[test]
    fn from_stored_rejects_garbage_and_other_algorithms() {
        for bad in [
            "",
            "garbage",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA",
            // bcrypt
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            // Argon2i and Argon2d are not accepted.
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
             Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE",
            "$argon2d$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
             Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE",
            // Invalid parameters (p = 0) and version.
            "$argon2id$v=19$m=19456,t=2,p=0$c29tZXNhbHRzb21lc2FsdA$\
             Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE",
            "$argon2id$v=42$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
             Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE",
            "$pbkdf2-sha256$i=600000$c29tZXNhbHQ$Zm9vYmFyYmF6cXV4",
        ] {
            assert!(
                matches!(
                    PasswordHash::from_stored(bad.to_owned()),
                    Err(CryptoError::Malformed)
                ),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn verify_dummy_is_false() {
        assert!(!verify_dummy("violet-Harbor-91-lantern"));
        assert!(!verify_dummy("interlock-dummy-password"));
        let dummy = DUMMY_HASH.as_ref().expect("dummy hash");
        assert!(
            dummy
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }

    #[test]
    fn policy_length() {
        assert_eq!(code("short", &[]), Some("password_too_short"));
        assert_eq!(code("", &[]), Some("password_too_short"));
        // Characters, not bytes: 11 two-byte characters are too short.
        assert_eq!(code(&"é".repeat(11), &[]), Some("password_too_short"));
        let long = "violet-Harbor-91-lantern ".repeat(41); // 1025 bytes
        assert_eq!(long.len(), 1025);
        assert_eq!(code(&long, &[]), Some("password_too_long"));
        assert_eq!(code(&long[..MAX_PASSWORD_BYTES], &[]), None);
    }

    #[test]
    fn policy_common() {
        for common in [
            "password1234",
            "qwertyuiop123",
            "123456789012",
            "aaaaaaaaaaaa",
            "Password123!",
            "iloveyou1234",
        ] {
            assert_eq!(code(common, &[]), Some("password_too_common"), "{common}");
        }
    }

    #[test]
    fn policy_related() {
        let related = [
            "jonathan.whitfield@acmeworks.io",
            "Jonathan Whitfield",
            "Acme Works",
        ];
        assert_eq!(
            code("jonathanwhitfield2024", &related),
            Some("password_too_common")
        );
        // The email's local part, as typed.
        assert_eq!(
            code("jonathan.whitfield!", &related),
            Some("password_too_common")
        );
        assert_eq!(
            code("whitfieldacmeworks", &related),
            Some("password_too_common")
        );
        // Without the related inputs the same passwords pass: they are refused because of them.
        assert_eq!(code("jonathan.whitfield!", &[]), None);
        assert_eq!(code("whitfieldacmeworks", &[]), None);
    }

    #[test]
    fn policy_accepts_strong() {
        let related = ["alice@example.com", "Alice Martin", "Example"];
        assert_eq!(check_policy("violet-Harbor-91-lantern", &related), Ok(()));
        assert_eq!(check_policy("correct horse battery staple", &[]), Ok(()));
        assert_eq!(check_policy("tK8#vQ2!mZp4Lw", &related), Ok(()));
    }

    #[test]
    fn related_inputs_split() {
        let got = related_inputs(&["Alice.Smith@Acme.io", "", "  "]);
        for want in [
            "alice.smith@acme.io",
            "alice.smith",
            "alicesmith",
            "alice",
            "smith",
            "acme",
        ] {
            assert!(got.iter().any(|g| g == want), "missing {want} in {got:?}");
        }
        assert!(!got.iter().any(|g| g.is_empty() || g == "io"));
    }
}
