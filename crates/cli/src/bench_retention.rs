//! `interlock bench retention`: the retention sweep on the embedded store.
//! - no-op: a sweep that finds nothing among `--contacts` contacts (target < 50 ms: it reads
//!   indexes only), next to a scan that counts those contacts (what it would pay without its
//!   index);
//! - expiry: `--expire` visitors past nine months deleted by the sweep, in visitors/s
//!   (target ≥ 20,000/s).

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use interlock_domain::Region;
use interlock_http::server::Settings;

#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Contacts that do not expire (users and recent visitors).
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: usize,
    /// Visitors past nine months, expired by the sweep.
    #[arg(long, default_value_t = 100_000)]
    pub expire: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: RetentionArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("temp folder")?;
    let mut settings = Settings::new(dir.path().join("data"));
    settings.regions = vec![Region::Us];
    std::fs::create_dir_all(&settings.data_dir)?;
    let cells = interlock_http::server::open_cells(&settings).await?;
    let cell = cells.get(&Region::Us).cloned().context("the us cell")?;
    let (ws, _) = cell.create_workspace("bench").await?;
    let now = interlock_storage::now_ms();
    let half = args.contacts / 2;
    cell.bench_insert_contacts(&ws.id, half, "user", now - 400 * 86_400_000)
        .await?;
    cell.bench_insert_contacts(&ws.id, args.contacts - half, "visitor", now)
        .await?;

    // No-op sweep, median of 5, against a counting scan of the same contacts.
    let mut noop = Vec::new();
    let mut scan = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = cell.retention_sweep(now, 500, None).await?;
        noop.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(r.total() == 0, "the no-op sweep deleted {}", r.total());
        let t = Instant::now();
        std::hint::black_box(cell.bench_scan_contacts(&ws.id).await?);
        scan.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    noop.sort_by(f64::total_cmp);
    scan.sort_by(f64::total_cmp);
    let (noop_ms, scan_ms) = (noop[2], scan[2]);

    // Expiry.
    cell.bench_insert_contacts(&ws.id, args.expire, "visitor", now - 300 * 86_400_000)
        .await?;
    let t = Instant::now();
    let r = cell.retention_sweep(now, 500, None).await?;
    let secs = t.elapsed().as_secs_f64();
    let expired = r
        .workspaces
        .values()
        .filter_map(|m| m.get("contacts"))
        .sum::<i64>();
    let per_s = expired as f64 / secs;
    for c in cells.values() {
        c.close().await;
    }
    let out = serde_json::json!({
        "contacts": args.contacts,
        "noop_sweep_ms": noop_ms,
        "scan_ms": scan_ms,
        "noop_vs_scan": noop_ms / scan_ms,
        "expired": expired,
        "expire_per_s": per_s,
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "no-op sweep over {} contacts: {noop_ms:.2} ms (a counting scan: {scan_ms:.1} ms, ratio {:.4})",
            args.contacts,
            noop_ms / scan_ms
        );
        println!("expired {expired} visitors in {secs:.1} s: {per_s:.0} visitors/s");
    }
    Ok(())
}
