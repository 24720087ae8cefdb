//! Teammates' vocabulary: the role a teammate holds and the workspace's security settings
//! (two-factor requirement, session lifetimes, IP allowlist).

use std::net::IpAddr;

use crate::{BuiltinRole, DomainError, RoleId};

/// A teammate's role: a built-in one or a custom role of the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeammateRole {
    Builtin(BuiltinRole),
    Custom(RoleId),
}

impl TeammateRole {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        for b in BuiltinRole::ALL {
            if b.as_str() == s {
                return Ok(TeammateRole::Builtin(b));
            }
        }
        RoleId::parse(s).map(TeammateRole::Custom).map_err(|_| {
            DomainError::new(
                "role",
                "invalid_role",
                "role must be owner, admin, agent, viewer or a custom role id (rl_…)",
            )
        })
    }

    pub fn as_string(&self) -> String {
        match self {
            TeammateRole::Builtin(b) => b.as_str().to_owned(),
            TeammateRole::Custom(id) => id.to_string(),
        }
    }

    pub fn is_owner(&self) -> bool {
        *self == TeammateRole::Builtin(BuiltinRole::Owner)
    }
}

/// One allowlist entry: an address or a CIDR range, IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let bad = || {
            DomainError::new(
                "ip_allowlist",
                "invalid_ip_range",
                "each entry must be an IPv4 or IPv6 address or CIDR range (203.0.113.0/24, 2001:db8::/32)",
            )
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen as an IPv4-mapped IPv6 address is matched as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    pub fn to_text(&self) -> String {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            self.addr.to_string()
        } else {
            format!("{}/{}", self.addr, self.prefix)
        }
    }
}

/// The addresses teammates' sessions may come from; empty = anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpAllowlist(Vec<IpRange>);

impl IpAllowlist {
    pub const MAX_ENTRIES: usize = 200;

    pub fn parse(items: &[String]) -> Result<Self, DomainError> {
        if items.len() > Self::MAX_ENTRIES {
            return Err(DomainError::new(
                "ip_allowlist",
                "too_many_entries",
                "at most 200 allowlist entries",
            ));
        }
        items
            .iter()
            .map(|s| IpRange::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|r| r.contains(ip))
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(IpRange::to_text).collect()
    }

    /// Stored form: entries joined by commas.
    pub fn encode(&self) -> String {
        self.entries().join(",")
    }

    pub fn decode(s: &str) -> Result<Self, DomainError> {
        if s.is_empty() {
            return Ok(Self::default());
        }
        let items: Vec<String> = s.split(',').map(str::to_owned).collect();
        Self::parse(&items)
    }
}

/// A workspace's security settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySettings {
    /// Teammates without two-factor authentication may only enrol.
    pub require_two_factor: bool,
    /// A session unused this long ends (default 4 days).
    pub session_idle_s: i64,
    /// A session ends this long after sign-in whatever its use (default 30 days).
    pub session_absolute_s: i64,
    pub ip_allowlist: IpAllowlist,
}

impl SecuritySettings {
    pub fn check(self) -> Result<Self, DomainError> {
        if !(300..=90 * 86_400).contains(&self.session_idle_s) {
            return Err(DomainError::new(
                "session_idle_s",
                "out_of_range",
                "session_idle_s must be between 300 s and 90 days",
            ));
        }
        if !(3600..=365 * 86_400).contains(&self.session_absolute_s)
            || self.session_absolute_s < self.session_idle_s
        {
            return Err(DomainError::new(
                "session_absolute_s",
                "out_of_range",
                "session_absolute_s must be between 1 hour and 365 days and not below session_idle_s",
            ));
        }
        Ok(self)
    }
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            require_two_factor: false,
            session_idle_s: 4 * 86_400,
            session_absolute_s: 30 * 86_400,
            ip_allowlist: IpAllowlist::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn allowlist_matches_addresses_and_ranges() {
        let l = IpAllowlist::parse(&[
            "203.0.113.0/24".into(),
            "198.51.100.7".into(),
            "2001:db8::/32".into(),
        ])
        .expect("valid");
        assert!(l.allows(ip("203.0.113.200")));
        assert!(l.allows(ip("::ffff:203.0.113.9")));
        assert!(l.allows(ip("198.51.100.7")));
        assert!(!l.allows(ip("198.51.100.8")));
        assert!(l.allows(ip("2001:db8:1::1")));
        assert!(!l.allows(ip("2001:db9::1")));
        assert!(IpAllowlist::default().allows(ip("10.0.0.1")));
        assert_eq!(IpAllowlist::decode(&l.encode()).expect("round trip"), l);
        for bad in ["10.0.0.0/33", "nope", "::/129", "10.0.0.1/x"] {
            assert!(IpAllowlist::parse(&[bad.into()]).is_err(), "{bad}");
        }
        let all = IpAllowlist::parse(&["0.0.0.0/0".into()]).expect("valid");
        assert!(all.allows(ip("8.8.8.8")));
    }

    #[test]
    fn roles_parse() {
        assert!(TeammateRole::parse("owner").expect("owner").is_owner());
        assert!(matches!(
            TeammateRole::parse(&RoleId::new().to_string()),
            Ok(TeammateRole::Custom(_))
        ));
        assert!(TeammateRole::parse("root").is_err());
    }

    #[test]
    fn session_bounds() {
        assert!(SecuritySettings::default().check().is_ok());
        let s = SecuritySettings {
            session_idle_s: 10,
            ..SecuritySettings::default()
        };
        assert!(s.check().is_err());
    }
}
