//! Contacts: users and visitors, the data subjects.

use axum::http::StatusCode;
use interlock_domain::{
    ContactId, ContactPatch, ContactRole, CustomAttributes, Email, ExternalId, NewContact,
    PersonName, Phone,
};

use crate::authz::{Allowed, perm};
use crate::dto::{
    ContactOut, ContactSearch, CreateContactRequest, ListOf, PageParams, UpdateContactRequest,
    cursor,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query, parse_id};

fn opt<T>(
    v: Option<String>,
    parse: fn(&str) -> Result<T, interlock_domain::DomainError>,
) -> Result<Option<T>, ApiError> {
    Ok(v.map(|s| parse(&s)).transpose()?)
}

fn opt_opt<T>(
    v: Option<Option<String>>,
    parse: fn(&str) -> Result<T, interlock_domain::DomainError>,
) -> Result<Option<Option<T>>, ApiError> {
    Ok(match v {
        None => None,
        Some(None) => Some(None),
        Some(Some(s)) => Some(Some(parse(&s)?)),
    })
}

/// Delete a contact at once, with its conversations, messages, events and attachments; its
/// encryption keys are destroyed in the same transaction, so copies of its data anywhere are
/// unreadable. The activity log records the deletion by the contact's pseudonymous id.
#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts",
    extensions(("x-permission" = json!("contacts.delete"))),
    params(("id" = String, Path, description = "contact id")),
    responses((status = 200, body = crate::routes::datarequests::ContactErased), (status = 404, description = "no such contact")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn delete(
    auth: Allowed<perm::ContactsDelete>,
    Path(id): Path<String>,
) -> Result<Json<crate::routes::datarequests::ContactErased>, ApiError> {
    let id = parse_id(&id, ContactId::parse)?;
    let e = auth
        .cell
        .erase_contact(&auth.workspace, &id, &auth.actor)
        .await?;
    Ok(Json(crate::routes::datarequests::ContactErased {
        id: id.to_string(),
        object: "contact",
        deleted: true,
        data_request_id: e.request.id.to_string(),
        receipt: e.receipt,
    }))
}

/// Create a contact.
#[utoipa::path(post, path = "/v1/contacts", tag = "contacts",
    extensions(("x-permission" = json!("contacts.edit"))),
    request_body = CreateContactRequest,
    responses((status = 201, body = ContactOut), (status = 409, description = "external_id taken"), (status = 422, description = "invalid field")),
    security(("workspace_token" = [])))]
pub async fn create(
    auth: Allowed<perm::ContactsEdit>,
    Json(req): Json<CreateContactRequest>,
) -> Result<(StatusCode, Json<ContactOut>), ApiError> {
    let input = NewContact {
        role: match req.role.as_deref() {
            None => ContactRole::User,
            Some(r) => ContactRole::parse(r)?,
        },
        external_id: opt(req.external_id, ExternalId::parse)?,
        email: opt(req.email, Email::parse)?,
        name: opt(req.name, PersonName::parse)?,
        phone: opt(req.phone, Phone::parse)?,
        custom_attributes: CustomAttributes::parse(req.custom_attributes.unwrap_or_default())?,
    }
    .check()?;
    let c = auth.cell.create_contact(&auth.workspace, input).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// Get a contact.
#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts",
    extensions(("x-permission" = json!("contacts.read"))),
    params(("id" = String, Path, description = "contact id")),
    responses((status = 200, body = ContactOut), (status = 404, description = "no such contact")),
    security(("workspace_token" = [])))]
pub async fn get(
    auth: Allowed<perm::ContactsRead>,
    Path(id): Path<String>,
) -> Result<Json<ContactOut>, ApiError> {
    let id = parse_id(&id, ContactId::parse)?;
    let c = auth.cell.get_contact(&auth.workspace, &id).await?;
    Ok(Json(c.into()))
}

/// Update a contact. Absent fields stay; `null` clears; custom attributes merge.
#[utoipa::path(patch, path = "/v1/contacts/{id}", tag = "contacts",
    extensions(("x-permission" = json!("contacts.edit"))),
    params(("id" = String, Path, description = "contact id")),
    request_body = UpdateContactRequest,
    responses((status = 200, body = ContactOut), (status = 404, description = "no such contact")),
    security(("workspace_token" = [])))]
pub async fn update(
    auth: Allowed<perm::ContactsEdit>,
    Path(id): Path<String>,
    Json(req): Json<UpdateContactRequest>,
) -> Result<Json<ContactOut>, ApiError> {
    let id = parse_id(&id, ContactId::parse)?;
    let patch = ContactPatch {
        role: req.role.as_deref().map(ContactRole::parse).transpose()?,
        external_id: opt_opt(req.external_id, ExternalId::parse)?,
        email: opt_opt(req.email, Email::parse)?,
        name: opt_opt(req.name, PersonName::parse)?,
        phone: opt_opt(req.phone, Phone::parse)?,
        custom_attributes: req.custom_attributes,
    };
    let c = auth
        .cell
        .update_contact(&auth.workspace, &id, patch)
        .await?;
    Ok(Json(c.into()))
}

/// List contacts, or find them by exact `email` or `external_id`.
#[utoipa::path(get, path = "/v1/contacts", tag = "contacts",
    extensions(("x-permission" = json!("contacts.read"))),
    params(ContactSearch),
    responses((status = 200, body = ListOf<ContactOut>)),
    security(("workspace_token" = [])))]
pub async fn list(
    auth: Allowed<perm::ContactsRead>,
    Query(q): Query<ContactSearch>,
) -> Result<Json<ListOf<ContactOut>>, ApiError> {
    if q.email.is_some() || q.external_id.is_some() {
        let email = opt(q.email, Email::parse)?;
        let ext = opt(q.external_id, ExternalId::parse)?;
        let found = auth
            .cell
            .find_contacts(&auth.workspace, email.as_ref(), ext.as_ref())
            .await?;
        return Ok(Json(ListOf::new(
            found.into_iter().map(ContactOut::from).collect(),
            None,
        )));
    }
    let page = PageParams {
        cursor: q.cursor,
        per_page: q.per_page,
    };
    let got = auth
        .cell
        .list_contacts(
            &auth.workspace,
            page.after(ContactId::parse)?.as_ref(),
            page.limit()?,
        )
        .await?;
    Ok(Json(ListOf::new(
        got.items.into_iter().map(ContactOut::from).collect(),
        cursor(got.next_after),
    )))
}
