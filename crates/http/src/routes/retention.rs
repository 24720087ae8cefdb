//! The workspace's retention settings: conversations deleted N days after their last message,
//! and a visitor expiry shorter than the nine months Interlock enforces for everyone.

use interlock_domain::{ActivityType, RetentionSettings, Target};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::authz::{Allowed, perm};
use crate::error::ApiError;
use crate::extract::Json;

/// Retention settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// Delete conversations this many days (1–3650) after their last message; null keeps them.
    pub conversation_days: Option<u32>,
    /// Delete visitors this many days (1–274) after they were last seen.
    pub visitor_days: u32,
}

fn body(s: RetentionSettings) -> RetentionBody {
    RetentionBody {
        conversation_days: s.conversation_days,
        visitor_days: s.visitor_days,
    }
}

/// The workspace's retention settings.
#[utoipa::path(get, path = "/v1/workspace/retention", tag = "privacy",
    extensions(("x-permission" = json!("security.manage"))),
    responses((status = 200, body = RetentionBody)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn get(auth: Allowed<perm::SecurityManage>) -> Result<Json<RetentionBody>, ApiError> {
    Ok(Json(body(
        auth.cell.retention_settings(&auth.workspace).await?,
    )))
}

/// Replace the workspace's retention settings. A visitor expiry longer than 274 days is
/// refused (`422 visitor_expiry_too_long`), as are values out of range (`out_of_range`).
#[utoipa::path(put, path = "/v1/workspace/retention", tag = "privacy",
    extensions(("x-permission" = json!("security.manage"))),
    request_body = RetentionBody,
    responses((status = 200, body = RetentionBody),
        (status = 422, description = "`out_of_range`, `visitor_expiry_too_long`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn put(
    auth: Allowed<perm::SecurityManage>,
    Json(req): Json<RetentionBody>,
) -> Result<Json<RetentionBody>, ApiError> {
    let settings = RetentionSettings {
        conversation_days: req.conversation_days,
        visitor_days: req.visitor_days,
    }
    .check()?;
    let act = auth.activity(
        ActivityType::RetentionSettingsUpdated,
        Target::kind("workspace_retention"),
    );
    auth.cell
        .set_retention_settings(&auth.workspace, settings, &act)
        .await?;
    Ok(Json(body(settings)))
}
