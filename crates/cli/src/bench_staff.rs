//! `interlock bench staff`: what a request under a staff grant costs the store, next to an
//! API-token request, on the embedded store in the same run.
//!
//! A staff request is authorized by three reads and one durable write before its handler
//! runs: the grant behind the token (checked against the clock, its staff member and its
//! workspace), the trusted device behind the client certificate, and the `staff_access.used`
//! activity entry (access transparency, committed before the handler). Baselines measured in
//! the same run: the API-token authentication every workspace request pays (a cache hit), and
//! one durable activity append alone (what any logged action pays) — the ratio to the latter is
//! the cost of the staff checks beyond the entry they must write. Measured one request at a
//! time (latency) and with `--concurrency` requests in flight (throughput: the activity
//! entries of concurrent requests share commits).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use interlock_domain::{AccessAsk, Actor, ActorType, Email, GrantKind, Region, StaffRole};
use interlock_http::server::Settings;
use interlock_storage::{Cell, StaffPrincipal};

#[derive(Debug, Args)]
pub struct StaffArgs {
    /// Requests measured one at a time, per path.
    #[arg(long, default_value_t = 2_000)]
    pub requests: usize,
    /// Requests in flight for the throughput figures.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The authorization work of one request under a grant.
async fn staff_request(
    cell: &Cell,
    grant: &str,
    fingerprint: &str,
    actor: &Actor,
    now: i64,
) -> Result<()> {
    let p = cell
        .staff_grant_principal(grant, now)
        .await?
        .context("the grant is active")?;
    let device = cell
        .staff_device_by_fingerprint(fingerprint)
        .await?
        .context("the device is registered")?;
    anyhow::ensure!(device.staff_id == p.staff_id.as_str());
    cell.record_staff_request(&p, actor, "GET", "/v1/contacts/{id}")
        .await?;
    Ok(())
}

pub async fn run(args: StaffArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("temp folder")?;
    let mut settings = Settings::new(dir.path().join("data"));
    settings.regions = vec![Region::Eu];
    std::fs::create_dir_all(&settings.data_dir)?;
    let cells = interlock_http::server::open_cells(&settings).await?;
    let cell = cells.get(&Region::Eu).cloned().context("the eu cell")?;
    let now = interlock_storage::now_ms();

    let (ws, api_token) = cell.create_workspace("bench").await?;
    let (alice, _) = cell
        .add_staff(&Email::parse("alice@operator.example")?, StaffRole::Support)
        .await?;
    let (bob, _) = cell
        .add_staff(&Email::parse("bob@operator.example")?, StaffRole::Approver)
        .await?;
    let device = interlock_crypto::DeviceCa::open_or_create(&settings.key_dir(), Region::Eu)?
        .issue(alice.id.as_str(), "bench-laptop", 30)?;
    cell.register_staff_device(&device).await?;
    let principal = |id: &interlock_domain::StaffId, role| StaffPrincipal {
        staff_id: id.clone(),
        role,
        device_serial: device.serial.clone(),
    };
    let ask = AccessAsk::check(
        &["contacts.read".to_owned()],
        "benchmark",
        "BENCH-1",
        Some(14_400),
        14_400,
    )?;
    let (grant, token) = cell
        .create_staff_grant(
            &principal(&alice.id, StaffRole::Support),
            &ws.id,
            &ask,
            GrantKind::Request,
            now,
        )
        .await?;
    cell.approve_staff_grant(
        &ws.id,
        &grant.id,
        &principal(&bob.id, StaffRole::Approver),
        now,
    )
    .await?;
    let token = token.expose().to_owned();
    let api = api_token.expose().to_owned();
    let actor = Actor::new(ActorType::Staff, Some(alice.id.to_string()), None, None);
    let n = args.requests.max(1);

    // Warm both paths (caches, prepared statements).
    for _ in 0..50 {
        cell.authenticate(&api).await?;
        staff_request(&cell, &token, &device.fingerprint, &actor, now).await?;
    }

    let t = Instant::now();
    for _ in 0..n {
        cell.authenticate(&api)
            .await?
            .context("the token is valid")?;
    }
    let api_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        staff_request(&cell, &token, &device.fingerprint, &actor, now).await?;
    }
    let staff_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let entry = interlock_domain::NewActivity::new(
        interlock_domain::ActivityType::DataExported,
        &actor,
        interlock_domain::Target::kind("bench"),
    );
    let t = Instant::now();
    for _ in 0..n {
        cell.record_activity(&ws.id, &entry).await?;
    }
    let append_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;

    // Throughput with requests in flight.
    let c = args.concurrency.max(1);
    let per = n.div_ceil(c);
    let throughput = |kind: u8| {
        let cell: Arc<Cell> = cell.clone();
        let (token, api, fp, actor, entry, wsid) = (
            token.clone(),
            api.clone(),
            device.fingerprint.clone(),
            actor.clone(),
            entry.clone(),
            ws.id.clone(),
        );
        async move {
            let t = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..c {
                let (cell, token, api, fp, actor, entry, wsid) = (
                    cell.clone(),
                    token.clone(),
                    api.clone(),
                    fp.clone(),
                    actor.clone(),
                    entry.clone(),
                    wsid.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per {
                        match kind {
                            0 => {
                                cell.authenticate(&api).await?;
                            }
                            1 => cell.record_activity(&wsid, &entry).await?,
                            _ => staff_request(&cell, &token, &fp, &actor, now).await?,
                        }
                    }
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            anyhow::Ok((c * per) as f64 / t.elapsed().as_secs_f64())
        }
    };
    let api_rps = throughput(0).await?;
    let append_rps = throughput(1).await?;
    let staff_rps = throughput(2).await?;
    let logged = cell.activity_head(&ws.id).await?.map_or(0, |h| h.seq);

    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "requests": n, "concurrency": c,
                "api_token_us": api_us, "append_us": append_us, "staff_grant_us": staff_us,
                "latency_ratio_to_append": staff_us / append_us,
                "api_token_per_s": api_rps, "append_per_s": append_rps, "staff_grant_per_s": staff_rps,
                "throughput_ratio_to_append": staff_rps / append_rps,
                "entries_logged": logged,
            })
        );
    } else {
        println!(
            "one at a time: API token {api_us:.1} µs, activity append {append_us:.0} µs, staff grant (grant + device + logged entry) {staff_us:.0} µs (×{:.2} the append)",
            staff_us / append_us
        );
        println!(
            "{c} in flight: API token {api_rps:.0}/s, activity append {append_rps:.0}/s, staff grant {staff_rps:.0}/s (ratio to the append {:.2})",
            staff_rps / append_rps
        );
        println!("staff_access.used entries in the workspace's log: {logged}");
    }
    cell.close().await;
    Ok(())
}
