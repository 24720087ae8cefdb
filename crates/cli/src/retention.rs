//! `interlock retention run`: the retention sweep on demand, over every region of a data
//! folder — or, with `--dry-run`, what it would delete at a moment (`--as-of`), deleting
//! nothing.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use interlock_domain::Region;
use serde::Serialize;

use crate::config::StoreArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, default_value = "./interlock-data")]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub key_dir: Option<PathBuf>,
    /// The PostgreSQL server URL the data folder's regions use (SQLite when unset).
    #[arg(long)]
    pub database: Option<String>,
    /// Only this region.
    #[arg(long)]
    pub region: Option<Region>,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The moment to plan for (RFC 3339, e.g. 2027-09-01T00:00:00Z); only with --dry-run.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The server's TOML configuration file: a real run then uses its `[retention] batch`
    /// and its `[staff]` access-review schedule, as the server's own sweeper does.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
struct WorkspaceOut {
    id: String,
    deletions: std::collections::BTreeMap<&'static str, i64>,
}

/// What the workspace lifecycle sweep did (a real run only; a dry run's `workspaces` already
/// name the workspaces the 13-month rule would delete).
#[derive(Debug, Default, Serialize)]
struct Lifecycle {
    inactivity_notices: Vec<String>,
    workspaces_deleted: Vec<String>,
    workspaces_purged: Vec<String>,
    erasures_resumed: usize,
    archives_expired: usize,
    staff_grants_ended: usize,
    staff_auth_expired: usize,
}

impl Lifecycle {
    fn merge(&mut self, r: interlock_storage::LifecycleReport) {
        self.inactivity_notices.extend(r.inactivity_notices);
        self.workspaces_deleted.extend(r.workspaces_deleted);
        self.workspaces_purged.extend(r.workspaces_purged);
        self.erasures_resumed += r.erasures_resumed;
        self.archives_expired += r.archives_expired;
        self.staff_grants_ended += r.staff_grants_ended;
        self.staff_auth_expired += r.staff_auth_expired;
    }
}

#[derive(Debug, Serialize)]
struct Out {
    as_of: String,
    dry_run: bool,
    workspaces: Vec<WorkspaceOut>,
    total: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle: Option<Lifecycle>,
}

/// Milliseconds since the epoch as RFC 3339 (the number itself if out of range).
pub(crate) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

pub async fn run(args: RunArgs) -> Result<()> {
    let as_of_ms = match (&args.as_of, args.dry_run) {
        (Some(_), false) => bail!("--as-of plans for another moment: it needs --dry-run"),
        (Some(t), true) => {
            let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--as-of {t:?} is not an RFC 3339 time"))?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).context("--as-of out of range")?
        }
        (None, _) => interlock_storage::now_ms(),
    };
    let regions: Vec<Region> = match args.region {
        Some(r) => vec![r],
        None => Region::ALL
            .iter()
            .copied()
            .filter(|r| {
                args.database.is_some() || args.data_dir.join("regions").join(r.as_str()).exists()
            })
            .collect(),
    };
    if regions.is_empty() {
        bail!("no region data under {}", args.data_dir.display());
    }
    let mut out = Out {
        as_of: rfc3339(as_of_ms),
        dry_run: args.dry_run,
        workspaces: Vec::new(),
        total: 0,
        lifecycle: None,
    };
    let file = crate::config::FileConfig::load(args.config.as_deref())?;
    file.retention.validate().map_err(|e| anyhow::anyhow!(e))?;
    file.staff.validate().map_err(|e| anyhow::anyhow!(e))?;
    let reviews = interlock_http::routes::reviews::schedule(&file.staff);
    let batch = file.retention.batch;
    let mut lifecycle = Lifecycle::default();
    for region in regions {
        let store = StoreArgs {
            data_dir: args.data_dir.clone(),
            key_dir: args.key_dir.clone(),
            database: args.database.clone(),
        };
        let settings = store.settings(region)?;
        let cfg = interlock_http::server::cell_config(&settings, region).await?;
        if !cfg.key_dir.join(region.as_str()).exists() {
            bail!(
                "no key folder for region {region} under {} (pass --key-dir)",
                cfg.key_dir.display()
            );
        }
        let cell = interlock_storage::Cell::open(cfg).await?;
        let report = if args.dry_run {
            cell.retention_plan(as_of_ms).await?
        } else {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(format!("region {region}: sweeping"));
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            // What the server's sweeper runs too, with the same settings: the 13-month rule
            // (notices, deletions), purges of deleted workspaces, erasures a stop
            // interrupted, expired archives, staff grants and sessions, access reviews.
            let life = cell.lifecycle_sweep_with(as_of_ms, batch, reviews).await;
            let r = match life {
                Ok(life) => {
                    bar.set_message(format!("region {region}: expiring"));
                    lifecycle.merge(life);
                    cell.retention_sweep(as_of_ms, batch, None).await
                }
                Err(e) => Err(e),
            };
            bar.finish_and_clear();
            r?
        };
        cell.close().await;
        out.total += report.total();
        for (id, deletions) in report.workspaces {
            out.workspaces.push(WorkspaceOut { id, deletions });
        }
    }
    if !args.dry_run {
        out.lifecycle = Some(lifecycle);
    }
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!("as of {}: {verb} {} records", out.as_of, out.total);
    for w in &out.workspaces {
        let parts: Vec<String> = w
            .deletions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("  {}: {}", w.id, parts.join(", "));
    }
    if let Some(l) = &out.lifecycle {
        for (what, ids) in [
            ("inactivity notice sent", &l.inactivity_notices),
            ("workspace deleted for inactivity", &l.workspaces_deleted),
            ("deleted workspace purged", &l.workspaces_purged),
        ] {
            for id in ids {
                println!("  {id}: {what}");
            }
        }
        if l.erasures_resumed > 0 {
            println!(
                "  erasures finished after an interruption: {}",
                l.erasures_resumed
            );
        }
        if l.archives_expired > 0 {
            println!("  access archives expired: {}", l.archives_expired);
        }
        if l.staff_grants_ended > 0 {
            println!(
                "  staff grants whose end was recorded: {}",
                l.staff_grants_ended
            );
        }
        if l.staff_auth_expired > 0 {
            println!(
                "  expired staff sessions and passkey ceremonies deleted: {}",
                l.staff_auth_expired
            );
        }
    }
    Ok(())
}
