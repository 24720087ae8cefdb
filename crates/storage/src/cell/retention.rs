//! Enforced retention: visitors not seen for nine months are deleted with everything that
//! belongs to them (their keys destroyed), and removed teammates' records 30 days after
//! removal. Planning (a dry run) and sweeping take the time as an argument — the caller's
//! clock — so tests and `--as-of` can move it.
//!
//! Invariants:
//! - A sweep works in bounded batches; each visitor is deleted in its own transaction with its
//!   activity entry (actor `system`), guarded by "still a visitor last seen before the
//!   horizon", so a visitor seen meanwhile is kept and a sweep killed half-way leaves nothing
//!   half-deleted: running it again finishes the job (it is idempotent).
//! - Candidates are found through `contacts_last_seen (role, last_seen_at)` and
//!   `teammates_removed (removed_at)`: a sweep that finds nothing reads index pages only.
//! - Each sweep records per workspace what it deleted, counted per data element, as one
//!   `data.bulk_deleted` entry by `system`.

use std::collections::BTreeMap;

use interlock_domain::{
    ActivityType, Actor, ContactId, ConversationId, NewActivity, RetentionSettings, Target,
    TeammateId, WorkspaceId,
};

use super::{Cell, col, parse_id};
use crate::StoreError;
use crate::db::{Arg, Stmt};

/// Visitors expire this long after they were last seen: nine months (274 days, from the data
/// map).
pub const VISITOR_MAX_AGE_MS: i64 = crate::datamap::VISITOR_INACTIVITY_DAYS as i64 * 86_400_000;
/// Removed teammates' records are deleted this long after removal (from the data map).
pub const REMOVED_TEAMMATE_MAX_AGE_MS: i64 =
    crate::datamap::REMOVED_TEAMMATE_DAYS as i64 * 86_400_000;

/// What a sweep would delete (or deleted), per workspace and data element.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionReport {
    pub as_of_ms: i64,
    pub workspaces: BTreeMap<String, BTreeMap<&'static str, i64>>,
}

impl RetentionReport {
    /// Records that go (or went), all elements of all workspaces.
    pub fn total(&self) -> i64 {
        self.workspaces.values().flat_map(|m| m.values()).sum()
    }

    fn add(&mut self, ws: &str, element: &'static str, n: i64) {
        if n > 0 {
            *self
                .workspaces
                .entry(ws.to_owned())
                .or_default()
                .entry(element)
                .or_default() += n;
        }
    }
}

/// Per-workspace counts of what expired visitors own, element by element (dry run).
const VISITOR_PLAN: &[(&str, &str)] = &[
    (
        "contacts",
        "SELECT workspace_id, COUNT(*) AS n FROM contacts WHERE role = 'visitor' AND last_seen_at < $1 GROUP BY workspace_id",
    ),
    (
        "conversations",
        "SELECT k.workspace_id, COUNT(*) AS n FROM conversations c JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
    (
        "conversation_parts",
        "SELECT k.workspace_id, COUNT(*) AS n FROM conversation_parts p JOIN conversations c ON c.workspace_id = p.workspace_id AND c.id = p.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
    (
        "events",
        "SELECT k.workspace_id, COUNT(*) AS n FROM events e JOIN contacts k ON k.workspace_id = e.workspace_id AND k.id = e.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
    (
        "attachments",
        "SELECT k.workspace_id, COUNT(*) AS n FROM attachments a JOIN conversations c ON c.workspace_id = a.workspace_id AND c.id = a.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
    (
        "subject_keys",
        "SELECT k.workspace_id, COUNT(*) AS n FROM subject_keys s JOIN contacts k ON k.workspace_id = s.workspace_id AND k.id = s.owner_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
];

/// The same counts for one workspace with its own (shorter) visitor horizon.
const VISITOR_PLAN_ONE: &[(&str, &str)] = &[
    (
        "contacts",
        "SELECT COUNT(*) AS n FROM contacts WHERE role = 'visitor' AND last_seen_at < $1 AND workspace_id = $2",
    ),
    (
        "conversations",
        "SELECT COUNT(*) AS n FROM conversations c JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
    (
        "conversation_parts",
        "SELECT COUNT(*) AS n FROM conversation_parts p JOIN conversations c ON c.workspace_id = p.workspace_id AND c.id = p.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
    (
        "events",
        "SELECT COUNT(*) AS n FROM events e JOIN contacts k ON k.workspace_id = e.workspace_id AND k.id = e.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
    (
        "attachments",
        "SELECT COUNT(*) AS n FROM attachments a JOIN conversations c ON c.workspace_id = a.workspace_id AND c.id = a.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
    (
        "subject_keys",
        "SELECT COUNT(*) AS n FROM subject_keys s JOIN contacts k ON k.workspace_id = s.workspace_id AND k.id = s.owner_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
];

/// Conversations (and what they hold) idle since before `$1` in workspace `$2`, not counting
/// those of visitors that expire anyway (last seen before `$3`).
const CONVERSATION_PLAN: &[(&str, &str)] = &[
    (
        "conversations",
        "SELECT COUNT(*) AS n FROM conversations c JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE c.workspace_id = $2 AND NOT (k.role = 'visitor' AND k.last_seen_at < $3) AND COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.created_at) < $1",
    ),
    (
        "conversation_parts",
        "SELECT COUNT(*) AS n FROM conversation_parts q JOIN conversations c ON c.workspace_id = q.workspace_id AND c.id = q.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE c.workspace_id = $2 AND NOT (k.role = 'visitor' AND k.last_seen_at < $3) AND COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.created_at) < $1",
    ),
    (
        "attachments",
        "SELECT COUNT(*) AS n FROM attachments a JOIN conversations c ON c.workspace_id = a.workspace_id AND c.id = a.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE c.workspace_id = $2 AND NOT (k.role = 'visitor' AND k.last_seen_at < $3) AND COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.created_at) < $1",
    ),
];

const DAY_MS: i64 = 86_400_000;

const TEAMMATE_PLAN: &str = "SELECT workspace_id, COUNT(*) AS n FROM teammates WHERE removed_at IS NOT NULL AND removed_at < $1 GROUP BY workspace_id";

impl Cell {
    /// The workspace's retention settings (defaults until first set).
    pub async fn retention_settings(
        &self,
        ws: &WorkspaceId,
    ) -> Result<RetentionSettings, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT conversation_days, visitor_days FROM workspace_retention WHERE workspace_id = $1",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(row) = row else {
            return Ok(RetentionSettings::default());
        };
        Ok(RetentionSettings {
            conversation_days: col::<Option<i64>>(&row, "conversation_days")?
                .map(|d| d.clamp(0, i64::from(u32::MAX)) as u32),
            visitor_days: col::<i64>(&row, "visitor_days")?.clamp(0, i64::from(u32::MAX)) as u32,
        })
    }

    /// Replace the workspace's retention settings (checked), recording before and after.
    pub async fn set_retention_settings(
        &self,
        ws: &WorkspaceId,
        settings: RetentionSettings,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let settings = settings.check().map_err(StoreError::Invalid)?;
        let before = self.retention_settings(ws).await?;
        let json = |s: &RetentionSettings| {
            serde_json::json!({
                "conversation_days": s.conversation_days,
                "visitor_days": s.visitor_days,
            })
        };
        let act = act
            .clone()
            .with("before", json(&before))
            .with("after", json(&settings));
        let entry = self.activity_stmt(ws, &act).await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "INSERT INTO workspace_retention (workspace_id, conversation_days, visitor_days, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id) DO UPDATE SET conversation_days = excluded.conversation_days, visitor_days = excluded.visitor_days, updated_at = excluded.updated_at",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::OptInt(settings.conversation_days.map(i64::from)),
                        Arg::Int(i64::from(settings.visitor_days)),
                        Arg::Int(crate::now_ms()),
                    ],
                ),
                entry,
            ])
            .await
    }

    /// Workspaces with their own retention settings.
    async fn custom_retention(&self) -> Result<Vec<(WorkspaceId, RetentionSettings)>, StoreError> {
        let rows = sqlx::query(
            "SELECT workspace_id, conversation_days, visitor_days FROM workspace_retention ORDER BY workspace_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::new();
        for row in &rows {
            let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
            if ws.region() != self.region {
                continue;
            }
            let s = RetentionSettings {
                conversation_days: col::<Option<i64>>(row, "conversation_days")?
                    .map(|d| d.clamp(0, i64::from(u32::MAX)) as u32),
                visitor_days: col::<i64>(row, "visitor_days")?.clamp(0, i64::from(u32::MAX)) as u32,
            };
            if s != RetentionSettings::default() {
                out.push((ws, s));
            }
        }
        Ok(out)
    }

    async fn count_one(
        &self,
        sql: &'static str,
        a: i64,
        ws: &WorkspaceId,
        c: Option<i64>,
    ) -> Result<i64, StoreError> {
        let mut q = sqlx::query_scalar(sql).bind(a).bind(ws.as_str());
        if let Some(c) = c {
            q = q.bind(c);
        }
        q.fetch_one(&self.pool).await.map_err(StoreError::Db)
    }

    /// What a sweep at `as_of_ms` would delete, deleting nothing.
    pub async fn retention_plan(&self, as_of_ms: i64) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport {
            as_of_ms,
            ..Default::default()
        };
        let visitor_horizon = as_of_ms - VISITOR_MAX_AGE_MS;
        for (element, sql) in VISITOR_PLAN {
            self.plan_rows(&mut report, element, sql, visitor_horizon)
                .await?;
        }
        self.plan_rows(
            &mut report,
            "teammates",
            TEAMMATE_PLAN,
            as_of_ms - REMOVED_TEAMMATE_MAX_AGE_MS,
        )
        .await?;
        for (ws, s) in self.custom_retention().await? {
            let horizon = as_of_ms - i64::from(s.visitor_days) * DAY_MS;
            if s.visitor_days < interlock_domain::retention::MAX_VISITOR_DAYS {
                // This workspace's own horizon replaces the global one for its visitors.
                let w = report.workspaces.entry(ws.to_string()).or_default();
                for (element, _) in VISITOR_PLAN {
                    w.remove(element);
                }
                for (element, sql) in VISITOR_PLAN_ONE {
                    let n = self.count_one(sql, horizon, &ws, None).await?;
                    report.add(ws.as_str(), element, n);
                }
            }
            if let Some(days) = s.conversation_days {
                let idle = as_of_ms - i64::from(days) * DAY_MS;
                for (element, sql) in CONVERSATION_PLAN {
                    let n = self.count_one(sql, idle, &ws, Some(horizon)).await?;
                    report.add(ws.as_str(), element, n);
                }
            }
            if report
                .workspaces
                .get(ws.as_str())
                .is_some_and(|m| m.is_empty())
            {
                report.workspaces.remove(ws.as_str());
            }
        }
        Ok(report)
    }

    async fn plan_rows(
        &self,
        report: &mut RetentionReport,
        element: &'static str,
        sql: &'static str,
        horizon: i64,
    ) -> Result<(), StoreError> {
        let rows = sqlx::query(sql)
            .bind(horizon)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        for row in &rows {
            let ws: String = col(row, "workspace_id")?;
            report.add(&ws, element, col(row, "n")?);
        }
        Ok(())
    }

    /// Delete what has expired at `as_of_ms`, `batch` candidates at a time, stopping after
    /// `max` deletions if given (a bounded run; the next run carries on). Returns what was
    /// deleted; records it per workspace in the activity log.
    pub async fn retention_sweep(
        &self,
        as_of_ms: i64,
        batch: i64,
        max: Option<i64>,
    ) -> Result<RetentionReport, StoreError> {
        let mut budget = max.unwrap_or(i64::MAX);
        let mut report = RetentionReport {
            as_of_ms,
            ..Default::default()
        };
        let system = Actor::system();
        let visitor_horizon = as_of_ms - VISITOR_MAX_AGE_MS;
        loop {
            let rows = sqlx::query(
                "SELECT workspace_id, id FROM contacts WHERE role = 'visitor' AND last_seen_at < $1 ORDER BY last_seen_at, id LIMIT $2",
            )
            .bind(visitor_horizon)
            .bind(batch.max(1))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            if rows.is_empty() || budget <= 0 {
                break;
            }
            let mut progressed = false;
            for row in &rows {
                if budget <= 0 {
                    break;
                }
                let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
                if ws.region() != self.region {
                    continue;
                }
                let id = parse_id(ContactId::parse(&col::<String>(row, "id")?))?;
                if self
                    .expire_visitor(&ws, &id, visitor_horizon, &mut report)
                    .await?
                {
                    progressed = true;
                    budget -= 1;
                }
            }
            if !progressed {
                break;
            }
        }
        for (ws, s) in self.custom_retention().await? {
            if s.visitor_days < interlock_domain::retention::MAX_VISITOR_DAYS {
                let horizon = as_of_ms - i64::from(s.visitor_days) * DAY_MS;
                self.sweep_visitors_of(&ws, horizon, batch, &mut budget, &mut report)
                    .await?;
            }
            if let Some(days) = s.conversation_days {
                let idle = as_of_ms - i64::from(days) * DAY_MS;
                self.sweep_conversations_of(&ws, idle, batch, &mut budget, &mut report)
                    .await?;
            }
        }
        let teammate_horizon = as_of_ms - REMOVED_TEAMMATE_MAX_AGE_MS;
        loop {
            let rows = sqlx::query(
                "SELECT workspace_id, id FROM teammates WHERE removed_at IS NOT NULL AND removed_at < $1 ORDER BY removed_at, id LIMIT $2",
            )
            .bind(teammate_horizon)
            .bind(batch.max(1))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            if rows.is_empty() || budget <= 0 {
                break;
            }
            let mut progressed = false;
            for row in &rows {
                if budget <= 0 {
                    break;
                }
                let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
                let id = parse_id(TeammateId::parse(&col::<String>(row, "id")?))?;
                let deleted = self.writer
                    .write(vec![
                        Stmt::new(
                            "DELETE FROM teammates WHERE workspace_id = $1 AND id = $2 AND removed_at IS NOT NULL AND removed_at < $3",
                            vec![
                                Arg::Text(ws.to_string()),
                                Arg::Text(id.to_string()),
                                Arg::Int(teammate_horizon),
                            ],
                        )
                        .expect(1),
                    ])
                    .await;
                match deleted {
                    Ok(()) => {
                        progressed = true;
                        budget -= 1;
                        report.add(ws.as_str(), "teammates", 1);
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            if !progressed {
                break;
            }
        }
        for (ws, counts) in &report.workspaces {
            let ws = parse_id(WorkspaceId::parse(ws))?;
            let mut act = NewActivity::new(
                ActivityType::BulkDeleted,
                &system,
                Target::kind("workspace_data"),
            )
            .with("reason", "retention")
            .with("as_of_ms", as_of_ms);
            for (element, n) in counts {
                act = act.with(element, *n);
            }
            self.record_activity(&ws, &act).await?;
        }
        Ok(report)
    }

    /// Delete one expired visitor (if it is still a visitor last seen before `horizon`) with
    /// its `contact.deleted` entry by `system`, and count what went. False when it was seen or
    /// deleted meanwhile.
    async fn expire_visitor(
        &self,
        ws: &WorkspaceId,
        id: &ContactId,
        horizon: i64,
        report: &mut RetentionReport,
    ) -> Result<bool, StoreError> {
        let act = NewActivity::new(
            ActivityType::ContactDeleted,
            &Actor::system(),
            Target::new("contact", id.as_str()),
        )
        .with("reason", "retention.visitor_expired");
        match self.delete_contact_if(ws, id, &act, Some(horizon)).await {
            Ok(c) => {
                let w = ws.as_str();
                report.add(w, "contacts", 1);
                report.add(w, "conversations", c.conversations);
                report.add(w, "conversation_parts", c.parts);
                report.add(w, "events", c.events);
                report.add(w, "attachments", c.attachments);
                report.add(w, "subject_keys", c.subject_keys);
                Ok(true)
            }
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One workspace's visitors last seen before its own (shorter) horizon.
    async fn sweep_visitors_of(
        &self,
        ws: &WorkspaceId,
        horizon: i64,
        batch: i64,
        budget: &mut i64,
        report: &mut RetentionReport,
    ) -> Result<(), StoreError> {
        loop {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM contacts WHERE role = 'visitor' AND last_seen_at < $1 AND workspace_id = $2 ORDER BY last_seen_at, id LIMIT $3",
            )
            .bind(horizon)
            .bind(ws.as_str())
            .bind(batch.max(1))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            let mut progressed = false;
            for id in &ids {
                if *budget <= 0 {
                    return Ok(());
                }
                let id = parse_id(ContactId::parse(id))?;
                if self.expire_visitor(ws, &id, horizon, report).await? {
                    progressed = true;
                    *budget -= 1;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// One workspace's conversations whose last message is older than `idle`.
    async fn sweep_conversations_of(
        &self,
        ws: &WorkspaceId,
        idle: i64,
        batch: i64,
        budget: &mut i64,
        report: &mut RetentionReport,
    ) -> Result<(), StoreError> {
        loop {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT c.id FROM conversations c WHERE c.workspace_id = $2 AND COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.created_at) < $1 ORDER BY c.id LIMIT $3",
            )
            .bind(idle)
            .bind(ws.as_str())
            .bind(batch.max(1))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            let mut progressed = false;
            for id in &ids {
                if *budget <= 0 {
                    return Ok(());
                }
                let id = parse_id(ConversationId::parse(id))?;
                let act = NewActivity::new(
                    ActivityType::ConversationDeleted,
                    &Actor::system(),
                    Target::new("conversation", id.as_str()),
                )
                .with("reason", "retention.conversation_idle");
                match self.delete_conversation_if(ws, &id, &act, Some(idle)).await {
                    Ok(c) => {
                        progressed = true;
                        *budget -= 1;
                        let w = ws.as_str();
                        report.add(w, "conversations", 1);
                        report.add(w, "conversation_parts", c.parts);
                        report.add(w, "attachments", c.attachments);
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }
}

/// Benchmark set-up: contact and subject-key rows with placeholder ciphertexts.
const BENCH_CONTACT_ROW: crate::db::RowInsert = crate::db::RowInsert {
    head: "INSERT INTO contacts (workspace_id, id, role, subject_key_id, custom_attributes_ct, created_at, updated_at, last_seen_at) VALUES ",
    columns: 8,
};
const BENCH_KEY_ROW: crate::db::RowInsert = crate::db::RowInsert {
    head: "INSERT INTO subject_keys (workspace_id, id, ws_key_version, wrapped, created_at, owner_id) VALUES ",
    columns: 6,
};

impl Cell {
    /// Benchmark set-up only: `n` contacts of `role` last seen at `seen_at_ms`, each with a
    /// subject-key row, written straight into the tables in transactions of 5,000 (their
    /// ciphertexts are placeholders: nothing reads them; retention only counts and deletes).
    #[doc(hidden)]
    pub async fn bench_insert_contacts(
        &self,
        ws: &WorkspaceId,
        n: usize,
        role: &str,
        seen_at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::Db)?;
        let mut done = 0;
        while done < n {
            let k = 5000.min(n - done);
            let mut contacts = Vec::with_capacity(k);
            let mut keys = Vec::with_capacity(k);
            for _ in 0..k {
                let id = ContactId::new();
                let skid = interlock_domain::SubjectKeyId::new();
                contacts.push(vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Text(role.to_owned()),
                    Arg::Text(skid.to_string()),
                    Arg::Bytes(vec![0u8; 40]),
                    Arg::Int(seen_at_ms),
                    Arg::Int(seen_at_ms),
                    Arg::Int(seen_at_ms),
                ]);
                keys.push(vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(skid.to_string()),
                    Arg::Int(1),
                    Arg::Bytes(vec![0u8; 60]),
                    Arg::Int(seen_at_ms),
                    Arg::Text(id.to_string()),
                ]);
            }
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(StoreError::Db)?;
            let refs: Vec<&[Arg]> = keys.iter().map(Vec::as_slice).collect();
            crate::db::insert_rows(&mut tx, BENCH_KEY_ROW, &refs).await?;
            let refs: Vec<&[Arg]> = contacts.iter().map(Vec::as_slice).collect();
            crate::db::insert_rows(&mut tx, BENCH_CONTACT_ROW, &refs).await?;
            tx.commit().await.map_err(StoreError::Db)?;
            done += k;
        }
        Ok(())
    }

    /// Benchmark baseline: how long counting every contact of the workspace by scanning takes
    /// (what a sweep without its index would pay).
    #[doc(hidden)]
    pub async fn bench_scan_contacts(&self, ws: &WorkspaceId) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM contacts WHERE workspace_id = $1 AND custom_attributes_ct IS NOT NULL",
        )
        .bind(ws.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)
    }
}
