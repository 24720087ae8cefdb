//! Passkeys (WebAuthn, user verification required) as a second kind of factor: registration
//! by a signed-in teammate, and the sign-in step that answers a challenge after the password.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use interlock_domain::{ActivityType, PasskeyId, SecretName, Target, TeammateId, WorkspaceId};
use interlock_storage::Cell;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use webauthn_rs::prelude::{
    AuthenticationResult, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid,
};
use zeroize::Zeroizing;

use crate::AppState;
use crate::dto::{ListOf, LoginResponse};
use crate::error::ApiError;
use crate::extract::{Json, Path, RequestSource, TeammateAuth, parse_id};
use crate::messenger::ClientIp;
use crate::routes::auth::{BAD_CREDENTIALS, sign_in_failed, signed_in, verify_off_runtime};

const REGISTRATION: &str = "registration";
const AUTHENTICATION: &str = "authentication";

fn internal(e: &dyn std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

pub(crate) const BAD_CEREMONY: ApiError = ApiError::Unauthorized {
    code: "invalid_passkey",
    detail: "the passkey response does not verify, or the ceremony expired or was used",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyChallenge {
    /// Send back with the authenticator's response.
    pub registration_id: String,
    /// `PublicKeyCredentialCreationOptions` for `navigator.credentials.create`.
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRegistration {
    pub registration_id: String,
    /// A label ("YubiKey 5", "MacBook Touch ID").
    pub name: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create`, as JSON.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyOut {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovePasskey {
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLogin {
    /// `passkey_login_id` from the sign-in's 401 answer.
    pub login_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get`, as JSON.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

fn user_uuid(teammate: &TeammateId) -> Result<Uuid, ApiError> {
    let hex = teammate
        .as_str()
        .strip_prefix("tm_")
        .ok_or_else(|| internal(&"teammate id"))?;
    Uuid::parse_str(hex).map_err(|e| internal(&e))
}

async fn stored(
    cell: &Cell,
    ws: &WorkspaceId,
    teammate: &TeammateId,
) -> Result<Vec<(PasskeyId, Passkey)>, ApiError> {
    let rows = cell.passkeys(ws, teammate).await?;
    decode(rows.iter().map(|p| (p.id.clone(), p.credential.as_slice())))
}

// ------------------------------------------------------------------ shared ceremonies
// Teammates and operator staff run the same WebAuthn ceremonies; only where the state and the
// credentials are kept differs.

/// An authenticator's answer, as JSON, into the webauthn-rs type (`400 invalid_credential`).
pub(crate) fn parse_credential<T: serde::de::DeserializeOwned>(
    credential: serde_json::Value,
) -> Result<T, ApiError> {
    serde_json::from_value(credential)
        .map_err(|e| ApiError::bad_request("invalid_credential", format!("credential: {e}")))
}

/// Registration options for `user` (excluding the credentials they hold) and the ceremony
/// state to park: (options JSON, state).
pub(crate) fn registration_options(
    webauthn: &webauthn_rs::Webauthn,
    user: Uuid,
    name: &str,
    display_name: &str,
    existing: &[Passkey],
) -> Result<(serde_json::Value, Zeroizing<Vec<u8>>), ApiError> {
    let exclude = existing.iter().map(|p| p.cred_id().clone()).collect();
    let (ccr, reg) = webauthn
        .start_passkey_registration(user, name, display_name, Some(exclude))
        .map_err(|e| internal(&e))?;
    let state = Zeroizing::new(serde_json::to_vec(&reg).map_err(|e| internal(&e))?);
    Ok((serde_json::to_value(&ccr).map_err(|e| internal(&e))?, state))
}

/// Verify a registration answer against the parked state (user verification required); the
/// new credential, serialised for storage.
pub(crate) fn registered(
    webauthn: &webauthn_rs::Webauthn,
    credential: &RegisterPublicKeyCredential,
    state: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let reg: PasskeyRegistration = serde_json::from_slice(state).map_err(|e| internal(&e))?;
    let passkey = webauthn
        .finish_passkey_registration(credential, &reg)
        .map_err(|_| BAD_CEREMONY)?;
    Ok(Zeroizing::new(
        serde_json::to_vec(&passkey).map_err(|e| internal(&e))?,
    ))
}

/// Sign-in options over `keys` and the ceremony state to park: (options JSON, state).
pub(crate) fn login_options(
    webauthn: &webauthn_rs::Webauthn,
    keys: &[Passkey],
) -> Result<(serde_json::Value, Zeroizing<Vec<u8>>), ApiError> {
    let (rcr, auth) = webauthn
        .start_passkey_authentication(keys)
        .map_err(|e| internal(&e))?;
    let state = Zeroizing::new(serde_json::to_vec(&auth).map_err(|e| internal(&e))?);
    Ok((serde_json::to_value(&rcr).map_err(|e| internal(&e))?, state))
}

/// Verify a sign-in answer against the parked state; `Ok(None)` when it does not verify.
pub(crate) fn authenticated(
    webauthn: &webauthn_rs::Webauthn,
    credential: &PublicKeyCredential,
    state: &[u8],
) -> Result<Option<AuthenticationResult>, ApiError> {
    let auth: PasskeyAuthentication = serde_json::from_slice(state).map_err(|e| internal(&e))?;
    Ok(webauthn
        .finish_passkey_authentication(credential, &auth)
        .ok())
}

/// A stored credential's id and its new serialised form.
pub(crate) type Reserialised = (PasskeyId, Zeroizing<Vec<u8>>);

/// The stored credentials whose signature counter moved with this sign-in (clone
/// detection), serialised again for storage.
pub(crate) fn counters_moved(
    stored: Vec<(PasskeyId, Passkey)>,
    result: &AuthenticationResult,
) -> Result<Vec<Reserialised>, ApiError> {
    let mut out = Vec::new();
    for (id, mut pk) in stored {
        if pk.update_credential(result) == Some(true) {
            out.push((
                id,
                Zeroizing::new(serde_json::to_vec(&pk).map_err(|e| internal(&e))?),
            ));
        }
    }
    Ok(out)
}

/// Stored credentials, deserialised.
pub(crate) fn decode<'a>(
    rows: impl IntoIterator<Item = (PasskeyId, &'a [u8])>,
) -> Result<Vec<(PasskeyId, Passkey)>, ApiError> {
    rows.into_iter()
        .map(|(id, json)| {
            let pk: Passkey = serde_json::from_slice(json).map_err(|e| internal(&e))?;
            Ok((id, pk))
        })
        .collect()
}

// ------------------------------------------------------------------ teammates

/// Start registering a passkey for the signed-in teammate.
#[utoipa::path(post, path = "/v1/auth/two-factor/passkeys/registrations", tag = "auth",
    responses((status = 200, body = PasskeyChallenge)),
    security(("teammate_session" = [])))]
pub async fn start_registration(
    State(state): State<Arc<AppState>>,
    t: TeammateAuth,
) -> Result<Json<PasskeyChallenge>, ApiError> {
    let (ws, me) = (&t.auth.workspace, &t.session.teammate_id);
    let teammate = t.auth.cell.get_teammate(ws, me).await?;
    let existing: Vec<Passkey> = stored(&t.auth.cell, ws, me)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let (public_key, reg) = registration_options(
        &state.webauthn,
        user_uuid(me)?,
        &teammate.email,
        &teammate.name,
        &existing,
    )?;
    let id = t
        .auth
        .cell
        .start_ceremony(ws, me, REGISTRATION, &reg)
        .await?;
    Ok(Json(PasskeyChallenge {
        registration_id: id.expose().to_owned(),
        public_key,
    }))
}

/// Finish registering a passkey with the authenticator's response.
#[utoipa::path(post, path = "/v1/auth/two-factor/passkeys", tag = "auth",
    request_body = FinishRegistration,
    responses((status = 201, body = PasskeyOut), (status = 401, description = "`invalid_passkey`")),
    security(("teammate_session" = [])))]
pub async fn finish_registration(
    State(state): State<Arc<AppState>>,
    t: TeammateAuth,
    Json(req): Json<FinishRegistration>,
) -> Result<(StatusCode, Json<PasskeyOut>), ApiError> {
    let name = SecretName::parse(&req.name)?;
    let credential: RegisterPublicKeyCredential = parse_credential(req.credential)?;
    let (ws, me) = (&t.auth.workspace, &t.session.teammate_id);
    let Some((cws, ctm, reg_json)) = t
        .auth
        .cell
        .take_ceremony(&req.registration_id, REGISTRATION)
        .await?
    else {
        return Err(BAD_CEREMONY);
    };
    if &cws != ws || &ctm != me {
        return Err(BAD_CEREMONY);
    }
    let json = registered(&state.webauthn, &credential, &reg_json)?;
    let act = t
        .auth
        .activity(ActivityType::PasskeyAdded, Target::kind("passkey"))
        .with("teammate_id", me.to_string());
    let (id, created_at) = t
        .auth
        .cell
        .add_passkey(ws, me, name.as_str(), &json, &act)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PasskeyOut {
            id: id.to_string(),
            name: name.into_string(),
            created_at: created_at.div_euclid(1000),
        }),
    ))
}

/// The signed-in teammate's passkeys.
#[utoipa::path(get, path = "/v1/auth/two-factor/passkeys", tag = "auth",
    responses((status = 200, body = ListOf<PasskeyOut>)),
    security(("teammate_session" = [])))]
pub async fn list(t: TeammateAuth) -> Result<Json<ListOf<PasskeyOut>>, ApiError> {
    let all = t
        .auth
        .cell
        .passkeys(&t.auth.workspace, &t.session.teammate_id)
        .await?;
    Ok(Json(ListOf::new(
        all.into_iter()
            .map(|p| PasskeyOut {
                id: p.id.to_string(),
                name: p.name,
                created_at: p.created_at.div_euclid(1000),
            })
            .collect(),
        None,
    )))
}

/// Remove one of the signed-in teammate's passkeys (needs the password).
#[utoipa::path(delete, path = "/v1/auth/two-factor/passkeys/{id}", tag = "auth",
    params(("id" = String, Path, description = "passkey id")),
    request_body = RemovePasskey,
    responses((status = 204, description = "removed"), (status = 401, description = "`invalid_credentials`")),
    security(("teammate_session" = [])))]
pub async fn remove(
    t: TeammateAuth,
    Path(id): Path<String>,
    Json(req): Json<RemovePasskey>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, PasskeyId::parse)?;
    let (ws, me) = (&t.auth.workspace, &t.session.teammate_id);
    let hash = t.auth.cell.password_hash(ws, me).await?;
    if !verify_off_runtime(req.password.clone(), hash).await? {
        return Err(BAD_CREDENTIALS);
    }
    let act = t
        .auth
        .activity(
            ActivityType::PasskeyRemoved,
            Target::new("passkey", id.as_str()),
        )
        .with("teammate_id", me.to_string());
    t.auth.cell.delete_passkey(ws, me, &id, &act).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// After a correct password: a WebAuthn challenge over the teammate's passkeys, parked as a
/// sign-in ceremony. Returns (login id, challenge JSON).
pub(crate) async fn start_login(
    state: &AppState,
    cell: &Cell,
    ws: &WorkspaceId,
    teammate: &TeammateId,
) -> Result<(String, serde_json::Value), ApiError> {
    let keys: Vec<Passkey> = stored(cell, ws, teammate)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let (options, auth) = login_options(&state.webauthn, &keys)?;
    let id = cell
        .start_ceremony(ws, teammate, AUTHENTICATION, &auth)
        .await?;
    Ok((id.expose().to_owned(), options))
}

/// Complete a sign-in with the passkey's answer to the challenge the password step returned.
#[utoipa::path(post, path = "/v1/auth/login/passkey", tag = "auth",
    request_body = PasskeyLogin,
    responses((status = 200, body = LoginResponse, description = "signed in; Set-Cookie carries the session"),
        (status = 401, description = "`invalid_passkey`")))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    RequestSource(source): RequestSource,
    Json(req): Json<PasskeyLogin>,
) -> Result<Response, ApiError> {
    let credential: PublicKeyCredential = parse_credential(req.credential)?;
    let region = interlock_crypto::RegionToken::region_of(
        interlock_crypto::TokenKind::Ceremony,
        &req.login_id,
    )
    .ok_or(BAD_CEREMONY)?;
    let cell = state.cell(region)?;
    let Some((ws, teammate, auth_json)) = cell.take_ceremony(&req.login_id, AUTHENTICATION).await?
    else {
        return Err(BAD_CEREMONY);
    };
    let security = cell.security_settings(&ws).await?;
    if !security.ip_allowlist.allows(ip) {
        cell.record_activity(
            &ws,
            &sign_in_failed(&source, Some(&teammate), "ip_not_allowed"),
        )
        .await?;
        return Err(ApiError::Forbidden {
            code: "ip_not_allowed",
            detail: "this workspace does not allow sign-ins from this address",
        });
    }
    let result = match authenticated(&state.webauthn, &credential, &auth_json)? {
        Some(r) => r,
        None => {
            let address = format!("ip:{ip}");
            cell.record_login_failure(
                &ws,
                &[address.as_str()],
                &sign_in_failed(&source, Some(&teammate), "bad_passkey"),
            )
            .await?;
            return Err(BAD_CEREMONY);
        }
    };
    // Keep the signature counter current (clone detection).
    for (id, json) in counters_moved(stored(&cell, &ws, &teammate).await?, &result)? {
        cell.update_passkey(&ws, &teammate, &id, &json).await?;
    }
    signed_in(&cell, &ws, &teammate, true, &source, "password+passkey").await
}
