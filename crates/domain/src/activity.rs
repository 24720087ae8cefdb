//! The activity log's vocabulary: the catalogue of event types, who acted (actor), on what
//! (target), and the canonical encoding an entry is hashed in.
//!
//! An entry never carries a data subject's personal data in clear: a contact appears only by
//! its pseudonymous id (`ct_…`, random, meaningless once the contact is erased), and metadata
//! holds ids, counts, permission names and settings values — never names, emails or bodies.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::DomainError;

/// What kind of principal acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// A workspace teammate signed in with a session (or trying to sign in).
    Teammate,
    /// A workspace API token.
    ApiToken,
    /// A member of the operator's staff acting under a grant.
    Staff,
    /// Interlock itself (retention sweeps, log maintenance).
    System,
}

impl ActorType {
    pub const ALL: [ActorType; 4] = [
        ActorType::Teammate,
        ActorType::ApiToken,
        ActorType::Staff,
        ActorType::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::Teammate => "teammate",
            ActorType::ApiToken => "api_token",
            ActorType::Staff => "staff",
            ActorType::System => "system",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                DomainError::new("actor_type", "invalid_actor_type", "unknown actor type")
            })
    }
}

/// Longest user agent kept; longer ones are cut (at a character boundary).
pub const MAX_USER_AGENT: usize = 256;

/// Who acted: the principal's type and id, and where the request came from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorType,
    /// `tm_…`, `tk_…`, a staff id, or absent (the system, an unknown sign-in).
    pub id: Option<String>,
    /// The source address (the TCP peer).
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The address and user agent are a teammate's personal data: not in logs.
        f.debug_struct("Actor")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Actor {
    /// Interlock itself.
    pub fn system() -> Self {
        Self {
            kind: ActorType::System,
            id: None,
            ip: None,
            user_agent: None,
        }
    }

    /// A principal with its request's source; the user agent is cut to [`MAX_USER_AGENT`]
    /// bytes, control characters are dropped, and an empty one is absent.
    pub fn new(
        kind: ActorType,
        id: Option<String>,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Self {
        let user_agent = user_agent.map(|ua| {
            let mut out = String::new();
            for c in ua.chars().filter(|c| !c.is_control()) {
                if out.len() + c.len_utf8() > MAX_USER_AGENT {
                    break;
                }
                out.push(c);
            }
            out
        });
        let user_agent = user_agent.filter(|ua| !ua.is_empty());
        Self {
            kind,
            id,
            ip,
            user_agent,
        }
    }
}

/// What an action was done to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
}

impl Target {
    pub fn new(kind: &'static str, id: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            id: Some(id.into()),
        }
    }

    /// A target without an id of its own (the workspace's settings, the log itself).
    pub fn kind(kind: &'static str) -> Self {
        Self {
            kind: kind.to_owned(),
            id: None,
        }
    }
}

macro_rules! catalogue {
    ($( $variant:ident = $name:literal, $category:literal, $severity:literal, $emitted:literal, $doc:literal; )*) => {
        /// The catalogue of activity event types (served at `GET /v1/activity-log-event-types`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ActivityType {
            $( #[doc = $doc] $variant, )*
        }

        impl ActivityType {
            pub const ALL: &'static [ActivityType] = &[ $( ActivityType::$variant, )* ];

            /// The stable wire name, e.g. `contact.deleted`.
            pub fn as_str(self) -> &'static str {
                match self { $( ActivityType::$variant => $name, )* }
            }

            /// The group it belongs to (authentication, teammates, data, …).
            pub fn category(self) -> &'static str {
                match self { $( ActivityType::$variant => $category, )* }
            }

            /// `info`, `medium` or `high`.
            pub fn severity(self) -> &'static str {
                match self { $( ActivityType::$variant => $severity, )* }
            }

            /// What the event records.
            pub fn description(self) -> &'static str {
                match self { $( ActivityType::$variant => $doc, )* }
            }

            /// Whether this version of Interlock emits it. Types of capabilities that do not
            /// exist yet are catalogued (so consumers can prepare) but marked `false`.
            pub fn emitted(self) -> bool {
                match self { $( ActivityType::$variant => $emitted, )* }
            }
        }
    };
}

catalogue! {
    SignInSucceeded = "auth.sign_in.succeeded", "authentication", "info", true,
        "A teammate signed in (password and, where enrolled, a second factor).";
    SignInFailed = "auth.sign_in.failed", "authentication", "medium", true,
        "A sign-in attempt failed (metadata.reason says at which step). The attempted email is never recorded.";
    SignedOut = "auth.signed_out", "authentication", "info", true,
        "A teammate signed out, ending the session.";
    SessionRevoked = "auth.session.revoked", "authentication", "medium", true,
        "A teammate revoked one of their sessions.";
    TotpEnabled = "auth.totp.enabled", "authentication", "medium", true,
        "A teammate confirmed TOTP two-factor authentication.";
    TotpDisabled = "auth.totp.disabled", "authentication", "high", true,
        "A teammate turned TOTP two-factor authentication off.";
    RecoveryCodeUsed = "auth.recovery_code.used", "authentication", "medium", true,
        "A teammate signed in with a single-use recovery code.";
    PasskeyAdded = "auth.passkey.added", "authentication", "medium", true,
        "A teammate registered a passkey.";
    PasskeyRemoved = "auth.passkey.removed", "authentication", "high", true,
        "A teammate removed a passkey.";
    TeammateInvited = "teammate.invited", "teammates", "medium", true,
        "A teammate was invited with a role.";
    TeammateJoined = "teammate.joined", "teammates", "medium", true,
        "An invited teammate accepted the invitation and set a password.";
    TeammateRemoved = "teammate.removed", "teammates", "high", true,
        "A teammate was removed; their sessions and API tokens ended with them.";
    TeammateRoleChanged = "teammate.role_changed", "teammates", "high", true,
        "A teammate's role changed (metadata.before / metadata.after).";
    RoleCreated = "role.created", "roles", "medium", true,
        "A custom role was created (metadata.permissions).";
    RoleUpdated = "role.updated", "roles", "high", true,
        "A custom role's permissions changed (metadata.before / metadata.after).";
    RoleDeleted = "role.deleted", "roles", "medium", true,
        "A custom role was deleted.";
    ApiTokenCreated = "api_token.created", "api_tokens", "medium", true,
        "An API token was created (metadata.permissions, metadata.expires_at).";
    ApiTokenRevoked = "api_token.revoked", "api_tokens", "medium", true,
        "An API token was revoked.";
    SecuritySettingsUpdated = "settings.security.updated", "settings", "high", true,
        "The workspace security settings changed (metadata.before / metadata.after).";
    MessengerSettingsUpdated = "settings.messenger.updated", "settings", "high", true,
        "The messenger settings changed, e.g. identity verification (metadata.before / metadata.after).";
    RetentionSettingsUpdated = "settings.retention.updated", "settings", "high", true,
        "The retention settings changed (metadata.before / metadata.after).";
    MessengerSecretCreated = "messenger.secret.created", "messenger", "high", true,
        "An identity verification secret was created.";
    MessengerSecretDeleted = "messenger.secret.deleted", "messenger", "high", true,
        "An identity verification secret was deleted.";
    ContactDeleted = "contact.deleted", "data", "high", true,
        "A contact and everything that belongs to it was deleted; its encryption keys were destroyed. The target is the pseudonymous contact id.";
    ConversationDeleted = "conversation.deleted", "data", "high", true,
        "A conversation with its messages and attachments was deleted.";
    BulkDeleted = "data.bulk_deleted", "data", "high", true,
        "Many records were deleted at once, e.g. by a retention sweep as `system` (metadata: `reason`, counts per data element).";
    DataExported = "data.exported", "data", "high", true,
        "Customer data was exported: an access request's archive was downloaded (metadata.scope, metadata.request_id).";
    DataRequestCreated = "data_request.created", "data", "high", true,
        "A data subject request (access or erasure) was made (metadata.type, metadata.request_id; the target is the pseudonymous contact id).";
    DataRequestCompleted = "data_request.completed", "data", "high", true,
        "A data subject request finished (metadata.type, metadata.request_id; an erasure also its receipt id and counts per data element).";
    WorkspaceDeletionRequested = "workspace.deletion_requested", "workspace", "high", true,
        "Deletion of the workspace was requested (metadata.reason: owner, operator or inactivity); its key is destroyed in the same transaction, so this is the workspace's last entry.";
    WorkspaceInactivityNotice = "workspace.inactivity_notice", "workspace", "high", true,
        "The workspace has had no teammate sign-in and no API activity for a long time and will be deleted at metadata.deletion_after unless it is used before then (also sent as the `workspace.deletion_scheduled` webhook).";
    StaffAccessRequested = "staff_access.requested", "staff", "high", true,
        "An operator staff member asked for access to this workspace (metadata.grant_id, staff_id, permissions, duration_s, reason, ticket, workspace_approval_required). The actor is the staff member's pseudonymous id.";
    StaffAccessApproved = "staff_access.approved", "staff", "high", true,
        "A staff grant was approved (metadata.approval: staff, by an operator approver; workspace, by a workspace admin; break_glass_confirmation, a second person confirming an emergency grant).";
    StaffAccessStarted = "staff_access.started", "staff", "high", true,
        "An operator staff member's grant to this workspace began (metadata.grant_id, staff_id, permissions, reason, ticket, expires_at_ms).";
    StaffAccessUsed = "staff_access.used", "staff", "high", true,
        "An operator staff member made a request to this workspace under a grant: one entry per request, reads included (metadata.grant_id, staff_id, reason, ticket, method, route).";
    StaffAccessEnded = "staff_access.ended", "staff", "medium", true,
        "An operator staff member's grant ended (metadata.reason: revoked, expired, or unconfirmed for a break-glass grant nobody confirmed within an hour).";
    StaffAccessBreakGlass = "staff_access.break_glass", "staff", "high", true,
        "An operator staff member took emergency access without prior approval; it ends unless a second person confirms it within an hour (metadata.confirm_by_ms; also sent as the `staff_access.break_glass` webhook).";
    StaffAccessSettingsUpdated = "settings.staff_access.updated", "settings", "high", true,
        "Whether a workspace admin must also approve staff grants changed (metadata.before / metadata.after).";
    AccessReviewStarted = "access_review.started", "access_review", "high", true,
        "An access review campaign began with items for this workspace: a workspace owner (security.manage) must certify or revoke each owner and admin before metadata.deadline_at_ms, or the role becomes agent (metadata.campaign_id, items, deadline_at_ms; also sent as the `access_review.started` webhook).";
    AccessReviewCertified = "access_review.certified", "access_review", "medium", true,
        "A workspace reviewer certified a teammate's owner or admin role in an access review: it stays (metadata.campaign_id, item_id, role).";
    AccessReviewRevoked = "access_review.revoked", "access_review", "high", true,
        "An access review revoked a teammate's owner or admin role in this workspace: a reviewer decided so, or nobody reviewed it by the deadline (metadata.campaign_id, item_id, before, after, reason).";
    AccessDenied = "access.denied", "access", "medium", true,
        "A state-changing request was refused for lack of a permission (metadata.permission, metadata.method, metadata.route).";
    ActivityLogExported = "activity_log.exported", "activity_log", "medium", true,
        "The activity log was exported (metadata.format, metadata.first_seq, metadata.last_seq).";
    ActivityLogRetentionCut = "activity_log.retention_cut", "activity_log", "info", true,
        "Entries older than the log's retention were removed (metadata.removed, metadata.cut_seq); the chain stays verifiable from the cut.";
    WebhookCreated = "webhook.created", "outbound", "high", true,
        "A webhook subscription was made (metadata.host, metadata.events); its signing secret is shown once and never logged.";
    WebhookDeleted = "webhook.deleted", "outbound", "medium", true,
        "A webhook subscription was deleted; its pending deliveries were cancelled (metadata.cancelled).";
    OutboundRefused = "outbound.refused", "outbound", "high", true,
        "An outbound delivery (webhook, erasure notice, activity-log sink) was refused before connecting: its destination is not a host of a sub-processor registered for the workspace's region, or not https (metadata.kind, metadata.host, metadata.reason).";
}

impl ActivityType {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                DomainError::new(
                    "types",
                    "unknown_event_type",
                    "unknown activity event type (see GET /v1/activity-log-event-types)",
                )
            })
    }
}

impl fmt::Display for ActivityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action to record: what happened, who did it, to what, with which details.
#[derive(Debug, Clone)]
pub struct NewActivity {
    pub kind: ActivityType,
    pub actor: Actor,
    pub target: Target,
    pub metadata: Map<String, Value>,
}

impl NewActivity {
    pub fn new(kind: ActivityType, actor: &Actor, target: Target) -> Self {
        Self {
            kind,
            actor: actor.clone(),
            target,
            metadata: Map::new(),
        }
    }

    /// Set the target's id (for records whose id the store assigns).
    pub fn targeting(mut self, id: &str) -> Self {
        self.target.id = Some(id.to_owned());
        self
    }

    /// Add a metadata field. Callers put ids, counts, names of permissions and settings
    /// values here — never a data subject's personal data.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

/// One entry as it is hashed, exported and served (without its position in the chain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityEntry {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at_ms: i64,
    pub actor: Actor,
    pub target: Target,
    pub metadata: Map<String, Value>,
}

impl ActivityEntry {
    /// The canonical encoding that is hashed into the chain: the entry as JSON with object
    /// keys sorted by their UTF-8 bytes, no insignificant whitespace, and serde_json's string
    /// escaping — RFC 8785 (JCS) for the values entries hold (strings, integers, booleans,
    /// null, arrays, objects; floats are never written into entries).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut out = Vec::with_capacity(256);
        write_canonical(&value, &mut out);
        out
    }
}

/// Write `v` as canonical JSON (sorted keys, compact).
pub fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        other => {
            // null, booleans and numbers print the same in compact and canonical form.
            out.extend_from_slice(other.to_string().as_bytes());
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::String(s.to_owned()).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for t in ActivityType::ALL {
            assert!(seen.insert(t.as_str()), "duplicate {}", t.as_str());
            assert_eq!(ActivityType::parse(t.as_str()).expect("parses"), *t);
            assert!(["info", "medium", "high"].contains(&t.severity()));
            assert!(!t.description().is_empty());
        }
        assert!(ActivityType::parse("contact.exploded").is_err());
    }

    #[test]
    fn every_type_is_documented() {
        let doc = include_str!("../../../docs/activity-log.md");
        for t in ActivityType::ALL {
            assert!(
                doc.contains(&format!("`{}`", t.as_str())),
                "docs/activity-log.md does not describe {}",
                t.as_str()
            );
        }
    }

    #[test]
    fn canonical_form_sorts_keys_and_is_stable() {
        let entry = ActivityEntry {
            id: "al_1".into(),
            kind: "contact.deleted".into(),
            created_at_ms: 5,
            actor: Actor::new(
                ActorType::ApiToken,
                Some("tk_1".into()),
                Some("127.0.0.1".parse().expect("ip")),
                Some("curl/8\u{7}"),
            ),
            target: Target::new("contact", "ct_1"),
            metadata: json!({"z": 1, "a": {"y": [true, null], "b": "é\""}})
                .as_object()
                .cloned()
                .expect("object"),
        };
        let text = String::from_utf8(entry.canonical_bytes()).expect("utf8");
        assert_eq!(
            text,
            r#"{"actor":{"id":"tk_1","ip":"127.0.0.1","type":"api_token","user_agent":"curl/8"},"created_at_ms":5,"id":"al_1","metadata":{"a":{"b":"é\"","y":[true,null]},"z":1},"target":{"id":"ct_1","type":"contact"},"type":"contact.deleted"}"#
        );
        // Parsing the canonical text back gives the same entry and the same bytes.
        let back: ActivityEntry = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, entry);
        assert_eq!(back.canonical_bytes(), entry.canonical_bytes());
    }

    #[test]
    fn user_agent_is_bounded() {
        let long = "x".repeat(1000);
        let a = Actor::new(ActorType::Teammate, None, None, Some(&long));
        assert_eq!(a.user_agent.as_ref().map(|u| u.len()), Some(MAX_USER_AGENT));
        assert!(!format!("{a:?}").contains("xxx"));
    }
}
