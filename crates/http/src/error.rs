//! The one error type of the HTTP layer and its RFC 9457 problem+json rendering.
//!
//! Every error a client sees has a stable `code`. Internal failures are logged with a
//! correlation id and answered with that id only: no database message, path or value ever
//! reaches the response body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use interlock_domain::{DomainError, Region};
use interlock_storage::StoreError;
use serde::Serialize;

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, bad id, bad cursor, bad query).
    BadRequest { code: &'static str, detail: String },
    /// 401: missing or unknown credentials.
    Unauthorized {
        code: &'static str,
        detail: &'static str,
    },
    /// 403: authenticated, but this credential may not do this.
    Forbidden {
        code: &'static str,
        detail: &'static str,
    },
    /// 403: the principal lacks the permission this endpoint needs.
    PermissionDenied {
        permission: interlock_domain::Permission,
    },
    /// 404: no such object in this workspace (also for other workspaces' objects).
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: the write conflicts with stored state.
    Conflict {
        code: &'static str,
        detail: &'static str,
    },
    /// 404 with a specific code (e.g. `subject_not_found`).
    NotFoundCode {
        code: &'static str,
        detail: &'static str,
    },
    /// 410: the object existed and is gone for good (an expired archive, a deleted workspace).
    Gone {
        code: &'static str,
        detail: &'static str,
    },
    /// 413: the body is larger than the configured limit.
    PayloadTooLarge { limit: usize },
    /// 415: the body is not of the expected media type.
    UnsupportedMediaType { detail: &'static str },
    /// 421: the workspace lives in a region this process does not serve.
    WrongRegion {
        region: Region,
        base_url: Option<String>,
    },
    /// 422: well-formed but invalid input.
    Invalid {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    /// 401: a messenger boot named a user without a valid `user_hash` or JWT; `reason` says
    /// which check failed (e.g. `jwt_expired`, `user_hash_mismatch`).
    IdentityVerificationFailed { reason: &'static str },
    /// 401: the password was right and a second factor is needed: a TOTP or recovery code in
    /// `otp`, or, when the teammate has passkeys, the WebAuthn challenge to answer at
    /// `POST /v1/auth/login/passkey` with `passkey_login_id`.
    SecondFactorRequired {
        passkey_login_id: Option<String>,
        passkey_challenge: Option<serde_json::Value>,
    },
    /// 404: a messenger boot named a workspace that does not exist.
    UnknownWorkspace,
    /// 429: over a rate limit; retry after this many seconds.
    RateLimited { retry_after_s: u64 },
    /// 500: our fault. Logged with the correlation id; the client gets only the id.
    Internal { correlation_id: String },
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permission: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    passkey_login_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    passkey_challenge: Option<serde_json::Value>,
}

impl ApiError {
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let correlation_id = uuid::Uuid::new_v4().simple().to_string();
        // The cause is ours (a database or IO failure), never a client value.
        tracing::error!(correlation_id = %correlation_id, error = %cause, "internal error");
        ApiError::Internal { correlation_id }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Gone { code, .. }
            | ApiError::NotFoundCode { code, .. }
            | ApiError::Invalid { code, .. } => code,
            ApiError::NotFound => "not_found",
            ApiError::PermissionDenied { .. } => "permission_denied",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::WrongRegion { .. } => "wrong_region",
            ApiError::IdentityVerificationFailed { .. } => "identity_verification_failed",
            ApiError::UnknownWorkspace => "workspace_not_found",
            ApiError::SecondFactorRequired { .. } => "otp_required",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Internal { .. } => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::PermissionDenied { .. } => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::NotFoundCode { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::WrongRegion { .. } => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::IdentityVerificationFailed { .. } => StatusCode::UNAUTHORIZED,
            ApiError::UnknownWorkspace => StatusCode::NOT_FOUND,
            ApiError::SecondFactorRequired { .. } => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Invalid {
            code: e.code,
            field: Some(e.field.to_owned()),
            detail: e.message.to_owned(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Invalid(d) => d.into(),
            StoreError::Conflict("external_id_taken") => ApiError::Conflict {
                code: "external_id_taken",
                detail: "another contact in this workspace has this external_id",
            },
            StoreError::Conflict("concurrent_update") => ApiError::Conflict {
                code: "concurrent_update",
                detail: "the object changed while this request ran; retry",
            },
            StoreError::Conflict("no_verification_secret") => ApiError::Conflict {
                code: "no_verification_secret",
                detail: "create a messenger verification secret before enforcing identity verification",
            },
            StoreError::Conflict("teammate_email_taken") => ApiError::Conflict {
                code: "teammate_email_taken",
                detail: "a teammate of this workspace already has this email",
            },
            StoreError::Conflict("role_in_use") => ApiError::Conflict {
                code: "role_in_use",
                detail: "teammates hold this role; give them another role first",
            },
            StoreError::Conflict("last_owner") => ApiError::Conflict {
                code: "last_owner",
                detail: "the workspace's last owner cannot be removed or demoted",
            },
            StoreError::Conflict("own_role") => ApiError::Forbidden {
                code: "own_role",
                detail: "nobody can change their own role",
            },
            StoreError::Conflict("two_factor_already_enabled") => ApiError::Conflict {
                code: "two_factor_already_enabled",
                detail: "two-factor authentication is already on; disable it first",
            },
            StoreError::Conflict("archive_expired") => ApiError::Gone {
                code: "archive_expired",
                detail: "the archive is no longer available: access archives are kept for 7 days, and none outlives its subject's erasure",
            },
            StoreError::Conflict(_) => ApiError::Conflict {
                code: "conflict",
                detail: "the request conflicts with stored data",
            },
            other => ApiError::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let title = status.canonical_reason().unwrap_or("Error");
        let mut problem = Problem {
            kind: format!("https://interlock.dev/problems/{code}"),
            title,
            status: status.as_u16(),
            code,
            detail: String::new(),
            field: None,
            region: None,
            base_url: None,
            correlation_id: None,
            reason: None,
            retry_after: None,
            permission: None,
            passkey_login_id: None,
            passkey_challenge: None,
        };
        let mut retry_after_header = None;
        match self {
            ApiError::BadRequest { detail, .. } => problem.detail = detail,
            ApiError::Unauthorized { detail, .. }
            | ApiError::Forbidden { detail, .. }
            | ApiError::Conflict { detail, .. }
            | ApiError::Gone { detail, .. }
            | ApiError::NotFoundCode { detail, .. }
            | ApiError::UnsupportedMediaType { detail } => problem.detail = detail.to_owned(),
            ApiError::NotFound => problem.detail = "no such object in this workspace".into(),
            ApiError::PermissionDenied { permission } => {
                problem.detail = format!("this needs the {} permission", permission.as_str());
                problem.permission = Some(permission.as_str());
            }
            ApiError::MethodNotAllowed => {
                problem.detail = "this method is not allowed on this path".into()
            }
            ApiError::PayloadTooLarge { limit } => {
                problem.detail = format!("the request body is larger than {limit} bytes")
            }
            ApiError::WrongRegion { region, base_url } => {
                problem.detail = format!(
                    "this workspace lives in region {region}, which this server does not serve"
                );
                problem.region = Some(region.as_str());
                problem.base_url = base_url;
            }
            ApiError::Invalid { field, detail, .. } => {
                problem.detail = detail;
                problem.field = field;
            }
            ApiError::IdentityVerificationFailed { reason } => {
                problem.detail = "the user's identity could not be verified".into();
                problem.reason = Some(reason);
            }
            ApiError::UnknownWorkspace => problem.detail = "no such workspace".into(),
            ApiError::SecondFactorRequired {
                passkey_login_id,
                passkey_challenge,
            } => {
                problem.detail = "this account has two-factor authentication: send otp, or answer the passkey challenge".into();
                problem.passkey_login_id = passkey_login_id;
                problem.passkey_challenge = passkey_challenge;
            }
            ApiError::RateLimited { retry_after_s } => {
                problem.detail = format!("too many requests; retry in {retry_after_s} s");
                problem.retry_after = Some(retry_after_s);
                retry_after_header = Some(retry_after_s);
            }
            ApiError::Internal { correlation_id } => {
                problem.detail = "an internal error occurred; quote the correlation id".into();
                problem.correlation_id = Some(correlation_id);
            }
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after_header {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
