//! Extractors: request parts turned into typed, checked values before a handler runs.
//! A rejection is always an [`ApiError`], so clients get problem+json, never axum's plain text.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use interlock_crypto::{RegionToken, TokenHash, TokenKind};
use interlock_domain::{
    ActivityType, Actor, ActorType, ApiTokenId, NewActivity, PermissionSet, SessionId, Target,
    TeammateId, WorkspaceId,
};
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

/// The cookie that carries a teammate's session.
pub const SESSION_COOKIE: &str = "interlock_session";
/// The header that carries a session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The signed-in teammate behind a request made with a session cookie.
#[derive(Debug, Clone)]
pub struct TeammateSession {
    pub teammate_id: TeammateId,
    pub session_id: SessionId,
    pub two_factor: bool,
    /// The workspace requires two-factor authentication and this teammate has none: the
    /// session may only enrol.
    pub must_enrol: bool,
    /// The session's cookie value (for logout).
    pub(crate) cookie: String,
}

/// A request authenticated for a workspace — with an API token (`Authorization: Bearer`) or a
/// teammate's session cookie (plus `X-CSRF-Token` on state-changing methods) — with what it
/// may do. Only this extractor can make one, so a handler that takes it (or an
/// [`crate::authz::Allowed`], which wraps it) cannot skip authentication.
#[derive(Debug, Clone)]
pub struct WorkspaceAuth {
    pub workspace: WorkspaceId,
    pub cell: Arc<Cell>,
    pub permissions: PermissionSet,
    /// The token's id (absent for sessions and for tokens made before tokens had ids).
    pub token_id: Option<ApiTokenId>,
    /// Set when the request comes from a teammate's session.
    pub teammate: Option<TeammateSession>,
    /// The client's address (the TCP peer).
    pub ip: IpAddr,
    /// Who is acting, for the activity log (teammate, API token or staff member, address,
    /// user agent).
    pub actor: Actor,
    /// Set when an operator staff member acts under a grant (from a trusted device).
    pub staff: Option<interlock_storage::GrantPrincipal>,
}

impl WorkspaceAuth {
    /// The teammate acting, if this is a session.
    pub fn teammate_id(&self) -> Option<&TeammateId> {
        self.teammate.as_ref().map(|t| &t.teammate_id)
    }

    /// An activity entry by this request's principal.
    pub fn activity(&self, kind: ActivityType, target: Target) -> NewActivity {
        NewActivity::new(kind, &self.actor, target)
    }
}

/// The request's user agent header, if it is text.
pub(crate) fn user_agent(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// A request's actor before it is authenticated (sign-in, invitations): a teammate whose id
/// is not known yet.
pub(crate) fn anonymous_teammate(parts: &Parts) -> Actor {
    Actor::new(
        ActorType::Teammate,
        None,
        Some(client_ip(parts)),
        user_agent(parts),
    )
}

/// The source of a request (address and user agent), for handlers that record activity
/// before a principal exists (sign-in, invitations).
#[derive(Debug, Clone)]
pub struct RequestSource(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for RequestSource {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestSource(anonymous_teammate(parts)))
    }
}

pub(crate) fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The value of the session cookie, if the request has one.
pub(crate) fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim())
}

/// Record that the workspace is in use (for the inactivity rule). A failure to record it
/// does not fail the request; the next request tries again.
async fn touch(cell: &Cell, ws: &WorkspaceId) {
    if let Err(e) = cell.touch_workspace(ws).await {
        tracing::warn!(workspace = %ws, error = %e, "could not record workspace activity");
    }
}

const BAD_SESSION: ApiError = ApiError::Unauthorized {
    code: "invalid_session",
    detail: "the session is not valid, has expired or was revoked; sign in again",
};

async fn from_session(
    parts: &Parts,
    state: &Arc<AppState>,
    cookie: &str,
) -> Result<WorkspaceAuth, ApiError> {
    let region = RegionToken::region_of(TokenKind::TeammateSession, cookie).ok_or(BAD_SESSION)?;
    let cell = state.cell(region)?;
    let principal = cell.session_principal(cookie).await?.ok_or(BAD_SESSION)?;
    let ip = client_ip(parts);
    if !principal.ip_allowlist.allows(ip) {
        return Err(ApiError::Forbidden {
            code: "ip_not_allowed",
            detail: "this workspace does not allow sign-ins from this address",
        });
    }
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !principal.csrf_matches(presented) {
            return Err(ApiError::Forbidden {
                code: "csrf_failed",
                detail: "send the session's CSRF token in X-CSRF-Token",
            });
        }
    }
    let must_enrol = principal.require_two_factor && !principal.two_factor;
    touch(&cell, &principal.workspace).await;
    Ok(WorkspaceAuth {
        workspace: principal.workspace.clone(),
        cell,
        // Until they enrol, teammates of a workspace that requires 2FA may do nothing else.
        permissions: if must_enrol {
            PermissionSet::EMPTY
        } else {
            principal.permissions
        },
        token_id: None,
        actor: Actor::new(
            ActorType::Teammate,
            Some(principal.teammate_id.to_string()),
            Some(ip),
            user_agent(parts),
        ),
        teammate: Some(TeammateSession {
            teammate_id: principal.teammate_id,
            session_id: principal.session_id,
            two_factor: principal.two_factor,
            must_enrol,
            cookie: cookie.to_owned(),
        }),
        ip,
        staff: None,
    })
}

const NO_GRANT: ApiError = ApiError::Unauthorized {
    code: "grant_inactive",
    detail: "the grant is not active: waiting for approval, expired, revoked, or a break-glass grant nobody confirmed",
};

/// A staff member's grant token (`ilg_…`), presented from their trusted device: the grant's
/// permissions on its one workspace. Each request is written to the workspace's activity log
/// before the handler runs (access transparency).
async fn from_grant(
    parts: &mut Parts,
    state: &Arc<AppState>,
    token: &str,
) -> Result<WorkspaceAuth, ApiError> {
    let region = RegionToken::region_of(TokenKind::StaffGrant, token).ok_or(NO_GRANT)?;
    let cell = state.cell(region)?;
    let grant = cell
        .staff_grant_principal(token, state.clock.now_ms())
        .await?
        .ok_or(NO_GRANT)?;
    let device = crate::device::TrustedDevice::from_request_parts(parts, state).await?;
    if device.staff_id != grant.staff_id.as_str() {
        return Err(ApiError::Unauthorized {
            code: "device_not_yours",
            detail: "this device is not registered to the staff member the grant was given to",
        });
    }
    let ip = client_ip(parts);
    let actor = Actor::new(
        ActorType::Staff,
        Some(grant.staff_id.to_string()),
        Some(ip),
        user_agent(parts),
    );
    let route = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    cell.record_staff_request(&grant, &actor, parts.method.as_str(), &route)
        .await?;
    Ok(WorkspaceAuth {
        workspace: grant.workspace.clone(),
        cell,
        permissions: grant.permissions,
        token_id: None,
        teammate: None,
        ip,
        actor,
        staff: Some(grant),
    })
}

impl FromRequestParts<Arc<AppState>> for WorkspaceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.get(header::AUTHORIZATION).is_none()
            && let Some(cookie) = session_cookie(parts)
        {
            let cookie = cookie.to_owned();
            return from_session(parts, state, &cookie).await;
        }
        let token = bearer(parts)?;
        if state.operator_token_hash.ct_eq(&TokenHash::of(token)) {
            return Err(ApiError::Forbidden {
                code: "operator_token_not_allowed",
                detail: "the operator token manages workspaces and cannot read workspace data",
            });
        }
        // Staff hold no standing access: without a grant, no workspace object exists for them.
        if token.starts_with(TokenKind::StaffSession.prefix()) {
            return Err(ApiError::NotFound);
        }
        if token.starts_with(TokenKind::StaffGrant.prefix()) {
            let token = token.to_owned();
            return from_grant(parts, state, &token).await;
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
        let ip = client_ip(parts);
        touch(&cell, &principal.workspace).await;
        Ok(WorkspaceAuth {
            workspace: principal.workspace,
            cell,
            permissions: principal.permissions,
            actor: Actor::new(
                ActorType::ApiToken,
                principal.token_id.as_ref().map(|t| t.to_string()),
                Some(ip),
                user_agent(parts),
            ),
            token_id: principal.token_id,
            teammate: None,
            ip,
            staff: None,
        })
    }
}

/// A request from a signed-in teammate (session cookie, CSRF on state changes): the
/// self-service routes (sign-out, own sessions, two-factor enrolment) take this. It works
/// even while the workspace requires 2FA the teammate lacks, so they can enrol.
#[derive(Debug, Clone)]
pub struct TeammateAuth {
    pub auth: WorkspaceAuth,
    pub session: TeammateSession,
}

impl FromRequestParts<Arc<AppState>> for TeammateAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let cookie = session_cookie(parts)
            .ok_or(ApiError::Unauthorized {
                code: "missing_session",
                detail: "sign in first: this needs a teammate session cookie",
            })?
            .to_owned();
        let auth = from_session(parts, state, &cookie).await?;
        let session = auth.teammate.clone().ok_or(BAD_SESSION)?;
        Ok(TeammateAuth { auth, session })
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
