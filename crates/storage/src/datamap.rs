//! The data map: one declarative registry of every data element Interlock stores — each table
//! of the schema (every column and index), the attachment files and the key files — with its
//! fideslang data category, data subject and data use, how it is protected, how long it is kept
//! and what erasure does to it.
//!
//! It is data, not prose: `GET /v1/data-map` and `interlock data-map` serve it, and a test
//! (`tests/datamap.rs`) opens real SQLite and PostgreSQL stores and fails when the migrated
//! schema has a table, column or index the map does not describe, or the map names one the
//! schema lacks. The unit tests below check the map's own rules:
//! - every category and data use is a key of the fideslang default taxonomy;
//! - every `*_ct` column is encrypted and every `*_bidx` column is an HMAC blind index;
//! - a personal category (`user.*`) is never stored as plaintext (`none`), except
//!   `user.unique_id` on an id column (`id`, `*_id`, `created_by`): Interlock's own ids are
//!   random (`ct_<UUIDv7>`, `tm_…`) and say nothing about the person — they are pseudonyms;
//! - a personal category names its data subject;
//! - a field sealed under a subject key is shredded with that key.
//!
//! Data subjects: a contact is the workspace's `customer` whether identified (`role = user`) or
//! not yet (`role = visitor`); only data that exists for visitors alone (visitor tokens) is
//! `anonymous_user`. Teammates are `employee`s. `null` marks data about no person (workspace
//! settings, keys, chain state).
//!
//! Retention rules are declared here so the retention sweeper can be driven by them (issue 5);
//! docs/data-map.md says which ones are enforced by what.

use serde::Serialize;

use crate::cell::{CEREMONY_TTL_MS, INVITATION_TTL_MS};

/// A visitor (anonymous contact) not seen for this long is deleted: 9 months.
pub const VISITOR_INACTIVITY_DAYS: u32 = 274;
/// A workspace with no teammate sign-in and no API activity for this long is deleted:
/// 13 months (13 × 30.44 days).
pub const WORKSPACE_INACTIVITY_DAYS: u32 = 396;
/// A removed teammate's record is deleted this long after the removal.
pub const REMOVED_TEAMMATE_DAYS: u32 = 30;
/// The activity log's default retention (`activity.retention_days`, 30 to 36,500).
pub const ACTIVITY_LOG_DAYS: u32 = 730;
/// How long an access request's archive can be downloaded: 7 days.
pub const ACCESS_ARCHIVE_SECONDS: u64 = 7 * 86_400;
/// A messenger session's default lifetime (`messenger.session_ttl_s`).
pub const MESSENGER_SESSION_SECONDS: u64 = 3600;
/// A teammate session's default absolute lifetime (per workspace, at most 365 days).
pub const TEAMMATE_SESSION_SECONDS: u64 = 30 * 86_400;
/// A sign-in throttle row is deleted once this long has passed since both its last failure
/// and the end of its lock.
pub const LOGIN_THROTTLE_QUIET_SECONDS: u64 = 86_400;
/// An expired API token is kept (listed as expired) this long after its expiry, then deleted.
pub const EXPIRED_API_TOKEN_DAYS: u32 = 30;

/// What kind of store a collection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionKind {
    /// A table of the region's database (SQLite or PostgreSQL).
    Table,
    /// Files in the region's blob folder.
    Blobs,
    /// Key and credential files on disk.
    KeyFiles,
}

/// Whose data a field is (fideslang data subjects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSubject {
    /// A contact of a workspace: an identified user, or a visitor who may become one.
    Customer,
    /// A visitor, for data that only exists while the contact is anonymous.
    AnonymousUser,
    /// A teammate of a workspace.
    Employee,
}

impl DataSubject {
    pub const fn as_str(self) -> &'static str {
        match self {
            DataSubject::Customer => "customer",
            DataSubject::AnonymousUser => "anonymous_user",
            DataSubject::Employee => "employee",
        }
    }
}

/// How a stored value is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    /// Stored as is (ids, sizes, times, settings; key files protected by file mode 0600).
    None,
    /// AES-256-GCM under the data subject's own key (destroyed on erasure).
    SubjectKey,
    /// AES-256-GCM under the workspace's AEAD key (derived from the workspace key).
    WorkspaceKey,
    /// AES-256-GCM under the region's master key (key wrapping).
    MasterKey,
    /// HMAC-SHA-256 under the workspace's blind-index key: equality lookups, no plaintext.
    HmacBlindIndex,
    /// SHA-256 of a high-entropy secret (tokens, codes) or a hash-chain value.
    Sha256Hash,
    /// An Argon2id PHC string (passwords).
    Argon2id,
}

impl Encryption {
    pub const fn as_str(self) -> &'static str {
        match self {
            Encryption::None => "none",
            Encryption::SubjectKey => "subject_key",
            Encryption::WorkspaceKey => "workspace_key",
            Encryption::MasterKey => "master_key",
            Encryption::HmacBlindIndex => "hmac_blind_index",
            Encryption::Sha256Hash => "sha256_hash",
            Encryption::Argon2id => "argon2id",
        }
    }

    pub const fn describe(self) -> &'static str {
        match self {
            Encryption::None => "stored as is",
            Encryption::SubjectKey => "AES-256-GCM under the data subject's own key",
            Encryption::WorkspaceKey => "AES-256-GCM under the workspace key",
            Encryption::MasterKey => "AES-256-GCM under the region's master key",
            Encryption::HmacBlindIndex => "HMAC-SHA-256 blind index under the workspace key",
            Encryption::Sha256Hash => "SHA-256 hash",
            Encryption::Argon2id => "Argon2id password hash",
        }
    }
}

/// How long a value is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Retention {
    /// The workspace itself: deleted after `days` with no teammate sign-in and no API activity.
    WorkspaceInactivity { days: u32 },
    /// Kept until the workspace is deleted (or the row is replaced, revoked or used).
    WhileWorkspaceExists,
    /// A contact's data: kept until the contact is deleted; a visitor (anonymous contact) is
    /// deleted with everything that belongs to it after `days` without activity. Identified
    /// users do not expire by this rule.
    VisitorInactivity { days: u32 },
    /// Conversation content: as `VisitorInactivity`, and also deleted N days after the
    /// conversation's last activity when the workspace sets a conversation retention.
    ConversationInactivity,
    /// A teammate's credentials and sessions: kept while the teammate is a member, deleted
    /// when they are removed (or earlier, when used, revoked or replaced).
    WhileTeammateIsMember,
    /// A teammate's record: kept while a member, deleted `days` after removal.
    RemovedTeammate { days: u32 },
    /// Expires `seconds` after it is made (the default where it is configurable); deleted once
    /// expired (by the retention sweep, unless its collection says otherwise).
    Expires { seconds: u64 },
    /// Kept until revoked; when it has an expiry, deleted `days` after it (listed as expired
    /// until then).
    AfterExpiry { days: u32 },
    /// Activity-log entries and checkpoints: cut after `days` (configurable).
    ActivityLog { days: u32 },
    /// A master key version: kept until retired (`interlock keys retire`) once nothing is
    /// wrapped under it.
    UntilRetired,
    /// Kept until the operator replaces or deletes it.
    OperatorManaged,
}

impl Retention {
    pub const fn rule(self) -> &'static str {
        match self {
            Retention::WorkspaceInactivity { .. } => "workspace_inactivity",
            Retention::WhileWorkspaceExists => "while_workspace_exists",
            Retention::VisitorInactivity { .. } => "visitor_inactivity",
            Retention::ConversationInactivity => "conversation_inactivity",
            Retention::WhileTeammateIsMember => "while_teammate_is_member",
            Retention::RemovedTeammate { .. } => "removed_teammate",
            Retention::Expires { .. } => "expires",
            Retention::AfterExpiry { .. } => "after_expiry",
            Retention::ActivityLog { .. } => "activity_log",
            Retention::UntilRetired => "until_retired",
            Retention::OperatorManaged => "operator_managed",
        }
    }

    /// One sentence for people (the Fides export's descriptions, the docs).
    pub fn describe(self) -> String {
        match self {
            Retention::WorkspaceInactivity { days } => format!(
                "deleted with its workspace after {days} days without teammate sign-in or API activity"
            ),
            Retention::WhileWorkspaceExists => "kept while the workspace exists".to_owned(),
            Retention::VisitorInactivity { days } => format!(
                "kept until the contact is deleted; a visitor is deleted after {days} days without activity"
            ),
            Retention::ConversationInactivity => format!(
                "kept until the conversation or its contact is deleted; a visitor's after {VISITOR_INACTIVITY_DAYS} days without activity; conversations after the workspace's conversation retention, if set"
            ),
            Retention::WhileTeammateIsMember => {
                "kept while the teammate is a member; deleted on removal".to_owned()
            }
            Retention::RemovedTeammate { days } => {
                format!("kept while the teammate is a member; deleted {days} days after removal")
            }
            Retention::Expires { seconds } => {
                format!("expires after {seconds} seconds; deleted once expired")
            }
            Retention::AfterExpiry { days } => format!(
                "kept until revoked; one with an expiry is deleted by the retention sweep {days} days after it expires"
            ),
            Retention::ActivityLog { days } => {
                format!("cut from the activity log after {days} days (configurable)")
            }
            Retention::UntilRetired => "kept until the key version is retired".to_owned(),
            Retention::OperatorManaged => "kept until the operator replaces it".to_owned(),
        }
    }
}

/// What erasing the data subject (deleting a contact, removing a teammate) does to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Erasure {
    /// Sealed under the contact's subject key: deleting the contact destroys every key it owns
    /// in the same transaction as its rows, so any copy (backups included) is unreadable.
    ShreddedWithSubjectKey,
    /// Deleted in the contact's deletion transaction.
    DeletedWithSubject,
    /// Deleted in the teammate's removal transaction.
    DeletedOnRemoval,
    /// Cleared (set to NULL) in the removal transaction; the row goes later.
    ClearedOnRemoval,
    /// Kept after removal (so history names someone), deleted with the record 30 days later.
    DeletedAfterRemoval,
    /// Kept: the audit trail outlives erasure, naming people only by pseudonymous ids; cut
    /// by the activity log's retention.
    KeptPseudonymous,
    /// About no single person: deleted with the workspace.
    DeletedWithWorkspace,
    /// Not personal data (keys, certificates): managed by the operator.
    NotPersonal,
    /// An operator staff member's: kept while they are staff (and for the access-review
    /// trail); `interlock staff disable` ends their sessions and grants at once.
    OperatorStaff,
}

impl Erasure {
    pub const fn as_str(self) -> &'static str {
        match self {
            Erasure::ShreddedWithSubjectKey => "shredded_with_subject_key",
            Erasure::DeletedWithSubject => "deleted_with_subject",
            Erasure::DeletedOnRemoval => "deleted_on_removal",
            Erasure::ClearedOnRemoval => "cleared_on_removal",
            Erasure::DeletedAfterRemoval => "deleted_after_removal",
            Erasure::KeptPseudonymous => "kept_pseudonymous",
            Erasure::DeletedWithWorkspace => "deleted_with_workspace",
            Erasure::NotPersonal => "not_personal",
            Erasure::OperatorStaff => "operator_staff",
        }
    }

    pub const fn describe(self) -> &'static str {
        match self {
            Erasure::ShreddedWithSubjectKey => {
                "crypto-shredded: the contact's key is destroyed and the row deleted"
            }
            Erasure::DeletedWithSubject => "deleted with the contact",
            Erasure::DeletedOnRemoval => "deleted when the teammate is removed",
            Erasure::ClearedOnRemoval => "cleared when the teammate is removed",
            Erasure::DeletedAfterRemoval => "deleted with the teammate's record after removal",
            Erasure::KeptPseudonymous => "kept, naming people by pseudonymous ids only",
            Erasure::DeletedWithWorkspace => "deleted with the workspace",
            Erasure::NotPersonal => "not personal data",
            Erasure::OperatorStaff => {
                "an operator staff member's record: disabling them ends their sessions and grants"
            }
        }
    }
}

/// One stored data element: a column, or a part of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: &'static str,
    /// A fideslang data category key.
    pub data_category: &'static str,
    /// `None` (JSON `null`): about no person.
    pub data_subject: Option<DataSubject>,
    /// A fideslang data use key.
    pub data_use: &'static str,
    pub encryption: Encryption,
    pub retention: Retention,
    pub erasure: Erasure,
    pub description: &'static str,
}

/// A named secondary index of a table (primary keys are the collection's `primary_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Index {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub unique: bool,
}

/// A table, or a set of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Collection {
    pub name: &'static str,
    pub kind: CollectionKind,
    /// Where it lives, per region.
    pub location: &'static str,
    pub description: &'static str,
    /// Primary-key columns in order (empty for files).
    pub primary_key: &'static [&'static str],
    pub fields: &'static [Field],
    pub indexes: &'static [Index],
}

impl Collection {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The document served by `GET /v1/data-map`: `{"collections": [...]}`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DataMap {
    pub collections: &'static [Collection],
}

/// The whole map, as served.
pub fn document() -> DataMap {
    DataMap {
        collections: DATA_MAP,
    }
}

/// A collection by name.
pub fn collection(name: &str) -> Option<&'static Collection> {
    DATA_MAP.iter().find(|c| c.name == name)
}

/// Keys of the fideslang default taxonomy's data categories (fideslang 2.x/3.x,
/// `default_taxonomy/data_categories.py`) that this map may use; all current, none
/// deprecated. The sub-processor registry takes its data categories from this list too.
pub const FIDESLANG_DATA_CATEGORIES: &[&str] = &[
    "system",
    "system.authentication",
    "system.operations",
    "user",
    "user.account",
    "user.account.username",
    "user.authorization",
    "user.authorization.credentials",
    "user.authorization.password",
    "user.behavior",
    "user.behavior.browsing_history",
    "user.contact",
    "user.contact.address",
    "user.contact.email",
    "user.contact.phone_number",
    "user.content",
    "user.content.private",
    "user.content.public",
    "user.device",
    "user.device.cookie_id",
    "user.device.device_id",
    "user.device.ip_address",
    "user.location",
    "user.name",
    "user.unique_id",
];

// ------------------------------------------------------------------ vocabulary shorthands

const SYS_OPS: &str = "system.operations";
const SYS_AUTH: &str = "system.authentication";
const UID: &str = "user.unique_id";
const CREDENTIALS: &str = "user.authorization.credentials";
const CONTENT: &str = "user.content.private";

const SERVICE: &str = "essential.service";
const AUTHENTICATION: &str = "essential.service.authentication";
const SECURITY: &str = "essential.service.security";
const OPERATIONS: &str = "essential.service.operations";

const DB: &str = "regions/<region>/interlock.db (SQLite) or PostgreSQL database <name>_<region>";

use DataSubject::{AnonymousUser, Customer, Employee};

/// Base for workspace-level data about no person.
const WS: Field = Field {
    name: "",
    data_category: SYS_OPS,
    data_subject: None,
    data_use: SERVICE,
    encryption: Encryption::None,
    retention: Retention::WhileWorkspaceExists,
    erasure: Erasure::DeletedWithWorkspace,
    description: "",
};

/// Base for a contact's rows (plain columns: ids, roles, times).
const CONTACT: Field = Field {
    name: "",
    data_category: SYS_OPS,
    data_subject: Some(Customer),
    data_use: SERVICE,
    encryption: Encryption::None,
    retention: Retention::VisitorInactivity {
        days: VISITOR_INACTIVITY_DAYS,
    },
    erasure: Erasure::DeletedWithSubject,
    description: "",
};

/// Base for conversation content rows.
const CONVERSATION: Field = Field {
    retention: Retention::ConversationInactivity,
    ..CONTACT
};

/// Base for a teammate's credentials and sessions.
const TEAMMATE_AUTH: Field = Field {
    name: "",
    data_category: SYS_AUTH,
    data_subject: Some(Employee),
    data_use: AUTHENTICATION,
    encryption: Encryption::None,
    retention: Retention::WhileTeammateIsMember,
    erasure: Erasure::DeletedOnRemoval,
    description: "",
};

/// Base for activity-log data.
const AUDIT: Field = Field {
    name: "",
    data_category: SYS_OPS,
    data_subject: None,
    data_use: SECURITY,
    encryption: Encryption::None,
    retention: Retention::ActivityLog {
        days: ACTIVITY_LOG_DAYS,
    },
    erasure: Erasure::DeletedWithWorkspace,
    description: "",
};

/// Base for data subject requests.
const REQUEST: Field = Field {
    data_subject: Some(Customer),
    data_use: "essential.legal_obligation",
    retention: Retention::WhileWorkspaceExists,
    erasure: Erasure::KeptPseudonymous,
    ..WS
};

/// Base for deletion receipts.
const RECEIPT: Field = Field {
    data_use: "essential.legal_obligation",
    retention: Retention::OperatorManaged,
    erasure: Erasure::NotPersonal,
    ..WS
};

/// Base for access-request archive files.
const ARCHIVE: Field = Field {
    data_subject: Some(Customer),
    retention: Retention::Expires {
        seconds: ACCESS_ARCHIVE_SECONDS,
    },
    erasure: Erasure::DeletedWithSubject,
    ..WS
};

/// Base for the workspace row itself.
const WORKSPACE: Field = Field {
    retention: Retention::WorkspaceInactivity {
        days: WORKSPACE_INACTIVITY_DAYS,
    },
    ..WS
};

/// Base for visitor-only data.
const VISITOR: Field = Field {
    data_subject: Some(AnonymousUser),
    ..CONTACT
};

/// Base for messenger sessions.
const SESSION: Field = Field {
    retention: Retention::Expires {
        seconds: MESSENGER_SESSION_SECONDS,
    },
    ..CONTACT
};

/// Base for a teammate's record.
const TEAMMATE: Field = Field {
    data_subject: Some(Employee),
    retention: Retention::RemovedTeammate {
        days: REMOVED_TEAMMATE_DAYS,
    },
    erasure: Erasure::DeletedAfterRemoval,
    ..WS
};

const INVITATION: Field = Field {
    retention: Retention::Expires {
        seconds: (INVITATION_TTL_MS / 1000) as u64,
    },
    ..TEAMMATE_AUTH
};

const TEAMMATE_SESSION: Field = Field {
    retention: Retention::Expires {
        seconds: TEAMMATE_SESSION_SECONDS,
    },
    ..TEAMMATE_AUTH
};

const CEREMONY: Field = Field {
    retention: Retention::Expires {
        seconds: (CEREMONY_TTL_MS / 1000) as u64,
    },
    ..TEAMMATE_AUTH
};

/// Base for API tokens: kept until revoked, deleted a while after their expiry.
const API_TOKEN: Field = Field {
    retention: Retention::AfterExpiry {
        days: EXPIRED_API_TOKEN_DAYS,
    },
    ..WS
};

/// Base for sign-in throttling (about accounts and addresses, not one teammate's record).
const THROTTLE: Field = Field {
    data_use: SECURITY,
    retention: Retention::Expires {
        seconds: LOGIN_THROTTLE_QUIET_SECONDS,
    },
    erasure: Erasure::DeletedWithWorkspace,
    ..TEAMMATE_AUTH
};

/// Base for the chains' state (kept while the workspace exists, not cut).
const AUDIT_STATE: Field = Field {
    retention: Retention::WhileWorkspaceExists,
    ..AUDIT
};

/// Base for the sub-processor registry (public, region-level, about companies).
const SUBPROCESSOR: Field = Field {
    data_use: OPERATIONS,
    retention: Retention::OperatorManaged,
    erasure: Erasure::NotPersonal,
    ..WS
};

/// Base for operator staff records (region-level, about the operator's employees).
const STAFF: Field = Field {
    data_subject: Some(Employee),
    data_use: SECURITY,
    retention: Retention::OperatorManaged,
    erasure: Erasure::OperatorStaff,
    ..WS
};

/// Base for staff sessions (8 hours).
const STAFF_SESSION: Field = Field {
    data_category: SYS_AUTH,
    retention: Retention::Expires {
        seconds: (crate::cell::STAFF_SESSION_MS / 1000) as u64,
    },
    ..STAFF
};

/// Base for the staff audit log (kept; pseudonymous ids and sealed bodies only).
const STAFF_AUDIT: Field = Field {
    erasure: Erasure::KeptPseudonymous,
    ..STAFF
};

/// Base for staff passkey ceremonies (five minutes).
const STAFF_CEREMONY: Field = Field {
    data_category: CREDENTIALS,
    retention: Retention::Expires {
        seconds: (CEREMONY_TTL_MS / 1000) as u64,
    },
    ..STAFF
};

/// Base for staff grants to a workspace (the workspace's access-transparency record).
const STAFF_GRANT: Field = Field {
    data_subject: Some(Employee),
    data_use: SECURITY,
    ..WS
};

/// Base for access reviews (region-level campaigns; items name holders by pseudonymous id).
const REVIEW: Field = Field {
    data_subject: Some(Employee),
    data_use: SECURITY,
    retention: Retention::OperatorManaged,
    erasure: Erasure::KeptPseudonymous,
    ..WS
};

/// Base for outbound deliveries (ended rows are deleted after 30 days).
const OUTBOX: Field = Field {
    retention: Retention::Expires {
        seconds: crate::cell::OUTBOX_KEEP_DAYS as u64 * 86_400,
    },
    ..WS
};

/// Base for subject disclosure records.
const DISCLOSURE: Field = Field {
    data_subject: Some(Customer),
    erasure: Erasure::DeletedWithSubject,
    ..WS
};

const fn workspace_id(base: Field) -> Field {
    Field {
        name: "workspace_id",
        data_category: SYS_OPS,
        encryption: Encryption::None,
        description: "The workspace the row belongs to (`ws_<region>_<hex>`).",
        ..base
    }
}

const fn created_at(base: Field) -> Field {
    Field {
        name: "created_at",
        data_category: SYS_OPS,
        encryption: Encryption::None,
        description: "When the row was made (milliseconds since the Unix epoch).",
        ..base
    }
}

const fn ws_key_version(base: Field) -> Field {
    Field {
        name: "ws_key_version",
        data_category: SYS_OPS,
        encryption: Encryption::None,
        description: "The workspace-key version the sealed fields of the row are under.",
        ..base
    }
}

const fn subject_key_id(base: Field) -> Field {
    Field {
        name: "subject_key_id",
        data_category: SYS_OPS,
        encryption: Encryption::None,
        description: "The subject key (`sk_…`) the row's sealed fields are under; records are opened with the key their row names.",
        ..base
    }
}

const fn pseudonym(base: Field, name: &'static str, description: &'static str) -> Field {
    Field {
        name,
        data_category: UID,
        encryption: Encryption::None,
        description,
        ..base
    }
}

// ------------------------------------------------------------------ the map

/// Every table of the schema (after all migrations), the attachment files and the key files.
pub static DATA_MAP: &[Collection] = &[
    Collection {
        name: "workspaces",
        kind: CollectionKind::Table,
        location: DB,
        description: "Workspaces (tenants). A workspace is pinned to one region.",
        primary_key: &["id"],
        fields: &[
            Field {
                name: "id",
                description: "The workspace id, `ws_<region>_<hex>`.",
                ..WORKSPACE
            },
            Field {
                name: "region",
                description: "The region the workspace lives in (`us`, `eu`, `au`).",
                ..WORKSPACE
            },
            Field {
                name: "name_ct",
                encryption: Encryption::WorkspaceKey,
                description: "The workspace's display name, sealed.",
                ..WORKSPACE
            },
            Field {
                name: "key_version",
                description: "The current workspace-key version.",
                ..WORKSPACE
            },
            created_at(WORKSPACE),
            Field {
                name: "last_active_at",
                description: "When a teammate last signed in or a token or session last made a request (written at most hourly); the inactivity rule reads it.",
                ..WORKSPACE
            },
            Field {
                name: "inactivity_notice_at",
                description: "When the owners were told the workspace will be deleted for inactivity (cleared by any use).",
                ..WORKSPACE
            },
            Field {
                name: "deleted_at",
                description: "When the workspace's deletion was requested: its key was destroyed then; the row goes when the purge finishes.",
                ..WORKSPACE
            },
        ],
        // Migration 9: the inactivity rule and the purge find their workspaces through these.
        indexes: &[
            Index {
                name: "workspaces_last_active",
                columns: &["last_active_at"],
                unique: false,
            },
            Index {
                name: "workspaces_deleted",
                columns: &["deleted_at"],
                unique: false,
            },
        ],
    },
    Collection {
        name: "workspace_keys",
        kind: CollectionKind::Table,
        location: DB,
        description: "Workspace keys, one row per version, wrapped under a region master key.",
        primary_key: &["workspace_id", "version"],
        fields: &[
            workspace_id(Field {
                data_use: OPERATIONS,
                ..WS
            }),
            Field {
                name: "version",
                data_use: OPERATIONS,
                description: "The workspace-key version.",
                ..WS
            },
            Field {
                name: "master_version",
                data_use: OPERATIONS,
                description: "The master-key version this key is wrapped under (re-wrapped on master-key rotation).",
                ..WS
            },
            Field {
                name: "wrapped",
                data_use: OPERATIONS,
                encryption: Encryption::MasterKey,
                description: "The 256-bit workspace key, wrapped (AES-256-GCM) under the master key.",
                ..WS
            },
            created_at(Field {
                data_use: OPERATIONS,
                ..WS
            }),
        ],
        indexes: &[Index {
            name: "workspace_keys_master",
            columns: &["master_version"],
            unique: false,
        }],
    },
    Collection {
        name: "api_tokens",
        kind: CollectionKind::Table,
        location: DB,
        description: "Workspace API tokens, stored as SHA-256 only; scoped by a permission list and an optional expiry. Kept until revoked; an expired one is deleted by the retention sweep 30 days after its expiry; removing a teammate deletes the tokens they made.",
        primary_key: &["token_hash"],
        fields: &[
            Field {
                name: "token_hash",
                data_category: SYS_AUTH,
                data_use: AUTHENTICATION,
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the token (`ilk_<region>_…`); the token itself is shown once and never stored.",
                ..API_TOKEN
            },
            workspace_id(API_TOKEN),
            created_at(API_TOKEN),
            Field {
                name: "id",
                data_category: SYS_AUTH,
                description: "The token's id, to list and revoke it by.",
                ..API_TOKEN
            },
            Field {
                name: "name_ct",
                encryption: Encryption::WorkspaceKey,
                description: "The token's name, sealed (NULL for the workspace's first token).",
                ..API_TOKEN
            },
            ws_key_version(API_TOKEN),
            Field {
                name: "permissions",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                description: "The permissions the token holds (`*` = every permission: the first token).",
                ..API_TOKEN
            },
            Field {
                name: "expires_at",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                description: "Optional expiry; an expired token is refused.",
                ..API_TOKEN
            },
            pseudonym(
                Field {
                    data_subject: Some(Employee),
                    erasure: Erasure::DeletedOnRemoval,
                    ..API_TOKEN
                },
                "created_by",
                "The teammate (`tm_…`) who made the token; removing them deletes it.",
            ),
        ],
        indexes: &[
            Index {
                name: "api_tokens_id",
                columns: &["workspace_id", "id"],
                unique: true,
            },
            // Migration 11: the retention sweep finds expired tokens through it.
            Index {
                name: "api_tokens_expires",
                columns: &["expires_at"],
                unique: false,
            },
        ],
    },
    Collection {
        name: "subject_keys",
        kind: CollectionKind::Table,
        location: DB,
        description: "One AES-256-GCM key per data subject (contact), wrapped under the workspace key. Destroying a contact's keys crypto-shreds everything sealed under them.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(CONTACT),
            Field {
                name: "id",
                description: "The key id (`sk_…`).",
                ..CONTACT
            },
            ws_key_version(CONTACT),
            Field {
                name: "wrapped",
                encryption: Encryption::WorkspaceKey,
                description: "The subject key, wrapped under the workspace key. Deleting this row is what shreds the subject's ciphertexts.",
                ..CONTACT
            },
            created_at(CONTACT),
            pseudonym(
                CONTACT,
                "owner_id",
                "The contact (`ct_…`) that owns the key; erasure destroys every key a contact owns. Moves to the user when a visitor is merged into them.",
            ),
        ],
        indexes: &[Index {
            name: "subject_keys_owner",
            columns: &["workspace_id", "owner_id"],
            unique: false,
        }],
    },
    Collection {
        name: "contacts",
        kind: CollectionKind::Table,
        location: DB,
        description: "A workspace's contacts: identified users and anonymous visitors. Personal fields are sealed under the contact's subject key; lookups go through blind indexes.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(CONTACT),
            pseudonym(CONTACT, "id", "The contact id (`ct_<UUIDv7>`), random."),
            Field {
                name: "role",
                description: "`user` (identified) or `visitor` (anonymous).",
                ..CONTACT
            },
            subject_key_id(CONTACT),
            Field {
                name: "external_id_ct",
                data_category: UID,
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "The workspace's own id for the user, sealed.",
                ..CONTACT
            },
            Field {
                name: "external_id_bidx",
                data_category: UID,
                encryption: Encryption::HmacBlindIndex,
                description: "Blind index of the external id (unique per workspace).",
                ..CONTACT
            },
            Field {
                name: "email_ct",
                data_category: "user.contact.email",
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "Email address (normalised), sealed.",
                ..CONTACT
            },
            Field {
                name: "email_bidx",
                data_category: "user.contact.email",
                encryption: Encryption::HmacBlindIndex,
                description: "Blind index of the email address, for lookups.",
                ..CONTACT
            },
            Field {
                name: "name_ct",
                data_category: "user.name",
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "Name, sealed.",
                ..CONTACT
            },
            Field {
                name: "phone_ct",
                data_category: "user.contact.phone_number",
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "Phone number, sealed.",
                ..CONTACT
            },
            Field {
                name: "custom_attributes_ct",
                data_category: "user",
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "Custom attributes (a JSON object the workspace defines, so any kind of user data), sealed.",
                ..CONTACT
            },
            created_at(CONTACT),
            Field {
                name: "updated_at",
                description: "When the contact last changed.",
                ..CONTACT
            },
            Field {
                name: "last_seen_at",
                description: "When the contact was last seen (made, or a messenger session opened for it); a visitor expires on it.",
                ..CONTACT
            },
        ],
        indexes: &[
            Index {
                name: "contacts_external_id",
                columns: &["workspace_id", "external_id_bidx"],
                unique: true,
            },
            Index {
                name: "contacts_email",
                columns: &["workspace_id", "email_bidx"],
                unique: false,
            },
            Index {
                name: "contacts_last_seen",
                columns: &["role", "last_seen_at"],
                unique: false,
            },
        ],
    },
    Collection {
        name: "conversations",
        kind: CollectionKind::Table,
        location: DB,
        description: "Conversations of a contact. The newest part's time is the conversation's activity.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(CONVERSATION),
            Field {
                name: "id",
                description: "The conversation id (`cv_…`).",
                ..CONVERSATION
            },
            pseudonym(
                CONVERSATION,
                "contact_id",
                "The contact the conversation belongs to.",
            ),
            subject_key_id(CONVERSATION),
            created_at(CONVERSATION),
            Field {
                name: "updated_at",
                description: "When the conversation was made or moved (its last activity is its newest part).",
                ..CONVERSATION
            },
        ],
        indexes: &[Index {
            name: "conversations_contact",
            columns: &["workspace_id", "contact_id", "id"],
            unique: false,
        }],
    },
    Collection {
        name: "conversation_parts",
        kind: CollectionKind::Table,
        location: DB,
        description: "Messages of a conversation, by the contact or by teammates, sealed under the conversation's subject key.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(CONVERSATION),
            Field {
                name: "id",
                description: "The part id (`pt_…`).",
                ..CONVERSATION
            },
            Field {
                name: "conversation_id",
                description: "The conversation the part belongs to.",
                ..CONVERSATION
            },
            Field {
                name: "author_type",
                description: "Who wrote it: `contact`, `teammate`, …",
                ..CONVERSATION
            },
            pseudonym(
                CONVERSATION,
                "author_id",
                "The author's id (`ct_…` or `tm_…`).",
            ),
            Field {
                name: "body_ct",
                data_category: CONTENT,
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "The message text, sealed.",
                ..CONVERSATION
            },
            created_at(CONVERSATION),
        ],
        indexes: &[Index {
            name: "parts_conversation",
            columns: &["workspace_id", "conversation_id", "created_at", "id"],
            unique: false,
        }],
    },
    Collection {
        name: "events",
        kind: CollectionKind::Table,
        location: DB,
        description: "Events tracked for a contact (what they did), sealed under their subject key.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(CONTACT),
            Field {
                name: "id",
                description: "The event id (`ev_…`).",
                ..CONTACT
            },
            pseudonym(CONTACT, "contact_id", "The contact the event is about."),
            subject_key_id(CONTACT),
            Field {
                name: "name_ct",
                data_category: "user.behavior",
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "The event name, sealed.",
                ..CONTACT
            },
            Field {
                name: "metadata_ct",
                data_category: "user.behavior",
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "The event's metadata (a JSON object), sealed.",
                ..CONTACT
            },
            created_at(CONTACT),
        ],
        indexes: &[Index {
            name: "events_contact",
            columns: &["workspace_id", "contact_id", "id"],
            unique: false,
        }],
    },
    Collection {
        name: "attachments",
        kind: CollectionKind::Table,
        location: DB,
        description: "Files attached to conversations: the metadata row (the content is in `attachment_files`).",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(CONVERSATION),
            Field {
                name: "id",
                description: "The attachment id (`at_…`), also the file's name.",
                ..CONVERSATION
            },
            Field {
                name: "conversation_id",
                description: "The conversation the file is attached to.",
                ..CONVERSATION
            },
            subject_key_id(CONVERSATION),
            Field {
                name: "filename_ct",
                data_category: CONTENT,
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "The file name, sealed.",
                ..CONVERSATION
            },
            Field {
                name: "content_type_ct",
                data_category: CONTENT,
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "The media type, sealed.",
                ..CONVERSATION
            },
            Field {
                name: "size_bytes",
                description: "The file's size.",
                ..CONVERSATION
            },
            created_at(CONVERSATION),
        ],
        indexes: &[Index {
            name: "attachments_conversation",
            columns: &["workspace_id", "conversation_id", "id"],
            unique: false,
        }],
    },
    Collection {
        name: "messenger_settings",
        kind: CollectionKind::Table,
        location: DB,
        description: "The workspace's messenger settings (identity verification mode, JWT lifetime cap).",
        primary_key: &["workspace_id"],
        fields: &[
            workspace_id(WS),
            Field {
                name: "identity_verification",
                data_use: SECURITY,
                description: "`off`, `optional` or `enforced`.",
                ..WS
            },
            Field {
                name: "jwt_max_lifetime_s",
                data_use: SECURITY,
                description: "The longest identity JWT lifetime accepted.",
                ..WS
            },
            Field {
                name: "updated_at",
                description: "When the settings last changed.",
                ..WS
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "messenger_secrets",
        kind: CollectionKind::Table,
        location: DB,
        description: "Identity verification secrets (HMAC/JWT keys the workspace's backend signs users with), sealed. Kept until deleted.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(WS),
            Field {
                name: "id",
                data_category: SYS_AUTH,
                description: "The secret id (`ms_…`), the JWT `kid`.",
                ..WS
            },
            Field {
                name: "name_ct",
                encryption: Encryption::WorkspaceKey,
                description: "The secret's name, sealed.",
                ..WS
            },
            Field {
                name: "platforms",
                data_category: SYS_AUTH,
                description: "The messenger platforms the secret is valid for.",
                ..WS
            },
            Field {
                name: "value_ct",
                data_category: SYS_AUTH,
                data_use: AUTHENTICATION,
                encryption: Encryption::WorkspaceKey,
                description: "The secret value (`ilh_…`), sealed.",
                ..WS
            },
            ws_key_version(WS),
            created_at(WS),
        ],
        indexes: &[],
    },
    Collection {
        name: "visitor_tokens",
        kind: CollectionKind::Table,
        location: DB,
        description: "Tokens a visitor's messenger keeps (`ilv_…`) to come back as the same visitor, stored as SHA-256 only. Deleted when the visitor is merged into a user or deleted.",
        primary_key: &["token_hash"],
        fields: &[
            Field {
                name: "token_hash",
                data_category: CREDENTIALS,
                data_use: AUTHENTICATION,
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the visitor token.",
                ..VISITOR
            },
            workspace_id(VISITOR),
            pseudonym(VISITOR, "contact_id", "The visitor."),
            created_at(VISITOR),
        ],
        indexes: &[Index {
            name: "visitor_tokens_contact",
            columns: &["workspace_id", "contact_id"],
            unique: false,
        }],
    },
    Collection {
        name: "messenger_sessions",
        kind: CollectionKind::Table,
        location: DB,
        description: "Messenger sessions (`ilm_…`) of a contact, stored as SHA-256 only; expired ones are deleted when the workspace next boots a messenger and by the retention sweep.",
        primary_key: &["token_hash"],
        fields: &[
            Field {
                name: "token_hash",
                data_category: CREDENTIALS,
                data_use: AUTHENTICATION,
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the session token.",
                ..SESSION
            },
            workspace_id(SESSION),
            pseudonym(SESSION, "contact_id", "The contact the session acts as."),
            Field {
                name: "scope",
                data_category: SYS_AUTH,
                description: "`contact` (all the contact's conversations) or `session` (only those it started).",
                ..SESSION
            },
            Field {
                name: "expires_at",
                data_category: SYS_AUTH,
                description: "When the session ends (server setting `messenger.session_ttl_s`, default one hour).",
                ..SESSION
            },
            created_at(SESSION),
        ],
        indexes: &[
            Index {
                name: "messenger_sessions_contact",
                columns: &["workspace_id", "contact_id"],
                unique: false,
            },
            Index {
                name: "messenger_sessions_expiry",
                columns: &["workspace_id", "expires_at"],
                unique: false,
            },
            // Migration 11: the retention sweep finds expired sessions of every workspace.
            Index {
                name: "messenger_sessions_expires",
                columns: &["expires_at"],
                unique: false,
            },
        ],
    },
    Collection {
        name: "messenger_session_conversations",
        kind: CollectionKind::Table,
        location: DB,
        description: "The conversations a `session`-scoped messenger session started (what it may see).",
        primary_key: &["token_hash", "conversation_id"],
        fields: &[
            Field {
                name: "token_hash",
                data_category: CREDENTIALS,
                data_use: AUTHENTICATION,
                encryption: Encryption::Sha256Hash,
                description: "The session (SHA-256 of its token).",
                ..SESSION
            },
            workspace_id(SESSION),
            Field {
                name: "conversation_id",
                description: "A conversation the session started.",
                ..SESSION
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "roles",
        kind: CollectionKind::Table,
        location: DB,
        description: "Custom roles: a sealed name and a permission list.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(WS),
            Field {
                name: "id",
                data_category: SYS_AUTH,
                description: "The role id (`rl_…`).",
                ..WS
            },
            Field {
                name: "name_ct",
                encryption: Encryption::WorkspaceKey,
                description: "The role's name, sealed.",
                ..WS
            },
            ws_key_version(WS),
            Field {
                name: "permissions",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                description: "The permissions the role grants.",
                ..WS
            },
            created_at(WS),
        ],
        indexes: &[],
    },
    Collection {
        name: "teammates",
        kind: CollectionKind::Table,
        location: DB,
        description: "Teammates (employees of the workspace's business). Email and name sealed under the workspace key, email blind-indexed for sign-in. Removal clears credentials at once; the record goes 30 days later.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(TEAMMATE),
            pseudonym(TEAMMATE, "id", "The teammate id (`tm_…`), random."),
            Field {
                name: "email_ct",
                data_category: "user.contact.email",
                encryption: Encryption::WorkspaceKey,
                description: "Email address, sealed.",
                ..TEAMMATE
            },
            Field {
                name: "email_bidx",
                data_category: "user.contact.email",
                data_use: AUTHENTICATION,
                encryption: Encryption::HmacBlindIndex,
                description: "Blind index of the email address (unique per workspace), for sign-in.",
                ..TEAMMATE
            },
            Field {
                name: "name_ct",
                data_category: "user.name",
                encryption: Encryption::WorkspaceKey,
                description: "Name, sealed.",
                ..TEAMMATE
            },
            ws_key_version(TEAMMATE),
            Field {
                name: "role",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                description: "A built-in role (`owner`, `admin`, `agent`, `viewer`) or a custom role id.",
                ..TEAMMATE
            },
            Field {
                name: "password_hash",
                data_category: "user.authorization.password",
                encryption: Encryption::Argon2id,
                erasure: Erasure::ClearedOnRemoval,
                description: "The password as an Argon2id PHC string (NULL until the invitation is accepted).",
                ..TEAMMATE_AUTH
            },
            Field {
                name: "totp_secret_ct",
                data_category: CREDENTIALS,
                encryption: Encryption::WorkspaceKey,
                erasure: Erasure::ClearedOnRemoval,
                description: "The TOTP secret, sealed.",
                ..TEAMMATE_AUTH
            },
            Field {
                name: "totp_enabled",
                erasure: Erasure::ClearedOnRemoval,
                description: "Whether TOTP is confirmed and required at sign-in.",
                ..TEAMMATE_AUTH
            },
            Field {
                name: "totp_last_step",
                data_category: SYS_AUTH,
                data_use: AUTHENTICATION,
                description: "The last accepted TOTP time step (each step is used once).",
                ..TEAMMATE
            },
            Field {
                name: "removed_at",
                description: "When the teammate was removed (NULL while a member); starts the 30 days.",
                ..TEAMMATE
            },
            created_at(TEAMMATE),
        ],
        indexes: &[
            Index {
                name: "teammates_email",
                columns: &["workspace_id", "email_bidx"],
                unique: true,
            },
            Index {
                name: "teammates_removed",
                columns: &["removed_at"],
                unique: false,
            },
        ],
    },
    Collection {
        name: "invitations",
        kind: CollectionKind::Table,
        location: DB,
        description: "Pending teammate invitations, stored as SHA-256 only; deleted when accepted or when the teammate is removed, refused after seven days and then deleted by the retention sweep.",
        primary_key: &["token_hash"],
        fields: &[
            Field {
                name: "token_hash",
                data_category: CREDENTIALS,
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the invitation token.",
                ..INVITATION
            },
            workspace_id(INVITATION),
            pseudonym(INVITATION, "teammate_id", "The invited teammate."),
            Field {
                name: "expires_at",
                description: "When the invitation stops being accepted.",
                ..INVITATION
            },
            created_at(INVITATION),
        ],
        // Migration 11: the retention sweep finds expired invitations through it.
        indexes: &[Index {
            name: "invitations_expires",
            columns: &["expires_at"],
            unique: false,
        }],
    },
    Collection {
        name: "teammate_sessions",
        kind: CollectionKind::Table,
        location: DB,
        description: "Teammates' signed-in sessions (cookie) and CSRF tokens, stored as SHA-256 only. Idle and absolute lifetimes are per-workspace security settings (default 4 days idle, 30 days absolute, at most 365); the retention sweep deletes a session once either has passed.",
        primary_key: &["token_hash"],
        fields: &[
            Field {
                name: "token_hash",
                data_category: CREDENTIALS,
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the session cookie's token.",
                ..TEAMMATE_SESSION
            },
            Field {
                name: "id",
                description: "The session's id, to list and revoke it by.",
                ..TEAMMATE_SESSION
            },
            workspace_id(TEAMMATE_SESSION),
            pseudonym(TEAMMATE_SESSION, "teammate_id", "The signed-in teammate."),
            Field {
                name: "csrf_hash",
                data_category: CREDENTIALS,
                data_use: SECURITY,
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the session's CSRF token.",
                ..TEAMMATE_SESSION
            },
            created_at(TEAMMATE_SESSION),
            Field {
                name: "last_seen_at",
                description: "Last use (updated at most once a minute), for the idle limit.",
                ..TEAMMATE_SESSION
            },
        ],
        indexes: &[Index {
            name: "teammate_sessions_teammate",
            columns: &["workspace_id", "teammate_id"],
            unique: false,
        }],
    },
    Collection {
        name: "recovery_codes",
        kind: CollectionKind::Table,
        location: DB,
        description: "Single-use two-factor recovery codes, stored as SHA-256 only; deleted when used, replaced, when TOTP is disabled, or on removal.",
        primary_key: &["workspace_id", "teammate_id", "code_hash"],
        fields: &[
            workspace_id(TEAMMATE_AUTH),
            pseudonym(TEAMMATE_AUTH, "teammate_id", "The code's owner."),
            Field {
                name: "code_hash",
                data_category: CREDENTIALS,
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the normalised recovery code (50 random bits).",
                ..TEAMMATE_AUTH
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "workspace_security",
        kind: CollectionKind::Table,
        location: DB,
        description: "The workspace's security settings for teammates.",
        primary_key: &["workspace_id"],
        fields: &[
            workspace_id(WS),
            Field {
                name: "require_two_factor",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                description: "Whether teammates must use a second factor.",
                ..WS
            },
            Field {
                name: "session_idle_s",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                description: "Session idle lifetime.",
                ..WS
            },
            Field {
                name: "session_absolute_s",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                description: "Session absolute lifetime.",
                ..WS
            },
            Field {
                name: "ip_allowlist",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                description: "Addresses and CIDR ranges teammates may sign in from (network configuration, set by the workspace's admins).",
                ..WS
            },
            Field {
                name: "updated_at",
                description: "When the settings last changed.",
                ..WS
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "workspace_retention",
        kind: CollectionKind::Table,
        location: DB,
        description: "The workspace's retention settings (defaults until first set).",
        primary_key: &["workspace_id"],
        fields: &[
            workspace_id(WS),
            Field {
                name: "conversation_days",
                description: "Delete conversations this many days after their last message (null: keep).",
                ..WS
            },
            Field {
                name: "visitor_days",
                description: "Delete visitors this many days after they were last seen (at most 274).",
                ..WS
            },
            Field {
                name: "updated_at",
                description: "When the settings last changed.",
                ..WS
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "login_throttle",
        kind: CollectionKind::Table,
        location: DB,
        description: "Failed sign-in counters per account and per source address, keyed by a blind index so no email or address is stored; a successful sign-in clears the account's row; the retention sweep deletes a row 24 hours after its last failure and the end of its lock.",
        primary_key: &["workspace_id", "subject"],
        fields: &[
            workspace_id(THROTTLE),
            Field {
                name: "subject",
                data_category: UID,
                encryption: Encryption::HmacBlindIndex,
                description: "Blind index of the sign-in email or of the source address: a pseudonymous identifier derived from them.",
                ..THROTTLE
            },
            Field {
                name: "failures",
                description: "Consecutive failures.",
                ..THROTTLE
            },
            Field {
                name: "locked_until",
                description: "Back-off: no attempt is checked before this time.",
                ..THROTTLE
            },
            Field {
                name: "updated_at",
                description: "The last failure.",
                ..THROTTLE
            },
        ],
        // Migration 11: the retention sweep finds stale throttle rows through it.
        indexes: &[Index {
            name: "login_throttle_updated",
            columns: &["updated_at"],
            unique: false,
        }],
    },
    Collection {
        name: "teammate_passkeys",
        kind: CollectionKind::Table,
        location: DB,
        description: "Teammates' passkeys (WebAuthn credentials serialised by webauthn-rs), sealed under the workspace key.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(TEAMMATE_AUTH),
            Field {
                name: "id",
                description: "The passkey's id.",
                ..TEAMMATE_AUTH
            },
            pseudonym(TEAMMATE_AUTH, "teammate_id", "The passkey's owner."),
            Field {
                name: "name_ct",
                data_category: "user.device",
                encryption: Encryption::WorkspaceKey,
                description: "The name the teammate gave the authenticator (often a device name), sealed.",
                ..TEAMMATE_AUTH
            },
            Field {
                name: "passkey_ct",
                data_category: CREDENTIALS,
                encryption: Encryption::WorkspaceKey,
                description: "The credential (public key, id, signature counter), sealed.",
                ..TEAMMATE_AUTH
            },
            ws_key_version(TEAMMATE_AUTH),
            created_at(TEAMMATE_AUTH),
        ],
        indexes: &[Index {
            name: "teammate_passkeys_teammate",
            columns: &["workspace_id", "teammate_id"],
            unique: false,
        }],
    },
    Collection {
        name: "webauthn_ceremonies",
        kind: CollectionKind::Table,
        location: DB,
        description: "Pending WebAuthn registrations and sign-ins: the ceremony state, sealed, five minutes, deleted on use; expired ones are deleted when the workspace starts the next ceremony and by the retention sweep.",
        primary_key: &["token_hash"],
        fields: &[
            Field {
                name: "token_hash",
                data_category: CREDENTIALS,
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the ceremony token.",
                ..CEREMONY
            },
            workspace_id(CEREMONY),
            pseudonym(CEREMONY, "teammate_id", "The teammate in the ceremony."),
            Field {
                name: "kind",
                description: "`registration` or `authentication`.",
                ..CEREMONY
            },
            Field {
                name: "state_ct",
                data_category: CREDENTIALS,
                encryption: Encryption::WorkspaceKey,
                description: "The ceremony state (challenge), sealed.",
                ..CEREMONY
            },
            ws_key_version(CEREMONY),
            Field {
                name: "expires_at",
                description: "When the ceremony expires.",
                ..CEREMONY
            },
        ],
        // Migration 11: the retention sweep finds expired ceremonies through it.
        indexes: &[Index {
            name: "webauthn_ceremonies_expires",
            columns: &["expires_at"],
            unique: false,
        }],
    },
    Collection {
        name: "activity_log",
        kind: CollectionKind::Table,
        location: DB,
        description: "The tamper-evident activity log: one hash chain per workspace. Plain columns are for filtering; the entry itself is sealed. Survives erasure (people appear by pseudonymous id); the retention cut removes a prefix after signing a checkpoint.",
        primary_key: &["workspace_id", "seq"],
        fields: &[
            workspace_id(AUDIT),
            Field {
                name: "seq",
                description: "Position in the workspace's chain.",
                ..AUDIT
            },
            Field {
                name: "id",
                description: "The entry id.",
                ..AUDIT
            },
            Field {
                name: "type",
                description: "The event type (see docs/activity-log.md).",
                ..AUDIT
            },
            created_at(AUDIT),
            Field {
                name: "actor_type",
                data_subject: Some(Employee),
                erasure: Erasure::KeptPseudonymous,
                description: "`teammate`, `api_token`, `staff` or `system`.",
                ..AUDIT
            },
            pseudonym(
                Field {
                    data_subject: Some(Employee),
                    erasure: Erasure::KeptPseudonymous,
                    ..AUDIT
                },
                "actor_id",
                "The actor's id (`tm_…`, a token id, …).",
            ),
            Field {
                name: "target_type",
                description: "The kind of object acted on.",
                ..AUDIT
            },
            pseudonym(
                Field {
                    data_subject: Some(Customer),
                    erasure: Erasure::KeptPseudonymous,
                    ..AUDIT
                },
                "target_id",
                "The object acted on (a contact id `ct_…`, a teammate id, …).",
            ),
            Field {
                name: "body_ct",
                data_category: "user.device.ip_address",
                data_subject: Some(Employee),
                encryption: Encryption::WorkspaceKey,
                erasure: Erasure::KeptPseudonymous,
                description: "The entry as canonical JSON, sealed: actor (type, id, source address, user agent), target and metadata (counts, names of changed settings — never contact data).",
                ..AUDIT
            },
            ws_key_version(AUDIT),
            Field {
                name: "hash",
                encryption: Encryption::Sha256Hash,
                description: "chain_hash(previous hash, seq, leaf_hash(entry)), lower-case hex.",
                ..AUDIT
            },
        ],
        indexes: &[Index {
            name: "activity_log_time",
            columns: &["workspace_id", "created_at"],
            unique: false,
        }],
    },
    Collection {
        name: "activity_heads",
        kind: CollectionKind::Table,
        location: DB,
        description: "Each workspace chain's head, first retained entry and last checkpoint.",
        primary_key: &["workspace_id"],
        fields: &[
            workspace_id(AUDIT_STATE),
            Field {
                name: "seq",
                description: "The head's sequence number.",
                ..AUDIT_STATE
            },
            Field {
                name: "hash",
                encryption: Encryption::Sha256Hash,
                description: "The head's chain hash.",
                ..AUDIT_STATE
            },
            Field {
                name: "first_seq",
                description: "The first retained entry (after a retention cut).",
                ..AUDIT_STATE
            },
            Field {
                name: "anchor_hash",
                encryption: Encryption::Sha256Hash,
                description: "The chain hash before the first retained entry.",
                ..AUDIT_STATE
            },
            Field {
                name: "checkpoint_seq",
                description: "The last signed checkpoint's size.",
                ..AUDIT_STATE
            },
            Field {
                name: "checkpoint_at",
                description: "When the last checkpoint was signed.",
                ..AUDIT_STATE
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "activity_checkpoints",
        kind: CollectionKind::Table,
        location: DB,
        description: "Signed checkpoints of the chains (Ed25519 over the checkpoint note).",
        primary_key: &["workspace_id", "tree_size"],
        fields: &[
            workspace_id(AUDIT),
            Field {
                name: "tree_size",
                description: "How many entries the checkpoint covers.",
                ..AUDIT
            },
            Field {
                name: "head_hash",
                encryption: Encryption::Sha256Hash,
                description: "The chain hash at that size.",
                ..AUDIT
            },
            created_at(AUDIT),
            Field {
                name: "key_id",
                description: "The signing key's id.",
                ..AUDIT
            },
            Field {
                name: "signature",
                description: "The Ed25519 signature.",
                ..AUDIT
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "activity_sink_cursors",
        kind: CollectionKind::Table,
        location: DB,
        description: "How far each configured external sink (SIEM) has been delivered, per workspace.",
        primary_key: &["sink", "workspace_id"],
        fields: &[
            Field {
                name: "sink",
                description: "The sink's configured name.",
                ..AUDIT_STATE
            },
            workspace_id(AUDIT_STATE),
            Field {
                name: "seq",
                description: "The last delivered entry.",
                ..AUDIT_STATE
            },
        ],
        indexes: &[],
    },
    // ---- sub-processors, webhooks and the outbox (docs/subprocessors.md)
    Collection {
        name: "subprocessors",
        kind: CollectionKind::Table,
        location: DB,
        description: "The region's sub-processor registry (operator-managed, public at GET /v1/subprocessors): who may receive data from this region's workspaces and at which hosts. Outbound deliveries go only to these hosts. A sub-processor of several regions has a row in each region's database.",
        primary_key: &["id"],
        fields: &[
            Field {
                name: "id",
                description: "The sub-processor id (`sp_…`).",
                ..SUBPROCESSOR
            },
            Field {
                name: "name",
                description: "The sub-processor's (company's) name.",
                ..SUBPROCESSOR
            },
            Field {
                name: "purpose",
                description: "What it does with the data.",
                ..SUBPROCESSOR
            },
            Field {
                name: "data_categories",
                description: "The fideslang data categories it receives (JSON array).",
                ..SUBPROCESSOR
            },
            Field {
                name: "regions",
                description: "The regions it is registered for (JSON array).",
                ..SUBPROCESSOR
            },
            Field {
                name: "hosts",
                description: "The hosts it receives data at (JSON array of lower-case DNS names and IP addresses): the outbound gate's allow-list.",
                ..SUBPROCESSOR
            },
            Field {
                name: "deletion_notice_url",
                description: "Where signed erasure notices are POSTed (its host is one of `hosts`).",
                ..SUBPROCESSOR
            },
            created_at(SUBPROCESSOR),
            Field {
                name: "updated_at",
                description: "When the entry last changed.",
                ..SUBPROCESSOR
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "webhooks",
        kind: CollectionKind::Table,
        location: DB,
        description: "A workspace's webhook subscriptions; a subscription's host must be a registered sub-processor's. Deleting one cancels its pending deliveries.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(WS),
            Field {
                name: "id",
                description: "The subscription id (`wh_…`).",
                ..WS
            },
            Field {
                name: "url_ct",
                encryption: Encryption::WorkspaceKey,
                description: "The receiver's URL, sealed (it may carry the receiver's token).",
                ..WS
            },
            Field {
                name: "secret_ct",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                encryption: Encryption::WorkspaceKey,
                description: "The signing secret (`whsec_…`, Standard Webhooks HMAC-SHA-256 key), sealed; shown once when the subscription is made.",
                ..WS
            },
            Field {
                name: "events",
                description: "The subscribed event names (comma-separated).",
                ..WS
            },
            ws_key_version(WS),
            created_at(WS),
        ],
        indexes: &[],
    },
    Collection {
        name: "outbox",
        kind: CollectionKind::Table,
        location: DB,
        description: "The transactional outbox: one row per outbound delivery (webhook or erasure notice), written in the transaction of the change it reports, retried with backoff. A webhook body is cleared the moment its delivery ends; ended rows are deleted 30 days later. Erasing a subject deletes every delivery carrying it.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(OUTBOX),
            Field {
                name: "id",
                description: "The delivery id (`msg_…`), sent as `webhook-id` so receivers can deduplicate.",
                ..OUTBOX
            },
            Field {
                name: "kind",
                description: "`webhook` or `erasure_notice`.",
                ..OUTBOX
            },
            Field {
                name: "event",
                description: "The event type (`contact.created`, …) or the notice's document type.",
                ..OUTBOX
            },
            Field {
                name: "webhook_id",
                description: "Webhooks: the subscription (`wh_…`) whose URL and secret are used when sending.",
                ..OUTBOX
            },
            Field {
                name: "subprocessor_id",
                description: "Erasure notices: the sub-processor notified; webhooks: the sub-processor whose host received it.",
                ..OUTBOX
            },
            Field {
                name: "payload_ct",
                data_category: "user",
                data_subject: Some(Customer),
                encryption: Encryption::WorkspaceKey,
                erasure: Erasure::DeletedWithSubject,
                description: "Webhooks: the exact JSON body, sealed (e.g. `contact.created` carries the contact's email and name). Set to NULL when the delivery ends, whatever the outcome.",
                ..OUTBOX
            },
            ws_key_version(OUTBOX),
            Field {
                name: "document",
                data_subject: Some(Customer),
                erasure: Erasure::KeptPseudonymous,
                description: "Erasure notices: the signed document (Ed25519, region key); it names the subject by pseudonymous contact id only.",
                ..OUTBOX
            },
            pseudonym(
                Field {
                    data_subject: Some(Customer),
                    erasure: Erasure::DeletedWithSubject,
                    ..OUTBOX
                },
                "subject_id",
                "The contact (`ct_…`) whose data the body carries, if any.",
            ),
            Field {
                name: "attempts",
                description: "Attempts made (counted when an attempt is claimed).",
                ..OUTBOX
            },
            Field {
                name: "next_attempt_at",
                description: "When the delivery is due (or, while an attempt runs, when its lease ends).",
                ..OUTBOX
            },
            Field {
                name: "status",
                description: "`pending`, `delivered`, `failed` or `refused` (by the outbound gate).",
                ..OUTBOX
            },
            Field {
                name: "last_error",
                description: "A stable code for the last failure (`http_500`, `timeout`, `host_not_a_subprocessor`, …); never a response body.",
                ..OUTBOX
            },
            created_at(OUTBOX),
            Field {
                name: "updated_at",
                description: "When the row last changed (when it ended, once ended).",
                ..OUTBOX
            },
        ],
        indexes: &[
            Index {
                name: "outbox_due",
                columns: &["status", "next_attempt_at"],
                unique: false,
            },
            Index {
                name: "outbox_subject",
                columns: &["workspace_id", "subject_id"],
                unique: false,
            },
            Index {
                name: "outbox_webhook",
                columns: &["workspace_id", "webhook_id"],
                unique: false,
            },
        ],
    },
    Collection {
        name: "subject_disclosures",
        kind: CollectionKind::Table,
        location: DB,
        description: "Which sub-processors may have received a data subject's data (recorded just before a delivery carrying the subject is sent). Erasure sends each a signed deletion notice and deletes these rows.",
        primary_key: &["workspace_id", "contact_id", "subprocessor_id"],
        fields: &[
            workspace_id(DISCLOSURE),
            pseudonym(DISCLOSURE, "contact_id", "The contact (`ct_…`)."),
            Field {
                name: "subprocessor_id",
                description: "The sub-processor (`sp_…`).",
                ..DISCLOSURE
            },
            Field {
                name: "first_at",
                description: "When it was first sent the subject's data.",
                ..DISCLOSURE
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "data_requests",
        kind: CollectionKind::Table,
        location: DB,
        description: "Data subject requests (access and erasure). The subject is named by its pseudonymous contact id only; an access request's archive key is kept here wrapped by the workspace key until the archive expires (7 days) or its subject is erased.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(REQUEST),
            Field {
                name: "id",
                description: "The request id (`dr_…`).",
                ..REQUEST
            },
            Field {
                name: "type",
                description: "`access` or `erasure`.",
                ..REQUEST
            },
            Field {
                name: "status",
                description: "`completed`, `purging` (an erasure whose files are being removed), `expired` or `erased` (an access archive that is gone).",
                ..REQUEST
            },
            Field {
                name: "subject_id",
                data_category: UID,
                description: "The subject's contact id: a random pseudonym, meaningless once the contact is erased.",
                ..REQUEST
            },
            Field {
                name: "requested_by",
                data_subject: Some(Employee),
                description: "Who asked: `teammate:tm_…` or `api_token:tk_…`.",
                ..REQUEST
            },
            Field {
                name: "archive_key_ct",
                data_use: SERVICE,
                encryption: Encryption::WorkspaceKey,
                retention: Retention::Expires {
                    seconds: ACCESS_ARCHIVE_SECONDS,
                },
                erasure: Erasure::DeletedWithSubject,
                description: "The access archive's random AES-256-GCM key, wrapped by the workspace key; set to null when the archive expires or its subject is erased, which makes the archive file unreadable at once.",
                ..REQUEST
            },
            Field {
                name: "ws_key_version",
                description: "The workspace-key version that wraps the archive key.",
                ..REQUEST
            },
            Field {
                name: "archive_bytes",
                description: "The archive's size before encryption.",
                ..REQUEST
            },
            Field {
                name: "pending_blobs",
                description: "An erasure's files still to remove (attachment and archive ids) while it is `purging`.",
                ..REQUEST
            },
            Field {
                name: "receipt_id",
                description: "An erasure's signed receipt (`deletion_receipts`).",
                ..REQUEST
            },
            created_at(REQUEST),
            Field {
                name: "completed_at",
                description: "When the request finished.",
                ..REQUEST
            },
            Field {
                name: "expires_at",
                description: "Until when an access archive can be downloaded.",
                ..REQUEST
            },
        ],
        indexes: &[
            Index {
                name: "data_requests_subject",
                columns: &["workspace_id", "subject_id", "type"],
                unique: false,
            },
            Index {
                name: "data_requests_status",
                columns: &["status", "expires_at"],
                unique: false,
            },
        ],
    },
    Collection {
        name: "deletion_receipts",
        kind: CollectionKind::Table,
        location: DB,
        description: "Signed deletion receipts (Ed25519, the region's activity-log key): one per erasure and per workspace deletion. No foreign key: a workspace deletion's receipt outlives the workspace.",
        primary_key: &["id"],
        fields: &[
            Field {
                name: "id",
                description: "The receipt id (`rc_…`).",
                ..RECEIPT
            },
            Field {
                name: "workspace_id",
                description: "The workspace the receipt is about.",
                ..RECEIPT
            },
            Field {
                name: "kind",
                description: "`erasure` or `workspace`.",
                ..RECEIPT
            },
            Field {
                name: "subject_id",
                data_category: UID,
                data_subject: Some(Customer),
                description: "An erasure's subject: its pseudonymous contact id.",
                ..RECEIPT
            },
            Field {
                name: "receipt",
                description: "The signed receipt (JSON): ids, times, counts per data element, destroyed key ids, sub-processors notified. Pseudonymous ids only.",
                ..RECEIPT
            },
            created_at(RECEIPT),
        ],
        indexes: &[Index {
            name: "deletion_receipts_workspace",
            columns: &["workspace_id", "created_at"],
            unique: false,
        }],
    },
    Collection {
        name: "access_archive_files",
        kind: CollectionKind::Blobs,
        location: "regions/<region>/blobs/<workspace>/exports/<data request>",
        description: "Access-request archives (a tar of the subject document and attachment files), sealed in 1 MiB chunks under the request's archive key before the first byte is written. Deleted after 7 days or when the subject is erased.",
        primary_key: &[],
        fields: &[
            Field {
                name: "<data request>",
                description: "The file name: the request id (`dr_…`).",
                ..ARCHIVE
            },
            Field {
                name: "content",
                data_category: CONTENT,
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "Everything Interlock holds about the subject, sealed under the archive key (a random key per request, wrapped by the workspace key).",
                ..ARCHIVE
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "attachment_files",
        kind: CollectionKind::Blobs,
        location: "regions/<region>/blobs/<workspace>/<attachment>",
        description: "Attachment contents, one file per attachment, sealed before the first byte is written (temp file, fsync, rename). Deleted after the deleting transaction commits.",
        primary_key: &[],
        fields: &[
            Field {
                name: "<workspace>",
                description: "The folder: the workspace id.",
                ..CONVERSATION
            },
            Field {
                name: "<attachment>",
                description: "The file name: the attachment id (`at_…`).",
                ..CONVERSATION
            },
            Field {
                name: "content",
                data_category: CONTENT,
                encryption: Encryption::SubjectKey,
                erasure: Erasure::ShreddedWithSubjectKey,
                description: "The file's bytes, sealed under the conversation's subject key.",
                ..CONVERSATION
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "key_files",
        kind: CollectionKind::KeyFiles,
        location: "<key_dir>/<region>/ (default <data_dir>/keys; folder 0700, files 0600)",
        description: "The region's root keys, its staff device CA and its erasure ledger. Production keeps them apart from the data (and from its backups).",
        primary_key: &[],
        fields: &[
            Field {
                name: "master-v<N>.key",
                data_use: OPERATIONS,
                retention: Retention::UntilRetired,
                erasure: Erasure::NotPersonal,
                description: "A master key version (256 bits, hex) that wraps workspace keys; rotated with `interlock keys rotate`, deleted with `interlock keys retire`.",
                ..WS
            },
            Field {
                name: "activity-signing-ed25519.key",
                data_use: SECURITY,
                retention: Retention::OperatorManaged,
                erasure: Erasure::NotPersonal,
                description: "The Ed25519 key (PKCS#8) that signs activity-log checkpoints.",
                ..WS
            },
            Field {
                name: "erasure-ledger.jsonl",
                data_subject: Some(Customer),
                data_use: "essential.legal_obligation",
                retention: Retention::OperatorManaged,
                erasure: Erasure::KeptPseudonymous,
                description: "The erasure ledger: one JSON line per erased contact (workspace, contact and subject-key ids, time) or deleted workspace, appended and fsync'd before the erasure commits. Kept apart from the backed-up data so `interlock restore` applies every erasure again; pseudonymous ids only. Keep it as long as backups older than its newest line exist.",
                ..WS
            },
            Field {
                name: "device-ca-key.pem",
                data_use: SECURITY,
                retention: Retention::OperatorManaged,
                erasure: Erasure::NotPersonal,
                description: "The region's staff device CA key (ECDSA P-256, PKCS#8): it signs the client certificates of trusted staff devices (`interlock staff device issue`).",
                ..WS
            },
            Field {
                name: "device-ca-cert.pem",
                data_use: SECURITY,
                retention: Retention::OperatorManaged,
                erasure: Erasure::NotPersonal,
                description: "The region's staff device CA certificate: the server accepts client certificates that chain to it, and no others.",
                ..WS
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "server_files",
        kind: CollectionKind::KeyFiles,
        location: "<data_dir>/",
        description: "The server's own credentials.",
        primary_key: &[],
        fields: &[
            Field {
                name: "operator-token",
                data_category: SYS_AUTH,
                data_use: AUTHENTICATION,
                retention: Retention::OperatorManaged,
                erasure: Erasure::NotPersonal,
                description: "The operator token (`ilo_…`, file mode 0600), made on first start.",
                ..WS
            },
            Field {
                name: "tls/cert.pem",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                retention: Retention::OperatorManaged,
                erasure: Erasure::NotPersonal,
                description: "The self-signed TLS certificate, when no certificate is configured.",
                ..WS
            },
            Field {
                name: "tls/key.pem",
                data_category: SYS_AUTH,
                data_use: SECURITY,
                retention: Retention::OperatorManaged,
                erasure: Erasure::NotPersonal,
                description: "Its private key.",
                ..WS
            },
        ],
        indexes: &[],
    },
    // ---- operator staff access (docs/staff-access.md)
    Collection {
        name: "staff",
        kind: CollectionKind::Table,
        location: DB,
        description: "The operator's staff members of the region (support, engineers, approvers): principals of the region, never of a workspace; they hold no standing access to any workspace.",
        primary_key: &["id"],
        fields: &[
            Field {
                name: "id",
                data_category: UID,
                description: "The staff member's pseudonymous id (`sf_…`): the only way a workspace's activity log names them.",
                ..STAFF
            },
            Field {
                name: "email_ct",
                data_category: "user.contact.email",
                encryption: Encryption::MasterKey,
                description: "The staff member's work email, sealed under the region's master key.",
                ..STAFF
            },
            Field {
                name: "role",
                description: "support, engineer or approver.",
                ..STAFF
            },
            Field {
                name: "totp_secret_ct",
                data_category: CREDENTIALS,
                encryption: Encryption::MasterKey,
                description: "The TOTP secret (RFC 6238), sealed under the region's master key.",
                ..STAFF
            },
            Field {
                name: "master_version",
                description: "The master key version the sealed fields are under.",
                ..STAFF
            },
            Field {
                name: "totp_last_step",
                description: "The last TOTP time step accepted (replay protection).",
                ..STAFF
            },
            Field {
                name: "created_at",
                description: "When the member was added.",
                ..STAFF
            },
            Field {
                name: "disabled_at",
                description: "When the member was disabled (sessions and grants end at once).",
                ..STAFF
            },
            Field {
                name: "failed_sign_ins",
                data_category: SYS_AUTH,
                description: "Failed sign-ins (TOTP codes, passkey answers) since the last success.",
                ..STAFF
            },
            Field {
                name: "sign_in_locked_until",
                data_category: SYS_AUTH,
                description: "After five failures, no sign-in is accepted before this time (exponential back-off, 15 minutes at most).",
                ..STAFF
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "staff_devices",
        kind: CollectionKind::Table,
        location: DB,
        description: "Trusted devices: client certificates the region's device CA issued to staff members. Staff endpoints refuse any other device.",
        primary_key: &["serial"],
        fields: &[
            Field {
                name: "serial",
                description: "The certificate's serial number (hex).",
                ..STAFF
            },
            Field {
                name: "staff_id",
                description: "The staff member the device belongs to.",
                ..STAFF
            },
            Field {
                name: "fingerprint",
                data_category: SYS_AUTH,
                description: "SHA-256 of the certificate (hex): how a presented certificate is found.",
                ..STAFF
            },
            Field {
                name: "name",
                data_category: SYS_OPS,
                description: "The operator's label for the device, also in the certificate (name devices by asset tag, e.g. `laptop-0042`, not by person: the staff member is `staff_id`).",
                ..STAFF
            },
            Field {
                name: "issued_at",
                description: "When the certificate was issued.",
                ..STAFF
            },
            Field {
                name: "expires_at",
                description: "When the certificate expires.",
                ..STAFF
            },
            Field {
                name: "revoked_at",
                description: "When the device was revoked; a revoked device is refused.",
                ..STAFF
            },
        ],
        indexes: &[Index {
            name: "staff_devices_fingerprint_key",
            columns: &["fingerprint"],
            unique: true,
        }],
    },
    Collection {
        name: "staff_sessions",
        kind: CollectionKind::Table,
        location: DB,
        description: "Staff sign-in sessions, each bound to the device it was opened from.",
        primary_key: &["token_hash"],
        fields: &[
            Field {
                name: "token_hash",
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the session token (`ilx_…`).",
                ..STAFF_SESSION
            },
            Field {
                name: "staff_id",
                data_category: SYS_OPS,
                description: "The staff member.",
                ..STAFF_SESSION
            },
            Field {
                name: "device_serial",
                data_category: SYS_OPS,
                description: "The trusted device the session is bound to.",
                ..STAFF_SESSION
            },
            Field {
                name: "created_at",
                data_category: SYS_OPS,
                description: "When the session began.",
                ..STAFF_SESSION
            },
            Field {
                name: "expires_at",
                data_category: SYS_OPS,
                description: "When it ends (8 hours).",
                ..STAFF_SESSION
            },
        ],
        indexes: &[Index {
            name: "staff_sessions_expires",
            columns: &["expires_at"],
            unique: false,
        }],
    },
    Collection {
        name: "staff_passkeys",
        kind: CollectionKind::Table,
        location: DB,
        description: "Staff members' passkeys (WebAuthn credentials serialised by webauthn-rs; user verification required), sealed under the region's master key.",
        primary_key: &["id"],
        fields: &[
            Field {
                name: "id",
                description: "The passkey's id (`pk_…`).",
                ..STAFF
            },
            Field {
                name: "staff_id",
                description: "The staff member the passkey belongs to.",
                ..STAFF
            },
            Field {
                name: "name_ct",
                data_category: "user.device",
                encryption: Encryption::MasterKey,
                description: "The label the staff member gave the authenticator, sealed.",
                ..STAFF
            },
            Field {
                name: "passkey_ct",
                data_category: CREDENTIALS,
                encryption: Encryption::MasterKey,
                description: "The credential (public key, id, signature counter), sealed.",
                ..STAFF
            },
            Field {
                name: "master_version",
                description: "The master key version the sealed fields are under.",
                ..STAFF
            },
            Field {
                name: "created_at",
                description: "When the passkey was registered.",
                ..STAFF
            },
        ],
        indexes: &[Index {
            name: "staff_passkeys_staff",
            columns: &["staff_id"],
            unique: false,
        }],
    },
    Collection {
        name: "staff_audit",
        kind: CollectionKind::Table,
        location: DB,
        description: "The region's staff audit log: members added and disabled, sign-ins and failed sign-ins, passkeys, devices. One hash chain from genesis; entries sealed under the region's master key; kept as long as the operator keeps the region (`interlock staff audit-log --verify`).",
        primary_key: &["seq"],
        fields: &[
            Field {
                name: "seq",
                data_category: SYS_OPS,
                description: "Position in the chain (1, 2, …).",
                ..STAFF_AUDIT
            },
            Field {
                name: "id",
                data_category: SYS_OPS,
                description: "The entry id.",
                ..STAFF_AUDIT
            },
            Field {
                name: "type",
                data_category: SYS_OPS,
                description: "The event (`staff.signed_in`, …; docs/staff-access.md).",
                ..STAFF_AUDIT
            },
            Field {
                name: "created_at",
                data_category: SYS_OPS,
                description: "When it happened.",
                ..STAFF_AUDIT
            },
            Field {
                name: "staff_id",
                description: "The staff member the entry is about (pseudonymous `sf_…`).",
                ..STAFF_AUDIT
            },
            Field {
                name: "body_ct",
                encryption: Encryption::MasterKey,
                description: "The entry (type, time, staff id, metadata such as the device serial or the reason of a failure), sealed.",
                ..STAFF_AUDIT
            },
            Field {
                name: "master_version",
                data_category: SYS_OPS,
                description: "The master key version the entry is sealed under.",
                ..STAFF_AUDIT
            },
            Field {
                name: "hash",
                data_category: SYS_OPS,
                encryption: Encryption::Sha256Hash,
                description: "The chain hash after this entry (hex).",
                ..STAFF_AUDIT
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "staff_ceremonies",
        kind: CollectionKind::Table,
        location: DB,
        description: "Pending staff passkey registrations and sign-ins: the ceremony state, sealed, five minutes, single use, bound to the trusted device that started it; expired ones are deleted when the next ceremony starts and by the retention sweep.",
        primary_key: &["token_hash"],
        fields: &[
            Field {
                name: "token_hash",
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the ceremony token.",
                ..STAFF_CEREMONY
            },
            Field {
                name: "staff_id",
                data_category: SYS_OPS,
                description: "The staff member in the ceremony.",
                ..STAFF_CEREMONY
            },
            Field {
                name: "device_serial",
                data_category: SYS_OPS,
                description: "The trusted device the ceremony was started from (and must finish on).",
                ..STAFF_CEREMONY
            },
            Field {
                name: "kind",
                data_category: SYS_OPS,
                description: "`registration` or `authentication`.",
                ..STAFF_CEREMONY
            },
            Field {
                name: "state_ct",
                encryption: Encryption::MasterKey,
                description: "The ceremony state (challenge), sealed.",
                ..STAFF_CEREMONY
            },
            Field {
                name: "master_version",
                data_category: SYS_OPS,
                description: "The master key version the state is sealed under.",
                ..STAFF_CEREMONY
            },
            Field {
                name: "expires_at",
                data_category: SYS_OPS,
                description: "When the ceremony expires.",
                ..STAFF_CEREMONY
            },
        ],
        indexes: &[Index {
            name: "staff_ceremonies_expires",
            columns: &["expires_at"],
            unique: false,
        }],
    },
    Collection {
        name: "staff_grants",
        kind: CollectionKind::Table,
        location: DB,
        description: "Just-in-time and break-glass grants of staff members to one workspace: who, what, why, approvals, expiry, revocation. A workspace's admins list them; every use is in the workspace's activity log.",
        primary_key: &["workspace_id", "id"],
        fields: &[
            workspace_id(STAFF_GRANT),
            Field {
                name: "id",
                description: "The grant id (`sg_…`).",
                ..STAFF_GRANT
            },
            Field {
                name: "staff_id",
                description: "The staff member's pseudonymous id.",
                ..STAFF_GRANT
            },
            Field {
                name: "kind",
                description: "request or break_glass.",
                ..STAFF_GRANT
            },
            Field {
                name: "permissions",
                description: "The workspace permissions granted (comma-separated names).",
                ..STAFF_GRANT
            },
            Field {
                name: "reason_ct",
                data_category: CONTENT,
                encryption: Encryption::WorkspaceKey,
                description: "Why access is needed, sealed under the workspace key (it may mention the customer's case).",
                ..STAFF_GRANT
            },
            Field {
                name: "ticket_ct",
                encryption: Encryption::WorkspaceKey,
                description: "The support ticket or incident, sealed under the workspace key.",
                ..STAFF_GRANT
            },
            Field {
                name: "ws_key_version",
                description: "The workspace key version the sealed fields are under.",
                ..STAFF_GRANT
            },
            Field {
                name: "duration_s",
                description: "How long the grant lasts once it starts (capped; default 4 hours).",
                ..STAFF_GRANT
            },
            Field {
                name: "workspace_approval_required",
                description: "Whether a workspace admin must also approve (the workspace's setting when it was asked).",
                ..STAFF_GRANT
            },
            created_at(STAFF_GRANT),
            Field {
                name: "staff_approved_by",
                description: "The approver's staff id.",
                ..STAFF_GRANT
            },
            Field {
                name: "staff_approved_at",
                description: "When an approver approved.",
                ..STAFF_GRANT
            },
            Field {
                name: "workspace_approved_by",
                description: "The approving teammate's id.",
                ..STAFF_GRANT
            },
            Field {
                name: "workspace_approved_at",
                description: "When a workspace admin approved.",
                ..STAFF_GRANT
            },
            Field {
                name: "starts_at",
                description: "When the grant started (all approvals in; at once for break-glass).",
                ..STAFF_GRANT
            },
            Field {
                name: "expires_at",
                description: "When it stops working.",
                ..STAFF_GRANT
            },
            Field {
                name: "confirmed_by",
                description: "The second person who confirmed a break-glass grant.",
                ..STAFF_GRANT
            },
            Field {
                name: "confirmed_at",
                description: "When (within an hour, or the grant ends).",
                ..STAFF_GRANT
            },
            Field {
                name: "revoked_at",
                description: "When it was revoked.",
                ..STAFF_GRANT
            },
            Field {
                name: "revoked_by",
                description: "Who revoked it (`tm_…`, `sf_…` or system).",
                ..STAFF_GRANT
            },
            Field {
                name: "token_hash",
                data_category: SYS_AUTH,
                encryption: Encryption::Sha256Hash,
                description: "SHA-256 of the grant token (`ilg_…`).",
                ..STAFF_GRANT
            },
            Field {
                name: "ended_logged_at",
                description: "When the grant's end was written to the activity log.",
                ..STAFF_GRANT
            },
        ],
        indexes: &[
            Index {
                name: "staff_grants_staff",
                columns: &["staff_id", "created_at"],
                unique: false,
            },
            Index {
                name: "staff_grants_open",
                columns: &["ended_logged_at", "expires_at"],
                unique: false,
            },
            Index {
                name: "staff_grants_token_hash_key",
                columns: &["token_hash"],
                unique: true,
            },
        ],
    },
    Collection {
        name: "workspace_staff_access",
        kind: CollectionKind::Table,
        location: DB,
        description: "A workspace's staff-access setting: whether a workspace admin must also approve each staff grant.",
        primary_key: &["workspace_id"],
        fields: &[
            workspace_id(WS),
            Field {
                name: "approval",
                description: "required or not_required.",
                ..WS
            },
            Field {
                name: "updated_at",
                description: "When it last changed.",
                ..WS
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "access_review_campaigns",
        kind: CollectionKind::Table,
        location: DB,
        description: "Access review campaigns of standing access (staff roles, approver rights, workspace owners and admins), quarterly by default.",
        primary_key: &["id"],
        fields: &[
            Field {
                name: "id",
                data_subject: None,
                description: "The campaign id (`rv_…`).",
                ..REVIEW
            },
            Field {
                name: "started_at",
                data_subject: None,
                description: "When it began.",
                ..REVIEW
            },
            Field {
                name: "deadline_at",
                data_subject: None,
                description: "Items not reviewed by then are revoked.",
                ..REVIEW
            },
            Field {
                name: "closed_at",
                data_subject: None,
                description: "When every item was decided.",
                ..REVIEW
            },
        ],
        indexes: &[],
    },
    Collection {
        name: "access_review_items",
        kind: CollectionKind::Table,
        location: DB,
        description: "One holder of standing access in a campaign, against the baseline for their role, with the reviewer's decision.",
        primary_key: &["campaign_id", "id"],
        fields: &[
            Field {
                name: "campaign_id",
                description: "The campaign.",
                ..REVIEW
            },
            Field {
                name: "id",
                description: "The item id (`ri_…`).",
                ..REVIEW
            },
            Field {
                name: "kind",
                description: "staff_role or teammate_role.",
                ..REVIEW
            },
            Field {
                name: "holder_id",
                description: "The holder's pseudonymous id (`sf_…` or `tm_…`).",
                ..REVIEW
            },
            Field {
                name: "workspace_id",
                description: "The workspace, for a teammate's role.",
                ..REVIEW
            },
            Field {
                name: "role",
                description: "The role held.",
                ..REVIEW
            },
            Field {
                name: "permissions",
                description: "What the holder could do when the campaign began.",
                ..REVIEW
            },
            Field {
                name: "baseline",
                description: "What the role's baseline allows.",
                ..REVIEW
            },
            Field {
                name: "decision",
                description: "certified, revoked, revoked_unreviewed (deadline passed) or revoke_blocked_last_owner (the workspace's last owner is kept).",
                ..REVIEW
            },
            Field {
                name: "decided_by",
                description: "The reviewer's staff id, or system.",
                ..REVIEW
            },
            Field {
                name: "decided_at",
                description: "When it was decided.",
                ..REVIEW
            },
        ],
        indexes: &[],
    },
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use super::*;

    /// Keys of the fideslang default taxonomy's data uses that this map may use.
    const FIDESLANG_DATA_USES: &[&str] = &[
        "essential",
        "essential.fraud_detection",
        "essential.legal_obligation",
        "essential.service",
        "essential.service.authentication",
        "essential.service.operations",
        "essential.service.operations.support",
        "essential.service.security",
    ];

    fn fields() -> impl Iterator<Item = (&'static Collection, &'static Field)> {
        DATA_MAP
            .iter()
            .flat_map(|c| c.fields.iter().map(move |f| (c, f)))
    }

    #[test]
    fn names_are_unique_and_keys_and_indexes_name_fields() {
        let mut collections = BTreeSet::new();
        let mut indexes = BTreeSet::new();
        for c in DATA_MAP {
            assert!(collections.insert(c.name), "collection {} twice", c.name);
            assert!(!c.description.is_empty(), "{}: no description", c.name);
            assert!(!c.fields.is_empty(), "{}: no fields", c.name);
            let mut names = BTreeSet::new();
            for f in c.fields {
                assert!(!f.name.is_empty(), "{}: a field has no name", c.name);
                assert!(names.insert(f.name), "{}.{} twice", c.name, f.name);
                assert!(
                    !f.description.is_empty(),
                    "{}.{}: no description",
                    c.name,
                    f.name
                );
            }
            for k in c.primary_key {
                assert!(names.contains(k), "{}: primary key names {k}", c.name);
            }
            for i in c.indexes {
                assert!(indexes.insert(i.name), "index {} twice", i.name);
                for col in i.columns {
                    assert!(names.contains(col), "{}: {} names {col}", c.name, i.name);
                }
            }
            if c.kind == CollectionKind::Table {
                assert!(!c.primary_key.is_empty(), "{}: no primary key", c.name);
            } else {
                assert!(
                    c.primary_key.is_empty() && c.indexes.is_empty(),
                    "{}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn every_category_and_use_is_a_fideslang_default_key() {
        for (c, f) in fields() {
            assert!(
                FIDESLANG_DATA_CATEGORIES.contains(&f.data_category),
                "{}.{}: {} is not a fideslang data category",
                c.name,
                f.name,
                f.data_category
            );
            assert!(
                FIDESLANG_DATA_USES.contains(&f.data_use),
                "{}.{}: {} is not a fideslang data use",
                c.name,
                f.name,
                f.data_use
            );
        }
    }

    #[test]
    fn ciphertext_columns_are_encrypted_and_blind_indexes_are_hmacs() {
        for (c, f) in fields() {
            if f.name.ends_with("_ct") {
                assert!(
                    matches!(
                        f.encryption,
                        Encryption::SubjectKey | Encryption::WorkspaceKey | Encryption::MasterKey
                    ),
                    "{}.{} is a ciphertext column but is {:?}",
                    c.name,
                    f.name,
                    f.encryption
                );
            }
            if f.name.ends_with("_bidx") {
                assert_eq!(
                    f.encryption,
                    Encryption::HmacBlindIndex,
                    "{}.{}",
                    c.name,
                    f.name
                );
            }
            if f.encryption == Encryption::SubjectKey {
                assert_eq!(
                    f.erasure,
                    Erasure::ShreddedWithSubjectKey,
                    "{}.{} is under a subject key",
                    c.name,
                    f.name
                );
            }
        }
    }

    /// The rule: personal data (`user.*`) is never stored as plaintext, except pseudonymous
    /// ids — `user.unique_id` on an id column, whose values are Interlock's random ids.
    #[test]
    fn personal_data_is_never_plaintext_except_pseudonymous_ids() {
        for (c, f) in fields() {
            if !f.data_category.starts_with("user") {
                continue;
            }
            assert!(
                f.data_subject.is_some(),
                "{}.{}: personal data without a data subject",
                c.name,
                f.name
            );
            if f.encryption == Encryption::None {
                let id_column = f.name == "id" || f.name.ends_with("_id") || f.name == "created_by";
                assert!(
                    f.data_category == UID && id_column,
                    "{}.{}: {} stored as plaintext",
                    c.name,
                    f.name,
                    f.data_category
                );
            }
        }
    }

    /// Lifetimes the map states agree with the code that applies them.
    #[test]
    fn lifetimes_match_the_code() {
        assert_eq!(
            interlock_domain::SecuritySettings::default().session_absolute_s,
            TEAMMATE_SESSION_SECONDS as i64
        );
        let c = collection("webauthn_ceremonies").unwrap();
        assert_eq!(
            c.field("expires_at").unwrap().retention,
            Retention::Expires { seconds: 300 }
        );
    }

    #[test]
    fn serialises_as_served() {
        let v = serde_json::to_value(document()).unwrap();
        let contacts = v["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "contacts")
            .unwrap();
        assert_eq!(contacts["kind"], "table");
        let email = contacts["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "email_ct")
            .unwrap();
        assert_eq!(
            email,
            &serde_json::json!({
                "name": "email_ct",
                "data_category": "user.contact.email",
                "data_subject": "customer",
                "data_use": "essential.service",
                "encryption": "subject_key",
                "retention": {"rule": "visitor_inactivity", "days": 274},
                "erasure": "shredded_with_subject_key",
                "description": "Email address (normalised), sealed.",
            })
        );
        assert_eq!(
            contacts["indexes"][0],
            serde_json::json!({"name": "contacts_external_id", "columns": ["workspace_id", "external_id_bidx"], "unique": true})
        );
        // The serialised names agree with `as_str`/`rule`.
        for (_, f) in fields() {
            let j = serde_json::to_value(f).unwrap();
            assert_eq!(j["encryption"], f.encryption.as_str());
            assert_eq!(j["erasure"], f.erasure.as_str());
            assert_eq!(j["retention"]["rule"], f.retention.rule());
            assert_eq!(
                j["data_subject"].as_str(),
                f.data_subject.map(DataSubject::as_str)
            );
        }
        assert_eq!(
            serde_json::to_value(collection("key_files").unwrap().kind).unwrap(),
            "key_files"
        );
    }
}
