//! Wire types: the JSON the API reads and writes, with their OpenAPI schemas. Request types
//! refuse unknown fields. Conversions to domain types happen in the handlers through the
//! domain parsers, so every value is checked before it reaches storage.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use interlock_storage as store;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

// ------------------------------------------------------------------ operator

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    /// Display name of the workspace.
    pub name: String,
    /// `us`, `eu` or `au`.
    pub region: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWorkspace {
    pub id: String,
    pub name: String,
    pub region: String,
    /// Full-access API token for this workspace. Shown only once.
    pub api_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceOut {
    pub id: String,
    pub name: String,
    pub region: String,
    pub created_at: i64,
}

impl From<store::Workspace> for WorkspaceOut {
    fn from(w: store::Workspace) -> Self {
        Self {
            id: w.id.to_string(),
            name: w.name,
            region: w.region.to_string(),
            created_at: secs(w.created_at),
        }
    }
}

// ------------------------------------------------------------------ lists

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<i64>,
}

impl PageParams {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.per_page {
            None => Ok(20),
            Some(n) if (1..=100).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::bad_request(
                "invalid_query",
                "per_page must be between 1 and 100",
            )),
        }
    }

    /// Decode the cursor into the id to continue after.
    pub fn after<T>(
        &self,
        parse: fn(&str) -> Result<T, interlock_domain::DomainError>,
    ) -> Result<Option<T>, ApiError> {
        let Some(c) = &self.cursor else {
            return Ok(None);
        };
        let bad = || ApiError::bad_request("invalid_cursor", "the cursor is not valid");
        let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        parse(&text).map(Some).map_err(|_| bad())
    }
}

pub fn cursor(next_after: Option<String>) -> Option<String> {
    next_after.map(|id| URL_SAFE_NO_PAD.encode(id))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListOf<T: ToSchema> {
    /// Always `list`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> ListOf<T> {
    pub fn new(data: Vec<T>, next_cursor: Option<String>) -> Self {
        Self {
            kind: "list",
            data,
            next_cursor,
        }
    }
}

// ------------------------------------------------------------------ contacts

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContactRequest {
    /// `user` (default) or `visitor`.
    pub role: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = Object)]
    pub custom_attributes: Option<Map<String, Value>>,
}

/// Fields absent are left alone; `null` clears a field. `custom_attributes` merges: keys set to
/// `null` are removed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContactRequest {
    pub role: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[schema(value_type = Object)]
    pub custom_attributes: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactOut {
    /// Always `contact`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub role: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = Object)]
    pub custom_attributes: Map<String, Value>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<store::Contact> for ContactOut {
    fn from(c: store::Contact) -> Self {
        Self {
            kind: "contact",
            id: c.id.to_string(),
            role: c.role.as_str().to_owned(),
            external_id: c.external_id,
            email: c.email,
            name: c.name,
            phone: c.phone,
            custom_attributes: c.custom_attributes,
            created_at: secs(c.created_at),
            updated_at: secs(c.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ContactSearch {
    /// Exact match on the normalised email.
    pub email: Option<String>,
    /// Exact match on the external id.
    pub external_id: Option<String>,
    pub cursor: Option<String>,
    pub per_page: Option<i64>,
}

// ------------------------------------------------------------------ conversations

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationRequest {
    pub contact_id: String,
    /// The first message, written by the contact.
    pub body: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorIn {
    /// `teammate` or `contact`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePartRequest {
    pub body: String,
    pub author: AuthorIn,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartOut {
    pub id: String,
    pub body: String,
    pub author: AuthorIn,
    pub created_at: i64,
}

impl From<store::Part> for PartOut {
    fn from(p: store::Part) -> Self {
        Self {
            id: p.id.to_string(),
            body: p.body,
            author: AuthorIn {
                kind: p.author_type.as_str().to_owned(),
                id: p.author_id,
            },
            created_at: secs(p.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationOut {
    /// Always `conversation`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub contact_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The messages, oldest first (omitted in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartOut>>,
}

impl ConversationOut {
    pub fn with_parts(c: store::Conversation) -> Self {
        let mut out = Self::summary(&c);
        out.parts = Some(c.parts.into_iter().map(PartOut::from).collect());
        out
    }

    pub fn summary(c: &store::Conversation) -> Self {
        Self {
            kind: "conversation",
            id: c.id.to_string(),
            contact_id: c.contact_id.to_string(),
            created_at: secs(c.created_at),
            updated_at: secs(c.updated_at),
            parts: None,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConversationSearch {
    pub contact_id: Option<String>,
    pub cursor: Option<String>,
    pub per_page: Option<i64>,
}

// ------------------------------------------------------------------ events

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventRequest {
    pub contact_id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Always `event`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub contact_id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub created_at: i64,
}

impl From<store::Event> for EventOut {
    fn from(e: store::Event) -> Self {
        Self {
            kind: "event",
            id: e.id.to_string(),
            contact_id: e.contact_id.to_string(),
            name: e.name,
            metadata: e.metadata,
            created_at: secs(e.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventSearch {
    pub contact_id: String,
    pub cursor: Option<String>,
    pub per_page: Option<i64>,
}

// ------------------------------------------------------------------ attachments

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// The file's name (no path separators).
    pub filename: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentOut {
    /// Always `attachment`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub conversation_id: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub created_at: i64,
}

impl From<store::Attachment> for AttachmentOut {
    fn from(a: store::Attachment) -> Self {
        Self {
            kind: "attachment",
            id: a.id.to_string(),
            conversation_id: a.conversation_id.to_string(),
            filename: a.filename,
            content_type: a.content_type,
            size: a.size,
            created_at: secs(a.created_at),
        }
    }
}

// ------------------------------------------------------------------ system

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub regions: Vec<String>,
}

// ------------------------------------------------------------------ messenger

/// Start or resume a messenger session. Send `workspace_id` alone (or with `visitor_token`)
/// for an anonymous visitor; add `user_id` and/or `email` with `user_hash`, or send
/// `user_jwt`, to identify a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootRequest {
    pub workspace_id: String,
    /// The `visitor_token` of an earlier anonymous boot: resumes that visitor, or, with a
    /// verified user boot, merges the visitor into the user.
    pub visitor_token: Option<String>,
    pub user_id: Option<String>,
    pub email: Option<String>,
    /// Updates the contact's name when the boot is verified.
    pub name: Option<String>,
    /// Lowercase hex HMAC-SHA-256 of `user_id` (or of `email` when no `user_id` is sent).
    pub user_hash: Option<String>,
    /// An HS256 JWT with a `user_id` claim; send it without user_id, email, name or user_hash.
    pub user_jwt: Option<String>,
    /// `web` (default), `ios` or `android`: only secrets made for this platform verify.
    pub platform: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BootResponse {
    /// Bearer token for the `/v1/messenger/conversations` routes; bound to one contact.
    pub session_token: String,
    /// Unix seconds after which the session token stops working.
    pub expires_at: i64,
    pub contact_id: String,
    /// `user` or `visitor`.
    pub role: String,
    /// True only when a `user_hash` or `user_jwt` verified.
    pub identity_verified: bool,
    /// For visitors: keep it and send it on the next boot to resume this visitor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessengerMessage {
    pub body: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretRequest {
    pub name: String,
    /// Any of `web`, `ios`, `android`.
    pub platforms: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretOut {
    pub id: String,
    pub name: String,
    pub platforms: Vec<String>,
    pub created_at: i64,
}

impl From<store::MessengerSecret> for SecretOut {
    fn from(s: store::MessengerSecret) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name,
            platforms: s
                .platforms
                .as_slice()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            created_at: secs(s.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSecret {
    pub id: String,
    pub name: String,
    pub platforms: Vec<String>,
    pub created_at: i64,
    /// The secret: the HMAC and JWT key is this whole string. Shown only once.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessengerSettingsOut {
    /// `off`, `optional` or `enforced`.
    pub identity_verification: String,
    pub jwt_max_lifetime_s: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessengerSettingsRequest {
    /// `off`, `optional` or `enforced`.
    pub identity_verification: String,
    /// 60 to 2592000 seconds; unchanged when absent.
    pub jwt_max_lifetime_s: Option<i64>,
}

// ------------------------------------------------------------------ access

#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionOut {
    /// e.g. `contacts.read`.
    pub name: &'static str,
    pub description: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleOut {
    /// What a teammate's `role` names: `owner`, `admin`, `agent`, `viewer` or `rl_…`.
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<String>,
    pub builtin: bool,
}

impl From<store::CustomRole> for RoleOut {
    fn from(r: store::CustomRole) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name,
            description: None,
            permissions: r
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            builtin: false,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    pub name: String,
    /// Names from `GET /v1/permissions`; each must also be held by the caller.
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    /// Names from `GET /v1/permissions`; each must also be held by the caller.
    pub permissions: Vec<String>,
    /// Unix seconds; the token stops working then. Never expires when absent.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    pub id: String,
    pub name: String,
    /// The permissions; `["*"]` for the workspace's first token (every permission).
    pub permissions: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

impl From<store::ApiTokenInfo> for TokenOut {
    fn from(t: store::ApiTokenInfo) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            permissions: match t.scope {
                store::TokenScope::Full => vec!["*".to_owned()],
                store::TokenScope::Only(p) => p.iter().map(|p| p.as_str().to_owned()).collect(),
            },
            expires_at: t.expires_at.map(secs),
            created_at: secs(t.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    pub permissions: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    /// The token (`ilk_<region>_…`). Shown only once.
    pub token: String,
}

// ------------------------------------------------------------------ teammates and sign-in

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeammateRequest {
    pub email: String,
    pub name: String,
    /// `owner`, `admin`, `agent`, `viewer` or a custom role id.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeammateOut {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub two_factor: bool,
    /// False until the invitation is accepted.
    pub active: bool,
    pub created_at: i64,
}

impl From<store::Teammate> for TeammateOut {
    fn from(t: store::Teammate) -> Self {
        Self {
            id: t.id.to_string(),
            email: t.email,
            name: t.name,
            role: t.role.as_string(),
            two_factor: t.two_factor,
            active: t.has_password,
            created_at: secs(t.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTeammate {
    pub teammate: TeammateOut,
    /// One-time token (`ili_…`) with which the teammate sets a password. Shown only once.
    pub invitation_token: String,
    pub invitation_expires_at: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeammateRequest {
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    pub token: String,
    /// At least 12 characters and not a common password.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub workspace_id: String,
    pub email: String,
    pub password: String,
    /// A 6-digit TOTP code or a recovery code, when two-factor authentication is on.
    pub otp: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub teammate_id: String,
    pub session_id: String,
    /// Send as `X-CSRF-Token` on every state-changing request made with the session cookie.
    pub csrf_token: String,
    /// The workspace requires two-factor authentication and this teammate must enrol first.
    pub must_enrol_two_factor: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Scan as a QR code in an authenticator app.
    pub otpauth_uri: String,
    /// The same secret in base32, for manual entry.
    pub secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesOut {
    /// Ten single-use codes. Shown only once.
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTotpRequest {
    pub password: String,
    /// A current TOTP code or a recovery code.
    pub code: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettingsBody {
    pub require_two_factor: bool,
    /// Seconds of inactivity after which a session ends (300 to 7776000; default 345600 = 4 days).
    pub session_idle_s: i64,
    /// Seconds after sign-in after which a session ends (3600 to 31536000; default 30 days).
    pub session_absolute_s: i64,
    /// IPv4/IPv6 addresses and CIDR ranges teammates may sign in from; empty = anywhere.
    pub ip_allowlist: Vec<String>,
}
