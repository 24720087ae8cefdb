//! Access: the permission catalogue, the built-in roles and scoped API tokens.

use axum::http::StatusCode;
use interlock_domain::{
    ActivityType, ApiTokenId, BuiltinRole, Permission, PermissionSet, RoleId, SecretName, Target,
};

use crate::authz::{Allowed, perm};
use crate::dto::{
    CreateTokenRequest, CreatedToken, Deleted, ListOf, PermissionOut, RoleOut, RoleRequest,
    TokenOut,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, WorkspaceAuth, parse_id};

/// The catalogue of permissions. Every endpoint's `x-permission` names one of these.
#[utoipa::path(get, path = "/v1/permissions", tag = "access",
    responses((status = 200, body = ListOf<PermissionOut>)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn permissions(_auth: WorkspaceAuth) -> Json<ListOf<PermissionOut>> {
    Json(ListOf::new(
        Permission::ALL
            .iter()
            .map(|p| PermissionOut {
                name: p.as_str(),
                description: p.description(),
            })
            .collect(),
        None,
    ))
}

/// The built-in roles and the workspace's custom roles, with their permissions.
#[utoipa::path(get, path = "/v1/roles", tag = "access",
    responses((status = 200, body = ListOf<RoleOut>)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn roles(auth: WorkspaceAuth) -> Result<Json<ListOf<RoleOut>>, ApiError> {
    let mut out: Vec<RoleOut> = BuiltinRole::ALL
        .iter()
        .map(|r| RoleOut {
            id: r.as_str().to_owned(),
            name: r.as_str().to_owned(),
            description: Some(r.description().to_owned()),
            permissions: r
                .permissions()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            builtin: true,
        })
        .collect();
    let custom = auth.cell.list_roles(&auth.workspace).await?;
    out.extend(custom.into_iter().map(RoleOut::from));
    Ok(Json(ListOf::new(out, None)))
}

fn role_input(
    auth: &WorkspaceAuth,
    req: &RoleRequest,
) -> Result<(String, PermissionSet), ApiError> {
    let name = SecretName::parse(&req.name)?;
    let permissions = PermissionSet::parse_list(&req.permissions, false)?;
    if !permissions.is_subset_of(auth.permissions) {
        return Err(ApiError::Forbidden {
            code: "permission_escalation",
            detail: "a role cannot hold a permission its creator lacks",
        });
    }
    Ok((name.into_string(), permissions))
}

/// Create a custom role. It may hold only permissions the caller holds.
#[utoipa::path(post, path = "/v1/roles", tag = "access",
    extensions(("x-permission" = json!("roles.manage"))),
    request_body = RoleRequest,
    responses((status = 201, body = RoleOut)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn create_role(
    auth: Allowed<perm::RolesManage>,
    Json(req): Json<RoleRequest>,
) -> Result<(StatusCode, Json<RoleOut>), ApiError> {
    let (name, permissions) = role_input(&auth, &req)?;
    let act = auth.activity(ActivityType::RoleCreated, Target::kind("role"));
    let role = auth
        .cell
        .create_role(&auth.workspace, &name, permissions, &act)
        .await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

/// Replace a custom role's name and permissions; teammates holding it are affected at once.
#[utoipa::path(put, path = "/v1/roles/{id}", tag = "access",
    extensions(("x-permission" = json!("roles.manage"))),
    params(("id" = String, Path, description = "custom role id")),
    request_body = RoleRequest,
    responses((status = 200, body = RoleOut), (status = 404, description = "no such custom role")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn update_role(
    auth: Allowed<perm::RolesManage>,
    Path(id): Path<String>,
    Json(req): Json<RoleRequest>,
) -> Result<Json<RoleOut>, ApiError> {
    let id = parse_id(&id, RoleId::parse)?;
    let (name, permissions) = role_input(&auth, &req)?;
    let mut role = auth.cell.get_role(&auth.workspace, &id).await?;
    // Changing a role that holds more than the caller would be a way around escalation.
    if !role.permissions.is_subset_of(auth.permissions) {
        return Err(ApiError::Forbidden {
            code: "permission_escalation",
            detail: "you cannot change a role that holds permissions you lack",
        });
    }
    role.name = name;
    role.permissions = permissions;
    let act = auth.activity(ActivityType::RoleUpdated, Target::new("role", id.as_str()));
    auth.cell.update_role(&auth.workspace, &role, &act).await?;
    Ok(Json(role.into()))
}

/// Delete a custom role that no teammate holds (409 `role_in_use` otherwise).
#[utoipa::path(delete, path = "/v1/roles/{id}", tag = "access",
    extensions(("x-permission" = json!("roles.manage"))),
    params(("id" = String, Path, description = "custom role id")),
    responses((status = 200, body = Deleted), (status = 409, description = "`role_in_use`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn delete_role(
    auth: Allowed<perm::RolesManage>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_id(&id, RoleId::parse)?;
    let act = auth.activity(ActivityType::RoleDeleted, Target::new("role", id.as_str()));
    auth.cell.delete_role(&auth.workspace, &id, &act).await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}

/// Create a scoped API token. It may hold only permissions the caller holds.
#[utoipa::path(post, path = "/v1/api-tokens", tag = "access",
    extensions(("x-permission" = json!("api_tokens.manage"))),
    request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken),
        (status = 403, description = "`permission_escalation`: a permission the caller lacks")),
    security(("workspace_token" = [])))]
pub async fn create_token(
    auth: Allowed<perm::ApiTokensManage>,
    Json(req): Json<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let name = SecretName::parse(&req.name)?;
    let wanted = PermissionSet::parse_list(&req.permissions, false)?;
    if !wanted.is_subset_of(auth.permissions) {
        return Err(ApiError::Forbidden {
            code: "permission_escalation",
            detail: "a token cannot hold a permission its creator lacks",
        });
    }
    let now_s = interlock_storage::now_ms().div_euclid(1000);
    if let Some(t) = req.expires_at
        && t <= now_s
    {
        return Err(ApiError::Invalid {
            code: "expires_in_past",
            field: Some("expires_at".into()),
            detail: "expires_at must be in the future (Unix seconds)".into(),
        });
    }
    let expires_ms = req.expires_at.map(|t| t.saturating_mul(1000));
    let (info, token) = auth
        .cell
        .create_api_token(
            &auth.workspace,
            name.as_str(),
            wanted,
            expires_ms,
            auth.teammate_id(),
            &auth.activity(ActivityType::ApiTokenCreated, Target::kind("api_token")),
        )
        .await?;
    let out = TokenOut::from(info);
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: out.id,
            name: out.name,
            permissions: out.permissions,
            expires_at: out.expires_at,
            created_at: out.created_at,
            token: token.expose().to_owned(),
        }),
    ))
}

/// The workspace's API tokens (never the tokens themselves).
#[utoipa::path(get, path = "/v1/api-tokens", tag = "access",
    extensions(("x-permission" = json!("api_tokens.manage"))),
    responses((status = 200, body = ListOf<TokenOut>)),
    security(("workspace_token" = [])))]
pub async fn list_tokens(
    auth: Allowed<perm::ApiTokensManage>,
) -> Result<Json<ListOf<TokenOut>>, ApiError> {
    let all = auth.cell.list_api_tokens(&auth.workspace).await?;
    Ok(Json(ListOf::new(
        all.into_iter().map(TokenOut::from).collect(),
        None,
    )))
}

/// Revoke an API token: it stops working at once.
#[utoipa::path(delete, path = "/v1/api-tokens/{id}", tag = "access",
    extensions(("x-permission" = json!("api_tokens.manage"))),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = Deleted), (status = 404, description = "no such token")),
    security(("workspace_token" = [])))]
pub async fn revoke_token(
    auth: Allowed<perm::ApiTokensManage>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_id(&id, ApiTokenId::parse)?;
    let act = auth.activity(
        ActivityType::ApiTokenRevoked,
        Target::new("api_token", id.as_str()),
    );
    auth.cell
        .revoke_api_token(&auth.workspace, &id, &act)
        .await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}
