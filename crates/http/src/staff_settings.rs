//! `[staff]`: operator staff access (docs/staff-access.md).

use serde::{Deserialize, Serialize};

/// Limits of staff grants and the access-review schedule.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaffSettings {
    /// The longest grant, in seconds (default 14400 = 4 hours; at least 60).
    pub max_grant_s: i64,
    /// Start an access review campaign this many days after the last one (default 91: quarterly).
    pub review_every_days: i64,
    /// Reviewers have this many days; unreviewed items are then revoked (default 14).
    pub review_window_days: i64,
    /// Whether a member who registered a passkey may still sign in with a TOTP code (default
    /// true). `false` makes passkeys (phishing-resistant) the only way in once a member has
    /// one; TOTP then serves only to sign in the first time and register it.
    pub totp_with_passkey: bool,
}

impl Default for StaffSettings {
    fn default() -> Self {
        Self {
            max_grant_s: interlock_domain::staff::DEFAULT_MAX_GRANT_S,
            review_every_days: 91,
            review_window_days: 14,
            totp_with_passkey: true,
        }
    }
}

impl StaffSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(interlock_domain::staff::MIN_GRANT_S..=interlock_domain::staff::DEFAULT_MAX_GRANT_S)
            .contains(&self.max_grant_s)
        {
            return Err("staff.max_grant_s must be between 60 and 14400".into());
        }
        if !(1..=366).contains(&self.review_every_days) {
            return Err("staff.review_every_days must be between 1 and 366".into());
        }
        if !(1..=self.review_every_days).contains(&self.review_window_days) {
            return Err(
                "staff.review_window_days must be between 1 and staff.review_every_days".into(),
            );
        }
        Ok(())
    }
}
