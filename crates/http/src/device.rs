//! Trusted staff devices at the request layer (docs/staff-devices.md).
//!
//! The TLS layer has already refused any client certificate that does not chain to a served
//! region's device CA and put the verified one on the request as a
//! [`ClientCertificate`](crate::tls::ClientCertificate). [`TrustedDevice`] is the proof that the
//! request also comes from a device the region's store knows and has neither revoked nor seen
//! expire; staff routes take it as an argument, so a handler that forgets the check does not
//! compile. Refusals are 401 with stable codes: `device_certificate_required`,
//! `device_unknown`, `device_revoked`, `device_expired`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use interlock_storage::Cell;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::tls::ClientCertificate;

/// A request from a registered, unrevoked, unexpired staff device.
#[derive(Debug, Clone)]
pub struct TrustedDevice {
    /// The device certificate's serial (lower-case hex).
    pub serial: String,
    /// The staff member the certificate was issued to (`sf_…`).
    pub staff_id: String,
    /// The device's name, as given at issue.
    pub name: String,
    /// The certificate's expiry, in milliseconds since the Unix epoch.
    pub expires_at: i64,
    /// The cell of the region whose store holds the device (staff are region principals).
    pub cell: Arc<Cell>,
}

const CERTIFICATE_REQUIRED: ApiError = ApiError::Unauthorized {
    code: "device_certificate_required",
    detail: "staff endpoints need a TLS client certificate issued by the region's device CA",
};
const UNKNOWN: ApiError = ApiError::Unauthorized {
    code: "device_unknown",
    detail: "this device certificate is not registered",
};
const REVOKED: ApiError = ApiError::Unauthorized {
    code: "device_revoked",
    detail: "this device certificate has been revoked",
};
const EXPIRED: ApiError = ApiError::Unauthorized {
    code: "device_expired",
    detail: "this device certificate has expired",
};

impl FromRequestParts<Arc<AppState>> for TrustedDevice {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let certificate = parts
            .extensions
            .get::<ClientCertificate>()
            .ok_or(CERTIFICATE_REQUIRED)?;
        let now = interlock_storage::now_ms();
        // A process serves few regions; the fingerprint is unique and is looked up in each.
        for cell in state.cells.values() {
            let Some(device) = cell
                .staff_device_by_fingerprint(&certificate.fingerprint)
                .await?
            else {
                continue;
            };
            if device.revoked_at.is_some() {
                tracing::info!(serial = %device.serial, "revoked staff device refused");
                return Err(REVOKED);
            }
            if now >= device.expires_at {
                tracing::info!(serial = %device.serial, "expired staff device refused");
                return Err(EXPIRED);
            }
            return Ok(TrustedDevice {
                serial: device.serial,
                staff_id: device.staff_id,
                name: device.name,
                expires_at: device.expires_at,
                cell: cell.clone(),
            });
        }
        tracing::info!("unregistered staff device certificate refused");
        Err(UNKNOWN)
    }
}

/// The device a request came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceInfo {
    pub serial: String,
    pub staff_id: String,
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// `GET /v1/staff/device`: which trusted device this connection presents (a check for staff
/// tooling, and the simplest route behind [`TrustedDevice`]).
#[utoipa::path(get, path = "/v1/staff/device", tag = "staff",
    responses(
        (status = 200, body = DeviceInfo),
        (status = 401, description = "no client certificate, or an unknown, revoked or expired device"),
    ))]
pub async fn current(device: TrustedDevice) -> Json<DeviceInfo> {
    Json(DeviceInfo {
        serial: device.serial,
        staff_id: device.staff_id,
        name: device.name,
        expires_at: device.expires_at,
    })
}

/// The trusted-device routes, merged into the API router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/staff/device", get(current))
}
