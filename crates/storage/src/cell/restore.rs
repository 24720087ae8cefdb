//! Applying the erasure ledger: purging erased contacts and deleted workspaces from a store —
//! a restored backup (inside the restore's own transaction, before it commits), or a live
//! store ([`Cell::apply_erasure_records`]).
//!
//! Invariants:
//! - Every statement names the workspace.
//! - A contact's purge destroys the subject keys the record lists (by id, whoever owns them
//!   in this copy) and every key the contact owns, then deletes the contact's rows and every
//!   row sealed under one of those keys (a visitor later merged into the erased user is the
//!   same person: its own rows go too), with their attachment files.
//! - A workspace's purge empties every table of [`crate::backup::TABLES`] of it, children
//!   first (a workspace's own deletion receipt, kept by the source, is not in that list).
//! - A purge is idempotent: applying a record twice, or to a copy that never had the data,
//!   removes nothing and is not logged.

use std::collections::{BTreeMap, BTreeSet};

use interlock_domain::{ActivityType, Actor, AttachmentId, NewActivity, Target, WorkspaceId};
use sqlx::AnyConnection;

use super::{Cell, parse_id};
use crate::StoreError;
use crate::backup::TABLES;
use crate::ledger::ErasureRecord;

/// The activity entry's `reason` for a purge made by the ledger during a restore.
pub const LEDGER_ON_RESTORE: &str = "erasure_ledger_on_restore";
/// The activity entry's `reason` for a purge made by the ledger on a live store.
pub const LEDGER_APPLIED: &str = "erasure_ledger";

/// What applying the ledger removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerReport {
    /// Records read (contacts and workspaces).
    pub records: usize,
    /// Per workspace that still exists and lost something: rows removed per table (and
    /// `contacts_erased`).
    pub workspaces: BTreeMap<String, BTreeMap<String, i64>>,
    /// Workspaces removed entirely.
    pub workspaces_purged: Vec<String>,
    /// Attachment files to remove (or, in a restore, not to write).
    pub attachments: BTreeSet<(String, String)>,
}

impl LedgerReport {
    fn add(&mut self, ws: &str, table: &str, n: i64) {
        if n > 0 {
            *self
                .workspaces
                .entry(ws.to_owned())
                .or_default()
                .entry(table.to_owned())
                .or_default() += n;
        }
    }

    /// Rows removed in all.
    pub fn total(&self) -> i64 {
        self.workspaces.values().flat_map(|m| m.values()).sum()
    }
}

async fn exec(
    conn: &mut AnyConnection,
    sql: &'static str,
    args: &[&str],
) -> Result<i64, StoreError> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = q.bind(*a);
    }
    let res = q.execute(&mut *conn).await.map_err(StoreError::from_db)?;
    Ok(res.rows_affected() as i64)
}

async fn strings(
    conn: &mut AnyConnection,
    sql: &'static str,
    args: &[&str],
) -> Result<Vec<String>, StoreError> {
    let mut q = sqlx::query_scalar::<_, Option<String>>(sql);
    for a in args {
        q = q.bind(*a);
    }
    Ok(q.fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from_db)?
        .into_iter()
        .flatten()
        .collect())
}

/// Delete attachments matching `sql` (`DELETE … RETURNING id`), noting their files.
async fn delete_attachments(
    conn: &mut AnyConnection,
    report: &mut LedgerReport,
    ws: &str,
    sql: &'static str,
    arg: &str,
) -> Result<(), StoreError> {
    let ids = strings(conn, sql, &[ws, arg]).await?;
    report.add(ws, "attachments", ids.len() as i64);
    for id in ids {
        report.attachments.insert((ws.to_owned(), id));
    }
    Ok(())
}

/// Purge one erased contact (see the module invariants). Runs on `conn` (inside the caller's
/// transaction).
pub(crate) async fn purge_contact_in(
    conn: &mut AnyConnection,
    report: &mut LedgerReport,
    ws: &str,
    contact: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    // The contacts to remove: the erased one, and any contact (a visitor merged into it
    // later) whose key the record lists.
    let mut contacts = BTreeSet::from([contact.to_owned()]);
    for k in keys {
        contacts.extend(
            strings(
                conn,
                "SELECT id FROM contacts WHERE workspace_id = $1 AND subject_key_id = $2",
                &[ws, k],
            )
            .await?,
        );
        contacts.extend(
            strings(
                conn,
                "SELECT owner_id FROM subject_keys WHERE workspace_id = $1 AND id = $2",
                &[ws, k],
            )
            .await?,
        );
    }
    let mut all_keys: BTreeSet<String> = keys.iter().cloned().collect();
    for c in &contacts {
        all_keys.extend(
            strings(
                conn,
                "SELECT id FROM subject_keys WHERE workspace_id = $1 AND owner_id = $2",
                &[ws, c],
            )
            .await?,
        );
    }
    // Keys first: from here on nothing sealed under them opens.
    for k in &all_keys {
        let n = exec(
            conn,
            "DELETE FROM subject_keys WHERE workspace_id = $1 AND id = $2",
            &[ws, k],
        )
        .await?;
        report.add(ws, "subject_keys", n);
    }
    // Rows sealed under those keys, whoever they belong to in this copy.
    for k in &all_keys {
        let a = &[ws, k.as_str()];
        let n = exec(
            conn,
            "DELETE FROM messenger_session_conversations WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE workspace_id = $1 AND subject_key_id = $2)",
            a,
        )
        .await?;
        report.add(ws, "messenger_session_conversations", n);
        delete_attachments(
            conn,
            report,
            ws,
            "DELETE FROM attachments WHERE workspace_id = $1 AND (subject_key_id = $2 OR conversation_id IN (SELECT id FROM conversations WHERE workspace_id = $1 AND subject_key_id = $2)) RETURNING id",
            k,
        )
        .await?;
        let n = exec(
            conn,
            "DELETE FROM conversation_parts WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE workspace_id = $1 AND subject_key_id = $2)",
            a,
        )
        .await?;
        report.add(ws, "conversation_parts", n);
        let n = exec(
            conn,
            "DELETE FROM conversations WHERE workspace_id = $1 AND subject_key_id = $2",
            a,
        )
        .await?;
        report.add(ws, "conversations", n);
        let n = exec(
            conn,
            "DELETE FROM events WHERE workspace_id = $1 AND subject_key_id = $2",
            a,
        )
        .await?;
        report.add(ws, "events", n);
    }
    // Everything else of each contact.
    for c in &contacts {
        let a = &[ws, c.as_str()];
        let steps: [(&str, &'static str); 10] = [
            (
                "messenger_session_conversations",
                "DELETE FROM messenger_session_conversations WHERE workspace_id = $1 AND (conversation_id IN (SELECT id FROM conversations WHERE workspace_id = $1 AND contact_id = $2) OR token_hash IN (SELECT token_hash FROM messenger_sessions WHERE workspace_id = $1 AND contact_id = $2))",
            ),
            (
                "messenger_sessions",
                "DELETE FROM messenger_sessions WHERE workspace_id = $1 AND contact_id = $2",
            ),
            (
                "visitor_tokens",
                "DELETE FROM visitor_tokens WHERE workspace_id = $1 AND contact_id = $2",
            ),
            ("attachments", ""),
            (
                "conversation_parts",
                "DELETE FROM conversation_parts WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE workspace_id = $1 AND contact_id = $2)",
            ),
            (
                "conversations",
                "DELETE FROM conversations WHERE workspace_id = $1 AND contact_id = $2",
            ),
            (
                "events",
                "DELETE FROM events WHERE workspace_id = $1 AND contact_id = $2",
            ),
            (
                "outbox",
                "DELETE FROM outbox WHERE workspace_id = $1 AND subject_id = $2",
            ),
            (
                "subject_disclosures",
                "DELETE FROM subject_disclosures WHERE workspace_id = $1 AND contact_id = $2",
            ),
            // Access archives of the subject: their keys go (the files are never in a backup).
            (
                "access_archives",
                "UPDATE data_requests SET archive_key_ct = NULL, status = 'erased' WHERE workspace_id = $1 AND subject_id = $2 AND type = 'access' AND archive_key_ct IS NOT NULL",
            ),
        ];
        for (table, sql) in steps {
            if table == "attachments" {
                delete_attachments(
                    conn,
                    report,
                    ws,
                    "DELETE FROM attachments WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE workspace_id = $1 AND contact_id = $2) RETURNING id",
                    c,
                )
                .await?;
                continue;
            }
            let n = exec(conn, sql, a).await?;
            report.add(ws, table, n);
        }
        let n = exec(
            conn,
            "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2",
            a,
        )
        .await?;
        report.add(ws, "contacts", n);
        if n > 0 {
            report.add(ws, "contacts_erased", n);
        }
    }
    Ok(())
}

/// Purge every row of a workspace, children first. Runs on `conn` (inside the caller's
/// transaction). True if the workspace had any row.
pub(crate) async fn purge_workspace_in(
    conn: &mut AnyConnection,
    ws: &str,
) -> Result<bool, StoreError> {
    let mut any = false;
    for t in TABLES.iter().rev() {
        if let Some(sql) = t.purge {
            any |= exec(conn, sql, &[ws]).await? > 0;
        }
    }
    Ok(any)
}

/// Apply ledger records on `conn` (inside the caller's transaction): workspaces first (a
/// contact record of a deleted workspace has nothing left to do), then contacts.
pub(crate) async fn apply_in(
    conn: &mut AnyConnection,
    records: &[ErasureRecord],
    region: interlock_domain::Region,
) -> Result<LedgerReport, StoreError> {
    let mut report = LedgerReport {
        records: records.len(),
        ..LedgerReport::default()
    };
    let in_region = |ws: &str| WorkspaceId::parse(ws).is_ok_and(|w| w.region() == region);
    let mut gone = BTreeSet::new();
    for r in records {
        if let ErasureRecord::Workspace { workspace_id, .. } = r
            && in_region(workspace_id)
            && gone.insert(workspace_id.clone())
            && purge_workspace_in(conn, workspace_id).await?
        {
            report.workspaces_purged.push(workspace_id.clone());
        }
    }
    for r in records {
        if let ErasureRecord::Contact {
            workspace_id,
            contact_id,
            subject_key_ids,
            ..
        } = r
            && in_region(workspace_id)
            && !gone.contains(workspace_id)
        {
            purge_contact_in(conn, &mut report, workspace_id, contact_id, subject_key_ids).await?;
        }
    }
    for ws in &gone {
        report.workspaces.remove(ws);
    }
    Ok(report)
}

/// After a restore: access archives are not in backups (they are short-lived exports, and
/// would carry a subject's data outside its key), so every access request still holding an
/// archive key is marked `expired` — the requester asks again. Per workspace, on `conn`.
pub(crate) async fn expire_archives_in(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let workspaces = strings(conn, "SELECT id FROM workspaces ORDER BY id", &[]).await?;
    let mut n = 0;
    for ws in &workspaces {
        n += exec(
            conn,
            "UPDATE data_requests SET archive_key_ct = NULL, status = 'expired' WHERE workspace_id = $1 AND type = 'access' AND archive_key_ct IS NOT NULL",
            &[ws],
        )
        .await?;
    }
    Ok(n)
}

impl Cell {
    /// After a ledger purge committed: forget cached keys, remove attachment files and purged
    /// workspaces' folders, and log one `data.bulk_deleted` entry (as `system`, with `reason`)
    /// per workspace that lost something.
    pub(crate) async fn after_ledger_purge(
        &self,
        report: &LedgerReport,
        reason: &str,
        backup_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.subject_keys.clear();
        self.conversations.clear();
        self.ws_keys.clear();
        self.ws_version.clear();
        self.tokens.clear();
        for (ws, at) in &report.attachments {
            if let (Ok(ws), Ok(at)) = (WorkspaceId::parse(ws), AttachmentId::parse(at))
                && let Err(e) = self.blobs.delete(&ws, &at).await
            {
                tracing::warn!(workspace = %ws, error = %e, "attachment file not removed");
            }
        }
        for ws in &report.workspaces_purged {
            let ws = parse_id(WorkspaceId::parse(ws))?;
            self.blobs.delete_workspace(&ws).await?;
        }
        let system = Actor::system();
        for (ws, counts) in &report.workspaces {
            let ws = parse_id(WorkspaceId::parse(ws))?;
            let mut act = NewActivity::new(
                ActivityType::BulkDeleted,
                &system,
                Target::kind("workspace_data"),
            )
            .with("reason", reason);
            if let Some(id) = backup_id {
                act = act.with("backup_id", id);
            }
            for (element, n) in counts {
                act = act.with(element, *n);
            }
            self.record_activity(&ws, &act).await?;
        }
        Ok(())
    }

    /// Apply erasure records to this (live) store: purge each erased contact and deleted
    /// workspace still present, in one transaction, then remove files and log (reason
    /// `erasure_ledger`). Idempotent.
    pub async fn apply_erasure_records(
        &self,
        records: &[ErasureRecord],
    ) -> Result<LedgerReport, StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from_db)?;
        let report = apply_in(&mut tx, records, self.region).await?;
        tx.commit().await.map_err(StoreError::from_db)?;
        self.after_ledger_purge(&report, LEDGER_APPLIED, None)
            .await?;
        Ok(report)
    }
}
