//! A workspace's webhook subscriptions. They need `security.manage` (no permission of their
//! own: a subscription sends workspace data to an outside party, a security decision of the
//! same weight as the workspace's other security settings). A subscription's URL must be
//! https (plain http only with `[outbound] allow_insecure_http`) and its host a sub-processor
//! registered for the workspace's region (`422 host_not_a_subprocessor`); the signing secret is
//! in the creation's response only. See docs/subprocessors.md.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use interlock_domain::{ActivityType, Target, WebhookId};
use interlock_storage::cell::Webhook;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::authz::{Allowed, perm};
use crate::dto::{Deleted, ListOf};
use crate::error::ApiError;
use crate::extract::{Json, Path, parse_id};

/// A subscription to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where events are POSTed: https, its host a registered sub-processor's.
    pub url: String,
    /// Any of `contact.created`, `subprocessors.changed`, `workspace.deletion_scheduled`.
    pub events: Vec<String>,
}

/// A subscription (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    /// `wh_…`
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<Webhook> for WebhookOut {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url,
            events: w.events,
            created_at: w.created_at.div_euclid(1000),
        }
    }
}

/// A new subscription with its signing secret, shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: i64,
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks). Shown once.
    pub secret: String,
}

/// Subscribe a URL to events. Requests are signed (Standard Webhooks headers `webhook-id`,
/// `webhook-timestamp`, `webhook-signature`).
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    extensions(("x-permission" = json!("security.manage"))),
    request_body = CreateWebhookRequest,
    responses((status = 201, body = CreatedWebhook),
        (status = 422, description = "`invalid_url`, `insecure_url`, `host_not_a_subprocessor`, `invalid_events`, `unknown_event`, `too_many_webhooks`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn create(
    auth: Allowed<perm::SecurityManage>,
    State(state): State<Arc<AppState>>,
    Json(req): Json<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let (_, host) = crate::outbox::destination(&req.url, state.outbound.allow_insecure_http)
        .map_err(|code| match code {
            "insecure_scheme" => ApiError::Invalid {
                code: "insecure_url",
                field: Some("url".into()),
                detail: "the URL must use https://".into(),
            },
            _ => ApiError::Invalid {
                code: "invalid_url",
                field: Some("url".into()),
                detail: "the URL must be absolute, without credentials, at most 2048 bytes".into(),
            },
        })?;
    let (hook, secret) = auth
        .cell
        .create_webhook(
            &auth.workspace,
            &req.url,
            &host,
            &req.events,
            &auth.activity(ActivityType::WebhookCreated, Target::kind("webhook")),
        )
        .await?;
    let out = WebhookOut::from(hook);
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            id: out.id,
            url: out.url,
            events: out.events,
            created_at: out.created_at,
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// The workspace's subscriptions (without secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    extensions(("x-permission" = json!("security.manage"))),
    responses((status = 200, body = ListOf<WebhookOut>)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn list(
    auth: Allowed<perm::SecurityManage>,
) -> Result<Json<ListOf<WebhookOut>>, ApiError> {
    let all = auth.cell.list_webhooks(&auth.workspace).await?;
    Ok(Json(ListOf::new(
        all.into_iter().map(WebhookOut::from).collect(),
        None,
    )))
}

/// Delete a subscription; its pending deliveries are cancelled.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    extensions(("x-permission" = json!("security.manage"))),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = Deleted), (status = 404, description = "no such webhook")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn delete(
    auth: Allowed<perm::SecurityManage>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_id(&id, WebhookId::parse)?;
    auth.cell
        .delete_webhook(
            &auth.workspace,
            &id,
            &auth.activity(
                ActivityType::WebhookDeleted,
                Target::new("webhook", id.as_str()),
            ),
        )
        .await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}
