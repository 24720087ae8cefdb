//! Access: the permission catalogue, the built-in roles and scoped API tokens.

use axum::http::StatusCode;
use interlock_domain::{ApiTokenId, BuiltinRole, Permission, PermissionSet, SecretName};

use crate::authz::{Allowed, perm};
use crate::dto::{
    CreateTokenRequest, CreatedToken, Deleted, ListOf, PermissionOut, RoleOut, TokenOut,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, WorkspaceAuth, parse_id};

/// The catalogue of permissions. Every endpoint's `x-permission` names one of these.
#[utoipa::path(get, path = "/v1/permissions", tag = "access",
    responses((status = 200, body = ListOf<PermissionOut>)),
    security(("workspace_token" = [])))]
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

/// The built-in roles and their permissions.
#[utoipa::path(get, path = "/v1/roles", tag = "access",
    responses((status = 200, body = ListOf<RoleOut>)),
    security(("workspace_token" = [])))]
pub async fn roles(_auth: WorkspaceAuth) -> Json<ListOf<RoleOut>> {
    Json(ListOf::new(
        BuiltinRole::ALL
            .iter()
            .map(|r| RoleOut {
                name: r.as_str(),
                description: r.description(),
                permissions: r.permissions().iter().map(Permission::as_str).collect(),
                builtin: true,
            })
            .collect(),
        None,
    ))
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
    auth.cell.revoke_api_token(&auth.workspace, &id).await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}
