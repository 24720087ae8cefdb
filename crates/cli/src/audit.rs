//! `interlock audit verify`: check the activity log's hash chains and signed checkpoints —
//! in a data folder (every workspace of every region there), or in an export file offline
//! against a published public key. Exit status 0 when intact; non-zero, naming the first bad
//! entry, otherwise.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use interlock_crypto::audit::{AuditPublicKey, Checkpoint, SignedCheckpoint, verify_export};
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
    /// Checkpoints held outside the operator's control (what a checkpoint sink received, one
    /// JSON checkpoint per line): each must verify and match the log at its size, so a log
    /// rewritten and re-signed with the region's key is caught.
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
}

/// Externally held checkpoints, each verified under `key`.
fn external_checkpoints(path: &PathBuf, key: &AuditPublicKey) -> Result<Vec<Checkpoint>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the checkpoints {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let signed: SignedCheckpoint = serde_json::from_str(line).map_err(|e| {
            anyhow::anyhow!("{} line {}: not a checkpoint: {e}", path.display(), i + 1)
        })?;
        let cp = key.verify(&signed).map_err(|e| {
            anyhow::anyhow!(
                "{} line {}: checkpoint does not verify: {e}",
                path.display(),
                i + 1
            )
        })?;
        out.push(cp);
    }
    Ok(out)
}

/// Compare external checkpoints of `workspace` with the log's hashes. `hash_at` gives the
/// hash after entry `seq` when the log holds it; `complete` says the log runs to its head (a
/// checkpoint beyond its end then means entries were removed).
fn check_external(
    cps: &[Checkpoint],
    workspace: &str,
    first: u64,
    last: u64,
    complete: bool,
    hash_at: impl Fn(u64) -> Option<[u8; 32]>,
) -> std::result::Result<usize, String> {
    let mut matched = 0;
    for cp in cps.iter().filter(|c| c.workspace_id == workspace) {
        if cp.tree_size > last {
            if complete {
                return Err(format!(
                    "an external checkpoint covers {} entries but the log ends at {last} (truncated or rewritten)",
                    cp.tree_size
                ));
            }
            continue;
        }
        if cp.tree_size < first {
            continue;
        }
        match hash_at(cp.tree_size) {
            Some(h) if h == cp.head_hash => matched += 1,
            _ => {
                return Err(format!(
                    "seq {}: the log's hash differs from an external checkpoint (the log was rewritten)",
                    cp.tree_size
                ));
            }
        }
    }
    Ok(matched)
}

pub async fn verify(args: VerifyArgs) -> Result<()> {
    match (&args.export, &args.public_key, &args.data_dir) {
        (Some(export), Some(key), None) => verify_file(export, key, args.checkpoints.as_ref()),
        (None, None, Some(dir)) => verify_store(&args, dir.clone()).await,
        _ => bail!("give --data-dir DIR, or --export FILE with --public-key FILE"),
    }
}

fn verify_file(export: &PathBuf, key: &PathBuf, external: Option<&PathBuf>) -> Result<()> {
    let pem = std::fs::read_to_string(key)
        .with_context(|| format!("reading the public key {}", key.display()))?;
    let key = AuditPublicKey::from_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 public key: {e}", key.display()))?;
    let bytes = std::fs::read(export)
        .with_context(|| format!("reading the export {}", export.display()))?;
    match verify_export(&bytes, &key) {
        Ok(s) => {
            if let Some(path) = external {
                let cps = external_checkpoints(path, &key)?;
                let hashes = export_hashes(&bytes);
                let matched = check_external(
                    &cps,
                    &s.workspace_id,
                    s.first_seq,
                    s.last_seq,
                    false,
                    |seq| hashes.get(&seq).copied(),
                )
                .map_err(|e| anyhow::anyhow!("TAMPERED: {}: {e}", export.display()))?;
                println!("{matched} external checkpoints match");
            }
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

/// Entry hashes of an export that already verified (JSON Lines or CSV), by seq.
fn export_hashes(bytes: &[u8]) -> std::collections::HashMap<u64, [u8; 32]> {
    let mut out = std::collections::HashMap::new();
    let mut put = |seq: Option<u64>, hash: Option<&str>| {
        if let (Some(seq), Some(hash)) = (seq, hash) {
            let mut h = [0u8; 32];
            if hex::decode_to_slice(hash, &mut h).is_ok() {
                out.insert(seq, h);
            }
        }
    };
    if bytes.starts_with(b"record,") {
        let mut r = csv::Reader::from_reader(bytes);
        for rec in r.records().flatten() {
            if rec.get(0) == Some("entry") {
                put(rec.get(1).and_then(|s| s.parse().ok()), rec.get(13));
            }
        }
    } else {
        for line in bytes.split(|b| *b == b'\n') {
            if !line.starts_with(b"{\"seq\"") {
                continue;
            }
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                put(v["seq"].as_u64(), v["hash"].as_str());
            }
        }
    }
    out
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
        let external = match &args.checkpoints {
            Some(p) => external_checkpoints(p, &key)?,
            None => Vec::new(),
        };
        let mut workspaces = cell.activity_log_workspaces().await?;
        // A log wiped entirely still has to answer to the checkpoints held elsewhere.
        for cp in &external {
            if let Ok(ws) = interlock_domain::WorkspaceId::parse(&cp.workspace_id)
                && ws.region() == region
                && !workspaces.contains(&ws)
            {
                workspaces.push(ws);
            }
        }
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
            let mut result = cell.verify_activity(ws, &key).await;
            if let Ok(r) = &result
                && !external.is_empty()
            {
                let rows = cell
                    .activity_from(ws, r.first_seq, r.last_seq, i64::MAX)
                    .await?;
                let hashes: std::collections::HashMap<u64, [u8; 32]> =
                    rows.iter().map(|x| (x.seq as u64, x.hash)).collect();
                if let Err(reason) = check_external(
                    &external,
                    ws.as_str(),
                    r.first_seq as u64,
                    r.last_seq as u64,
                    true,
                    |seq| hashes.get(&seq).copied(),
                ) {
                    result = Err(interlock_storage::ChainFailure {
                        workspace: ws.clone(),
                        seq: None,
                        entry_id: None,
                        reason,
                    });
                }
            }
            match result {
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
