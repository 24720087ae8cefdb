//! Operator staff access: who the operator's people are, what a just-in-time grant asks for,
//! and the rules a grant must satisfy to be usable. No IO: the store and the HTTP layer apply
//! these decisions.
//!
//! Invariants:
//! - Staff hold no standing access to any workspace; only a grant gives access, to one
//!   workspace, for a bounded time, with a reason and a ticket.
//! - A grant is usable only while [`GrantState::is_active`] says so at the moment of the
//!   request: approvals present, not revoked, not expired, and (break-glass) confirmed by a
//!   second person within the hour. Nothing has to run for a grant to stop working.

use crate::{DomainError, Permission, PermissionSet};

/// A staff member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StaffRole {
    /// Customer support: may ask for grants.
    Support,
    /// On-call engineer: may ask for grants.
    Engineer,
    /// May approve (and confirm break-glass grants of) other staff members; may also ask.
    Approver,
}

impl StaffRole {
    pub const ALL: [StaffRole; 3] = [StaffRole::Support, StaffRole::Engineer, StaffRole::Approver];

    pub const fn as_str(self) -> &'static str {
        match self {
            StaffRole::Support => "support",
            StaffRole::Engineer => "engineer",
            StaffRole::Approver => "approver",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                DomainError::new(
                    "role",
                    "invalid_staff_role",
                    "role must be support, engineer or approver",
                )
            })
    }

    /// What the role may do, as the baseline an access review compares holders against.
    pub const fn capabilities(self) -> &'static [&'static str] {
        match self {
            StaffRole::Support | StaffRole::Engineer => &["staff.request_access"],
            StaffRole::Approver => &[
                "staff.request_access",
                "staff.approve_access",
                "staff.review_access",
            ],
        }
    }

    pub const fn can_approve(self) -> bool {
        matches!(self, StaffRole::Approver)
    }
}

/// Whether a workspace admin must approve staff grants to the workspace too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StaffAccessApproval {
    /// The operator's approver suffices.
    #[default]
    NotRequired,
    /// A workspace admin must also approve each grant.
    Required,
}

impl StaffAccessApproval {
    pub const fn as_str(self) -> &'static str {
        match self {
            StaffAccessApproval::NotRequired => "not_required",
            StaffAccessApproval::Required => "required",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "not_required" => Ok(StaffAccessApproval::NotRequired),
            "required" => Ok(StaffAccessApproval::Required),
            _ => Err(DomainError::new(
                "staff_access_approval",
                "invalid_value",
                "staff_access_approval must be required or not_required",
            )),
        }
    }
}

/// How a grant came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// Asked for, then approved.
    Request,
    /// Emergency access that starts at once and needs a second person's confirmation within
    /// [`BREAK_GLASS_CONFIRM_MS`].
    BreakGlass,
}

impl GrantKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantKind::Request => "request",
            GrantKind::BreakGlass => "break_glass",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "request" => Ok(GrantKind::Request),
            "break_glass" => Ok(GrantKind::BreakGlass),
            _ => Err(DomainError::new(
                "kind",
                "invalid_kind",
                "kind is request or break_glass",
            )),
        }
    }
}

/// A break-glass grant not confirmed by a second person within this long is revoked.
pub const BREAK_GLASS_CONFIRM_MS: i64 = 3_600_000;
/// The default (and default upper bound of) a grant's duration: 4 hours.
pub const DEFAULT_MAX_GRANT_S: i64 = 4 * 3600;
/// The shortest configurable upper bound and the shortest grant: one minute.
pub const MIN_GRANT_S: i64 = 60;
/// The longest reason and ticket accepted.
pub const MAX_REASON_CHARS: usize = 1000;
pub const MAX_TICKET_CHARS: usize = 200;

/// Permissions no grant can carry: with them a staff member could make access that outlives
/// the grant (an API token, a teammate, a role) or change the rules that bind staff.
pub const NOT_GRANTABLE: [Permission; 5] = [
    Permission::ApiTokensManage,
    Permission::TeammatesManage,
    Permission::RolesManage,
    Permission::SecurityManage,
    Permission::StaffAccessManage,
];

/// A checked request for access to a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAsk {
    pub permissions: PermissionSet,
    pub reason: String,
    pub ticket: String,
    pub duration_s: i64,
}

impl AccessAsk {
    /// Check an ask against the configured cap (`max_s`): a reason and a ticket are required,
    /// permissions must be named, and the duration lies between a minute and the cap.
    pub fn check(
        permissions: &[String],
        reason: &str,
        ticket: &str,
        duration_s: Option<i64>,
        max_s: i64,
    ) -> Result<Self, DomainError> {
        let permissions = PermissionSet::parse_list(permissions, false)?;
        if permissions.iter().any(|p| NOT_GRANTABLE.contains(&p)) {
            return Err(DomainError::new(
                "permissions",
                "permission_not_grantable",
                "a staff grant cannot include permissions that change who has access (api_tokens.manage, teammates.manage, roles.manage, security.manage, staff_access.manage)",
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(DomainError::new(
                "reason",
                "reason_required",
                "say why access is needed: reason is required",
            ));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(DomainError::new(
                "reason",
                "too_long",
                "reason is at most 1000 characters",
            ));
        }
        let ticket = ticket.trim();
        if ticket.is_empty() {
            return Err(DomainError::new(
                "ticket",
                "ticket_required",
                "name the support ticket or incident: ticket is required",
            ));
        }
        if ticket.chars().count() > MAX_TICKET_CHARS {
            return Err(DomainError::new(
                "ticket",
                "too_long",
                "ticket is at most 200 characters",
            ));
        }
        let duration_s = duration_s.unwrap_or(max_s);
        if duration_s < MIN_GRANT_S || duration_s > max_s {
            return Err(DomainError::new(
                "duration_s",
                "out_of_range",
                "duration_s must be at least 60 seconds and at most the configured maximum ([staff] max_grant_s, default 14400)",
            ));
        }
        Ok(Self {
            permissions,
            reason: reason.to_owned(),
            ticket: ticket.to_owned(),
            duration_s,
        })
    }
}

/// The time-dependent facts of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantState {
    pub kind: GrantKind,
    pub created_at: i64,
    pub staff_approved_at: Option<i64>,
    pub workspace_approval_required: bool,
    pub workspace_approved_at: Option<i64>,
    pub starts_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub confirmed_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Where a grant stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// Waiting for approvals.
    Pending,
    Active,
    Expired,
    Revoked,
    /// A break-glass grant nobody confirmed in time.
    Unconfirmed,
}

impl GrantStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Active => "active",
            GrantStatus::Expired => "expired",
            GrantStatus::Revoked => "revoked",
            GrantStatus::Unconfirmed => "unconfirmed",
        }
    }

    /// Whether the grant is over for good.
    pub const fn is_ended(self) -> bool {
        matches!(
            self,
            GrantStatus::Expired | GrantStatus::Revoked | GrantStatus::Unconfirmed
        )
    }
}

impl GrantState {
    /// The status at `now_ms`.
    pub fn status(&self, now_ms: i64) -> GrantStatus {
        if self.revoked_at.is_some_and(|t| t <= now_ms) {
            return GrantStatus::Revoked;
        }
        if self.kind == GrantKind::BreakGlass
            && self.confirmed_at.is_none()
            && now_ms >= self.created_at + BREAK_GLASS_CONFIRM_MS
        {
            return GrantStatus::Unconfirmed;
        }
        match (self.starts_at, self.expires_at) {
            (Some(start), Some(end)) if now_ms >= start => {
                if now_ms < end {
                    GrantStatus::Active
                } else {
                    GrantStatus::Expired
                }
            }
            _ => GrantStatus::Pending,
        }
    }

    pub fn is_active(&self, now_ms: i64) -> bool {
        self.status(now_ms) == GrantStatus::Active
    }

    /// Whether every approval a request grant needs is present (a break-glass grant needs
    /// none to start).
    pub fn approvals_complete(&self) -> bool {
        self.staff_approved_at.is_some()
            && (!self.workspace_approval_required || self.workspace_approved_at.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(reason: &str, ticket: &str, d: Option<i64>) -> Result<AccessAsk, DomainError> {
        AccessAsk::check(
            &["contacts.read".to_owned()],
            reason,
            ticket,
            d,
            DEFAULT_MAX_GRANT_S,
        )
    }

    #[test]
    fn an_ask_needs_a_reason_a_ticket_and_a_bounded_duration() {
        assert_eq!(
            ask("", "T-1", None).expect_err("refused").code,
            "reason_required"
        );
        assert_eq!(
            ask("   ", "T-1", None).expect_err("refused").code,
            "reason_required"
        );
        assert_eq!(
            ask("debug", " ", None).expect_err("refused").code,
            "ticket_required"
        );
        assert_eq!(
            ask("debug", "T-1", Some(59)).expect_err("refused").code,
            "out_of_range"
        );
        assert_eq!(
            ask("debug", "T-1", Some(DEFAULT_MAX_GRANT_S + 1))
                .expect_err("refused")
                .code,
            "out_of_range"
        );
        let ok = ask(" debug ", "T-1", None).expect("accepted");
        assert_eq!(ok.duration_s, DEFAULT_MAX_GRANT_S);
        assert_eq!(ok.reason, "debug");
        let none = AccessAsk::check(&[], "r", "t", None, DEFAULT_MAX_GRANT_S).expect_err("refused");
        assert_eq!(none.field, "permissions");
        let tokens = AccessAsk::check(
            &["contacts.read".to_owned(), "api_tokens.manage".to_owned()],
            "r",
            "t",
            None,
            DEFAULT_MAX_GRANT_S,
        )
        .expect_err("refused");
        assert_eq!(tokens.code, "permission_not_grantable");
    }

    fn request() -> GrantState {
        GrantState {
            kind: GrantKind::Request,
            created_at: 0,
            staff_approved_at: None,
            workspace_approval_required: false,
            workspace_approved_at: None,
            starts_at: None,
            expires_at: None,
            confirmed_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_grant_is_active_only_between_start_and_expiry_and_until_revoked() {
        let mut g = request();
        assert_eq!(g.status(10), GrantStatus::Pending);
        g.staff_approved_at = Some(100);
        g.starts_at = Some(100);
        g.expires_at = Some(200);
        assert_eq!(g.status(99), GrantStatus::Pending);
        assert!(g.is_active(100));
        assert!(g.is_active(199));
        assert_eq!(g.status(200), GrantStatus::Expired);
        g.revoked_at = Some(150);
        assert!(g.is_active(149));
        assert_eq!(g.status(150), GrantStatus::Revoked);
        assert!(g.status(150).is_ended());
    }

    #[test]
    fn workspace_approval_is_needed_when_required() {
        let mut g = request();
        g.workspace_approval_required = true;
        g.staff_approved_at = Some(1);
        assert!(!g.approvals_complete());
        g.workspace_approved_at = Some(2);
        assert!(g.approvals_complete());
    }

    #[test]
    fn an_unconfirmed_break_glass_grant_ends_after_an_hour() {
        let g = GrantState {
            kind: GrantKind::BreakGlass,
            starts_at: Some(0),
            expires_at: Some(4 * BREAK_GLASS_CONFIRM_MS),
            ..request()
        };
        assert!(g.is_active(BREAK_GLASS_CONFIRM_MS - 1));
        assert_eq!(g.status(BREAK_GLASS_CONFIRM_MS), GrantStatus::Unconfirmed);
        let confirmed = GrantState {
            confirmed_at: Some(10),
            ..g
        };
        assert!(confirmed.is_active(BREAK_GLASS_CONFIRM_MS));
    }

    #[test]
    fn roles_parse_and_only_approvers_approve() {
        for r in StaffRole::ALL {
            assert_eq!(StaffRole::parse(r.as_str()).expect("accepted"), r);
        }
        assert!(StaffRole::parse("root").is_err());
        assert!(StaffRole::Approver.can_approve());
        assert!(!StaffRole::Support.can_approve());
        assert!(!StaffRole::Engineer.can_approve());
    }
}
