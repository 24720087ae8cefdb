//! Data subject requests: access (an encrypted archive, downloadable by the requester for 7
//! days) and erasure (immediate, with a signed receipt).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use interlock_crypto::SignedDocument;
use interlock_domain::{ContactId, DataRequestId, Email, ExternalId};
use interlock_storage::cell::{DataRequest, DataRequestKind, Erasure, SubjectRef};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::authz::{Allowed, perm};
use crate::dto::{ListOf, PageParams, cursor};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query, parse_id};

/// A data subject request. Name the subject with exactly one of `contact_id`, `email` or
/// `external_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDataRequest {
    /// `access` or `erasure`.
    #[serde(rename = "type")]
    pub kind: String,
    pub contact_id: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
}

/// A data subject request's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataRequestOut {
    pub id: String,
    /// `access` or `erasure`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `completed`; `purging` while an erasure's files are removed; `expired` (access archive
    /// past 7 days) or `erased` (its subject was erased since).
    pub status: String,
    /// The subject's pseudonymous contact id.
    pub contact_id: String,
    /// Who asked: `teammate:tm_…` or `api_token:tk_…`.
    pub requested_by: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    /// Access: until when the archive can be downloaded (ms since the epoch).
    pub archive_expires_at: Option<i64>,
    /// Access: the archive's size before encryption.
    pub archive_bytes: Option<i64>,
    /// Access: where the requester downloads the archive (a tar).
    pub archive_url: Option<String>,
    /// Erasure: the signed deletion receipt (verify with `interlock receipt verify`).
    #[schema(value_type = Option<Object>)]
    pub receipt: Option<SignedDocument>,
}

impl DataRequestOut {
    fn new(r: DataRequest, receipt: Option<SignedDocument>) -> Self {
        let access = r.kind == DataRequestKind::Access;
        Self {
            archive_url: (access && r.status == "completed")
                .then(|| format!("/v1/data-requests/{}/archive", r.id)),
            id: r.id.to_string(),
            kind: r.kind.as_str().to_owned(),
            status: r.status,
            contact_id: r.subject_id,
            requested_by: r.requested_by,
            created_at: r.created_at,
            completed_at: r.completed_at,
            archive_expires_at: r.expires_at,
            archive_bytes: r.archive_bytes,
            receipt,
        }
    }
}

fn subject(req: &CreateDataRequest) -> Result<SubjectRef, ApiError> {
    let named = [
        req.contact_id.is_some(),
        req.email.is_some(),
        req.external_id.is_some(),
    ]
    .into_iter()
    .filter(|b| *b)
    .count();
    if named != 1 {
        return Err(ApiError::Invalid {
            code: "subject_required",
            field: None,
            detail: "name the data subject with exactly one of contact_id, email or external_id"
                .into(),
        });
    }
    if let Some(id) = &req.contact_id {
        return Ok(SubjectRef::Id(ContactId::parse(id).map_err(|e| {
            ApiError::Invalid {
                code: e.code,
                field: Some("contact_id".into()),
                detail: "contact_id must be a contact id (ct_ and 32 hex digits)".into(),
            }
        })?));
    }
    if let Some(email) = &req.email {
        return Ok(SubjectRef::Email(Email::parse(email)?));
    }
    let x = req.external_id.as_deref().unwrap_or_default();
    Ok(SubjectRef::ExternalId(ExternalId::parse(x)?))
}

fn no_subject() -> ApiError {
    ApiError::NotFoundCode {
        code: "subject_not_found",
        detail: "no contact of this workspace matches the request's subject",
    }
}

/// Make a data subject request. `access` gathers everything about the subject (the contact,
/// conversations with their messages, events, attachment files) into an archive labelled with
/// the data map's categories, encrypted at rest and downloadable by the requester for 7 days.
/// `erasure` erases the subject at once: its keys are destroyed (crypto-shredding), then its
/// rows, blind-index entries, files and access archives go; it cannot be cancelled, answers
/// with a signed receipt, and a repeat answers `200` with the same receipt.
#[utoipa::path(post, path = "/v1/data-requests", tag = "privacy",
    extensions(("x-permission" = json!("data_requests.handle"))),
    request_body = CreateDataRequest,
    responses((status = 201, body = DataRequestOut), (status = 200, body = DataRequestOut, description = "a repeated erasure: the first one's receipt"),
        (status = 404, description = "`subject_not_found`"), (status = 422, description = "`subject_required`, `invalid_type`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn create(
    auth: Allowed<perm::DataRequestsHandle>,
    Json(req): Json<CreateDataRequest>,
) -> Result<(StatusCode, Json<DataRequestOut>), ApiError> {
    let kind = match req.kind.as_str() {
        "access" => DataRequestKind::Access,
        "erasure" => DataRequestKind::Erasure,
        _ => {
            return Err(ApiError::Invalid {
                code: "invalid_type",
                field: Some("type".into()),
                detail: "type must be `access` or `erasure`".into(),
            });
        }
    };
    let subject = subject(&req)?;
    let ws = &auth.workspace;
    let contact = match auth.cell.resolve_subject(ws, &subject).await {
        Ok(c) => c,
        Err(interlock_storage::StoreError::NotFound) => return Err(no_subject()),
        Err(e) => return Err(e.into()),
    };
    match kind {
        DataRequestKind::Erasure => {
            let e = match auth.cell.erase_contact(ws, &contact, &auth.actor).await {
                Ok(e) => e,
                Err(interlock_storage::StoreError::NotFound) => return Err(no_subject()),
                Err(e) => return Err(e.into()),
            };
            let status = if e.repeated {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((status, Json(erasure_out(e))))
        }
        DataRequestKind::Access => {
            let r = match auth
                .cell
                .create_access_request(ws, &contact, &auth.actor)
                .await
            {
                Ok(r) => r,
                Err(interlock_storage::StoreError::NotFound) => return Err(no_subject()),
                Err(e) => return Err(e.into()),
            };
            Ok((StatusCode::CREATED, Json(DataRequestOut::new(r, None))))
        }
    }
}

/// `DELETE /v1/contacts/{id}`'s answer (Intercom's shape, plus the erasure's receipt).
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactErased {
    pub id: String,
    /// Always `contact`.
    pub object: &'static str,
    pub deleted: bool,
    /// The erasure request this deletion made (or the first one, on a repeat).
    pub data_request_id: String,
    /// The signed deletion receipt.
    #[schema(value_type = Object)]
    pub receipt: SignedDocument,
}

pub(crate) fn erasure_out(e: Erasure) -> DataRequestOut {
    DataRequestOut::new(e.request, Some(e.receipt))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DataRequestListParams {
    pub cursor: Option<String>,
    pub per_page: Option<i64>,
}

/// The workspace's data subject requests, newest first.
#[utoipa::path(get, path = "/v1/data-requests", tag = "privacy",
    extensions(("x-permission" = json!("data_requests.handle"))),
    params(DataRequestListParams),
    responses((status = 200, body = ListOf<DataRequestOut>)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn list(
    auth: Allowed<perm::DataRequestsHandle>,
    Query(q): Query<DataRequestListParams>,
) -> Result<Json<ListOf<DataRequestOut>>, ApiError> {
    let page = PageParams {
        cursor: q.cursor,
        per_page: q.per_page,
    };
    let before = page.after(DataRequestId::parse)?;
    let got = auth
        .cell
        .list_data_requests(&auth.workspace, before.as_ref(), page.limit()?)
        .await?;
    let mut out = Vec::with_capacity(got.items.len());
    for r in got.items {
        out.push(with_receipt(&auth, r).await?);
    }
    Ok(Json(ListOf::new(out, cursor(got.next_after))))
}

async fn with_receipt(
    auth: &Allowed<perm::DataRequestsHandle>,
    r: DataRequest,
) -> Result<DataRequestOut, ApiError> {
    let receipt = match r
        .receipt_id
        .as_deref()
        .and_then(|id| interlock_domain::ReceiptId::parse(id).ok())
    {
        Some(id) => Some(auth.cell.deletion_receipt(&id).await?),
        None => None,
    };
    Ok(DataRequestOut::new(r, receipt))
}

/// One data subject request's state (an erasure's with its receipt).
#[utoipa::path(get, path = "/v1/data-requests/{id}", tag = "privacy",
    extensions(("x-permission" = json!("data_requests.handle"))),
    params(("id" = String, Path, description = "data request id")),
    responses((status = 200, body = DataRequestOut), (status = 404, description = "no such request")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn get(
    auth: Allowed<perm::DataRequestsHandle>,
    Path(id): Path<String>,
) -> Result<Json<DataRequestOut>, ApiError> {
    let id = parse_id(&id, DataRequestId::parse)?;
    let r = auth.cell.data_request(&auth.workspace, &id).await?;
    Ok(Json(with_receipt(&auth, r).await?))
}

/// Download an access request's archive (`application/x-tar`: `subject.json` and the
/// attachment files). Only the principal that made the request can, for 7 days; `410
/// archive_expired` after that or once the subject was erased. Each download is logged as
/// `data.exported`.
#[utoipa::path(get, path = "/v1/data-requests/{id}/archive", tag = "privacy",
    extensions(("x-permission" = json!("data_requests.handle"))),
    params(("id" = String, Path, description = "data request id")),
    responses((status = 200, description = "the archive", content_type = "application/x-tar"),
        (status = 404, description = "no such access request of this requester"),
        (status = 410, description = "`archive_expired`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn archive(
    auth: Allowed<perm::DataRequestsHandle>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, DataRequestId::parse)?;
    let tar = auth
        .cell
        .access_archive(
            &auth.workspace,
            &id,
            &auth.actor,
            interlock_storage::now_ms(),
        )
        .await?;
    let mut resp = Body::from(tar.to_vec()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.tar\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
