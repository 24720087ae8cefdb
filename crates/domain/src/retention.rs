//! A workspace's retention settings: how long conversations live after their last activity,
//! and a visitor expiry that may be shorter (never longer) than the nine months Interlock
//! enforces for everyone.

use crate::DomainError;

/// The longest a visitor is kept after it was last seen, for every workspace: nine months.
pub const MAX_VISITOR_DAYS: u32 = 274;
/// Bounds of the conversation setting.
pub const CONVERSATION_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;

/// Per-workspace retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Delete conversations this many days after their last message; `None` keeps them while
    /// their contact exists.
    pub conversation_days: Option<u32>,
    /// Delete visitors this many days after they were last seen (1 to 274).
    pub visitor_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            conversation_days: None,
            visitor_days: MAX_VISITOR_DAYS,
        }
    }
}

impl RetentionSettings {
    /// Check the bounds; values out of range are refused with a field and a stable code.
    pub fn check(self) -> Result<Self, DomainError> {
        if let Some(d) = self.conversation_days
            && !CONVERSATION_DAYS.contains(&d)
        {
            return Err(DomainError::new(
                "conversation_days",
                "out_of_range",
                "conversation_days must be between 1 and 3650 (or null to keep conversations)",
            ));
        }
        if self.visitor_days == 0 {
            return Err(DomainError::new(
                "visitor_days",
                "out_of_range",
                "visitor_days must be at least 1",
            ));
        }
        if self.visitor_days > MAX_VISITOR_DAYS {
            return Err(DomainError::new(
                "visitor_days",
                "visitor_expiry_too_long",
                "visitor_days can shorten the nine-month (274-day) visitor expiry, never lengthen it",
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(RetentionSettings::default().check().is_ok());
        let s = |c, v| RetentionSettings {
            conversation_days: c,
            visitor_days: v,
        };
        assert!(s(Some(30), 30).check().is_ok());
        assert_eq!(
            s(None, 275).check().expect_err("refused").code,
            "visitor_expiry_too_long"
        );
        assert_eq!(
            s(None, 0).check().expect_err("refused").code,
            "out_of_range"
        );
        assert_eq!(
            s(Some(0), 10).check().expect_err("refused").code,
            "out_of_range"
        );
        assert_eq!(
            s(Some(3651), 10).check().expect_err("refused").code,
            "out_of_range"
        );
    }
}
