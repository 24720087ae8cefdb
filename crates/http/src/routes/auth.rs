//! Teammates signing in: invitations, login with password and second factor, the session
//! cookie and its CSRF token, logout, own sessions, and TOTP enrolment.
//!
//! Invariants: password hashing and verification run off the async runtime; an unknown email
//! costs the same Argon2 work as a wrong password; every failed sign-in is counted (per
//! account and per address, with back-off and a temporary lock) and recorded; a TOTP step and
//! a recovery code are each accepted once.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use interlock_crypto::password::{self, PasswordHash};
use interlock_crypto::totp::{self, TotpSecret};
use interlock_domain::{
    ActivityType, Actor, DomainError, Email, NewActivity, SessionId, Target, TeammateId,
    WorkspaceId,
};
use interlock_storage::Cell;
use std::sync::Arc;

use crate::AppState;
use crate::dto::{
    AcceptInvitationRequest, DisableTotpRequest, ListOf, LoginRequest, LoginResponse,
    RecoveryCodesOut, SessionOut, TotpCode, TotpEnrolment,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, RequestSource, SESSION_COOKIE, TeammateAuth, parse_id};
use crate::messenger::ClientIp;

pub(crate) const BAD_CREDENTIALS: ApiError = ApiError::Unauthorized {
    code: "invalid_credentials",
    detail: "the email, password or code is wrong",
};

fn internal(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(&e)
}

pub(crate) fn now_s() -> u64 {
    interlock_storage::now_ms().div_euclid(1000).max(0) as u64
}

pub(crate) async fn verify_off_runtime(
    password: String,
    hash: Option<PasswordHash>,
) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || match &hash {
        Some(h) => password::verify_password(&password, h),
        // No account (or no password yet): the same work, then no.
        None => password::verify_dummy(&password),
    })
    .await
    .map_err(internal)
}

fn policy(password: &str, related: &[&str]) -> Result<(), ApiError> {
    password::check_policy(password, related)
        .map_err(|p| ApiError::from(DomainError::new("password", p.code, p.message)))
}

/// Set a password with a one-time invitation token. The token cannot be used twice.
#[utoipa::path(post, path = "/v1/auth/invitations/accept", tag = "auth",
    request_body = AcceptInvitationRequest,
    responses((status = 204, description = "password set; sign in next"),
        (status = 404, description = "unknown, used or expired invitation"),
        (status = 422, description = "`password_too_short`, `password_too_common`, …")))]
pub async fn accept_invitation(
    State(state): State<Arc<AppState>>,
    RequestSource(source): RequestSource,
    Json(req): Json<AcceptInvitationRequest>,
) -> Result<StatusCode, ApiError> {
    let region = interlock_crypto::RegionToken::region_of(
        interlock_crypto::TokenKind::Invitation,
        &req.token,
    )
    .ok_or(ApiError::NotFound)?;
    let cell = state.cell(region)?;
    let teammate = cell.invitation_teammate(&req.token).await?;
    policy(&req.password, &[&teammate.email, &teammate.name])?;
    let pw = req.password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash_password(&pw))
        .await
        .map_err(internal)?
        .map_err(|e| ApiError::internal(&e))?;
    let act = NewActivity::new(
        ActivityType::TeammateJoined,
        &source,
        Target::kind("teammate"),
    );
    cell.accept_invitation(&req.token, hash, &act).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn session_cookie_header(value: &str, max_age_s: i64) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age_s}; Secure; HttpOnly; SameSite=Strict"
    ))
    .map_err(|e| ApiError::internal(&e))
}

/// The actor of a sign-in step: the teammate (once known) from the request's source.
pub(crate) fn signing_in(source: &Actor, teammate: Option<&TeammateId>) -> Actor {
    let mut actor = source.clone();
    actor.id = teammate.map(|t| t.to_string());
    actor
}

/// The activity entry of a failed sign-in step. The attempted email is never recorded.
pub(crate) fn sign_in_failed(
    source: &Actor,
    teammate: Option<&TeammateId>,
    reason: &'static str,
) -> NewActivity {
    let target = match teammate {
        Some(t) => Target::new("teammate", t.as_str()),
        None => Target::kind("teammate"),
    };
    NewActivity::new(
        ActivityType::SignInFailed,
        &signing_in(source, teammate),
        target,
    )
    .with("reason", reason)
}

/// Check a second factor: a 6-digit TOTP code (each time step once) or a recovery code (each
/// once).
pub(crate) async fn check_second_factor(
    cell: &Cell,
    ws: &WorkspaceId,
    teammate: &TeammateId,
    secret: Option<&TotpSecret>,
    code: &str,
    source: &Actor,
) -> Result<bool, ApiError> {
    let code = code.trim();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        let Some(step) = secret.and_then(|s| s.verify(code, now_s())) else {
            return Ok(false);
        };
        return match cell.accept_totp_step(ws, teammate, step).await {
            Ok(()) => Ok(true),
            Err(interlock_storage::StoreError::Conflict("totp_replay")) => Ok(false),
            Err(e) => Err(e.into()),
        };
    }
    let act = NewActivity::new(
        ActivityType::RecoveryCodeUsed,
        &signing_in(source, Some(teammate)),
        Target::new("teammate", teammate.as_str()),
    );
    match cell
        .use_recovery_code(ws, teammate, totp::recovery_code_hash(code), &act)
        .await
    {
        Ok(()) => Ok(true),
        Err(interlock_storage::StoreError::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sign in: sets the session cookie (`Secure; HttpOnly; SameSite=Strict`, a new one at every
/// sign-in) and returns the CSRF token to send as `X-CSRF-Token`.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse, description = "signed in; Set-Cookie carries the session"),
        (status = 401, description = "`invalid_credentials` or `otp_required`"),
        (status = 403, description = "`ip_not_allowed`"),
        (status = 429, description = "`login_throttled`; see Retry-After")))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    RequestSource(source): RequestSource,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let ws = WorkspaceId::parse(&req.workspace_id)?;
    let cell = state.cell(ws.region())?;
    if !cell.workspace_exists(&ws).await? {
        // Same answer and the same work as a wrong password.
        verify_off_runtime(req.password.clone(), None).await?;
        return Err(BAD_CREDENTIALS);
    }
    let email = Email::parse(&req.email)?;
    let account = format!("account:{}", email.as_str());
    let address = format!("ip:{ip}");
    let subjects = [account.as_str(), address.as_str()];
    if let Some(wait) = cell.throttled(&ws, &subjects).await? {
        return Err(ApiError::RateLimited {
            retry_after_s: wait.max(1) as u64,
        });
    }
    let security = cell.security_settings(&ws).await?;
    if !security.ip_allowlist.allows(ip) {
        cell.record_activity(&ws, &sign_in_failed(&source, None, "ip_not_allowed"))
            .await?;
        return Err(ApiError::Forbidden {
            code: "ip_not_allowed",
            detail: "this workspace does not allow sign-ins from this address",
        });
    }
    let (hash, teammate, totp_enabled, totp, passkeys) =
        match cell.login_record(&ws, &email).await? {
            Some(r) => (
                r.password_hash,
                Some(r.teammate_id),
                r.totp_enabled,
                r.totp,
                r.passkeys,
            ),
            None => (None, None, false, None, 0),
        };
    if !verify_off_runtime(req.password.clone(), hash).await? {
        let reason = if teammate.is_some() {
            "bad_password"
        } else {
            "unknown_account"
        };
        cell.record_login_failure(
            &ws,
            &subjects,
            &sign_in_failed(&source, teammate.as_ref(), reason),
        )
        .await?;
        return Err(BAD_CREDENTIALS);
    }
    let Some(teammate) = teammate else {
        return Err(BAD_CREDENTIALS);
    };
    if totp_enabled || passkeys > 0 {
        let Some(code) = req.otp.as_deref() else {
            cell.record_login_failure(
                &ws,
                &subjects,
                &sign_in_failed(&source, Some(&teammate), "second_factor_missing"),
            )
            .await?;
            // With passkeys, answer with a WebAuthn challenge to complete the sign-in.
            let (passkey_login_id, passkey_challenge) = if passkeys > 0 {
                let (id, challenge) =
                    crate::routes::passkeys::start_login(&state, &cell, &ws, &teammate).await?;
                (Some(id), Some(challenge))
            } else {
                (None, None)
            };
            return Err(ApiError::SecondFactorRequired {
                passkey_login_id,
                passkey_challenge,
            });
        };
        let secret = if totp_enabled { totp.as_ref() } else { None };
        if !check_second_factor(&cell, &ws, &teammate, secret, code, &source).await? {
            cell.record_login_failure(
                &ws,
                &subjects,
                &sign_in_failed(&source, Some(&teammate), "bad_second_factor"),
            )
            .await?;
            return Err(BAD_CREDENTIALS);
        }
    }
    cell.clear_login_failures(&ws, &account).await?;
    let method = match req.otp.as_deref() {
        Some(_) if totp_enabled || passkeys > 0 => "password+code",
        _ => "password",
    };
    signed_in(
        &cell,
        &ws,
        &teammate,
        totp_enabled || passkeys > 0,
        &source,
        method,
    )
    .await
}

/// Open a session and answer with its cookie and CSRF token.
pub(crate) async fn signed_in(
    cell: &Cell,
    ws: &WorkspaceId,
    teammate: &TeammateId,
    two_factor: bool,
    source: &Actor,
    method: &'static str,
) -> Result<Response, ApiError> {
    let security = cell.security_settings(ws).await?;
    let act = NewActivity::new(
        ActivityType::SignInSucceeded,
        &signing_in(source, Some(teammate)),
        Target::new("teammate", teammate.as_str()),
    )
    .with("method", method);
    let (session_id, token, csrf) = cell.create_session(ws, teammate, &act).await?;
    let body = LoginResponse {
        teammate_id: teammate.to_string(),
        session_id: session_id.to_string(),
        csrf_token: csrf.expose().to_owned(),
        must_enrol_two_factor: security.require_two_factor && !two_factor,
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        session_cookie_header(token.expose(), security.session_absolute_s)?,
    );
    Ok((StatusCode::OK, headers, Json(body)).into_response())
}

/// Sign out: the session ends and the cookie is cleared.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "signed out")),
    security(("teammate_session" = [])))]
pub async fn logout(t: TeammateAuth) -> Result<Response, ApiError> {
    let act = t.auth.activity(
        ActivityType::SignedOut,
        Target::new("session", t.session.session_id.as_str()),
    );
    t.auth
        .cell
        .end_session(&t.auth.workspace, &t.session.cookie, &act)
        .await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, session_cookie_header("", 0)?);
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// The signed-in teammate's own sessions.
#[utoipa::path(get, path = "/v1/auth/sessions", tag = "auth",
    responses((status = 200, body = ListOf<SessionOut>)),
    security(("teammate_session" = [])))]
pub async fn list_sessions(t: TeammateAuth) -> Result<Json<ListOf<SessionOut>>, ApiError> {
    let all = t
        .auth
        .cell
        .list_sessions(
            &t.auth.workspace,
            &t.session.teammate_id,
            &t.session.session_id,
        )
        .await?;
    Ok(Json(ListOf::new(
        all.into_iter()
            .map(|s| SessionOut {
                id: s.id.to_string(),
                created_at: s.created_at.div_euclid(1000),
                last_seen_at: s.last_seen_at.div_euclid(1000),
                current: s.current,
            })
            .collect(),
        None,
    )))
}

/// Revoke one of the signed-in teammate's own sessions.
#[utoipa::path(delete, path = "/v1/auth/sessions/{id}", tag = "auth",
    params(("id" = String, Path, description = "session id")),
    responses((status = 204, description = "revoked"), (status = 404, description = "not one of yours")),
    security(("teammate_session" = [])))]
pub async fn revoke_session(
    t: TeammateAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, SessionId::parse)?;
    let act = t.auth.activity(
        ActivityType::SessionRevoked,
        Target::new("session", id.as_str()),
    );
    t.auth
        .cell
        .revoke_session(&t.auth.workspace, &t.session.teammate_id, &id, &act)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start TOTP enrolment: a new secret as an `otpauth://` URI. Confirm it with a first code.
#[utoipa::path(post, path = "/v1/auth/two-factor/totp", tag = "auth",
    responses((status = 200, body = TotpEnrolment), (status = 409, description = "`two_factor_already_enabled`")),
    security(("teammate_session" = [])))]
pub async fn enrol_totp(t: TeammateAuth) -> Result<Json<TotpEnrolment>, ApiError> {
    let me = t
        .auth
        .cell
        .get_teammate(&t.auth.workspace, &t.session.teammate_id)
        .await?;
    let secret = TotpSecret::generate().map_err(|e| ApiError::internal(&e))?;
    t.auth
        .cell
        .set_pending_totp(&t.auth.workspace, &t.session.teammate_id, &secret)
        .await?;
    let uri = secret
        .otpauth_uri("Interlock", &me.email)
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(TotpEnrolment {
        otpauth_uri: uri,
        secret: secret.base32(),
    }))
}

const BAD_CODE: ApiError = ApiError::Unauthorized {
    code: "invalid_otp",
    detail: "the code is wrong, expired or already used",
};

/// Confirm TOTP enrolment with a first valid code; returns ten single-use recovery codes.
#[utoipa::path(post, path = "/v1/auth/two-factor/totp/confirm", tag = "auth",
    request_body = TotpCode,
    responses((status = 200, body = RecoveryCodesOut), (status = 401, description = "`invalid_otp`")),
    security(("teammate_session" = [])))]
pub async fn confirm_totp(
    t: TeammateAuth,
    Json(req): Json<TotpCode>,
) -> Result<Json<RecoveryCodesOut>, ApiError> {
    let (ws, me) = (&t.auth.workspace, &t.session.teammate_id);
    let Some((secret, enabled)) = t.auth.cell.totp_secret(ws, me).await? else {
        return Err(ApiError::Conflict {
            code: "no_enrolment",
            detail: "start enrolment with POST /v1/auth/two-factor/totp first",
        });
    };
    if enabled {
        return Err(ApiError::Conflict {
            code: "two_factor_already_enabled",
            detail: "two-factor authentication is already on",
        });
    }
    let Some(step) = secret.verify(req.code.trim(), now_s()) else {
        return Err(BAD_CODE);
    };
    let codes = totp::generate_recovery_codes().map_err(|e| ApiError::internal(&e))?;
    let hashes: Vec<[u8; 32]> = codes.iter().map(|c| totp::recovery_code_hash(c)).collect();
    let act = t.auth.activity(
        ActivityType::TotpEnabled,
        Target::new("teammate", me.as_str()),
    );
    t.auth
        .cell
        .enable_totp(ws, me, step, &hashes, &act)
        .await
        .map_err(|e| match e {
            interlock_storage::StoreError::NotFound => BAD_CODE,
            e => e.into(),
        })?;
    Ok(Json(RecoveryCodesOut {
        recovery_codes: codes,
    }))
}

/// Turn TOTP off: needs the password and a current code (or a recovery code).
#[utoipa::path(delete, path = "/v1/auth/two-factor/totp", tag = "auth",
    request_body = DisableTotpRequest,
    responses((status = 204, description = "two-factor authentication is off"),
        (status = 401, description = "`invalid_credentials`")),
    security(("teammate_session" = [])))]
pub async fn disable_totp(
    t: TeammateAuth,
    Json(req): Json<DisableTotpRequest>,
) -> Result<StatusCode, ApiError> {
    let (ws, me) = (&t.auth.workspace, &t.session.teammate_id);
    let hash = t.auth.cell.password_hash(ws, me).await?;
    if !verify_off_runtime(req.password.clone(), hash).await? {
        return Err(BAD_CREDENTIALS);
    }
    let Some((secret, true)) = t.auth.cell.totp_secret(ws, me).await? else {
        return Err(ApiError::Conflict {
            code: "two_factor_not_enabled",
            detail: "two-factor authentication is not on",
        });
    };
    if !check_second_factor(
        &t.auth.cell,
        ws,
        me,
        Some(&secret),
        &req.code,
        &t.auth.actor,
    )
    .await?
    {
        return Err(BAD_CREDENTIALS);
    }
    let act = t.auth.activity(
        ActivityType::TotpDisabled,
        Target::new("teammate", me.as_str()),
    );
    t.auth.cell.disable_totp(ws, me, &act).await?;
    Ok(StatusCode::NO_CONTENT)
}
