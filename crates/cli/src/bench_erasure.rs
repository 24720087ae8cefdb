//! `interlock bench erasure`: erasing one data subject on the embedded store, in a small and a
//! large workspace, in the same run.
//!
//! Each subject owns a conversation with `--parts` messages (target: unreadable in < 100 ms
//! for 10,000). The small workspace holds `--small-contacts` other contacts; the large one
//! `--large-parts` other messages (spread over `--large-contacts` contacts). The erasure must
//! grow with the subject's own data, not with the workspace: the large/small ratio should stay
//! near 1. The time is `erase_contact` end to end: counting, keys destroyed, rows deleted,
//! receipt signed and stored, activity entries, one durable commit — the point from which the
//! subject's data is unreadable — and the (empty) file clean-up.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use interlock_domain::{
    Actor, ActorType, Body, ContactRole, CustomAttributes, NewContact, Region, WorkspaceId,
};
use interlock_http::server::Settings;
use interlock_storage::Cell;

#[derive(Debug, Args)]
pub struct ErasureArgs {
    /// Messages each erased subject owns.
    #[arg(long, default_value_t = 10_000)]
    pub parts: usize,
    /// Other contacts of the small workspace.
    #[arg(long, default_value_t = 10_000)]
    pub small_contacts: usize,
    /// Other messages of the large workspace.
    #[arg(long, default_value_t = 1_000_000)]
    pub large_parts: usize,
    /// Contacts those messages belong to.
    #[arg(long, default_value_t = 1_000)]
    pub large_contacts: usize,
    /// Subjects erased per workspace (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub subjects: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn body() -> Vec<u8> {
    // The size of a sealed short message (nonce, ~100 bytes, tag).
    vec![0x5a; 128]
}

/// A contact with one conversation holding `parts` messages.
async fn subject(
    cell: &Cell,
    ws: &WorkspaceId,
    parts: usize,
) -> Result<interlock_domain::ContactId> {
    let contact = cell
        .create_contact(
            ws,
            NewContact {
                role: ContactRole::Visitor,
                external_id: None,
                email: None,
                name: None,
                phone: None,
                custom_attributes: CustomAttributes::default(),
            },
        )
        .await?;
    let conv = cell
        .create_conversation(ws, &contact.id, &Body::parse("hello")?)
        .await?;
    cell.bench_insert_parts(ws, &conv.id, parts.saturating_sub(1), &body())
        .await?;
    Ok(contact.id)
}

/// Median milliseconds to erase `subjects` subjects of `parts` messages each in `ws`.
async fn erase_median(cell: &Cell, ws: &WorkspaceId, args: &ErasureArgs) -> Result<f64> {
    let actor = Actor::new(ActorType::System, Some("bench".into()), None, None);
    let mut times = Vec::new();
    for _ in 0..args.subjects.max(1) {
        let id = subject(cell, ws, args.parts).await?;
        let t = Instant::now();
        let e = cell.erase_contact(ws, &id, &actor).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let parts = e.receipt.document["deleted"]["conversation_parts"]
            .as_u64()
            .unwrap_or_default();
        anyhow::ensure!(
            parts == args.parts as u64,
            "erased {parts} parts, expected {}",
            args.parts
        );
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

pub async fn run(args: ErasureArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("temp folder")?;
    let mut settings = Settings::new(dir.path().join("data"));
    settings.regions = vec![Region::Us];
    std::fs::create_dir_all(&settings.data_dir)?;
    let cells = interlock_http::server::open_cells(&settings).await?;
    let cell = cells.get(&Region::Us).cloned().context("the us cell")?;
    let now = interlock_storage::now_ms();

    let (small, _) = cell.create_workspace("small").await?;
    cell.bench_insert_contacts(&small.id, args.small_contacts, "user", now, false)
        .await?;
    let (large, _) = cell.create_workspace("large").await?;
    let per = args.large_parts / args.large_contacts.max(1);
    for _ in 0..args.large_contacts.max(1) {
        subject(&cell, &large.id, per).await?;
    }

    let small_ms = erase_median(&cell, &small.id, &args).await?;
    let large_ms = erase_median(&cell, &large.id, &args).await?;
    let ratio = large_ms / small_ms;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "parts_per_subject": args.parts,
                "small_workspace_contacts": args.small_contacts,
                "large_workspace_parts": args.large_parts,
                "erase_ms_small": small_ms,
                "erase_ms_large": large_ms,
                "large_over_small": ratio,
            })
        );
    } else {
        println!(
            "erasing a subject with {} messages (median of {}):",
            args.parts, args.subjects
        );
        println!(
            "  workspace of {} contacts:        {small_ms:8.1} ms  (target < 100 ms)",
            args.small_contacts
        );
        println!(
            "  workspace of {} other messages: {large_ms:8.1} ms  (target < 100 ms)",
            args.large_parts
        );
        println!(
            "  large / small: {ratio:.2} (the subject's own data decides, not the workspace's size)"
        );
    }
    cell.close().await;
    Ok(())
}
