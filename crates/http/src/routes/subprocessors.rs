//! The sub-processor registry: public reading (`GET /v1/subprocessors`, no authentication)
//! and the operator's changes (`/v1/operator/subprocessors`, operator token). A sub-processor
//! names the regions it serves; each of those regions' stores holds it, so every region this
//! process must write is checked to be served here before anything is written (421
//! otherwise). Regions are written one after the other (each its own database): on a change
//! of regions, the ones it leaves are written first, so a failure half-way leaves it
//! registered in fewer regions, never in more — repeat the request to finish.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use interlock_domain::{Region, SubprocessorId};
use interlock_storage::cell::{Subprocessor, SubprocessorInput};
use interlock_storage::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::dto::{Deleted, ListOf};
use crate::error::ApiError;
use crate::extract::{Json, OperatorAuth, Path, Query, parse_id};

/// A sub-processor as registered.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubprocessorOut {
    /// `sp_…`
    pub id: String,
    pub name: String,
    pub purpose: String,
    /// fideslang data category keys (those the data map uses).
    #[schema(example = json!(["user.contact.email", "user.name"]))]
    pub data_categories: Vec<String>,
    /// `us`, `eu`, `au`.
    pub regions: Vec<String>,
    /// Lower-case DNS names and IP addresses it receives data at.
    pub hosts: Vec<String>,
    /// Where signed erasure notices are POSTed.
    pub deletion_notice_url: String,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Subprocessor> for SubprocessorOut {
    fn from(s: Subprocessor) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name,
            purpose: s.purpose,
            data_categories: s.data_categories,
            regions: s.regions.iter().map(|r| r.as_str().to_owned()).collect(),
            hosts: s.hosts,
            deletion_notice_url: s.deletion_notice_url,
            created_at: s.created_at.div_euclid(1000),
            updated_at: s.updated_at.div_euclid(1000),
        }
    }
}

/// A sub-processor to register (or its full replacement).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubprocessorRequest {
    /// 1–200 characters.
    pub name: String,
    /// 1–1000 characters.
    pub purpose: String,
    /// 1–32 fideslang data category keys, among those the data map uses.
    pub data_categories: Vec<String>,
    /// The regions whose workspaces may send it data.
    pub regions: Vec<String>,
    /// 1–32 hosts: lower-case DNS names or IP addresses, no scheme, port, path or wildcard.
    pub hosts: Vec<String>,
    /// An https URL (plain http only with `[outbound] allow_insecure_http`) whose host is one
    /// of `hosts`.
    pub deletion_notice_url: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RegistryParams {
    /// Only the sub-processors of this region (which this server must serve).
    pub region: Option<String>,
}

/// The sub-processors of the regions served here (or of one), in id order. Public: no
/// authentication.
#[utoipa::path(get, path = "/v1/subprocessors", tag = "subprocessors",
    params(RegistryParams),
    responses((status = 200, body = ListOf<SubprocessorOut>),
        (status = 421, description = "region not served here"),
        (status = 422, description = "`invalid_region`")))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<RegistryParams>,
) -> Result<Json<ListOf<SubprocessorOut>>, ApiError> {
    let cells = match q.region {
        Some(r) => vec![state.cell(r.parse::<Region>()?)?],
        None => state.cells.values().cloned().collect(),
    };
    let mut all: BTreeMap<String, Subprocessor> = BTreeMap::new();
    for cell in cells {
        for s in cell.subprocessors().await? {
            match all.get(s.id.as_str()) {
                Some(seen) if seen.updated_at >= s.updated_at => {}
                _ => {
                    all.insert(s.id.to_string(), s);
                }
            }
        }
    }
    Ok(Json(ListOf::new(
        all.into_values().map(SubprocessorOut::from).collect(),
        None,
    )))
}

fn check(state: &AppState, req: &SubprocessorRequest) -> Result<SubprocessorInput, ApiError> {
    let (_, notice_host) = crate::outbox::destination(
        &req.deletion_notice_url,
        state.outbound.allow_insecure_http,
    )
    .map_err(|_| ApiError::Invalid {
        code: "invalid_deletion_notice_url",
        field: Some("deletion_notice_url".into()),
        detail: "deletion_notice_url must be an absolute https URL without credentials, of at most 2048 bytes".into(),
    })?;
    Ok(SubprocessorInput::new(
        &req.name,
        &req.purpose,
        &req.data_categories,
        &req.regions,
        &req.hosts,
        &req.deletion_notice_url,
        &notice_host,
    )?)
}

/// Where a sub-processor is registered now, among the regions served here.
async fn existing(state: &AppState, id: &SubprocessorId) -> Result<Vec<Subprocessor>, ApiError> {
    let mut out = Vec::new();
    for cell in state.cells.values() {
        if let Some(s) = cell.subprocessor(id).await? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Write `input` (or the removal) to `regions`, those it leaves first.
async fn apply(
    state: &AppState,
    id: &SubprocessorId,
    input: Option<&SubprocessorInput>,
    old: &[Region],
    created_at: i64,
) -> Result<(), ApiError> {
    let new: &[Region] = input.map_or(&[], SubprocessorInput::regions);
    let mut order: Vec<Region> = old.iter().filter(|r| !new.contains(r)).copied().collect();
    order.extend(new.iter().copied());
    order.dedup();
    // Every region to write must be served here, before anything is written.
    let cells = order
        .iter()
        .map(|r| state.cell(*r))
        .collect::<Result<Vec<_>, _>>()?;
    for cell in cells {
        cell.apply_subprocessor(id, input, created_at).await?;
    }
    Ok(())
}

async fn read_back(state: &AppState, id: &SubprocessorId) -> Result<SubprocessorOut, ApiError> {
    existing(state, id)
        .await?
        .into_iter()
        .max_by_key(|s| s.updated_at)
        .map(SubprocessorOut::from)
        .ok_or(ApiError::NotFound)
}

/// Register a sub-processor for one or more regions. Subscribed workspaces of those regions
/// get a `subprocessors.changed` webhook (`action: added`).
#[utoipa::path(post, path = "/v1/operator/subprocessors", tag = "subprocessors",
    request_body = SubprocessorRequest,
    responses((status = 201, body = SubprocessorOut),
        (status = 421, description = "a region is not served here"),
        (status = 422, description = "`invalid_name`, `invalid_purpose`, `invalid_data_categories`, `unknown_data_category`, `invalid_regions`, `invalid_region`, `invalid_hosts`, `invalid_host`, `invalid_deletion_notice_url`, `notice_host_not_listed`")),
    security(("operator_token" = [])))]
pub async fn create(
    _op: OperatorAuth,
    State(state): State<Arc<AppState>>,
    Json(req): Json<SubprocessorRequest>,
) -> Result<(StatusCode, Json<SubprocessorOut>), ApiError> {
    let input = check(&state, &req)?;
    let id = SubprocessorId::new();
    apply(&state, &id, Some(&input), &[], now_ms()).await?;
    tracing::info!(subprocessor = %id, "sub-processor registered");
    Ok((StatusCode::CREATED, Json(read_back(&state, &id).await?)))
}

/// Replace a sub-processor's description (all fields). Regions it leaves drop it; every
/// region it is in or leaves tells its subscribed workspaces (`subprocessors.changed`,
/// `action: added`, `updated` or `removed` as seen from that region). Deliveries already
/// queued to a host it no longer lists are refused.
#[utoipa::path(put, path = "/v1/operator/subprocessors/{id}", tag = "subprocessors",
    params(("id" = String, Path, description = "sub-processor id")),
    request_body = SubprocessorRequest,
    responses((status = 200, body = SubprocessorOut),
        (status = 404, description = "not registered in any region served here"),
        (status = 421, description = "a region is not served here"),
        (status = 422, description = "as for POST")),
    security(("operator_token" = [])))]
pub async fn replace(
    _op: OperatorAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(req): Json<SubprocessorRequest>,
) -> Result<Json<SubprocessorOut>, ApiError> {
    let id = parse_id(&id, SubprocessorId::parse)?;
    let input = check(&state, &req)?;
    let now = existing(&state, &id).await?;
    if now.is_empty() {
        return Err(ApiError::NotFound);
    }
    let mut old: Vec<Region> = now.iter().flat_map(|s| s.regions.clone()).collect();
    old.sort();
    old.dedup();
    let created_at = now
        .iter()
        .map(|s| s.created_at)
        .min()
        .unwrap_or_else(now_ms);
    apply(&state, &id, Some(&input), &old, created_at).await?;
    tracing::info!(subprocessor = %id, "sub-processor updated");
    Ok(Json(read_back(&state, &id).await?))
}

/// Remove a sub-processor from every region. Deliveries queued to its hosts are refused.
#[utoipa::path(delete, path = "/v1/operator/subprocessors/{id}", tag = "subprocessors",
    params(("id" = String, Path, description = "sub-processor id")),
    responses((status = 200, body = Deleted),
        (status = 404, description = "not registered in any region served here"),
        (status = 421, description = "a region it is registered for is not served here")),
    security(("operator_token" = [])))]
pub async fn delete(
    _op: OperatorAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_id(&id, SubprocessorId::parse)?;
    let now = existing(&state, &id).await?;
    if now.is_empty() {
        return Err(ApiError::NotFound);
    }
    let mut old: Vec<Region> = now.iter().flat_map(|s| s.regions.clone()).collect();
    old.sort();
    old.dedup();
    apply(&state, &id, None, &old, 0).await?;
    tracing::info!(subprocessor = %id, "sub-processor removed");
    Ok(Json(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}
