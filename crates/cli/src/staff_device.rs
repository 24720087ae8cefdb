//! `interlock staff device issue|revoke|list`: trusted staff devices (docs/staff-devices.md),
//! offline over a data folder, like `keys` and `retention`.
//!
//! `issue` makes a client certificate with the region's device CA (created in the region's key
//! folder on first use), writes it and its key to `--out` (key mode 0600, never kept by the
//! server) and records the device in the region's store. `revoke` marks a device revoked: a
//! running server refuses it from the next request on (the lookup is per request). `list`
//! shows the devices of every region present in the data folder.

use crate::retention::rfc3339;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use interlock_crypto::DeviceCa;
use interlock_domain::Region;
use interlock_storage::{Cell, StaffDevice, StoreError};
use serde::Serialize;

use crate::config::StoreArgs;

/// The certificate file `issue` writes into `--out`.
pub const CERT_FILE: &str = "device-cert.pem";
/// The key file `issue` writes into `--out` (mode 0600).
pub const KEY_FILE: &str = "device-key.pem";

#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Issue a client certificate for a staff member's device and register it.
    Issue(IssueArgs),
    /// Revoke a device: the server refuses its certificate from the next request on.
    Revoke(RevokeArgs),
    /// List devices (revoked and expired ones included).
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The staff member (`sf_…`) the certificate is for.
    #[arg(long)]
    pub staff_id: String,
    /// A name for the device (`alice-laptop`), 1 to 64 characters.
    #[arg(long)]
    pub name: String,
    /// Folder to write device-cert.pem and device-key.pem to (created 0700 if missing; existing
    /// files are never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Days the certificate is valid (1 to 397).
    #[arg(long, default_value_t = 90)]
    pub valid_days: u32,
    /// The staff member's region; may be left out when the data folder holds one region.
    #[arg(long)]
    pub region: Option<Region>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The device certificate's serial (as `list` shows it).
    #[arg(long)]
    pub serial: String,
    /// Only look in this region.
    #[arg(long)]
    pub region: Option<Region>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this staff member's devices.
    #[arg(long)]
    pub staff_id: Option<String>,
    /// Only this region.
    #[arg(long)]
    pub region: Option<Region>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(cmd: DeviceCmd) -> Result<()> {
    match cmd {
        DeviceCmd::Issue(args) => issue(args).await,
        DeviceCmd::Revoke(args) => revoke(args).await,
        DeviceCmd::List(args) => list(args).await,
    }
}

/// The regions to work on: the one named, or every region with a folder in the data folder.
pub(crate) fn regions(store: &StoreArgs, region: Option<Region>) -> Result<Vec<Region>> {
    if !store.data_dir.exists() {
        bail!("data folder {} does not exist", store.data_dir.display());
    }
    let found: Vec<Region> = match region {
        Some(r) => vec![r],
        None => Region::ALL
            .iter()
            .copied()
            .filter(|r| store.data_dir.join("regions").join(r.as_str()).exists())
            .collect(),
    };
    if found.is_empty() {
        bail!("no region data under {}", store.data_dir.display());
    }
    Ok(found)
}

/// Open a region's cell, refusing a key folder that does not hold the region (a forgotten
/// `--key-dir` must not silently make new keys).
pub(crate) async fn open(store: &StoreArgs, region: Region) -> Result<(Cell, PathBuf)> {
    let settings = store.settings(region)?;
    let cfg = interlock_http::server::cell_config(&settings, region).await?;
    if !cfg.key_dir.join(region.as_str()).exists() {
        bail!(
            "no key folder for region {region} under {} (pass --key-dir)",
            cfg.key_dir.display()
        );
    }
    let key_dir = cfg.key_dir.clone();
    let cell = Cell::open(cfg)
        .await
        .with_context(|| format!("opening region {region}"))?;
    Ok((cell, key_dir))
}

/// Write a new file (never over an existing one) and sync it.
fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

async fn issue(args: IssueArgs) -> Result<()> {
    let region = match args.region {
        Some(r) => r,
        None => match regions(&args.store, None)?.as_slice() {
            [only] => *only,
            many => bail!(
                "the data folder holds regions {}: pass --region",
                many.iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let cert_path = args.out.join(CERT_FILE);
    let key_path = args.out.join(KEY_FILE);
    for p in [&cert_path, &key_path] {
        if p.exists() {
            bail!("{} exists; choose another --out", p.display());
        }
    }
    let (cell, key_dir) = open(&args.store, region).await?;
    let result = async {
        let ca = DeviceCa::open_or_create(&key_dir, region)?;
        let device = ca.issue(&args.staff_id, &args.name, args.valid_days)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        // Files first, then the record: a device is never registered without its key having
        // been handed over. A refused registration removes the files again.
        write_new(&key_path, 0o600, device.key_pem.as_bytes())?;
        if let Err(e) = write_new(&cert_path, 0o644, device.cert_pem.as_bytes()) {
            let _ = fs::remove_file(&key_path);
            return Err(e);
        }
        match cell.register_staff_device(&device).await {
            Ok(recorded) => Ok(recorded),
            Err(e) => {
                let _ = fs::remove_file(&key_path);
                let _ = fs::remove_file(&cert_path);
                match e {
                    StoreError::NotFound => bail!(
                        "no enabled staff member {} in region {region}",
                        args.staff_id
                    ),
                    other => Err(other.into()),
                }
            }
        }
    }
    .await;
    cell.close().await;
    let device = result?;
    println!(
        "region {region}: issued device {} ({}) for {}, valid until {}",
        device.serial,
        device.name,
        device.staff_id,
        rfc3339(device.expires_at)
    );
    println!("  certificate: {}", cert_path.display());
    println!("  key (0600):  {}", key_path.display());
    println!("  fingerprint: sha256:{}", device.fingerprint);
    Ok(())
}

async fn revoke(args: RevokeArgs) -> Result<()> {
    for region in regions(&args.store, args.region)? {
        let (cell, _) = open(&args.store, region).await?;
        let outcome = async {
            let Some(device) = cell.staff_device(&args.serial).await? else {
                return Ok::<_, anyhow::Error>(None);
            };
            let revoked_now = cell.revoke_staff_device(&args.serial).await?;
            Ok(Some((device, revoked_now)))
        }
        .await;
        cell.close().await;
        match outcome? {
            None => continue,
            Some((device, true)) => {
                println!(
                    "region {region}: device {} ({}) of {} revoked",
                    device.serial, device.name, device.staff_id
                );
                return Ok(());
            }
            Some((device, false)) => {
                println!(
                    "region {region}: device {} ({}) of {} was already revoked",
                    device.serial, device.name, device.staff_id
                );
                return Ok(());
            }
        }
    }
    bail!("no device with serial {}", args.serial)
}

#[derive(Debug, Serialize)]
struct DeviceOut {
    region: Region,
    /// `active`, `revoked` or `expired`.
    status: &'static str,
    #[serde(flatten)]
    device: StaffDevice,
}

#[derive(Debug, Serialize)]
struct ListOut {
    devices: Vec<DeviceOut>,
}

async fn list(args: ListArgs) -> Result<()> {
    let now = interlock_storage::now_ms();
    let mut out = ListOut {
        devices: Vec::new(),
    };
    for region in regions(&args.store, args.region)? {
        let (cell, _) = open(&args.store, region).await?;
        let devices = cell.staff_devices(args.staff_id.as_deref()).await;
        cell.close().await;
        for device in devices? {
            let status = if device.revoked_at.is_some() {
                "revoked"
            } else if now >= device.expires_at {
                "expired"
            } else {
                "active"
            };
            out.devices.push(DeviceOut {
                region,
                status,
                device,
            });
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    if out.devices.is_empty() {
        println!("no devices");
    }
    for d in &out.devices {
        println!(
            "{} {} {:<8} {} {:?} until {}",
            d.region,
            d.device.serial,
            d.status,
            d.device.staff_id,
            d.device.name,
            rfc3339(d.device.expires_at)
        );
    }
    Ok(())
}
