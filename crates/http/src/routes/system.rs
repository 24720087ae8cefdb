//! Health, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::dto::Health;
use crate::error::ApiError;
use crate::extract::Json;

/// Liveness and store reachability of every served region.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health), (status = 503, description = "a region's store is unreachable")))]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let mut regions = Vec::new();
    for (region, cell) in &state.cells {
        if cell.ping().await.is_err() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    regions: vec![region.to_string()],
                }),
            )
                .into_response();
        }
        regions.push(region.to_string());
    }
    Json(Health {
        status: "ok",
        regions,
    })
    .into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    for cell in state.cells.values() {
        let stats = &cell.writer().stats;
        metrics::gauge!("interlock_store_units_per_commit_avg", "region" => cell.region().as_str())
            .set(stats.units_per_commit());
    }
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// The OpenAPI 3.1 document, generated from the code.
pub async fn openapi() -> Result<Response, ApiError> {
    let doc = crate::openapi::document();
    let body = doc.to_json().map_err(|e| ApiError::internal(&e))?;
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
