//! Events: things a contact did, with metadata.

use axum::http::StatusCode;
use interlock_domain::{ContactId, EventId, EventMetadata, EventName, NewEvent};

use crate::authz::{Allowed, perm};
use crate::dto::{CreateEventRequest, EventOut, EventSearch, ListOf, PageParams, cursor};
use crate::error::ApiError;
use crate::extract::{Json, Query};

/// Record an event about a contact.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    extensions(("x-permission" = json!("contacts.edit"))),
    request_body = CreateEventRequest,
    responses((status = 201, body = EventOut), (status = 404, description = "no such contact")),
    security(("workspace_token" = [])))]
pub async fn create(
    auth: Allowed<perm::ContactsEdit>,
    Json(req): Json<CreateEventRequest>,
) -> Result<(StatusCode, Json<EventOut>), ApiError> {
    let input = NewEvent {
        contact_id: ContactId::parse(&req.contact_id)?,
        name: EventName::parse(&req.name)?,
        metadata: EventMetadata::parse(req.metadata.unwrap_or_default())?,
    };
    let e = auth.cell.create_event(&auth.workspace, input).await?;
    Ok((StatusCode::CREATED, Json(e.into())))
}

/// List a contact's events.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    extensions(("x-permission" = json!("contacts.read"))),
    params(EventSearch),
    responses((status = 200, body = ListOf<EventOut>)),
    security(("workspace_token" = [])))]
pub async fn list(
    auth: Allowed<perm::ContactsRead>,
    Query(q): Query<EventSearch>,
) -> Result<Json<ListOf<EventOut>>, ApiError> {
    let contact = ContactId::parse(&q.contact_id)
        .map_err(|e| ApiError::bad_request("invalid_query", e.message))?;
    let page = PageParams {
        cursor: q.cursor,
        per_page: q.per_page,
    };
    let got = auth
        .cell
        .list_events(
            &auth.workspace,
            &contact,
            page.after(EventId::parse)?.as_ref(),
            page.limit()?,
        )
        .await?;
    Ok(Json(ListOf::new(
        got.items.into_iter().map(EventOut::from).collect(),
        cursor(got.next_after),
    )))
}
