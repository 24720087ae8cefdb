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
    ActivityType, Actor, ContactId, NewActivity, Target, TeammateId, WorkspaceId,
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

const TEAMMATE_PLAN: &str = "SELECT workspace_id, COUNT(*) AS n FROM teammates WHERE removed_at IS NOT NULL AND removed_at < $1 GROUP BY workspace_id";

impl Cell {
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
                let act = NewActivity::new(
                    ActivityType::ContactDeleted,
                    &system,
                    Target::new("contact", id.as_str()),
                )
                .with("reason", "retention.visitor_expired");
                match self
                    .delete_contact_if(&ws, &id, &act, Some(visitor_horizon))
                    .await
                {
                    Ok(c) => {
                        progressed = true;
                        budget -= 1;
                        let w = ws.as_str();
                        report.add(w, "contacts", 1);
                        report.add(w, "conversations", c.conversations);
                        report.add(w, "conversation_parts", c.parts);
                        report.add(w, "events", c.events);
                        report.add(w, "attachments", c.attachments);
                        report.add(w, "subject_keys", c.subject_keys);
                    }
                    // Seen or deleted meanwhile: nothing to do.
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            if !progressed {
                break;
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
}
