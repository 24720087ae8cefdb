//! A workspace's lifecycle after creation: when it was last used, its deletion (by its owner,
//! the operator or the inactivity rule) and the purge that follows.
//!
//! Invariants:
//! - Deleting a workspace destroys its key in the same transaction that marks it deleted,
//!   removes its tokens and sessions and stores a signed receipt: from that commit on nothing
//!   of the workspace can be decrypted and no credential of it works. The rows are purged
//!   afterwards in bounded batches ([`Cell::purge_deleted_workspaces`]); a purge interrupted
//!   half-way is finished by the next one.
//! - The receipt is kept in `deletion_receipts`, which has no foreign key to the workspace and
//!   is not purged with it.
//! - The inactivity rule deletes a workspace only when it has been idle for
//!   [`WORKSPACE_MAX_IDLE_MS`] AND its owners were told at least [`INACTIVITY_NOTICE_MS`]
//!   before (an activity entry and a `workspace.deletion_scheduled` webhook). Any use clears
//!   the notice. Both steps re-check their condition inside their transaction.

use std::collections::BTreeMap;

use interlock_crypto::SignedDocument;
use interlock_domain::{ActivityType, Actor, NewActivity, ReceiptId, Target, WorkspaceId};
use serde_json::{Map, Value, json};

use super::{Cell, col, parse_id};
use crate::StoreError;
use crate::db::{Arg, Stmt};
use crate::now_ms;

const DAY_MS: i64 = 86_400_000;
/// A workspace with no teammate sign-in and no API activity for this long is deleted: 13
/// months (from the data map).
pub const WORKSPACE_MAX_IDLE_MS: i64 = crate::datamap::WORKSPACE_INACTIVITY_DAYS as i64 * DAY_MS;
/// Its owners are told this long before: 90 days.
pub const INACTIVITY_NOTICE_MS: i64 = 90 * DAY_MS;
/// `last_active_at` is written at most this often per workspace.
const TOUCH_EVERY_MS: i64 = 3_600_000;

/// The type of a signed deletion receipt (erasures and workspace deletions).
pub const RECEIPT_TYPE: &str = "interlock.deletion_receipt.v1";

/// Why a workspace is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceDeletionReason {
    /// Its owner asked (`DELETE /v1/workspace`).
    Owner,
    /// The operator asked (`DELETE /v1/operator/workspaces/{id}`).
    Operator,
    /// The inactivity rule.
    Inactivity,
}

impl WorkspaceDeletionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Operator => "operator",
            Self::Inactivity => "inactivity",
        }
    }
}

/// A workspace deletion: its receipt.
#[derive(Debug, Clone)]
pub struct WorkspaceDeletion {
    pub receipt_id: ReceiptId,
    pub receipt: SignedDocument,
    pub deleted_at_ms: i64,
}

/// What a lifecycle sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LifecycleReport {
    /// Workspaces whose owners were told of their coming deletion.
    pub inactivity_notices: Vec<String>,
    /// Workspaces deleted for inactivity.
    pub workspaces_deleted: Vec<String>,
    /// Deleted workspaces whose rows and files are now gone.
    pub workspaces_purged: Vec<String>,
    pub erasures_resumed: usize,
    pub archives_expired: usize,
    /// Staff grants whose end (expiry, or a break-glass grant nobody confirmed) was recorded.
    pub staff_grants_ended: usize,
    /// Expired staff sessions and passkey ceremonies deleted.
    pub staff_auth_expired: usize,
    /// Access reviews: items revoked at a deadline, campaigns closed or started.
    pub access_review: super::ReviewSweep,
}

impl LifecycleReport {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One purge entry per table: "is anything left?", "how many rows?" (for the dry run) and
/// "delete the next batch" (`$1` workspace, `$2` batch size). Children before parents, so foreign keys hold at every commit.
const PURGE: &[(&str, &str, &str, &str)] = &[
    (
        "staff_grants",
        "SELECT 1 FROM staff_grants WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM staff_grants WHERE workspace_id = $1",
        "DELETE FROM staff_grants WHERE workspace_id = $1 AND id IN (SELECT id FROM staff_grants WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "access_review_items",
        "SELECT 1 FROM access_review_items WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM access_review_items WHERE workspace_id = $1",
        "DELETE FROM access_review_items WHERE workspace_id = $1 AND id IN (SELECT id FROM access_review_items WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "subject_disclosures",
        "SELECT 1 FROM subject_disclosures WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM subject_disclosures WHERE workspace_id = $1",
        "DELETE FROM subject_disclosures WHERE workspace_id = $1 AND contact_id IN (SELECT contact_id FROM subject_disclosures WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "outbox",
        "SELECT 1 FROM outbox WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM outbox WHERE workspace_id = $1",
        "DELETE FROM outbox WHERE workspace_id = $1 AND id IN (SELECT id FROM outbox WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "webhooks",
        "SELECT 1 FROM webhooks WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM webhooks WHERE workspace_id = $1",
        "DELETE FROM webhooks WHERE workspace_id = $1 AND id IN (SELECT id FROM webhooks WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "messenger_session_conversations",
        "SELECT 1 FROM messenger_session_conversations WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM messenger_session_conversations WHERE workspace_id = $1",
        "DELETE FROM messenger_session_conversations WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM messenger_session_conversations WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "messenger_sessions",
        "SELECT 1 FROM messenger_sessions WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM messenger_sessions WHERE workspace_id = $1",
        "DELETE FROM messenger_sessions WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM messenger_sessions WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "visitor_tokens",
        "SELECT 1 FROM visitor_tokens WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM visitor_tokens WHERE workspace_id = $1",
        "DELETE FROM visitor_tokens WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM visitor_tokens WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "attachments",
        "SELECT 1 FROM attachments WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM attachments WHERE workspace_id = $1",
        "DELETE FROM attachments WHERE workspace_id = $1 AND id IN (SELECT id FROM attachments WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "conversation_parts",
        "SELECT 1 FROM conversation_parts WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM conversation_parts WHERE workspace_id = $1",
        "DELETE FROM conversation_parts WHERE workspace_id = $1 AND id IN (SELECT id FROM conversation_parts WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "conversations",
        "SELECT 1 FROM conversations WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM conversations WHERE workspace_id = $1",
        "DELETE FROM conversations WHERE workspace_id = $1 AND id IN (SELECT id FROM conversations WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "events",
        "SELECT 1 FROM events WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM events WHERE workspace_id = $1",
        "DELETE FROM events WHERE workspace_id = $1 AND id IN (SELECT id FROM events WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "data_requests",
        "SELECT 1 FROM data_requests WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM data_requests WHERE workspace_id = $1",
        "DELETE FROM data_requests WHERE workspace_id = $1 AND id IN (SELECT id FROM data_requests WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "contacts",
        "SELECT 1 FROM contacts WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM contacts WHERE workspace_id = $1",
        "DELETE FROM contacts WHERE workspace_id = $1 AND id IN (SELECT id FROM contacts WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "subject_keys",
        "SELECT 1 FROM subject_keys WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM subject_keys WHERE workspace_id = $1",
        "DELETE FROM subject_keys WHERE workspace_id = $1 AND id IN (SELECT id FROM subject_keys WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "recovery_codes",
        "SELECT 1 FROM recovery_codes WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM recovery_codes WHERE workspace_id = $1",
        "DELETE FROM recovery_codes WHERE workspace_id = $1 AND teammate_id IN (SELECT teammate_id FROM recovery_codes WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "invitations",
        "SELECT 1 FROM invitations WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM invitations WHERE workspace_id = $1",
        "DELETE FROM invitations WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM invitations WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "teammate_sessions",
        "SELECT 1 FROM teammate_sessions WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM teammate_sessions WHERE workspace_id = $1",
        "DELETE FROM teammate_sessions WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM teammate_sessions WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "teammate_passkeys",
        "SELECT 1 FROM teammate_passkeys WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM teammate_passkeys WHERE workspace_id = $1",
        "DELETE FROM teammate_passkeys WHERE workspace_id = $1 AND id IN (SELECT id FROM teammate_passkeys WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "webauthn_ceremonies",
        "SELECT 1 FROM webauthn_ceremonies WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM webauthn_ceremonies WHERE workspace_id = $1",
        "DELETE FROM webauthn_ceremonies WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM webauthn_ceremonies WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "teammates",
        "SELECT 1 FROM teammates WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM teammates WHERE workspace_id = $1",
        "DELETE FROM teammates WHERE workspace_id = $1 AND id IN (SELECT id FROM teammates WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "roles",
        "SELECT 1 FROM roles WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM roles WHERE workspace_id = $1",
        "DELETE FROM roles WHERE workspace_id = $1 AND id IN (SELECT id FROM roles WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "api_tokens",
        "SELECT 1 FROM api_tokens WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM api_tokens WHERE workspace_id = $1",
        "DELETE FROM api_tokens WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM api_tokens WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "messenger_secrets",
        "SELECT 1 FROM messenger_secrets WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM messenger_secrets WHERE workspace_id = $1",
        "DELETE FROM messenger_secrets WHERE workspace_id = $1 AND id IN (SELECT id FROM messenger_secrets WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "messenger_settings",
        "SELECT 1 FROM messenger_settings WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM messenger_settings WHERE workspace_id = $1",
        "DELETE FROM messenger_settings WHERE workspace_id = $1 AND $2 > 0",
    ),
    (
        "workspace_security",
        "SELECT 1 FROM workspace_security WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM workspace_security WHERE workspace_id = $1",
        "DELETE FROM workspace_security WHERE workspace_id = $1 AND $2 > 0",
    ),
    (
        "workspace_staff_access",
        "SELECT 1 FROM workspace_staff_access WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM workspace_staff_access WHERE workspace_id = $1",
        "DELETE FROM workspace_staff_access WHERE workspace_id = $1 AND $2 > 0",
    ),
    (
        "workspace_retention",
        "SELECT 1 FROM workspace_retention WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM workspace_retention WHERE workspace_id = $1",
        "DELETE FROM workspace_retention WHERE workspace_id = $1 AND $2 > 0",
    ),
    (
        "login_throttle",
        "SELECT 1 FROM login_throttle WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM login_throttle WHERE workspace_id = $1",
        "DELETE FROM login_throttle WHERE workspace_id = $1 AND subject IN (SELECT subject FROM login_throttle WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "activity_log",
        "SELECT 1 FROM activity_log WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM activity_log WHERE workspace_id = $1",
        "DELETE FROM activity_log WHERE workspace_id = $1 AND seq IN (SELECT seq FROM activity_log WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "activity_checkpoints",
        "SELECT 1 FROM activity_checkpoints WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM activity_checkpoints WHERE workspace_id = $1",
        "DELETE FROM activity_checkpoints WHERE workspace_id = $1 AND tree_size IN (SELECT tree_size FROM activity_checkpoints WHERE workspace_id = $1 LIMIT $2)",
    ),
    (
        "activity_heads",
        "SELECT 1 FROM activity_heads WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM activity_heads WHERE workspace_id = $1",
        "DELETE FROM activity_heads WHERE workspace_id = $1 AND $2 > 0",
    ),
    (
        "activity_sink_cursors",
        "SELECT 1 FROM activity_sink_cursors WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM activity_sink_cursors WHERE workspace_id = $1",
        "DELETE FROM activity_sink_cursors WHERE workspace_id = $1 AND $2 > 0",
    ),
    (
        "deletion_receipts",
        "SELECT 1 FROM deletion_receipts WHERE workspace_id = $1 AND kind <> 'workspace' LIMIT 1",
        "SELECT COUNT(*) FROM deletion_receipts WHERE workspace_id = $1 AND kind <> 'workspace'",
        "DELETE FROM deletion_receipts WHERE workspace_id = $1 AND kind <> 'workspace' AND id IN (SELECT id FROM deletion_receipts WHERE workspace_id = $1 AND kind <> 'workspace' LIMIT $2)",
    ),
    (
        "workspace_keys",
        "SELECT 1 FROM workspace_keys WHERE workspace_id = $1 LIMIT 1",
        "SELECT COUNT(*) FROM workspace_keys WHERE workspace_id = $1",
        "DELETE FROM workspace_keys WHERE workspace_id = $1 AND $2 > 0",
    ),
];

/// The tables the purge empties (children first), for tests that check it misses none.
pub fn purged_tables() -> impl Iterator<Item = &'static str> {
    PURGE.iter().map(|(t, _, _, _)| *t)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Cell {
    /// Note that a workspace is in use (a teammate signed in, or a token or session made a
    /// request): moves `last_active_at` (at most hourly) and withdraws an inactivity notice.
    pub async fn touch_workspace(&self, ws: &WorkspaceId) -> Result<(), StoreError> {
        let now = now_ms();
        if let Some(at) = self.touched.get(ws)
            && now - at < TOUCH_EVERY_MS
        {
            return Ok(());
        }
        self.touched.insert(ws.clone(), now);
        let updated = self
            .writer
            .write(vec![
                Stmt::new(
                    "UPDATE workspaces SET last_active_at = $2, inactivity_notice_at = NULL WHERE id = $1 AND deleted_at IS NULL AND (last_active_at IS NULL OR last_active_at < $3 OR inactivity_notice_at IS NOT NULL)",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Int(now),
                        Arg::Int(now - TOUCH_EVERY_MS),
                    ],
                ),
            ])
            .await;
        if updated.is_err() {
            // Try again on the next request rather than in an hour.
            self.touched.remove(ws);
        }
        updated
    }

    /// When the workspace was last used, and when an inactivity notice went out.
    pub async fn workspace_activity(
        &self,
        ws: &WorkspaceId,
    ) -> Result<(Option<i64>, Option<i64>), StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT last_active_at, inactivity_notice_at FROM workspaces WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        Ok((
            col(&row, "last_active_at")?,
            col(&row, "inactivity_notice_at")?,
        ))
    }

    /// Set when a workspace was last used, withdrawing any inactivity notice (tests and
    /// benchmarks that move time).
    pub async fn set_workspace_last_active(
        &self,
        ws: &WorkspaceId,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.touched.remove(ws);
        self.exactly_one(
            "UPDATE workspaces SET last_active_at = $2, inactivity_notice_at = NULL WHERE id = $1 AND deleted_at IS NULL",
            vec![Arg::Text(ws.to_string()), Arg::Int(at_ms)],
        )
        .await
    }

    /// Delete a workspace: destroy its key, end every token and session, mark it deleted and
    /// keep a signed receipt — one transaction, with its last activity entry. The rows go in
    /// the background ([`Cell::purge_deleted_workspaces`]). `NotFound` if there is no such
    /// (undeleted) workspace.
    pub async fn delete_workspace(
        &self,
        ws: &WorkspaceId,
        reason: WorkspaceDeletionReason,
        actor: &Actor,
    ) -> Result<WorkspaceDeletion, StoreError> {
        self.delete_workspace_guarded(ws, reason, actor, now_ms(), None)
            .await
    }

    /// [`Cell::delete_workspace`] at `at_ms`; with `idle_guard = (idle_before, noticed_before)`
    /// only if the workspace is still idle since before the first and was noticed before the
    /// second (checked in the deleting transaction).
    async fn delete_workspace_guarded(
        &self,
        ws: &WorkspaceId,
        reason: WorkspaceDeletionReason,
        actor: &Actor,
        at_ms: i64,
        idle_guard: Option<(i64, i64)>,
    ) -> Result<WorkspaceDeletion, StoreError> {
        self.check_region(ws)?;
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT key_version FROM workspaces WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        live.ok_or(StoreError::NotFound)?;
        let versions: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM workspace_keys WHERE workspace_id = $1 ORDER BY version",
        )
        .bind(ws.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let receipt_id = ReceiptId::new();
        let destroyed: Vec<String> = versions.iter().map(|v| format!("{ws}/ws/v{v}")).collect();
        let receipt = self.audit_key.sign_document(
            RECEIPT_TYPE,
            obj(json!({
                "receipt_id": receipt_id.as_str(),
                "kind": "workspace_deletion",
                "region": self.region.as_str(),
                "workspace_id": ws.as_str(),
                "reason": reason.as_str(),
                "requested_by": {"type": actor.kind.as_str(), "id": actor.id},
                "requested_at_ms": at_ms,
                "key_destroyed_at_ms": at_ms,
                "destroyed_keys": destroyed,
                "purge": "rows and files are purged in the background after the key is destroyed",
            })),
        );
        let receipt_json = serde_json::to_string(&receipt)
            .map_err(|_| StoreError::Config("receipt did not serialise".into()))?;
        let act = NewActivity::new(
            ActivityType::WorkspaceDeletionRequested,
            actor,
            Target::kind("workspace"),
        )
        .with("reason", reason.as_str())
        .with("receipt_id", receipt_id.as_str());
        let w = || Arg::Text(ws.to_string());
        let mark = match idle_guard {
            None => Stmt::new(
                "UPDATE workspaces SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL",
                vec![w(), Arg::Int(at_ms)],
            ),
            Some((idle_before, noticed_before)) => Stmt::new(
                "UPDATE workspaces SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL AND last_active_at < $3 AND inactivity_notice_at IS NOT NULL AND inactivity_notice_at <= $4",
                vec![
                    w(),
                    Arg::Int(at_ms),
                    Arg::Int(idle_before),
                    Arg::Int(noticed_before),
                ],
            ),
        }
        .expect(1);
        let unit = vec![
            // The entry is sealed now, under the key about to be destroyed: the chain's last.
            self.activity_stmt(ws, &act).await?,
            mark,
            Stmt::new(
                "DELETE FROM workspace_keys WHERE workspace_id = $1",
                vec![w()],
            ),
            Stmt::new("DELETE FROM api_tokens WHERE workspace_id = $1", vec![w()]),
            Stmt::new(
                "DELETE FROM teammate_sessions WHERE workspace_id = $1",
                vec![w()],
            ),
            Stmt::new("DELETE FROM invitations WHERE workspace_id = $1", vec![w()]),
            Stmt::new(
                "DELETE FROM webauthn_ceremonies WHERE workspace_id = $1",
                vec![w()],
            ),
            Stmt::new(
                "DELETE FROM messenger_session_conversations WHERE workspace_id = $1",
                vec![w()],
            ),
            Stmt::new(
                "DELETE FROM messenger_sessions WHERE workspace_id = $1",
                vec![w()],
            ),
            Stmt::new(
                "DELETE FROM visitor_tokens WHERE workspace_id = $1",
                vec![w()],
            ),
            Stmt::new(
                "INSERT INTO deletion_receipts (id, workspace_id, kind, subject_id, receipt, created_at) VALUES ($1, $2, 'workspace', NULL, $3, $4)",
                vec![
                    Arg::Text(receipt_id.to_string()),
                    w(),
                    Arg::Text(receipt_json),
                    Arg::Int(at_ms),
                ],
            ),
        ];
        self.ledger
            .append(&[crate::ledger::ErasureRecord::Workspace {
                workspace_id: ws.to_string(),
                at_ms,
            }])?;
        self.writer.write(unit).await?;
        // Nothing cached may outlive the key.
        self.clear_caches();
        self.touched.remove(ws);
        Ok(WorkspaceDeletion {
            receipt_id,
            receipt,
            deleted_at_ms: at_ms,
        })
    }

    /// Whether a workspace exists and is not deleted.
    pub async fn workspace_live(&self, ws: &WorkspaceId) -> Result<bool, StoreError> {
        if ws.region() != self.region {
            return Ok(false);
        }
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM workspaces WHERE id = $1 AND deleted_at IS NULL")
                .bind(ws.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Db)?;
        Ok(found.is_some())
    }

    /// Whether a workspace was deleted (its key destroyed), purged or not yet.
    pub async fn workspace_deleted(&self, ws: &WorkspaceId) -> Result<bool, StoreError> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT id FROM deletion_receipts WHERE workspace_id = $1 AND kind = 'workspace'",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        Ok(found.is_some())
    }

    /// A stored deletion receipt (an erasure's or a workspace deletion's).
    pub async fn deletion_receipt(&self, id: &ReceiptId) -> Result<SignedDocument, StoreError> {
        let text: String =
            sqlx::query_scalar("SELECT receipt FROM deletion_receipts WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Db)?
                .ok_or(StoreError::NotFound)?;
        serde_json::from_str(&text)
            .map_err(|_| StoreError::Integrity(interlock_crypto::CryptoError::Malformed))
    }

    /// Purge deleted workspaces, `batch` rows per statement: every row of every table, then
    /// the attachment folder, then the workspace row. Returns the workspaces finished. Safe to
    /// interrupt and to run concurrently with itself (deletes are idempotent).
    pub async fn purge_deleted_workspaces(
        &self,
        batch: i64,
    ) -> Result<Vec<WorkspaceId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM workspaces WHERE deleted_at IS NOT NULL ORDER BY deleted_at LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut done = Vec::new();
        for id in ids {
            let ws = parse_id(WorkspaceId::parse(&id))?;
            self.purge_workspace(&ws, batch).await?;
            done.push(ws);
        }
        Ok(done)
    }

    async fn purge_workspace(&self, ws: &WorkspaceId, batch: i64) -> Result<(), StoreError> {
        for (_, exists, _, delete) in PURGE {
            self.purge_table(ws, exists, delete, batch).await?;
        }
        self.blobs.delete_workspace(ws).await?;
        self.writer
            .write(vec![Stmt::new(
                "DELETE FROM workspaces WHERE id = $1 AND deleted_at IS NOT NULL",
                vec![Arg::Text(ws.to_string())],
            )])
            .await?;
        tracing::info!(workspace = %ws, "deleted workspace purged");
        Ok(())
    }

    async fn purge_table(
        &self,
        ws: &WorkspaceId,
        exists: &'static str,
        delete: &'static str,
        batch: i64,
    ) -> Result<(), StoreError> {
        loop {
            let any: Option<i64> = sqlx::query_scalar(exists)
                .bind(ws.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Db)?;
            if any.is_none() {
                return Ok(());
            }
            self.writer
                .write(vec![Stmt::new(
                    delete,
                    vec![Arg::Text(ws.to_string()), Arg::Int(batch.max(1))],
                )])
                .await?;
        }
    }

    /// What the inactivity rule would delete at `as_of_ms`, per workspace and data element
    /// (`workspaces` 1 plus a count of every row the purge removes), for the dry run. A
    /// workspace goes when it has been idle 13 months by then and its notice is (or, sent by a
    /// sweep running on schedule from now on, will be) at least 90 days old by then; a
    /// workspace already deleted is left out (its purge is under way).
    pub async fn workspace_deletion_plan(
        &self,
        as_of_ms: i64,
    ) -> Result<Vec<(WorkspaceId, BTreeMap<&'static str, i64>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, last_active_at, inactivity_notice_at FROM workspaces WHERE deleted_at IS NULL AND last_active_at < $1 ORDER BY id",
        )
        .bind(as_of_ms - WORKSPACE_MAX_IDLE_MS)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let now = crate::now_ms();
        let mut out = Vec::new();
        for row in &rows {
            let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "id")?))?;
            if ws.region() != self.region {
                continue;
            }
            let last: i64 = col(row, "last_active_at")?;
            let notice: Option<i64> = col(row, "inactivity_notice_at")?;
            // Not yet noticed: the next sweep (now, or when the notice falls due) sends it.
            let notice = notice
                .unwrap_or_else(|| now.max(last + WORKSPACE_MAX_IDLE_MS - INACTIVITY_NOTICE_MS));
            if notice > as_of_ms - INACTIVITY_NOTICE_MS {
                continue;
            }
            let mut counts = BTreeMap::from([("workspaces", 1_i64)]);
            for (table, _, count, _) in PURGE {
                let n: i64 = sqlx::query_scalar(*count)
                    .bind(ws.as_str())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(StoreError::Db)?;
                if n > 0 {
                    counts.insert(*table, n);
                }
            }
            out.push((ws, counts));
        }
        Ok(out)
    }

    /// Workspaces the inactivity rule deletes at `as_of_ms` (idle 13 months, noticed 90 days
    /// before).
    pub(crate) async fn inactive_workspaces(
        &self,
        as_of_ms: i64,
    ) -> Result<Vec<WorkspaceId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM workspaces WHERE deleted_at IS NULL AND last_active_at < $1 AND inactivity_notice_at IS NOT NULL AND inactivity_notice_at <= $2 ORDER BY id",
        )
        .bind(as_of_ms - WORKSPACE_MAX_IDLE_MS)
        .bind(as_of_ms - INACTIVITY_NOTICE_MS)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        ids.iter()
            .map(|s| parse_id(WorkspaceId::parse(s)))
            .filter(|w| w.as_ref().map_or(true, |w| w.region() == self.region))
            .collect()
    }

    /// The inactivity rule at `as_of_ms`: tell the owners of workspaces idle for 13 months
    /// minus 90 days (activity entry + webhook, once), and delete those idle for 13 months
    /// whose notice is at least 90 days old. Returns (notices sent, workspaces deleted).
    pub async fn workspace_inactivity_sweep(
        &self,
        as_of_ms: i64,
        batch: i64,
    ) -> Result<(Vec<WorkspaceId>, Vec<WorkspaceId>), StoreError> {
        let notice_horizon = as_of_ms - (WORKSPACE_MAX_IDLE_MS - INACTIVITY_NOTICE_MS);
        let mut noticed = Vec::new();
        loop {
            let rows = sqlx::query(
                "SELECT id, last_active_at FROM workspaces WHERE deleted_at IS NULL AND inactivity_notice_at IS NULL AND last_active_at < $1 ORDER BY last_active_at, id LIMIT $2",
            )
            .bind(notice_horizon)
            .bind(batch.max(1))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            let mut progressed = false;
            for row in &rows {
                let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "id")?))?;
                if ws.region() != self.region {
                    continue;
                }
                let last: i64 = col(row, "last_active_at")?;
                let deletion_after =
                    (last + WORKSPACE_MAX_IDLE_MS).max(as_of_ms + INACTIVITY_NOTICE_MS);
                let act = NewActivity::new(
                    ActivityType::WorkspaceInactivityNotice,
                    &Actor::system(),
                    Target::kind("workspace"),
                )
                .with("last_active_at_ms", last)
                .with("deletion_after_ms", deletion_after);
                let mut unit = vec![
                    Stmt::new(
                        "UPDATE workspaces SET inactivity_notice_at = $2 WHERE id = $1 AND deleted_at IS NULL AND inactivity_notice_at IS NULL AND last_active_at < $3",
                        vec![
                            Arg::Text(ws.to_string()),
                            Arg::Int(as_of_ms),
                            Arg::Int(notice_horizon),
                        ],
                    )
                    .expect(1),
                    self.activity_stmt(&ws, &act).await?,
                ];
                unit.extend(
                    self.inactivity_webhook_stmts(&ws, last, deletion_after)
                        .await?,
                );
                match self.writer.write(unit).await {
                    Ok(()) => {
                        progressed = true;
                        noticed.push(ws);
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            if !progressed {
                break;
            }
        }
        let mut deleted = Vec::new();
        for ws in self.inactive_workspaces(as_of_ms).await? {
            match self
                .delete_workspace_guarded(
                    &ws,
                    WorkspaceDeletionReason::Inactivity,
                    &Actor::system(),
                    as_of_ms,
                    Some((
                        as_of_ms - WORKSPACE_MAX_IDLE_MS,
                        as_of_ms - INACTIVITY_NOTICE_MS,
                    )),
                )
                .await
            {
                Ok(_) => deleted.push(ws),
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((noticed, deleted))
    }

    /// The lifecycle work of a retention sweep at `as_of_ms`: inactivity notices and
    /// deletions, the purge of deleted workspaces, erasures to finish after a crash, access
    /// archives past their 7 days, and access reviews on the default schedule
    /// ([`super::ReviewSchedule::default`]).
    pub async fn lifecycle_sweep(
        &self,
        as_of_ms: i64,
        batch: i64,
    ) -> Result<LifecycleReport, StoreError> {
        self.lifecycle_sweep_with(as_of_ms, batch, super::ReviewSchedule::default())
            .await
    }

    /// [`Cell::lifecycle_sweep`] with the access-review schedule of the configuration
    /// (`[staff] review_every_days`, `review_window_days`).
    pub async fn lifecycle_sweep_with(
        &self,
        as_of_ms: i64,
        batch: i64,
        reviews: super::ReviewSchedule,
    ) -> Result<LifecycleReport, StoreError> {
        let (noticed, deleted) = self.workspace_inactivity_sweep(as_of_ms, batch).await?;
        let purged = self.purge_deleted_workspaces(batch.max(100)).await?;
        let erasures_resumed = self.resume_erasures().await?;
        let archives_expired = self.expire_access_archives(as_of_ms).await?;
        let staff_grants_ended = self.staff_grant_sweep(as_of_ms).await?;
        let staff_auth_expired = self.expire_staff_auth(as_of_ms).await?;
        let access_review = self
            .access_review_sweep(as_of_ms, reviews.every_ms, reviews.window_ms)
            .await?;
        Ok(LifecycleReport {
            inactivity_notices: noticed.iter().map(ToString::to_string).collect(),
            workspaces_deleted: deleted.iter().map(ToString::to_string).collect(),
            workspaces_purged: purged.iter().map(ToString::to_string).collect(),
            erasures_resumed,
            archives_expired,
            staff_grants_ended,
            staff_auth_expired,
            access_review,
        })
    }

    /// The `workspace.deletion_scheduled` webhook deliveries of an inactivity notice.
    async fn inactivity_webhook_stmts(
        &self,
        ws: &WorkspaceId,
        last_active_ms: i64,
        deletion_after_ms: i64,
    ) -> Result<Vec<Stmt>, StoreError> {
        self.webhook_stmts(
            ws,
            "workspace.deletion_scheduled",
            json!({
                "reason": "inactivity",
                "last_active_at_ms": last_active_ms,
                "deletion_after_ms": deletion_after_ms,
            }),
            None,
        )
        .await
    }
}
