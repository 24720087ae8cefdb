//! Extractors: request parts turned into typed, checked values before a handler runs.
//! A rejection is always an [`ApiError`], so clients get problem+json, never axum's plain text.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use interlock_crypto::{RegionToken, TokenHash, TokenKind};
use interlock_domain::{ApiTokenId, PermissionSet, WorkspaceId};
use interlock_storage::Cell;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// JSON body extractor whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T> FromRequest<Arc<AppState>> for Json<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType {
                detail: "send the body as application/json",
            }),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::bad_request("malformed_json", e.body_text()))
            }
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Invalid {
                code: "invalid_body",
                field: None,
                detail: e.body_text(),
            }),
            Err(JsonRejection::BytesRejection(e)) => {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Err(ApiError::PayloadTooLarge {
                        limit: state.limits.body_bytes,
                    })
                } else {
                    Err(ApiError::bad_request(
                        "unreadable_body",
                        "the request body could not be read",
                    ))
                }
            }
            Err(_) => Err(ApiError::bad_request(
                "malformed_json",
                "the body is not valid JSON",
            )),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Raw body bytes (attachments), with the attachment size limit mapped to problem+json.
#[derive(Debug)]
pub struct RawBody(pub bytes::Bytes);

impl FromRequest<Arc<AppState>> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match bytes::Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge {
                    limit: state.limits.attachment_bytes,
                })
            }
            Err(_) => Err(ApiError::bad_request(
                "unreadable_body",
                "the request body could not be read",
            )),
        }
    }
}

/// Query string extractor whose rejections are problem+json.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::bad_request("invalid_query", e.body_text()))
            }
            Err(_) => Err(ApiError::bad_request(
                "invalid_query",
                "the query string is invalid",
            )),
        }
    }
}

pub(crate) fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized {
            code: "missing_token",
            detail: "send Authorization: Bearer <token>",
        })?;
    let text = value.to_str().map_err(|_| ApiError::Unauthorized {
        code: "invalid_token",
        detail: "the token is not valid",
    })?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthorized {
            code: "missing_token",
            detail: "send Authorization: Bearer <token>",
        })?;
    Ok(token.trim())
}

/// A request authenticated with a workspace API token: the workspace, its region's cell and
/// what the token may do. Only this extractor can make one, so a handler that takes it (or an
/// [`crate::authz::Allowed`], which wraps it) cannot skip authentication.
#[derive(Debug, Clone)]
pub struct WorkspaceAuth {
    pub workspace: WorkspaceId,
    pub cell: Arc<Cell>,
    pub permissions: PermissionSet,
    /// The token's id (absent only for tokens made before tokens had ids).
    pub token_id: Option<ApiTokenId>,
}

impl FromRequestParts<Arc<AppState>> for WorkspaceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if state.operator_token_hash.ct_eq(&TokenHash::of(token)) {
            return Err(ApiError::Forbidden {
                code: "operator_token_not_allowed",
                detail: "the operator token manages workspaces and cannot read workspace data",
            });
        }
        let region =
            RegionToken::region_of(TokenKind::Api, token).ok_or(ApiError::Unauthorized {
                code: "invalid_token",
                detail: "the token is not valid",
            })?;
        let cell = state.cell(region)?;
        let principal = cell
            .authenticate(token)
            .await?
            .ok_or(ApiError::Unauthorized {
                code: "invalid_token",
                detail: "the token is not valid, has expired or was revoked",
            })?;
        Ok(WorkspaceAuth {
            workspace: principal.workspace,
            cell,
            permissions: principal.permissions,
            token_id: principal.token_id,
        })
    }
}

/// A request authenticated with the operator token.
#[derive(Debug, Clone, Copy)]
pub struct OperatorAuth;

impl FromRequestParts<Arc<AppState>> for OperatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if state.operator_token_hash.ct_eq(&TokenHash::of(token)) {
            Ok(OperatorAuth)
        } else {
            Err(ApiError::Unauthorized {
                code: "invalid_token",
                detail: "this endpoint needs the operator token",
            })
        }
    }
}

/// Parse a path id with its domain parser; a malformed id is a 400 with a stable code.
pub fn parse_id<T>(
    raw: &str,
    parse: fn(&str) -> Result<T, interlock_domain::DomainError>,
) -> Result<T, ApiError> {
    parse(raw).map_err(|e| ApiError::bad_request("invalid_id", e.message))
}

/// Path parameters whose rejections (e.g. invalid percent-encoding) are problem+json.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(_) => Err(ApiError::bad_request(
                "invalid_id",
                "a path parameter is not a valid id",
            )),
        }
    }
}
