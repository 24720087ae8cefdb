//! `interlock bench activity`: the activity log's hot paths against floors measured in the
//! same run on the same machine.
//! - appends: entries per second through the real path (canonical encoding, leaf hash,
//!   sealing, chaining inside the group-commit writer), in units of `--batch` entries from
//!   several concurrent tasks, against `raw_rows_per_s`: rows of the same size written
//!   straight into the same table with the same multi-row INSERTs, durability and rows per
//!   commit, without any of that work;
//! - verification: an export of those entries checked by `verify_export` on one core, in MB/s,
//!   against one SHA-256 pass over the same bytes; and the stored chain checked from the
//!   database (`Cell::verify_activity`: read, open, re-encode, hash).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use interlock_crypto::audit::{export_checkpoint_line, export_entry_line, verify_export};
use interlock_domain::{ActivityType, Actor, ActorType, NewActivity, Region, Target};
use interlock_http::server::Settings;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct ActivityArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Entries appended.
    #[arg(long, default_value_t = 200_000)]
    pub entries: usize,
    /// Entries per unit of work (one transaction each, grouped by the writer).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Concurrent appending tasks.
    #[arg(long, default_value_t = 4)]
    pub tasks: usize,
    /// Benchmark against PostgreSQL instead of the embedded SQLite store.
    #[arg(long)]
    pub database: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    store: &'static str,
    entries: usize,
    batch: usize,
    append_per_s: f64,
    raw_rows_per_s: f64,
    append_ratio: f64,
    export_bytes: usize,
    export_verify_mb_s: f64,
    sha256_mb_s: f64,
    export_verify_ratio: f64,
    stored_verify_mb_s: f64,
    stored_verify_entries_per_s: f64,
}

fn activity(i: usize) -> NewActivity {
    let actor = Actor::new(
        ActorType::ApiToken,
        Some("tk_0190a0c1a2b34c5d8e9f001122334455".into()),
        Some(std::net::IpAddr::from([203, 0, 113, (i % 250) as u8])),
        Some("interlock-bench/1.0 (+https://example.invalid)"),
    );
    NewActivity::new(
        ActivityType::ApiTokenCreated,
        &actor,
        Target::new("api_token", format!("tk_0190a0c1a2b34c5d8e9f0011{:08x}", i)),
    )
    .with("permissions", vec!["contacts.read", "conversations.read"])
    .with("expires_at", 1_900_000_000i64 + i as i64)
}

pub async fn run(args: ActivityArgs) -> Result<()> {
    if args.entries == 0 || args.batch == 0 || args.tasks == 0 {
        bail!("--entries, --batch and --tasks must be at least 1");
    }
    let dir = tempfile::tempdir().context("temp folder")?;
    let mut settings = Settings::new(dir.path().join("data"));
    settings.regions = vec![Region::Us];
    if let Some(db) = &args.database {
        let name = format!("bench_activity_{}", std::process::id());
        settings.database = Some(interlock_storage::db::with_database(db, &name)?);
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let cells = interlock_http::server::open_cells(&settings).await?;
    let cell = cells.get(&Region::Us).cloned().context("the us cell")?;
    let (ws, _) = cell.create_workspace("bench").await?;
    let (scratch, _) = cell.create_workspace("bench floor").await?;

    // Appends through the real path.
    let per_task = args.entries.div_ceil(args.tasks);
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..args.tasks {
        let cell = cell.clone();
        let ws = ws.id.clone();
        let batch = args.batch;
        let from = t * per_task;
        let to = ((t + 1) * per_task).min(args.entries);
        handles.push(tokio::spawn(async move {
            let mut i = from;
            while i < to {
                let n = batch.min(to - i);
                let acts: Vec<NewActivity> = (i..i + n).map(activity).collect();
                cell.record_activities(&ws, &acts).await?;
                i += n;
            }
            Ok::<_, interlock_storage::StoreError>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let append_per_s = args.entries as f64 / started.elapsed().as_secs_f64();

    // The floor: the same rows, same size, same commit size, no sealing/encoding/chaining.
    let sample = cell.activity_from(&ws.id, 1, 1, 1).await?;
    let body_bytes = sample
        .first()
        .map(|r| r.canonical.len() + 29)
        .unwrap_or(300);
    let raw_rows_per_s = cell
        .raw_activity_ingest(&scratch.id, 0, args.entries, args.batch, body_bytes)
        .await?;

    // An export of the whole chain, built as the server builds it, then verified.
    let head = cell
        .activity_head(&ws.id)
        .await?
        .context("the chain has a head")?;
    let mut export = Vec::with_capacity(args.entries * 420);
    let mut prev = head.anchor_hash;
    let mut next = head.first_seq;
    while next <= head.seq {
        let rows = cell.activity_from(&ws.id, next, head.seq, 5000).await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            export_entry_line(r.seq as u64, &prev, &r.hash, &r.canonical, &mut export);
            prev = r.hash;
            next = r.seq + 1;
        }
    }
    let signed = cell.sign_checkpoint(&interlock_crypto::audit::Checkpoint {
        workspace_id: ws.id.to_string(),
        kind: interlock_crypto::audit::CheckpointKind::Export,
        tree_size: head.seq as u64,
        head_hash: prev,
        created_at_ms: interlock_storage::now_ms(),
        first_seq: Some(head.first_seq as u64),
        anchor_hash: Some(head.anchor_hash),
        checkpoints: Some(0),
    });
    export_checkpoint_line(&signed, &mut export);
    let key = cell.activity_public_key();
    let export = Arc::new(export);
    let (verify_s, sha_s) = {
        let export = export.clone();
        tokio::task::spawn_blocking(move || {
            // Best of three for each, alternating, on this one thread.
            let mut best_v = f64::MAX;
            let mut best_h = f64::MAX;
            for _ in 0..3 {
                let t = Instant::now();
                let ok = verify_export(&export, &key).is_ok();
                best_v = best_v.min(t.elapsed().as_secs_f64());
                if !ok {
                    return Err(anyhow::anyhow!("the benchmark export did not verify"));
                }
                let t = Instant::now();
                let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &export);
                std::hint::black_box(d);
                best_h = best_h.min(t.elapsed().as_secs_f64());
            }
            Ok((best_v, best_h))
        })
        .await??
    };
    let mb = export.len() as f64 / 1e6;

    // The stored chain, from the database.
    let t = Instant::now();
    let report = cell
        .verify_activity(&ws.id, &cell.activity_public_key())
        .await
        .map_err(|f| anyhow::anyhow!("stored chain: {f}"))?;
    let stored_s = t.elapsed().as_secs_f64();
    for c in cells.values() {
        c.close().await;
    }
    if let Some(db) = &args.database {
        drop_bench_database(db, &settings).await;
    }

    let out = Report {
        store: if args.database.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        entries: args.entries,
        batch: args.batch,
        append_per_s,
        raw_rows_per_s,
        append_ratio: append_per_s / raw_rows_per_s,
        export_bytes: export.len(),
        export_verify_mb_s: mb / verify_s,
        sha256_mb_s: mb / sha_s,
        export_verify_ratio: sha_s / verify_s,
        stored_verify_mb_s: report.bytes as f64 / 1e6 / stored_s,
        stored_verify_entries_per_s: report.entries as f64 / stored_s,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "store {}: {} entries in units of {}",
            out.store, out.entries, out.batch
        );
        println!(
            "append           {:>10.0} entries/s   floor {:>10.0} rows/s   ratio {:.2}",
            out.append_per_s, out.raw_rows_per_s, out.append_ratio
        );
        println!(
            "verify export    {:>10.0} MB/s        SHA-256 {:>8.0} MB/s    ratio {:.2}   ({:.1} MB)",
            out.export_verify_mb_s, out.sha256_mb_s, out.export_verify_ratio, mb
        );
        println!(
            "verify stored    {:>10.0} MB/s        {:>10.0} entries/s",
            out.stored_verify_mb_s, out.stored_verify_entries_per_s
        );
    }
    Ok(())
}

async fn drop_bench_database(server: &str, settings: &Settings) {
    use sqlx::Connection;
    let Some(url) = &settings.database else {
        return;
    };
    let name = format!("{}_us", interlock_storage::db::database_name(url));
    sqlx::any::install_default_drivers();
    if let Ok(mut conn) = sqlx::AnyConnection::connect(server).await
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        let ddl = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        // `name` is checked above to be a plain identifier.
        #[allow(clippy::disallowed_methods)]
        let _ = sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(ddl)).await;
    }
}
