//! A region's cell: its database, blob folder, master keys and key caches, and every operation
//! on customer data. Each public function takes the workspace id; there is no way to read or
//! write a record without naming its workspace.

use std::path::PathBuf;
use std::sync::Arc;

use interlock_crypto::{Aad, AeadKey, ApiToken, KeyMaterial, Keyring, TokenKind, WorkspaceKeys};
use interlock_domain::{
    AttachmentId, AttachmentName, Author, AuthorType, Body, ContactId, ContactPatch, ContactRole,
    ConversationId, DomainError, Email, EventId, ExternalId, NewContact, NewEvent, PartId, Region,
    SubjectKeyId, WorkspaceId,
};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::blobs::BlobStore;
use crate::cache::BoundedCache;
use crate::db::{self, Arg, Backend, RowInsert, Stmt, Writer};
use crate::records::*;
use crate::{StoreError, now_ms};

mod activity;
mod backup;
mod datarequests;
mod deletion;
mod messenger;
mod outbox;
mod passkeys;
mod restore;
mod retention;
mod reviews;
mod staff;
mod staff_audit;
mod staff_devices;
mod staff_passkeys;
mod subprocessors;
mod teammates;
mod tokens;
mod workspaces;

pub use activity::{
    ActivityFilter, ActivityHead, ChainFailure, ChainReport, CutReport, MAX_TYPE_FILTER,
    RawActivity, StoredActivity,
};
pub use backup::{BackupSummary, Progress, RestoreSummary, restore, schema_version};
#[doc(hidden)]
pub use datarequests::ERASURES_OF;
pub use datarequests::{
    ACCESS_ARCHIVE_TTL_MS, DataRequest, DataRequestKind, Erasure, SubjectRef, principal_of,
    receipt_counts,
};
pub use deletion::{DeletionCounts, SUBJECT_KEYS_OF};
pub use messenger::{MessengerSecret, MessengerSession, SessionScope};
pub use outbox::{
    DeliveryInfo, DeliveryKind, DeliveryOutcome, DueDelivery, ERASURE_NOTICE_TYPE, MAX_WEBHOOKS,
    OUTBOX_KEEP_DAYS, Outbound, OutboundMessage, WEBHOOK_EVENTS, Webhook, check_events,
};
pub use passkeys::{CEREMONY_TTL_MS, StoredPasskey};
pub use restore::{LEDGER_APPLIED, LEDGER_ON_RESTORE, LedgerReport};
pub use retention::{
    EXPIRED_TOKEN_KEEP_MS, REMOVED_TEAMMATE_MAX_AGE_MS, RetentionReport, THROTTLE_QUIET_MS,
    VISITOR_BATCH_MAX, VISITOR_MAX_AGE_MS, VisitorBatch,
};
pub use reviews::{
    BeyondBaseline, REVIEW_SYSTEM, ReviewCampaign, ReviewChange, ReviewDecision, ReviewDrift,
    ReviewHolder, ReviewItem, ReviewItemKind, ReviewReport, ReviewSchedule, ReviewSweep,
    ReviewTotals, ReviewVerdict, Reviewer, review_totals,
};
pub use staff::{GrantPrincipal, STAFF_SESSION_MS, StaffGrant, StaffMember, StaffPrincipal};
pub use staff_audit::{StaffAuditBreak, StaffAuditEntry};
pub use staff_devices::StaffDevice;
pub use staff_passkeys::{StaffCeremony, StoredStaffPasskey};
pub use subprocessors::{
    RegistryChange, Subprocessor, SubprocessorInput, check_host, normalize_url_host,
};
pub use teammates::{
    CustomRole, INVITATION_TTL_MS, LoginRecord, SessionInfo, SessionPrincipal, Teammate,
};
use tokens::FIRST_TOKEN_NAME;
pub use tokens::{ApiTokenInfo, TokenPrincipal, TokenScope};
pub use workspaces::{
    INACTIVITY_NOTICE_MS, LifecycleReport, RECEIPT_TYPE, WORKSPACE_MAX_IDLE_MS, WorkspaceDeletion,
    WorkspaceDeletionReason, purged_tables,
};

/// Where a cell keeps its data.
#[derive(Debug, Clone)]
pub struct CellConfig {
    pub region: Region,
    pub backend: Backend,
    pub key_dir: PathBuf,
    pub blob_dir: PathBuf,
}

#[derive(Clone)]
struct ConvMeta {
    contact_id: ContactId,
    subject_key_id: SubjectKeyId,
}

/// A contact about to be created: its statements, key and the record to return.
struct NewContactUnit {
    unit: Vec<Stmt>,
    skid: SubjectKeyId,
    key: Arc<AeadKey>,
    contact: Contact,
}

/// One region's store.
pub struct Cell {
    region: Region,
    pool: AnyPool,
    writer: Writer,
    keyring: Arc<Keyring>,
    audit_key: interlock_crypto::audit::AuditSigningKey,
    blobs: BlobStore,
    tokens: BoundedCache<[u8; 32], (TokenPrincipal, std::time::Instant)>,
    ws_keys: BoundedCache<(WorkspaceId, i64), Arc<WorkspaceKeys>>,
    ws_version: BoundedCache<WorkspaceId, i64>,
    subject_keys: BoundedCache<(WorkspaceId, SubjectKeyId), Arc<AeadKey>>,
    conversations: BoundedCache<(WorkspaceId, ConversationId), ConvMeta>,
    /// Erasures, recorded in the key folder apart from the backed-up data (see `ledger.rs`).
    ledger: Arc<crate::ledger::ErasureLedger>,
    /// Serialises appends to the staff audit chain within this process.
    staff_audit_lock: tokio::sync::Mutex<()>,
    /// When this process last wrote a workspace's `last_active_at`.
    touched: BoundedCache<WorkspaceId, i64>,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell")
            .field("region", &self.region)
            .finish()
    }
}

/// Largest page of a list.
pub const MAX_PAGE: i64 = 100;

fn ws_key_id(version: i64) -> String {
    format!("ws/v{version}")
}

fn integrity(e: interlock_crypto::CryptoError) -> StoreError {
    StoreError::Integrity(e)
}

fn text(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Integrity(interlock_crypto::CryptoError::Malformed))
}

fn col<T>(row: &AnyRow, name: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get::<T, _>(name).map_err(StoreError::Db)
}

fn parse_id<T>(r: Result<T, DomainError>) -> Result<T, StoreError> {
    r.map_err(|_| StoreError::Integrity(interlock_crypto::CryptoError::Malformed))
}

/// A page from rows fetched with `LIMIT limit + 1`: the extra row only says there is more.
fn page<T>(items: Vec<T>, fetched: usize, limit: i64, id: impl Fn(&T) -> String) -> Page<T> {
    let next_after = (fetched as i64 > limit)
        .then(|| items.last().map(&id))
        .flatten();
    Page { items, next_after }
}

/// A page of conversation summaries (no parts) from rows fetched with `LIMIT limit + 1`.
fn conversation_page(rows: &[AnyRow], limit: i64) -> Result<Page<Conversation>, StoreError> {
    let mut items = Vec::new();
    for row in rows.iter().take(limit as usize) {
        items.push(Conversation {
            id: parse_id(ConversationId::parse(&col::<String>(row, "id")?))?,
            contact_id: parse_id(ContactId::parse(&col::<String>(row, "contact_id")?))?,
            created_at: col(row, "created_at")?,
            updated_at: col(row, "updated_at")?,
            parts: Vec::new(),
        });
    }
    Ok(page(items, rows.len(), limit, |x| x.id.to_string()))
}

/// Seals and opens the fields of one record under one key.
struct Sealer<'a> {
    key: &'a AeadKey,
    ws: &'a WorkspaceId,
    table: &'static str,
    record: &'a str,
    key_id: &'a str,
}

impl<'a> Sealer<'a> {
    fn new(
        table: &'static str,
        key: &'a AeadKey,
        ws: &'a WorkspaceId,
        record: &'a str,
        key_id: &'a str,
    ) -> Self {
        Self {
            key,
            ws,
            table,
            record,
            key_id,
        }
    }

    fn aad(&self, field: &str) -> Aad {
        Aad::new(
            self.ws.as_str(),
            self.table,
            self.record,
            field,
            self.key_id,
        )
    }

    fn seal(&self, field: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self.key.seal(&self.aad(field), plaintext)?)
    }

    fn seal_opt(
        &self,
        field: &str,
        plaintext: Option<&str>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        plaintext
            .map(|p| self.seal(field, p.as_bytes()))
            .transpose()
    }

    fn open_bytes(
        &self,
        field: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        self.key.open(&self.aad(field), sealed).map_err(integrity)
    }

    fn open_text(&self, field: &str, sealed: &[u8]) -> Result<String, StoreError> {
        text(&self.open_bytes(field, sealed)?)
    }

    fn open_opt(&self, field: &str, sealed: Option<Vec<u8>>) -> Result<Option<String>, StoreError> {
        sealed.map(|s| self.open_text(field, &s)).transpose()
    }

    fn open_json(&self, field: &str, sealed: &[u8]) -> Result<Map<String, Value>, StoreError> {
        let pt = self.open_bytes(field, sealed)?;
        serde_json::from_slice(&pt)
            .map_err(|_| StoreError::Integrity(interlock_crypto::CryptoError::Malformed))
    }
}

impl Cell {
    /// Open (creating if needed) a region's store, keys and blob folder.
    pub async fn open(cfg: CellConfig) -> Result<Self, StoreError> {
        let keyring = Arc::new(Keyring::open_or_create(&cfg.key_dir, cfg.region)?);
        let audit_key =
            interlock_crypto::audit::AuditSigningKey::load_or_create(&cfg.key_dir, cfg.region)
                .map_err(|e| StoreError::Config(format!("activity log signing key: {e}")))?;
        let blobs = BlobStore::new(cfg.blob_dir.clone())?;
        let ledger = Arc::new(crate::ledger::ErasureLedger::open(
            &cfg.key_dir,
            cfg.region,
        )?);
        let (pool, writer) = db::open(&cfg.backend).await?;
        Ok(Self {
            region: cfg.region,
            pool,
            writer,
            keyring,
            audit_key,
            blobs,
            tokens: BoundedCache::new(100_000),
            ws_keys: BoundedCache::new(100_000),
            ws_version: BoundedCache::new(100_000),
            subject_keys: BoundedCache::new(200_000),
            conversations: BoundedCache::new(200_000),
            ledger,
            staff_audit_lock: tokio::sync::Mutex::new(()),
            touched: BoundedCache::new(100_000),
        })
    }

    pub fn region(&self) -> Region {
        self.region
    }

    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The reader pool, for benchmarks and tests that must look at raw rows.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The region's erasure ledger (appended before an erasure commits, applied on restore).
    pub fn ledger(&self) -> &crate::ledger::ErasureLedger {
        &self.ledger
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Close connections (and let SQLite checkpoint its WAL).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// A cheap round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::Db)
    }

    /// Write one statement that must change exactly one row (`NotFound` otherwise).
    async fn exactly_one(&self, sql: &'static str, args: Vec<Arg>) -> Result<(), StoreError> {
        self.writer
            .write(vec![Stmt::new(sql, args).expect(1)])
            .await
    }

    fn check_region(&self, ws: &WorkspaceId) -> Result<(), StoreError> {
        // Routing sends a workspace only to its own cell; refuse anything else outright.
        if ws.region() != self.region {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- keys

    async fn workspace_keys(
        &self,
        ws: &WorkspaceId,
        version: i64,
    ) -> Result<Arc<WorkspaceKeys>, StoreError> {
        if let Some(k) = self.ws_keys.get(&(ws.clone(), version)) {
            return Ok(k);
        }
        let row = sqlx::query(
            "SELECT master_version, wrapped FROM workspace_keys WHERE workspace_id = $1 AND version = $2",
        )
        .bind(ws.as_str())
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        let master_version: i64 = col(&row, "master_version")?;
        let wrapped: Vec<u8> = col(&row, "wrapped")?;
        let master = self.keyring.get(master_version)?;
        let material = master
            .unwrap_workspace_key(ws.as_str(), version, &wrapped)
            .map_err(integrity)?;
        let keys = Arc::new(WorkspaceKeys::derive(&material, version)?);
        self.ws_keys.insert((ws.clone(), version), keys.clone());
        Ok(keys)
    }

    async fn current_workspace_keys(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Arc<WorkspaceKeys>, StoreError> {
        let version = match self.ws_version.get(ws) {
            Some(v) => v,
            None => {
                let v: i64 = sqlx::query_scalar("SELECT key_version FROM workspaces WHERE id = $1")
                    .bind(ws.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::Db)?
                    .ok_or(StoreError::NotFound)?;
                self.ws_version.insert(ws.clone(), v);
                v
            }
        };
        self.workspace_keys(ws, version).await
    }

    fn subject_key_aad(ws: &WorkspaceId, id: &SubjectKeyId, ws_version: i64) -> Aad {
        Aad::new(
            ws.as_str(),
            "subject_keys",
            id.as_str(),
            "key",
            &ws_key_id(ws_version),
        )
    }

    /// A fresh subject key and the statement that stores it (wrapped).
    async fn new_subject_key(
        &self,
        ws: &WorkspaceId,
        owner: &ContactId,
    ) -> Result<(SubjectKeyId, Arc<AeadKey>, Stmt), StoreError> {
        let wk = self.current_workspace_keys(ws).await?;
        let id = SubjectKeyId::new();
        let material = KeyMaterial::generate()?;
        let wrapped = wk
            .aead
            .wrap(&Self::subject_key_aad(ws, &id, wk.version), &material)?;
        let key = Arc::new(AeadKey::new(&material)?);
        let stmt = Stmt::new(
            "INSERT INTO subject_keys (workspace_id, id, ws_key_version, wrapped, created_at, owner_id) VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                Arg::Text(ws.to_string()),
                Arg::Text(id.to_string()),
                Arg::Int(wk.version),
                Arg::Bytes(wrapped),
                Arg::Int(now_ms()),
                Arg::Text(owner.to_string()),
            ],
        );
        Ok((id, key, stmt))
    }

    async fn subject_key(
        &self,
        ws: &WorkspaceId,
        id: &SubjectKeyId,
    ) -> Result<Arc<AeadKey>, StoreError> {
        let cache_key = (ws.clone(), id.clone());
        if let Some(k) = self.subject_keys.get(&cache_key) {
            return Ok(k);
        }
        let row = sqlx::query(
            "SELECT ws_key_version, wrapped FROM subject_keys WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        let version: i64 = col(&row, "ws_key_version")?;
        let wrapped: Vec<u8> = col(&row, "wrapped")?;
        let wk = self.workspace_keys(ws, version).await?;
        let material = wk
            .aead
            .unwrap_key(&Self::subject_key_aad(ws, id, version), &wrapped)
            .map_err(integrity)?;
        let key = Arc::new(AeadKey::new(&material)?);
        self.subject_keys.insert(cache_key, key.clone());
        Ok(key)
    }

    /// Rotate the region's master key: write a new key version and re-wrap every workspace key
    /// under it. Data is not rewritten. Returns the new version and how many keys were re-wrapped.
    pub async fn rotate_master_key(&self) -> Result<(i64, u64), StoreError> {
        let new_version = self.keyring.rotate()?;
        let master = self.keyring.get(new_version)?;
        let rows = sqlx::query(
            "SELECT workspace_id, version, master_version, wrapped FROM workspace_keys WHERE master_version <> $1",
        )
        .bind(new_version)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut count = 0u64;
        for chunk in rows.chunks(500) {
            let mut unit = Vec::with_capacity(chunk.len());
            for row in chunk {
                let ws: String = col(row, "workspace_id")?;
                let version: i64 = col(row, "version")?;
                let old: i64 = col(row, "master_version")?;
                let wrapped: Vec<u8> = col(row, "wrapped")?;
                let material = self
                    .keyring
                    .get(old)?
                    .unwrap_workspace_key(&ws, version, &wrapped)
                    .map_err(integrity)?;
                let rewrapped = master.wrap_workspace_key(&ws, version, &material)?;
                unit.push(
                    Stmt::new(
                        "UPDATE workspace_keys SET master_version = $1, wrapped = $2 WHERE workspace_id = $3 AND version = $4 AND master_version = $5",
                        vec![
                            Arg::Int(new_version),
                            Arg::Bytes(rewrapped),
                            Arg::Text(ws),
                            Arg::Int(version),
                            Arg::Int(old),
                        ],
                    )
                    .expect(1),
                );
            }
            count += unit.len() as u64;
            self.writer.write(unit).await?;
        }
        Ok((new_version, count))
    }

    /// How many workspace keys are still wrapped under a master key version.
    pub async fn keys_under_master(&self, version: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM workspace_keys WHERE master_version = $1")
            .bind(version)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Db)
    }

    /// Delete an old master key version once nothing is wrapped under it.
    pub async fn retire_master_key(&self, version: i64) -> Result<(), StoreError> {
        if self.keys_under_master(version).await? > 0 {
            return Err(StoreError::Conflict("master_key_in_use"));
        }
        self.keyring.retire(version)?;
        Ok(())
    }

    // ---------------------------------------------------------------- workspaces

    /// Create a workspace with its key and a first full-access API token (returned once).
    pub async fn create_workspace(&self, name: &str) -> Result<(Workspace, ApiToken), StoreError> {
        let id = WorkspaceId::new(self.region);
        let now = now_ms();
        let material = KeyMaterial::generate()?;
        let master = self.keyring.active()?;
        let wrapped = master.wrap_workspace_key(id.as_str(), 1, &material)?;
        let keys = WorkspaceKeys::derive(&material, 1)?;
        let name_ct = Sealer::new("workspaces", &keys.aead, &id, id.as_str(), &ws_key_id(1))
            .seal("name", name.as_bytes())?;
        let token = ApiToken::generate(TokenKind::Api, self.region)?;
        let unit = vec![
            Stmt::new(
                "INSERT INTO workspaces (id, region, name_ct, key_version, created_at, last_active_at) VALUES ($1, $2, $3, 1, $4, $4)",
                vec![
                    Arg::Text(id.to_string()),
                    Arg::Text(self.region.to_string()),
                    Arg::Bytes(name_ct),
                    Arg::Int(now),
                ],
            ),
            Stmt::new(
                "INSERT INTO workspace_keys (workspace_id, version, master_version, wrapped, created_at) VALUES ($1, 1, $2, $3, $4)",
                vec![
                    Arg::Text(id.to_string()),
                    Arg::Int(master.version),
                    Arg::Bytes(wrapped),
                    Arg::Int(now),
                ],
            ),
            Self::token_stmt(
                &id,
                &keys,
                &token,
                FIRST_TOKEN_NAME,
                TokenScope::Full,
                None,
                None,
                now,
            )?
            .1,
        ];
        self.writer.write(unit).await?;
        self.ws_keys.insert((id.clone(), 1), Arc::new(keys));
        self.ws_version.insert(id.clone(), 1);
        Ok((
            Workspace {
                id,
                name: name.to_owned(),
                region: self.region,
                created_at: now,
            },
            token,
        ))
    }

    /// Workspaces of this region, names decrypted, in creation order.
    pub async fn list_workspaces(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Page<Workspace>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = sqlx::query(
            "SELECT id, name_ct, created_at FROM workspaces WHERE id > $1 AND deleted_at IS NULL ORDER BY id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(limit as usize) {
            let id = parse_id(WorkspaceId::parse(&col::<String>(row, "id")?))?;
            let keys = self.workspace_keys(&id, 1).await?;
            let name_ct: Vec<u8> = col(row, "name_ct")?;
            let name = Sealer::new("workspaces", &keys.aead, &id, id.as_str(), &ws_key_id(1))
                .open_text("name", &name_ct)?;
            items.push(Workspace {
                region: self.region,
                created_at: col(row, "created_at")?,
                id,
                name,
            });
        }
        Ok(page(items, rows.len(), limit, |x| x.id.to_string()))
    }

    // ---------------------------------------------------------------- contacts

    pub async fn create_contact(
        &self,
        ws: &WorkspaceId,
        input: NewContact,
    ) -> Result<Contact, StoreError> {
        let new = self.contact_unit(ws, input).await?;
        // Subscribed webhooks learn of it in the same transaction (transactional outbox).
        let c = &new.contact;
        let data = serde_json::json!({
            "id": c.id.as_str(),
            "role": c.role.as_str(),
            "external_id": c.external_id,
            "email": c.email,
            "name": c.name,
            "created_at": c.created_at.div_euclid(1000),
        });
        let hooks = self
            .webhook_stmts(ws, "contact.created", data, Some(&c.id))
            .await?;
        self.write_contact(ws, new, hooks).await
    }

    /// Write a new contact's unit (plus `extra` statements in the same transaction).
    async fn write_contact(
        &self,
        ws: &WorkspaceId,
        new: NewContactUnit,
        extra: Vec<Stmt>,
    ) -> Result<Contact, StoreError> {
        let mut unit = new.unit;
        unit.extend(extra);
        match self.writer.write(unit).await {
            Err(StoreError::Conflict(_)) => return Err(StoreError::Conflict("external_id_taken")),
            other => other?,
        }
        self.subject_keys.insert((ws.clone(), new.skid), new.key);
        Ok(new.contact)
    }

    /// The statements that create a contact with its own subject key, not yet written.
    async fn contact_unit(
        &self,
        ws: &WorkspaceId,
        input: NewContact,
    ) -> Result<NewContactUnit, StoreError> {
        self.check_region(ws)?;
        let wk = self.current_workspace_keys(ws).await?;
        let id = ContactId::new();
        let (skid, key, key_stmt) = self.new_subject_key(ws, &id).await?;
        let now = now_ms();
        let s = Sealer::new("contacts", &key, ws, id.as_str(), skid.as_str());
        let ext = input.external_id.as_ref().map(ExternalId::as_str);
        let email = input.email.as_ref().map(Email::as_str);
        let name = input.name.as_ref().map(|n| n.as_str());
        let phone = input.phone.as_ref().map(|p| p.as_str());
        let attrs = serde_json::to_vec(input.custom_attributes.as_map())
            .map_err(|_| StoreError::Config("attributes".into()))?;
        let stmt = Stmt::new(
            "INSERT INTO contacts (workspace_id, id, role, subject_key_id, external_id_ct, external_id_bidx, email_ct, email_bidx, name_ct, phone_ct, custom_attributes_ct, created_at, updated_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12)",
            vec![
                Arg::Text(ws.to_string()),
                Arg::Text(id.to_string()),
                Arg::Text(input.role.as_str().to_owned()),
                Arg::Text(skid.to_string()),
                Arg::OptBytes(s.seal_opt("external_id", ext)?),
                Arg::OptBytes(ext.map(|v| wk.blind.index("external_id", v))),
                Arg::OptBytes(s.seal_opt("email", email)?),
                Arg::OptBytes(email.map(|v| wk.blind.index("email", v))),
                Arg::OptBytes(s.seal_opt("name", name)?),
                Arg::OptBytes(s.seal_opt("phone", phone)?),
                Arg::Bytes(s.seal("custom_attributes", &attrs)?),
                Arg::Int(now),
            ],
        );
        Ok(NewContactUnit {
            unit: vec![key_stmt, stmt],
            skid,
            key,
            contact: Contact {
                id,
                role: input.role,
                external_id: ext.map(str::to_owned),
                email: email.map(str::to_owned),
                name: name.map(str::to_owned),
                phone: phone.map(str::to_owned),
                custom_attributes: input.custom_attributes.into_map(),
                created_at: now,
                updated_at: now,
            },
        })
    }

    async fn decode_contact(&self, ws: &WorkspaceId, row: &AnyRow) -> Result<Contact, StoreError> {
        let id: String = col(row, "id")?;
        let skid = parse_id(SubjectKeyId::parse(&col::<String>(row, "subject_key_id")?))?;
        let key = self.subject_key(ws, &skid).await?;
        let s = Sealer::new("contacts", &key, ws, &id, skid.as_str());
        Ok(Contact {
            role: parse_id(ContactRole::parse(&col::<String>(row, "role")?))?,
            external_id: s.open_opt("external_id", col(row, "external_id_ct")?)?,
            email: s.open_opt("email", col(row, "email_ct")?)?,
            name: s.open_opt("name", col(row, "name_ct")?)?,
            phone: s.open_opt("phone", col(row, "phone_ct")?)?,
            custom_attributes: s.open_json(
                "custom_attributes",
                &col::<Vec<u8>>(row, "custom_attributes_ct")?,
            )?,
            created_at: col(row, "created_at")?,
            updated_at: col(row, "updated_at")?,
            id: parse_id(ContactId::parse(&id))?,
        })
    }

    async fn contact_row(&self, ws: &WorkspaceId, id: &ContactId) -> Result<AnyRow, StoreError> {
        self.check_region(ws)?;
        sqlx::query(CONTACT_BY_ID)
            .bind(ws.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?
            .ok_or(StoreError::NotFound)
    }

    pub async fn get_contact(
        &self,
        ws: &WorkspaceId,
        id: &ContactId,
    ) -> Result<Contact, StoreError> {
        let row = self.contact_row(ws, id).await?;
        self.decode_contact(ws, &row).await
    }

    /// The subject key id of a contact (for conversations and events about them).
    async fn contact_subject(
        &self,
        ws: &WorkspaceId,
        id: &ContactId,
    ) -> Result<SubjectKeyId, StoreError> {
        self.check_region(ws)?;
        let skid: String = sqlx::query_scalar(
            "SELECT subject_key_id FROM contacts WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        parse_id(SubjectKeyId::parse(&skid))
    }

    pub async fn update_contact(
        &self,
        ws: &WorkspaceId,
        id: &ContactId,
        patch: ContactPatch,
    ) -> Result<Contact, StoreError> {
        let row = self.contact_row(ws, id).await?;
        let current = self.decode_contact(ws, &row).await?;
        let updated_at_before: i64 = col(&row, "updated_at")?;
        let skid = parse_id(SubjectKeyId::parse(&col::<String>(&row, "subject_key_id")?))?;
        let key = self.subject_key(ws, &skid).await?;
        let wk = self.current_workspace_keys(ws).await?;
        let attributes = patch
            .merge_attributes(current.custom_attributes)
            .map_err(StoreError::Invalid)?;
        let pick = |p: Option<Option<String>>, cur: Option<String>| match p {
            Some(v) => v,
            None => cur,
        };
        let next = Contact {
            id: current.id.clone(),
            role: patch.role.unwrap_or(current.role),
            external_id: pick(
                patch.external_id.map(|o| o.map(ExternalId::into_string)),
                current.external_id,
            ),
            email: pick(
                patch.email.map(|o| o.map(|e| e.as_str().to_owned())),
                current.email,
            ),
            name: pick(
                patch.name.map(|o| o.map(|n| n.as_str().to_owned())),
                current.name,
            ),
            phone: pick(
                patch.phone.map(|o| o.map(|p| p.as_str().to_owned())),
                current.phone,
            ),
            custom_attributes: attributes,
            created_at: current.created_at,
            updated_at: now_ms().max(updated_at_before + 1),
        };
        if next.role == ContactRole::User && next.external_id.is_none() && next.email.is_none() {
            return Err(StoreError::Invalid(DomainError::new(
                "role",
                "user_needs_identifier",
                "a contact with role user needs an external_id or an email",
            )));
        }
        let s = Sealer::new("contacts", &key, ws, id.as_str(), skid.as_str());
        let attrs = serde_json::to_vec(&next.custom_attributes)
            .map_err(|_| StoreError::Config("attributes".into()))?;
        // The WHERE on updated_at makes a concurrent update lose cleanly instead of silently
        // overwriting: exactly one row must change.
        let stmt = Stmt::new(
            "UPDATE contacts SET role = $3, external_id_ct = $4, external_id_bidx = $5, email_ct = $6, email_bidx = $7, name_ct = $8, phone_ct = $9, custom_attributes_ct = $10, updated_at = $11 WHERE workspace_id = $1 AND id = $2 AND updated_at = $12",
            vec![
                Arg::Text(ws.to_string()),
                Arg::Text(id.to_string()),
                Arg::Text(next.role.as_str().to_owned()),
                Arg::OptBytes(s.seal_opt("external_id", next.external_id.as_deref())?),
                Arg::OptBytes(next.external_id.as_deref().map(|v| wk.blind.index("external_id", v))),
                Arg::OptBytes(s.seal_opt("email", next.email.as_deref())?),
                Arg::OptBytes(next.email.as_deref().map(|v| wk.blind.index("email", v))),
                Arg::OptBytes(s.seal_opt("name", next.name.as_deref())?),
                Arg::OptBytes(s.seal_opt("phone", next.phone.as_deref())?),
                Arg::Bytes(s.seal("custom_attributes", &attrs)?),
                Arg::Int(next.updated_at),
                Arg::Int(updated_at_before),
            ],
        )
        .expect(1);
        match self.writer.write(vec![stmt]).await {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict("external_id_taken")),
            Err(StoreError::NotFound) => Err(StoreError::Conflict("concurrent_update")),
            Err(e) => Err(e),
            Ok(()) => Ok(next),
        }
    }

    /// Contacts whose email (normalised) or external id matches exactly, via blind index.
    pub async fn find_contacts(
        &self,
        ws: &WorkspaceId,
        email: Option<&Email>,
        external_id: Option<&ExternalId>,
    ) -> Result<Vec<Contact>, StoreError> {
        self.check_region(ws)?;
        let wk = self.current_workspace_keys(ws).await?;
        let rows = match (email, external_id) {
            (Some(e), _) => {
                sqlx::query(CONTACT_BY_EMAIL)
                    .bind(ws.as_str())
                    .bind(wk.blind.index("email", e.as_str()))
                    .fetch_all(&self.pool)
                    .await
            }
            (None, Some(x)) => {
                sqlx::query(CONTACT_BY_EXTERNAL_ID)
                    .bind(ws.as_str())
                    .bind(wk.blind.index("external_id", x.as_str()))
                    .fetch_all(&self.pool)
                    .await
            }
            (None, None) => return Ok(Vec::new()),
        }
        .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let c = self.decode_contact(ws, row).await?;
            // Both filters given: both must match.
            if let (Some(_), Some(x)) = (email, external_id)
                && c.external_id.as_deref() != Some(x.as_str())
            {
                continue;
            }
            out.push(c);
        }
        Ok(out)
    }

    pub async fn list_contacts(
        &self,
        ws: &WorkspaceId,
        after: Option<&ContactId>,
        limit: i64,
    ) -> Result<Page<Contact>, StoreError> {
        self.check_region(ws)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = sqlx::query(CONTACT_LIST)
            .bind(ws.as_str())
            .bind(after.map(ContactId::as_str).unwrap_or(""))
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        let mut items = Vec::new();
        for row in rows.iter().take(limit as usize) {
            items.push(self.decode_contact(ws, row).await?);
        }
        Ok(page(items, rows.len(), limit, |x| x.id.to_string()))
    }

    // ---------------------------------------------------------------- conversations

    fn part_stmt(
        ws: &WorkspaceId,
        conversation: &ConversationId,
        key: &AeadKey,
        skid: &SubjectKeyId,
        author: &Author,
        body: &Body,
        now: i64,
    ) -> Result<(PartId, Stmt), StoreError> {
        let id = PartId::new();
        let body_ct = Sealer::new("conversation_parts", key, ws, id.as_str(), skid.as_str())
            .seal("body", body.as_str().as_bytes())?;
        Ok((
            id.clone(),
            Stmt::row(
                "INSERT INTO conversation_parts (workspace_id, id, conversation_id, author_type, author_id, body_ct, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                PART_ROW,
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Text(conversation.to_string()),
                    Arg::Text(author.kind.as_str().to_owned()),
                    Arg::Text(author.id.clone()),
                    Arg::Bytes(body_ct),
                    Arg::Int(now),
                ],
            ),
        ))
    }

    /// Start a conversation for a contact; `body` is its first part, written by the contact.
    pub async fn create_conversation(
        &self,
        ws: &WorkspaceId,
        contact_id: &ContactId,
        body: &Body,
    ) -> Result<Conversation, StoreError> {
        self.create_conversation_with(ws, contact_id, body, |_| Vec::new())
            .await
    }

    /// Start a conversation, writing `extra(id)` in the same transaction.
    async fn create_conversation_with(
        &self,
        ws: &WorkspaceId,
        contact_id: &ContactId,
        body: &Body,
        extra: impl FnOnce(&ConversationId) -> Vec<Stmt>,
    ) -> Result<Conversation, StoreError> {
        let skid = self.contact_subject(ws, contact_id).await?;
        let key = self.subject_key(ws, &skid).await?;
        let id = ConversationId::new();
        let now = now_ms();
        let author = Author {
            kind: AuthorType::Contact,
            id: contact_id.to_string(),
        };
        let (part_id, part) = Self::part_stmt(ws, &id, &key, &skid, &author, body, now)?;
        let conv = Stmt::new(
            "INSERT INTO conversations (workspace_id, id, contact_id, subject_key_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
            vec![
                Arg::Text(ws.to_string()),
                Arg::Text(id.to_string()),
                Arg::Text(contact_id.to_string()),
                Arg::Text(skid.to_string()),
                Arg::Int(now),
            ],
        );
        let mut unit = vec![conv, part];
        unit.extend(extra(&id));
        self.writer.write(unit).await?;
        self.conversations.insert(
            (ws.clone(), id.clone()),
            ConvMeta {
                contact_id: contact_id.clone(),
                subject_key_id: skid,
            },
        );
        Ok(Conversation {
            id,
            contact_id: contact_id.clone(),
            created_at: now,
            updated_at: now,
            parts: vec![Part {
                id: part_id,
                author_type: AuthorType::Contact,
                author_id: contact_id.to_string(),
                body: body.as_str().to_owned(),
                created_at: now,
            }],
        })
    }

    async fn conversation_meta(
        &self,
        ws: &WorkspaceId,
        id: &ConversationId,
    ) -> Result<ConvMeta, StoreError> {
        self.check_region(ws)?;
        let cache_key = (ws.clone(), id.clone());
        if let Some(m) = self.conversations.get(&cache_key) {
            return Ok(m);
        }
        let row = sqlx::query(
            "SELECT contact_id, subject_key_id FROM conversations WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        let meta = ConvMeta {
            contact_id: parse_id(ContactId::parse(&col::<String>(&row, "contact_id")?))?,
            subject_key_id: parse_id(SubjectKeyId::parse(&col::<String>(&row, "subject_key_id")?))?,
        };
        self.conversations.insert(cache_key, meta.clone());
        Ok(meta)
    }

    /// Append a part to a conversation. A contact author must be the conversation's contact.
    pub async fn add_part(
        &self,
        ws: &WorkspaceId,
        conversation: &ConversationId,
        author: &Author,
        body: &Body,
    ) -> Result<Part, StoreError> {
        let mut meta = self.conversation_meta(ws, conversation).await?;
        if author.kind == AuthorType::Contact && author.id != meta.contact_id.as_str() {
            // The cached owner may be stale (a visitor merged into a user by another
            // process): look again before refusing.
            self.conversations
                .remove(&(ws.clone(), conversation.clone()));
            meta = self.conversation_meta(ws, conversation).await?;
        }
        if author.kind == AuthorType::Contact && author.id != meta.contact_id.as_str() {
            return Err(StoreError::Invalid(DomainError::new(
                "author.id",
                "author_not_in_conversation",
                "a contact author must be the conversation's contact",
            )));
        }
        let key = self.subject_key(ws, &meta.subject_key_id).await?;
        let now = now_ms();
        let (id, part) = Self::part_stmt(
            ws,
            conversation,
            &key,
            &meta.subject_key_id,
            author,
            body,
            now,
        )?;
        // One statement per message: a conversation's `updated_at` is derived from its newest
        // part when read (an index makes that a lookup), so a busy conversation's row is not
        // rewritten on every message. The part's foreign key proves the conversation exists.
        self.writer.write(vec![part]).await?;
        Ok(Part {
            id,
            author_type: author.kind,
            author_id: author.id.clone(),
            body: body.as_str().to_owned(),
            created_at: now,
        })
    }

    pub async fn get_conversation(
        &self,
        ws: &WorkspaceId,
        id: &ConversationId,
    ) -> Result<Conversation, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT c.id, c.contact_id, c.subject_key_id, c.created_at, COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.updated_at) AS updated_at FROM conversations c WHERE c.workspace_id = $1 AND c.id = $2",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        let skid = parse_id(SubjectKeyId::parse(&col::<String>(&row, "subject_key_id")?))?;
        let key = self.subject_key(ws, &skid).await?;
        let part_rows = sqlx::query(
            "SELECT id, author_type, author_id, body_ct, created_at FROM conversation_parts WHERE workspace_id = $1 AND conversation_id = $2 ORDER BY created_at, id",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut parts = Vec::with_capacity(part_rows.len());
        for p in &part_rows {
            let pid: String = col(p, "id")?;
            let body = Sealer::new("conversation_parts", &key, ws, &pid, skid.as_str())
                .open_text("body", &col::<Vec<u8>>(p, "body_ct")?)?;
            parts.push(Part {
                id: parse_id(PartId::parse(&pid))?,
                author_type: parse_id(AuthorType::parse(&col::<String>(p, "author_type")?))?,
                author_id: col(p, "author_id")?,
                body,
                created_at: col(p, "created_at")?,
            });
        }
        Ok(Conversation {
            id: id.clone(),
            contact_id: parse_id(ContactId::parse(&col::<String>(&row, "contact_id")?))?,
            created_at: col(&row, "created_at")?,
            updated_at: col(&row, "updated_at")?,
            parts,
        })
    }

    pub async fn list_conversations(
        &self,
        ws: &WorkspaceId,
        contact_id: Option<&ContactId>,
        after: Option<&ConversationId>,
        limit: i64,
    ) -> Result<Page<Conversation>, StoreError> {
        self.check_region(ws)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let after = after.map(ConversationId::as_str).unwrap_or("");
        let rows = match contact_id {
            Some(c) => sqlx::query(
                "SELECT c.id, c.contact_id, c.created_at, COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.updated_at) AS updated_at FROM conversations c WHERE c.workspace_id = $1 AND c.contact_id = $2 AND c.id > $3 ORDER BY c.id LIMIT $4",
            )
            .bind(ws.as_str())
            .bind(c.as_str())
            .bind(after)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await,
            None => sqlx::query(
                "SELECT c.id, c.contact_id, c.created_at, COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.updated_at) AS updated_at FROM conversations c WHERE c.workspace_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3",
            )
            .bind(ws.as_str())
            .bind(after)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await,
        }
        .map_err(StoreError::Db)?;
        conversation_page(&rows, limit)
    }

    // ---------------------------------------------------------------- events

    pub async fn create_event(
        &self,
        ws: &WorkspaceId,
        input: NewEvent,
    ) -> Result<Event, StoreError> {
        let skid = self.contact_subject(ws, &input.contact_id).await?;
        let key = self.subject_key(ws, &skid).await?;
        let id = EventId::new();
        let now = now_ms();
        let s = Sealer::new("events", &key, ws, id.as_str(), skid.as_str());
        let meta = serde_json::to_vec(input.metadata.as_map())
            .map_err(|_| StoreError::Config("metadata".into()))?;
        let stmt = Stmt::new(
            "INSERT INTO events (workspace_id, id, contact_id, subject_key_id, name_ct, metadata_ct, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                Arg::Text(ws.to_string()),
                Arg::Text(id.to_string()),
                Arg::Text(input.contact_id.to_string()),
                Arg::Text(skid.to_string()),
                Arg::Bytes(s.seal("name", input.name.as_str().as_bytes())?),
                Arg::Bytes(s.seal("metadata", &meta)?),
                Arg::Int(now),
            ],
        );
        self.writer.write(vec![stmt]).await?;
        Ok(Event {
            id,
            contact_id: input.contact_id,
            name: input.name.into_string(),
            metadata: input.metadata.as_map().clone(),
            created_at: now,
        })
    }

    pub async fn list_events(
        &self,
        ws: &WorkspaceId,
        contact_id: &ContactId,
        after: Option<&EventId>,
        limit: i64,
    ) -> Result<Page<Event>, StoreError> {
        // The contact must exist (404 otherwise); each event is opened with its own key,
        // since a merged visitor's events keep the visitor's key.
        self.contact_subject(ws, contact_id).await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = sqlx::query(
            "SELECT id, subject_key_id, name_ct, metadata_ct, created_at FROM events WHERE workspace_id = $1 AND contact_id = $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(ws.as_str())
        .bind(contact_id.as_str())
        .bind(after.map(EventId::as_str).unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut items = Vec::new();
        for row in rows.iter().take(limit as usize) {
            let id: String = col(row, "id")?;
            let skid = parse_id(SubjectKeyId::parse(&col::<String>(row, "subject_key_id")?))?;
            let key = self.subject_key(ws, &skid).await?;
            let s = Sealer::new("events", &key, ws, &id, skid.as_str());
            items.push(Event {
                name: s.open_text("name", &col::<Vec<u8>>(row, "name_ct")?)?,
                metadata: s.open_json("metadata", &col::<Vec<u8>>(row, "metadata_ct")?)?,
                created_at: col(row, "created_at")?,
                contact_id: contact_id.clone(),
                id: parse_id(EventId::parse(&id))?,
            });
        }
        Ok(page(items, rows.len(), limit, |x| x.id.to_string()))
    }

    // ---------------------------------------------------------------- attachments

    /// Store an attachment: the sealed bytes go to the blob store first, then the row; if the
    /// row cannot be written the blob is removed again.
    pub async fn add_attachment(
        &self,
        ws: &WorkspaceId,
        conversation: &ConversationId,
        filename: &AttachmentName,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Attachment, StoreError> {
        let meta = self.conversation_meta(ws, conversation).await?;
        let key = self.subject_key(ws, &meta.subject_key_id).await?;
        let id = AttachmentId::new();
        let now = now_ms();
        let s = Sealer::new(
            "attachments",
            &key,
            ws,
            id.as_str(),
            meta.subject_key_id.as_str(),
        );
        let sealed = s.seal("content", bytes)?;
        self.blobs.put(ws, &id, &sealed).await?;
        let stmt = Stmt::new(
            "INSERT INTO attachments (workspace_id, id, conversation_id, subject_key_id, filename_ct, content_type_ct, size_bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            vec![
                Arg::Text(ws.to_string()),
                Arg::Text(id.to_string()),
                Arg::Text(conversation.to_string()),
                Arg::Text(meta.subject_key_id.to_string()),
                Arg::Bytes(s.seal("filename", filename.as_str().as_bytes())?),
                Arg::Bytes(s.seal("content_type", content_type.as_bytes())?),
                Arg::Int(bytes.len() as i64),
                Arg::Int(now),
            ],
        );
        if let Err(e) = self.writer.write(vec![stmt]).await {
            let _ = self.blobs.delete(ws, &id).await;
            return Err(e);
        }
        Ok(Attachment {
            id,
            conversation_id: conversation.clone(),
            filename: filename.as_str().to_owned(),
            content_type: content_type.to_owned(),
            size: bytes.len() as i64,
            created_at: now,
        })
    }

    async fn decode_attachment(
        &self,
        ws: &WorkspaceId,
        row: &AnyRow,
    ) -> Result<(Attachment, SubjectKeyId, Arc<AeadKey>), StoreError> {
        let id: String = col(row, "id")?;
        let skid = parse_id(SubjectKeyId::parse(&col::<String>(row, "subject_key_id")?))?;
        let key = self.subject_key(ws, &skid).await?;
        let s = Sealer::new("attachments", &key, ws, &id, skid.as_str());
        let a = Attachment {
            filename: s.open_text("filename", &col::<Vec<u8>>(row, "filename_ct")?)?,
            content_type: s.open_text("content_type", &col::<Vec<u8>>(row, "content_type_ct")?)?,
            size: col(row, "size_bytes")?,
            created_at: col(row, "created_at")?,
            conversation_id: parse_id(ConversationId::parse(&col::<String>(
                row,
                "conversation_id",
            )?))?,
            id: parse_id(AttachmentId::parse(&id))?,
        };
        Ok((a, skid, key))
    }

    pub async fn list_attachments(
        &self,
        ws: &WorkspaceId,
        conversation: &ConversationId,
    ) -> Result<Vec<Attachment>, StoreError> {
        self.conversation_meta(ws, conversation).await?;
        let rows = sqlx::query(
            "SELECT id, conversation_id, subject_key_id, filename_ct, content_type_ct, size_bytes, created_at FROM attachments WHERE workspace_id = $1 AND conversation_id = $2 ORDER BY id",
        )
        .bind(ws.as_str())
        .bind(conversation.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.decode_attachment(ws, row).await?.0);
        }
        Ok(out)
    }

    /// An attachment's metadata and decrypted bytes.
    pub async fn get_attachment(
        &self,
        ws: &WorkspaceId,
        conversation: &ConversationId,
        id: &AttachmentId,
    ) -> Result<(Attachment, Vec<u8>), StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT id, conversation_id, subject_key_id, filename_ct, content_type_ct, size_bytes, created_at FROM attachments WHERE workspace_id = $1 AND conversation_id = $2 AND id = $3",
        )
        .bind(ws.as_str())
        .bind(conversation.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        let (a, skid, key) = self.decode_attachment(ws, &row).await?;
        let sealed = self.blobs.get(ws, id).await?;
        let bytes = Sealer::new("attachments", &key, ws, id.as_str(), skid.as_str())
            .open_bytes("content", &sealed)?;
        Ok((a, bytes.to_vec()))
    }

    /// Benchmark floor: insert plaintext part rows straight into this store, `per_commit` parts
    /// per transaction, for `duration`, spread round-robin over `conversations` (the same ones
    /// the API clients post to, so the same index pages are touched).
    /// Same database, same durability settings; no HTTP, no encryption. Returns parts per second.
    pub async fn raw_part_ingest(
        &self,
        ws: &WorkspaceId,
        conversations: &[ConversationId],
        body: &[u8],
        per_commit: usize,
        duration: std::time::Duration,
    ) -> Result<f64, StoreError> {
        if conversations.is_empty() {
            return Err(StoreError::NotFound);
        }
        let mut conn = self.pool.acquire().await.map_err(StoreError::Db)?;
        let started = std::time::Instant::now();
        let mut written = 0u64;
        let mut next = 0usize;
        while started.elapsed() < duration {
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(StoreError::Db)?;
            let rows: Vec<Vec<Arg>> = (0..per_commit.max(1))
                .map(|_| {
                    // Spread over the same conversations as the API clients, as they do.
                    let conversation = &conversations[next % conversations.len()];
                    next += 1;
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(PartId::new().to_string()),
                        Arg::Text(conversation.to_string()),
                        Arg::Text("teammate".into()),
                        Arg::Text("tm_0190a0c1a2b34c5d8e9f001122334455".into()),
                        Arg::Bytes(body.to_vec()),
                        Arg::Int(now_ms()),
                    ]
                })
                .collect();
            let refs: Vec<&[Arg]> = rows.iter().map(Vec::as_slice).collect();
            // The same statements the writer issues for a group of parts.
            db::insert_rows(&mut tx, PART_ROW, &refs).await?;
            tx.commit().await.map_err(StoreError::Db)?;
            written += per_commit.max(1) as u64;
        }
        Ok(written as f64 / started.elapsed().as_secs_f64())
    }

    /// Benchmark set-up: `n` part rows in one conversation, written straight into the store
    /// (opaque bodies, 5,000 per transaction). For measuring deletions, not reads.
    pub async fn bench_insert_parts(
        &self,
        ws: &WorkspaceId,
        conversation: &ConversationId,
        n: usize,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::Db)?;
        let mut left = n;
        while left > 0 {
            let take = left.min(5000);
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(StoreError::Db)?;
            let rows: Vec<Vec<Arg>> = (0..take)
                .map(|_| {
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(PartId::new().to_string()),
                        Arg::Text(conversation.to_string()),
                        Arg::Text("teammate".into()),
                        Arg::Text("tm_0190a0c1a2b34c5d8e9f001122334455".into()),
                        Arg::Bytes(body.to_vec()),
                        Arg::Int(now_ms()),
                    ]
                })
                .collect();
            let refs: Vec<&[Arg]> = rows.iter().map(Vec::as_slice).collect();
            db::insert_rows(&mut tx, PART_ROW, &refs).await?;
            tx.commit().await.map_err(StoreError::Db)?;
            left -= take;
        }
        Ok(())
    }

    /// Forget cached keys and lookups (used after out-of-band changes, e.g. in tests).
    pub fn clear_caches(&self) {
        self.tokens.clear();
        self.ws_keys.clear();
        self.ws_version.clear();
        self.subject_keys.clear();
        self.conversations.clear();
    }
}

/// Parts are the hot path: merged into multi-row INSERTs inside a group commit.
const PART_ROW: RowInsert = RowInsert {
    head: "INSERT INTO conversation_parts (workspace_id, id, conversation_id, author_type, author_id, body_ct, created_at) VALUES ",
    columns: 7,
};

// The contact SELECTs share one column list; spelled out as constants so every query text is
// static (no SQL is built from input at run time).
const CONTACT_BY_ID: &str = "SELECT id, role, subject_key_id, external_id_ct, email_ct, name_ct, phone_ct, custom_attributes_ct, created_at, updated_at FROM contacts WHERE workspace_id = $1 AND id = $2";
const CONTACT_BY_EMAIL: &str = "SELECT id, role, subject_key_id, external_id_ct, email_ct, name_ct, phone_ct, custom_attributes_ct, created_at, updated_at FROM contacts WHERE workspace_id = $1 AND email_bidx = $2 ORDER BY id LIMIT 100";
const CONTACT_BY_EXTERNAL_ID: &str = "SELECT id, role, subject_key_id, external_id_ct, email_ct, name_ct, phone_ct, custom_attributes_ct, created_at, updated_at FROM contacts WHERE workspace_id = $1 AND external_id_bidx = $2 ORDER BY id LIMIT 100";
const CONTACT_LIST: &str = "SELECT id, role, subject_key_id, external_id_ct, email_ct, name_ct, phone_ct, custom_attributes_ct, created_at, updated_at FROM contacts WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3";
