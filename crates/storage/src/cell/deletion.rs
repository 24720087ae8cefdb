//! Deleting a contact (with everything that belongs to it) or one conversation.
//!
//! Invariants:
//! - A contact's deletion destroys every subject key it owns (`subject_keys.owner_id`) in the
//!   same transaction as its rows, so any copy of its ciphertexts elsewhere is unreadable from
//!   the commit on; attachment files are removed after the commit.
//! - The activity entry names the contact only by its pseudonymous id, with counts.
//! - Every statement is scoped by workspace.

use interlock_domain::{AttachmentId, ContactId, ConversationId, NewActivity, WorkspaceId};

use super::{Cell, col, parse_id};
use crate::StoreError;
use crate::db::{Arg, Stmt};

/// What a deletion removed, per data element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletionCounts {
    pub conversations: i64,
    pub parts: i64,
    pub events: i64,
    pub attachments: i64,
    pub subject_keys: i64,
}

impl DeletionCounts {
    pub(crate) fn metadata(&self, act: NewActivity) -> NewActivity {
        act.with("conversations", self.conversations)
            .with("conversation_parts", self.parts)
            .with("events", self.events)
            .with("attachments", self.attachments)
            .with("subject_keys_destroyed", self.subject_keys)
    }
}

/// What deleting one contact removes.
#[derive(Debug, Clone)]
pub(crate) struct ContactDeletion {
    pub counts: DeletionCounts,
    /// Blind-index entries (email, external id) on the contact row.
    pub blind_index_entries: i64,
    pub blobs: Vec<AttachmentId>,
    /// Ids of the subject keys it owns.
    pub keys: Vec<String>,
}

impl ContactDeletion {
    pub(crate) fn ledger_record(
        &self,
        ws: &WorkspaceId,
        id: &ContactId,
    ) -> crate::ledger::ErasureRecord {
        crate::ledger::ErasureRecord::Contact {
            workspace_id: ws.to_string(),
            contact_id: id.to_string(),
            subject_key_ids: self.keys.clone(),
            at_ms: crate::now_ms(),
        }
    }
}

/// A subject's key ids (unsorted: see [`Cell::contact_deletion_plan`]'s note). Public for the
/// query-plan test.
#[doc(hidden)]
pub const SUBJECT_KEYS_OF: &str =
    "SELECT id FROM subject_keys WHERE workspace_id = $1 AND owner_id = $2";

impl Cell {
    async fn count(
        &self,
        sql: &'static str,
        ws: &WorkspaceId,
        id: &str,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql)
            .bind(ws.as_str())
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Db)
    }

    async fn attachment_ids(
        &self,
        sql: &'static str,
        ws: &WorkspaceId,
        id: &str,
    ) -> Result<Vec<AttachmentId>, StoreError> {
        let rows = sqlx::query(sql)
            .bind(ws.as_str())
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        rows.iter()
            .map(|r| parse_id(AttachmentId::parse(&col::<String>(r, "id")?)))
            .collect()
    }

    pub(crate) async fn remove_blobs(&self, ws: &WorkspaceId, ids: &[AttachmentId]) {
        for id in ids {
            if let Err(e) = self.blobs.delete(ws, id).await {
                // The row and the key are gone, so the file is unreadable ciphertext; a
                // later sweep can remove it. Log without the path's ids beyond the workspace.
                tracing::warn!(workspace = %ws, error = %e, "attachment file not removed");
            }
        }
    }

    /// Delete a contact with its conversations, messages, events, attachments, messenger
    /// tokens and sessions, and destroy its subject keys — one transaction with its activity
    /// entry. `NotFound` if there is no such contact.
    pub async fn delete_contact(
        &self,
        ws: &WorkspaceId,
        id: &ContactId,
        act: &NewActivity,
    ) -> Result<DeletionCounts, StoreError> {
        self.delete_contact_if(ws, id, act, None).await
    }

    /// [`Cell::delete_contact`], and with `visitor_seen_before` only if the contact is still a
    /// visitor last seen before that time (checked in the deleting transaction, so a visitor
    /// seen meanwhile is kept: `NotFound`).
    pub(crate) async fn delete_contact_if(
        &self,
        ws: &WorkspaceId,
        id: &ContactId,
        act: &NewActivity,
        visitor_seen_before: Option<i64>,
    ) -> Result<DeletionCounts, StoreError> {
        let plan = self.contact_deletion_plan(ws, id).await?;
        let mut unit = Self::contact_deletion_stmts(ws, id, visitor_seen_before);
        unit.push(
            self.activity_stmt(ws, &plan.counts.metadata(act.clone()))
                .await?,
        );
        crate::ledger::ErasureLedger::append_off_runtime(
            &self.ledger,
            vec![plan.ledger_record(ws, id)],
        )
        .await?;
        self.writer.write(unit).await?;
        self.after_contact_deletion(ws, &plan).await;
        Ok(plan.counts)
    }

    /// What deleting a contact will remove: counts, attachment files, subject keys.
    pub(crate) async fn contact_deletion_plan(
        &self,
        ws: &WorkspaceId,
        id: &ContactId,
    ) -> Result<ContactDeletion, StoreError> {
        let row = self.contact_row(ws, id).await?;
        let cid = id.as_str();
        let blind: i64 = sqlx::query_scalar(
            "SELECT (CASE WHEN email_bidx IS NULL THEN 0 ELSE 1 END) + (CASE WHEN external_id_bidx IS NULL THEN 0 ELSE 1 END) FROM contacts WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.as_str())
        .bind(cid)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .unwrap_or(0);
        drop(row);
        let counts = DeletionCounts {
            conversations: self
                .count(
                    "SELECT COUNT(*) FROM conversations WHERE workspace_id = $1 AND contact_id = $2",
                    ws,
                    cid,
                )
                .await?,
            parts: self
                .count(
                    "SELECT COUNT(*) FROM conversation_parts p JOIN conversations c ON c.workspace_id = p.workspace_id AND c.id = p.conversation_id WHERE p.workspace_id = $1 AND c.contact_id = $2",
                    ws,
                    cid,
                )
                .await?,
            events: self
                .count(
                    "SELECT COUNT(*) FROM events WHERE workspace_id = $1 AND contact_id = $2",
                    ws,
                    cid,
                )
                .await?,
            attachments: self
                .count(
                    "SELECT COUNT(*) FROM attachments a JOIN conversations c ON c.workspace_id = a.workspace_id AND c.id = a.conversation_id WHERE a.workspace_id = $1 AND c.contact_id = $2",
                    ws,
                    cid,
                )
                .await?,
            subject_keys: self
                .count(
                    "SELECT COUNT(*) FROM subject_keys WHERE workspace_id = $1 AND owner_id = $2",
                    ws,
                    cid,
                )
                .await?,
        };
        let blobs = self
            .attachment_ids(
                "SELECT a.id FROM attachments a JOIN conversations c ON c.workspace_id = a.workspace_id AND c.id = a.conversation_id WHERE a.workspace_id = $1 AND c.contact_id = $2",
                ws,
                cid,
            )
            .await?;
        // Sorted here, not by the query: with `ORDER BY id` SQLite walks the primary key over
        // every subject key of the workspace instead of the owner index (seconds per erasure
        // in a workspace of a million contacts).
        let mut keys: Vec<String> = sqlx::query_scalar(SUBJECT_KEYS_OF)
            .bind(ws.as_str())
            .bind(cid)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        keys.sort_unstable();
        Ok(ContactDeletion {
            counts,
            blind_index_entries: blind,
            blobs,
            keys,
        })
    }

    /// The statements that delete a contact and everything it owns, keys first.
    pub(crate) fn contact_deletion_stmts(
        ws: &WorkspaceId,
        id: &ContactId,
        visitor_seen_before: Option<i64>,
    ) -> Vec<Stmt> {
        let cid = id.as_str();
        let two = || vec![Arg::Text(ws.to_string()), Arg::Text(cid.to_owned())];
        vec![
            // Keys first: from here on nothing of this contact can be opened.
            Stmt::new(
                "DELETE FROM subject_keys WHERE workspace_id = $1 AND owner_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM messenger_session_conversations WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE workspace_id = $1 AND contact_id = $2)",
                two(),
            ),
            Stmt::new(
                "DELETE FROM messenger_sessions WHERE workspace_id = $1 AND contact_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM visitor_tokens WHERE workspace_id = $1 AND contact_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM attachments WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE workspace_id = $1 AND contact_id = $2)",
                two(),
            ),
            Stmt::new(
                "DELETE FROM conversation_parts WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE workspace_id = $1 AND contact_id = $2)",
                two(),
            ),
            Stmt::new(
                "DELETE FROM conversations WHERE workspace_id = $1 AND contact_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM events WHERE workspace_id = $1 AND contact_id = $2",
                two(),
            ),
            match visitor_seen_before {
                None => Stmt::new(
                    "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2",
                    two(),
                ),
                // The guard is written so that no index can serve it (`role || ''`,
                // `last_seen_at + 0`): the row is found by its primary key, never by scanning
                // `contacts_last_seen` for every visitor seen before the horizon.
                Some(before) => Stmt::new(
                    "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2 AND role || '' = 'visitor' AND last_seen_at + 0 < $3",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(cid.to_owned()),
                        Arg::Int(before),
                    ],
                ),
            }
            .expect(1),
        ]
    }

    /// After a contact's deletion committed: forget cached keys, remove attachment files.
    pub(crate) async fn after_contact_deletion(&self, ws: &WorkspaceId, plan: &ContactDeletion) {
        for k in &plan.keys {
            if let Ok(k) = interlock_domain::SubjectKeyId::parse(k) {
                self.subject_keys.remove(&(ws.clone(), k));
            }
        }
        self.conversations.clear();
        self.remove_blobs(ws, &plan.blobs).await;
    }

    /// Delete one conversation with its messages and attachments (the contact and its key
    /// stay). `NotFound` if there is no such conversation.
    pub async fn delete_conversation(
        &self,
        ws: &WorkspaceId,
        id: &ConversationId,
        act: &NewActivity,
    ) -> Result<DeletionCounts, StoreError> {
        self.delete_conversation_if(ws, id, act, None).await
    }

    /// [`Cell::delete_conversation`], and with `idle_before` only if its last message is
    /// older than that (checked in the deleting transaction: a conversation that got a new
    /// message meanwhile is kept, `NotFound`).
    pub(crate) async fn delete_conversation_if(
        &self,
        ws: &WorkspaceId,
        id: &ConversationId,
        act: &NewActivity,
        idle_before: Option<i64>,
    ) -> Result<DeletionCounts, StoreError> {
        self.check_region(ws)?;
        let contact: Option<String> = sqlx::query_scalar(
            "SELECT contact_id FROM conversations WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let contact = contact.ok_or(StoreError::NotFound)?;
        let cv = id.as_str();
        let counts = DeletionCounts {
            conversations: 1,
            parts: self
                .count(
                    "SELECT COUNT(*) FROM conversation_parts WHERE workspace_id = $1 AND conversation_id = $2",
                    ws,
                    cv,
                )
                .await?,
            events: 0,
            attachments: self
                .count(
                    "SELECT COUNT(*) FROM attachments WHERE workspace_id = $1 AND conversation_id = $2",
                    ws,
                    cv,
                )
                .await?,
            subject_keys: 0,
        };
        let blobs = self
            .attachment_ids(
                "SELECT id FROM attachments WHERE workspace_id = $1 AND conversation_id = $2",
                ws,
                cv,
            )
            .await?;
        let two = || vec![Arg::Text(ws.to_string()), Arg::Text(cv.to_owned())];
        let act = counts.metadata(act.clone()).with("contact_id", contact);
        let mut unit = Vec::new();
        if let Some(idle) = idle_before {
            // A no-op update that matches only while the conversation is still idle.
            unit.push(
                Stmt::new(
                    "UPDATE conversations SET updated_at = updated_at WHERE workspace_id = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM conversation_parts p WHERE p.workspace_id = $1 AND p.conversation_id = $2 AND p.created_at >= $3)",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(cv.to_owned()),
                        Arg::Int(idle),
                    ],
                )
                .expect(1),
            );
        }
        unit.extend([
            Stmt::new(
                "DELETE FROM messenger_session_conversations WHERE workspace_id = $1 AND conversation_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM attachments WHERE workspace_id = $1 AND conversation_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM conversation_parts WHERE workspace_id = $1 AND conversation_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM conversations WHERE workspace_id = $1 AND id = $2",
                two(),
            )
            .expect(1),
            self.activity_stmt(ws, &act).await?,
        ]);
        self.writer.write(unit).await?;
        self.conversations.remove(&(ws.clone(), id.clone()));
        self.remove_blobs(ws, &blobs).await;
        Ok(counts)
    }
}
