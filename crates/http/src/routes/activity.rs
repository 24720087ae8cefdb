//! The activity log: the event-type catalogue, the region's checkpoint-signing public keys, a
//! filtered and paginated view, and the verifiable export.
//!
//! Invariants: reading the log needs `activity_log.read`; an export is itself recorded before
//! it is read (so it appears in what it exports) and ends with a checkpoint signed when it is
//! made, so a reader can tell a complete export from a cut one.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use interlock_crypto::audit::{
    Checkpoint, CheckpointKind, SignedCheckpoint, csv_header, export_checkpoint_csv_record,
    export_checkpoint_line, export_entry_csv_record, export_entry_line,
};
use interlock_domain::{ActivityEntry, ActivityType, Target, WorkspaceId};
use interlock_storage::{ActivityFilter, Cell, StoredActivity};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::authz::{Allowed, perm};
use crate::dto::{ListOf, cursor};
use crate::error::ApiError;
use crate::extract::{Json, Query};

/// One event type of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeOut {
    /// The stable name, e.g. `contact.deleted`.
    pub name: &'static str,
    pub category: &'static str,
    /// `info`, `medium` or `high`.
    pub severity: &'static str,
    pub description: &'static str,
    /// False for types of capabilities this version does not have yet.
    pub emitted: bool,
}

/// The catalogue of activity event types (public: it documents the log's vocabulary).
#[utoipa::path(get, path = "/v1/activity-log-event-types", tag = "activity",
    responses((status = 200, body = ListOf<EventTypeOut>)))]
pub async fn event_types() -> Json<ListOf<EventTypeOut>> {
    Json(ListOf::new(
        ActivityType::ALL
            .iter()
            .map(|t| EventTypeOut {
                name: t.as_str(),
                category: t.category(),
                severity: t.severity(),
                description: t.description(),
                emitted: t.emitted(),
            })
            .collect(),
        None,
    ))
}

/// A region's checkpoint-signing key.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicKeyOut {
    pub region: String,
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// First 16 hex digits of SHA-256 of the raw key; checkpoints name it.
    pub key_id: String,
    /// SubjectPublicKeyInfo PEM (what `interlock audit verify --public-key` reads).
    pub public_key_pem: String,
    /// The raw 32-byte key, base64.
    pub public_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicKeysOut {
    pub keys: Vec<PublicKeyOut>,
}

/// The Ed25519 public keys that sign activity-log checkpoints, one per served region
/// (public, so anyone holding an export or a checkpoint can check it).
#[utoipa::path(get, path = "/v1/activity-logs/public-key", tag = "activity",
    responses((status = 200, body = PublicKeysOut)))]
pub async fn public_key(State(state): State<Arc<AppState>>) -> Json<PublicKeysOut> {
    Json(PublicKeysOut {
        keys: state
            .cells
            .iter()
            .map(|(region, cell)| {
                let k = cell.activity_public_key();
                PublicKeyOut {
                    region: region.to_string(),
                    algorithm: "Ed25519",
                    key_id: k.key_id(),
                    public_key_pem: k.to_pem(),
                    public_key: k.raw_base64(),
                }
            })
            .collect(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorOut {
    /// `teammate`, `api_token`, `staff` or `system`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetOut {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
}

/// One activity log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityOut {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created_at: i64,
    pub created_at_ms: i64,
    pub actor: ActorOut,
    pub target: TargetOut,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Position in the workspace's hash chain.
    pub seq: i64,
    /// The chain hash after this entry (hex).
    pub hash: String,
}

impl From<StoredActivity> for ActivityOut {
    fn from(s: StoredActivity) -> Self {
        let e: ActivityEntry = s.entry;
        Self {
            id: e.id,
            kind: e.kind,
            created_at: e.created_at_ms.div_euclid(1000),
            created_at_ms: e.created_at_ms,
            actor: ActorOut {
                kind: e.actor.kind.as_str().to_owned(),
                id: e.actor.id,
                ip: e.actor.ip.map(|ip| ip.to_string()),
                user_agent: e.actor.user_agent,
            },
            target: TargetOut {
                kind: e.target.kind,
                id: e.target.id,
            },
            metadata: e.metadata,
            seq: s.seq,
            hash: s.hash,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Only entries created at or after this time (Unix seconds).
    pub after: Option<i64>,
    /// Only entries created before this time (Unix seconds).
    pub before: Option<i64>,
    /// Comma-separated event types (at most 10), e.g. `contact.deleted,teammate.removed`.
    pub types: Option<String>,
    /// Only entries by this actor (`tm_…`, `tk_…`).
    pub actor_id: Option<String>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<i64>,
}

fn time_ms(v: Option<i64>, field: &str) -> Result<Option<i64>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) if (0..=253_402_300_799).contains(&s) => Ok(Some(s * 1000)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            format!("{field} must be Unix seconds between 0 and year 9999"),
        )),
    }
}

fn time_range(
    after: Option<i64>,
    before: Option<i64>,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let after = time_ms(after, "after")?;
    let before = time_ms(before, "before")?;
    if let (Some(a), Some(b)) = (after, before)
        && a >= b
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "after must be earlier than before",
        ));
    }
    Ok((after, before))
}

/// The workspace's activity log, newest first, filtered by time, event type and actor.
#[utoipa::path(get, path = "/v1/activity-logs", tag = "activity",
    extensions(("x-permission" = json!("activity_log.read"))),
    params(ActivityQuery),
    responses((status = 200, body = ListOf<ActivityOut>), (status = 400, description = "`invalid_query`, `unknown_event_type`, `invalid_cursor`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn list(
    auth: Allowed<perm::ActivityLogRead>,
    Query(q): Query<ActivityQuery>,
) -> Result<Json<ListOf<ActivityOut>>, ApiError> {
    let (after_ms, before_ms) = time_range(q.after, q.before)?;
    let limit = match q.per_page {
        None => 20,
        Some(n) if (1..=100).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "per_page must be between 1 and 100",
            ));
        }
    };
    let mut types = Vec::new();
    if let Some(t) = &q.types {
        for name in t.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ty = ActivityType::parse(name)
                .map_err(|e| ApiError::bad_request("unknown_event_type", e.message))?;
            if !types.contains(&ty) {
                types.push(ty);
            }
        }
        if types.len() > interlock_storage::cell::MAX_TYPE_FILTER {
            return Err(ApiError::bad_request(
                "invalid_query",
                "filter on at most 10 event types",
            ));
        }
    }
    let below_seq = match &q.cursor {
        None => None,
        Some(c) => {
            use base64::Engine;
            let bad = || ApiError::bad_request("invalid_cursor", "the cursor is not valid");
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| bad())?;
            let text = String::from_utf8(bytes).map_err(|_| bad())?;
            Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(bad)?,
            )
        }
    };
    let actor_id = q.actor_id.filter(|a| !a.is_empty());
    if let Some(a) = &actor_id
        && (a.len() > 64 || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "actor_id must be an id such as tm_… or tk_…",
        ));
    }
    let page = auth
        .cell
        .list_activity(
            &auth.workspace,
            &ActivityFilter {
                after_ms,
                before_ms,
                types,
                actor_id,
                below_seq,
                limit,
            },
        )
        .await?;
    Ok(Json(ListOf::new(
        page.items.into_iter().map(ActivityOut::from).collect(),
        cursor(page.next_after),
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `jsonl` (default) or `csv`.
    pub format: Option<String>,
    /// Only entries created at or after this time (Unix seconds).
    pub after: Option<i64>,
    /// Only entries created before this time (Unix seconds).
    pub before: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jsonl,
    Csv,
}

/// Rows per read while streaming an export.
const EXPORT_BATCH: i64 = 1000;

/// Everything the export stream needs.
struct ExportState {
    cell: Arc<Cell>,
    ws: WorkspaceId,
    format: Format,
    next: i64,
    last: i64,
    first: i64,
    anchor: [u8; 32],
    prev: [u8; 32],
    checkpoints: BTreeMap<u64, SignedCheckpoint>,
    /// Periodic checkpoints written so far (the closing checkpoint counts them).
    included: u64,
    header_done: bool,
    done: bool,
}

impl ExportState {
    fn checkpoint_bytes(&self, cp: &SignedCheckpoint) -> Result<Vec<u8>, std::io::Error> {
        let mut out = Vec::new();
        match self.format {
            Format::Jsonl => export_checkpoint_line(cp, &mut out),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                w.write_record(export_checkpoint_csv_record(cp))?;
                w.flush()?;
            }
        }
        Ok(out)
    }

    /// The next chunk of the export, or `None` when it is complete.
    async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, std::io::Error> {
        if self.done {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(512 * EXPORT_BATCH as usize);
        if !self.header_done {
            self.header_done = true;
            if self.format == Format::Csv {
                let mut w = csv::Writer::from_writer(&mut out);
                w.write_record(csv_header())?;
                w.flush()?;
            }
        }
        if self.next <= self.last {
            let rows = self
                .cell
                .activity_from(&self.ws, self.next, self.last, EXPORT_BATCH)
                .await
                .map_err(std::io::Error::other)?;
            if rows.is_empty() || rows[0].seq != self.next {
                return Err(std::io::Error::other("the log changed under the export"));
            }
            for raw in &rows {
                match self.format {
                    Format::Jsonl => export_entry_line(
                        raw.seq as u64,
                        &self.prev,
                        &raw.hash,
                        &raw.canonical,
                        &mut out,
                    ),
                    Format::Csv => {
                        let entry: ActivityEntry = serde_json::from_slice(&raw.canonical)
                            .map_err(std::io::Error::other)?;
                        let mut w = csv::Writer::from_writer(&mut out);
                        w.write_record(export_entry_csv_record(
                            raw.seq as u64,
                            &self.prev,
                            &raw.hash,
                            &entry,
                        ))?;
                        w.flush()?;
                    }
                }
                self.prev = raw.hash;
                self.next = raw.seq + 1;
                if let Some(cp) = self.checkpoints.get(&(raw.seq as u64)) {
                    let bytes = self.checkpoint_bytes(cp)?;
                    out.extend_from_slice(&bytes);
                    self.included += 1;
                }
            }
            return Ok(Some(out.into()));
        }
        // The end: a checkpoint signed now over exactly what was exported.
        let signed = self.cell.sign_checkpoint(&Checkpoint {
            workspace_id: self.ws.to_string(),
            kind: CheckpointKind::Export,
            tree_size: self.last as u64,
            head_hash: self.prev,
            created_at_ms: interlock_storage::now_ms(),
            first_seq: Some(self.first as u64),
            anchor_hash: Some(self.anchor),
            checkpoints: Some(self.included),
        });
        let bytes = self.checkpoint_bytes(&signed)?;
        out.extend_from_slice(&bytes);
        self.done = true;
        Ok(Some(out.into()))
    }
}

/// Export the activity log (the whole of it, or the entries created in a time range) with
/// each entry's hash and the signed checkpoints, ending with a checkpoint signed now. Check
/// it offline with `interlock audit verify --export FILE --public-key FILE`.
#[utoipa::path(get, path = "/v1/activity-logs/export", tag = "activity",
    extensions(("x-permission" = json!("activity_log.read"))),
    params(ExportQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = String,
        description = "JSON Lines (or text/csv): entry lines, checkpoint lines, a final export checkpoint"),
        (status = 400, description = "`invalid_query`, `unsupported_format`")),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn export(
    auth: Allowed<perm::ActivityLogRead>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = match q.format.as_deref() {
        None | Some("jsonl") => Format::Jsonl,
        Some("csv") => Format::Csv,
        Some(_) => {
            return Err(ApiError::bad_request(
                "unsupported_format",
                "format must be jsonl or csv",
            ));
        }
    };
    let (after_ms, before_ms) = time_range(q.after, q.before)?;
    let ws = auth.workspace.clone();
    let cell = auth.cell.clone();
    let mut act = auth
        .activity(
            ActivityType::ActivityLogExported,
            Target::kind("activity_log"),
        )
        .with(
            "format",
            if format == Format::Csv {
                "csv"
            } else {
                "jsonl"
            },
        );
    if let Some(a) = q.after {
        act = act.with("after", a);
    }
    if let Some(b) = q.before {
        act = act.with("before", b);
    }
    cell.record_activity(&ws, &act).await?;
    let head = cell.activity_head(&ws).await?.ok_or(ApiError::NotFound)?;
    let (first, last) = if after_ms.is_none() && before_ms.is_none() {
        (head.first_seq, head.seq)
    } else {
        match cell.activity_seq_range(&ws, after_ms, before_ms).await? {
            Some((lo, hi)) => (lo.max(head.first_seq), hi.min(head.seq)),
            // Nothing in the range: an empty export anchored at the head.
            None => (head.seq + 1, head.seq),
        }
    };
    let anchor = if first > head.seq {
        head.hash
    } else {
        cell.activity_prev_hash(&ws, &head, first).await?
    };
    let checkpoints = cell
        .activity_checkpoints(&ws, first, last)
        .await?
        .into_iter()
        .map(|c| (c.checkpoint.tree_size, c))
        .collect();
    let state = ExportState {
        cell,
        ws: ws.clone(),
        format,
        next: first,
        last,
        first,
        anchor,
        prev: anchor,
        checkpoints,
        included: 0,
        header_done: false,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        match st.chunk().await {
            Ok(Some(b)) => Some((Ok::<_, std::io::Error>(b), st)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "activity export stopped");
                st.done = true;
                Some((Err(e), st))
            }
        }
    });
    let (ctype, ext) = match format {
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let mut resp = HttpBody::from_stream(stream).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    let disposition = format!("attachment; filename=\"activity-{ws}.{ext}\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
