//! Operator staff (docs/staff-access.md): sign-in from a trusted device, just-in-time access
//! requests, approvals, break-glass grants, and — on the workspace side — the admins' view of
//! every grant, their approval and revocation.
//!
//! Every staff route takes a [`TrustedDevice`] (a client certificate from the region's device
//! CA, registered and unrevoked) and, past sign-in, a [`StaffAuth`] (a session opened from that
//! same device). Staff tokens never reach workspace data: only a grant token does, through
//! [`crate::extract::WorkspaceAuth`].

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use interlock_crypto::{RegionToken, TokenKind};
use interlock_domain::{
    AccessAsk, ActivityType, GrantKind, StaffAccessApproval, StaffGrantId, StaffId, Target,
    WorkspaceId,
};
use interlock_storage::{Cell, StaffGrant, StaffPrincipal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::authz::{Allowed, perm};
use crate::device::TrustedDevice;
use crate::error::ApiError;
use crate::extract::{Json, Path, bearer, parse_id};

// ------------------------------------------------------------------ extractor

/// A signed-in staff member on the trusted device their session was opened from.
#[derive(Debug, Clone)]
pub struct StaffAuth {
    pub principal: StaffPrincipal,
    pub cell: Arc<Cell>,
}

const BAD_STAFF_SESSION: ApiError = ApiError::Unauthorized {
    code: "invalid_staff_session",
    detail: "sign in first (POST /v1/staff/sessions): the staff session is missing, expired, from another device, or its member was disabled",
};

impl FromRequestParts<Arc<AppState>> for StaffAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let device = TrustedDevice::from_request_parts(parts, state).await?;
        let token = bearer(parts).map_err(|_| BAD_STAFF_SESSION)?;
        if RegionToken::region_of(TokenKind::StaffSession, token) != Some(device.cell.region()) {
            return Err(BAD_STAFF_SESSION);
        }
        let principal = device
            .cell
            .staff_session(token, &device.serial, state.clock.now_ms())
            .await?
            .ok_or(BAD_STAFF_SESSION)?;
        Ok(StaffAuth {
            principal,
            cell: device.cell,
        })
    }
}

// ------------------------------------------------------------------ wire types

/// Sign in: the staff member's id and a TOTP code, from their trusted device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    pub staff_id: String,
    pub code: String,
}

/// A staff session (its token is shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffSessionOut {
    pub token: String,
    pub staff_id: String,
    pub role: String,
    pub expires_at: i64,
}

/// The signed-in staff member.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffMeOut {
    pub staff_id: String,
    pub role: String,
    pub device_serial: String,
}

/// A request for access to one workspace (or, at `/v1/staff/break-glass`, emergency access).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequestBody {
    pub workspace_id: String,
    /// Workspace permissions (e.g. `contacts.read`); at least one.
    pub permissions: Vec<String>,
    /// Why access is needed (required).
    pub reason: String,
    /// The support ticket or incident (required).
    pub ticket: String,
    /// How long the grant lasts once it starts: 60 s up to `[staff] max_grant_s` (default
    /// 14400); the cap when omitted.
    pub duration_s: Option<i64>,
}

/// A grant (or a request for one).
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantOut {
    pub id: String,
    pub object: &'static str,
    pub workspace_id: String,
    pub staff_id: String,
    /// `request` or `break_glass`.
    pub kind: &'static str,
    /// `pending`, `active`, `expired`, `revoked` or `unconfirmed`.
    pub status: &'static str,
    pub permissions: Vec<&'static str>,
    pub reason: String,
    pub ticket: String,
    pub duration_s: i64,
    pub workspace_approval_required: bool,
    pub created_at: i64,
    pub staff_approved_by: Option<String>,
    pub staff_approved_at: Option<i64>,
    pub workspace_approved_by: Option<String>,
    pub workspace_approved_at: Option<i64>,
    pub starts_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// Break-glass only: who confirmed it, and when (it ends unconfirmed after an hour).
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
}

/// A new grant with its token (shown once; it works while the grant is active, from the
/// staff member's trusted device).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewGrantOut {
    #[serde(flatten)]
    pub grant: GrantOut,
    pub token: String,
}

/// A list of grants, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    pub object: &'static str,
    pub data: Vec<GrantOut>,
}

fn grant_out(g: &StaffGrant, now_ms: i64) -> GrantOut {
    GrantOut {
        id: g.id.to_string(),
        object: "staff_grant",
        workspace_id: g.workspace_id.to_string(),
        staff_id: g.staff_id.to_string(),
        kind: g.kind.as_str(),
        status: g.status(now_ms).as_str(),
        permissions: g.permissions.iter().map(|p| p.as_str()).collect(),
        reason: g.reason.clone(),
        ticket: g.ticket.clone(),
        duration_s: g.duration_s,
        workspace_approval_required: g.state.workspace_approval_required,
        created_at: g.state.created_at,
        staff_approved_by: g.staff_approved_by.clone(),
        staff_approved_at: g.state.staff_approved_at,
        workspace_approved_by: g.workspace_approved_by.clone(),
        workspace_approved_at: g.state.workspace_approved_at,
        starts_at: g.state.starts_at,
        expires_at: g.state.expires_at,
        confirmed_by: g.confirmed_by.clone(),
        confirmed_at: g.state.confirmed_at,
        revoked_at: g.state.revoked_at,
        revoked_by: g.revoked_by.clone(),
    }
}

/// The storage layer's refusals of grant actions, as problem+json.
fn grant_error(e: interlock_storage::StoreError) -> ApiError {
    use interlock_storage::StoreError::Conflict;
    match e {
        Conflict("self_approval") => ApiError::Forbidden {
            code: "self_approval",
            detail: "a grant must be approved (or confirmed) by a different staff member",
        },
        Conflict("not_an_approver") => ApiError::Forbidden {
            code: "approver_required",
            detail: "only staff members with the approver role approve or confirm grants",
        },
        Conflict("grant_not_pending") => ApiError::Conflict {
            code: "grant_not_pending",
            detail: "the grant is not waiting for this approval (already approved, started, revoked or ended)",
        },
        Conflict("grant_not_confirmable") => ApiError::Conflict {
            code: "grant_not_confirmable",
            detail: "only an active, unconfirmed break-glass grant can be confirmed, within an hour of its start",
        },
        Conflict("grant_ended") => ApiError::Conflict {
            code: "grant_ended",
            detail: "the grant has already ended",
        },
        Conflict("workspace_approval_not_required") => ApiError::Conflict {
            code: "workspace_approval_not_required",
            detail: "this grant does not need a workspace admin's approval",
        },
        Conflict("staff_email_taken") => ApiError::Conflict {
            code: "staff_email_taken",
            detail: "a staff member with this email exists",
        },
        other => other.into(),
    }
}

fn grant_id(raw: &str) -> Result<StaffGrantId, ApiError> {
    parse_id(raw, StaffGrantId::parse)
}

// ------------------------------------------------------------------ staff routes

/// Sign in from a trusted device with a TOTP code (RFC 6238). The device must be the staff
/// member's own; the session works from that device only, for 8 hours.
#[utoipa::path(post, path = "/v1/staff/sessions", tag = "staff",
    request_body = SignInBody,
    responses((status = 201, body = StaffSessionOut),
        (status = 401, description = "`device_certificate_required`, `device_unknown`, `device_revoked`, `device_expired`, `invalid_credentials`"),
        (status = 403, description = "`passkey_required` (`[staff] totp_with_passkey = false` and the member has a passkey)"),
        (status = 429, description = "sign-in locked after repeated failures (`Retry-After`)")))]
pub async fn sign_in(
    device: TrustedDevice,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Json(body): Json<SignInBody>,
) -> Result<(StatusCode, Json<StaffSessionOut>), ApiError> {
    const BAD: ApiError = ApiError::Unauthorized {
        code: "invalid_credentials",
        detail: "the staff id, the code or the device does not match",
    };
    let id = StaffId::parse(&body.staff_id).map_err(|_| BAD)?;
    if id.as_str() != device.staff_id {
        return Err(BAD);
    }
    let now = state.clock.now_ms();
    not_locked(&device.cell, &id, now).await?;
    if !state.staff.totp_with_passkey && !device.cell.staff_passkeys(&id).await?.is_empty() {
        return Err(ApiError::Forbidden {
            code: "passkey_required",
            detail: "this staff member has a passkey and the operator allows no TOTP sign-in then: sign in with the passkey (POST /v1/staff/sessions/passkey-challenges)",
        });
    }
    let Some(token) = device
        .cell
        .staff_sign_in(&id, &body.code, &device.serial, now)
        .await?
    else {
        device
            .cell
            .record_staff_sign_in_failure(&id, "totp", &device.serial, now)
            .await?;
        return Err(BAD);
    };
    let member = device.cell.get_staff(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(StaffSessionOut {
            token: token.expose().to_owned(),
            staff_id: id.to_string(),
            role: member.role.as_str().to_owned(),
            expires_at: now + interlock_storage::STAFF_SESSION_MS,
        }),
    ))
}

/// `429` (with `Retry-After`) while the member's sign-in is locked after repeated failures.
pub(crate) async fn not_locked(cell: &Cell, id: &StaffId, now_ms: i64) -> Result<(), ApiError> {
    match cell.staff_sign_in_locked(id, now_ms).await? {
        Some(until) => Err(ApiError::RateLimited {
            retry_after_s: u64::try_from((until - now_ms + 999) / 1000)
                .unwrap_or(1)
                .max(1),
        }),
        None => Ok(()),
    }
}

/// Sign out: end this staff session.
#[utoipa::path(delete, path = "/v1/staff/sessions/current", tag = "staff",
    responses((status = 204)), security(("staff_session" = [])))]
pub async fn sign_out(
    auth: StaffAuth,
    parts: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = parts
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    auth.cell.end_staff_session(token.trim()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in staff member.
#[utoipa::path(get, path = "/v1/staff/me", tag = "staff",
    responses((status = 200, body = StaffMeOut)), security(("staff_session" = [])))]
pub async fn me(auth: StaffAuth) -> Json<StaffMeOut> {
    Json(StaffMeOut {
        staff_id: auth.principal.staff_id.to_string(),
        role: auth.principal.role.as_str().to_owned(),
        device_serial: auth.principal.device_serial.clone(),
    })
}

async fn create(
    auth: &StaffAuth,
    state: &AppState,
    body: AccessRequestBody,
    kind: GrantKind,
) -> Result<(StatusCode, Json<NewGrantOut>), ApiError> {
    let ws = parse_id(&body.workspace_id, WorkspaceId::parse)?;
    // Staff are principals of their region: another region's workspace does not exist here.
    if ws.region() != auth.cell.region() {
        return Err(ApiError::NotFound);
    }
    let ask = AccessAsk::check(
        &body.permissions,
        &body.reason,
        &body.ticket,
        body.duration_s,
        state.staff.max_grant_s,
    )?;
    let now = state.clock.now_ms();
    let (grant, token) = auth
        .cell
        .create_staff_grant(&auth.principal, &ws, &ask, kind, now)
        .await
        .map_err(grant_error)?;
    Ok((
        StatusCode::CREATED,
        Json(NewGrantOut {
            grant: grant_out(&grant, now),
            token: token.expose().to_owned(),
        }),
    ))
}

/// Ask for access to a workspace: permissions, a reason and a ticket are required; the
/// duration is capped. The grant starts when an approver (another staff member) — and, where
/// the workspace requires it, a workspace admin — has approved. The token in the answer works
/// only while the grant is active, and only from this staff member's trusted device.
#[utoipa::path(post, path = "/v1/staff/access-requests", tag = "staff",
    request_body = AccessRequestBody,
    responses((status = 201, body = NewGrantOut),
        (status = 404, description = "no such workspace in this region"),
        (status = 422, description = "`reason_required`, `ticket_required`, `out_of_range`, `unknown_permission`")),
    security(("staff_session" = [])))]
pub async fn request_access(
    auth: StaffAuth,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Json(body): Json<AccessRequestBody>,
) -> Result<(StatusCode, Json<NewGrantOut>), ApiError> {
    create(&auth, &state, body, GrantKind::Request).await
}

/// Emergency access without prior approval: the grant starts at once, raises a high-severity
/// activity entry and a `staff_access.break_glass` webhook, and ends unless a second staff
/// member with the approver role confirms it within an hour.
#[utoipa::path(post, path = "/v1/staff/break-glass", tag = "staff",
    request_body = AccessRequestBody,
    responses((status = 201, body = NewGrantOut),
        (status = 422, description = "`reason_required`, `ticket_required`, `out_of_range`")),
    security(("staff_session" = [])))]
pub async fn break_glass(
    auth: StaffAuth,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Json(body): Json<AccessRequestBody>,
) -> Result<(StatusCode, Json<NewGrantOut>), ApiError> {
    create(&auth, &state, body, GrantKind::BreakGlass).await
}

/// Grants in the region: your own; approvers see everyone's.
#[utoipa::path(get, path = "/v1/staff/access-requests", tag = "staff",
    responses((status = 200, body = GrantList)), security(("staff_session" = [])))]
pub async fn list(
    auth: StaffAuth,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Result<Json<GrantList>, ApiError> {
    let who = (!auth.principal.role.can_approve()).then_some(&auth.principal.staff_id);
    let now = state.clock.now_ms();
    let grants = auth.cell.list_staff_grants(who).await?;
    Ok(Json(GrantList {
        object: "list",
        data: grants.iter().map(|g| grant_out(g, now)).collect(),
    }))
}

/// Find a grant the staff member may see: their own, or any for an approver.
async fn visible(auth: &StaffAuth, raw: &str) -> Result<StaffGrant, ApiError> {
    let g = auth.cell.find_staff_grant(&grant_id(raw)?).await?;
    if g.staff_id != auth.principal.staff_id && !auth.principal.role.can_approve() {
        return Err(ApiError::NotFound);
    }
    Ok(g)
}

/// One grant.
#[utoipa::path(get, path = "/v1/staff/access-requests/{id}", tag = "staff",
    params(("id" = String, Path)),
    responses((status = 200, body = GrantOut)), security(("staff_session" = [])))]
pub async fn get_one(
    auth: StaffAuth,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<GrantOut>, ApiError> {
    let g = visible(&auth, &id).await?;
    Ok(Json(grant_out(&g, state.clock.now_ms())))
}

/// What a staff member does to a grant.
#[derive(Debug, Clone, Copy)]
enum StaffAction {
    Approve,
    Confirm,
    Revoke,
}

async fn act_on(
    auth: &StaffAuth,
    state: &AppState,
    raw: &str,
    action: StaffAction,
) -> Result<Json<GrantOut>, ApiError> {
    let g = visible(auth, raw).await?;
    let now = state.clock.now_ms();
    let (ws, id, me) = (&g.workspace_id, &g.id, &auth.principal);
    let done = match action {
        StaffAction::Approve => auth.cell.approve_staff_grant(ws, id, me, now).await,
        StaffAction::Confirm => auth.cell.confirm_break_glass(ws, id, me, now).await,
        StaffAction::Revoke => {
            let actor = interlock_domain::Actor::new(
                interlock_domain::ActorType::Staff,
                Some(me.staff_id.to_string()),
                None,
                None,
            );
            auth.cell.revoke_staff_grant(ws, id, &actor, now).await
        }
    }
    .map_err(grant_error)?;
    Ok(Json(grant_out(&done, now)))
}

/// Approve a pending request (approver role; never your own: `403 self_approval`).
#[utoipa::path(post, path = "/v1/staff/access-requests/{id}/approve", tag = "staff",
    params(("id" = String, Path)),
    responses((status = 200, body = GrantOut),
        (status = 403, description = "`approver_required`, `self_approval`"),
        (status = 409, description = "`grant_not_pending`")),
    security(("staff_session" = [])))]
pub async fn approve(
    auth: StaffAuth,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<GrantOut>, ApiError> {
    act_on(&auth, &state, &id, StaffAction::Approve).await
}

/// Confirm another staff member's break-glass grant within its first hour (approver role).
#[utoipa::path(post, path = "/v1/staff/access-requests/{id}/confirm", tag = "staff",
    params(("id" = String, Path)),
    responses((status = 200, body = GrantOut),
        (status = 403, description = "`approver_required`, `self_approval`"),
        (status = 409, description = "`grant_not_confirmable`")),
    security(("staff_session" = [])))]
pub async fn confirm(
    auth: StaffAuth,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<GrantOut>, ApiError> {
    act_on(&auth, &state, &id, StaffAction::Confirm).await
}

/// Revoke a grant: your own, or (approvers) anyone's. It stops working at once.
#[utoipa::path(post, path = "/v1/staff/access-requests/{id}/revoke", tag = "staff",
    params(("id" = String, Path)),
    responses((status = 200, body = GrantOut), (status = 409, description = "`grant_ended`")),
    security(("staff_session" = [])))]
pub async fn revoke(
    auth: StaffAuth,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<GrantOut>, ApiError> {
    act_on(&auth, &state, &id, StaffAction::Revoke).await
}

// ------------------------------------------------------------------ workspace side

/// Current and past staff grants to this workspace, newest first.
#[utoipa::path(get, path = "/v1/workspace/staff-access", tag = "staff",
    extensions(("x-permission" = json!("staff_access.manage"))),
    responses((status = 200, body = GrantList)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn workspace_list(
    auth: Allowed<perm::StaffAccessManage>,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Result<Json<GrantList>, ApiError> {
    let now = state.clock.now_ms();
    let grants = auth
        .cell
        .list_workspace_staff_grants(&auth.workspace)
        .await?;
    Ok(Json(GrantList {
        object: "list",
        data: grants.iter().map(|g| grant_out(g, now)).collect(),
    }))
}

/// A workspace admin's approval of a staff request (when the workspace requires it).
#[utoipa::path(post, path = "/v1/workspace/staff-access/{id}/approve", tag = "staff",
    extensions(("x-permission" = json!("staff_access.manage"))),
    params(("id" = String, Path)),
    responses((status = 200, body = GrantOut),
        (status = 409, description = "`grant_not_pending`, `workspace_approval_not_required`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn workspace_approve(
    auth: Allowed<perm::StaffAccessManage>,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<GrantOut>, ApiError> {
    if auth.staff.is_some() {
        // A staff member never approves staff access on the customer's behalf.
        return Err(ApiError::Forbidden {
            code: "staff_cannot_approve",
            detail: "staff grants cannot approve staff access",
        });
    }
    let now = state.clock.now_ms();
    let g = auth
        .cell
        .workspace_approve_staff_grant(&auth.workspace, &grant_id(&id)?, &auth.actor, now)
        .await
        .map_err(grant_error)?;
    Ok(Json(grant_out(&g, now)))
}

/// Revoke a staff grant to this workspace; it stops working at once.
#[utoipa::path(post, path = "/v1/workspace/staff-access/{id}/revoke", tag = "staff",
    extensions(("x-permission" = json!("staff_access.manage"))),
    params(("id" = String, Path)),
    responses((status = 200, body = GrantOut), (status = 409, description = "`grant_ended`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn workspace_revoke(
    auth: Allowed<perm::StaffAccessManage>,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<GrantOut>, ApiError> {
    let now = state.clock.now_ms();
    let g = auth
        .cell
        .revoke_staff_grant(&auth.workspace, &grant_id(&id)?, &auth.actor, now)
        .await
        .map_err(grant_error)?;
    Ok(Json(grant_out(&g, now)))
}

/// Whether a workspace admin must also approve each staff grant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffAccessSettingsBody {
    /// `required` or `not_required` (the default).
    pub staff_access_approval: String,
}

/// The workspace's staff-access setting.
#[utoipa::path(get, path = "/v1/workspace/staff-access-settings", tag = "staff",
    extensions(("x-permission" = json!("staff_access.manage"))),
    responses((status = 200, body = StaffAccessSettingsBody)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn get_settings(
    auth: Allowed<perm::StaffAccessManage>,
) -> Result<Json<StaffAccessSettingsBody>, ApiError> {
    let v = auth.cell.staff_access_approval(&auth.workspace).await?;
    Ok(Json(StaffAccessSettingsBody {
        staff_access_approval: v.as_str().to_owned(),
    }))
}

/// Change the workspace's staff-access setting.
#[utoipa::path(put, path = "/v1/workspace/staff-access-settings", tag = "staff",
    extensions(("x-permission" = json!("staff_access.manage"))),
    request_body = StaffAccessSettingsBody,
    responses((status = 200, body = StaffAccessSettingsBody),
        (status = 422, description = "`invalid_value`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn put_settings(
    auth: Allowed<perm::StaffAccessManage>,
    Json(body): Json<StaffAccessSettingsBody>,
) -> Result<Json<StaffAccessSettingsBody>, ApiError> {
    if auth.staff.is_some() {
        return Err(ApiError::Forbidden {
            code: "staff_cannot_approve",
            detail: "staff grants cannot change how staff access is approved",
        });
    }
    let v = StaffAccessApproval::parse(&body.staff_access_approval)?;
    let act = auth.activity(
        ActivityType::StaffAccessSettingsUpdated,
        Target::kind("workspace_staff_access"),
    );
    let v = auth
        .cell
        .set_staff_access_approval(&auth.workspace, v, &act)
        .await?;
    Ok(Json(StaffAccessSettingsBody {
        staff_access_approval: v.as_str().to_owned(),
    }))
}

/// The staff routes and the workspace side of staff access.
/// `after` (a sequence number) and `limit` (1–500, default 100).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

/// A page of the region's staff audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffAuditPage {
    pub object: &'static str,
    /// Oldest first: `seq`, `id`, `type`, `created_at_ms`, `staff_id`, `metadata`.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<interlock_storage::StaffAuditEntry>,
    /// Pass as `after` for the next page; `null` at the end.
    pub next_after: Option<i64>,
}

/// The region's staff audit log (approver role): members added and disabled, sign-ins and
/// failed sign-ins, passkeys, devices — one hash chain, checked by `interlock staff audit-log
/// --verify`.
#[utoipa::path(get, path = "/v1/staff/audit-log", tag = "staff",
    params(AuditQuery),
    responses((status = 200, body = StaffAuditPage),
        (status = 403, description = "`approver_required`"),
        (status = 422, description = "`out_of_range`")),
    security(("staff_session" = [])))]
pub async fn audit_log(
    auth: StaffAuth,
    crate::extract::Query(q): crate::extract::Query<AuditQuery>,
) -> Result<Json<StaffAuditPage>, ApiError> {
    if !auth.principal.role.can_approve() {
        return Err(ApiError::Forbidden {
            code: "approver_required",
            detail: "only staff members with the approver role read the staff audit log",
        });
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) || q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::Invalid {
            code: "out_of_range",
            field: Some(
                if (1..=500).contains(&limit) {
                    "after"
                } else {
                    "limit"
                }
                .into(),
            ),
            detail: "limit is 1–500 and after a sequence number (0 or more)".into(),
        });
    }
    let data = auth
        .cell
        .staff_audit_entries(q.after.unwrap_or(0), limit + 1)
        .await?;
    let more = data.len() as i64 > limit;
    let data: Vec<_> = data.into_iter().take(limit as usize).collect();
    Ok(Json(StaffAuditPage {
        object: "list",
        next_after: more.then(|| data.last().map(|e| e.seq)).flatten(),
        data,
    }))
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/staff/sessions", post(sign_in))
        .route(
            "/v1/staff/sessions/current",
            axum::routing::delete(sign_out),
        )
        .route("/v1/staff/me", get(me))
        .route("/v1/staff/audit-log", get(audit_log))
        .route("/v1/staff/access-requests", post(request_access).get(list))
        .route("/v1/staff/access-requests/{id}", get(get_one))
        .route("/v1/staff/access-requests/{id}/approve", post(approve))
        .route("/v1/staff/access-requests/{id}/confirm", post(confirm))
        .route("/v1/staff/access-requests/{id}/revoke", post(revoke))
        .route("/v1/staff/break-glass", post(break_glass))
        .route("/v1/workspace/staff-access", get(workspace_list))
        .route(
            "/v1/workspace/staff-access/{id}/approve",
            post(workspace_approve),
        )
        .route(
            "/v1/workspace/staff-access/{id}/revoke",
            post(workspace_revoke),
        )
        .route(
            "/v1/workspace/staff-access-settings",
            get(get_settings).put(put_settings),
        )
}
