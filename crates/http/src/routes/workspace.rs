//! Deleting a workspace: by its owner (signed in, re-authenticating in the request) or by the
//! operator. The workspace key is destroyed at once; rows and files are purged in the
//! background; a signed receipt is returned and kept.

use std::sync::Arc;

use axum::extract::State;
use interlock_crypto::SignedDocument;
use interlock_domain::{BuiltinRole, TeammateRole, WorkspaceId};
use interlock_storage::Cell;
use interlock_storage::cell::{WorkspaceDeletion, WorkspaceDeletionReason};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Json, OperatorAuth, Path, TeammateAuth, parse_id};
use crate::routes::auth::{BAD_CREDENTIALS, check_second_factor, verify_off_runtime};

/// The owner re-authenticates to delete the workspace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteWorkspaceRequest {
    /// The workspace's id, typed again to confirm.
    pub confirm: String,
    /// The owner's password.
    pub password: String,
    /// A current TOTP or recovery code, required when the owner has two-factor authentication.
    pub code: Option<String>,
}

/// A deleted workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceDeleted {
    pub id: String,
    pub deleted: bool,
    pub deleted_at: i64,
    pub receipt_id: String,
    /// The signed deletion receipt (verify with `interlock receipt verify`).
    #[schema(value_type = Object)]
    pub receipt: SignedDocument,
}

fn out(ws: &WorkspaceId, d: WorkspaceDeletion) -> WorkspaceDeleted {
    WorkspaceDeleted {
        id: ws.to_string(),
        deleted: true,
        deleted_at: d.deleted_at_ms,
        receipt_id: d.receipt_id.to_string(),
        receipt: d.receipt,
    }
}

/// Purge a deleted workspace's rows and files now, in the background (the periodic sweep
/// finishes it if this process stops first).
pub(crate) fn purge_soon(cell: Arc<Cell>) {
    tokio::spawn(async move {
        if let Err(e) = cell.purge_deleted_workspaces(1000).await {
            tracing::warn!(error = %e, "workspace purge failed; the next sweep retries");
        }
    });
}

/// Delete this workspace. Only an owner, signed in, confirming the workspace id and
/// re-entering their password (and a second-factor code if they have one). The workspace key
/// is destroyed at once — every later request is refused — and everything is purged in the
/// background. Answers with the signed receipt.
#[utoipa::path(delete, path = "/v1/workspace", tag = "privacy",
    request_body = DeleteWorkspaceRequest,
    responses((status = 200, body = WorkspaceDeleted),
        (status = 401, description = "`invalid_credentials`"),
        (status = 403, description = "`owner_required`"),
        (status = 422, description = "`confirmation_mismatch`")),
    security(("teammate_session" = [])))]
pub async fn delete_own(
    t: TeammateAuth,
    Json(req): Json<DeleteWorkspaceRequest>,
) -> Result<Json<WorkspaceDeleted>, ApiError> {
    let (ws, me, cell) = (&t.auth.workspace, &t.session.teammate_id, &t.auth.cell);
    let teammate = cell.get_teammate(ws, me).await?;
    if teammate.role != TeammateRole::Builtin(BuiltinRole::Owner) {
        return Err(ApiError::Forbidden {
            code: "owner_required",
            detail: "only an owner can delete the workspace",
        });
    }
    if req.confirm != ws.as_str() {
        return Err(ApiError::Invalid {
            code: "confirmation_mismatch",
            field: Some("confirm".into()),
            detail: "confirm must be this workspace's id".into(),
        });
    }
    let hash = cell.password_hash(ws, me).await?;
    if !verify_off_runtime(req.password.clone(), hash).await? {
        return Err(BAD_CREDENTIALS);
    }
    if let Some((secret, true)) = cell.totp_secret(ws, me).await? {
        let code = req.code.as_deref().unwrap_or_default();
        if !check_second_factor(cell, ws, me, Some(&secret), code, &t.auth.actor).await? {
            return Err(BAD_CREDENTIALS);
        }
    }
    let d = cell
        .delete_workspace(ws, WorkspaceDeletionReason::Owner, &t.auth.actor)
        .await?;
    tracing::info!(workspace = %ws, "workspace deleted by its owner");
    purge_soon(cell.clone());
    Ok(Json(out(ws, d)))
}

/// Delete a workspace (operator). Its key is destroyed at once — every later request with its
/// credentials is refused — and everything is purged in the background. Answers with the
/// signed receipt.
#[utoipa::path(delete, path = "/v1/operator/workspaces/{id}", tag = "operator",
    params(("id" = String, Path, description = "workspace id")),
    responses((status = 200, body = WorkspaceDeleted), (status = 404, description = "no such workspace"),
        (status = 410, description = "`workspace_deleted`: deleted already")),
    security(("operator_token" = [])))]
pub async fn delete_by_operator(
    _op: OperatorAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<WorkspaceDeleted>, ApiError> {
    let ws = parse_id(&id, WorkspaceId::parse)?;
    let cell = state.cell(ws.region())?;
    let actor = interlock_domain::Actor::new(
        interlock_domain::ActorType::System,
        Some("operator".to_owned()),
        None,
        None,
    );
    match cell
        .delete_workspace(&ws, WorkspaceDeletionReason::Operator, &actor)
        .await
    {
        Ok(d) => {
            tracing::info!(workspace = %ws, "workspace deleted by the operator");
            purge_soon(cell.clone());
            Ok(Json(out(&ws, d)))
        }
        Err(interlock_storage::StoreError::NotFound) if cell.workspace_deleted(&ws).await? => {
            Err(ApiError::Gone {
                code: "workspace_deleted",
                detail: "this workspace was deleted",
            })
        }
        Err(e) => Err(e.into()),
    }
}
