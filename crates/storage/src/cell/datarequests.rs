//! Data subject requests: access (GDPR Art. 15/20) and erasure (Art. 17).
//!
//! Invariants:
//! - An erasure is one transaction: the subject's keys are destroyed first (every ciphertext
//!   under them, wherever a copy lies, is unreadable from the commit on), then its rows, its
//!   blind-index entries and its access archives' keys go, and the request, its signed receipt,
//!   the deletion notices to sub-processors and the activity entries are written. Files
//!   (attachments, archives) are removed after the commit; until they are, the request stays
//!   `purging` and [`Cell::resume_erasures`] finishes it after a crash. The erasure ledger is
//!   appended before the commit (write-ahead), so a restored backup forgets the subject too.
//! - A repeated erasure of the same contact returns the first one's receipt.
//! - An access archive is sealed in 1 MiB chunks under a random key that is stored only
//!   wrapped by the workspace key; the archive is downloadable by the principal that asked for
//!   it for [`ACCESS_ARCHIVE_TTL_MS`], then its key and file are deleted.
//! - The subject is named only by its pseudonymous contact id.

use std::io::Write as _;

use interlock_crypto::{Aad, AeadKey, KeyMaterial, SignedDocument};
use interlock_domain::{
    ActivityType, Actor, AttachmentId, ContactId, DataRequestId, Email, ExternalId, NewActivity,
    ReceiptId, Target, WorkspaceId,
};
use serde_json::{Map, Value, json};
use sqlx::any::AnyRow;

use super::{Cell, col, parse_id, ws_key_id};
use crate::db::{Arg, Stmt};
use crate::records::Page;
use crate::{StoreError, datamap, now_ms};

/// How long an access archive can be downloaded: 7 days.
pub const ACCESS_ARCHIVE_TTL_MS: i64 = 7 * 86_400_000;
/// Plaintext bytes per sealed archive chunk.
const CHUNK: usize = 1 << 20;

/// How a request names its subject.
#[derive(Debug, Clone)]
pub enum SubjectRef {
    Id(ContactId),
    Email(Email),
    ExternalId(ExternalId),
}

/// A data subject request's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataRequestKind {
    Access,
    Erasure,
}

impl DataRequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Erasure => "erasure",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "access" => Ok(Self::Access),
            "erasure" => Ok(Self::Erasure),
            _ => Err(StoreError::Integrity(
                interlock_crypto::CryptoError::Malformed,
            )),
        }
    }
}

/// A stored data subject request.
#[derive(Debug, Clone)]
pub struct DataRequest {
    pub id: DataRequestId,
    pub kind: DataRequestKind,
    /// `completed`, `purging` (an erasure whose files are still being removed), `expired` (an
    /// access archive past its 7 days) or `erased` (an access archive of a subject erased
    /// since).
    pub status: String,
    pub subject_id: String,
    /// Who asked (`teammate:tm_…` or `api_token:tk_…`).
    pub requested_by: Option<String>,
    pub receipt_id: Option<String>,
    pub archive_bytes: Option<i64>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// An erasure's outcome: the request, its signed receipt and what went.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub request: DataRequest,
    pub receipt: SignedDocument,
    /// True when the subject had been erased already: this is the first erasure's receipt.
    pub repeated: bool,
}

/// `teammate:tm_…` / `api_token:tk_…` / `system`.
pub fn principal_of(actor: &Actor) -> String {
    match &actor.id {
        Some(id) => format!("{}:{id}", actor.kind.as_str()),
        None => actor.kind.as_str().to_owned(),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn request_from(row: &AnyRow) -> Result<DataRequest, StoreError> {
    Ok(DataRequest {
        id: parse_id(DataRequestId::parse(&col::<String>(row, "id")?))?,
        kind: DataRequestKind::parse(&col::<String>(row, "type")?)?,
        status: col(row, "status")?,
        subject_id: col(row, "subject_id")?,
        requested_by: col(row, "requested_by")?,
        receipt_id: col(row, "receipt_id")?,
        archive_bytes: col(row, "archive_bytes")?,
        created_at: col(row, "created_at")?,
        completed_at: col(row, "completed_at")?,
        expires_at: col(row, "expires_at")?,
    })
}

/// A value labelled with its data map category.
fn labelled(table: &str, column: &str, value: Value) -> Value {
    let category = datamap::collection(table)
        .and_then(|c| c.field(column))
        .map_or("system.operations", |f| f.data_category);
    json!({"value": value, "data_category": category})
}

fn archive_aad(ws: &WorkspaceId, id: &DataRequestId, index: u64, last: bool) -> Aad {
    Aad::new(
        ws.as_str(),
        "data_requests",
        id.as_str(),
        "archive",
        &format!("chunk/{index}/{}", if last { "last" } else { "more" }),
    )
}

fn archive_key_aad(ws: &WorkspaceId, id: &DataRequestId, version: i64) -> Aad {
    Aad::new(
        ws.as_str(),
        "data_requests",
        id.as_str(),
        "archive_key",
        &ws_key_id(version),
    )
}

/// Seal `plain` as length-framed chunks; the last is marked so truncation is detected.
fn seal_chunks(
    key: &AeadKey,
    ws: &WorkspaceId,
    id: &DataRequestId,
    plain: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let chunks: Vec<&[u8]> = if plain.is_empty() {
        vec![&[][..]]
    } else {
        plain.chunks(CHUNK).collect()
    };
    let mut out = Vec::with_capacity(plain.len() + chunks.len() * 40);
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        let sealed = key.seal(&archive_aad(ws, id, i as u64, i + 1 == n), c)?;
        out.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
        out.extend_from_slice(&sealed);
    }
    Ok(out)
}

fn open_chunks(
    key: &AeadKey,
    ws: &WorkspaceId,
    id: &DataRequestId,
    sealed: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let bad = || StoreError::Integrity(interlock_crypto::CryptoError::Malformed);
    let mut out = Vec::with_capacity(sealed.len());
    let mut rest = sealed;
    let mut index = 0u64;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(bad());
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = rest.get(4..4 + len).ok_or_else(bad)?;
        rest = &rest[4 + len..];
        let last = rest.is_empty();
        let plain = key
            .open(&archive_aad(ws, id, index, last), body)
            .map_err(StoreError::Integrity)?;
        out.extend_from_slice(&plain);
        index += 1;
    }
    if index == 0 {
        return Err(bad());
    }
    Ok(out)
}

fn tar_append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mtime_ms: i64,
) -> Result<(), StoreError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime((mtime_ms.max(0) / 1000) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, bytes)
        .map_err(StoreError::Io)
}

/// A file name safe inside the archive: no folders, no controls, at most 100 bytes.
fn archive_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_control() || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut cut = String::new();
    for c in cleaned.chars() {
        if cut.len() + c.len_utf8() > 100 {
            break;
        }
        cut.push(c);
    }
    match cut.as_str() {
        "" | "." | ".." => "file".to_owned(),
        _ => cut,
    }
}

/// A subject's erasure requests (unsorted: the first is picked in code, so the subject index
/// serves the read). Public for the query-plan test.
#[doc(hidden)]
pub const ERASURES_OF: &str = "SELECT id, type, status, subject_id, requested_by, receipt_id, archive_bytes, created_at, completed_at, expires_at FROM data_requests WHERE workspace_id = $1 AND subject_id = $2 AND type = 'erasure'";

impl Cell {
    /// The contact a request names. `NotFound` when none matches.
    pub async fn resolve_subject(
        &self,
        ws: &WorkspaceId,
        subject: &SubjectRef,
    ) -> Result<ContactId, StoreError> {
        match subject {
            SubjectRef::Id(id) => Ok(id.clone()),
            SubjectRef::Email(e) => self
                .find_contacts(ws, Some(e), None)
                .await?
                .into_iter()
                .next()
                .map(|c| c.id)
                .ok_or(StoreError::NotFound),
            SubjectRef::ExternalId(x) => self
                .find_contacts(ws, None, Some(x))
                .await?
                .into_iter()
                .next()
                .map(|c| c.id)
                .ok_or(StoreError::NotFound),
        }
    }

    async fn erasure_of(
        &self,
        ws: &WorkspaceId,
        subject: &ContactId,
    ) -> Result<Option<Erasure>, StoreError> {
        // The first erasure of the subject, picked here: `ORDER BY id LIMIT 1` would make SQLite
        // walk the primary key over every request of the workspace instead of the subject
        // index (a subject has one erasure, rarely more).
        let rows = sqlx::query(ERASURES_OF)
            .bind(ws.as_str())
            .bind(subject.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        let mut first: Option<(String, &sqlx::any::AnyRow)> = None;
        for row in &rows {
            let id: String = col(row, "id")?;
            if first.as_ref().is_none_or(|(f, _)| id < *f) {
                first = Some((id, row));
            }
        }
        let Some((_, row)) = first else {
            return Ok(None);
        };
        let request = request_from(row)?;
        let receipt_id = request
            .receipt_id
            .as_deref()
            .map(|r| parse_id(ReceiptId::parse(r)))
            .transpose()?
            .ok_or(StoreError::Integrity(
                interlock_crypto::CryptoError::Malformed,
            ))?;
        let receipt = self.deletion_receipt(&receipt_id).await?;
        Ok(Some(Erasure {
            request,
            receipt,
            repeated: true,
        }))
    }

    /// Erase a data subject now: destroy its keys, delete everything it owns (rows, blind
    /// indexes, files, access archives), notify the sub-processors that received its data, and
    /// keep a signed receipt. A repeat returns the first erasure's receipt. `NotFound` when
    /// there is no such contact and none was erased.
    pub async fn erase_contact(
        &self,
        ws: &WorkspaceId,
        subject: &ContactId,
        actor: &Actor,
    ) -> Result<Erasure, StoreError> {
        self.check_region(ws)?;
        let plan = match self.contact_deletion_plan(ws, subject).await {
            Ok(p) => p,
            Err(StoreError::NotFound) => {
                return self
                    .erasure_of(ws, subject)
                    .await?
                    .ok_or(StoreError::NotFound);
            }
            Err(e) => return Err(e),
        };
        let now = now_ms();
        let request_id = DataRequestId::new();
        let receipt_id = ReceiptId::new();
        // The subject's access archives: their keys go in the transaction, files after.
        let archives: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM data_requests WHERE workspace_id = $1 AND subject_id = $2 AND type = 'access' AND archive_key_ct IS NOT NULL",
        )
        .bind(ws.as_str())
        .bind(subject.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let (notice_stmts, notified) = self
            .notices_for_erasure(ws, subject, request_id.as_str(), now)
            .await?;
        let counts = &plan.counts;
        let receipt = self.audit_key.sign_document(
            super::RECEIPT_TYPE,
            obj(json!({
                "receipt_id": receipt_id.as_str(),
                "kind": "erasure",
                "region": self.region.as_str(),
                "workspace_id": ws.as_str(),
                "request_id": request_id.as_str(),
                "subject": subject.as_str(),
                "requested_by": principal_of(actor),
                "requested_at_ms": now,
                "erased_at_ms": now,
                "destroyed_keys": plan.keys,
                "deleted": {
                    "contacts": 1,
                    "conversations": counts.conversations,
                    "conversation_parts": counts.parts,
                    "events": counts.events,
                    "attachments": counts.attachments,
                    "subject_keys": counts.subject_keys,
                    "blind_index_entries": plan.blind_index_entries,
                    "access_archives": archives.len(),
                },
                "subprocessors_notified": notified,
            })),
        );
        let receipt_json = serde_json::to_string(&receipt)
            .map_err(|_| StoreError::Config("receipt did not serialise".into()))?;
        let pending: Vec<String> = plan
            .blobs
            .iter()
            .map(|a| format!("attachment:{a}"))
            .chain(archives.iter().map(|d| format!("archive:{d}")))
            .collect();
        let status = if pending.is_empty() {
            "completed"
        } else {
            "purging"
        };
        let target = Target::new("contact", subject.as_str());
        let created = NewActivity::new(ActivityType::DataRequestCreated, actor, target.clone())
            .with("type", "erasure")
            .with("request_id", request_id.as_str());
        let deleted = counts.metadata(
            NewActivity::new(ActivityType::ContactDeleted, actor, target.clone())
                .with("reason", "erasure")
                .with("request_id", request_id.as_str()),
        );
        let completed = counts.metadata(
            NewActivity::new(ActivityType::DataRequestCompleted, actor, target)
                .with("type", "erasure")
                .with("request_id", request_id.as_str())
                .with("receipt_id", receipt_id.as_str())
                .with("blind_index_entries", plan.blind_index_entries)
                .with("access_archives", archives.len() as i64)
                .with("subprocessors_notified", notified.len() as i64),
        );
        let w = || Arg::Text(ws.to_string());
        let mut unit = Self::contact_deletion_stmts(ws, subject, None);
        unit.push(Stmt::new(
            "UPDATE data_requests SET archive_key_ct = NULL, status = 'erased' WHERE workspace_id = $1 AND subject_id = $2 AND type = 'access'",
            vec![w(), Arg::Text(subject.to_string())],
        ));
        unit.push(Stmt::new(
            "INSERT INTO data_requests (workspace_id, id, type, status, subject_id, requested_by, pending_blobs, receipt_id, created_at, completed_at) VALUES ($1, $2, 'erasure', $3, $4, $5, $6, $7, $8, $8)",
            vec![
                w(),
                Arg::Text(request_id.to_string()),
                Arg::Text(status.to_owned()),
                Arg::Text(subject.to_string()),
                Arg::Text(principal_of(actor)),
                Arg::OptText((!pending.is_empty()).then(|| pending.join(","))),
                Arg::Text(receipt_id.to_string()),
                Arg::Int(now),
            ],
        ));
        unit.push(Stmt::new(
            "INSERT INTO deletion_receipts (id, workspace_id, kind, subject_id, receipt, created_at) VALUES ($1, $2, 'erasure', $3, $4, $5)",
            vec![
                Arg::Text(receipt_id.to_string()),
                w(),
                Arg::Text(subject.to_string()),
                Arg::Text(receipt_json),
                Arg::Int(now),
            ],
        ));
        unit.extend(notice_stmts);
        let wk = self.current_workspace_keys(ws).await?;
        for act in [&created, &deleted, &completed] {
            unit.push(Self::activity_stmt_with(ws, &wk, act)?);
        }
        crate::ledger::ErasureLedger::append_off_runtime(
            &self.ledger,
            vec![plan.ledger_record(ws, subject)],
        )
        .await?;
        self.writer.write(unit).await?;
        self.after_contact_deletion(ws, &plan).await;
        let request = DataRequest {
            id: request_id.clone(),
            kind: DataRequestKind::Erasure,
            status: status.to_owned(),
            subject_id: subject.to_string(),
            requested_by: Some(principal_of(actor)),
            receipt_id: Some(receipt_id.to_string()),
            archive_bytes: None,
            created_at: now,
            completed_at: Some(now),
            expires_at: None,
        };
        let mut erasure = Erasure {
            request,
            receipt,
            repeated: false,
        };
        if !pending.is_empty() {
            // The erasure is committed (keys destroyed, rows gone); a file that cannot be
            // removed now is unreadable ciphertext, and the sweep retries (`resume_erasures`).
            match self.finish_purge(ws, &request_id, &pending).await {
                Ok(()) => erasure.request.status = "completed".to_owned(),
                Err(e) => {
                    tracing::warn!(workspace = %ws, error = %e, "erasure files not removed yet; the sweep retries");
                }
            }
        }
        Ok(erasure)
    }

    /// Remove an erasure's remaining files and mark it completed.
    async fn finish_purge(
        &self,
        ws: &WorkspaceId,
        id: &DataRequestId,
        pending: &[String],
    ) -> Result<(), StoreError> {
        for item in pending {
            if let Some(a) = item.strip_prefix("attachment:") {
                if let Ok(a) = AttachmentId::parse(a) {
                    self.blobs.delete(ws, &a).await?;
                }
            } else if let Some(d) = item.strip_prefix("archive:")
                && let Ok(d) = DataRequestId::parse(d)
            {
                self.blobs.delete_export(ws, &d).await?;
            }
        }
        self.writer
            .write(vec![Stmt::new(
                "UPDATE data_requests SET status = 'completed', pending_blobs = NULL WHERE workspace_id = $1 AND id = $2 AND status = 'purging'",
                vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())],
            )])
            .await
    }

    /// Finish erasures interrupted after their commit (files not yet removed). Returns how
    /// many were finished; one that still fails is left `purging` for the next sweep.
    pub async fn resume_erasures(&self) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT workspace_id, id, pending_blobs FROM data_requests WHERE status = 'purging' ORDER BY created_at LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut done = 0;
        for row in &rows {
            let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
            let id = parse_id(DataRequestId::parse(&col::<String>(row, "id")?))?;
            let pending: Option<String> = col(row, "pending_blobs")?;
            let pending: Vec<String> = pending
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            // One stuck file must not hold up the others: log it, the next sweep retries.
            match self.finish_purge(&ws, &id, &pending).await {
                Ok(()) => done += 1,
                Err(e) => {
                    tracing::warn!(workspace = %ws, error = %e, "erasure files not removed yet")
                }
            }
        }
        Ok(done)
    }

    /// Gather everything about a subject into an archive (a tar of `subject.json`, labelled
    /// with the data map's categories, and the attachment files), sealed at rest, downloadable
    /// by `actor` for 7 days.
    pub async fn create_access_request(
        &self,
        ws: &WorkspaceId,
        subject: &ContactId,
        actor: &Actor,
    ) -> Result<DataRequest, StoreError> {
        self.check_region(ws)?;
        let now = now_ms();
        let id = DataRequestId::new();
        let plain = zeroize::Zeroizing::new(self.access_archive_plain(ws, subject, now).await?);
        let material = KeyMaterial::generate()?;
        let key = AeadKey::new(&material)?;
        let sealed = seal_chunks(&key, ws, &id, &plain)?;
        let wk = self.current_workspace_keys(ws).await?;
        let wrapped = wk
            .aead
            .wrap(&archive_key_aad(ws, &id, wk.version), &material)?;
        self.blobs.put_export(ws, &id, &sealed).await?;
        let target = Target::new("contact", subject.as_str());
        let created = NewActivity::new(ActivityType::DataRequestCreated, actor, target.clone())
            .with("type", "access")
            .with("request_id", id.as_str());
        let completed = NewActivity::new(ActivityType::DataRequestCompleted, actor, target)
            .with("type", "access")
            .with("request_id", id.as_str())
            .with("archive_bytes", plain.len() as i64);
        let unit = vec![
            Stmt::new(
                "INSERT INTO data_requests (workspace_id, id, type, status, subject_id, requested_by, archive_key_ct, ws_key_version, archive_bytes, created_at, completed_at, expires_at) VALUES ($1, $2, 'access', 'completed', $3, $4, $5, $6, $7, $8, $8, $9)",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Text(subject.to_string()),
                    Arg::Text(principal_of(actor)),
                    Arg::Bytes(wrapped),
                    Arg::Int(wk.version),
                    Arg::Int(plain.len() as i64),
                    Arg::Int(now),
                    Arg::Int(now + ACCESS_ARCHIVE_TTL_MS),
                ],
            ),
            Self::activity_stmt_with(ws, &wk, &created)?,
            Self::activity_stmt_with(ws, &wk, &completed)?,
        ];
        if let Err(e) = self.writer.write(unit).await {
            let _ = self.blobs.delete_export(ws, &id).await;
            return Err(e);
        }
        self.data_request(ws, &id).await
    }

    /// The archive's plaintext: a tar with `subject.json` and `attachments/<id>/<name>`.
    async fn access_archive_plain(
        &self,
        ws: &WorkspaceId,
        subject: &ContactId,
        now: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let contact = self.get_contact(ws, subject).await?;
        let mut conversations = Vec::new();
        let mut files: Vec<(String, Vec<u8>, i64)> = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .list_conversations(ws, Some(subject), after.as_ref(), super::MAX_PAGE)
                .await?;
            for summary in &page.items {
                let c = self.get_conversation(ws, &summary.id).await?;
                let parts: Vec<Value> = c
                    .parts
                    .iter()
                    .map(|p| {
                        json!({
                            "id": p.id.as_str(),
                            "author_type": p.author_type.as_str(),
                            "author_id": p.author_id,
                            "created_at": p.created_at,
                            "body": labelled("conversation_parts", "body_ct", Value::from(p.body.clone())),
                        })
                    })
                    .collect();
                let mut attachments = Vec::new();
                for a in self.list_attachments(ws, &c.id).await? {
                    let (_, bytes) = self.get_attachment(ws, &c.id, &a.id).await?;
                    let path = format!(
                        "attachments/{}/{}",
                        a.id.as_str(),
                        archive_name(&a.filename)
                    );
                    attachments.push(json!({
                        "id": a.id.as_str(),
                        "filename": labelled("attachments", "filename_ct", Value::from(a.filename.clone())),
                        "content_type": labelled("attachments", "content_type_ct", Value::from(a.content_type.clone())),
                        "size_bytes": a.size,
                        "created_at": a.created_at,
                        "file": path,
                    }));
                    files.push((path, bytes, a.created_at));
                }
                conversations.push(json!({
                    "id": c.id.as_str(),
                    "created_at": c.created_at,
                    "updated_at": c.updated_at,
                    "parts": parts,
                    "attachments": attachments,
                }));
            }
            match page.next_after {
                Some(n) => after = Some(parse_id(interlock_domain::ConversationId::parse(&n))?),
                None => break,
            }
        }
        let mut events = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .list_events(ws, subject, after.as_ref(), super::MAX_PAGE)
                .await?;
            for e in &page.items {
                events.push(json!({
                    "id": e.id.as_str(),
                    "created_at": e.created_at,
                    "name": labelled("events", "name_ct", Value::from(e.name.clone())),
                    "metadata": labelled("events", "metadata_ct", Value::Object(e.metadata.clone())),
                }));
            }
            match page.next_after {
                Some(n) => after = Some(parse_id(interlock_domain::EventId::parse(&n))?),
                None => break,
            }
        }
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::from);
        let document = json!({
            "format": "interlock.subject_access.v1",
            "generated_at_ms": now,
            "workspace_id": ws.as_str(),
            "region": self.region.as_str(),
            "data_map": "categories are fideslang data categories, as in GET /v1/data-map",
            "contact": {
                "id": contact.id.as_str(),
                "role": contact.role.as_str(),
                "created_at": contact.created_at,
                "updated_at": contact.updated_at,
                "external_id": labelled("contacts", "external_id_ct", opt(&contact.external_id)),
                "email": labelled("contacts", "email_ct", opt(&contact.email)),
                "name": labelled("contacts", "name_ct", opt(&contact.name)),
                "phone": labelled("contacts", "phone_ct", opt(&contact.phone)),
                "custom_attributes": labelled("contacts", "custom_attributes_ct", Value::Object(contact.custom_attributes.clone())),
            },
            "conversations": conversations,
            "events": events,
        });
        let json_bytes = zeroize::Zeroizing::new(
            serde_json::to_vec_pretty(&document)
                .map_err(|_| StoreError::Config("subject document did not serialise".into()))?,
        );
        let mut tar = tar::Builder::new(Vec::new());
        tar_append(&mut tar, "subject.json", &json_bytes, now)?;
        for (path, bytes, at) in &files {
            tar_append(&mut tar, path, bytes, *at)?;
        }
        let mut out = tar.into_inner().map_err(StoreError::Io)?;
        out.flush().map_err(StoreError::Io)?;
        Ok(out)
    }

    /// A data request of the workspace.
    pub async fn data_request(
        &self,
        ws: &WorkspaceId,
        id: &DataRequestId,
    ) -> Result<DataRequest, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT id, type, status, subject_id, requested_by, receipt_id, archive_bytes, created_at, completed_at, expires_at FROM data_requests WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        request_from(&row)
    }

    /// The workspace's data requests, newest first.
    pub async fn list_data_requests(
        &self,
        ws: &WorkspaceId,
        before: Option<&DataRequestId>,
        limit: i64,
    ) -> Result<Page<DataRequest>, StoreError> {
        self.check_region(ws)?;
        let limit = limit.clamp(1, super::MAX_PAGE);
        let rows = sqlx::query(
            "SELECT id, type, status, subject_id, requested_by, receipt_id, archive_bytes, created_at, completed_at, expires_at FROM data_requests WHERE workspace_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(ws.as_str())
        .bind(before.map_or("", |b| b.as_str()))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let items = rows
            .iter()
            .take(limit as usize)
            .map(request_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(super::page(items, rows.len(), limit, |r| r.id.to_string()))
    }

    /// An access request's archive (the tar), for the principal that asked for it, while it
    /// has not expired; `Conflict("archive_expired")` after 7 days or once the subject was
    /// erased, `NotFound` for another principal or another kind of request.
    pub async fn access_archive(
        &self,
        ws: &WorkspaceId,
        id: &DataRequestId,
        actor: &Actor,
        now: i64,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT requested_by, archive_key_ct, ws_key_version, expires_at FROM data_requests WHERE workspace_id = $1 AND id = $2 AND type = 'access'",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        let requested_by: Option<String> = col(&row, "requested_by")?;
        if requested_by.as_deref() != Some(principal_of(actor).as_str()) {
            return Err(StoreError::NotFound);
        }
        let wrapped: Option<Vec<u8>> = col(&row, "archive_key_ct")?;
        let expires_at: Option<i64> = col(&row, "expires_at")?;
        let (Some(wrapped), Some(expires_at)) = (wrapped, expires_at) else {
            return Err(StoreError::Conflict("archive_expired"));
        };
        if now >= expires_at {
            return Err(StoreError::Conflict("archive_expired"));
        }
        let version: i64 = col::<Option<i64>>(&row, "ws_key_version")?.unwrap_or(1);
        let wk = self.workspace_keys(ws, version).await?;
        let material = wk
            .aead
            .unwrap_key(&archive_key_aad(ws, id, version), &wrapped)
            .map_err(StoreError::Integrity)?;
        let key = AeadKey::new(&material)?;
        let sealed = self.blobs.get_export(ws, id).await?;
        let plain = open_chunks(&key, ws, id, &sealed)?;
        let act = NewActivity::new(
            ActivityType::DataExported,
            actor,
            Target::new("data_request", id.as_str()),
        )
        .with("scope", "subject_access_archive")
        .with("request_id", id.as_str());
        self.record_activity(ws, &act).await?;
        Ok(zeroize::Zeroizing::new(plain))
    }

    /// Delete the keys and files of access archives past their 7 days (as of `now`). Returns
    /// how many expired.
    pub async fn expire_access_archives(&self, now: i64) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT workspace_id, id FROM data_requests WHERE status = 'completed' AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT 1000",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut n = 0;
        for row in &rows {
            let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
            let id = parse_id(DataRequestId::parse(&col::<String>(row, "id")?))?;
            self.writer
                .write(vec![Stmt::new(
                    "UPDATE data_requests SET archive_key_ct = NULL, status = 'expired' WHERE workspace_id = $1 AND id = $2 AND type = 'access'",
                    vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())],
                )])
                .await?;
            self.blobs.delete_export(&ws, &id).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Erasure notices: the outbox statements and names of the sub-processors notified.
    async fn notices_for_erasure(
        &self,
        ws: &WorkspaceId,
        subject: &ContactId,
        request_id: &str,
        at_ms: i64,
    ) -> Result<(Vec<Stmt>, Vec<String>), StoreError> {
        self.erasure_notice_stmts(ws, subject, request_id, at_ms)
            .await
    }
}

/// Counts an erasure removed, from its receipt (for answers that show them).
pub fn receipt_counts(receipt: &SignedDocument) -> Map<String, Value> {
    receipt
        .document
        .get("deleted")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}
