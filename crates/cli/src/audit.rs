//! `interlock audit verify`: check the activity log's hash chains and signed checkpoints —
//! in a data folder (every workspace of every region there), or in an export file offline
//! against a published public key. Exit status 0 when intact; non-zero, naming the first bad
//! entry, otherwise.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use interlock_crypto::audit::{AuditPublicKey, verify_export};
use interlock_domain::Region;

use crate::config::StoreArgs;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A data folder to check (every workspace of every region found there).
    #[arg(long, conflicts_with = "export")]
    pub data_dir: Option<PathBuf>,
    /// Master keys, if not under the data folder.
    #[arg(long, requires = "data_dir")]
    pub key_dir: Option<PathBuf>,
    /// The PostgreSQL server URL the data folder's regions use (SQLite when unset).
    #[arg(long, requires = "data_dir")]
    pub database: Option<String>,
    /// Only this region.
    #[arg(long, requires = "data_dir")]
    pub region: Option<Region>,
    /// An export file (`GET /v1/activity-logs/export`, JSON Lines or CSV) to check offline.
    #[arg(long, requires = "public_key")]
    pub export: Option<PathBuf>,
    /// The region's public key (PEM, from `GET /v1/activity-logs/public-key`).
    #[arg(long, requires = "export")]
    pub public_key: Option<PathBuf>,
}

pub async fn verify(args: VerifyArgs) -> Result<()> {
    match (&args.export, &args.public_key, &args.data_dir) {
        (Some(export), Some(key), None) => verify_file(export, key),
        (None, None, Some(dir)) => verify_store(&args, dir.clone()).await,
        _ => bail!("give --data-dir DIR, or --export FILE with --public-key FILE"),
    }
}

fn verify_file(export: &PathBuf, key: &PathBuf) -> Result<()> {
    let pem = std::fs::read_to_string(key)
        .with_context(|| format!("reading the public key {}", key.display()))?;
    let key = AuditPublicKey::from_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 public key: {e}", key.display()))?;
    let bytes = std::fs::read(export)
        .with_context(|| format!("reading the export {}", export.display()))?;
    match verify_export(&bytes, &key) {
        Ok(s) => {
            println!(
                "intact: {} entries {}..{} of {} ({} checkpoints, key {})",
                s.entries,
                s.first_seq,
                s.last_seq,
                s.workspace_id,
                s.checkpoints,
                key.key_id()
            );
            Ok(())
        }
        Err(f) => bail!("TAMPERED: {}: {f}", export.display()),
    }
}

async fn verify_store(args: &VerifyArgs, data_dir: PathBuf) -> Result<()> {
    let regions: Vec<Region> = match args.region {
        Some(r) => vec![r],
        None => Region::ALL
            .iter()
            .copied()
            .filter(|r| {
                args.database.is_some() || data_dir.join("regions").join(r.as_str()).exists()
            })
            .collect(),
    };
    if regions.is_empty() {
        bail!("no region data under {}", data_dir.display());
    }
    let mut failures = 0usize;
    let mut total = 0u64;
    for region in regions {
        let store = StoreArgs {
            data_dir: data_dir.clone(),
            key_dir: args.key_dir.clone(),
            database: args.database.clone(),
        };
        let settings = store.settings(region)?;
        let cfg = interlock_http::server::cell_config(&settings, region).await?;
        let keys = cfg.key_dir.join(region.as_str());
        if !keys.exists() {
            bail!(
                "no key folder for region {region} under {} (pass --key-dir)",
                cfg.key_dir.display()
            );
        }
        if !keys
            .join(interlock_crypto::audit::SIGNING_KEY_FILE)
            .exists()
        {
            bail!(
                "region {region} has no activity signing key in {}",
                keys.display()
            );
        }
        let cell = interlock_storage::Cell::open(cfg).await?;
        let key = cell.activity_public_key();
        let workspaces = cell.activity_log_workspaces().await?;
        let bar = indicatif::ProgressBar::new(workspaces.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} workspaces {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("region {region}"));
        for ws in &workspaces {
            match cell.verify_activity(ws, &key).await {
                Ok(r) => {
                    total += r.entries;
                    bar.suspend(|| {
                        println!(
                            "intact: {} entries {}..{} ({} checkpoints)",
                            r.workspace, r.first_seq, r.last_seq, r.checkpoints
                        )
                    });
                }
                Err(f) => {
                    failures += 1;
                    bar.suspend(|| println!("TAMPERED: {f}"));
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        cell.close().await;
    }
    if failures > 0 {
        bail!("{failures} workspace log(s) failed verification");
    }
    println!("all activity logs intact ({total} entries)");
    Ok(())
}
