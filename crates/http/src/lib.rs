//! Interlock's HTTPS API.
//!
//! `app(state)` builds the router that tests drive directly; `server::start` adds TLS, opens
//! the region cells and listens. Invariants:
//! - Handlers reach customer data only through a [`extract::WorkspaceAuth`], which exists only
//!   after a workspace token was verified, and only through that workspace's own cell.
//! - Every error is problem+json with a stable code; internal details go to the log with a
//!   correlation id, never to the client.
//! - Logs carry method, route template, status and timing: never bodies, query strings or
//!   tokens.

pub mod activity_tasks;
pub mod authz;
pub mod device;
pub mod dto;
pub mod error;
pub mod extract;
pub mod messenger;
pub mod openapi;
pub mod outbox;
pub mod passkeys;
pub mod routes;
pub mod server;
pub mod sinks;
pub mod staff_settings;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use interlock_crypto::TokenHash;
use interlock_domain::Region;
use interlock_storage::Cell;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::ApiError;
pub use crate::messenger::{MessengerLimits, RateLimits};
use crate::routes::{
    access, activity as activity_routes, auth, contacts, conversations, datamap, datarequests,
    events, messenger as messenger_routes, operator, passkeys as passkey_routes,
    retention as retention_routes, subprocessors, system, teammates, webhooks,
    workspace as workspace_routes,
};

/// Size limits on request bodies, and the messenger's abuse limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// JSON bodies (default 1 MiB).
    pub body_bytes: usize,
    /// Attachment uploads (default 25 MiB).
    pub attachment_bytes: usize,
    pub messenger: MessengerLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1024 * 1024,
            attachment_bytes: 25 * 1024 * 1024,
            messenger: MessengerLimits::default(),
        }
    }
}

/// Everything a handler may reach.
#[derive(Debug)]
pub struct AppState {
    /// The cells of the regions this process serves.
    pub cells: BTreeMap<Region, Arc<Cell>>,
    /// Public base URLs of every region, for 421 answers.
    pub region_urls: BTreeMap<Region, String>,
    pub operator_token_hash: TokenHash,
    pub metrics: PrometheusHandle,
    pub limits: Limits,
    /// The messenger's rate limiters (boots and messages, per address and per workspace).
    pub rate: RateLimits,
    /// The WebAuthn relying party (passkeys), bound to the public origin.
    pub webauthn: Arc<webauthn_rs::Webauthn>,
    /// Outbound deliveries' settings (the URL policy webhook subscriptions are checked with).
    pub outbound: crate::outbox::OutboundSettings,
    /// Grant limits and the access-review schedule.
    pub staff: crate::staff_settings::StaffSettings,
    /// Time for grants and reviews (the system clock; tests move it).
    pub clock: Arc<dyn interlock_storage::Clock>,
}

impl AppState {
    /// The cell of a region, or 421 naming where that region is served.
    pub fn cell(&self, region: Region) -> Result<Arc<Cell>, ApiError> {
        self.cells
            .get(&region)
            .cloned()
            .ok_or_else(|| ApiError::WrongRegion {
                region,
                base_url: self.region_urls.get(&region).cloned(),
            })
    }
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic payload may hold data; it is not logged or returned.
    ApiError::internal(&"handler panicked").into_response()
}

/// Request metrics and one structured log line per request.
async fn observe(State(_state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!("interlock_http_requests_total",
        "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string())
    .increment(1);
    metrics::histogram!("interlock_http_request_duration_seconds",
        "method" => method.to_string(), "route" => route.clone())
    .record(elapsed.as_secs_f64());
    tracing::debug!(method = %method, route = %route, status, latency_us = elapsed.as_micros() as u64, "request");
    resp
}

/// The router with all routes and layers.
pub fn app(state: Arc<AppState>) -> Router {
    let routes = api_routes(state.limits);
    layered(routes, state)
}

/// Every API route with its body limit, without the shared layers.
fn api_routes(limits: Limits) -> Router<Arc<AppState>> {
    let uploads = Router::new()
        .route(
            "/v1/conversations/{id}/attachments",
            post(conversations::upload).get(conversations::list_attachments),
        )
        .layer(DefaultBodyLimit::max(limits.attachment_bytes));
    Router::new()
        .route(
            "/v1/operator/workspaces",
            post(operator::create_workspace).get(operator::list_workspaces),
        )
        .route(
            "/v1/operator/workspaces/{id}",
            axum::routing::delete(workspace_routes::delete_by_operator),
        )
        .route(
            "/v1/workspace",
            axum::routing::delete(workspace_routes::delete_own),
        )
        .route(
            "/v1/data-requests",
            post(datarequests::create).get(datarequests::list),
        )
        .route("/v1/data-requests/{id}", get(datarequests::get))
        .route("/v1/data-requests/{id}/archive", get(datarequests::archive))
        .route("/v1/contacts", post(contacts::create).get(contacts::list))
        .route(
            "/v1/contacts/{id}",
            get(contacts::get)
                .patch(contacts::update)
                .delete(contacts::delete),
        )
        .route(
            "/v1/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route(
            "/v1/conversations/{id}",
            get(conversations::get).delete(conversations::delete),
        )
        .route(
            "/v1/conversations/{id}/parts",
            post(conversations::add_part),
        )
        .route(
            "/v1/conversations/{id}/attachments/{attachment_id}",
            get(conversations::download),
        )
        .route("/v1/events", post(events::create).get(events::list))
        .route(
            "/v1/messenger/secrets",
            post(messenger_routes::create_secret).get(messenger_routes::list_secrets),
        )
        .route(
            "/v1/messenger/secrets/{id}",
            axum::routing::delete(messenger_routes::delete_secret),
        )
        .route(
            "/v1/workspace/messenger",
            get(messenger_routes::get_settings).put(messenger_routes::put_settings),
        )
        .route("/v1/messenger/boot", post(messenger_routes::boot))
        .route(
            "/v1/api-tokens",
            post(access::create_token).get(access::list_tokens),
        )
        .route(
            "/v1/api-tokens/{id}",
            axum::routing::delete(access::revoke_token),
        )
        .route("/v1/subprocessors", get(subprocessors::list))
        .route("/v1/operator/subprocessors", post(subprocessors::create))
        .route(
            "/v1/operator/subprocessors/{id}",
            axum::routing::put(subprocessors::replace).delete(subprocessors::delete),
        )
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/v1/permissions", get(access::permissions))
        .route("/v1/data-map", get(datamap::get))
        .route(
            "/v1/teammates",
            post(teammates::create).get(teammates::list),
        )
        .route(
            "/v1/teammates/{id}",
            axum::routing::patch(teammates::update).delete(teammates::remove),
        )
        .route(
            "/v1/workspace/retention",
            get(retention_routes::get).put(retention_routes::put),
        )
        .route(
            "/v1/workspace/security",
            get(teammates::get_security).put(teammates::put_security),
        )
        .route("/v1/auth/invitations/accept", post(auth::accept_invitation))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/sessions", get(auth::list_sessions))
        .route(
            "/v1/auth/sessions/{id}",
            axum::routing::delete(auth::revoke_session),
        )
        .route(
            "/v1/auth/two-factor/totp",
            post(auth::enrol_totp).delete(auth::disable_totp),
        )
        .route("/v1/auth/two-factor/totp/confirm", post(auth::confirm_totp))
        .route(
            "/v1/auth/two-factor/passkeys/registrations",
            post(passkey_routes::start_registration),
        )
        .route(
            "/v1/auth/two-factor/passkeys",
            post(passkey_routes::finish_registration).get(passkey_routes::list),
        )
        .route(
            "/v1/auth/two-factor/passkeys/{id}",
            axum::routing::delete(passkey_routes::remove),
        )
        .route("/v1/auth/login/passkey", post(passkey_routes::login))
        .route("/v1/roles", get(access::roles).post(access::create_role))
        .route(
            "/v1/roles/{id}",
            axum::routing::put(access::update_role).delete(access::delete_role),
        )
        .route(
            "/v1/messenger/conversations",
            post(messenger_routes::start_conversation).get(messenger_routes::list_conversations),
        )
        .route(
            "/v1/messenger/conversations/{id}",
            get(messenger_routes::get_conversation),
        )
        .route(
            "/v1/messenger/conversations/{id}/replies",
            post(messenger_routes::reply),
        )
        .route(
            "/v1/activity-log-event-types",
            get(activity_routes::event_types),
        )
        .route(
            "/v1/activity-logs/public-key",
            get(activity_routes::public_key),
        )
        .route("/v1/activity-logs", get(activity_routes::list))
        .route("/v1/activity-logs/export", get(activity_routes::export))
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .route("/v1/openapi.json", get(system::openapi))
        .merge(crate::device::routes())
        .merge(crate::routes::staff::routes())
        .merge(crate::routes::staff_passkeys::routes())
        .merge(crate::routes::reviews::routes())
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .merge(uploads)
}

/// The layers every response goes through: problem+json fallbacks, request metrics and logs,
/// panic catcher, timeout, and the security headers (HSTS, nosniff, no-store). Public so the
/// ingest benchmark's HTTPS floor runs the very same stack around an empty handler.
pub fn layered(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(60),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(state)
}
