//! `interlock access-review start|report|sweep`: access reviews of standing access
//! (docs/access-reviews.md), offline over a data folder, like `staff device` and `retention`.
//!
//! `start` opens a campaign now in each region; `report` prints a campaign's completion and
//! drift (one line per figure, or `--json`); `sweep` runs what the server's sweeper runs on its
//! schedule: at an open campaign's deadline every undecided item is revoked and the campaign
//! closes, and a new campaign starts when the last began `--every-days` ago.

use crate::retention::rfc3339;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use interlock_domain::{Region, ReviewCampaignId};
use interlock_http::staff_settings::StaffSettings;
use interlock_storage::cell::{ReviewHolder, ReviewReport};
use interlock_storage::{ReviewCampaign, ReviewSchedule, ReviewSweep, StoreError};
use serde::Serialize;

use crate::config::StoreArgs;
use crate::staff_device::{open, regions};

#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// Start a campaign now (refused while one is open).
    Start(StartArgs),
    /// Print a campaign's completion and drift from the previous campaign and the baselines.
    Report(ReportArgs),
    /// Revoke what nobody reviewed by an open campaign's deadline, and start a campaign when
    /// one is due (what the server's sweeper runs).
    Sweep(SweepArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Days reviewers have; undecided items are then revoked (1 to 366).
    #[arg(long, default_value_t = 14)]
    pub window_days: i64,
    /// Only this region.
    #[arg(long)]
    pub region: Option<Region>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The campaign (`rv_…`); the latest of each region when left out.
    #[arg(long)]
    pub campaign: Option<String>,
    /// Only this region.
    #[arg(long)]
    pub region: Option<Region>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Start a campaign when the last one began this many days ago (1 to 366).
    #[arg(long, default_value_t = 91)]
    pub every_days: i64,
    /// Days reviewers have in a campaign the sweep starts (1 to --every-days).
    #[arg(long, default_value_t = 14)]
    pub window_days: i64,
    /// Only this region.
    #[arg(long)]
    pub region: Option<Region>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(cmd: ReviewCmd) -> Result<()> {
    match cmd {
        ReviewCmd::Start(args) => start(args).await,
        ReviewCmd::Report(args) => report(args).await,
        ReviewCmd::Sweep(args) => sweep(args).await,
    }
}

/// The schedule, checked like `[staff]` in the configuration.
fn schedule(every_days: i64, window_days: i64) -> Result<ReviewSchedule> {
    let s = StaffSettings {
        review_every_days: every_days,
        review_window_days: window_days,
        ..StaffSettings::default()
    };
    if let Err(e) = s.validate() {
        bail!(
            "{}",
            e.replace("staff.review_every_days", "--every-days")
                .replace("staff.review_window_days", "--window-days")
        );
    }
    Ok(ReviewSchedule::from_days(every_days, window_days))
}

fn status(c: &ReviewCampaign, now_ms: i64) -> &'static str {
    match c.closed_at {
        Some(_) => "closed",
        None if now_ms >= c.deadline_at => "overdue",
        None => "open",
    }
}

// ------------------------------------------------------------------ start

#[derive(Debug, Serialize)]
struct Started {
    region: Region,
    campaign: ReviewCampaign,
    items: usize,
}

async fn start(args: StartArgs) -> Result<()> {
    if !(1..=366).contains(&args.window_days) {
        bail!("--window-days must be between 1 and 366");
    }
    let window_ms = ReviewSchedule::from_days(args.window_days, args.window_days).window_ms;
    let mut out = Vec::new();
    for region in regions(&args.store, args.region)? {
        let (cell, _) = open(&args.store, region).await?;
        let r = async {
            let c = cell
                .start_access_review(interlock_storage::now_ms(), window_ms)
                .await?;
            let items = cell.access_review_items(&c.id).await?.len();
            Ok::<_, StoreError>((c, items))
        }
        .await;
        cell.close().await;
        match r {
            Ok((campaign, items)) => out.push(Started {
                region,
                campaign,
                items,
            }),
            Err(StoreError::Conflict("review_open")) => bail!(
                "region {region}: a campaign is open; decide its items or wait for its deadline (`interlock access-review report`)"
            ),
            Err(e) => return Err(e.into()),
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "started": out }))?
        );
        return Ok(());
    }
    for s in &out {
        println!(
            "region {}: started campaign {} with {} items, deadline {}",
            s.region,
            s.campaign.id,
            s.items,
            rfc3339(s.campaign.deadline_at)
        );
    }
    Ok(())
}

// ------------------------------------------------------------------ report

#[derive(Debug, Serialize)]
struct RegionReport {
    region: Region,
    /// `open`, `overdue` or `closed`; absent when the region has no campaign.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    report: Option<ReviewReport>,
}

async fn report(args: ReportArgs) -> Result<()> {
    let campaign = args
        .campaign
        .as_deref()
        .map(ReviewCampaignId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--campaign: {}", e.message))?;
    let now = interlock_storage::now_ms();
    let mut out = Vec::new();
    for region in regions(&args.store, args.region)? {
        let (cell, _) = open(&args.store, region).await?;
        let r = cell.access_review_report(campaign.as_ref()).await;
        cell.close().await;
        match r {
            Ok(report) => out.push(RegionReport {
                region,
                status: Some(status(&report.campaign, now)),
                report: Some(report),
            }),
            // A named campaign lives in one region; the others do not have it.
            Err(StoreError::NotFound) if campaign.is_some() => {}
            Err(StoreError::NotFound) => out.push(RegionReport {
                region,
                status: None,
                report: None,
            }),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(c) = &campaign
        && out.is_empty()
    {
        bail!("no campaign {c}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "regions": out }))?
        );
        return Ok(());
    }
    for r in &out {
        print_report(r);
    }
    Ok(())
}

fn holder_line(sign: char, h: &ReviewHolder) -> String {
    match &h.workspace_id {
        Some(ws) => format!("    {sign} {} {} in {ws}", h.holder_id, h.role),
        None => format!("    {sign} {} {} (staff)", h.holder_id, h.role),
    }
}

fn print_report(r: &RegionReport) {
    let Some(report) = &r.report else {
        println!("region {}: no campaign yet", r.region);
        return;
    };
    let c = &report.campaign;
    let t = &report.totals;
    let d = &report.drift;
    println!("region {}: campaign {}", r.region, c.id);
    println!("  status: {}", r.status.unwrap_or("open"));
    println!("  started: {}", rfc3339(c.started_at));
    println!("  deadline: {}", rfc3339(c.deadline_at));
    if let Some(closed) = c.closed_at {
        println!("  closed: {}", rfc3339(closed));
    }
    println!("  items: {}", t.items);
    println!("  decided: {}", t.decided);
    println!("  certified: {}", t.certified);
    println!("  revoked: {}", t.revoked);
    println!("  revoked unreviewed: {}", t.revoked_unreviewed);
    println!(
        "  revoke blocked (last owner): {}",
        t.revoke_blocked_last_owner
    );
    println!("  pending: {}", t.pending);
    println!("  completion: {:.1}%", report.completion * 100.0);
    match &d.previous_campaign_id {
        Some(p) => println!("  drift from: {p}"),
        None => println!("  drift from: (first campaign)"),
    }
    println!("  added: {}", d.added.len());
    for h in &d.added {
        println!("{}", holder_line('+', h));
    }
    println!("  removed: {}", d.removed.len());
    for h in &d.removed {
        println!("{}", holder_line('-', h));
    }
    println!("  changed: {}", d.changed.len());
    for ch in &d.changed {
        println!(
            "    ~ {} {} -> {}{} (gained: {}; lost: {})",
            ch.holder_id,
            ch.role_before,
            ch.role_after,
            ch.workspace_id
                .as_deref()
                .map(|w| format!(" in {w}"))
                .unwrap_or_default(),
            if ch.gained.is_empty() {
                "-".to_owned()
            } else {
                ch.gained.join(",")
            },
            if ch.lost.is_empty() {
                "-".to_owned()
            } else {
                ch.lost.join(",")
            },
        );
    }
    println!("  beyond baseline: {}", d.beyond_baseline.len());
    for b in &d.beyond_baseline {
        println!(
            "    ! {} {} {} holds {}",
            b.item_id,
            b.holder_id,
            b.role,
            b.extra.join(",")
        );
    }
}

// ------------------------------------------------------------------ sweep

#[derive(Debug, Serialize)]
struct Swept {
    region: Region,
    #[serde(flatten)]
    sweep: ReviewSweep,
}

async fn sweep(args: SweepArgs) -> Result<()> {
    let s = schedule(args.every_days, args.window_days)?;
    let mut out = Vec::new();
    for region in regions(&args.store, args.region)? {
        let (cell, _) = open(&args.store, region).await?;
        let r = cell
            .access_review_sweep(interlock_storage::now_ms(), s.every_ms, s.window_ms)
            .await;
        cell.close().await;
        out.push(Swept { region, sweep: r? });
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "regions": out }))?
        );
        return Ok(());
    }
    for r in &out {
        let s = &r.sweep;
        if s.is_empty() {
            println!("region {}: nothing due", r.region);
            continue;
        }
        for c in &s.campaigns_closed {
            println!("region {}: campaign {c} closed at its deadline", r.region);
        }
        if s.revoked_unreviewed > 0 || s.revoke_blocked_last_owner > 0 {
            println!(
                "region {}: revoked {} unreviewed item(s); {} kept (a workspace's last owner)",
                r.region, s.revoked_unreviewed, s.revoke_blocked_last_owner
            );
        }
        if let Some(c) = &s.campaign_started {
            println!("region {}: started campaign {c}", r.region);
        }
    }
    Ok(())
}
