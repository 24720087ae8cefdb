//! `interlock backup` and `interlock restore`: a consistent, sealed snapshot of one region, and
//! its restore into a new data folder with the erasure ledger applied (docs/backup.md).

use std::fs;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use interlock_domain::Region;
use interlock_storage::backup::{BackupError, BackupReader};
use interlock_storage::cell::Progress;

use crate::config::FileConfig;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The data folder to back up (default: the configuration's, else ./interlock-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The file to write (must not exist). Mode 0600.
    #[arg(long)]
    pub out: PathBuf,
    /// Master keys (default: the configuration's, else DATA_DIR/keys).
    #[arg(long)]
    pub key_dir: Option<PathBuf>,
    /// The PostgreSQL server URL the regions use (default: the configuration's; SQLite when
    /// unset).
    #[arg(long)]
    pub database: Option<String>,
    /// The region to back up; needed when the data folder holds several. A backup holds one
    /// region, so it can be kept in that region.
    #[arg(long)]
    pub region: Option<Region>,
    /// A TOML configuration file (as for `serve`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// A new, empty data folder to restore into (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The SOURCE deployment's key folder: its master keys open the backup, its erasure
    /// ledger is applied. Serve the restored folder with the same --key-dir.
    #[arg(long)]
    pub key_dir: Option<PathBuf>,
    /// Restore into PostgreSQL (database `<name>_<region>` on this server, which must be
    /// empty) instead of SQLite.
    #[arg(long)]
    pub database: Option<String>,
    /// A TOML configuration file (as for `serve`; its data_dir is not used).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

fn bar(message: String) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} rows+files ({eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message);
    bar
}

fn show(bar: &ProgressBar, p: Progress) {
    bar.set_length(p.rows_total + p.blobs_total);
    bar.set_position(p.rows_done + p.blobs_done);
}

fn settings(
    data_dir: PathBuf,
    key_dir: Option<PathBuf>,
    database: Option<String>,
    region: Region,
) -> interlock_http::server::Settings {
    let mut s = interlock_http::server::Settings::new(data_dir);
    s.key_dir = key_dir;
    s.database = database;
    s.regions = vec![region];
    s
}

/// True if `dir` holds this region's master keys.
fn has_master_keys(key_dir: &Path, region: Region) -> bool {
    fs::read_dir(key_dir.join(region.as_str())).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("master-v") && n.ends_with(".key"))
        })
    })
}

pub async fn backup(args: BackupArgs) -> Result<()> {
    let file = FileConfig::load(args.config.as_deref())?;
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(crate::default_data_dir);
    if !data_dir.is_dir() {
        bail!("data folder {} does not exist", data_dir.display());
    }
    let key_dir = args.key_dir.clone().or_else(|| file.key_dir.clone());
    let database = args.database.clone().or_else(|| file.database.clone());
    let region = match args.region {
        Some(r) => r,
        None => {
            let candidates: Vec<Region> = match &file.regions {
                Some(rs) => rs.clone(),
                None => Region::ALL
                    .iter()
                    .copied()
                    .filter(|r| data_dir.join("regions").join(r.as_str()).is_dir())
                    .collect(),
            };
            match candidates.as_slice() {
                [one] => *one,
                [] => bail!("no region data under {}", data_dir.display()),
                many => bail!(
                    "{} holds regions {}: back up one at a time with --region (a backup holds one \
                     region, so each can be kept in its own region)",
                    data_dir.display(),
                    many.iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    if database.is_none()
        && !data_dir
            .join("regions")
            .join(region.as_str())
            .join("interlock.db")
            .is_file()
    {
        bail!("no data for region {region} under {}", data_dir.display());
    }
    let s = settings(data_dir, key_dir, database, region);
    if !has_master_keys(&s.key_dir(), region) {
        bail!(
            "no master key for region {region} under {} (pass --key-dir)",
            s.key_dir().display()
        );
    }
    if args.out.exists() {
        bail!("{} exists; choose a new file name", args.out.display());
    }
    let cfg = interlock_http::server::cell_config(&s, region).await?;
    let cell = interlock_storage::Cell::open(cfg).await?;
    // Written under a temporary name, synced, then renamed: a backup file is whole or absent.
    let dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = args
        .out
        .file_name()
        .context("--out must name a file")?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let pb = bar(format!("backing up region {region}"));
    let result = cell
        .backup(BufWriter::with_capacity(1 << 20, f), &mut |p| show(&pb, p))
        .await;
    cell.close().await;
    pb.finish_and_clear();
    let (out, summary) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e).context("backup failed");
        }
    };
    let f = out
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the backup")?;
    f.sync_all().context("syncing the backup")?;
    drop(f);
    if args.out.exists() {
        let _ = fs::remove_file(&tmp);
        bail!("{} appeared meanwhile; not overwritten", args.out.display());
    }
    fs::rename(&tmp, &args.out).with_context(|| format!("renaming to {}", args.out.display()))?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    println!(
        "backup {} of region {region}: {} rows, {} files, sealed under master key v{} -> {}",
        summary.backup_id,
        summary.rows,
        summary.blobs,
        summary.master_key_version,
        args.out.display()
    );
    if summary.missing_blobs > 0 {
        println!(
            "  {} attachment files were deleted while the backup ran and are not in it",
            summary.missing_blobs
        );
    }
    println!("  it opens only with this deployment's key folder; keep the two apart");
    Ok(())
}

/// `dir` is usable as a restore target: absent, or empty except for the key folder itself.
fn check_empty(dir: &Path, key_dir: &Path) -> Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let keys = fs::canonicalize(key_dir).ok();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        if keys.is_some() && fs::canonicalize(e.path()).ok() == keys {
            continue;
        }
        bail!(
            "refusing to restore into {}: it is not empty (found {}); restore into a new folder",
            dir.display(),
            e.file_name().to_string_lossy()
        );
    }
    Ok(true)
}

pub async fn restore(args: RestoreArgs) -> Result<()> {
    let file = FileConfig::load(args.config.as_deref())?;
    let key_dir = args
        .key_dir
        .clone()
        .or_else(|| file.key_dir.clone())
        .context("give the source deployment's key folder with --key-dir")?;
    let database = args.database.clone().or_else(|| file.database.clone());
    let input = || {
        fs::File::open(&args.input)
            .map(|f| BufReader::with_capacity(1 << 20, f))
            .with_context(|| format!("opening {}", args.input.display()))
    };
    let header = BackupReader::open(input()?)
        .with_context(|| format!("reading {}", args.input.display()))?
        .header()
        .clone();
    let region = header.region;
    if !has_master_keys(&key_dir, region) {
        bail!(
            "{} holds no master key for region {region}: give the source deployment's key \
             folder with --key-dir",
            key_dir.display()
        );
    }
    let existed = check_empty(&args.data_dir, &key_dir)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let s = settings(args.data_dir.clone(), Some(key_dir), database, region);
    let cleanup = || {
        // Remove only what this restore created.
        let _ = if existed {
            fs::remove_dir_all(args.data_dir.join("regions"))
        } else {
            fs::remove_dir_all(&args.data_dir)
        };
    };
    let cfg = match interlock_http::server::cell_config(&s, region).await {
        Ok(c) => c,
        Err(e) => {
            cleanup();
            return Err(e.into());
        }
    };
    let pb = bar(format!("restoring region {region}"));
    let result = interlock_storage::cell::restore(input()?, cfg, &mut |p| show(&pb, p)).await;
    pb.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            cleanup();
            return Err(match e {
                BackupError::Store(inner) => anyhow::Error::new(inner).context("restore failed"),
                other => anyhow::Error::new(other).context("restore refused"),
            });
        }
    };
    let ledger = &summary.ledger;
    let erased: i64 = ledger
        .workspaces
        .values()
        .filter_map(|m| m.get("contacts_erased"))
        .sum();
    println!(
        "restored backup {} of region {region}: {} rows, {} files into {}",
        summary.backup_id,
        summary.rows,
        summary.blobs_written,
        args.data_dir.display()
    );
    println!(
        "  erasure ledger: {} records applied; {erased} contacts and {} workspaces erased since the backup, {} rows removed",
        ledger.records,
        ledger.workspaces_purged.len(),
        ledger.total()
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "  serve it with: interlock serve --data-dir {} --key-dir {}",
        args.data_dir.display(),
        s.key_dir().display()
    )?;
    Ok(())
}
