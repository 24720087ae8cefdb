//! Second factor: RFC 6238 time-based one-time passwords (TOTP) and single-use recovery codes.
//!
//! Invariants:
//! - TOTP is fixed to what every authenticator app supports: HMAC-SHA-1, 6 digits, 30-second
//!   steps, and a skew of one step either way. Codes come from totp-rs.
//! - A [`TotpSecret`] is 16 to 64 random bytes (20 when generated here), zeroized on drop, with
//!   a redacted `Debug` and no `PartialEq`. The store keeps it encrypted like any other field.
//!   (totp-rs copies the key into its own `Totp` for each computation; that short-lived copy is
//!   not zeroized unless totp-rs's `zeroize` feature is on.)
//! - [`TotpSecret::verify`] returns the time step a code belongs to, never just "yes": the
//!   caller refuses any step at or before the last step it accepted, so a code is never
//!   accepted twice (RFC 6238 §5.2). Codes are compared in constant time, and all candidate
//!   steps are always computed.
//! - Recovery codes carry 50 random bits each, so the store keeps only their SHA-256 (after
//!   normalisation, see [`recovery_code_hash`]); a slow hash would add nothing.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Digits in a TOTP code.
const DIGITS: usize = 6;
/// Seconds in a TOTP time step.
const STEP_S: u64 = 30;
/// Steps accepted either side of the current one.
const SKEW_STEPS: u64 = 1;
/// Length of a generated TOTP secret (160 bits, RFC 4226's recommendation).
const SECRET_LEN: usize = 20;
/// Shortest secret accepted (128 bits, RFC 4226's minimum).
const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted (the HMAC-SHA-1 block size).
const MAX_SECRET_LEN: usize = 64;

/// RFC 4648 base32 alphabet.
const BASE32_UPPER: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A TOTP shared secret: 20 random bytes when generated, zeroized on drop. `Debug` is
/// redacted and there is no `PartialEq`.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A fresh 160-bit secret from aws-lc-rs.
    pub fn generate() -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(crate::random_bytes::<SECRET_LEN>()?);
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// Take back a secret (e.g. after decrypting it from the store). It must have 16 to 64
    /// bytes (20 when generated here), else [`CryptoError::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(CryptoError::Malformed);
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// The raw secret, to encrypt and store.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 (upper case) without padding, for manual entry in an authenticator.
    pub fn base32(&self) -> String {
        base32_unpadded(&self.0)
    }

    /// The `otpauth://` URI an authenticator app reads (usually from a QR code):
    /// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`,
    /// with issuer and account percent-encoded. Neither may be empty or contain ':', else
    /// [`CryptoError::TotpLabel`]. The URI contains the secret: show it once, never log it.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<String, CryptoError> {
        if issuer.is_empty() || account.is_empty() {
            return Err(CryptoError::TotpLabel);
        }
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_step_duration(STEP_S)
            .with_skew(SKEW_STEPS as u16)
            .with_secret(self.0.to_vec())
            .with_issuer(Some(issuer))
            .with_account_name(account)
            .build()
            .map_err(|_| CryptoError::TotpLabel)?;
        let mut uri = totp.to_url().map_err(|_| CryptoError::TotpLabel)?;
        // totp-rs leaves out parameters that have their default value; some apps want them
        // spelled out, so add whichever is missing.
        for (key, value) in [("algorithm", "SHA1"), ("digits", "6"), ("period", "30")] {
            let present = uri.contains(&format!("?{key}=")) || uri.contains(&format!("&{key}="));
            if !present {
                uri.push('&');
                uri.push_str(key);
                uri.push('=');
                uri.push_str(value);
            }
        }
        Ok(uri)
    }

    /// The time step (`unix_time / 30`) at which `code` is valid, trying the steps before, at
    /// and after `now_s`; `None` when no step matches or `code` is not exactly 6 ASCII digits.
    /// Every candidate step is computed and compared in constant time; if a code happens to
    /// match more than one step, the latest is returned (the conservative choice for replay
    /// protection). The caller must refuse a step at or before the last step it accepted.
    pub fn verify(&self, code: &str, now_s: u64) -> Option<u64> {
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Keeps `(now_step + SKEW_STEPS) * STEP_S` from overflowing.
        now_s.checked_add(STEP_S * SKEW_STEPS)?;
        let totp = self.totp();
        let now_step = now_s / STEP_S;
        let mut found = None;
        for step in now_step.saturating_sub(SKEW_STEPS)..=now_step + SKEW_STEPS {
            let expected = Zeroizing::new(totp.generate(step * STEP_S).to_string());
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                found = Some(step);
            }
        }
        found
    }

    /// The code for a time (for tests and examples).
    pub fn code_at(&self, now_s: u64) -> String {
        self.totp().generate(now_s).to_string()
    }

    /// A totp-rs generator for this secret. The length was checked on construction and the
    /// other settings are constants, so the unchecked build is compliant.
    fn totp(&self) -> Totp {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_step_duration(STEP_S)
            .with_skew(SKEW_STEPS as u16)
            .with_secret(self.0.to_vec())
            .build_noncompliant()
    }
}

/// RFC 4648 base32, upper case, no padding.
fn base32_unpadded(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32_UPPER[usize::from((buffer >> bits) & 31)]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_UPPER[usize::from((buffer << (5 - bits)) & 31)],
        ));
    }
    out
}

/// How many recovery codes a user gets.
pub const RECOVERY_CODES: usize = 10;

/// Characters in a recovery code, without the dash.
const RECOVERY_CODE_CHARS: usize = 10;
/// Lower-case RFC 4648 base32 alphabet (no 0, 1, 8 or 9, which are easily misread).
const BASE32_LOWER: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Ten single-use recovery codes, each 10 lower-case base32 characters (50 random bits) shown
/// as `xxxxx-xxxxx`, all distinct. Show them once; store only [`recovery_code_hash`] of each.
pub fn generate_recovery_codes() -> Result<Vec<String>, CryptoError> {
    let mut codes: Vec<String> = Vec::with_capacity(RECOVERY_CODES);
    // A repeat has odds of about 2^-44 per set; the bound only stops a broken generator
    // from looping forever.
    for _ in 0..RECOVERY_CODES * 10 {
        if codes.len() == RECOVERY_CODES {
            break;
        }
        let code = recovery_code(u64::from_le_bytes(crate::random_bytes::<8>()?));
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    if codes.len() != RECOVERY_CODES {
        return Err(CryptoError::Random);
    }
    Ok(codes)
}

/// Format the low 50 bits of `bits` as `xxxxx-xxxxx`.
fn recovery_code(bits: u64) -> String {
    let mut out = String::with_capacity(RECOVERY_CODE_CHARS + 1);
    for i in 0..RECOVERY_CODE_CHARS {
        if i == RECOVERY_CODE_CHARS / 2 {
            out.push('-');
        }
        let shift = 5 * (RECOVERY_CODE_CHARS - 1 - i);
        // Masked to 5 bits, so the index is below 32.
        let index = ((bits >> shift) & 31) as usize;
        out.push(char::from(BASE32_LOWER[index]));
    }
    out
}

/// SHA-256 of a recovery code after normalising it (trim, ASCII lower case, drop '-' and
/// whitespace), so `"ABCDE-FGHIJ"`, `" abcde fghij "` and `"abcdefghij"` hash alike: what the
/// store keeps. Codes are high-entropy, so a fast hash suffices. Compare stored hashes in
/// constant time.
pub fn recovery_code_hash(code: &str) -> [u8; 32] {
    let normal: Zeroizing<String> = Zeroizing::new(
        code.trim()
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    crate::sha256(normal.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6238 appendix B SHA-1 key.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").expect("20 bytes")
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        let s = rfc_secret();
        // RFC 6238 appendix B gives 8-digit codes; 6-digit codes are their last 6 digits.
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(s.code_at(t), eight[2..], "T = {t}");
            assert_eq!(s.verify(&eight[2..], t), Some(t / 30), "T = {t}");
        }
        assert_eq!(s.code_at(59), "287082");
        assert_eq!(s.code_at(1_111_111_109), "081804");
        assert_eq!(s.code_at(1_234_567_890), "005924");
    }

    #[test]
    fn verify_accepts_one_step_of_skew() {
        let s = TotpSecret::generate().expect("rng");
        let now = 1_700_000_015; // inside step 56_666_667
        let step = now / 30;
        assert_eq!(s.verify(&s.code_at(now), now), Some(step));
        assert_eq!(s.verify(&s.code_at(now - 30), now), Some(step - 1));
        assert_eq!(s.verify(&s.code_at(now + 30), now), Some(step + 1));
        // Edges of the current step.
        assert_eq!(s.verify(&s.code_at(step * 30), now), Some(step));
        assert_eq!(s.verify(&s.code_at(step * 30 + 29), now), Some(step));
    }

    #[test]
    fn verify_refuses_two_steps_away() {
        let s = rfc_secret();
        let now = 1_234_567_890;
        for other in [now - 60, now + 60, now - 90, now + 3600] {
            let code = s.code_at(other);
            // Unless the far code happens to equal a near one (it does not for this key).
            assert_ne!(code, s.code_at(now));
            assert_ne!(code, s.code_at(now - 30));
            assert_ne!(code, s.code_at(now + 30));
            assert_eq!(s.verify(&code, now), None, "code of T = {other}");
        }
    }

    #[test]
    fn verify_refuses_malformed_codes() {
        let s = rfc_secret();
        let t = 1_234_567_890;
        assert_eq!(s.verify("005924", t), Some(t / 30));
        for bad in [
            "",
            "12345",
            "1234567",
            "abcdef",
            "00592",
            "0059240",
            " 005924",
            "005924 ",
            "+05924",
            "-05924",
            "00 592",
            "٠٠٥٩٢٤",
            "89005924",
        ] {
            assert_eq!(s.verify(bad, t), None, "{bad:?}");
        }
    }

    #[test]
    fn verify_at_time_extremes() {
        let s = rfc_secret();
        // Step 0 has no previous step.
        assert_eq!(s.verify(&s.code_at(0), 0), Some(0));
        assert_eq!(s.verify(&s.code_at(30), 0), Some(1));
        // No overflow near the end of time.
        assert_eq!(s.verify("000000", u64::MAX), None);
        let late = u64::MAX - 100;
        assert_eq!(s.verify(&s.code_at(late), late), Some(late / 30));
    }

    #[test]
    fn secret_lengths() {
        let g = TotpSecret::generate().expect("rng");
        assert_eq!(g.expose().len(), 20);
        assert_ne!(g.expose(), TotpSecret::generate().expect("rng").expose());
        assert!(matches!(
            TotpSecret::from_bytes(&[7; 15]),
            Err(CryptoError::Malformed)
        ));
        assert!(matches!(
            TotpSecret::from_bytes(&[]),
            Err(CryptoError::Malformed)
        ));
        assert!(matches!(
            TotpSecret::from_bytes(&[7; 65]),
            Err(CryptoError::Malformed)
        ));
        assert!(TotpSecret::from_bytes(&[7; 16]).is_ok());
        assert!(TotpSecret::from_bytes(&[7; 64]).is_ok());
        let back = TotpSecret::from_bytes(g.expose()).expect("round trip");
        assert_eq!(back.code_at(1_000_000), g.code_at(1_000_000));
    }

    #[test]
    fn debug_redacts() {
        let s = rfc_secret();
        let dbg = format!("{s:?}");
        assert_eq!(dbg, "TotpSecret(<redacted>)");
        assert!(!dbg.contains("1234"));
    }

    #[test]
    fn base32_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_unpadded(input.as_bytes()), want);
        }
        assert_eq!(rfc_secret().base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let g = TotpSecret::generate().expect("rng");
        assert_eq!(g.base32().len(), 32);
    }

    #[test]
    fn otpauth_uri_escapes_and_carries_secret() {
        let s = rfc_secret();
        let uri = s
            .otpauth_uri("Interlock Acme & Co", "jo+test@example.com")
            .expect("uri");
        assert_eq!(
            uri,
            "otpauth://totp/Interlock%20Acme%20%26%20Co:jo%2Btest%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Interlock%20Acme%20%26%20Co\
             &algorithm=SHA1&digits=6&period=30"
        );
        for key in ["secret", "issuer", "algorithm", "digits", "period"] {
            assert_eq!(uri.matches(&format!("{key}=")).count(), 1, "{key}");
        }
        let g = TotpSecret::generate().expect("rng");
        let uri = g.otpauth_uri("Interlock", "ana@example.com").expect("uri");
        assert!(uri.starts_with("otpauth://totp/Interlock:ana%40example.com?"));
        assert!(uri.contains(&format!("secret={}&", g.base32())));

        // An authenticator reading the URI computes the same codes.
        let parsed = Totp::from_url(&uri).expect("parses");
        assert_eq!(parsed.generate(1_000_000).to_string(), g.code_at(1_000_000));
        assert_eq!(parsed.issuer(), Some("Interlock"));
        assert_eq!(parsed.account_name(), "ana@example.com");
    }

    #[test]
    fn otpauth_uri_refuses_bad_labels() {
        let s = rfc_secret();
        for (issuer, account) in [
            ("", "ana@example.com"),
            ("Interlock", ""),
            ("Inter:lock", "ana@example.com"),
            ("Interlock", "ana:b@example.com"),
        ] {
            assert!(
                matches!(s.otpauth_uri(issuer, account), Err(CryptoError::TotpLabel)),
                "{issuer:?} {account:?}"
            );
        }
    }

    #[test]
    fn recovery_codes_shape() {
        let codes = generate_recovery_codes().expect("rng");
        assert_eq!(codes.len(), RECOVERY_CODES);
        for c in &codes {
            assert_eq!(c.len(), 11, "{c}");
            let (a, b) = c.split_once('-').expect("dash");
            assert_eq!((a.len(), b.len()), (5, 5), "{c}");
            assert!(
                a.bytes()
                    .chain(b.bytes())
                    .all(|ch| BASE32_LOWER.contains(&ch)),
                "{c}"
            );
        }
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), RECOVERY_CODES);
        // Another set shares nothing with the first.
        let other = generate_recovery_codes().expect("rng");
        assert!(other.iter().all(|c| !codes.contains(c)));
    }

    #[test]
    fn recovery_code_encodes_50_bits() {
        assert_eq!(recovery_code(0), "aaaaa-aaaaa");
        assert_eq!(recovery_code((1 << 50) - 1), "77777-77777");
        // Bits above 50 are ignored.
        assert_eq!(recovery_code(u64::MAX), "77777-77777");
        assert_eq!(recovery_code(1), "aaaaa-aaaab");
        assert_eq!(recovery_code(1 << 45), "baaaa-aaaaa");
    }

    #[test]
    fn recovery_hash_normalises() {
        let h = recovery_code_hash("abcdefghij");
        assert_eq!(recovery_code_hash("ABCDE-FGHIJ"), h);
        assert_eq!(recovery_code_hash("abcde-fghij"), h);
        assert_eq!(recovery_code_hash("  abcde fghij\n"), h);
        assert_eq!(recovery_code_hash("AbCdE - FgHiJ"), h);
        assert_eq!(h, crate::sha256(b"abcdefghij"));
        assert_ne!(recovery_code_hash("abcde-fghik"), h);
        assert_ne!(recovery_code_hash(""), h);
    }
}
