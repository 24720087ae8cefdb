//! `interlock staff add|list|disable|remove-passkeys|audit-log`: the operator's staff members
//! (docs/staff-access.md), offline over a data folder. Staff are principals of one region and hold no standing access
//! to any workspace; `add` prints the member's TOTP secret once (for their authenticator app).

use anyhow::{Context, Result, bail};
use clap::Args;
use interlock_domain::{Email, Region, StaffId, StaffRole};
use serde::Serialize;

use crate::config::StoreArgs;
use crate::staff_device::{open, regions};

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The staff member's work email.
    #[arg(long)]
    pub email: String,
    /// support, engineer or approver.
    #[arg(long)]
    pub role: String,
    /// The region the member works in; may be left out when the data folder holds one region.
    #[arg(long)]
    pub region: Option<Region>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub region: Option<Region>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct DisableArgs {
    /// The staff member (`sf_…`).
    #[arg(long)]
    pub staff_id: String,
    #[arg(long)]
    pub region: Option<Region>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct RemovePasskeysArgs {
    /// The staff member (`sf_…`).
    #[arg(long)]
    pub staff_id: String,
    /// Only this passkey (`pk_…`); all of the member's passkeys when left out.
    #[arg(long)]
    pub passkey_id: Option<String>,
    #[arg(long)]
    pub region: Option<Region>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct AuditLogArgs {
    #[arg(long)]
    pub region: Option<Region>,
    /// Check the whole hash chain from genesis instead of printing entries; exits non-zero
    /// where it is broken.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: a head recorded earlier (`SEQ:HASH`, as --verify prints it) that the
    /// chain must still contain; catches a chain rewritten with recomputed hashes.
    #[arg(long, requires = "verify")]
    pub expect: Option<String>,
    /// Print JSON (entries as JSON lines; with --verify one object).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Serialize)]
struct Added {
    id: String,
    region: Region,
    email: String,
    role: &'static str,
    /// The TOTP secret (base32) and its otpauth URI: shown once.
    totp_secret: String,
    otpauth_uri: String,
}

#[derive(Debug, Serialize)]
struct Member {
    id: String,
    region: Region,
    email: String,
    role: &'static str,
    created_at: i64,
    disabled_at: Option<i64>,
    /// How many passkeys the member registered (sign-in with TOTP works either way).
    passkeys: usize,
}

fn one_region(store: &StoreArgs, region: Option<Region>) -> Result<Region> {
    let found = regions(store, region)?;
    match found.as_slice() {
        [r] => Ok(*r),
        _ => bail!("the data folder holds several regions: pass --region"),
    }
}

pub async fn add(args: AddArgs) -> Result<()> {
    let email = Email::parse(&args.email).map_err(|e| anyhow::anyhow!("--email: {}", e.message))?;
    let role =
        StaffRole::parse(&args.role).map_err(|e| anyhow::anyhow!("--role: {}", e.message))?;
    let region = one_region(&args.store, args.region)?;
    let (cell, _) = open(&args.store, region).await?;
    let r = cell.add_staff(&email, role).await;
    cell.close().await;
    let (member, secret) = match r {
        Err(interlock_storage::StoreError::Conflict("staff_email_taken")) => {
            bail!("a staff member with this email exists in region {region}")
        }
        other => other.context("adding the staff member")?,
    };
    let out = Added {
        id: member.id.to_string(),
        region,
        email: member.email.clone(),
        role: member.role.as_str(),
        totp_secret: secret.base32(),
        otpauth_uri: secret.otpauth_uri("Interlock staff", &member.email)?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "staff member {} ({}, {}) added in region {region}",
            out.id, out.email, out.role
        );
        println!(
            "TOTP secret (shown once; add it to their authenticator): {}",
            out.totp_secret
        );
        println!("{}", out.otpauth_uri);
        println!(
            "next: interlock staff device issue --staff-id {} --name <device> --out <folder>",
            out.id
        );
    }
    Ok(())
}

pub async fn list(args: ListArgs) -> Result<()> {
    let mut out = Vec::new();
    for region in regions(&args.store, args.region)? {
        let (cell, _) = open(&args.store, region).await?;
        let listed = async {
            let mut listed = Vec::new();
            for m in cell.list_staff().await? {
                let passkeys = cell.staff_passkeys(&m.id).await?.len();
                listed.push(Member {
                    id: m.id.to_string(),
                    region,
                    email: m.email,
                    role: m.role.as_str(),
                    created_at: m.created_at,
                    disabled_at: m.disabled_at,
                    passkeys,
                });
            }
            Ok::<_, interlock_storage::StoreError>(listed)
        }
        .await;
        cell.close().await;
        out.extend(listed?);
    }
    if args.json {
        println!("{}", serde_json::json!({ "staff": out }));
    } else {
        for m in &out {
            let state = if m.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            };
            println!(
                "{}  {}  {:<8}  {:<8}  {} passkey(s)  {}",
                m.id, m.region, m.role, state, m.passkeys, m.email
            );
        }
    }
    Ok(())
}

pub async fn disable(args: DisableArgs) -> Result<()> {
    let id =
        StaffId::parse(&args.staff_id).map_err(|e| anyhow::anyhow!("--staff-id: {}", e.message))?;
    for region in regions(&args.store, args.region)? {
        let (cell, _) = open(&args.store, region).await?;
        let r = match cell.get_staff(&id).await {
            Ok(_) => Some(cell.disable_staff(&id, interlock_storage::now_ms()).await),
            Err(interlock_storage::StoreError::NotFound) => None,
            Err(e) => {
                cell.close().await;
                return Err(e.into());
            }
        };
        cell.close().await;
        match r {
            Some(Ok(())) => {
                println!(
                    "staff member {id} disabled in region {region}: sessions ended, grants stopped"
                );
                return Ok(());
            }
            Some(Err(interlock_storage::StoreError::NotFound)) => {
                bail!("staff member {id} is already disabled")
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    bail!("no staff member {id}")
}

/// Remove a member's passkeys (a lost or replaced authenticator): they sign in with their TOTP
/// code again and register a new one.
pub async fn remove_passkeys(args: RemovePasskeysArgs) -> Result<()> {
    let id =
        StaffId::parse(&args.staff_id).map_err(|e| anyhow::anyhow!("--staff-id: {}", e.message))?;
    let only = args
        .passkey_id
        .as_deref()
        .map(interlock_domain::PasskeyId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--passkey-id: {}", e.message))?;
    for region in regions(&args.store, args.region)? {
        let (cell, _) = open(&args.store, region).await?;
        let removed = async {
            match cell.get_staff(&id).await {
                Ok(_) => {}
                Err(interlock_storage::StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            }
            let mut removed = 0usize;
            for p in cell.staff_passkeys(&id).await? {
                if only.as_ref().is_none_or(|o| *o == p.id) {
                    cell.delete_staff_passkey(&id, &p.id).await?;
                    removed += 1;
                }
            }
            Ok(Some(removed))
        }
        .await;
        cell.close().await;
        match removed? {
            None => continue,
            Some(0) if only.is_some() => bail!("staff member {id} has no such passkey"),
            Some(n) => {
                println!("staff member {id}: {n} passkey(s) removed in region {region}");
                return Ok(());
            }
        }
    }
    bail!("no staff member {id}")
}

/// Print the region's staff audit log, or verify its chain.
pub async fn audit_log(args: AuditLogArgs) -> Result<()> {
    let expect = match args.expect.as_deref() {
        None => None,
        Some(e) => {
            let (seq, hash) = e
                .split_once(':')
                .and_then(|(s, h)| Some((s.parse::<i64>().ok()?, h.to_ascii_lowercase())))
                .filter(|(s, h)| *s > 0 && h.len() == 64)
                .ok_or_else(|| anyhow::anyhow!("--expect: SEQ:HASH, as --verify prints it"))?;
            Some((seq, hash))
        }
    };
    let mut broken = Vec::new();
    for region in regions(&args.store, args.region)? {
        let (cell, _) = open(&args.store, region).await?;
        let r = async {
            if args.verify {
                let mut v = cell.verify_staff_audit().await?;
                if let (Ok(_), Some((seq, hash))) = (&v, &expect)
                    && cell.staff_audit_hash_at(*seq).await?.as_deref() != Some(hash.as_str())
                {
                    v = Err(interlock_storage::StaffAuditBreak {
                        seq: *seq,
                        reason: "the chain no longer holds the expected head",
                    });
                }
                let head = match &v {
                    Ok(n) if *n > 0 => cell
                        .staff_audit_hash_at(*n)
                        .await?
                        .map(|h| format!("{n}:{h}")),
                    _ => None,
                };
                match &v {
                    Ok(n) if args.json => println!(
                        "{}",
                        serde_json::json!({"region": region, "ok": true, "entries": n, "head": head})
                    ),
                    Ok(n) => println!(
                        "region {region}: the staff audit chain verifies ({n} entries); head {}",
                        head.as_deref().unwrap_or("(empty)")
                    ),
                    Err(b) if args.json => println!(
                        "{}",
                        serde_json::json!({"region": region, "ok": false, "seq": b.seq, "reason": b.reason})
                    ),
                    Err(b) => println!(
                        "region {region}: the staff audit chain is broken at entry {}: {}",
                        b.seq, b.reason
                    ),
                }
                return Ok::<_, interlock_storage::StoreError>(v.is_err());
            }
            let mut after = 0;
            loop {
                let page = cell.staff_audit_entries(after, 500).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for e in &page {
                    if args.json {
                        let mut v = serde_json::to_value(e).unwrap_or_default();
                        v["region"] = serde_json::json!(region);
                        println!("{v}");
                    } else {
                        println!(
                            "{:>6}  {}  {:<22}  {}  {}",
                            e.seq,
                            crate::retention::rfc3339(e.created_at_ms),
                            e.kind,
                            e.staff_id.as_deref().unwrap_or("-"),
                            serde_json::Value::Object(e.metadata.clone())
                        );
                    }
                }
            }
            Ok(false)
        }
        .await;
        cell.close().await;
        if r? {
            broken.push(region);
        }
    }
    if !broken.is_empty() {
        bail!("the staff audit chain is broken in {broken:?}");
    }
    Ok(())
}
