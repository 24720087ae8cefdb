//! Operator endpoints: manage workspaces. The operator token reaches nothing else.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use interlock_domain::{PersonName, Region};

use crate::AppState;
use crate::dto::{
    CreateWorkspaceRequest, CreatedWorkspace, ListOf, PageParams, WorkspaceOut, cursor,
};
use crate::error::ApiError;
use crate::extract::{Json, OperatorAuth, Query};

/// Create a workspace in a region and return its first API token (shown once).
#[utoipa::path(post, path = "/v1/operator/workspaces", tag = "operator",
    request_body = CreateWorkspaceRequest,
    responses((status = 201, body = CreatedWorkspace), (status = 421, description = "region not served here")),
    security(("operator_token" = [])))]
pub async fn create_workspace(
    _op: OperatorAuth,
    State(state): State<Arc<AppState>>,
    Json(req): Json<CreateWorkspaceRequest>,
) -> Result<(StatusCode, Json<CreatedWorkspace>), ApiError> {
    let region: Region = req.region.parse()?;
    // Workspace names follow the same rules as a person's name: 1-255 characters, no controls.
    let name = PersonName::parse(&req.name).map_err(|e| ApiError::Invalid {
        code: e.code,
        field: Some("name".into()),
        detail: "name must be 1 to 255 characters without control characters".into(),
    })?;
    let cell = state.cell(region)?;
    let (ws, token) = cell.create_workspace(name.as_str()).await?;
    tracing::info!(workspace = %ws.id, region = %region, "workspace created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedWorkspace {
            id: ws.id.to_string(),
            name: ws.name,
            region: region.to_string(),
            api_token: token.expose().to_owned(),
        }),
    ))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceListParams {
    /// The region to list (one of those this server serves).
    pub region: String,
    pub cursor: Option<String>,
    pub per_page: Option<i64>,
}

/// List a region's workspaces (ids and names only; never tokens or data).
#[utoipa::path(get, path = "/v1/operator/workspaces", tag = "operator",
    params(WorkspaceListParams),
    responses((status = 200, body = ListOf<WorkspaceOut>)),
    security(("operator_token" = [])))]
pub async fn list_workspaces(
    _op: OperatorAuth,
    State(state): State<Arc<AppState>>,
    Query(q): Query<WorkspaceListParams>,
) -> Result<Json<ListOf<WorkspaceOut>>, ApiError> {
    let region: Region = q.region.parse()?;
    let cell = state.cell(region)?;
    let page = PageParams {
        cursor: q.cursor,
        per_page: q.per_page,
    };
    let after = page.after(|s| interlock_domain::WorkspaceId::parse(s).map(|w| w.to_string()))?;
    let got = cell
        .list_workspaces(after.as_deref(), page.limit()?)
        .await?;
    Ok(Json(ListOf::new(
        got.items.into_iter().map(WorkspaceOut::from).collect(),
        cursor(got.next_after),
    )))
}
