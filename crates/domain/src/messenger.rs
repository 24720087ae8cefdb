//! The messenger's vocabulary: identity verification modes, platforms and workspace settings.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// How a workspace treats a messenger boot that names a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityVerification {
    /// Proofs are not checked: a user boot is trusted by its user id or email (legacy).
    Off,
    /// A user boot without proof is allowed but unverified: it sees only what it starts.
    Optional,
    /// A user boot without a valid proof is refused.
    Enforced,
}

impl IdentityVerification {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Optional => "optional",
            Self::Enforced => "enforced",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "off" => Ok(Self::Off),
            "optional" => Ok(Self::Optional),
            "enforced" => Ok(Self::Enforced),
            _ => Err(DomainError::new(
                "identity_verification",
                "invalid_mode",
                "identity_verification must be off, optional or enforced",
            )),
        }
    }
}

/// Where a messenger runs; a secret is valid for the platforms it was created for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Web,
    Ios,
    Android,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Web, Platform::Ios, Platform::Android];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Ios => "ios",
            Self::Android => "android",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "web" => Ok(Self::Web),
            "ios" => Ok(Self::Ios),
            "android" => Ok(Self::Android),
            _ => Err(DomainError::new(
                "platform",
                "invalid_platform",
                "platform must be web, ios or android",
            )),
        }
    }
}

/// A non-empty set of platforms, kept sorted and without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platforms(Vec<Platform>);

impl Platforms {
    /// From a request's list: at least one, each known, none twice.
    pub fn parse(items: &[String]) -> Result<Self, DomainError> {
        if items.is_empty() {
            return Err(DomainError::new(
                "platforms",
                "empty",
                "platforms must name at least one of web, ios, android",
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let p = Platform::parse(item).map_err(|_| {
                DomainError::new(
                    "platforms",
                    "invalid_platform",
                    "platforms may only contain web, ios and android",
                )
            })?;
            if out.contains(&p) {
                return Err(DomainError::new(
                    "platforms",
                    "duplicate_platform",
                    "a platform is listed twice",
                ));
            }
            out.push(p);
        }
        out.sort();
        Ok(Self(out))
    }

    /// The stored form: `web,ios`.
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn decode(s: &str) -> Result<Self, DomainError> {
        let items: Vec<String> = s.split(',').map(str::to_owned).collect();
        Self::parse(&items)
    }

    pub fn contains(&self, p: Platform) -> bool {
        self.0.contains(&p)
    }

    pub fn as_slice(&self) -> &[Platform] {
        &self.0
    }
}

/// A workspace's messenger settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessengerSettings {
    pub identity_verification: IdentityVerification,
    /// The longest lifetime a user JWT may have (`exp - iat`), in seconds.
    pub jwt_max_lifetime_s: i64,
}

impl MessengerSettings {
    pub const DEFAULT_JWT_MAX_LIFETIME_S: i64 = 24 * 3600;
    pub const MIN_JWT_MAX_LIFETIME_S: i64 = 60;
    pub const MAX_JWT_MAX_LIFETIME_S: i64 = 30 * 24 * 3600;

    pub fn check_jwt_max_lifetime(s: i64) -> Result<i64, DomainError> {
        if !(Self::MIN_JWT_MAX_LIFETIME_S..=Self::MAX_JWT_MAX_LIFETIME_S).contains(&s) {
            return Err(DomainError::new(
                "jwt_max_lifetime_s",
                "out_of_range",
                "jwt_max_lifetime_s must be between 60 and 2592000 seconds (30 days)",
            ));
        }
        Ok(s)
    }
}

impl Default for MessengerSettings {
    fn default() -> Self {
        Self {
            identity_verification: IdentityVerification::Optional,
            jwt_max_lifetime_s: Self::DEFAULT_JWT_MAX_LIFETIME_S,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_checked_sorted_and_round_trip() {
        let p = Platforms::parse(&["ios".into(), "web".into()]).expect("valid");
        assert_eq!(p.encode(), "web,ios");
        assert_eq!(Platforms::decode(&p.encode()).expect("decodes"), p);
        assert_eq!(Platforms::parse(&[]).expect_err("empty").code, "empty");
        assert_eq!(
            Platforms::parse(&["web".into(), "web".into()])
                .expect_err("dup")
                .code,
            "duplicate_platform"
        );
        assert_eq!(
            Platforms::parse(&["desktop".into()])
                .expect_err("unknown")
                .code,
            "invalid_platform"
        );
    }

    #[test]
    fn modes_and_lifetime_bounds() {
        for m in ["off", "optional", "enforced"] {
            assert_eq!(IdentityVerification::parse(m).expect("mode").as_str(), m);
        }
        assert!(IdentityVerification::parse("on").is_err());
        assert!(MessengerSettings::check_jwt_max_lifetime(59).is_err());
        assert!(MessengerSettings::check_jwt_max_lifetime(60).is_ok());
        assert!(MessengerSettings::check_jwt_max_lifetime(2_592_001).is_err());
        assert_eq!(
            MessengerSettings::default().identity_verification,
            IdentityVerification::Optional
        );
    }
}
