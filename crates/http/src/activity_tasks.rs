//! The activity log's background work, per served region: signing checkpoints every N
//! entries or T seconds, delivering new entries and checkpoints to external sinks (a SIEM, a
//! file another party holds), and cutting entries older than the log's retention.
//!
//! Delivery is at least once: each sink's progress is a durable cursor per workspace, moved
//! only after the sink accepted a batch, so a failed delivery is retried on the next tick.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use interlock_domain::Region;
use interlock_storage::{Cell, StoreError};
use serde::{Deserialize, Serialize};

use crate::sinks::{Sink, SinkConfig, SinkError, checkpoint_jsonl};

/// How the activity log is kept (`[activity]` in the configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActivitySettings {
    /// Sign a checkpoint once a chain has grown by this many entries (default 1000).
    pub checkpoint_every_entries: i64,
    /// … or when its newest entry is this old without one (default 60 s).
    pub checkpoint_every_s: u64,
    /// Entries older than this are cut (default 730 days, two years; at least 30).
    pub retention_days: u32,
    /// Sinks that receive every new entry (JSON Lines or OCSF).
    pub sinks: Vec<SinkConfig>,
    /// Sinks that receive every signed checkpoint.
    pub checkpoint_sinks: Vec<SinkConfig>,
}

/// The retention sweeper's schedule (`[retention]` in the configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Sweep every this many seconds (default 3600).
    pub sweep_every_s: u64,
    /// Candidates read per batch (default 1000, one visitor-expiry transaction).
    pub batch: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            sweep_every_s: 3600,
            batch: 1000,
        }
    }
}

impl RetentionSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=86_400).contains(&self.sweep_every_s) {
            return Err("retention.sweep_every_s must be between 1 and 86400".into());
        }
        if !(1..=10_000).contains(&self.batch) {
            return Err("retention.batch must be between 1 and 10000".into());
        }
        Ok(())
    }
}

/// Run the retention sweep on every cell on its schedule, with time from `clock`; the
/// lifecycle part runs access reviews on the `[staff]` review schedule.
pub fn spawn_retention(
    cells: BTreeMap<Region, Arc<Cell>>,
    settings: &RetentionSettings,
    staff: &crate::staff_settings::StaffSettings,
    clock: Arc<dyn interlock_storage::Clock>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(settings.sweep_every_s);
    let reviews = crate::routes::reviews::schedule(staff);
    let batch = settings.batch;
    tokio::spawn(async move {
        let mut first = true;
        loop {
            // At start-up: finish erasures and purges a stop interrupted, at once.
            if !first {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
            }
            first = false;
            for cell in cells.values() {
                // Asked to stop: between steps, never inside one.
                if *stop.borrow() {
                    return;
                }
                match cell
                    .lifecycle_sweep_with(clock.now_ms(), batch, reviews)
                    .await
                {
                    Ok(r) if !r.is_empty() => {
                        tracing::info!(region = %cell.region(), notices = r.inactivity_notices.len(),
                            deleted = r.workspaces_deleted.len(), purged = r.workspaces_purged.len(),
                            erasures_resumed = r.erasures_resumed, archives_expired = r.archives_expired,
                            reviews_revoked_unreviewed = r.access_review.revoked_unreviewed,
                            reviews_closed = r.access_review.campaigns_closed.len(),
                            review_started = r.access_review.campaign_started.as_deref().unwrap_or("-"),
                            "workspace lifecycle sweep");
                    }
                    Ok(_) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(region = %cell.region(), error = %e, "workspace lifecycle sweep failed");
                    }
                }
                if *stop.borrow() {
                    return;
                }
                match cell.retention_sweep(clock.now_ms(), batch, None).await {
                    Ok(r) if r.total() > 0 => {
                        tracing::info!(region = %cell.region(), deleted = r.total(), "retention sweep");
                    }
                    Ok(_) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(region = %cell.region(), error = %e, "retention sweep failed");
                    }
                }
            }
        }
    })
}

impl Default for ActivitySettings {
    fn default() -> Self {
        Self {
            checkpoint_every_entries: 1000,
            checkpoint_every_s: 60,
            retention_days: 730,
            sinks: Vec::new(),
            checkpoint_sinks: Vec::new(),
        }
    }
}

impl ActivitySettings {
    /// Check the values (before anything listens).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1_000_000).contains(&self.checkpoint_every_entries) {
            return Err("activity.checkpoint_every_entries must be between 1 and 1000000".into());
        }
        if !(1..=86_400).contains(&self.checkpoint_every_s) {
            return Err("activity.checkpoint_every_s must be between 1 and 86400".into());
        }
        if !(30..=36_500).contains(&self.retention_days) {
            return Err("activity.retention_days must be between 30 and 36500".into());
        }
        for s in self.sinks.iter().chain(&self.checkpoint_sinks) {
            s.validate().map_err(|e| format!("activity sink: {e}"))?;
        }
        Ok(())
    }
}

/// Entries read per delivery batch.
const SINK_BATCH: i64 = 500;
/// How often retention is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

pub(crate) struct Delivery {
    sink: Sink,
    /// The cursor's name: which sink, in which format.
    name: String,
    /// Workspaces whose refusal by the outbound gate is already in their activity log (one
    /// entry per refusal streak, not one per tick).
    refused: std::sync::Mutex<std::collections::HashSet<interlock_domain::WorkspaceId>>,
}

impl Delivery {
    /// The outbound gate for an http sink: its host must be a sub-processor registered for
    /// the workspace's region. A refusal leaves the cursor where it is (entries are delivered
    /// once the host is registered) and is recorded once in the workspace's activity log.
    async fn allowed(
        &self,
        cell: &Cell,
        ws: &interlock_domain::WorkspaceId,
        registry: &[interlock_storage::cell::Subprocessor],
    ) -> Result<bool, TaskError> {
        let Some(host) = self.sink.http_host() else {
            return Ok(true);
        };
        let ok = registry.iter().any(|s| s.receives_at(&host));
        let first_refusal = {
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            if ok {
                refused.remove(ws);
                false
            } else {
                refused.insert(ws.clone())
            }
        };
        if first_refusal {
            tracing::warn!(workspace = %ws, sink = %self.sink.describe(), "activity sink refused: its host is not a registered sub-processor of the region");
            let act = interlock_domain::NewActivity::new(
                interlock_domain::ActivityType::OutboundRefused,
                &interlock_domain::Actor::system(),
                interlock_domain::Target::kind("activity_sink"),
            )
            .with("kind", "activity_sink")
            .with("host", host)
            .with("reason", "host_not_a_subprocessor");
            if let Err(e) = cell.record_activity(ws, &act).await {
                self.refused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(ws);
                return Err(e.into());
            }
        }
        Ok(ok)
    }
}

/// Open the sinks (failing fast on a bad one) and start the background loop.
pub fn spawn(
    cells: BTreeMap<Region, Arc<Cell>>,
    settings: &ActivitySettings,
) -> Result<tokio::task::JoinHandle<()>, SinkError> {
    let open = |list: &[SinkConfig], kind: &str| -> Result<Vec<Delivery>, SinkError> {
        list.iter()
            .map(|c| {
                let sink = Sink::open(c)?;
                let name = format!("{kind}:{:?}:{}", sink.format(), sink.describe());
                Ok(Delivery {
                    sink,
                    name,
                    refused: Default::default(),
                })
            })
            .collect()
    };
    let entry_sinks = open(&settings.sinks, "entries")?;
    let checkpoint_sinks = open(&settings.checkpoint_sinks, "checkpoints")?;
    let s = settings.clone();
    Ok(tokio::spawn(async move {
        let tick = Duration::from_secs(1).min(Duration::from_secs(s.checkpoint_every_s));
        let mut last_retention: Option<std::time::Instant> = None;
        loop {
            tokio::time::sleep(tick).await;
            let retention_due = last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY);
            for cell in cells.values() {
                if let Err(e) = run_once(cell, &s, &entry_sinks, &checkpoint_sinks).await {
                    if matches!(e, TaskError::Store(StoreError::Closed)) {
                        return;
                    }
                    tracing::warn!(region = %cell.region(), error = %e, "activity log upkeep failed");
                }
                if retention_due && let Err(e) = apply_retention(cell, s.retention_days).await {
                    tracing::warn!(region = %cell.region(), error = %e, "activity log retention failed");
                }
            }
            if retention_due {
                last_retention = Some(std::time::Instant::now());
            }
        }
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("sink: {0}")]
    Sink(#[from] SinkError),
}

/// One round: sign due checkpoints, then bring every sink up to date.
pub(crate) async fn run_once(
    cell: &Cell,
    s: &ActivitySettings,
    entry_sinks: &[Delivery],
    checkpoint_sinks: &[Delivery],
) -> Result<(), TaskError> {
    cell.checkpoint_due(
        s.checkpoint_every_entries,
        (s.checkpoint_every_s * 1000) as i64,
    )
    .await?;
    if entry_sinks.is_empty() && checkpoint_sinks.is_empty() {
        return Ok(());
    }
    let mut first_error = None;
    // The region's sub-processors, for the outbound gate of http sinks.
    let registry = if entry_sinks
        .iter()
        .chain(checkpoint_sinks)
        .any(|d| d.sink.http_host().is_some())
    {
        cell.subprocessors().await?
    } else {
        Vec::new()
    };
    for (ws, head) in cell.activity_workspaces().await? {
        for d in entry_sinks {
            match d.allowed(cell, &ws, &registry).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            if let Err(e) = deliver_entries(cell, &ws, head, d).await {
                first_error.get_or_insert(e);
            }
        }
        for d in checkpoint_sinks {
            match d.allowed(cell, &ws, &registry).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            if let Err(e) = deliver_checkpoints(cell, &ws, d).await {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn deliver_entries(
    cell: &Cell,
    ws: &interlock_domain::WorkspaceId,
    head: i64,
    d: &Delivery,
) -> Result<(), TaskError> {
    let mut cursor = cell.sink_cursor(&d.name, ws).await?;
    while cursor < head {
        let batch = cell
            .activity_entries_from(ws, cursor + 1, SINK_BATCH)
            .await?;
        let Some(last) = batch.last().map(|b| b.seq) else {
            break;
        };
        let mut lines = Vec::with_capacity(batch.len() * 512);
        for e in &batch {
            lines.extend_from_slice(&d.sink.entry_line(
                ws.as_str(),
                e.seq as u64,
                &e.hash,
                &e.entry,
            ));
        }
        d.sink.deliver(&lines).await?;
        cell.set_sink_cursor(&d.name, ws, last).await?;
        cursor = last;
    }
    Ok(())
}

async fn deliver_checkpoints(
    cell: &Cell,
    ws: &interlock_domain::WorkspaceId,
    d: &Delivery,
) -> Result<(), TaskError> {
    let cursor = cell.sink_cursor(&d.name, ws).await?;
    let cps = cell.activity_checkpoints(ws, cursor + 1, i64::MAX).await?;
    let Some(last) = cps.last().map(|c| c.checkpoint.tree_size as i64) else {
        return Ok(());
    };
    let mut lines = Vec::new();
    for cp in &cps {
        let json: serde_json::Value =
            serde_json::from_str(&cp.to_json()).unwrap_or(serde_json::Value::Null);
        lines.extend_from_slice(&checkpoint_jsonl(&json));
    }
    d.sink.deliver(&lines).await?;
    cell.set_sink_cursor(&d.name, ws, last).await?;
    Ok(())
}

/// Cut every workspace's log at the retention horizon.
pub async fn apply_retention(cell: &Cell, retention_days: u32) -> Result<u64, StoreError> {
    let horizon = interlock_storage::now_ms() - i64::from(retention_days) * 86_400_000;
    let mut removed = 0u64;
    for (ws, _) in cell.activity_workspaces().await? {
        if let Some(r) = cell.cut_activity(&ws, horizon).await? {
            removed += r.removed as u64;
        }
    }
    Ok(removed)
}
