//! The OpenAPI document, generated from the handlers' annotations and the wire types.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::routes::{
    access, activity, auth, contacts, conversations, datamap, events, messenger, operator,
    passkeys, retention, system, teammates,
};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["workspace_token", "operator_token", "messenger_session"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
        // A teammate's session: the cookie, plus `X-CSRF-Token` on state-changing requests.
        components.add_security_scheme(
            "teammate_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::extract::SESSION_COOKIE,
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Interlock",
        description = "Encrypted, region-pinned customer data store. Errors are RFC 9457 problem+json with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    paths(
        operator::create_workspace,
        operator::list_workspaces,
        contacts::create,
        contacts::get,
        contacts::update,
        contacts::delete,
        contacts::list,
        conversations::create,
        conversations::get,
        conversations::delete,
        conversations::list,
        conversations::add_part,
        conversations::upload,
        conversations::list_attachments,
        conversations::download,
        events::create,
        events::list,
        messenger::boot,
        messenger::list_conversations,
        messenger::start_conversation,
        messenger::get_conversation,
        messenger::reply,
        messenger::create_secret,
        messenger::list_secrets,
        messenger::delete_secret,
        messenger::get_settings,
        messenger::put_settings,
        access::permissions,
        access::roles,
        access::create_role,
        access::update_role,
        access::delete_role,
        access::create_token,
        access::list_tokens,
        access::revoke_token,
        teammates::create,
        teammates::list,
        teammates::update,
        teammates::remove,
        retention::get,
        retention::put,
        teammates::get_security,
        teammates::put_security,
        auth::accept_invitation,
        auth::login,
        auth::logout,
        auth::list_sessions,
        auth::revoke_session,
        auth::enrol_totp,
        auth::confirm_totp,
        auth::disable_totp,
        passkeys::start_registration,
        passkeys::finish_registration,
        passkeys::list,
        passkeys::remove,
        passkeys::login,
        activity::event_types,
        activity::public_key,
        activity::list,
        activity::export,
        datamap::get,
        system::healthz,
        system::metrics,
    ),
    components(schemas(
        dto::CreateWorkspaceRequest,
        dto::CreatedWorkspace,
        dto::WorkspaceOut,
        dto::CreateContactRequest,
        dto::UpdateContactRequest,
        dto::ContactOut,
        dto::CreateConversationRequest,
        dto::CreatePartRequest,
        dto::AuthorIn,
        dto::PartOut,
        dto::ConversationOut,
        dto::CreateEventRequest,
        dto::EventOut,
        dto::AttachmentOut,
        dto::Health,
        dto::BootRequest,
        dto::BootResponse,
        dto::MessengerMessage,
        dto::CreateSecretRequest,
        dto::CreatedSecret,
        dto::SecretOut,
        dto::Deleted,
        dto::MessengerSettingsOut,
        dto::MessengerSettingsRequest,
        dto::PermissionOut,
        dto::RoleOut,
        dto::RoleRequest,
        dto::CreateTokenRequest,
        dto::TokenOut,
        dto::CreatedToken,
        dto::CreateTeammateRequest,
        dto::TeammateOut,
        dto::CreatedTeammate,
        dto::UpdateTeammateRequest,
        dto::AcceptInvitationRequest,
        dto::LoginRequest,
        dto::LoginResponse,
        dto::SessionOut,
        dto::TotpEnrolment,
        dto::TotpCode,
        dto::RecoveryCodesOut,
        dto::DisableTotpRequest,
        dto::SecuritySettingsBody,
        passkeys::PasskeyChallenge,
        passkeys::FinishRegistration,
        passkeys::PasskeyOut,
        passkeys::RemovePasskey,
        passkeys::PasskeyLogin,
        datamap::DataMapOut,
        datamap::CollectionOut,
        datamap::FieldOut,
        datamap::RetentionOut,
        datamap::IndexOut,
    )),
    modifiers(&Security),
    tags(
        (name = "operator", description = "Workspace management with the operator token"),
        (name = "contacts", description = "Users and visitors"),
        (name = "conversations", description = "Conversations and their messages"),
        (name = "attachments", description = "Files on conversations, encrypted at rest"),
        (name = "events", description = "Tracked events"),
        (name = "teammates", description = "Teammates, their roles, and the workspace's security settings"),
        (name = "auth", description = "Teammates signing in: invitations, sessions, two-factor authentication"),
        (name = "access", description = "Permissions, roles and scoped API tokens. Each operation's `x-permission` names the permission it needs"),
        (name = "messenger", description = "End users' messenger sessions, identity verification secrets and settings"),
        (name = "privacy", description = "The data map: every stored data element with its fideslang category, data subject and use, encryption, retention and erasure"),
        (name = "system", description = "Health and metrics"),
    )
)]
struct ApiDoc;

/// The document served at `/v1/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
