//! Access reviews of standing access (docs/access-reviews.md), for staff approvers on a trusted
//! device: the region's campaigns, one campaign with its items and report (completion and
//! drift), a reviewer's decision on an item, and starting a campaign now.
//!
//! Every route takes a [`StaffAuth`] (a staff session on the trusted device it was opened
//! from) whose role can approve; anyone else gets `403 approver_required`. Campaigns are the
//! region's: the cell is the one of the device's region.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use interlock_domain::{ReviewCampaignId, ReviewItemId};
use interlock_storage::cell::{
    BeyondBaseline, ReviewChange, ReviewDrift, ReviewHolder, ReviewTotals,
};
use interlock_storage::{
    ReviewCampaign, ReviewItem, ReviewReport, ReviewSchedule, ReviewVerdict, Reviewer, StoreError,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::authz::{Allowed, perm};
use crate::error::ApiError;
use crate::extract::{Json, Path, parse_id};
use crate::routes::staff::StaffAuth;
use crate::staff_settings::StaffSettings;

/// The access-review schedule of `[staff]` (`review_every_days`, `review_window_days`).
pub fn schedule(s: &StaffSettings) -> ReviewSchedule {
    ReviewSchedule::from_days(s.review_every_days, s.review_window_days)
}

// ------------------------------------------------------------------ wire types

/// A campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignOut {
    /// `rv_…`.
    pub id: String,
    pub object: &'static str,
    /// `open`, `overdue` (past its deadline; the next sweep revokes what is undecided) or
    /// `closed`.
    pub status: &'static str,
    pub started_at: i64,
    /// Items undecided at this moment are revoked.
    pub deadline_at: i64,
    pub closed_at: Option<i64>,
}

/// The region's campaigns, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    pub object: &'static str,
    pub data: Vec<CampaignOut>,
}

/// One holder of standing access, against the baseline for their role.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewItemOut {
    /// `ri_…`.
    pub id: String,
    pub object: &'static str,
    pub campaign_id: String,
    /// `staff_role` or `teammate_role`.
    pub kind: &'static str,
    /// The holder's pseudonymous id (`sf_…` or `tm_…`).
    pub holder_id: String,
    /// The workspace, for a teammate's role.
    pub workspace_id: Option<String>,
    /// The role held when the campaign began.
    pub role: String,
    /// What the holder could do when the campaign began.
    pub permissions: Vec<String>,
    /// What the role's baseline allows.
    pub baseline: Vec<String>,
    /// `certified`, `revoked`, `revoked_unreviewed` or `revoke_blocked_last_owner`; `null`
    /// while pending.
    pub decision: Option<&'static str>,
    /// The reviewer's staff id, or `system` (the deadline).
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
}

/// How many items were decided, and how.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsOut {
    pub items: usize,
    pub decided: usize,
    pub certified: usize,
    pub revoked: usize,
    pub revoked_unreviewed: usize,
    pub revoke_blocked_last_owner: usize,
    pub pending: usize,
}

/// A holder named by drift.
#[derive(Debug, Serialize, ToSchema)]
pub struct HolderOut {
    /// `staff_role` or `teammate_role`.
    pub kind: &'static str,
    pub holder_id: String,
    pub workspace_id: Option<String>,
    pub role: String,
}

/// A holder in both campaigns whose role or permissions changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOut {
    pub kind: &'static str,
    pub holder_id: String,
    pub workspace_id: Option<String>,
    pub role_before: String,
    pub role_after: String,
    pub gained: Vec<String>,
    pub lost: Vec<String>,
}

/// An item holding permissions beyond its baseline.
#[derive(Debug, Serialize, ToSchema)]
pub struct BeyondBaselineOut {
    pub item_id: String,
    pub kind: &'static str,
    pub holder_id: String,
    pub workspace_id: Option<String>,
    pub role: String,
    pub extra: Vec<String>,
}

/// Drift from the previous campaign and from the baselines.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftOut {
    /// The campaign compared against (`null` for the first).
    pub previous_campaign_id: Option<String>,
    /// Holders now who were not in the previous campaign.
    pub added: Vec<HolderOut>,
    /// Holders of the previous campaign who are not in this one.
    pub removed: Vec<HolderOut>,
    /// Holders in both whose role or permissions changed.
    pub changed: Vec<ChangeOut>,
    /// Items whose permissions exceed their baseline.
    pub beyond_baseline: Vec<BeyondBaselineOut>,
}

/// A campaign's completion and drift.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportOut {
    pub totals: TotalsOut,
    /// Decided items over all items, 0 to 1 (1 for a campaign with no items).
    pub completion: f64,
    pub drift: DriftOut,
}

/// A campaign with its items and report.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignDetail {
    #[serde(flatten)]
    pub campaign: CampaignOut,
    pub items: Vec<ReviewItemOut>,
    pub report: ReportOut,
}

/// A reviewer's decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `certify` (the access stays) or `revoke` (it goes at once: a staff member is disabled,
    /// a teammate becomes an agent).
    pub decision: String,
}

fn campaign_out(c: &ReviewCampaign, now_ms: i64) -> CampaignOut {
    let status = match c.closed_at {
        Some(_) => "closed",
        None if now_ms >= c.deadline_at => "overdue",
        None => "open",
    };
    CampaignOut {
        id: c.id.to_string(),
        object: "access_review",
        status,
        started_at: c.started_at,
        deadline_at: c.deadline_at,
        closed_at: c.closed_at,
    }
}

fn item_out(i: &ReviewItem) -> ReviewItemOut {
    ReviewItemOut {
        id: i.id.to_string(),
        object: "access_review_item",
        campaign_id: i.campaign_id.to_string(),
        kind: i.kind.as_str(),
        holder_id: i.holder_id.clone(),
        workspace_id: i.workspace_id.as_ref().map(ToString::to_string),
        role: i.role.clone(),
        permissions: i.permissions.clone(),
        baseline: i.baseline.clone(),
        decision: i.decision.map(|d| d.as_str()),
        decided_by: i.decided_by.clone(),
        decided_at: i.decided_at,
    }
}

fn totals_out(t: &ReviewTotals) -> TotalsOut {
    TotalsOut {
        items: t.items,
        decided: t.decided,
        certified: t.certified,
        revoked: t.revoked,
        revoked_unreviewed: t.revoked_unreviewed,
        revoke_blocked_last_owner: t.revoke_blocked_last_owner,
        pending: t.pending,
    }
}

fn holder_out(h: &ReviewHolder) -> HolderOut {
    HolderOut {
        kind: h.kind.as_str(),
        holder_id: h.holder_id.clone(),
        workspace_id: h.workspace_id.clone(),
        role: h.role.clone(),
    }
}

fn change_out(c: &ReviewChange) -> ChangeOut {
    ChangeOut {
        kind: c.kind.as_str(),
        holder_id: c.holder_id.clone(),
        workspace_id: c.workspace_id.clone(),
        role_before: c.role_before.clone(),
        role_after: c.role_after.clone(),
        gained: c.gained.clone(),
        lost: c.lost.clone(),
    }
}

fn beyond_out(b: &BeyondBaseline) -> BeyondBaselineOut {
    BeyondBaselineOut {
        item_id: b.item_id.to_string(),
        kind: b.kind.as_str(),
        holder_id: b.holder_id.clone(),
        workspace_id: b.workspace_id.clone(),
        role: b.role.clone(),
        extra: b.extra.clone(),
    }
}

fn drift_out(d: &ReviewDrift) -> DriftOut {
    DriftOut {
        previous_campaign_id: d.previous_campaign_id.as_ref().map(ToString::to_string),
        added: d.added.iter().map(holder_out).collect(),
        removed: d.removed.iter().map(holder_out).collect(),
        changed: d.changed.iter().map(change_out).collect(),
        beyond_baseline: d.beyond_baseline.iter().map(beyond_out).collect(),
    }
}

fn report_out(r: &ReviewReport) -> ReportOut {
    ReportOut {
        totals: totals_out(&r.totals),
        completion: r.completion,
        drift: drift_out(&r.drift),
    }
}

/// The storage layer's refusals of review actions, as problem+json.
fn review_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict("self_review") => ApiError::Forbidden {
            code: "self_review",
            detail: "nobody reviews their own access: another approver must decide this item",
        },
        StoreError::Conflict("not_an_approver") => APPROVER_REQUIRED,
        StoreError::Conflict("reviewed_by_workspace") => ApiError::Forbidden {
            code: "reviewed_by_workspace",
            detail: "a teammate's role is reviewed by the workspace's owners (/v1/workspace/access-reviews), not by operator staff",
        },
        StoreError::Conflict("item_decided") => ApiError::Conflict {
            code: "item_decided",
            detail: "this item has already been decided",
        },
        StoreError::Conflict("review_closed") => ApiError::Conflict {
            code: "review_closed",
            detail: "the campaign is closed or past its deadline; undecided items are revoked at the deadline",
        },
        StoreError::Conflict("review_open") => ApiError::Conflict {
            code: "review_open",
            detail: "a campaign is open: decide its items or wait for its deadline before starting another",
        },
        other => other.into(),
    }
}

const APPROVER_REQUIRED: ApiError = ApiError::Forbidden {
    code: "approver_required",
    detail: "only staff members with the approver role review access",
};

/// The signed-in staff member, if they may review.
fn approver(auth: &StaffAuth) -> Result<(), ApiError> {
    if auth.principal.role.can_approve() {
        Ok(())
    } else {
        Err(APPROVER_REQUIRED)
    }
}

async fn detail(
    auth: &StaffAuth,
    id: &ReviewCampaignId,
    now_ms: i64,
) -> Result<CampaignDetail, ApiError> {
    let report = auth.cell.access_review_report(Some(id)).await?;
    let items = auth.cell.access_review_items(id).await?;
    Ok(CampaignDetail {
        campaign: campaign_out(&report.campaign, now_ms),
        items: items.iter().map(item_out).collect(),
        report: report_out(&report),
    })
}

// ------------------------------------------------------------------ routes

/// The region's access review campaigns, newest first (approver role).
#[utoipa::path(get, path = "/v1/staff/access-reviews", tag = "staff",
    responses((status = 200, body = CampaignList),
        (status = 401, description = "`device_certificate_required`, `invalid_staff_session`, …"),
        (status = 403, description = "`approver_required`")),
    security(("staff_session" = [])))]
pub async fn list(
    auth: StaffAuth,
    State(state): State<Arc<AppState>>,
) -> Result<Json<CampaignList>, ApiError> {
    approver(&auth)?;
    let now = state.clock.now_ms();
    let campaigns = auth.cell.access_review_campaigns(100).await?;
    Ok(Json(CampaignList {
        object: "list",
        data: campaigns.iter().map(|c| campaign_out(c, now)).collect(),
    }))
}

/// Start a campaign now, with `[staff] review_window_days` to review (approver role).
/// Campaigns also start on their own every `[staff] review_every_days`.
#[utoipa::path(post, path = "/v1/staff/access-reviews", tag = "staff",
    responses((status = 201, body = CampaignDetail),
        (status = 403, description = "`approver_required`"),
        (status = 409, description = "`review_open`")),
    security(("staff_session" = [])))]
pub async fn start(
    auth: StaffAuth,
    State(state): State<Arc<AppState>>,
) -> Result<(StatusCode, Json<CampaignDetail>), ApiError> {
    approver(&auth)?;
    let now = state.clock.now_ms();
    let c = auth
        .cell
        .start_access_review(now, schedule(&state.staff).window_ms)
        .await
        .map_err(review_error)?;
    Ok((StatusCode::CREATED, Json(detail(&auth, &c.id, now).await?)))
}

/// One campaign with its items and report: totals, completion, and drift from the previous
/// campaign and from the baselines (approver role).
#[utoipa::path(get, path = "/v1/staff/access-reviews/{id}", tag = "staff",
    params(("id" = String, Path, description = "The campaign (`rv_…`)")),
    responses((status = 200, body = CampaignDetail),
        (status = 403, description = "`approver_required`"),
        (status = 404, description = "no such campaign")),
    security(("staff_session" = [])))]
pub async fn get_one(
    auth: StaffAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<CampaignDetail>, ApiError> {
    approver(&auth)?;
    let id = parse_id(&id, ReviewCampaignId::parse)?;
    Ok(Json(detail(&auth, &id, state.clock.now_ms()).await?))
}

/// Certify or revoke one staff item (approver role; never your own item). A revocation
/// applies at once: the staff member is disabled (sessions end, grants stop working).
/// Teammates' items are the workspace's to decide (`403 reviewed_by_workspace`).
#[utoipa::path(post, path = "/v1/staff/access-reviews/{id}/items/{item_id}", tag = "staff",
    params(("id" = String, Path, description = "The campaign (`rv_…`)"),
        ("item_id" = String, Path, description = "The item (`ri_…`)")),
    request_body = DecisionBody,
    responses((status = 200, body = ReviewItemOut),
        (status = 403, description = "`approver_required`, `self_review`, `reviewed_by_workspace`"),
        (status = 404, description = "no such campaign or item"),
        (status = 409, description = "`item_decided`, `review_closed`"),
        (status = 422, description = "`invalid_decision`")),
    security(("staff_session" = [])))]
pub async fn decide(
    auth: StaffAuth,
    State(state): State<Arc<AppState>>,
    Path((id, item_id)): Path<(String, String)>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<ReviewItemOut>, ApiError> {
    approver(&auth)?;
    let reviewer = Reviewer::Staff(&auth.principal);
    let item = decide_item(
        &auth.cell,
        (&id, &item_id),
        &body,
        reviewer,
        &state,
        review_error,
    )
    .await?;
    Ok(Json(item_out(&item)))
}

/// Parse the ids and the decision, then decide; `map` turns the store's refusals into
/// problems.
async fn decide_item(
    cell: &interlock_storage::Cell,
    (id, item_id): (&str, &str),
    body: &DecisionBody,
    reviewer: Reviewer<'_>,
    state: &AppState,
    map: impl Fn(StoreError) -> ApiError,
) -> Result<ReviewItem, ApiError> {
    let id = parse_id(id, ReviewCampaignId::parse)?;
    let item_id = parse_id(item_id, ReviewItemId::parse)?;
    let verdict = ReviewVerdict::parse(&body.decision).ok_or_else(|| ApiError::Invalid {
        code: "invalid_decision",
        field: Some("decision".into()),
        detail: "decision must be certify or revoke".into(),
    })?;
    cell.decide_review_item(&id, &item_id, verdict, reviewer, state.clock.now_ms())
        .await
        .map_err(map)
}

// ------------------------------------------------------------------ the workspace's side

/// The latest campaign, as one workspace sees it: its own owners and admins only.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceReviewOut {
    pub campaign: CampaignOut,
    /// This workspace's items (its owners and admins when the campaign began).
    pub items: Vec<ReviewItemOut>,
}

/// The latest access review campaign and this workspace's items in it: every owner and admin,
/// to certify or revoke before the deadline (undecided ones become agents then).
#[utoipa::path(get, path = "/v1/workspace/access-reviews/current", tag = "access",
    extensions(("x-permission" = json!("security.manage"))),
    responses((status = 200, body = WorkspaceReviewOut),
        (status = 404, description = "no campaign has run in this region yet")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn workspace_current(
    auth: Allowed<perm::SecurityManage>,
    State(state): State<Arc<AppState>>,
) -> Result<Json<WorkspaceReviewOut>, ApiError> {
    let c = auth.cell.access_review_campaign(None).await?;
    let items = auth
        .cell
        .workspace_review_items(&c.id, &auth.workspace)
        .await?;
    Ok(Json(WorkspaceReviewOut {
        campaign: campaign_out(&c, state.clock.now_ms()),
        items: items.iter().map(item_out).collect(),
    }))
}

/// Certify or revoke one of this workspace's items (never your own). A revocation makes the
/// teammate an `agent` at once (`access_review.revoked`); a certification is logged too
/// (`access_review.certified`). The last owner keeps the role (`revoke_blocked_last_owner`).
#[utoipa::path(post, path = "/v1/workspace/access-reviews/{id}/items/{item_id}", tag = "access",
    extensions(("x-permission" = json!("security.manage"))),
    params(("id" = String, Path, description = "The campaign (`rv_…`)"),
        ("item_id" = String, Path, description = "The item (`ri_…`)")),
    request_body = DecisionBody,
    responses((status = 200, body = ReviewItemOut),
        (status = 403, description = "`self_review`"),
        (status = 404, description = "no such campaign, or not an item of this workspace"),
        (status = 409, description = "`item_decided`, `review_closed`"),
        (status = 422, description = "`invalid_decision`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn workspace_decide(
    auth: Allowed<perm::SecurityManage>,
    State(state): State<Arc<AppState>>,
    Path((id, item_id)): Path<(String, String)>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<ReviewItemOut>, ApiError> {
    let reviewer = Reviewer::Workspace {
        workspace: &auth.workspace,
        actor: &auth.actor,
    };
    let map = |e| match e {
        StoreError::Conflict("self_review") => ApiError::Forbidden {
            code: "self_review",
            detail: "nobody reviews their own access: another owner must decide this item",
        },
        other => review_error(other),
    };
    let item = decide_item(&auth.cell, (&id, &item_id), &body, reviewer, &state, map).await?;
    Ok(Json(item_out(&item)))
}

/// The access review routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/staff/access-reviews", get(list).post(start))
        .route("/v1/staff/access-reviews/{id}", get(get_one))
        .route(
            "/v1/staff/access-reviews/{id}/items/{item_id}",
            post(decide),
        )
        .route(
            "/v1/workspace/access-reviews/current",
            get(workspace_current),
        )
        .route(
            "/v1/workspace/access-reviews/{id}/items/{item_id}",
            post(workspace_decide),
        )
}
