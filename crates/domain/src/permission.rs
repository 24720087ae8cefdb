//! The permission catalogue, built-in roles and the one authorization decision point.
//!
//! Every API endpoint declares the one [`Permission`] it needs; a principal (an API token now,
//! a teammate's session later) carries a [`PermissionSet`]; [`authorize`] is the only place a
//! request is allowed or denied. Sets are bit masks, so a decision is a few instructions.

use crate::DomainError;

macro_rules! permissions {
    ($($variant:ident = $name:literal : $doc:literal,)*) => {
        /// One thing a principal may do in a workspace.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $(#[doc = $doc] $variant,)*
        }

        impl Permission {
            /// Every permission, in catalogue order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }

            pub const fn description(self) -> &'static str {
                match self {
                    $(Permission::$variant => $doc,)*
                }
            }

            pub fn parse(s: &str) -> Result<Self, DomainError> {
                match s {
                    $($name => Ok(Permission::$variant),)*
                    _ => Err(DomainError::new(
                        "permissions",
                        "unknown_permission",
                        "a permission is not in the catalogue (GET /v1/permissions)",
                    )),
                }
            }
        }
    };
}

permissions! {
    ConversationsRead = "conversations.read": "Read conversations, their messages and attachments.",
    ConversationsReply = "conversations.reply": "Start conversations, add messages and attachments.",
    ConversationsAssign = "conversations.assign": "Assign conversations to teammates.",
    ConversationsDelete = "conversations.delete": "Delete single conversations.",
    ContactsRead = "contacts.read": "Read and search contacts and their events.",
    ContactsEdit = "contacts.edit": "Create and update contacts; record events.",
    ContactsDelete = "contacts.delete": "Delete single contacts.",
    DataExport = "data.export": "Export contacts or conversations in bulk.",
    DataBulkDelete = "data.bulk_delete": "Delete contacts or conversations in bulk.",
    TeammatesManage = "teammates.manage": "Invite, update and remove teammates.",
    RolesManage = "roles.manage": "Create, change and delete custom roles.",
    SecurityManage = "security.manage": "Change security settings (two-factor, sessions, IP allowlist).",
    ActivityLogRead = "activity_log.read": "Read and export the activity log.",
    DataRequestsHandle = "data_requests.handle": "Handle data subject access and erasure requests.",
    MessengerManage = "messenger.manage": "Manage messenger identity verification secrets and settings.",
    ApiTokensManage = "api_tokens.manage": "Create, list and revoke scoped API tokens.",
    StaffAccessManage = "staff_access.manage": "See, approve and revoke operator staff access to the workspace; choose whether staff grants need a workspace admin's approval.",
}

/// A set of permissions (a bit mask over the catalogue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermissionSet(u64);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    const fn bit(p: Permission) -> u64 {
        1u64 << (p as u8)
    }

    /// Every permission of the catalogue.
    pub fn all() -> Self {
        Permission::ALL.iter().copied().collect()
    }

    pub const fn contains(self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= Self::bit(p);
    }

    /// The permissions in both sets.
    pub const fn intersection(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 & other.0)
    }

    /// True when every permission of `self` is also in `other`.
    pub const fn is_subset_of(self, other: PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions, in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }

    /// From a request's list: each known, none twice; may be empty only if `allow_empty`.
    pub fn parse_list(items: &[String], allow_empty: bool) -> Result<Self, DomainError> {
        if items.is_empty() && !allow_empty {
            return Err(DomainError::new(
                "permissions",
                "empty",
                "permissions must name at least one permission",
            ));
        }
        let mut set = PermissionSet::EMPTY;
        for item in items {
            let p = Permission::parse(item)?;
            if set.contains(p) {
                return Err(DomainError::new(
                    "permissions",
                    "duplicate_permission",
                    "a permission is listed twice",
                ));
            }
            set.insert(p);
        }
        Ok(set)
    }

    /// The stored form: permission names joined by commas, in catalogue order.
    pub fn encode(self) -> String {
        self.iter()
            .map(Permission::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn decode(s: &str) -> Result<Self, DomainError> {
        if s.is_empty() {
            return Ok(PermissionSet::EMPTY);
        }
        let mut set = PermissionSet::EMPTY;
        for name in s.split(',') {
            set.insert(Permission::parse(name)?);
        }
        Ok(set)
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = PermissionSet::EMPTY;
        for p in iter {
            set.insert(p);
        }
        set
    }
}

/// The roles every workspace has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinRole {
    Owner,
    Admin,
    Agent,
    Viewer,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 4] = [
        BuiltinRole::Owner,
        BuiltinRole::Admin,
        BuiltinRole::Agent,
        BuiltinRole::Viewer,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            BuiltinRole::Owner => "owner",
            BuiltinRole::Admin => "admin",
            BuiltinRole::Agent => "agent",
            BuiltinRole::Viewer => "viewer",
        }
    }

    pub const fn description(self) -> &'static str {
        match self {
            BuiltinRole::Owner => "Everything, including security settings.",
            BuiltinRole::Admin => "Everything except security settings.",
            BuiltinRole::Agent => {
                "Work conversations and contacts; no deletion, export, bulk actions or administration."
            }
            BuiltinRole::Viewer => "Read conversations and contacts.",
        }
    }

    pub fn permissions(self) -> PermissionSet {
        use Permission::*;
        match self {
            BuiltinRole::Owner => PermissionSet::all(),
            BuiltinRole::Admin => PermissionSet::all()
                .iter()
                .filter(|p| *p != SecurityManage)
                .collect(),
            BuiltinRole::Agent => [
                ConversationsRead,
                ConversationsReply,
                ConversationsAssign,
                ContactsRead,
                ContactsEdit,
            ]
            .into_iter()
            .collect(),
            BuiltinRole::Viewer => [ConversationsRead, ContactsRead].into_iter().collect(),
        }
    }
}

/// The outcome of an authorization decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied for lack of this permission.
    Deny(Permission),
}

/// The one authorization decision point: may a principal holding `held` do what needs
/// `needed`? Every endpoint asks this, through the HTTP layer's permission extractor.
pub const fn authorize(held: PermissionSet, needed: Permission) -> Decision {
    if held.contains(needed) {
        Decision::Allow
    } else {
        Decision::Deny(needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_round_trips_and_fits_the_mask() {
        assert!(Permission::ALL.len() <= 64);
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()).expect("known"), *p);
            assert!(!p.description().is_empty());
        }
        let all = PermissionSet::all();
        assert_eq!(PermissionSet::decode(&all.encode()).expect("decodes"), all);
        assert_eq!(
            PermissionSet::decode("").expect("empty"),
            PermissionSet::EMPTY
        );
        assert!(PermissionSet::decode("contacts.read,nope").is_err());
    }

    #[test]
    fn lists_are_checked() {
        let s = PermissionSet::parse_list(&["contacts.read".into()], false).expect("valid");
        assert!(s.contains(Permission::ContactsRead));
        assert!(!s.contains(Permission::ContactsEdit));
        assert_eq!(
            PermissionSet::parse_list(&[], false)
                .expect_err("empty")
                .code,
            "empty"
        );
        assert_eq!(
            PermissionSet::parse_list(&["contacts.read".into(), "contacts.read".into()], false)
                .expect_err("dup")
                .code,
            "duplicate_permission"
        );
        assert_eq!(
            PermissionSet::parse_list(&["root".into()], false)
                .expect_err("unknown")
                .code,
            "unknown_permission"
        );
    }

    #[test]
    fn roles_nest_and_scale_actions_are_withheld() {
        let [owner, admin, agent, viewer] = BuiltinRole::ALL.map(BuiltinRole::permissions);
        assert!(viewer.is_subset_of(agent));
        assert!(agent.is_subset_of(admin));
        assert!(admin.is_subset_of(owner));
        assert_eq!(owner, PermissionSet::all());
        for role in [agent, viewer] {
            for p in [
                Permission::DataExport,
                Permission::DataBulkDelete,
                Permission::ContactsDelete,
                Permission::ConversationsDelete,
                Permission::TeammatesManage,
                Permission::ApiTokensManage,
            ] {
                assert_eq!(authorize(role, p), Decision::Deny(p));
            }
        }
        assert_eq!(
            authorize(agent, Permission::ConversationsReply),
            Decision::Allow
        );
        assert_eq!(
            authorize(viewer, Permission::ConversationsReply),
            Decision::Deny(Permission::ConversationsReply)
        );
        assert!(!admin.contains(Permission::SecurityManage));
    }
}
