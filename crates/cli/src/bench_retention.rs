//! `interlock bench retention`: the retention sweep on the embedded store.
//! - no-op: a sweep that finds nothing among `--contacts` contacts (target < 50 ms: it reads
//!   indexes only), next to a scan that counts those contacts (what it would pay without its
//!   index);
//! - expiry: `--expire` visitors past nine months deleted by the sweep, in visitors/s
//!   (target ≥ 20,000/s), next to deleting `--baseline` of them one by one through the contact
//!   deletion (one transaction per visitor: what the sweep did before its set-based batches);
//! - expiry with content: `--expire-content` visitors that each own a conversation with a
//!   message and an event (three more rows each), deleted by the sweep.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use interlock_domain::{ActivityType, Actor, NewActivity, Region, Target};
use interlock_http::server::Settings;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Contacts that do not expire (users and recent visitors).
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: usize,
    /// Visitors past nine months, expired by the sweep.
    #[arg(long, default_value_t = 100_000)]
    pub expire: usize,
    /// Visitors owning a conversation, a message and an event, expired by the sweep.
    #[arg(long, default_value_t = 20_000)]
    pub expire_content: usize,
    /// Visitors deleted one by one first (the per-visitor baseline).
    #[arg(long, default_value_t = 200)]
    pub baseline: usize,
    /// Candidates the sweep reads at a time (`[retention] batch`; visitors expire in
    /// transactions of at most this many, up to 1,000).
    #[arg(long, default_value_t = 1000)]
    pub batch: i64,
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
    cell.bench_insert_contacts(&ws.id, half, "user", now - 400 * DAY_MS, false)
        .await?;
    cell.bench_insert_contacts(&ws.id, args.contacts - half, "visitor", now, false)
        .await?;
    cell.bench_settle().await?;

    // No-op sweep, median of 5, against a counting scan of the same contacts.
    let mut noop = Vec::new();
    let mut scan = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = cell.retention_sweep(now, args.batch, None).await?;
        noop.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(r.total() == 0, "the no-op sweep deleted {}", r.total());
        let t = Instant::now();
        std::hint::black_box(cell.bench_scan_contacts(&ws.id).await?);
        scan.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    noop.sort_by(f64::total_cmp);
    scan.sort_by(f64::total_cmp);
    let (noop_ms, scan_ms) = (noop[2], scan[2]);

    // Baseline: the same kind of visitors deleted one by one (one transaction each).
    let ids = cell
        .bench_insert_contacts(&ws.id, args.baseline, "visitor", now - 300 * DAY_MS, false)
        .await?;
    cell.bench_settle().await?;
    let act = NewActivity::new(
        ActivityType::ContactDeleted,
        &Actor::system(),
        Target::kind("contact"),
    );
    let t = Instant::now();
    for id in &ids {
        cell.delete_contact(&ws.id, id, &act).await?;
    }
    let baseline_per_s = ids.len() as f64 / t.elapsed().as_secs_f64();

    // Expiry: contacts and their keys.
    let (expire_per_s, expire_cpu_us) =
        expire(&cell, &ws.id, now, args.expire, false, args.batch).await?;
    // Expiry: visitors that own a conversation, a message and an event.
    let (content_per_s, content_cpu_us) =
        expire(&cell, &ws.id, now, args.expire_content, true, args.batch).await?;
    for c in cells.values() {
        c.close().await;
    }
    let out = serde_json::json!({
        "contacts": args.contacts,
        "noop_sweep_ms": noop_ms,
        "scan_ms": scan_ms,
        "noop_vs_scan": noop_ms / scan_ms,
        "expired": args.expire,
        "expire_per_s": expire_per_s,
        "expire_cpu_us_per_visitor": expire_cpu_us,
        "baseline_one_by_one_per_s": baseline_per_s,
        "expired_with_content": args.expire_content,
        "expire_with_content_per_s": content_per_s,
        "expire_with_content_cpu_us_per_visitor": content_cpu_us,
        "batch": args.batch,
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "no-op sweep over {} contacts: {noop_ms:.2} ms (a counting scan: {scan_ms:.1} ms, ratio {:.4})",
            args.contacts,
            noop_ms / scan_ms
        );
        let cpu =
            |us: Option<f64>| us.map_or_else(String::new, |us| format!(", {us:.0} µs CPU each"));
        println!(
            "expired {} visitors: {expire_per_s:.0} visitors/s{} (one by one: {baseline_per_s:.0}/s, ×{:.1})",
            args.expire,
            cpu(expire_cpu_us),
            expire_per_s / baseline_per_s
        );
        println!(
            "expired {} visitors with a conversation, a message and an event each: {content_per_s:.0} visitors/s{}",
            args.expire_content,
            cpu(content_cpu_us)
        );
    }
    Ok(())
}

/// This process's CPU time (user + system) so far, from `/proc/self/stat` (Linux; clock ticks
/// of 10 ms), to tell the sweep's own cost from a busy machine's waiting.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Add `n` visitors last seen 300 days ago and time the sweep that deletes them: visitors/s,
/// and CPU microseconds per visitor (all threads).
async fn expire(
    cell: &interlock_storage::Cell,
    ws: &interlock_domain::WorkspaceId,
    now: i64,
    n: usize,
    content: bool,
    batch: i64,
) -> Result<(f64, Option<f64>)> {
    if n == 0 {
        return Ok((0.0, None));
    }
    cell.bench_insert_contacts(ws, n, "visitor", now - 300 * DAY_MS, content)
        .await?;
    cell.bench_settle().await?;
    let cpu = cpu_secs();
    let t = Instant::now();
    let r = cell.retention_sweep(now, batch, None).await?;
    let secs = t.elapsed().as_secs_f64();
    let cpu_us = cpu.zip(cpu_secs()).map(|(a, b)| (b - a) * 1e6 / n as f64);
    let expired = r
        .workspaces
        .values()
        .filter_map(|m| m.get("contacts"))
        .sum::<i64>();
    anyhow::ensure!(
        expired == n as i64,
        "the sweep expired {expired} visitors, not {n}"
    );
    Ok((expired as f64 / secs, cpu_us))
}
