//! The activity log: a hash chain per workspace, appended in the same transaction as the
//! action it records, with Ed25519-signed checkpoints.
//!
//! Invariants:
//! - An entry is appended only as a statement of the unit that performs the action (or alone,
//!   for events that change nothing else, like a failed sign-in), so no action commits without
//!   its entry and a failed append fails the action.
//! - The entry (canonical JSON) is sealed under the workspace key; the plain columns hold only
//!   ids, the type and the time, for filtering. Contacts appear by pseudonymous id only.
//! - Sequence numbers and hashes are assigned by the writer inside the committing transaction
//!   (see `db::LogAppend`); nothing else writes `activity_log` rows except the retention cut,
//!   which deletes a prefix of a chain after signing a checkpoint at the cut.

use interlock_crypto::WorkspaceKeys;
use interlock_crypto::audit::{
    AuditPublicKey, Checkpoint, CheckpointKind, GENESIS, SignedCheckpoint, chain_hash, leaf_hash,
};
use interlock_domain::{ActivityEntry, ActivityId, ActivityType, NewActivity, WorkspaceId};
use sqlx::any::AnyRow;

use super::{Cell, Sealer, col, parse_id, ws_key_id};
use crate::db::{Arg, LogAppend, Stmt, decode_hash};
use crate::{StoreError, now_ms};

/// Most event types one query may filter on.
pub const MAX_TYPE_FILTER: usize = 10;

/// One stored entry: its place in the chain and its content.
#[derive(Debug, Clone)]
pub struct StoredActivity {
    pub seq: i64,
    pub hash: String,
    pub entry: ActivityEntry,
}

/// One stored entry with its canonical bytes (what was hashed), for exports and verification.
#[derive(Clone)]
pub struct RawActivity {
    pub seq: i64,
    pub hash: [u8; 32],
    pub canonical: zeroize::Zeroizing<Vec<u8>>,
    /// The plain columns, to check against the sealed entry.
    columns: PlainColumns,
}

impl std::fmt::Debug for RawActivity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawActivity")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
struct PlainColumns {
    id: String,
    kind: String,
    created_at: i64,
    actor_type: String,
    actor_id: Option<String>,
    target_type: String,
    target_id: Option<String>,
}

impl PlainColumns {
    fn of(e: &ActivityEntry) -> Self {
        Self {
            id: e.id.clone(),
            kind: e.kind.clone(),
            created_at: e.created_at_ms,
            actor_type: e.actor.kind.as_str().to_owned(),
            actor_id: e.actor.id.clone(),
            target_type: e.target.kind.clone(),
            target_id: e.target.id.clone(),
        }
    }
}

/// A chain's head: its length and last hash, the first retained entry and the hash before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityHead {
    pub seq: i64,
    pub hash: [u8; 32],
    pub first_seq: i64,
    pub anchor_hash: [u8; 32],
    pub checkpoint_seq: i64,
    pub checkpoint_at: i64,
}

/// Filters of a log query; times are milliseconds, `created_at` in `[after, before)`.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub after_ms: Option<i64>,
    pub before_ms: Option<i64>,
    pub types: Vec<ActivityType>,
    pub actor_id: Option<String>,
    /// Continue below this sequence number (the cursor; pages go newest first).
    pub below_seq: Option<i64>,
    pub limit: i64,
}

/// What verifying one workspace's stored chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub workspace: WorkspaceId,
    pub first_seq: i64,
    pub last_seq: i64,
    pub entries: u64,
    pub checkpoints: u64,
    pub bytes: u64,
}

/// The first problem verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFailure {
    pub workspace: WorkspaceId,
    pub seq: Option<i64>,
    pub entry_id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for ChainFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.workspace)?;
        if let Some(seq) = self.seq {
            write!(f, " seq {seq}")?;
        }
        if let Some(id) = &self.entry_id {
            write!(f, " ({id})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What a retention cut removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutReport {
    pub removed: i64,
    /// The new first retained sequence number.
    pub first_seq: i64,
}

fn hash_text(h: &[u8; 32]) -> String {
    hex::encode(h)
}

impl Cell {
    /// Build the append statement for `act` (sealed entry, leaf hash). Put it in the unit
    /// that performs the action.
    pub(crate) fn activity_stmt_with(
        ws: &WorkspaceId,
        wk: &WorkspaceKeys,
        act: &NewActivity,
    ) -> Result<Stmt, StoreError> {
        let entry = ActivityEntry {
            id: ActivityId::new().to_string(),
            kind: act.kind.as_str().to_owned(),
            created_at_ms: now_ms(),
            actor: act.actor.clone(),
            target: act.target.clone(),
            metadata: act.metadata.clone(),
        };
        let canonical = zeroize::Zeroizing::new(entry.canonical_bytes());
        let leaf = leaf_hash(&canonical);
        let key_id = ws_key_id(wk.version);
        let s = Sealer::new("activity_log", &wk.aead, ws, &entry.id, &key_id);
        let body = s.seal("entry", &canonical)?;
        Ok(Stmt::append(LogAppend {
            workspace_id: ws.to_string(),
            leaf,
            columns: vec![
                Arg::Text(entry.id),
                Arg::Text(entry.kind),
                Arg::Int(entry.created_at_ms),
                Arg::Text(entry.actor.kind.as_str().to_owned()),
                Arg::OptText(entry.actor.id),
                Arg::Text(entry.target.kind),
                Arg::OptText(entry.target.id),
                Arg::Bytes(body),
                Arg::Int(wk.version),
            ],
        }))
    }

    /// The append statement for `act` under the workspace's current key.
    pub(crate) async fn activity_stmt(
        &self,
        ws: &WorkspaceId,
        act: &NewActivity,
    ) -> Result<Stmt, StoreError> {
        let wk = self.current_workspace_keys(ws).await?;
        Self::activity_stmt_with(ws, &wk, act)
    }

    /// Record an event that changes nothing else (a failed sign-in, a denied request, an
    /// export). Durable when this returns.
    pub async fn record_activity(
        &self,
        ws: &WorkspaceId,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        self.check_region(ws)?;
        let stmt = self.activity_stmt(ws, act).await?;
        self.writer.write(vec![stmt]).await
    }

    /// Append many entries in one unit (benchmarks, bulk system events).
    pub async fn record_activities(
        &self,
        ws: &WorkspaceId,
        acts: &[NewActivity],
    ) -> Result<(), StoreError> {
        self.check_region(ws)?;
        let wk = self.current_workspace_keys(ws).await?;
        let unit = acts
            .iter()
            .map(|a| Self::activity_stmt_with(ws, &wk, a))
            .collect::<Result<Vec<_>, _>>()?;
        self.writer.write(unit).await
    }

    async fn open_activity_row(
        &self,
        ws: &WorkspaceId,
        row: &AnyRow,
    ) -> Result<RawActivity, StoreError> {
        let id: String = col(row, "id")?;
        let version: i64 = col(row, "ws_key_version")?;
        let wk = self.workspace_keys(ws, version).await?;
        let key_id = ws_key_id(version);
        let s = Sealer::new("activity_log", &wk.aead, ws, &id, &key_id);
        let body: Vec<u8> = col(row, "body_ct")?;
        let canonical = s.open_bytes("entry", &body)?;
        let hash: String = col(row, "hash")?;
        Ok(RawActivity {
            seq: col(row, "seq")?,
            hash: decode_hash(&hash)?,
            canonical,
            columns: PlainColumns {
                id,
                kind: col(row, "type")?,
                created_at: col(row, "created_at")?,
                actor_type: col(row, "actor_type")?,
                actor_id: col(row, "actor_id")?,
                target_type: col(row, "target_type")?,
                target_id: col(row, "target_id")?,
            },
        })
    }

    fn parse_entry(raw: &RawActivity) -> Result<ActivityEntry, StoreError> {
        serde_json::from_slice(&raw.canonical)
            .map_err(|_| StoreError::Integrity(interlock_crypto::CryptoError::Malformed))
    }

    /// A page of entries, newest first.
    pub async fn list_activity(
        &self,
        ws: &WorkspaceId,
        f: &ActivityFilter,
    ) -> Result<crate::Page<StoredActivity>, StoreError> {
        self.check_region(ws)?;
        if f.types.len() > MAX_TYPE_FILTER {
            return Err(StoreError::Invalid(interlock_domain::DomainError::new(
                "types",
                "too_many_types",
                "filter on at most 10 event types",
            )));
        }
        let mut q = sqlx::query(
            "SELECT seq, id, type, created_at, actor_type, actor_id, target_type, target_id, body_ct, ws_key_version, hash FROM activity_log \
             WHERE workspace_id = $1 AND seq < $2 AND created_at >= $3 AND created_at < $4 AND ($5 = '' OR actor_id = $5) \
             AND ($6 = 0 OR type IN ($7, $8, $9, $10, $11, $12, $13, $14, $15, $16)) ORDER BY seq DESC LIMIT $17",
        )
        .bind(ws.as_str())
        .bind(f.below_seq.unwrap_or(i64::MAX))
        .bind(f.after_ms.unwrap_or(i64::MIN))
        .bind(f.before_ms.unwrap_or(i64::MAX))
        .bind(f.actor_id.clone().unwrap_or_default())
        .bind(i64::from(!f.types.is_empty()));
        for i in 0..MAX_TYPE_FILTER {
            q = q.bind(f.types.get(i).map(|t| t.as_str()).unwrap_or(""));
        }
        let rows = q
            .bind(f.limit + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(f.limit as usize) {
            let raw = self.open_activity_row(ws, row).await?;
            items.push(StoredActivity {
                seq: raw.seq,
                hash: hash_text(&raw.hash),
                entry: Self::parse_entry(&raw)?,
            });
        }
        Ok(super::page(items, rows.len(), f.limit, |x| {
            x.seq.to_string()
        }))
    }

    /// Up to `limit` entries from `from_seq` on, oldest first, with their canonical bytes.
    pub async fn activity_from(
        &self,
        ws: &WorkspaceId,
        from_seq: i64,
        to_seq: i64,
        limit: i64,
    ) -> Result<Vec<RawActivity>, StoreError> {
        let rows = self.activity_rows(ws, from_seq, to_seq, limit).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.open_activity_row(ws, row).await?);
        }
        Ok(out)
    }

    async fn activity_rows(
        &self,
        ws: &WorkspaceId,
        from_seq: i64,
        to_seq: i64,
        limit: i64,
    ) -> Result<Vec<AnyRow>, StoreError> {
        self.check_region(ws)?;
        sqlx::query(
            "SELECT seq, id, type, created_at, actor_type, actor_id, target_type, target_id, body_ct, ws_key_version, hash FROM activity_log \
             WHERE workspace_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        )
        .bind(ws.as_str())
        .bind(from_seq)
        .bind(to_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)
    }

    /// Entries from `from_seq` on, parsed (for sinks).
    pub async fn activity_entries_from(
        &self,
        ws: &WorkspaceId,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredActivity>, StoreError> {
        self.activity_from(ws, from_seq, i64::MAX, limit)
            .await?
            .iter()
            .map(|raw| {
                Ok(StoredActivity {
                    seq: raw.seq,
                    hash: hash_text(&raw.hash),
                    entry: Self::parse_entry(raw)?,
                })
            })
            .collect()
    }

    /// The chain's head, or `None` if the workspace has no entry yet.
    pub async fn activity_head(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Option<ActivityHead>, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT seq, hash, first_seq, anchor_hash, checkpoint_seq, checkpoint_at FROM activity_heads WHERE workspace_id = $1",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        row.map(|row| {
            Ok(ActivityHead {
                seq: col(&row, "seq")?,
                hash: decode_hash(&col::<String>(&row, "hash")?)?,
                first_seq: col(&row, "first_seq")?,
                anchor_hash: decode_hash(&col::<String>(&row, "anchor_hash")?)?,
                checkpoint_seq: col(&row, "checkpoint_seq")?,
                checkpoint_at: col(&row, "checkpoint_at")?,
            })
        })
        .transpose()
    }

    /// The hash before entry `seq` (the anchor at the first retained entry).
    pub async fn activity_prev_hash(
        &self,
        ws: &WorkspaceId,
        head: &ActivityHead,
        seq: i64,
    ) -> Result<[u8; 32], StoreError> {
        if seq <= head.first_seq {
            return Ok(head.anchor_hash);
        }
        let hash: String = sqlx::query_scalar(
            "SELECT hash FROM activity_log WHERE workspace_id = $1 AND seq = $2",
        )
        .bind(ws.as_str())
        .bind(seq - 1)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        decode_hash(&hash)
    }

    /// The sequence range of entries created in `[after, before)` (ms), as one contiguous run.
    pub async fn activity_seq_range(
        &self,
        ws: &WorkspaceId,
        after_ms: Option<i64>,
        before_ms: Option<i64>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM activity_log WHERE workspace_id = $1 AND created_at >= $2 AND created_at < $3",
        )
        .bind(ws.as_str())
        .bind(after_ms.unwrap_or(i64::MIN))
        .bind(before_ms.unwrap_or(i64::MAX))
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let lo: Option<i64> = col(&row, "lo")?;
        let hi: Option<i64> = col(&row, "hi")?;
        Ok(lo.zip(hi))
    }

    /// Stored checkpoints with `tree_size` in `[from, to]`, in order.
    pub async fn activity_checkpoints(
        &self,
        ws: &WorkspaceId,
        from: i64,
        to: i64,
    ) -> Result<Vec<SignedCheckpoint>, StoreError> {
        self.check_region(ws)?;
        let rows = sqlx::query(
            "SELECT tree_size, head_hash, created_at, key_id, signature FROM activity_checkpoints WHERE workspace_id = $1 AND tree_size >= $2 AND tree_size <= $3 ORDER BY tree_size",
        )
        .bind(ws.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        rows.iter()
            .map(|row| {
                Ok(SignedCheckpoint {
                    checkpoint: Checkpoint {
                        workspace_id: ws.to_string(),
                        kind: CheckpointKind::Periodic,
                        tree_size: col::<i64>(row, "tree_size")? as u64,
                        head_hash: decode_hash(&col::<String>(row, "head_hash")?)?,
                        created_at_ms: col(row, "created_at")?,
                        first_seq: None,
                        anchor_hash: None,
                        checkpoints: None,
                    },
                    key_id: col(row, "key_id")?,
                    signature: col(row, "signature")?,
                })
            })
            .collect()
    }

    /// The region's key for signing checkpoints (public half published).
    pub fn activity_public_key(&self) -> AuditPublicKey {
        self.audit_key.public_key()
    }

    /// Sign a checkpoint now (exports end with one of kind `Export`).
    pub fn sign_checkpoint(&self, cp: &Checkpoint) -> SignedCheckpoint {
        self.audit_key.sign(cp)
    }

    async fn store_checkpoint(
        &self,
        ws: &WorkspaceId,
        signed: &SignedCheckpoint,
    ) -> Result<(), StoreError> {
        let size = signed.checkpoint.tree_size as i64;
        self.writer
            .write(vec![
                Stmt::new(
                    "INSERT INTO activity_checkpoints (workspace_id, tree_size, head_hash, created_at, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, tree_size) DO NOTHING",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Int(size),
                        Arg::Text(hash_text(&signed.checkpoint.head_hash)),
                        Arg::Int(signed.checkpoint.created_at_ms),
                        Arg::Text(signed.key_id.clone()),
                        Arg::Text(signed.signature.clone()),
                    ],
                ),
                Stmt::new(
                    "UPDATE activity_heads SET checkpoint_seq = $2, checkpoint_at = $3 WHERE workspace_id = $1 AND checkpoint_seq < $2",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Int(size),
                        Arg::Int(signed.checkpoint.created_at_ms),
                    ],
                ),
            ])
            .await
    }

    /// Sign and store a checkpoint for every chain that grew by `every_entries` or has
    /// entries older than `every_ms` without one. Returns the new checkpoints (for sinks).
    pub async fn checkpoint_due(
        &self,
        every_entries: i64,
        every_ms: i64,
    ) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT workspace_id, seq, hash FROM activity_heads WHERE seq > checkpoint_seq AND (seq - checkpoint_seq >= $1 OR checkpoint_at <= $2)",
        )
        .bind(every_entries.max(1))
        .bind(now - every_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
            if ws.region() != self.region {
                continue;
            }
            let signed = self.sign_checkpoint(&Checkpoint {
                workspace_id: ws.to_string(),
                kind: CheckpointKind::Periodic,
                tree_size: col::<i64>(row, "seq")? as u64,
                head_hash: decode_hash(&col::<String>(row, "hash")?)?,
                created_at_ms: now,
                first_seq: None,
                anchor_hash: None,
                checkpoints: None,
            });
            self.store_checkpoint(&ws, &signed).await?;
            out.push(signed);
        }
        Ok(out)
    }

    /// Every workspace with any trace of a log (a head, an entry or a checkpoint), so that
    /// verification also sees a log whose head or entries were removed.
    pub async fn activity_log_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT workspace_id FROM activity_heads UNION SELECT workspace_id FROM activity_checkpoints UNION SELECT DISTINCT workspace_id FROM activity_log ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        rows.iter()
            .map(|w| parse_id(WorkspaceId::parse(w)))
            .collect()
    }

    /// Every workspace of this cell that has a log, with its head sequence number.
    pub async fn activity_workspaces(&self) -> Result<Vec<(WorkspaceId, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT workspace_id, seq FROM activity_heads ORDER BY workspace_id")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::Db)?;
        rows.iter()
            .map(|r| {
                Ok((
                    parse_id(WorkspaceId::parse(&col::<String>(r, "workspace_id")?))?,
                    col(r, "seq")?,
                ))
            })
            .collect()
    }

    /// Remove the entries created before `older_than_ms`, keeping the chain verifiable from
    /// the cut: a checkpoint is signed at the last removed entry first, the head records the
    /// new first entry and the hash before it, and the cut itself is logged (as `system`).
    pub async fn cut_activity(
        &self,
        ws: &WorkspaceId,
        older_than_ms: i64,
    ) -> Result<Option<CutReport>, StoreError> {
        let Some(head) = self.activity_head(ws).await? else {
            return Ok(None);
        };
        // The cut falls after the last entry that is old enough, and never removes the head.
        let last_old: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(seq) FROM activity_log WHERE workspace_id = $1 AND created_at < $2 AND seq < $3",
        )
        .bind(ws.as_str())
        .bind(older_than_ms)
        .bind(head.seq)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(cut) = last_old.filter(|c| *c >= head.first_seq) else {
            return Ok(None);
        };
        let anchor: String = sqlx::query_scalar(
            "SELECT hash FROM activity_log WHERE workspace_id = $1 AND seq = $2",
        )
        .bind(ws.as_str())
        .bind(cut)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let anchor = decode_hash(&anchor)?;
        // Attest the anchor before anything is removed.
        let signed = self.sign_checkpoint(&Checkpoint {
            workspace_id: ws.to_string(),
            kind: CheckpointKind::Periodic,
            tree_size: cut as u64,
            head_hash: anchor,
            created_at_ms: now_ms(),
            first_seq: None,
            anchor_hash: None,
            checkpoints: None,
        });
        self.store_checkpoint(ws, &signed).await?;
        let removed = cut - head.first_seq + 1;
        let act = NewActivity::new(
            ActivityType::ActivityLogRetentionCut,
            &interlock_domain::Actor::system(),
            interlock_domain::Target::kind("activity_log"),
        )
        .with("removed", removed)
        .with("first_seq", cut + 1)
        .with("anchor_hash", hash_text(&anchor));
        let unit = vec![
            Stmt::new(
                "DELETE FROM activity_log WHERE workspace_id = $1 AND seq <= $2",
                vec![Arg::Text(ws.to_string()), Arg::Int(cut)],
            ),
            Stmt::new(
                "DELETE FROM activity_checkpoints WHERE workspace_id = $1 AND tree_size < $2",
                vec![Arg::Text(ws.to_string()), Arg::Int(cut)],
            ),
            Stmt::new(
                "UPDATE activity_heads SET first_seq = $2, anchor_hash = $3 WHERE workspace_id = $1 AND first_seq = $4",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Int(cut + 1),
                    Arg::Text(hash_text(&anchor)),
                    Arg::Int(head.first_seq),
                ],
            )
            .expect(1),
            self.activity_stmt(ws, &act).await?,
        ];
        self.writer.write(unit).await?;
        Ok(Some(CutReport {
            removed,
            first_seq: cut + 1,
        }))
    }

    /// Check one workspace's stored chain: every entry opens, its plain columns match the
    /// sealed entry, sequence numbers run without gaps from the first retained entry, each
    /// hash links to the previous one, the head matches the last entry, and every stored
    /// checkpoint carries a valid signature of this region's key and matches the entry at its
    /// size (a checkpoint beyond the last entry means the log was truncated). After a cut, a
    /// checkpoint must attest the anchor.
    pub async fn verify_activity(
        &self,
        ws: &WorkspaceId,
        key: &AuditPublicKey,
    ) -> Result<ChainReport, ChainFailure> {
        let fail = |seq: Option<i64>, id: Option<String>, reason: String| ChainFailure {
            workspace: ws.clone(),
            seq,
            entry_id: id,
            reason,
        };
        let store = |e: StoreError| fail(None, None, format!("could not read the log: {e}"));
        let head = self.activity_head(ws).await.map_err(store)?;
        let checkpoints = self
            .activity_checkpoints(ws, 0, i64::MAX)
            .await
            .map_err(store)?;
        let Some(head) = head else {
            let stray = self
                .activity_from(ws, 0, i64::MAX, 1)
                .await
                .map_err(store)?;
            if let Some(raw) = stray.first() {
                return Err(fail(
                    Some(raw.seq),
                    Some(raw.columns.id.clone()),
                    "entries exist but the chain's head is missing".into(),
                ));
            }
            if let Some(cp) = checkpoints.first() {
                return Err(fail(
                    Some(cp.checkpoint.tree_size as i64),
                    None,
                    "a checkpoint exists but the log has no entries (truncated)".into(),
                ));
            }
            return Ok(ChainReport {
                workspace: ws.clone(),
                first_seq: 1,
                last_seq: 0,
                entries: 0,
                checkpoints: 0,
                bytes: 0,
            });
        };
        let mut cps = std::collections::BTreeMap::new();
        for cp in &checkpoints {
            let size = cp.checkpoint.tree_size as i64;
            key.verify(cp).map_err(|e| {
                fail(
                    Some(size),
                    None,
                    format!("checkpoint at {size} has a bad signature: {e}"),
                )
            })?;
            cps.insert(size, cp.checkpoint.head_hash);
        }
        if head.first_seq > 1 && cps.get(&(head.first_seq - 1)) != Some(&head.anchor_hash) {
            return Err(fail(
                Some(head.first_seq),
                None,
                "no signed checkpoint attests the hash the log starts from after its retention cut"
                    .into(),
            ));
        }
        let mut prev = if head.first_seq == 1 {
            GENESIS
        } else {
            head.anchor_hash
        };
        let mut expect = head.first_seq;
        let mut entries = 0u64;
        let mut bytes = 0u64;
        loop {
            let rows = self
                .activity_rows(ws, expect, i64::MAX, 2000)
                .await
                .map_err(store)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let raw = match self.open_activity_row(ws, row).await {
                    Ok(raw) => raw,
                    Err(e) => {
                        let seq: Option<i64> = col(row, "seq").ok();
                        let id: Option<String> = col(row, "id").ok();
                        return Err(fail(
                            seq,
                            id,
                            format!("the sealed entry does not open under its id ({e})"),
                        ));
                    }
                };
                let raw = &raw;
                let id = Some(raw.columns.id.clone());
                if raw.seq != expect {
                    return Err(fail(
                        Some(expect),
                        None,
                        format!("entry {expect} is missing (next stored is {})", raw.seq),
                    ));
                }
                let entry = Self::parse_entry(raw)
                    .map_err(|_| fail(Some(raw.seq), id.clone(), "entry is malformed".into()))?;
                if entry.canonical_bytes() != *raw.canonical {
                    return Err(fail(
                        Some(raw.seq),
                        id,
                        "entry is not in canonical form".into(),
                    ));
                }
                if PlainColumns::of(&entry) != raw.columns {
                    return Err(fail(
                        Some(raw.seq),
                        id,
                        "a plain column differs from the sealed entry".into(),
                    ));
                }
                let h = chain_hash(&prev, raw.seq as u64, &leaf_hash(&raw.canonical));
                if h != raw.hash {
                    return Err(fail(
                        Some(raw.seq),
                        id,
                        "hash does not match the entry and its predecessor".into(),
                    ));
                }
                if let Some(cp) = cps.get(&raw.seq)
                    && *cp != h
                {
                    return Err(fail(
                        Some(raw.seq),
                        id,
                        "a signed checkpoint names a different hash here".into(),
                    ));
                }
                prev = h;
                bytes += raw.canonical.len() as u64;
                entries += 1;
                expect += 1;
            }
        }
        let last = expect - 1;
        if last != head.seq || prev != head.hash {
            return Err(fail(
                Some(last),
                None,
                format!("the log ends at {last} but its head says {}", head.seq),
            ));
        }
        if let Some((&size, _)) = cps.range((last + 1)..).next() {
            return Err(fail(
                Some(size),
                None,
                format!(
                    "a signed checkpoint covers {size} entries but the log ends at {last} (truncated)"
                ),
            ));
        }
        Ok(ChainReport {
            workspace: ws.clone(),
            first_seq: head.first_seq,
            last_seq: last,
            entries,
            checkpoints: cps.len() as u64,
            bytes,
        })
    }

    /// How far `sink` has delivered this workspace's log.
    pub async fn sink_cursor(&self, sink: &str, ws: &WorkspaceId) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM activity_sink_cursors WHERE sink = $1 AND workspace_id = $2",
        )
        .bind(sink)
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        Ok(seq.unwrap_or(0))
    }

    /// Record that `sink` has delivered this workspace's log up to `seq`.
    pub async fn set_sink_cursor(
        &self,
        sink: &str,
        ws: &WorkspaceId,
        seq: i64,
    ) -> Result<(), StoreError> {
        self.writer
            .write(vec![Stmt::new(
                "INSERT INTO activity_sink_cursors (sink, workspace_id, seq) VALUES ($1, $2, $3) ON CONFLICT (sink, workspace_id) DO UPDATE SET seq = excluded.seq",
                vec![
                    Arg::Text(sink.to_owned()),
                    Arg::Text(ws.to_string()),
                    Arg::Int(seq),
                ],
            )])
            .await
    }
}

impl Cell {
    /// Benchmark floor for appends: rows of the same shape and size written straight into
    /// `activity_log` with the same multi-row INSERTs and durability, `per_commit` rows per
    /// transaction, but without sealing, canonical encoding or chaining. Returns rows per
    /// second. Writes under `ws` with sequence numbers from `first_seq`, so use a scratch
    /// workspace.
    #[doc(hidden)]
    pub async fn raw_activity_ingest(
        &self,
        ws: &WorkspaceId,
        first_seq: i64,
        rows: usize,
        per_commit: usize,
        body_bytes: usize,
    ) -> Result<f64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::Db)?;
        let started = std::time::Instant::now();
        let body = vec![7u8; body_bytes];
        let mut seq = first_seq;
        let mut written = 0usize;
        while written < rows {
            let n = per_commit.max(1).min(rows - written);
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(StoreError::Db)?;
            let batch: Vec<Vec<Arg>> = (0..n)
                .map(|_| {
                    seq += 1;
                    vec![
                        Arg::Text(ActivityId::new().to_string()),
                        Arg::Text("api_token.created".into()),
                        Arg::Int(now_ms()),
                        Arg::Text("api_token".into()),
                        Arg::OptText(Some("tk_0190a0c1a2b34c5d8e9f001122334455".into())),
                        Arg::Text("api_token".into()),
                        Arg::OptText(Some("tk_0190a0c1a2b34c5d8e9f001122334466".into())),
                        Arg::Bytes(body.clone()),
                        Arg::Int(1),
                        Arg::Text(ws.to_string()),
                        Arg::Int(seq),
                        Arg::Text(hash_text(&GENESIS)),
                    ]
                })
                .collect();
            let refs: Vec<&[Arg]> = batch.iter().map(Vec::as_slice).collect();
            crate::db::insert_rows(&mut tx, crate::db::LOG_INSERT, &refs).await?;
            tx.commit().await.map_err(StoreError::Db)?;
            written += n;
        }
        Ok(written as f64 / started.elapsed().as_secs_f64())
    }
}
