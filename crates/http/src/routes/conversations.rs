//! Conversations, their parts (messages) and attachments.

use axum::body::Body as HttpBody;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use interlock_domain::{
    ActivityType, AttachmentId, AttachmentName, Author, AuthorType, Body, ContactId,
    ConversationId, Target,
};

use crate::authz::{Allowed, perm};
use crate::dto::{
    AttachmentOut, ConversationOut, ConversationSearch, CreateConversationRequest,
    CreatePartRequest, Deleted, ListOf, PageParams, PartOut, UploadParams, cursor,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query, RawBody, parse_id};

/// Start a conversation for a contact with a first message from them.
#[utoipa::path(post, path = "/v1/conversations", tag = "conversations",
    extensions(("x-permission" = json!("conversations.reply"))),
    request_body = CreateConversationRequest,
    responses((status = 201, body = ConversationOut), (status = 404, description = "no such contact")),
    security(("workspace_token" = [])))]
pub async fn create(
    auth: Allowed<perm::ConversationsReply>,
    Json(req): Json<CreateConversationRequest>,
) -> Result<(StatusCode, Json<ConversationOut>), ApiError> {
    let contact = ContactId::parse(&req.contact_id)?;
    let body = Body::parse(&req.body)?;
    let c = auth
        .cell
        .create_conversation(&auth.workspace, &contact, &body)
        .await?;
    Ok((StatusCode::CREATED, Json(ConversationOut::with_parts(c))))
}

/// Get a conversation with all its parts.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations",
    extensions(("x-permission" = json!("conversations.read"))),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = ConversationOut), (status = 404, description = "no such conversation")),
    security(("workspace_token" = [])))]
pub async fn get(
    auth: Allowed<perm::ConversationsRead>,
    Path(id): Path<String>,
) -> Result<Json<ConversationOut>, ApiError> {
    let id = parse_id(&id, ConversationId::parse)?;
    let c = auth.cell.get_conversation(&auth.workspace, &id).await?;
    Ok(Json(ConversationOut::with_parts(c)))
}

/// Delete a conversation with its messages and attachments (the activity log records it).
#[utoipa::path(delete, path = "/v1/conversations/{id}", tag = "conversations",
    extensions(("x-permission" = json!("conversations.delete"))),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = Deleted), (status = 404, description = "no such conversation")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn delete(
    auth: Allowed<perm::ConversationsDelete>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_id(&id, ConversationId::parse)?;
    let act = auth.activity(
        ActivityType::ConversationDeleted,
        Target::new("conversation", id.as_str()),
    );
    auth.cell
        .delete_conversation(&auth.workspace, &id, &act)
        .await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}

/// List conversations, optionally only a contact's.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations",
    extensions(("x-permission" = json!("conversations.read"))),
    params(ConversationSearch),
    responses((status = 200, body = ListOf<ConversationOut>)),
    security(("workspace_token" = [])))]
pub async fn list(
    auth: Allowed<perm::ConversationsRead>,
    Query(q): Query<ConversationSearch>,
) -> Result<Json<ListOf<ConversationOut>>, ApiError> {
    let contact = q
        .contact_id
        .as_deref()
        .map(ContactId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", e.message))?;
    let page = PageParams {
        cursor: q.cursor,
        per_page: q.per_page,
    };
    let got = auth
        .cell
        .list_conversations(
            &auth.workspace,
            contact.as_ref(),
            page.after(ConversationId::parse)?.as_ref(),
            page.limit()?,
        )
        .await?;
    Ok(Json(ListOf::new(
        got.items.iter().map(ConversationOut::summary).collect(),
        cursor(got.next_after),
    )))
}

/// Add a message to a conversation.
#[utoipa::path(post, path = "/v1/conversations/{id}/parts", tag = "conversations",
    extensions(("x-permission" = json!("conversations.reply"))),
    params(("id" = String, Path, description = "conversation id")),
    request_body = CreatePartRequest,
    responses((status = 201, body = PartOut), (status = 404, description = "no such conversation")),
    security(("workspace_token" = [])))]
pub async fn add_part(
    auth: Allowed<perm::ConversationsReply>,
    Path(id): Path<String>,
    Json(req): Json<CreatePartRequest>,
) -> Result<(StatusCode, Json<PartOut>), ApiError> {
    let id = parse_id(&id, ConversationId::parse)?;
    let author = Author::parse(AuthorType::parse(&req.author.kind)?, &req.author.id)?;
    let body = Body::parse(&req.body)?;
    let p = auth
        .cell
        .add_part(&auth.workspace, &id, &author, &body)
        .await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

fn content_type_of(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return Ok("application/octet-stream".into());
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid_content_type", "Content-Type is not valid"))?;
    if s.is_empty() || s.len() > 255 || !s.contains('/') {
        return Err(ApiError::bad_request(
            "invalid_content_type",
            "Content-Type must be a media type such as image/png",
        ));
    }
    Ok(s.to_owned())
}

/// Upload an attachment: the request body is the file; `filename` names it.
#[utoipa::path(post, path = "/v1/conversations/{id}/attachments", tag = "attachments",
    extensions(("x-permission" = json!("conversations.reply"))),
    params(("id" = String, Path, description = "conversation id"), UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = AttachmentOut), (status = 413, description = "too large")),
    security(("workspace_token" = [])))]
pub async fn upload(
    auth: Allowed<perm::ConversationsReply>,
    Path(id): Path<String>,
    Query(q): Query<UploadParams>,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> Result<(StatusCode, Json<AttachmentOut>), ApiError> {
    let id = parse_id(&id, ConversationId::parse)?;
    let name = AttachmentName::parse(&q.filename)?;
    let content_type = content_type_of(&headers)?;
    if bytes.is_empty() {
        return Err(ApiError::Invalid {
            code: "empty",
            field: Some("body".into()),
            detail: "an attachment must not be empty".into(),
        });
    }
    let a = auth
        .cell
        .add_attachment(&auth.workspace, &id, &name, &content_type, &bytes)
        .await?;
    Ok((StatusCode::CREATED, Json(a.into())))
}

/// List a conversation's attachments.
#[utoipa::path(get, path = "/v1/conversations/{id}/attachments", tag = "attachments",
    extensions(("x-permission" = json!("conversations.read"))),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = ListOf<AttachmentOut>)),
    security(("workspace_token" = [])))]
pub async fn list_attachments(
    auth: Allowed<perm::ConversationsRead>,
    Path(id): Path<String>,
) -> Result<Json<ListOf<AttachmentOut>>, ApiError> {
    let id = parse_id(&id, ConversationId::parse)?;
    let items = auth.cell.list_attachments(&auth.workspace, &id).await?;
    Ok(Json(ListOf::new(
        items.into_iter().map(AttachmentOut::from).collect(),
        None,
    )))
}

/// Download an attachment's bytes. Always served as `application/octet-stream` with
/// `Content-Disposition: attachment`, so an uploaded page can never run in a browser.
#[utoipa::path(get, path = "/v1/conversations/{id}/attachments/{attachment_id}", tag = "attachments",
    extensions(("x-permission" = json!("conversations.read"))),
    params(("id" = String, Path, description = "conversation id"), ("attachment_id" = String, Path, description = "attachment id")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, description = "no such attachment")),
    security(("workspace_token" = [])))]
pub async fn download(
    auth: Allowed<perm::ConversationsRead>,
    Path((id, attachment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, ConversationId::parse)?;
    let attachment = parse_id(&attachment, AttachmentId::parse)?;
    let (meta, bytes) = auth
        .cell
        .get_attachment(&auth.workspace, &id, &attachment)
        .await?;
    let mut resp = HttpBody::from(bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // RFC 6266/8187: the name percent-encoded, so no header injection whatever it holds.
    let encoded: String = meta
        .filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
