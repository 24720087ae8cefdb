//! Teammates (invite, list, change role, remove) and the workspace's security settings.

use axum::http::StatusCode;
use interlock_domain::{
    ActivityType, DomainError, Email, IpAllowlist, PersonName, SecuritySettings, Target,
    TeammateId, TeammateRole,
};

use crate::authz::{Allowed, perm};
use crate::dto::{
    CreateTeammateRequest, CreatedTeammate, Deleted, ListOf, SecuritySettingsBody, TeammateOut,
    UpdateTeammateRequest,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, WorkspaceAuth, parse_id};

const ESCALATION: ApiError = ApiError::Forbidden {
    code: "permission_escalation",
    detail: "you cannot grant a role with permissions you do not hold",
};

/// Refuse granting a role whose permissions exceed the caller's.
async fn check_grant(auth: &WorkspaceAuth, role: &TeammateRole) -> Result<(), ApiError> {
    let granted = auth.cell.role_permissions(&auth.workspace, role).await?;
    if !granted.is_subset_of(auth.permissions) {
        return Err(ESCALATION);
    }
    Ok(())
}

/// Invite a teammate: returns a one-time invitation token (valid 7 days) to set a password.
#[utoipa::path(post, path = "/v1/teammates", tag = "teammates",
    extensions(("x-permission" = json!("teammates.manage"))),
    request_body = CreateTeammateRequest,
    responses((status = 201, body = CreatedTeammate),
        (status = 409, description = "`teammate_email_taken`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn create(
    auth: Allowed<perm::TeammatesManage>,
    Json(req): Json<CreateTeammateRequest>,
) -> Result<(StatusCode, Json<CreatedTeammate>), ApiError> {
    let email = Email::parse(&req.email)?;
    let name = PersonName::parse(&req.name)?;
    let role = TeammateRole::parse(&req.role)?;
    check_grant(&auth, &role).await?;
    let act = auth
        .activity(ActivityType::TeammateInvited, Target::kind("teammate"))
        .with("role", role.as_string());
    let (t, invitation, expires_at) = auth
        .cell
        .create_teammate(&auth.workspace, &email, &name, &role, &act)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTeammate {
            teammate: t.into(),
            invitation_token: invitation.expose().to_owned(),
            invitation_expires_at: expires_at.div_euclid(1000),
        }),
    ))
}

/// The workspace's teammates.
#[utoipa::path(get, path = "/v1/teammates", tag = "teammates",
    extensions(("x-permission" = json!("teammates.manage"))),
    responses((status = 200, body = ListOf<TeammateOut>)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn list(
    auth: Allowed<perm::TeammatesManage>,
) -> Result<Json<ListOf<TeammateOut>>, ApiError> {
    let all = auth.cell.list_teammates(&auth.workspace).await?;
    Ok(Json(ListOf::new(
        all.into_iter().map(TeammateOut::from).collect(),
        None,
    )))
}

/// Change a teammate's role. Nobody changes their own; the last owner stays an owner.
#[utoipa::path(patch, path = "/v1/teammates/{id}", tag = "teammates",
    extensions(("x-permission" = json!("teammates.manage"))),
    params(("id" = String, Path, description = "teammate id")),
    request_body = UpdateTeammateRequest,
    responses((status = 200, body = TeammateOut),
        (status = 403, description = "`own_role` or `permission_escalation`"),
        (status = 409, description = "`last_owner`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn update(
    auth: Allowed<perm::TeammatesManage>,
    Path(id): Path<String>,
    Json(req): Json<UpdateTeammateRequest>,
) -> Result<Json<TeammateOut>, ApiError> {
    let id = parse_id(&id, TeammateId::parse)?;
    let role = TeammateRole::parse(&req.role)?;
    check_grant(&auth, &role).await?;
    // Taking a role away is granting in reverse: one cannot demote someone who holds more.
    let current = auth.cell.get_teammate(&auth.workspace, &id).await?;
    check_grant(&auth, &current.role).await?;
    let act = auth.activity(
        ActivityType::TeammateRoleChanged,
        Target::new("teammate", id.as_str()),
    );
    let t = auth
        .cell
        .set_teammate_role(&auth.workspace, &id, &role, auth.teammate_id(), &act)
        .await?;
    Ok(Json(t.into()))
}

/// Remove a teammate: their sessions and the API tokens they created stop working at once.
#[utoipa::path(delete, path = "/v1/teammates/{id}", tag = "teammates",
    extensions(("x-permission" = json!("teammates.manage"))),
    params(("id" = String, Path, description = "teammate id")),
    responses((status = 200, body = Deleted), (status = 409, description = "`last_owner`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn remove(
    auth: Allowed<perm::TeammatesManage>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_id(&id, TeammateId::parse)?;
    let current = auth.cell.get_teammate(&auth.workspace, &id).await?;
    check_grant(&auth, &current.role).await?;
    let act = auth.activity(
        ActivityType::TeammateRemoved,
        Target::new("teammate", id.as_str()),
    );
    auth.cell
        .remove_teammate(&auth.workspace, &id, &act)
        .await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}

fn settings_body(s: SecuritySettings) -> SecuritySettingsBody {
    SecuritySettingsBody {
        require_two_factor: s.require_two_factor,
        session_idle_s: s.session_idle_s,
        session_absolute_s: s.session_absolute_s,
        ip_allowlist: s.ip_allowlist.entries(),
    }
}

fn settings_json(s: SecuritySettings) -> serde_json::Value {
    serde_json::to_value(settings_body(s)).unwrap_or(serde_json::Value::Null)
}

/// The workspace's security settings.
#[utoipa::path(get, path = "/v1/workspace/security", tag = "teammates",
    extensions(("x-permission" = json!("security.manage"))),
    responses((status = 200, body = SecuritySettingsBody)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn get_security(
    auth: Allowed<perm::SecurityManage>,
) -> Result<Json<SecuritySettingsBody>, ApiError> {
    let s = auth.cell.security_settings(&auth.workspace).await?;
    Ok(Json(settings_body(s)))
}

/// Replace the workspace's security settings. An IP allowlist that would shut out the
/// caller's own address is refused (422 `would_lock_out`).
#[utoipa::path(put, path = "/v1/workspace/security", tag = "teammates",
    extensions(("x-permission" = json!("security.manage"))),
    request_body = SecuritySettingsBody,
    responses((status = 200, body = SecuritySettingsBody),
        (status = 422, description = "invalid values, or `would_lock_out`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn put_security(
    auth: Allowed<perm::SecurityManage>,
    Json(req): Json<SecuritySettingsBody>,
) -> Result<Json<SecuritySettingsBody>, ApiError> {
    let settings = SecuritySettings {
        require_two_factor: req.require_two_factor,
        session_idle_s: req.session_idle_s,
        session_absolute_s: req.session_absolute_s,
        ip_allowlist: IpAllowlist::parse(&req.ip_allowlist)?,
    }
    .check()?;
    if !settings.ip_allowlist.allows(auth.ip) {
        return Err(DomainError::new(
            "ip_allowlist",
            "would_lock_out",
            "the allowlist does not include the address this request comes from",
        )
        .into());
    }
    let before = auth.cell.security_settings(&auth.workspace).await?;
    let act = auth
        .activity(
            ActivityType::SecuritySettingsUpdated,
            Target::kind("workspace_security"),
        )
        .with("before", settings_json(before))
        .with("after", settings_json(settings.clone()));
    auth.cell
        .set_security_settings(&auth.workspace, &settings, &act)
        .await?;
    Ok(Json(settings_body(settings)))
}
