//! Staff passkeys (docs/staff-access.md): WebAuthn with user verification — the biometric or
//! PIN check of the authenticator on the managed device — as a staff member's sign-in factor,
//! beside TOTP. Registration needs a signed-in staff session; sign-in needs the trusted device.
//! Every ceremony is bound to the device that started it and finishes on no other.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use interlock_domain::{PasskeyId, SecretName, StaffId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential, RegisterPublicKeyCredential, Uuid};

use crate::AppState;
use crate::device::TrustedDevice;
use crate::dto::ListOf;
use crate::error::ApiError;
use crate::extract::{Json, Path, parse_id};
use crate::routes::passkeys::{
    FinishRegistration, PasskeyChallenge, PasskeyLogin, PasskeyOut, authenticated, counters_moved,
    decode, login_options, parse_credential, registered, registration_options,
};
use crate::routes::staff::{StaffAuth, StaffSessionOut, not_locked};

const REGISTRATION: &str = "registration";
const AUTHENTICATION: &str = "authentication";

const BAD_CEREMONY: ApiError = ApiError::Unauthorized {
    code: "invalid_passkey",
    detail: "the passkey response does not verify, or the ceremony expired, was used, or was started on another device",
};

fn internal(e: &dyn std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

/// Ask for a sign-in challenge: the staff member whose device this is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffPasskeyChallengeBody {
    pub staff_id: String,
}

/// A sign-in challenge over the staff member's passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffPasskeyChallenge {
    /// Send back with the authenticator's answer to `POST /v1/staff/sessions/passkey`.
    pub login_id: String,
    /// `PublicKeyCredentialRequestOptions` for `navigator.credentials.get`.
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// The WebAuthn user handle of a staff member: the UUID inside their id.
fn user_uuid(staff: &StaffId) -> Result<Uuid, ApiError> {
    let hex = staff
        .as_str()
        .strip_prefix("sf_")
        .ok_or_else(|| internal(&"staff id"))?;
    Uuid::parse_str(hex).map_err(|e| internal(&e))
}

async fn stored(
    cell: &interlock_storage::Cell,
    staff: &StaffId,
) -> Result<Vec<(PasskeyId, Passkey)>, ApiError> {
    let rows = cell.staff_passkeys(staff).await?;
    decode(rows.iter().map(|p| (p.id.clone(), p.credential.as_slice())))
}

fn keys_of(stored: Vec<(PasskeyId, Passkey)>) -> Vec<Passkey> {
    stored.into_iter().map(|(_, p)| p).collect()
}

/// Start registering a passkey for the signed-in staff member, on this device.
#[utoipa::path(post, path = "/v1/staff/passkeys/registrations", tag = "staff",
    responses((status = 200, body = PasskeyChallenge)),
    security(("staff_session" = [])))]
pub async fn start_registration(
    State(state): State<Arc<AppState>>,
    auth: StaffAuth,
) -> Result<Json<PasskeyChallenge>, ApiError> {
    let me = &auth.principal.staff_id;
    let member = auth.cell.get_staff(me).await?;
    let existing = keys_of(stored(&auth.cell, me).await?);
    let (public_key, reg) = registration_options(
        &state.webauthn,
        user_uuid(me)?,
        &member.email,
        &member.email,
        &existing,
    )?;
    let id = auth
        .cell
        .start_staff_ceremony(me, &auth.principal.device_serial, REGISTRATION, &reg)
        .await?;
    Ok(Json(PasskeyChallenge {
        registration_id: id.expose().to_owned(),
        public_key,
    }))
}

/// Finish registering a passkey with the authenticator's answer (user verification required).
#[utoipa::path(post, path = "/v1/staff/passkeys", tag = "staff",
    request_body = FinishRegistration,
    responses((status = 201, body = PasskeyOut), (status = 401, description = "`invalid_passkey`")),
    security(("staff_session" = [])))]
pub async fn finish_registration(
    State(state): State<Arc<AppState>>,
    auth: StaffAuth,
    Json(req): Json<FinishRegistration>,
) -> Result<(StatusCode, Json<PasskeyOut>), ApiError> {
    let name = SecretName::parse(&req.name)?;
    let credential: RegisterPublicKeyCredential = parse_credential(req.credential)?;
    let me = &auth.principal.staff_id;
    let Some(ceremony) = auth
        .cell
        .take_staff_ceremony(&req.registration_id, REGISTRATION)
        .await?
    else {
        return Err(BAD_CEREMONY);
    };
    if &ceremony.staff_id != me || ceremony.device_serial != auth.principal.device_serial {
        return Err(BAD_CEREMONY);
    }
    let json = registered(&state.webauthn, &credential, &ceremony.state)?;
    let (id, created_at) = auth
        .cell
        .add_staff_passkey(me, name.as_str(), &json)
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

/// The signed-in staff member's passkeys.
#[utoipa::path(get, path = "/v1/staff/passkeys", tag = "staff",
    responses((status = 200, body = ListOf<PasskeyOut>)),
    security(("staff_session" = [])))]
pub async fn list(auth: StaffAuth) -> Result<Json<ListOf<PasskeyOut>>, ApiError> {
    let all = auth.cell.staff_passkeys(&auth.principal.staff_id).await?;
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

/// Remove one of the signed-in staff member's passkeys (TOTP keeps working).
#[utoipa::path(delete, path = "/v1/staff/passkeys/{id}", tag = "staff",
    params(("id" = String, Path, description = "passkey id")),
    responses((status = 204, description = "removed"), (status = 404, description = "not theirs or unknown")),
    security(("staff_session" = [])))]
pub async fn remove(auth: StaffAuth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, PasskeyId::parse)?;
    auth.cell
        .delete_staff_passkey(&auth.principal.staff_id, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start a passkey sign-in from the staff member's trusted device: a WebAuthn challenge over
/// their passkeys, answered at `POST /v1/staff/sessions/passkey` from the same device.
#[utoipa::path(post, path = "/v1/staff/sessions/passkey-challenges", tag = "staff",
    request_body = StaffPasskeyChallengeBody,
    responses((status = 200, body = StaffPasskeyChallenge),
        (status = 401, description = "`device_certificate_required`, `device_unknown`, `device_revoked`, `device_expired`, `invalid_credentials`"),
        (status = 409, description = "`no_passkey`: register one first (sign in with TOTP)"),
        (status = 429, description = "sign-in locked after repeated failures (`Retry-After`)")))]
pub async fn start_login(
    device: TrustedDevice,
    State(state): State<Arc<AppState>>,
    Json(body): Json<StaffPasskeyChallengeBody>,
) -> Result<Json<StaffPasskeyChallenge>, ApiError> {
    let id = StaffId::parse(&body.staff_id).map_err(|_| BAD_STAFF)?;
    if id.as_str() != device.staff_id {
        return Err(BAD_STAFF);
    }
    not_locked(&device.cell, &id, state.clock.now_ms()).await?;
    let keys = keys_of(stored(&device.cell, &id).await?);
    if keys.is_empty() {
        return Err(ApiError::Conflict {
            code: "no_passkey",
            detail: "this staff member has no passkey: sign in with a TOTP code and register one",
        });
    }
    let (public_key, auth) = login_options(&state.webauthn, &keys)?;
    let login = device
        .cell
        .start_staff_ceremony(&id, &device.serial, AUTHENTICATION, &auth)
        .await?;
    Ok(Json(StaffPasskeyChallenge {
        login_id: login.expose().to_owned(),
        public_key,
    }))
}

const BAD_STAFF: ApiError = ApiError::Unauthorized {
    code: "invalid_credentials",
    detail: "the staff id, the code or the device does not match",
};

/// Sign in with the passkey's answer to the challenge, from the device that asked for it.
/// The session is the same as a TOTP sign-in's: 8 hours, bound to this device.
#[utoipa::path(post, path = "/v1/staff/sessions/passkey", tag = "staff",
    request_body = PasskeyLogin,
    responses((status = 201, body = StaffSessionOut),
        (status = 401, description = "`invalid_passkey`, or a device error"),
        (status = 429, description = "sign-in locked after repeated failures (`Retry-After`)")))]
pub async fn login(
    device: TrustedDevice,
    State(state): State<Arc<AppState>>,
    Json(req): Json<PasskeyLogin>,
) -> Result<(StatusCode, Json<StaffSessionOut>), ApiError> {
    let credential: PublicKeyCredential = parse_credential(req.credential)?;
    let Some(ceremony) = device
        .cell
        .take_staff_ceremony(&req.login_id, AUTHENTICATION)
        .await?
    else {
        return Err(BAD_CEREMONY);
    };
    if ceremony.staff_id.as_str() != device.staff_id || ceremony.device_serial != device.serial {
        return Err(BAD_CEREMONY);
    }
    let me = &ceremony.staff_id;
    let now = state.clock.now_ms();
    not_locked(&device.cell, me, now).await?;
    let Some(result) = authenticated(&state.webauthn, &credential, &ceremony.state)? else {
        device
            .cell
            .record_staff_sign_in_failure(me, "passkey", &device.serial, now)
            .await?;
        return Err(BAD_CEREMONY);
    };
    // Keep the signature counter current (clone detection).
    for (id, json) in counters_moved(stored(&device.cell, me).await?, &result)? {
        device.cell.update_staff_passkey(me, &id, &json).await?;
    }
    let token = device
        .cell
        .staff_passkey_sign_in(me, &device.serial, now)
        .await?
        .ok_or(BAD_STAFF)?;
    let member = device.cell.get_staff(me).await?;
    Ok((
        StatusCode::CREATED,
        Json(StaffSessionOut {
            token: token.expose().to_owned(),
            staff_id: me.to_string(),
            role: member.role.as_str().to_owned(),
            expires_at: now + interlock_storage::STAFF_SESSION_MS,
        }),
    ))
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/staff/passkeys", post(finish_registration).get(list))
        .route("/v1/staff/passkeys/registrations", post(start_registration))
        .route("/v1/staff/passkeys/{id}", delete(remove))
        .route("/v1/staff/sessions/passkey-challenges", post(start_login))
        .route("/v1/staff/sessions/passkey", post(login))
}
