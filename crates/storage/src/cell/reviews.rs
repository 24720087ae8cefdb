//! Access reviews of standing access (docs/access-reviews.md): campaigns that list every
//! holder of standing access in the region — enabled staff members with their role, and the
//! owners and admins of every live workspace — against the baseline for their role; reviewers'
//! decisions; and the deadline, at which every item nobody reviewed is revoked.
//!
//! Invariants:
//! - At most one campaign is open at a time: a start is refused while one is, and the check is
//!   made inside the transaction that inserts the campaign (on PostgreSQL the latest campaign's
//!   row is locked first, so two processes starting at once cannot both succeed).
//! - A campaign and its items are written in one transaction; an item records what the holder
//!   could do when the campaign began (`permissions`) and the role's baseline (`baseline`).
//! - An item is decided once, before the deadline, and never by its holder. Staff approvers
//!   decide staff items; a teammate's item is decided by that workspace (owners, through
//!   `security.manage`), never by operator staff: the operator does not certify or take away
//!   a customer's roles. A campaign's start and every certification or revocation of a
//!   teammate's role are in that workspace's activity log.
//! - A revocation is applied before its decision is recorded: a failure in between leaves the
//!   item undecided (and the access already gone), so a retry or the next sweep finishes it;
//!   it never leaves a recorded revocation whose access remains. Applying is idempotent (a
//!   disabled staff member, a teammate no longer owner or admin, is left as is).
//! - At the deadline, unreviewed access does not stay: every undecided item is revoked by
//!   `system` as `revoked_unreviewed` and the campaign closes. A revocation that would remove a
//!   workspace's last owner is not applied and is recorded as `revoke_blocked_last_owner`.
//! - Revoking a teammate's role is written to the workspace's activity log
//!   (`access_review.revoked`) in the same transaction as the role change.

use std::collections::BTreeMap;

use interlock_domain::{
    ActivityType, Actor, ActorType, BuiltinRole, NewActivity, ReviewCampaignId, ReviewItemId,
    StaffId, StaffRole, Target, TeammateId, TeammateRole, WorkspaceId,
};
use serde::Serialize;
use sqlx::any::AnyRow;

use super::StaffPrincipal;
use super::{Cell, col, parse_id};
use crate::StoreError;
use crate::db::{Arg, RowInsert, Stmt};

const DAY_MS: i64 = 86_400_000;

/// Who decided an item the deadline revoked.
pub const REVIEW_SYSTEM: &str = "system";

/// When campaigns start and how long reviewers have (`[staff] review_every_days`,
/// `review_window_days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewSchedule {
    /// A campaign starts when none is open and the last one started at least this long ago.
    pub every_ms: i64,
    /// Reviewers have this long; undecided items are then revoked.
    pub window_ms: i64,
}

impl ReviewSchedule {
    pub const fn from_days(every_days: i64, window_days: i64) -> Self {
        Self {
            every_ms: every_days * DAY_MS,
            window_ms: window_days * DAY_MS,
        }
    }
}

impl Default for ReviewSchedule {
    /// Quarterly (every 91 days), with 14 days to review.
    fn default() -> Self {
        Self::from_days(91, 14)
    }
}

/// What kind of standing access an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewItemKind {
    /// A staff member's role (`holder_id` is `sf_…`).
    StaffRole,
    /// A teammate's owner or admin role in one workspace (`holder_id` is `tm_…`).
    TeammateRole,
}

impl ReviewItemKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ReviewItemKind::StaffRole => "staff_role",
            ReviewItemKind::TeammateRole => "teammate_role",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "staff_role" => Ok(ReviewItemKind::StaffRole),
            "teammate_role" => Ok(ReviewItemKind::TeammateRole),
            _ => Err(malformed()),
        }
    }
}

/// Who decides an item: a staff approver (staff items), or a workspace (its own teammates'
/// items) through a request with `security.manage`, named by its actor.
#[derive(Debug, Clone, Copy)]
pub enum Reviewer<'a> {
    Staff(&'a StaffPrincipal),
    Workspace {
        workspace: &'a WorkspaceId,
        actor: &'a Actor,
    },
}

/// A reviewer's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewVerdict {
    /// The access stays.
    Certify,
    /// The access goes, at once.
    Revoke,
}

impl ReviewVerdict {
    /// `certify` or `revoke`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "certify" => Some(ReviewVerdict::Certify),
            "revoke" => Some(ReviewVerdict::Revoke),
            _ => None,
        }
    }
}

/// How an item was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// A reviewer kept the access.
    Certified,
    /// A reviewer revoked it.
    Revoked,
    /// Nobody reviewed it by the deadline: revoked by `system`.
    RevokedUnreviewed,
    /// Revoking would have left a workspace without an owner: the role was kept.
    RevokeBlockedLastOwner,
}

impl ReviewDecision {
    pub const fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Certified => "certified",
            ReviewDecision::Revoked => "revoked",
            ReviewDecision::RevokedUnreviewed => "revoked_unreviewed",
            ReviewDecision::RevokeBlockedLastOwner => "revoke_blocked_last_owner",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        [
            ReviewDecision::Certified,
            ReviewDecision::Revoked,
            ReviewDecision::RevokedUnreviewed,
            ReviewDecision::RevokeBlockedLastOwner,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
        .ok_or_else(malformed)
    }
}

/// A review campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewCampaign {
    pub id: ReviewCampaignId,
    pub started_at: i64,
    /// Items undecided by then are revoked.
    pub deadline_at: i64,
    /// When the last item was decided (or the deadline revoked the rest).
    pub closed_at: Option<i64>,
}

impl ReviewCampaign {
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

/// One holder of standing access in a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewItem {
    pub campaign_id: ReviewCampaignId,
    pub id: ReviewItemId,
    pub kind: ReviewItemKind,
    /// `sf_…` or `tm_…`.
    pub holder_id: String,
    /// The workspace, for a teammate's role.
    pub workspace_id: Option<WorkspaceId>,
    /// The role held when the campaign began.
    pub role: String,
    /// What the holder could do when the campaign began.
    pub permissions: Vec<String>,
    /// What the role's baseline allows.
    pub baseline: Vec<String>,
    pub decision: Option<ReviewDecision>,
    /// The reviewer's staff id, or `system`.
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
}

impl ReviewItem {
    /// Permissions held beyond the baseline.
    pub fn beyond_baseline(&self) -> Vec<String> {
        self.permissions
            .iter()
            .filter(|p| !self.baseline.contains(p))
            .cloned()
            .collect()
    }
}

/// What a campaign's decisions add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReviewTotals {
    pub items: usize,
    pub decided: usize,
    pub certified: usize,
    pub revoked: usize,
    pub revoked_unreviewed: usize,
    pub revoke_blocked_last_owner: usize,
    pub pending: usize,
}

/// A holder, as drift names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewHolder {
    pub kind: ReviewItemKind,
    pub holder_id: String,
    pub workspace_id: Option<String>,
    pub role: String,
}

/// A holder present in both campaigns whose role or permissions changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewChange {
    pub kind: ReviewItemKind,
    pub holder_id: String,
    pub workspace_id: Option<String>,
    pub role_before: String,
    pub role_after: String,
    /// Permissions gained since the previous campaign.
    pub gained: Vec<String>,
    /// Permissions lost since the previous campaign.
    pub lost: Vec<String>,
}

/// An item holding more than its role's baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BeyondBaseline {
    pub item_id: ReviewItemId,
    pub kind: ReviewItemKind,
    pub holder_id: String,
    pub workspace_id: Option<String>,
    pub role: String,
    /// The permissions beyond the baseline.
    pub extra: Vec<String>,
}

/// Drift: how this campaign's holders differ from the previous campaign's, and from their
/// baselines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReviewDrift {
    /// The campaign drift is measured against (`None` for the first campaign: nothing is
    /// reported as added then).
    pub previous_campaign_id: Option<ReviewCampaignId>,
    /// Holders in this campaign who were not in the previous one.
    pub added: Vec<ReviewHolder>,
    /// Holders of the previous campaign who are not in this one.
    pub removed: Vec<ReviewHolder>,
    /// Holders in both whose role or permissions changed.
    pub changed: Vec<ReviewChange>,
    /// Items whose permissions exceed their baseline.
    pub beyond_baseline: Vec<BeyondBaseline>,
}

/// A campaign's completion and drift (`interlock access-review report`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewReport {
    pub campaign: ReviewCampaign,
    pub totals: ReviewTotals,
    /// Decided items over all items (1 for a campaign with no items).
    pub completion: f64,
    pub drift: ReviewDrift,
}

/// What an access-review sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReviewSweep {
    /// Items revoked at the deadline because nobody reviewed them.
    pub revoked_unreviewed: usize,
    /// Items the deadline could not revoke (a workspace's last owner).
    pub revoke_blocked_last_owner: usize,
    /// Campaigns closed by their deadline.
    pub campaigns_closed: Vec<String>,
    /// The campaign started by the schedule, if one was.
    pub campaign_started: Option<String>,
}

impl ReviewSweep {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn malformed() -> StoreError {
    StoreError::Integrity(interlock_crypto::CryptoError::Malformed)
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The item insert, merged into multi-row INSERTs by the writer.
const ITEM_ROW: RowInsert = RowInsert {
    head: "INSERT INTO access_review_items (campaign_id, id, kind, holder_id, workspace_id, role, permissions, baseline) VALUES ",
    columns: 8,
};

fn campaign_from_row(row: &AnyRow) -> Result<ReviewCampaign, StoreError> {
    Ok(ReviewCampaign {
        id: parse_id(ReviewCampaignId::parse(&col::<String>(row, "id")?))?,
        started_at: col(row, "started_at")?,
        deadline_at: col(row, "deadline_at")?,
        closed_at: col(row, "closed_at")?,
    })
}

fn item_from_row(row: &AnyRow) -> Result<ReviewItem, StoreError> {
    let workspace_id = col::<Option<String>>(row, "workspace_id")?
        .map(|w| parse_id(WorkspaceId::parse(&w)))
        .transpose()?;
    Ok(ReviewItem {
        campaign_id: parse_id(ReviewCampaignId::parse(&col::<String>(row, "campaign_id")?))?,
        id: parse_id(ReviewItemId::parse(&col::<String>(row, "id")?))?,
        kind: ReviewItemKind::parse(&col::<String>(row, "kind")?)?,
        holder_id: col(row, "holder_id")?,
        workspace_id,
        role: col(row, "role")?,
        permissions: split(&col::<String>(row, "permissions")?),
        baseline: split(&col::<String>(row, "baseline")?),
        decision: col::<Option<String>>(row, "decision")?
            .map(|d| ReviewDecision::parse(&d))
            .transpose()?,
        decided_by: col(row, "decided_by")?,
        decided_at: col(row, "decided_at")?,
    })
}

/// A holder's identity across campaigns.
type HolderKey = (ReviewItemKind, String, Option<String>);

fn holder_key(i: &ReviewItem) -> HolderKey {
    (
        i.kind,
        i.holder_id.clone(),
        i.workspace_id.as_ref().map(ToString::to_string),
    )
}

fn holder(i: &ReviewItem) -> ReviewHolder {
    ReviewHolder {
        kind: i.kind,
        holder_id: i.holder_id.clone(),
        workspace_id: i.workspace_id.as_ref().map(ToString::to_string),
        role: i.role.clone(),
    }
}

/// The totals of a campaign's items.
pub fn review_totals(items: &[ReviewItem]) -> ReviewTotals {
    let mut t = ReviewTotals {
        items: items.len(),
        ..ReviewTotals::default()
    };
    for i in items {
        match i.decision {
            None => t.pending += 1,
            Some(d) => {
                t.decided += 1;
                match d {
                    ReviewDecision::Certified => t.certified += 1,
                    ReviewDecision::Revoked => t.revoked += 1,
                    ReviewDecision::RevokedUnreviewed => t.revoked_unreviewed += 1,
                    ReviewDecision::RevokeBlockedLastOwner => t.revoke_blocked_last_owner += 1,
                }
            }
        }
    }
    t
}

/// Drift of `items` from `previous` (the previous campaign's items) and from their baselines.
fn review_drift(
    previous_campaign_id: Option<ReviewCampaignId>,
    items: &[ReviewItem],
    previous: &[ReviewItem],
) -> ReviewDrift {
    let now: BTreeMap<HolderKey, &ReviewItem> = items.iter().map(|i| (holder_key(i), i)).collect();
    let before: BTreeMap<HolderKey, &ReviewItem> =
        previous.iter().map(|i| (holder_key(i), i)).collect();
    let mut drift = ReviewDrift {
        previous_campaign_id: previous_campaign_id.clone(),
        ..ReviewDrift::default()
    };
    if previous_campaign_id.is_some() {
        for (k, i) in &now {
            match before.get(k) {
                None => drift.added.push(holder(i)),
                Some(p) if p.role != i.role || p.permissions != i.permissions => {
                    drift.changed.push(ReviewChange {
                        kind: i.kind,
                        holder_id: i.holder_id.clone(),
                        workspace_id: k.2.clone(),
                        role_before: p.role.clone(),
                        role_after: i.role.clone(),
                        gained: i
                            .permissions
                            .iter()
                            .filter(|x| !p.permissions.contains(x))
                            .cloned()
                            .collect(),
                        lost: p
                            .permissions
                            .iter()
                            .filter(|x| !i.permissions.contains(x))
                            .cloned()
                            .collect(),
                    });
                }
                Some(_) => {}
            }
        }
        for (k, p) in &before {
            if !now.contains_key(k) {
                drift.removed.push(holder(p));
            }
        }
    }
    for i in items {
        let extra = i.beyond_baseline();
        if !extra.is_empty() {
            drift.beyond_baseline.push(BeyondBaseline {
                item_id: i.id.clone(),
                kind: i.kind,
                holder_id: i.holder_id.clone(),
                workspace_id: i.workspace_id.as_ref().map(ToString::to_string),
                role: i.role.clone(),
                extra,
            });
        }
    }
    drift
}

/// Items in a stable order: staff first, then teammates by workspace, each by holder.
fn sort_items(items: &mut [ReviewItem]) {
    items.sort_by(|a, b| {
        (a.kind, &a.workspace_id, &a.holder_id).cmp(&(b.kind, &b.workspace_id, &b.holder_id))
    });
}

/// A role whose holders are reviewed, and what it allows (holder's permissions and baseline
/// alike: both are the role's definition when the campaign begins).
fn teammate_role_permissions(role: &str) -> Option<String> {
    match TeammateRole::parse(role) {
        Ok(TeammateRole::Builtin(b @ (BuiltinRole::Owner | BuiltinRole::Admin))) => {
            Some(b.permissions().encode())
        }
        _ => None,
    }
}

fn staff_role_capabilities(role: StaffRole) -> String {
    role.capabilities().join(",")
}

impl Cell {
    // ------------------------------------------------------------------ reading

    /// Campaigns, newest first (at most `limit`).
    pub async fn access_review_campaigns(
        &self,
        limit: i64,
    ) -> Result<Vec<ReviewCampaign>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, started_at, deadline_at, closed_at FROM access_review_campaigns ORDER BY started_at DESC, id DESC LIMIT $1",
        )
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        rows.iter().map(campaign_from_row).collect()
    }

    /// One campaign; the latest when `id` is `None`. `NotFound` when there is none.
    pub async fn access_review_campaign(
        &self,
        id: Option<&ReviewCampaignId>,
    ) -> Result<ReviewCampaign, StoreError> {
        let row = match id {
            Some(id) => sqlx::query(
                "SELECT id, started_at, deadline_at, closed_at FROM access_review_campaigns WHERE id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await,
            None => sqlx::query(
                "SELECT id, started_at, deadline_at, closed_at FROM access_review_campaigns ORDER BY started_at DESC, id DESC LIMIT 1",
            )
            .fetch_optional(&self.pool)
            .await,
        }
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        campaign_from_row(&row)
    }

    /// A campaign's items: staff first, then teammates by workspace.
    pub async fn access_review_items(
        &self,
        campaign: &ReviewCampaignId,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        let rows = sqlx::query(
            "SELECT campaign_id, id, kind, holder_id, workspace_id, role, permissions, baseline, decision, decided_by, decided_at FROM access_review_items WHERE campaign_id = $1 ORDER BY id",
        )
        .bind(campaign.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut items = rows
            .iter()
            .map(item_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        sort_items(&mut items);
        Ok(items)
    }

    async fn access_review_item(
        &self,
        campaign: &ReviewCampaignId,
        item: &ReviewItemId,
    ) -> Result<ReviewItem, StoreError> {
        let row = sqlx::query(
            "SELECT campaign_id, id, kind, holder_id, workspace_id, role, permissions, baseline, decision, decided_by, decided_at FROM access_review_items WHERE campaign_id = $1 AND id = $2",
        )
        .bind(campaign.as_str())
        .bind(item.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        item_from_row(&row)
    }

    /// The campaign started just before `c`, if any.
    async fn previous_review_campaign(
        &self,
        c: &ReviewCampaign,
    ) -> Result<Option<ReviewCampaign>, StoreError> {
        let row = sqlx::query(
            "SELECT id, started_at, deadline_at, closed_at FROM access_review_campaigns WHERE started_at < $1 OR (started_at = $1 AND id < $2) ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .bind(c.started_at)
        .bind(c.id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    /// A campaign's completion and drift; the latest campaign when `campaign` is `None`.
    pub async fn access_review_report(
        &self,
        campaign: Option<&ReviewCampaignId>,
    ) -> Result<ReviewReport, StoreError> {
        let c = self.access_review_campaign(campaign).await?;
        let items = self.access_review_items(&c.id).await?;
        let previous = self.previous_review_campaign(&c).await?;
        let previous_items = match &previous {
            Some(p) => self.access_review_items(&p.id).await?,
            None => Vec::new(),
        };
        let totals = review_totals(&items);
        let completion = if totals.items == 0 {
            1.0
        } else {
            totals.decided as f64 / totals.items as f64
        };
        Ok(ReviewReport {
            drift: review_drift(previous.map(|p| p.id), &items, &previous_items),
            campaign: c,
            totals,
            completion,
        })
    }

    // ------------------------------------------------------------------ starting

    /// Who holds standing access now: enabled staff members, and the owners and admins of
    /// every live workspace of the region. Returns the item rows of campaign `id` and, per
    /// workspace, how many of its teammates are items.
    async fn review_holders(
        &self,
        id: &ReviewCampaignId,
    ) -> Result<(Vec<Stmt>, BTreeMap<WorkspaceId, usize>), StoreError> {
        let mut rows = Vec::new();
        let mut per_workspace = BTreeMap::new();
        let mut item = |kind: ReviewItemKind,
                        holder: String,
                        ws: Option<String>,
                        role: String,
                        permissions: String| {
            rows.push(Stmt::row(
                "INSERT INTO access_review_items (campaign_id, id, kind, holder_id, workspace_id, role, permissions, baseline) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                ITEM_ROW,
                vec![
                    Arg::Text(id.to_string()),
                    Arg::Text(ReviewItemId::new().to_string()),
                    Arg::Text(kind.as_str().to_owned()),
                    Arg::Text(holder),
                    Arg::OptText(ws),
                    Arg::Text(role),
                    // When the campaign begins, a holder can do what their role allows: the
                    // role's definition is both what they hold and the baseline.
                    Arg::Text(permissions.clone()),
                    Arg::Text(permissions),
                ],
            ));
        };
        let staff = sqlx::query("SELECT id, role FROM staff WHERE disabled_at IS NULL ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        for row in &staff {
            let role =
                StaffRole::parse(&col::<String>(row, "role")?).map_err(StoreError::Invalid)?;
            item(
                ReviewItemKind::StaffRole,
                col(row, "id")?,
                None,
                role.as_str().to_owned(),
                staff_role_capabilities(role),
            );
        }
        let workspaces: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM workspaces WHERE region = $1 AND deleted_at IS NULL ORDER BY id",
        )
        .bind(self.region.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        for ws in workspaces {
            let ws = parse_id(WorkspaceId::parse(&ws))?;
            if ws.region() != self.region {
                continue;
            }
            let teammates = sqlx::query(
                "SELECT id, role FROM teammates WHERE workspace_id = $1 AND removed_at IS NULL AND role IN ('owner', 'admin') ORDER BY id",
            )
            .bind(ws.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            for row in &teammates {
                let role: String = col(row, "role")?;
                let Some(permissions) = teammate_role_permissions(&role) else {
                    continue;
                };
                *per_workspace.entry(ws.clone()).or_insert(0) += 1;
                item(
                    ReviewItemKind::TeammateRole,
                    col(row, "id")?,
                    Some(ws.to_string()),
                    role,
                    permissions,
                );
            }
        }
        Ok((rows, per_workspace))
    }

    /// Start a campaign now, with `window_ms` to review. Refused (`Conflict("review_open")`)
    /// while a campaign is open. A campaign with nothing to review is closed at once.
    pub async fn start_access_review(
        &self,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<ReviewCampaign, StoreError> {
        if window_ms <= 0 {
            return Err(StoreError::Invalid(interlock_domain::DomainError::new(
                "window",
                "out_of_range",
                "the review window must be positive",
            )));
        }
        let latest = match self.access_review_campaign(None).await {
            Ok(c) => Some(c),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        if latest.as_ref().is_some_and(ReviewCampaign::is_open) {
            return Err(StoreError::Conflict("review_open"));
        }
        let id = ReviewCampaignId::new();
        let (items, per_workspace) = self.review_holders(&id).await?;
        let closed_at = items.is_empty().then_some(now_ms);
        let deadline_at = now_ms.saturating_add(window_ms);
        let mut unit = Vec::with_capacity(items.len() + 2);
        if let Some(l) = &latest {
            // Lock the latest campaign's row: a second process starting at the same moment
            // waits here, then finds this campaign open in the guarded insert below.
            unit.push(Stmt::new(
                "UPDATE access_review_campaigns SET closed_at = closed_at WHERE id = $1",
                vec![Arg::Text(l.id.to_string())],
            ));
        }
        unit.push(
            Stmt::new(
                "INSERT INTO access_review_campaigns (id, started_at, deadline_at, closed_at) SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM access_review_campaigns WHERE closed_at IS NULL)",
                vec![
                    Arg::Text(id.to_string()),
                    Arg::Int(now_ms),
                    Arg::Int(deadline_at),
                    Arg::OptInt(closed_at),
                ],
            )
            .expect(1),
        );
        unit.extend(items);
        // Each workspace with items is told, in its activity log and by webhook: its owners
        // review their owners and admins, or the roles end at the deadline.
        for (ws, count) in &per_workspace {
            let act = NewActivity::new(
                ActivityType::AccessReviewStarted,
                &Actor::system(),
                Target::new("access_review", id.as_str()),
            )
            .with("campaign_id", id.as_str())
            .with("items", *count)
            .with("deadline_at_ms", deadline_at);
            unit.push(self.activity_stmt(ws, &act).await?);
            unit.extend(
                self.webhook_stmts(
                    ws,
                    "access_review.started",
                    serde_json::json!({
                        "campaign_id": id.as_str(),
                        "items": count,
                        "deadline_at_ms": deadline_at,
                    }),
                    None,
                )
                .await?,
            );
        }
        match self.writer.write(unit).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(StoreError::Conflict("review_open")),
            Err(e) => return Err(e),
        }
        self.access_review_campaign(Some(&id)).await
    }

    // ------------------------------------------------------------------ deciding

    /// A reviewer's decision on one item of an open campaign, before its deadline. Staff
    /// approvers decide staff items (`Conflict("not_an_approver")` for other staff,
    /// `Conflict("reviewed_by_workspace")` for a teammate's item); a workspace decides only its
    /// own teammates' items (any other is `NotFound` to it). Nobody decides their own item
    /// (`Conflict("self_review")`), an item is decided once (`Conflict("item_decided")`), and
    /// a closed or overdue campaign refuses (`Conflict("review_closed")`). A revocation
    /// applies at once; a workspace's certification is in its activity log.
    pub async fn decide_review_item(
        &self,
        campaign: &ReviewCampaignId,
        item: &ReviewItemId,
        verdict: ReviewVerdict,
        reviewer: Reviewer<'_>,
        now_ms: i64,
    ) -> Result<ReviewItem, StoreError> {
        if let Reviewer::Staff(p) = reviewer
            && !p.role.can_approve()
        {
            return Err(StoreError::Conflict("not_an_approver"));
        }
        let c = self.access_review_campaign(Some(campaign)).await?;
        let it = self.access_review_item(campaign, item).await?;
        let actor = match reviewer {
            Reviewer::Staff(p) => {
                if it.kind != ReviewItemKind::StaffRole {
                    return Err(StoreError::Conflict("reviewed_by_workspace"));
                }
                Actor::new(ActorType::Staff, Some(p.staff_id.to_string()), None, None)
            }
            Reviewer::Workspace { workspace, actor } => {
                if it.kind != ReviewItemKind::TeammateRole
                    || it.workspace_id.as_ref() != Some(workspace)
                {
                    return Err(StoreError::NotFound);
                }
                actor.clone()
            }
        };
        if !c.is_open() || now_ms >= c.deadline_at {
            return Err(StoreError::Conflict("review_closed"));
        }
        if it.decision.is_some() {
            return Err(StoreError::Conflict("item_decided"));
        }
        if actor.id.as_deref() == Some(it.holder_id.as_str()) {
            return Err(StoreError::Conflict("self_review"));
        }
        let decided_by = actor
            .id
            .clone()
            .unwrap_or_else(|| actor.kind.as_str().to_owned());
        let mut unit = Vec::new();
        let decision = match verdict {
            ReviewVerdict::Certify => {
                if let Some(ws) = &it.workspace_id {
                    let act = NewActivity::new(
                        ActivityType::AccessReviewCertified,
                        &actor,
                        Target::new("teammate", it.holder_id.as_str()),
                    )
                    .with("campaign_id", campaign.as_str())
                    .with("item_id", item.as_str())
                    .with("role", it.role.as_str());
                    unit.push(self.activity_stmt(ws, &act).await?);
                }
                ReviewDecision::Certified
            }
            ReviewVerdict::Revoke => {
                if self
                    .revoke_review_item(&it, &actor, "revoked", now_ms)
                    .await?
                {
                    ReviewDecision::Revoked
                } else {
                    ReviewDecision::RevokeBlockedLastOwner
                }
            }
        };
        unit.insert(
            0,
            Stmt::new(
                "UPDATE access_review_items SET decision = $3, decided_by = $4, decided_at = $5 WHERE campaign_id = $1 AND id = $2 AND decision IS NULL AND EXISTS (SELECT 1 FROM access_review_campaigns WHERE id = $1 AND closed_at IS NULL AND deadline_at > $5)",
                vec![
                    Arg::Text(campaign.to_string()),
                    Arg::Text(item.to_string()),
                    Arg::Text(decision.as_str().to_owned()),
                    Arg::Text(decided_by),
                    Arg::Int(now_ms),
                ],
            )
            .expect(1),
        );
        unit.push(Self::close_campaign_stmt(campaign, now_ms));
        let r = self.writer.write(unit).await;
        match r {
            Ok(()) => self.access_review_item(campaign, item).await,
            Err(StoreError::NotFound) => {
                // Someone else decided it, or the campaign closed, in the meantime.
                let it = self.access_review_item(campaign, item).await?;
                Err(StoreError::Conflict(if it.decision.is_some() {
                    "item_decided"
                } else {
                    "review_closed"
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// The items of one workspace (its owners and admins) in a campaign.
    pub async fn workspace_review_items(
        &self,
        campaign: &ReviewCampaignId,
        ws: &WorkspaceId,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        self.check_region(ws)?;
        let rows = sqlx::query(
            "SELECT campaign_id, id, kind, holder_id, workspace_id, role, permissions, baseline, decision, decided_by, decided_at FROM access_review_items WHERE campaign_id = $1 AND workspace_id = $2 ORDER BY id",
        )
        .bind(campaign.as_str())
        .bind(ws.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        rows.iter().map(item_from_row).collect()
    }

    /// Close campaign `id` when no item is left undecided.
    fn close_campaign_stmt(id: &ReviewCampaignId, now_ms: i64) -> Stmt {
        Stmt::new(
            "UPDATE access_review_campaigns SET closed_at = $2 WHERE id = $1 AND closed_at IS NULL AND NOT EXISTS (SELECT 1 FROM access_review_items WHERE campaign_id = $1 AND decision IS NULL)",
            vec![Arg::Text(id.to_string()), Arg::Int(now_ms)],
        )
    }

    /// Take the access of an item away: a staff member is disabled (their sessions end, their
    /// grants stop working); a teammate's role becomes `agent`, logged in the workspace as
    /// `access_review.revoked` with `reason`. Access already gone is left as is. Returns
    /// `false` when the teammate is the workspace's last owner (nothing changed).
    async fn revoke_review_item(
        &self,
        it: &ReviewItem,
        actor: &Actor,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        match it.kind {
            ReviewItemKind::StaffRole => {
                let staff = parse_id(StaffId::parse(&it.holder_id))?;
                let enabled: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT disabled_at FROM staff WHERE id = $1")
                        .bind(staff.as_str())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(StoreError::Db)?;
                if matches!(enabled, Some(None)) {
                    match self.disable_staff(&staff, now_ms).await {
                        // Disabled meanwhile by someone else: the access is gone all the same.
                        Ok(()) | Err(StoreError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(true)
            }
            ReviewItemKind::TeammateRole => {
                let Some(ws) = &it.workspace_id else {
                    return Err(malformed());
                };
                if !self.workspace_live(ws).await? {
                    return Ok(true);
                }
                let tm = parse_id(TeammateId::parse(&it.holder_id))?;
                let role: Option<String> = sqlx::query_scalar(
                    "SELECT role FROM teammates WHERE workspace_id = $1 AND id = $2 AND removed_at IS NULL",
                )
                .bind(ws.as_str())
                .bind(tm.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Db)?;
                // Removed, or no longer owner or admin: what was reviewed is gone already.
                if role
                    .as_deref()
                    .and_then(teammate_role_permissions)
                    .is_none()
                {
                    return Ok(true);
                }
                let act = NewActivity::new(
                    ActivityType::AccessReviewRevoked,
                    actor,
                    Target::new("teammate", tm.as_str()),
                )
                .with("campaign_id", it.campaign_id.as_str())
                .with("item_id", it.id.as_str())
                .with("reason", reason);
                match self
                    .set_teammate_role(
                        ws,
                        &tm,
                        &TeammateRole::Builtin(BuiltinRole::Agent),
                        None,
                        &act,
                    )
                    .await
                {
                    Ok(_) | Err(StoreError::NotFound) => Ok(true),
                    Err(StoreError::Conflict("last_owner")) => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    // ------------------------------------------------------------------ the schedule

    /// The deadline and the schedule, at `now_ms`: every undecided item of an open campaign
    /// past its deadline is revoked (`revoked_unreviewed`, by `system`) and the campaign
    /// closes; then, when no campaign is open and none started within `every_ms`, one starts
    /// with `window_ms` to review. Running it again at the same moment does nothing.
    pub async fn access_review_sweep(
        &self,
        now_ms: i64,
        every_ms: i64,
        window_ms: i64,
    ) -> Result<ReviewSweep, StoreError> {
        let mut out = ReviewSweep::default();
        let open = sqlx::query(
            "SELECT id, started_at, deadline_at, closed_at FROM access_review_campaigns WHERE closed_at IS NULL ORDER BY started_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .iter()
        .map(campaign_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let mut still_open = false;
        for c in open {
            if now_ms < c.deadline_at {
                still_open = true;
                continue;
            }
            self.revoke_unreviewed(&c, now_ms, &mut out).await?;
            self.writer
                .write(vec![Self::close_campaign_stmt(&c.id, now_ms)])
                .await?;
            if self.access_review_campaign(Some(&c.id)).await?.is_open() {
                // An item appeared undecided again (cannot happen) or a write was lost: the
                // next sweep tries again.
                still_open = true;
            } else {
                out.campaigns_closed.push(c.id.to_string());
            }
        }
        if still_open {
            return Ok(out);
        }
        // Campaigns run on the approvers' schedule: nobody could review one in a region without
        // an approver (and at its deadline it would revoke everything), so the first campaign
        // is due a full period after the region's first approver was added, and each next one
        // a period after the last.
        let first_approver: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(created_at) FROM staff WHERE role = 'approver' AND disabled_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let anchor = match self.access_review_campaign(None).await {
            Ok(latest) => Some(latest.started_at),
            Err(StoreError::NotFound) => first_approver,
            Err(e) => return Err(e),
        };
        let due = anchor.is_some_and(|a| now_ms.saturating_sub(a) >= every_ms);
        if due && first_approver.is_some() {
            match self.start_access_review(now_ms, window_ms).await {
                Ok(c) => out.campaign_started = Some(c.id.to_string()),
                // Another process started one at the same moment.
                Err(StoreError::Conflict("review_open")) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Revoke every undecided item of `c` as unreviewed.
    async fn revoke_unreviewed(
        &self,
        c: &ReviewCampaign,
        now_ms: i64,
        out: &mut ReviewSweep,
    ) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT campaign_id, id, kind, holder_id, workspace_id, role, permissions, baseline, decision, decided_by, decided_at FROM access_review_items WHERE campaign_id = $1 AND decision IS NULL ORDER BY id",
        )
        .bind(c.id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let system = Actor::system();
        for row in &rows {
            let it = item_from_row(row)?;
            let decision = if self
                .revoke_review_item(&it, &system, "unreviewed", now_ms)
                .await?
            {
                ReviewDecision::RevokedUnreviewed
            } else {
                ReviewDecision::RevokeBlockedLastOwner
            };
            let r = self
                .writer
                .write(vec![
                    Stmt::new(
                        "UPDATE access_review_items SET decision = $3, decided_by = $4, decided_at = $5 WHERE campaign_id = $1 AND id = $2 AND decision IS NULL",
                        vec![
                            Arg::Text(c.id.to_string()),
                            Arg::Text(it.id.to_string()),
                            Arg::Text(decision.as_str().to_owned()),
                            Arg::Text(REVIEW_SYSTEM.to_owned()),
                            Arg::Int(now_ms),
                        ],
                    )
                    .expect(1),
                ])
                .await;
            match r {
                Ok(()) if decision == ReviewDecision::RevokedUnreviewed => {
                    out.revoked_unreviewed += 1;
                }
                Ok(()) => out.revoke_blocked_last_owner += 1,
                // Decided by a reviewer in the meantime.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn item(kind: ReviewItemKind, holder: &str, role: &str, perms: &str, base: &str) -> ReviewItem {
        ReviewItem {
            campaign_id: ReviewCampaignId::new(),
            id: ReviewItemId::new(),
            kind,
            holder_id: holder.to_owned(),
            workspace_id: None,
            role: role.to_owned(),
            permissions: split(perms),
            baseline: split(base),
            decision: None,
            decided_by: None,
            decided_at: None,
        }
    }

    #[test]
    fn drift_names_added_removed_changed_and_beyond_baseline() {
        let k = ReviewItemKind::StaffRole;
        let previous = vec![
            item(k, "sf_a", "support", "x", "x"),
            item(k, "sf_b", "support", "x", "x"),
        ];
        let now = vec![
            item(k, "sf_a", "approver", "x,y", "x,y"),
            item(k, "sf_c", "support", "x,z", "x"),
        ];
        let d = review_drift(Some(ReviewCampaignId::new()), &now, &previous);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].holder_id, "sf_c");
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].holder_id, "sf_b");
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].gained, vec!["y".to_owned()]);
        assert_eq!(d.beyond_baseline.len(), 1);
        assert_eq!(d.beyond_baseline[0].extra, vec!["z".to_owned()]);
        // The first campaign has nothing to drift from.
        let first = review_drift(None, &now, &[]);
        assert!(first.added.is_empty() && first.removed.is_empty());
        assert_eq!(first.beyond_baseline.len(), 1);
    }

    #[test]
    fn totals_count_every_decision() {
        let k = ReviewItemKind::TeammateRole;
        let mut items = vec![
            item(k, "tm_a", "admin", "", ""),
            item(k, "tm_b", "admin", "", ""),
            item(k, "tm_c", "owner", "", ""),
            item(k, "tm_d", "owner", "", ""),
        ];
        items[0].decision = Some(ReviewDecision::Certified);
        items[1].decision = Some(ReviewDecision::RevokedUnreviewed);
        items[2].decision = Some(ReviewDecision::RevokeBlockedLastOwner);
        let t = review_totals(&items);
        assert_eq!(
            (
                t.items,
                t.decided,
                t.certified,
                t.revoked_unreviewed,
                t.revoke_blocked_last_owner,
                t.pending
            ),
            (4, 3, 1, 1, 1, 1)
        );
    }

    #[test]
    fn only_owners_and_admins_are_reviewed() {
        assert!(teammate_role_permissions("owner").is_some());
        assert!(teammate_role_permissions("admin").is_some());
        assert!(teammate_role_permissions("agent").is_none());
        assert!(teammate_role_permissions("viewer").is_none());
        assert!(teammate_role_permissions("rl_0190aaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_none());
        assert!(ReviewVerdict::parse("certify").is_some());
        assert!(ReviewVerdict::parse("approve").is_none());
    }
}
