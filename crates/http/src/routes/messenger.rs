//! The messenger: boots (anonymous visitors and identified users, with identity verification),
//! the routes a messenger session reaches, and the workspace's verification secrets and
//! settings.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use interlock_crypto::identity::{verify_jwt, verify_user_hash};
use interlock_crypto::{JwtClaims, JwtPolicy, RegionToken, TokenKind, VerificationSecret};
use interlock_domain::{
    ActivityType, Body, ContactPatch, ContactRole, ConversationId, DomainError, Email, ExternalId,
    IdentityVerification, MessengerSecretId, MessengerSettings, PersonName, Platform, Platforms,
    SecretName, Target, WorkspaceId,
};
use interlock_storage::{Cell, Contact, SessionScope};

use crate::AppState;
use crate::authz::{Allowed, perm};
use crate::dto::{
    BootRequest, BootResponse, ConversationOut, CreateSecretRequest, CreatedSecret, Deleted,
    ListOf, MessengerMessage, MessengerSettingsOut, MessengerSettingsRequest, PageParams, PartOut,
    SecretOut, cursor,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query, parse_id};
use crate::messenger::{Action, ClientIp, MessengerAuth};

fn unverified(reason: &'static str) -> ApiError {
    ApiError::IdentityVerificationFailed { reason }
}

/// Who a boot names and how (or whether) that was proven.
struct Identity {
    external_id: Option<ExternalId>,
    email: Option<Email>,
    name: Option<PersonName>,
    verified: bool,
}

fn conflicting(detail: &str) -> ApiError {
    ApiError::Invalid {
        code: "conflicting_identity",
        field: Some("user_jwt".into()),
        detail: detail.to_owned(),
    }
}

/// Check a user boot's proof under the workspace's mode. `Ok(None)` means the boot names no
/// user (an anonymous visitor).
fn identify(
    req: &BootRequest,
    settings: MessengerSettings,
    secrets: &[VerificationSecret],
) -> Result<Option<Identity>, ApiError> {
    if let Some(jwt) = &req.user_jwt {
        if req.user_id.is_some() || req.email.is_some() || req.name.is_some() {
            return Err(conflicting(
                "send user_jwt alone: its claims carry user_id, email and name",
            ));
        }
        if req.user_hash.is_some() {
            return Err(conflicting("send either user_jwt or user_hash, not both"));
        }
        // A JWT is the only source of the user's id here, so it is verified in every mode.
        if secrets.is_empty() {
            return Err(unverified("no_active_secret"));
        }
        let policy = JwtPolicy {
            max_lifetime_s: settings.jwt_max_lifetime_s,
        };
        let now = interlock_storage::now_ms().div_euclid(1000);
        let (claims, _) =
            verify_jwt(secrets, jwt, now, policy).map_err(|e| unverified(e.code()))?;
        let JwtClaims {
            user_id,
            email,
            name,
        } = claims;
        // Claims are checked like any other input: a bad email in a valid token is a 422.
        return Ok(Some(Identity {
            external_id: Some(ExternalId::parse(&user_id)?),
            email: email.as_deref().map(Email::parse).transpose()?,
            name: name.as_deref().map(PersonName::parse).transpose()?,
            verified: true,
        }));
    }
    if req.user_id.is_none() && req.email.is_none() {
        if req.user_hash.is_some() {
            return Err(DomainError::new(
                "user_hash",
                "missing_identifier",
                "user_hash needs the user_id or email it was computed over",
            )
            .into());
        }
        return Ok(None);
    }
    let identity = |verified| -> Result<Identity, ApiError> {
        Ok(Identity {
            external_id: req.user_id.as_deref().map(ExternalId::parse).transpose()?,
            email: req.email.as_deref().map(Email::parse).transpose()?,
            name: req.name.as_deref().map(PersonName::parse).transpose()?,
            verified,
        })
    };
    let mode = settings.identity_verification;
    match (&req.user_hash, mode) {
        // `off`: nothing is checked and nothing is verified.
        (_, IdentityVerification::Off) => identity(false).map(Some),
        (Some(hash), _) => {
            if secrets.is_empty() {
                return Err(unverified("no_active_secret"));
            }
            // The hash covers user_id when one is sent, else the email, exactly as sent.
            let message = req
                .user_id
                .as_deref()
                .or(req.email.as_deref())
                .unwrap_or_default();
            if verify_user_hash(secrets, message, hash).is_none() {
                return Err(unverified("user_hash_mismatch"));
            }
            identity(true).map(Some)
        }
        (None, IdentityVerification::Enforced) => Err(unverified("proof_required")),
        (None, IdentityVerification::Optional) => identity(false).map(Some),
    }
}

/// Apply a verified boot's email and name to the contact when they differ.
async fn update_verified(
    cell: &Cell,
    ws: &WorkspaceId,
    contact: Contact,
    who: &Identity,
) -> Result<Contact, ApiError> {
    let mut patch = ContactPatch::default();
    if let Some(e) = &who.email
        && contact.email.as_deref() != Some(e.as_str())
    {
        patch.email = Some(Some(e.clone()));
    }
    if let Some(n) = &who.name
        && contact.name.as_deref() != Some(n.as_str())
    {
        patch.name = Some(Some(n.clone()));
    }
    if patch.email.is_none() && patch.name.is_none() {
        return Ok(contact);
    }
    Ok(cell.update_contact(ws, &contact.id, patch).await?)
}

/// Start or resume a messenger session.
#[utoipa::path(post, path = "/v1/messenger/boot", tag = "messenger",
    request_body = BootRequest,
    responses(
        (status = 200, body = BootResponse),
        (status = 401, description = "identity verification failed (`identity_verification_failed`)"),
        (status = 404, description = "no such workspace"),
        (status = 429, description = "rate limited; see Retry-After")))]
pub async fn boot(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Json(req): Json<BootRequest>,
) -> Result<Json<BootResponse>, ApiError> {
    let ws = WorkspaceId::parse(&req.workspace_id)?;
    state.rate.check(Action::Boot, ip, ws.as_str())?;
    let cell = state.cell(ws.region())?;
    if !cell.workspace_exists(&ws).await? {
        return Err(ApiError::UnknownWorkspace);
    }
    let platform = req
        .platform
        .as_deref()
        .map(Platform::parse)
        .transpose()?
        .unwrap_or(Platform::Web);
    let settings = cell.messenger_settings(&ws).await?;
    let names_user = req.user_jwt.is_some() || req.user_id.is_some() || req.email.is_some();
    let secrets = if names_user {
        cell.verification_secrets(&ws, platform).await?
    } else {
        Vec::new()
    };
    let who = identify(&req, settings, &secrets)?;
    drop(secrets);
    // A visitor token is only looked at when it has the right shape for this region.
    let visitor = match req.visitor_token.as_deref() {
        Some(t) if RegionToken::region_of(TokenKind::Visitor, t) == Some(ws.region()) => {
            cell.visitor_by_token(&ws, t).await?
        }
        _ => None,
    };
    let ttl_ms = state.limits.messenger.session_ttl_s.saturating_mul(1000);

    let Some(who) = who else {
        // An anonymous visitor: resume it, or start a new one.
        let (contact_id, visitor_token) = match visitor {
            Some(id) => (id, req.visitor_token.clone().unwrap_or_default()),
            None => {
                let (c, token) = cell.new_visitor(&ws).await?;
                (c.id, token.expose().to_owned())
            }
        };
        let (session, expires_at) = cell
            .open_messenger_session(&ws, &contact_id, SessionScope::Contact, ttl_ms)
            .await?;
        return Ok(Json(BootResponse {
            session_token: session.expose().to_owned(),
            expires_at: expires_at.div_euclid(1000),
            contact_id: contact_id.to_string(),
            role: ContactRole::Visitor.as_str().to_owned(),
            identity_verified: false,
            visitor_token: Some(visitor_token),
        }));
    };

    let mut contact = cell
        .find_or_create_user(&ws, who.external_id.as_ref(), who.email.as_ref())
        .await?;
    if who.verified {
        contact = update_verified(&cell, &ws, contact, &who).await?;
        // Only a verified boot turns a visitor into this user.
        if let Some(v) = visitor
            && v != contact.id
        {
            cell.merge_visitor(&ws, &v, &contact.id).await?;
        }
    }
    let scope = if who.verified || settings.identity_verification == IdentityVerification::Off {
        SessionScope::Contact
    } else {
        SessionScope::Session
    };
    let (session, expires_at) = cell
        .open_messenger_session(&ws, &contact.id, scope, ttl_ms)
        .await?;
    Ok(Json(BootResponse {
        session_token: session.expose().to_owned(),
        expires_at: expires_at.div_euclid(1000),
        contact_id: contact.id.to_string(),
        role: contact.role.as_str().to_owned(),
        identity_verified: who.verified,
        visitor_token: None,
    }))
}

fn message_body(state: &AppState, raw: &str) -> Result<Body, ApiError> {
    let max = state.limits.messenger.max_message_bytes;
    if raw.len() > max {
        return Err(ApiError::Invalid {
            code: "body_too_long",
            field: Some("body".into()),
            detail: format!("body must be at most {max} bytes"),
        });
    }
    Ok(Body::parse(raw)?)
}

/// The session's conversations: all of its contact's, or for an unverified user only those
/// this session started.
#[utoipa::path(get, path = "/v1/messenger/conversations", tag = "messenger",
    params(PageParams),
    responses((status = 200, body = ListOf<ConversationOut>), (status = 401, description = "no valid session")),
    security(("messenger_session" = [])))]
pub async fn list_conversations(
    auth: MessengerAuth,
    Query(page): Query<PageParams>,
) -> Result<Json<ListOf<ConversationOut>>, ApiError> {
    let got = auth
        .cell
        .messenger_conversations(
            &auth.session,
            page.after(ConversationId::parse)?.as_ref(),
            page.limit()?,
        )
        .await?;
    Ok(Json(ListOf::new(
        got.items.iter().map(ConversationOut::summary).collect(),
        cursor(got.next_after),
    )))
}

/// Start a conversation as the session's contact.
#[utoipa::path(post, path = "/v1/messenger/conversations", tag = "messenger",
    request_body = MessengerMessage,
    responses((status = 201, body = ConversationOut), (status = 429, description = "rate limited")),
    security(("messenger_session" = [])))]
pub async fn start_conversation(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    auth: MessengerAuth,
    Json(req): Json<MessengerMessage>,
) -> Result<(StatusCode, Json<ConversationOut>), ApiError> {
    // Invalid input is refused before it takes a token from the budget.
    let body = message_body(&state, &req.body)?;
    state
        .rate
        .check(Action::Message, ip, auth.session.workspace.as_str())?;
    let c = auth
        .cell
        .messenger_start_conversation(&auth.session, &body)
        .await?;
    Ok((StatusCode::CREATED, Json(ConversationOut::with_parts(c))))
}

/// One of the session's conversations with its parts; another contact's is 404.
#[utoipa::path(get, path = "/v1/messenger/conversations/{id}", tag = "messenger",
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = ConversationOut), (status = 404, description = "not this session's")),
    security(("messenger_session" = [])))]
pub async fn get_conversation(
    auth: MessengerAuth,
    Path(id): Path<String>,
) -> Result<Json<ConversationOut>, ApiError> {
    let id = parse_id(&id, ConversationId::parse)?;
    let c = auth.cell.messenger_conversation(&auth.session, &id).await?;
    Ok(Json(ConversationOut::with_parts(c)))
}

/// Reply in one of the session's conversations.
#[utoipa::path(post, path = "/v1/messenger/conversations/{id}/replies", tag = "messenger",
    params(("id" = String, Path, description = "conversation id")),
    request_body = MessengerMessage,
    responses((status = 201, body = PartOut), (status = 404, description = "not this session's"), (status = 429, description = "rate limited")),
    security(("messenger_session" = [])))]
pub async fn reply(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    auth: MessengerAuth,
    Path(id): Path<String>,
    Json(req): Json<MessengerMessage>,
) -> Result<(StatusCode, Json<PartOut>), ApiError> {
    let id = parse_id(&id, ConversationId::parse)?;
    // Invalid input is refused before it takes a token from the budget.
    let body = message_body(&state, &req.body)?;
    state
        .rate
        .check(Action::Message, ip, auth.session.workspace.as_str())?;
    let part = auth.cell.messenger_reply(&auth.session, &id, &body).await?;
    Ok((StatusCode::CREATED, Json(part.into())))
}

// ------------------------------------------------------------------ secrets and settings

/// Create an identity verification secret. Its value is in this response only.
#[utoipa::path(post, path = "/v1/messenger/secrets", tag = "messenger",
    extensions(("x-permission" = json!("messenger.manage"))),
    request_body = CreateSecretRequest,
    responses((status = 201, body = CreatedSecret)),
    security(("workspace_token" = [])))]
pub async fn create_secret(
    auth: Allowed<perm::MessengerManage>,
    Json(req): Json<CreateSecretRequest>,
) -> Result<(StatusCode, Json<CreatedSecret>), ApiError> {
    let name = SecretName::parse(&req.name)?;
    let platforms = Platforms::parse(&req.platforms)?;
    let (meta, value) = auth
        .cell
        .create_messenger_secret(
            &auth.workspace,
            &name,
            &platforms,
            &auth.activity(
                ActivityType::MessengerSecretCreated,
                Target::kind("messenger_secret"),
            ),
        )
        .await?;
    let out = SecretOut::from(meta);
    Ok((
        StatusCode::CREATED,
        Json(CreatedSecret {
            id: out.id,
            name: out.name,
            platforms: out.platforms,
            created_at: out.created_at,
            secret: value.expose().to_owned(),
        }),
    ))
}

/// List the workspace's verification secrets (never their values).
#[utoipa::path(get, path = "/v1/messenger/secrets", tag = "messenger",
    extensions(("x-permission" = json!("messenger.manage"))),
    responses((status = 200, body = ListOf<SecretOut>)),
    security(("workspace_token" = [])))]
pub async fn list_secrets(
    auth: Allowed<perm::MessengerManage>,
) -> Result<Json<ListOf<SecretOut>>, ApiError> {
    let all = auth.cell.list_messenger_secrets(&auth.workspace).await?;
    Ok(Json(ListOf::new(
        all.into_iter().map(SecretOut::from).collect(),
        None,
    )))
}

/// Delete a verification secret: hashes and JWTs made with it stop verifying at once.
#[utoipa::path(delete, path = "/v1/messenger/secrets/{id}", tag = "messenger",
    extensions(("x-permission" = json!("messenger.manage"))),
    params(("id" = String, Path, description = "secret id")),
    responses((status = 200, body = Deleted), (status = 404, description = "no such secret")),
    security(("workspace_token" = [])))]
pub async fn delete_secret(
    auth: Allowed<perm::MessengerManage>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_id(&id, MessengerSecretId::parse)?;
    auth.cell
        .delete_messenger_secret(
            &auth.workspace,
            &id,
            &auth.activity(
                ActivityType::MessengerSecretDeleted,
                Target::new("messenger_secret", id.as_str()),
            ),
        )
        .await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}

fn settings_out(s: MessengerSettings) -> MessengerSettingsOut {
    MessengerSettingsOut {
        identity_verification: s.identity_verification.as_str().to_owned(),
        jwt_max_lifetime_s: s.jwt_max_lifetime_s,
    }
}

/// The workspace's messenger settings.
#[utoipa::path(get, path = "/v1/workspace/messenger", tag = "messenger",
    extensions(("x-permission" = json!("messenger.manage"))),
    responses((status = 200, body = MessengerSettingsOut)),
    security(("workspace_token" = [])))]
pub async fn get_settings(
    auth: Allowed<perm::MessengerManage>,
) -> Result<Json<MessengerSettingsOut>, ApiError> {
    let s = auth.cell.messenger_settings(&auth.workspace).await?;
    Ok(Json(settings_out(s)))
}

/// Set identity verification (`off`, `optional`, `enforced`) and the longest JWT lifetime.
#[utoipa::path(put, path = "/v1/workspace/messenger", tag = "messenger",
    extensions(("x-permission" = json!("messenger.manage"))),
    request_body = MessengerSettingsRequest,
    responses((status = 200, body = MessengerSettingsOut),
        (status = 409, description = "`enforced` without any secret (`no_verification_secret`)")),
    security(("workspace_token" = [])))]
pub async fn put_settings(
    auth: Allowed<perm::MessengerManage>,
    Json(req): Json<MessengerSettingsRequest>,
) -> Result<Json<MessengerSettingsOut>, ApiError> {
    let mode = IdentityVerification::parse(&req.identity_verification)?;
    let current = auth.cell.messenger_settings(&auth.workspace).await?;
    let next = MessengerSettings {
        identity_verification: mode,
        jwt_max_lifetime_s: match req.jwt_max_lifetime_s {
            Some(s) => MessengerSettings::check_jwt_max_lifetime(s)?,
            None => current.jwt_max_lifetime_s,
        },
    };
    auth.cell
        .set_messenger_settings(
            &auth.workspace,
            next,
            &auth.activity(
                ActivityType::MessengerSettingsUpdated,
                Target::kind("messenger_settings"),
            ),
        )
        .await?;
    Ok(Json(settings_out(next)))
}
